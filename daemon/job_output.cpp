#include "daemon/job_output.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <system_error>

#include <spdlog/spdlog.h>

#include "base/error.hpp"
#include "daemon/job_setup.hpp"
#include "daemon/job_spec.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/reduce/shard_file.hpp"

namespace azflow::daemon {

namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : "\n") + s;
  return out;
}

/// Copies one committed shard's rows into the writer, except rows already `handled` by a newer
/// shard (a retry); adds its sums (which hold only its ok frames).
void copy_shard(reduce::ResultWriter& writer, const std::filesystem::path& path,
                std::vector<reduce::FailedFrame>& failed, std::size_t& written,
                std::vector<bool>& handled) {
  reduce::ShardFileReader reader(path);
  reduce::ShardFrame frame;
  for (std::size_t k = 0; k < static_cast<std::size_t>(reader.header().frame_count); ++k) {
    reader.read(k, frame);
    const auto row = static_cast<std::size_t>(frame.frame);
    if (row < handled.size()) {
      if (handled[row]) continue;
      handled[row] = true;
    }
    if (frame.ok) {
      writer.write_frame(row, frame.intensity, frame.sigma);
      if (!frame.std_dev.empty()) writer.write_clip_stats(row, frame.std_dev, frame.count);
      ++written;
    } else {
      writer.fail_frame(row, frame.reason);
      failed.push_back({row, frame.frame, frame.reason});
    }
  }
  writer.add_sums(reader.sums());
}

constexpr const char* kBindingFile = "output_folder";
/// Identity (st_dev st_ino) of the output file this job last wrote, for `retry` to replace it.
constexpr const char* kWrittenFile = "output_written";

