#pragma once
// Assembly of a job's output (in its spec's format: NeXus, NXazint or pyFAI xy text) from its
// committed shard files (stages/reduce/shard_file.hpp) with reduce::NexusWriter: the same layout as
// `azflow integrate` writes, plus the job id and the daemon's version in the NXprocess parameters.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/job_spec.hpp"
#include "daemon/job_store.hpp"
#include "stages/reduce/nexus_writer.hpp"
#include "stages/reduce/result_writer.hpp"

namespace azflow::daemon {

/// The folder a job's output is made in, as checked when the job was queued: its canonical path
/// (no symbolic link in it) and inode. Saved in the job's folder ("output_folder"), so that a
/// folder replaced later, even across a restart, is noticed before anything is written.
struct OutputBinding {
  std::filesystem::path folder;  ///< canonical, absolute
  reduce::FileId id;
};

/// Binds the folder of `output` (an absolute path whose folder exists): its canonical path
/// (realpath), opened again component by component without following links
/// (reduce::OutputDir::open_checked) to read its inode. Throws FieldError ("spec.output_path")
/// naming the folder if it is missing, no folder, or changes while being bound.
OutputBinding bind_output_folder(const std::string& output);

/// Writes `binding` to `<job_dir>/output_folder`. Throws azflow::Error (kIo).
void save_output_binding(const std::filesystem::path& job_dir, const OutputBinding& binding);

/// The binding saved in `<job_dir>/output_folder`; nullopt if there is none (a job queued by an
/// earlier azflowd) or it does not parse.
std::optional<OutputBinding> load_output_binding(const std::filesystem::path& job_dir);

/// What assemble_output() wrote.
struct AssembledOutput {
  std::filesystem::path path;  ///< the final file, or "<output>.partial" when not finished
  std::size_t frames_written = 0;
  std::vector<reduce::FailedFrame> failed;  ///< failed frames (not counting never-written rows)
};

/// How the job's result is made, for the xy header and NXazint's *_applied flags: its PONI and
/// corrections. Throws azflow::Error (kConfig) if the spec's PONI text does not parse.
reduce::OutputProvenance output_provenance(const JobSpec& spec);

/// Every setting of a job for the output's NXprocess: the spec's fields flattened (as
/// `azflow integrate` names them), plus job_id, daemon_version, the input's frames/shape and
/// "pyfai_config" (job_pyfai_config, written as /entry/process/pyfai_config).
nlohmann::json job_settings_json(std::int64_t job_id, const JobSpec& spec,
                                 std::int64_t frames_total);

/// The job's integration as pyFAI's WorkerConfig version 5 (reduce::pyfai_worker_config), as
/// `azflow integrate` writes it: readable by `azflowctl enqueue --config`. The automatic dummy is
/// resolved from the first input's dtype (the input's metadata is read; if it cannot be, the
/// dummy is left out, with a warning). Throws azflow::Error (kConfig) if the PONI text does not
/// parse.
nlohmann::json job_pyfai_config(const JobSpec& spec);

/// Writes the output of a job of `frames_total` frames from the .done shard files of `shards`
/// in `dir` (a frame held by several shards, as after a retry, is taken from the highest shard
/// id), with the plan axes `axes` (plan_axes_json). With `finish` the file is completed and
/// renamed to `output` (replacing an existing file only with spec.overwrite), fsynced with its
/// folder; without, rows of missing shards stay NaN and the file is left as "<output>.partial" (a
/// failed or cancelled job). Files are made in the folder bound at enqueue (load_output_binding;
/// a job without one: output's canonical folder), opened without following links and checked to
/// be that same folder. Throws azflow::Error (kIo / kInput / kConfig) naming the shard or output
/// file, or the output folder if it was replaced.
AssembledOutput assemble_output(std::int64_t job_id, const JobSpec& spec, std::int64_t frames_total,
                                const std::filesystem::path& dir,
                                const std::vector<ShardRecord>& shards, const nlohmann::json& axes,
                                const std::string& output, bool finish);

}  // namespace azflow::daemon
