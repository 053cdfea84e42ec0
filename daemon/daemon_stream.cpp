// Stream jobs in the daemon (docs/streams.md, "Stream jobs in the daemon"): a job whose frames
// are one series received by the source stage from a detector's ZeroMQ PUSH socket. At enqueue
// its frame count is unknown: it is stored with 0 frames and one empty shard (shard 0), and its
// rings are sized for stream.max_frame_mib. When the start message arrives the source stage
// reports the series (StreamStarted); the daemon then sizes the job (frames_total =
// number_of_images, shard 0 = frames 0..n-1, the start's geometry as the PONI when the job has
// none), opens the shard in the result sink and answers the integrate stages that asked for the
// job's configuration meanwhile. From there on the job runs as a file job of one shard.

#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "daemon/daemon.hpp"
#include "daemon/job_setup.hpp"
#include "daemon/ring_budget.hpp"
#include "stages/integrate/units.hpp"
#include "stages/reduce/image_file.hpp"
#include "stages/source/raw_spool.hpp"

namespace azflow::daemon {

namespace {

constexpr const char* kStreamCountsFile = "stream.json";  ///< in the job's folder

std::string series_name(const StreamSeries& s) {
  return "series " + std::to_string(s.series_id) +
         (s.series_unique_id.empty() ? "" : " '" + s.series_unique_id + "'");
}

/// What can be checked before the series' shape is known: the PONI's wavelength for a q or d*
/// unit, and that the mask, dark and flat files exist. FieldError naming the field.
void check_stream_inputs(const JobSpec& spec) {
  if (spec.stream->series) {
    throw FieldError("spec.stream.series",
                     "set by the daemon when the start message arrives: leave it out");
  }
  if (!spec.poni_text.empty() && integrate::unit_needs_wavelength(spec.settings.unit) &&
      !job_poni(spec).wavelength_m) {
    throw FieldError("spec.settings.unit",
                     "unit " + std::string(integrate::unit_name(spec.settings.unit)) +
                         " needs a wavelength, and the PONI " + spec.poni_path + " gives none");
  }
  std::error_code ec;
  if (!spec.stream->save_raw.empty() && !std::filesystem::is_directory(spec.stream->save_raw, ec)) {
    throw FieldError("spec.stream.save_raw",
                     "folder " + spec.stream->save_raw + " does not exist (give an existing one)");
  }
  for (const auto& [field, image] :
       {std::pair{"spec.mask_path", &spec.mask_path}, std::pair{"spec.dark_path", &spec.dark_path},
        std::pair{"spec.flat_path", &spec.flat_path}}) {
    const std::string file = image->substr(0, image->find("::"));
    if (!image->empty() && !std::filesystem::is_regular_file(file, ec)) {
      throw FieldError(field, "cannot read " + file + " (no such file)");
    }
  }
}

/// Checks a series against the job: the PONI fits its frames, the unit has a wavelength, the
/// correction images have its shape. Throws azflow::Error.
void check_series(const JobSpec& spec, const source::DatasetInfo& info) {
  const integrate::Poni poni = job_poni(spec, info);
  integrate::check_frame_shape(poni, info.rows, info.cols,
                               info.path.string() + " (" + info.dataset + ")", spec.poni_path);
  if (integrate::unit_needs_wavelength(spec.settings.unit) && !poni.wavelength_m) {
    throw Error(ErrorCategory::kInput,
                "unit " + std::string(integrate::unit_name(spec.settings.unit)) +
                    " needs a wavelength, and neither the PONI nor the start message gives one");
  }
  (void)reduce::load_corrections(info.rows, info.cols, nullptr,
                                 {spec.mask_path, spec.dark_path, spec.flat_path});
}

}  // namespace

std::size_t stream_frame_bytes(const JobSpec& spec, bool running) {
  if (const auto& series = spec.stream->series) {
    if (running && spec.stream->save_raw.empty()) {
      throw Error(ErrorCategory::kInput,
                  "azflowd stopped while this stream job was receiving " + series_name(*series) +
                      " without a raw spool: its images cannot be received again (enqueue the "
                      "job again for another series; with --save-raw it resumes)");
    }
    return series->rows * series->cols * dtype_size(series->dtype);
  }
  return spec.stream->max_frame_mib << 20;
}

nlohmann::json Daemon::enqueue_stream(const EnqueueRequest& request, JobSpec& spec,
                                      const std::optional<OutputBinding>& binding) {
  check_stream_inputs(spec);
  check_ring_budget(config_.rings, spec, stream_frame_bytes(spec, false),
                    free_bytes("/dev/shm") + ring_bytes_held());
  const std::vector<ShardPlan> shards{{0, 0, 0}};  // sized when the start message arrives
  const std::int64_t id = store_->add_job(spec, 0, shards, request.priority, request.after);
  if (const std::string error = activate_new(id, spec, binding); !error.empty()) {
    return {{"job_id", id}, {"state", "failed"}, {"frames_total", 0}, {"error", error}};
  }
  spdlog::info("job {} queued: stream {} ({}), frames known at its start message (priority {})", id,
               spec.stream->endpoint, spec.stream->format, request.priority);
  return {{"job_id", id}, {"state", "queued"}, {"frames_total", 0}};
}

void Daemon::send_stream_shard(ActiveJob& job, const ShardRecord& shard) {
  ShardWork work = ShardWork::range(job.id, shard.shard_id, {}, {}, 0, 0);
  const StreamSpec& s = *job.spec.stream;
  work.stream = StreamWork{s.endpoint,       s.format,   s.channel,   s.idle_timeout_s,
                           job.dir.string(), s.save_raw, std::nullopt};
  if (s.series) {  // azflowd restarted during the series (with a raw spool: activate checked)
    work.stream->resume = s.series;
    open_sink_shard(job, shard.shard_id, 0, job.frames_total);
    log_event(job,
              "stream " + series_name(*s.series) + " resumed from its raw spool in " + s.save_raw);
    spdlog::info("job {}: resuming {} from its raw spool in {}", job.id, series_name(*s.series),
                 s.save_raw);
  }
  send_to_source(std::move(work));
}

std::vector<std::string> stream_redo_datasets(const JobSpec& spec) {
  const auto& series = spec.stream->series;
  if (!series || spec.stream->save_raw.empty()) return {};
  return {(std::filesystem::path(spec.stream->save_raw) /
           source::RawSpool::default_master_name(series->series_id))
              .string()};
}

void Daemon::on_stage(const std::string&, const StreamStarted& m) {
  const auto it = jobs_.find(m.job);
  if (it == jobs_.end() || !it->second.spec.stream) return;  // ended meanwhile
  ActiveJob& job = it->second;
  const std::string error = m.series ? size_stream_job(job, m) : "stream: " + m.error;
  if (error.empty()) return;
  spdlog::error("job {}: {}", job.id, error);
  for (const std::string& identity : job.config_waiters) {
    send_stage(identity, JobConfigReply{job.id, std::nullopt, error});
  }
  job.config_waiters.clear();
  end_job(job, JobState::kFailed, error, false);
}

std::string Daemon::size_stream_job(ActiveJob& job, const StreamStarted& m) {
  if (const auto& known = job.spec.stream->series) {
    return "the source stage restarted during " + series_name(*known) +
           ": its images cannot be received again (enqueue the job again)";
  }
  JobSpec spec = job.spec;
  StreamSeries series = *m.series;
  if (spec.poni_text.empty()) {
    if (m.poni_text.empty()) {
      return "the start message of " + series_name(series) +
             " lacks detector_distance, beam_center_x/y or pixel_size_x/y: give the geometry "
             "with --poni";
    }
    spec.poni_text = m.poni_text;
    series.geometry_from_start = true;
  }
  spec.stream->series = series;
  std::size_t frame_bytes = 0;
  try {
    const source::DatasetInfo info = job_input_info(spec);
    check_series(spec, info);
    frame_bytes = info.frame_bytes();
  } catch (const Error& e) {
    return e.what();
  }
  if (!pipeline_fits(frame_bytes, job.bins)) {
    return "images of " + std::to_string(frame_bytes) + " bytes (" + series_name(series) +
           ") do not fit the rings, made for stream.max_frame_mib = " +
           std::to_string(spec.stream->max_frame_mib) +
           " MiB: enqueue the job again with a "
           "larger --stream-max-frame-mib";
  }
  const auto images = static_cast<std::int64_t>(series.images);
  store_->size_stream_job(job.id, spec, images);
  job.spec = std::move(spec);
  job.frames_total = images;
  job.frame_bytes = frame_bytes;
  if (const auto shard = job.running.find(m.shard); shard != job.running.end()) {
    shard->second.frame_count = images;
  }
  open_sink_shard(job, m.shard, 0, images);
  log_event(job, "stream " + series_name(series) + " started: " + std::to_string(images) +
                     " images of " + std::to_string(series.rows) + " x " +
                     std::to_string(series.cols) + " " + std::string(dtype_name(series.dtype)) +
                     (series.geometry_from_start ? ", geometry from the start message" : ""));
  spdlog::info("job {}: {} started, {} images", job.id, series_name(series), images);
  for (const std::string& identity : job.config_waiters) {
    send_stage(identity, JobConfigReply{job.id, job.spec, {}});
  }
  job.config_waiters.clear();
  if (!job.spec.stream->save_raw.empty()) {  // a restarted source stage resumes the series
    for (auto& [msg, work] : source_pending_) {
      if (work.job == job.id && work.stream) work.stream->resume = series;
    }
  }
  return "";
}

void Daemon::on_stage(const std::string&, const StreamProgress& m) {
  // The last report (at the end message) may come after the job ended: its last image's row
  // can complete the shard first. It is then saved in the job's folder all the same.
  const auto dir = config_.state_dir / "jobs" / std::to_string(m.job);
  if (const auto it = jobs_.find(m.job); it != jobs_.end()) {
    it->second.stream_counts = m.counts;
  } else {
    std::error_code ec;
    if (m.job <= 0 || !std::filesystem::is_directory(dir, ec)) return;
  }
  try {
    write_file_atomically(dir / kStreamCountsFile, m.counts.dump());
  } catch (const std::exception& e) {
    spdlog::warn("job {}: stream counters not saved: {}", m.job, e.what());
  }
}

nlohmann::json Daemon::stream_counts_json(std::int64_t job_id) const {
  if (const auto it = jobs_.find(job_id);
      it != jobs_.end() && !it->second.stream_counts.is_null()) {
    return it->second.stream_counts;
  }
  std::ifstream in(config_.state_dir / "jobs" / std::to_string(job_id) / kStreamCountsFile);
  if (!in) return nullptr;
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

}  // namespace azflow::daemon
