#include "cli/integrate_command.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <tuple>
#include <utility>

#include "base/error.hpp"
#include "cli/exit_codes.hpp"
#include "cli/parallel_integrate.hpp"
#include "cli/progress.hpp"
#include "stages/integrate/geometry.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/reduce/image_file.hpp"
#include "stages/reduce/nexus_writer.hpp"
#include "stages/reduce/result_writer.hpp"
#include "stages/source/dataset.hpp"

namespace azflow::cli {

namespace {

constexpr std::size_t kMaxListedFailures = 10;

void refuse_existing_output(const IntegrateOptions& o) {
  std::error_code ec;
  if (!o.overwrite && std::filesystem::exists(o.output, ec)) {
    throw Error(ErrorCategory::kConfig,
                "output " + o.output + " already exists (use --overwrite to replace it)");
  }
}

source::Dataset open_input(const IntegrateOptions& o) {
  source::OpenOptions options;
  options.dataset_path = o.dataset;
  options.follow = o.follow;
  options.idle_timeout_s = o.follow_timeout_s;
  return source::Dataset::open(o.input, options);
}

// Frames of the whole series: those present, or with --follow nimages x ntrigger from the
// master; without them, what has appeared when --follow-timeout passes without a new frame.
std::size_t series_frames(const IntegrateOptions& o, source::Dataset& dataset) {
  if (!o.follow) return dataset.info().frames;
  if (const auto expected = dataset.expected_frames()) return *expected;
  std::fprintf(stderr,
               "azflow: --follow: %s gives no nimages; integrating the frames present once "
               "%g s pass without a new one\n",
               o.input.c_str(), o.follow_timeout_s);
  return dataset.follow();
}

// --follow: integrates `range` in batches, each of the frames that appeared since the last,
// until the range is done or --follow-timeout passes without a new frame. Returns the input
// frame where it stopped (range.last when complete) and the intensity range seen.
std::pair<std::size_t, IntensityRange> follow_frames(
    source::Dataset& dataset, FrameRange range, const std::shared_ptr<const integrate::Plan>& plan,
    reduce::ResultWriter& writer, std::size_t threads, ProgressBar& progress, bool radial_profile) {
  IntensityRange seen;
  std::size_t done = range.first;
  while (done < range.last) {
    const std::size_t available = std::min(dataset.wait_for_frames(done + 1), range.last);
    if (available <= done) break;  // idle timeout
    seen.merge(integrate_frames(dataset, {done, available}, plan, writer, threads, progress,
                                done - range.first, radial_profile));
    done = available;
  }
  return {done, seen};
}

// --follow stopped at input frame `stopped` < range.last: the rows never written become failed
// rows naming the timeout.
void fail_unwritten(const IntegrateOptions& o, const source::DatasetInfo& info, FrameRange range,
                    std::size_t stopped, reduce::ResultWriter& writer) {
  for (std::size_t index = stopped; index < range.last; ++index) {
    writer.fail_frame(index - range.first, "frame " + std::to_string(index) + " of " + o.input +
                                               " (" + info.dataset +
                                               "): not written within --follow-timeout " +
                                               std::to_string(o.follow_timeout_s) + " s (" +
                                               std::to_string(info.frames) + " frames found)");
  }
}

// An image option as an absolute file name (keeping a "::/dataset" suffix), "" if not given.
std::string absolute_image(const std::string& image) {
  if (image.empty()) return image;
  const std::size_t sep = image.find("::");
  const std::string suffix = sep == std::string::npos ? "" : image.substr(sep);
  return std::filesystem::absolute(image.substr(0, sep)).lexically_normal().string() + suffix;
}

nlohmann::json full_settings(const IntegrateOptions& o, const integrate::IntegrationSettings& s,
                             const integrate::Poni& poni, const source::DatasetInfo& info,
                             FrameRange range, std::size_t threads) {
  nlohmann::json j = settings_json(o, s);
  j["pyfai_config"] = reduce::pyfai_worker_config(s, poni, absolute_image(o.mask),
                                                  absolute_image(o.dark), absolute_image(o.flat));
  j["poni"] = options_poni_text(o);
  j["input_dataset"] = info.dataset;
  j["input_frames"] = info.frames;
  j["input_shape"] = nlohmann::json::array({info.rows, info.cols});
  j["input_dtype"] = std::string(dtype_name(info.dtype));
  j["detector_pixel_mask_present"] = info.pixel_mask.has_value();
  j["first_frame"] = range.first;
  j["last_frame"] = range.last;
  j["threads"] = threads;
  if (o.integrate_radial) j["pyfai_config"]["integrator_method"] = "integrate_radial";
  return j;
}

// integrate_radial's layout: one chi axis (the plan's azimuthal bins), format nexus only.
void as_chi_profile(reduce::NexusLayout& layout, reduce::OutputFormat format) {
  if (format != reduce::OutputFormat::kNexus) {
    throw Error(ErrorCategory::kConfig, "--integrate-radial: writes --format nexus only");
  }
  layout.radial_centers = std::move(layout.azimuthal_centers);
  layout.radial_edges = std::move(layout.azimuthal_edges);
  layout.azimuthal_centers.clear();
  layout.azimuthal_edges.clear();
  layout.chi_profile = true;
}

void print_plan(const IntegrateOptions& o, const reduce::PlanResult& plan) {
  if (o.plan_cache.empty()) {
    std::printf("plan:    built in %.2f s\n", plan.seconds);
  } else {
    std::printf("plan:    %s %s %s in %.2f s\n", plan.key_hash.c_str(),
                plan.built ? "built and stored in" : "loaded from", o.plan_cache.c_str(),
                plan.seconds);
  }
}

void print_summary(const IntegrateOptions& o, const source::DatasetInfo& info, FrameRange range,
                   const reduce::WriterSummary& summary, double total_s, double integrate_s,
                   std::size_t threads, const IntensityRange& seen) {
  std::printf("input:   %s (%s, frames %zu:%zu of %zu, %s %zu x %zu)\n", o.input.c_str(),
              info.dataset.c_str(), range.first, range.last, info.frames,
              std::string(dtype_name(info.dtype)).c_str(), info.rows, info.cols);
  std::printf("output:  %s\n", o.output.c_str());
  std::printf("frames:  %zu written, %zu failed\n", summary.frames_written, summary.failed.size());
  std::printf("time:    %.2f s in all; frames in %.2f s = %.1f frames/s (%zu threads)\n", total_s,
              integrate_s, static_cast<double>(range.size()) / integrate_s, threads);
  if (seen.min <= seen.max) {
    std::printf("I range: %.6g .. %.6g\n", seen.min, seen.max);
  } else {
    std::printf("I range: (no bin with pixels)\n");
  }
}

void warn_failures(const reduce::WriterSummary& summary, std::size_t total) {
  std::fprintf(stderr, "azflow: warning: %zu of %zu frames failed (rows left NaN):\n",
               summary.failed.size(), total);
  for (std::size_t i = 0; i < summary.failed.size() && i < kMaxListedFailures; ++i) {
    std::fprintf(stderr, "  row %zu: %s\n", summary.failed[i].row,
                 summary.failed[i].reason.c_str());
  }
  if (summary.failed.size() > kMaxListedFailures) {
    std::fprintf(stderr, "  ... and %zu more (see /entry/process/failed_frames)\n",
                 summary.failed.size() - kMaxListedFailures);
  }
}

}  // namespace

int run_integrate(const IntegrateOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  refuse_existing_output(o);
  source::Dataset dataset = open_input(o);
  const source::DatasetInfo& info = dataset.info();
  const integrate::Poni poni = integrate::fit_to_frames(options_poni(o), info.rows, info.cols);
  integrate::check_frame_shape(poni, info.rows, info.cols, o.input + " (" + info.dataset + ")",
                               o.pyfai ? o.config : o.poni);
  const FrameRange range = parse_frame_range(o.frames, series_frames(o, dataset));
  const integrate::IntegrationSettings settings = make_settings(o, info.dtype);
  const reduce::OutputFormat format = parse_format_option(o.format, settings.npt_azim);
  const std::size_t threads =
      o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());