std::optional<reduce::FileId> file_at(const reduce::OutputDir& dir, const std::string& name) {
  struct stat st {};
  if (::fstatat(dir.fd(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return std::nullopt;
  return reduce::FileId{st.st_dev, st.st_ino};
}

/// Whether the file at the output's name is the one this job wrote before (a `retry` replaces
/// it); xy-frames (a file per frame): whether this job wrote its output before at all.
bool own_earlier_output(const std::filesystem::path& job_dir, const reduce::OutputDir& dir,
                        const std::string& name, reduce::OutputFormat format) {
  std::ifstream in(job_dir / kWrittenFile);
  reduce::FileId written;
  if (!(in >> written.dev >> written.ino)) return false;
  if (format == reduce::OutputFormat::kXyFrames) return true;
  const auto now = file_at(dir, name);
  return now && *now == written;
}

void save_written(const std::filesystem::path& job_dir, const reduce::OutputDir& dir,
                  const std::string& name) {
  const reduce::FileId id = file_at(dir, name).value_or(dir.id());
  std::ofstream(job_dir / kWrittenFile, std::ios::trunc) << id.dev << " " << id.ino << "\n";
}

/// The folder to make `output` in: the bound one, else output's folder made canonical.
std::shared_ptr<const reduce::OutputDir> output_dir(const std::filesystem::path& job_dir,
                                                    const std::string& output) {
  if (const auto binding = load_output_binding(job_dir)) {
    return reduce::OutputDir::open_checked(binding->folder, &binding->id);
  }
  std::error_code ec;
  const auto folder =
      std::filesystem::weakly_canonical(std::filesystem::path(output).parent_path(), ec);
  if (ec) throw Error(ErrorCategory::kIo, "output folder of " + output + ": " + ec.message());
  return reduce::OutputDir::open_checked(folder, nullptr);
}

}  // namespace

OutputBinding bind_output_folder(const std::string& output) {
  const std::filesystem::path folder = std::filesystem::path(output).parent_path();
  char* real = ::realpath(folder.c_str(), nullptr);
  if (real == nullptr) {
    throw FieldError("spec.output_path",
                     "folder " + folder.string() + ": " +
                         std::error_code(errno, std::generic_category()).message());
  }
  OutputBinding binding{real, {}};
  std::free(real);
  try {
    binding.id = reduce::OutputDir::open_checked(binding.folder, nullptr)->id();
  } catch (const Error& e) {
    throw FieldError("spec.output_path", e.what());
  }
  return binding;
}

void save_output_binding(const std::filesystem::path& job_dir, const OutputBinding& binding) {
  std::ofstream out(job_dir / kBindingFile, std::ios::trunc);
  out << binding.id.dev << " " << binding.id.ino << "\n" << binding.folder.string() << "\n";
  if (!out.flush()) {
    throw Error(ErrorCategory::kIo, "cannot write " + (job_dir / kBindingFile).string());
  }
}

std::optional<OutputBinding> load_output_binding(const std::filesystem::path& job_dir) {
  std::ifstream in(job_dir / kBindingFile);
  OutputBinding b;
  std::string folder;
  if (!(in >> b.id.dev >> b.id.ino) || !in.ignore(1) || !std::getline(in, folder) ||
      folder.empty()) {
    return std::nullopt;
  }
  b.folder = folder;
  return b;
}

reduce::OutputProvenance output_provenance(const JobSpec& spec) {
  reduce::OutputProvenance p;
  p.poni = integrate::parse_poni(spec.poni_text, spec.poni_path);
  p.solid_angle_applied = spec.settings.correct_solid_angle;
  p.polarization_factor = spec.settings.polarization_factor;
  p.normalization_factor = spec.settings.normalization_factor;
  // The file's pixel_mask counts as a mask only if the input has one: not known here, so an
  // enabled use_file_mask is reported as a mask applied (as Eiger master files all have one).
  p.mask_applied = !spec.mask_path.empty() || spec.use_file_mask;
  p.dark_applied = !spec.dark_path.empty();
  p.flat_applied = !spec.flat_path.empty();
  return p;
}

nlohmann::json job_settings_json(std::int64_t job_id, const JobSpec& spec,
                                 std::int64_t frames_total) {
  nlohmann::json j = reduce::settings_parameters(spec.settings);
  j["job_id"] = job_id;
  j["daemon_version"] = std::string(reduce::program_version());
  j["input"] = spec.datasets.empty() ? std::string() : spec.datasets.front();
  j["inputs"] = joined(spec.datasets);
  j["dataset"] = spec.dataset_path;
  j["poni_file"] = spec.poni_path;
  j["poni"] = spec.poni_text;
  j["output"] = spec.output_path;
  j["format"] = std::string(reduce::output_format_name(spec.format));
  j["mode"] = std::string(mode_name(spec.mode));
  j["dummy_auto"] = spec.dummy_auto;
  j["mask_file"] = spec.mask_path;
  j["dark_file"] = spec.dark_path;
  j["flat_file"] = spec.flat_path;
  j["use_detector_pixel_mask"] = spec.use_file_mask;
  j["input_frames"] = frames_total;
  j["first_frame"] = spec.frame_offset();  // frames first_frame..last_frame-1 of the input
  j["last_frame"] = spec.frame_offset() + frames_total;
  if (spec.stream) {
    j["input_stream"] = spec.stream->endpoint;
    j["stream_format"] = spec.stream->format;
    j["stream_channel"] = spec.stream->channel;
    j["raw_spool"] = spec.stream->save_raw;
    if (const auto& series = spec.stream->series) {
      j["series_id"] = series->series_id;
      j["series_unique_id"] = series->series_unique_id;
      j["poni_from_start_message"] = series->geometry_from_start;
    }
  }
  j["job_spec"] = to_json(spec).dump();
  j["pyfai_config"] = job_pyfai_config(spec);
  return j;
}

nlohmann::json job_pyfai_config(const JobSpec& spec) {
  integrate::IntegrationSettings settings = spec.settings;
  integrate::Poni poni = job_poni(spec);
  if (!spec.datasets.empty() || spec.stream) {
    // The dtype decides the automatic dummy, the frames the shape of a generic PONI detector:
    // read from the input's metadata (the output thread, never the main loop). An input gone
    // since leaves the settings as they are.
    try {
      const source::DatasetInfo info = job_input_info(spec);
      settings = spec.settings_for(info.dtype);
      poni = job_poni(spec, info);
    } catch (const std::exception& e) {
      spdlog::warn("pyfai_config of {}: input not readable ({}); the dtype's dummy is left out",
                   spec.output_path, e.what());
    }
  }
  return reduce::pyfai_worker_config(settings, poni, spec.mask_path, spec.dark_path,
                                     spec.flat_path);
}

AssembledOutput assemble_output(std::int64_t job_id, const JobSpec& spec, std::int64_t frames_total,
                                const std::filesystem::path& dir,
                                const std::vector<ShardRecord>& shards, const nlohmann::json& axes,
                                const std::string& output, bool finish) {
  reduce::NexusLayout layout =
      layout_from_axes_json(axes, output, static_cast<std::size_t>(frames_total));
  layout.first_frame = spec.frame_offset();  // frame_index = input frame
  layout.dir = output_dir(dir, output);
  const std::string name = std::filesystem::path(output).filename().string();
  // else a file made there after enqueue is kept (and the job fails)
  layout.overwrite = spec.overwrite || own_earlier_output(dir, *layout.dir, name, spec.format);
  const std::shared_ptr<const reduce::OutputDir> folder = layout.dir;
  layout.format = spec.format;
  layout.provenance = output_provenance(spec);
  AssembledOutput result;
  {
    const std::unique_ptr<reduce::ResultWriter> owner =
        reduce::make_result_writer(std::move(layout));
    reduce::ResultWriter& writer = *owner;
    writer.write_settings(job_settings_json(job_id, spec, frames_total));
    // Newest shard first: a retry shard (a higher id) supersedes the failed rows of the shard
    // that first held its frames.
    std::vector<bool> handled(static_cast<std::size_t>(frames_total), false);
    for (auto it = shards.rbegin(); it != shards.rend(); ++it) {
      if (it->state != ShardState::kDone) continue;
      copy_shard(writer, reduce::shard_done_path(dir, it->shard_id), result.failed,
                 result.frames_written, handled);
    }
    if (!finish) {
      result.path = writer.partial_path();
      return result;  // the writer is destroyed unfinished: the .partial file stays
    }
    writer.finish();
  }
  save_written(dir, *folder, name);
  result.path = output;
  return result;
}

}  // namespace azflow::daemon
