#include "cli/integrate_options.hpp"

#include "stages/reduce/nexus_writer.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numbers>
#include <sstream>

#include "base/error.hpp"
#include "stages/integrate/method.hpp"
#include "stages/integrate/units.hpp"

namespace azflow::cli {

namespace {

void add_io_options(CLI::App& cmd, IntegrateOptions& o) {
  cmd.add_option("input", o.input, "Eiger/NeXus master file or plain HDF5 file of frames")
      ->required();
  cmd.add_option("--poni", o.poni, "pyFAI PONI geometry file (version 1 or 2)");
  cmd.add_option("-o,--output", o.output,
                 "output file: NeXus (HDF5), or text for --format xy; for xy-frames the name "
                 "pattern (OUT.xy -> OUT_<frame>.xy)")
      ->required();
  cmd.add_option("--format", o.format,
                 "output format: nexus (azflow's NeXus layout), nxazint (NeXus NXazint1d/2d), "
                 "xy (pyFAI save1D text of the mean of the frames) or xy-frames (one save1D "
                 "file per frame); xy formats are 1D only")
      ->capture_default_str();
  cmd.add_option("--dataset", o.dataset,
                 "dataset path inside the input (default: Eiger data_NNNNNN links, else "
                 "/entry/data/data)");
  cmd.add_option("--frames", o.frames, "frames A:B to integrate (B exclusive; A:, :B, A)");
  cmd.add_flag("--overwrite", o.overwrite, "replace an existing output file");
  cmd.add_flag("--quiet", o.quiet, "no progress bar and no summary");
  auto* follow = cmd.add_flag(
      "--follow", o.follow,
      "the input is still being written: wait for data files and frames and integrate them as "
      "they appear, until nimages x ntrigger (the master's detectorSpecific) or --follow-timeout "
      "seconds without a new frame (exit code 4: output written, missing frames listed)");
  cmd.add_option("--follow-timeout", o.follow_timeout_s,
                 "--follow: seconds without a new frame before giving up")
      ->check(CLI::Range(0.1, 86400.0))
      ->needs(follow)
      ->capture_default_str();
  cmd.add_option("--threads", o.threads, "worker threads (default: hardware concurrency)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1024}));
  cmd.add_option("--plan-cache", o.plan_cache,
                 "folder of stored integration plans (created if missing; the same layout as "
                 "azflowd's STATE_DIR/plans): reuse the plan of the same geometry, settings and "
                 "masks, else build and store it (at most 4096 MiB, least recently used "
                 "removed first)");
}

// pyFAI 0.21's AzimuthalIntegrator.sigma_clip_ng and its keyword arguments thres and max_iter.
void add_sigma_clip_options(CLI::App& cmd, IntegrateOptions& o) {
  auto* clip = cmd.add_flag("--sigma-clip", o.sigma_clip,
                            "sigma clipping per radial bin, as pyFAI's sigma_clip_ng (1D only; "
                            "error model poisson unless --error-model azimuthal)");
  cmd.add_option("--thres", o.thres, "sigma clipping cut-off in standard deviations")
      ->capture_default_str()
      ->needs(clip);
  cmd.add_option("--max-iter", o.max_iter, "sigma clipping iterations (0: none)")
      ->capture_default_str()
      ->needs(clip);
  cmd.add_flag("--integrate-radial", o.integrate_radial,
               "I as a function of chi, as pyFAI's integrate_radial: the 2D integration of "
               "--npt-rad x --npt-azim bins (over --radial-range) summed over its radial bins; "
               "chi in --azimuth-unit; format nexus only");
}

void add_binning_options(CLI::App& cmd, IntegrateOptions& o) {
  auto* npt =
      cmd.add_option("--npt", o.npt, "radial bins of a 1D integration")->capture_default_str();
  auto* npt_rad = cmd.add_option("--npt-rad", o.npt_rad, "radial bins of a 2D integration");
  cmd.add_option("--npt-azim", o.npt_azim, "azimuthal bins: a 2D integration (cake)")
      ->needs(npt_rad);
  npt->excludes(npt_rad);
  cmd.add_option(
         "--unit", o.unit,
         "radial unit (pyFAI 0.21): q_nm^-1, q_A^-1, 2th_deg, 2th_rad, r_mm, r_m, d*2_A^-2, "
         "d*2_nm^-2, log(q.nm)_None, log(1+q.nm)_None, log(1+q.A)_None, log10(q.m)_None, "
         "arcsinh(q.nm)_None, arcsinh(q.A)_None")
      ->capture_default_str();
  auto* split = cmd.add_option("--split", o.split, "pixel splitting: no, bbox or full")
                    ->capture_default_str();
  cmd.add_option("--method", o.method,
                 "pyFAI method: no, bbox, full, a pyFAI 0.21 name (csr, full_csr, splitpixel, "
                 "...) or split,algo,impl such as full,csr,cython; sets the pixel splitting "
                 "(azflow always computes pyFAI's csr/cython result)")
      ->excludes(split);
  cmd.add_option("--radial-range", o.radial_range, "radial range A B in the unit's scale")
      ->expected(2);
  cmd.add_option("--azimuth-range", o.azimuth_range,
                 "azimuthal range A B in --azimuth-unit; A > B is the sector across +-180 deg "
                 "(chi >= A or chi <= B)")
      ->expected(2);
  cmd.add_option("--azimuth-unit", o.azimuth_unit,
                 "azimuthal unit of the 2D chi axis and of --azimuth-range: chi_deg or chi_rad")
      ->capture_default_str();
  cmd.add_option("--error-model", o.error_model, "sigma: none, poisson or azimuthal")
      ->capture_default_str();
  add_sigma_clip_options(cmd, o);
}

void add_correction_options(CLI::App& cmd, IntegrateOptions& o) {
  cmd.add_option("--mask", o.mask,
                 "mask image, nonzero = masked (FILE.h5[::/dataset], .npy or EDF); combined "
                 "with the detector's pixel_mask");
  cmd.add_flag("--no-file-mask", o.no_file_mask,
               "ignore the detector's pixel_mask stored in the input file");
  cmd.add_option("--dark", o.dark, "dark current image, subtracted (same formats as --mask)");
  cmd.add_option("--flat", o.flat, "flat-field image, divides (same formats as --mask)");
  cmd.add_flag("--no-solid-angle", o.no_solid_angle, "do not correct for the solid angle");
  cmd.add_option("--polarization-factor", o.polarization_factor,
                 "polarization factor in [-1, 1] (default: no correction)");
  auto* dummy = cmd.add_option("--dummy", o.dummy,
                               "pixel value marking invalid pixels (default: the dtype's maximum "
                               "for unsigned integer data, e.g. 0xFFFFFFFF for uint32)");
  cmd.add_option("--delta-dummy", o.delta_dummy, "tolerance around --dummy");
  cmd.add_flag("--no-dummy", o.no_dummy, "no dummy value at all")->excludes(dummy);
  cmd.add_option("--normalization-factor", o.normalization_factor,
                 "monitor value dividing every intensity")
      ->capture_default_str();
  cmd.add_option("--empty", o.empty,
                 "value of I and sigma in bins without any pixel (pyFAI's empty: give the "
                 "dummy value to get what pyFAI writes when a dummy is set)")
      ->capture_default_str();
}

template <typename Enum>
Enum parse_or_throw(std::optional<Enum> value, std::string_view option, const std::string& text,
                    std::string_view allowed) {
  if (!value) {
    throw Error(ErrorCategory::kConfig, std::string(option) + ": unknown value '" + text +
                                            "' (expected " + std::string(allowed) + ")");
  }
  return *value;
}

std::optional<std::pair<double, double>> to_range(const std::vector<double>& values) {
  if (values.size() != 2) return std::nullopt;
  return std::pair(values[0], values[1]);
}

std::string absolute_path(const std::string& path) {
  std::error_code ec;
  const std::filesystem::path abs = std::filesystem::absolute(path, ec);
  return ec ? path : abs.lexically_normal().string();
}

}  // namespace

void add_integrate_options(CLI::App& command, IntegrateOptions& options) {
  add_io_options(command, options);
  add_binning_options(command, options);
  add_correction_options(command, options);
}

// --config: a pyFAI file gives the geometry and every setting it holds, so the options that set
// the same things are refused with it (as azflowctl enqueue --config does).
void add_config_option(CLI::App& cmd, IntegrateOptions& o) {
  auto* config = cmd.add_option(
      "--config", o.config,
      "pyFAI integration/worker JSON (pyFAI-integrate's file, Worker.get_config(), WorkerConfig "
      "v1-v5, or the /entry/process/pyfai_config of an azflow output) giving the geometry, "
      "settings, mask, dark and flat; excludes --poni and the integration options (--no-file-mask "
      "may be added)");
  for (const char* name :
       {"--poni",          "--npt",          "--npt-rad",          "--npt-azim",
        "--unit",          "--split",        "--method",           "--radial-range",
        "--azimuth-range", "--azimuth-unit", "--error-model",      "--sigma-clip",
        "--thres",         "--max-iter",     "--integrate-radial", "--mask",
        "--dark",          "--flat",         "--no-solid-angle",   "--polarization-factor",
        "--dummy",         "--delta-dummy",  "--no-dummy",         "--normalization-factor"}) {
    config->excludes(cmd.get_option(name));
  }
}

FrameRange parse_frame_range(const std::string& text, std::size_t frames) {
  const FrameSlice slice = text.empty() ? FrameSlice{} : parse_frame_slice(text, "--frames");
  return resolve_frames(slice, frames, "--frames");
}

void apply_config(IntegrateOptions& o) {
  if (o.config.empty()) return;
  o.pyfai = reduce::read_pyfai_config(o.config);
  o.mask = o.pyfai->mask_path;
  o.dark = o.pyfai->dark_path;
  o.flat = o.pyfai->flat_path;
  o.no_file_mask = o.no_file_mask || !o.pyfai->use_file_mask;  // --no-file-mask may be added
}

integrate::Poni options_poni(const IntegrateOptions& o) {
  if (o.pyfai) return integrate::parse_poni(o.pyfai->poni_text, o.config);
  return integrate::read_poni(o.poni);
}

std::string options_poni_text(const IntegrateOptions& o) {
  if (o.pyfai) return o.pyfai->poni_text;
  std::ifstream in(o.poni, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

integrate::IntegrationSettings make_settings(const IntegrateOptions& o, DType dtype) {
  if (o.pyfai) return o.pyfai->settings;  // validated by read_pyfai_config
  integrate::IntegrationSettings s;
  s.unit = parse_or_throw(integrate::parse_radial_unit(o.unit), "--unit", o.unit,
                          "q_nm^-1, q_A^-1, 2th_deg, 2th_rad or r_mm");
  s.split = o.method.empty() ? parse_or_throw(integrate::parse_split(o.split), "--split", o.split,
                                              "no, bbox or full")
                             : integrate::parse_method(o.method, "--method").split;
  s.error_model = parse_or_throw(integrate::parse_error_model(o.error_model), "--error-model",
                                 o.error_model, "none, poisson or azimuthal");
  s.npt_rad = o.npt_rad.value_or(o.npt);
  s.npt_azim = o.npt_azim.value_or(0);
  if (s.npt_rad == 0) throw Error(ErrorCategory::kConfig, "--npt: must be at least 1");
  if (o.npt_azim && *o.npt_azim == 0) {
    throw Error(ErrorCategory::kConfig, "--npt-azim: must be at least 1");
  }
  s.radial_range = to_range(o.radial_range);
  s.azimuthal_unit = parse_or_throw(integrate::parse_azimuthal_unit(o.azimuth_unit),
                                    "--azimuth-unit", o.azimuth_unit, "chi_deg or chi_rad");
  s.azimuth_range_deg = to_range(o.azimuth_range);
  if (s.azimuth_range_deg && s.azimuthal_unit == integrate::AzimuthalUnit::kChiRad) {
    constexpr double kDeg = 180.0 / std::numbers::pi;
    s.azimuth_range_deg =
        std::pair(s.azimuth_range_deg->first * kDeg, s.azimuth_range_deg->second * kDeg);
  }
  s.correct_solid_angle = !o.no_solid_angle;
  s.polarization_factor = o.polarization_factor;
  s.dummy = o.no_dummy ? std::nullopt : (o.dummy ? o.dummy : default_dummy(dtype));
  s.delta_dummy = s.dummy ? o.delta_dummy : std::nullopt;
  s.normalization_factor = o.normalization_factor;
  if (o.integrate_radial && o.sigma_clip) {
    throw Error(ErrorCategory::kConfig, "--integrate-radial and --sigma-clip: give one of them");
  }
  if (o.integrate_radial && !s.is_2d()) {
    throw Error(ErrorCategory::kConfig,
                "--integrate-radial: give --npt-rad (radial bins) and --npt-azim (chi bins)");
  }
  if (o.sigma_clip) {
    if (s.is_2d()) {
      throw Error(ErrorCategory::kConfig,
                  "--sigma-clip: 1D only (pyFAI's sigma_clip_ng): drop --npt-azim");
    }
    s.sigma_clip = integrate::SigmaClip{o.thres, o.max_iter};
    if (s.error_model == integrate::ErrorModel::kNone)
      s.error_model = integrate::ErrorModel::kPoisson;
    if (!(o.thres > 0) || !std::isfinite(o.thres))
      throw Error(ErrorCategory::kConfig, "--thres: must be positive and finite");
  }
  s.validate();
  return s;
}

reduce::OutputFormat parse_format_option(const std::string& format, std::size_t npt_azim) {
  const auto parsed = reduce::parse_output_format(format);
  if (!parsed) {
    throw Error(ErrorCategory::kConfig, "--format: unknown value '" + format + "' (expected " +
                                            std::string(reduce::kOutputFormatChoices) + ")");
  }
  if (!reduce::format_supports(*parsed, npt_azim)) {
    throw Error(ErrorCategory::kConfig, "--format " + format +
                                            " holds 1D results only: drop --npt-azim or use "
                                            "--format nexus or nxazint");
  }
  return *parsed;
}

nlohmann::json settings_json(const IntegrateOptions& o, const integrate::IntegrationSettings& s) {
  nlohmann::json j = reduce::settings_parameters(s);
  j["input"] = absolute_path(o.input);
  j["dataset"] = o.dataset;
  j["poni_file"] = o.pyfai ? o.pyfai->poni_path : absolute_path(o.poni);
  if (o.pyfai) j["config_file"] = absolute_path(o.config);
  j["output"] = absolute_path(o.output);
  j["format"] = o.format;
  j["empty"] = o.empty;
  j["mask_file"] = o.mask;
  j["dark_file"] = o.dark;
  j["flat_file"] = o.flat;
  j["use_detector_pixel_mask"] = !o.no_file_mask;
  j["frames"] = o.frames;
  j["follow"] = o.follow;
  if (o.follow) j["follow_timeout_s"] = o.follow_timeout_s;
  j["integrate_radial"] = o.integrate_radial;
  return j;
}

reduce::PlanResult cli_plan(const IntegrateOptions& o, const integrate::Poni& poni,
                            std::size_t rows, std::size_t cols,
                            const integrate::IntegrationSettings& settings,
                            const std::vector<std::uint32_t>* pixel_mask) {
  reduce::PlanRequest request{
      poni, rows, cols, settings, o.no_file_mask ? nullptr : pixel_mask, {o.mask, o.dark, o.flat}};
  std::optional<integrate::PlanCache> cache;
  if (!o.plan_cache.empty()) cache.emplace(integrate::PlanCacheOptions{o.plan_cache});
  reduce::PlanResult plan = reduce::make_plan(request, cache ? &*cache : nullptr);
  if (!plan.note.empty()) std::fprintf(stderr, "azflow: warning: %s\n", plan.note.c_str());
  return plan;
}

}  // namespace azflow::cli