  const reduce::PlanResult planned = cli_plan(o, poni, info.rows, info.cols, settings,
                                              info.pixel_mask ? &*info.pixel_mask : nullptr);
  const auto& plan = planned.plan;
  reduce::NexusLayout layout = reduce::NexusLayout::from_plan(*plan, o.output, range.size());
  if (o.integrate_radial) as_chi_profile(layout, format);
  layout.overwrite = o.overwrite;
  layout.first_frame = static_cast<std::int64_t>(range.first);
  layout.format = format;
  layout.empty_value = o.empty;
  layout.provenance.poni = poni;
  layout.provenance.mask_applied = !o.mask.empty() || (!o.no_file_mask && info.pixel_mask);
  layout.provenance.flat_applied = !o.flat.empty();
  const std::unique_ptr<reduce::ResultWriter> writer =
      reduce::make_result_writer(std::move(layout));
  writer->write_settings(full_settings(o, settings, poni, info, range, threads));

  ProgressBar progress(range.size(), o.quiet);
  IntensityRange seen;
  std::size_t stopped = range.last;
  if (o.follow) {
    std::tie(stopped, seen) =
        follow_frames(dataset, range, plan, *writer, threads, progress, o.integrate_radial);
    fail_unwritten(o, info, range, stopped, *writer);
  } else {
    seen =
        integrate_frames(dataset, range, plan, *writer, threads, progress, 0, o.integrate_radial);
  }
  progress.finish();
  const reduce::WriterSummary summary = writer->finish();
  const double total_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!o.quiet) {
    print_summary(o, info, range, summary, total_s, progress.elapsed_s(), threads, seen);
    print_plan(o, planned);
  }
  if (stopped < range.last) {
    std::fprintf(stderr,
                 "azflow: --follow: no new frame for %g s: input frames %zu:%zu integrated, "
                 "%zu:%zu never written (failed rows); the output is written\n",
                 o.follow_timeout_s, range.first, stopped, stopped, range.last);
    return kExitFollowIncomplete;
  }
  if (summary.failed.empty()) return kExitOk;
  warn_failures(summary, range.size());
  return kExitFramesFailed;
}

}  // namespace azflow::cli
