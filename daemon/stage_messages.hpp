#pragma once
// The stage control protocol: every message between a stage process and azflowd, one struct each,
// with its JSON mapping (one JSON object per ZeroMQ frame, its kind in "type"). Frames never
// travel here (they go through the shared-memory rings); these carry control only.
//
//   stage -> daemon (StageMessage)
//     hello       StageHello        role, worker, pid, device      (once, at start)
//     heartbeat   StageHeartbeat    role, worker, pid, device, counters
//     job_config  JobConfigRequest  job                            (integrate: send me the spec)
//     plan_axes   PlanAxes          job, axes                      (integrate: the plan's axes)
//     shard_read  ShardRead         job, shard, msg                (source: every frame pushed)
//     stream_start   StreamStarted  job, shard, series, poni_text | error  (source: start arrived)
//     stream_counts  StreamProgress job, counts                   (source: receive counters)
//   daemon -> stage (DaemonMessage)
//     shard       ShardWork         job, shard, datasets, dataset_path, first + count | frames,
//                                   msg, offset (input frame of job frame 0),
//                                   stream (a stream job: endpoint, format, ...)  (source)
//     job_config  JobConfigReply    job, spec | error              (integrate)
//     cancel      CancelJob         job      (drop or pass on the job's frames as cancelled)
//     retry       RetryJob          job      (a cancelled job is live again)
//     job_end     JobEnd            job      (source: close the job's files)
//     stop        StopStage                  (finish the frame in hand and exit)
//
// Parsing checks every field; a message that does not parse throws azflow::Error (kInput) naming
// the type and field, and the receiver logs and skips it.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/job_spec.hpp"

namespace azflow::daemon {

/// What a stage counts; sent in every heartbeat and shown by `status` and `workers`.
struct StageCounters {
  std::uint64_t frames_in = 0;   ///< slots taken from the input ring (or frames read: source)
  std::uint64_t frames_out = 0;  ///< slots committed to the output ring (ok or failed)
  std::uint64_t failed = 0;      ///< frames this stage marked failed
  double busy_s = 0;             ///< seconds spent processing frames (not waiting)
};

/// A stage's first message.
struct StageHello {
  static constexpr std::string_view kType = "hello";
  std::string role;  ///< "source", "decompress" or "integrate"
  std::size_t worker = 0;
  std::int64_t pid = 0;
  std::string device = "cpu";  ///< "cpu" or "cuda:N"
};

/// A stage's periodic sign of life, with its counters.
struct StageHeartbeat {
  static constexpr std::string_view kType = "heartbeat";
  std::string role;
  std::size_t worker = 0;
  std::int64_t pid = 0;
  std::string device = "cpu";
  StageCounters counters;
};

/// Integrate asks for a job's spec (answered by JobConfigReply).
struct JobConfigRequest {
  static constexpr std::string_view kType = "job_config";
  std::int64_t job = 0;
};

/// Integrate reports the output axes of a job's plan (plan_axes_json).
struct PlanAxes {
  static constexpr std::string_view kType = "plan_axes";
  std::int64_t job = 0;
  nlohmann::json axes;
};

/// The source pushed every frame of shard message `msg`.
struct ShardRead {
  static constexpr std::string_view kType = "shard_read";
  std::int64_t job = 0;
  std::int64_t shard = 0;
  std::int64_t msg = 0;
};

/// The source stage learnt a stream job's series from its start message (StreamSeries), or why
/// the start message cannot be used (then `error`, and the job fails).
struct StreamStarted {
  static constexpr std::string_view kType = "stream_start";
  std::int64_t job = 0;
  std::int64_t shard = 0;
  std::optional<StreamSeries> series;
  std::string poni_text;  ///< the start message's geometry (format_poni); "" when it has none
  std::string error;      ///< set when series is empty
};

/// A stream job's receive counters (sent every second while receiving, and once at the end).
/// `counts`: {"received", "missing", "duplicate", "out_of_range", "foreign", "invalid",
/// "unknown_type", "before_start", "first_invalid", "ended", "receive_rate_per_s"}.
struct StreamProgress {
  static constexpr std::string_view kType = "stream_counts";
  std::int64_t job = 0;
  nlohmann::json counts;
};

/// A stream job's input as the source stage needs it (ShardWork::stream).
struct StreamWork {
  std::string endpoint, format, channel;
  double idle_timeout_s = 60;
  std::string job_dir;   ///< <state>/jobs/<id>: where the source writes the series' pixel mask
  std::string save_raw;  ///< StreamSpec::save_raw: folder of the raw spool ("" = none)
  /// The series the daemon already knows (JSON "resume"; absent = wait for a start message): a
  /// source stage or azflowd restarted during the series. The source then takes no start
  /// message: it reopens the raw spool in save_raw, gives every image spooled there to the
  /// pipeline again, and receives the rest of the series (docs/streams.md, "Restarts").
  std::optional<StreamSeries> resume;
};

/// Frames for the source to read: first..first+count, or the explicit `frames` when not empty.
/// A stream job's one shard carries `stream` instead (its frames are the series' images).
struct ShardWork {
  static constexpr std::string_view kType = "shard";
  std::int64_t job = 0;
  std::int64_t shard = 0;
  std::vector<std::string> datasets;
  std::string dataset_path;
  std::int64_t first = 0;
  std::int64_t count = 0;
  std::vector<std::int64_t> frames;
  std::int64_t msg = 0;  ///< the daemon's id of this message, echoed in ShardRead
  /// Input frame of job frame 0 (JobSpec::frame_offset()): the source reads input frame
  /// offset + f for job frame f, and names job frame f in the slot (JSON "offset", default 0).
  std::int64_t offset = 0;
  /// Follow mode (JobSpec::follow_timeout_s, JSON "follow_timeout_s", absent = off): the input is
  /// still being written; the source waits for each frame until this many seconds pass without a
  /// new one.
  std::optional<double> follow_timeout_s;
  /// A stream job (JSON "stream", absent = a file job): receive one series from the endpoint.
  std::optional<StreamWork> stream;

  /// Frames first..first+count of `datasets` (msg set when sent).
  static ShardWork range(std::int64_t job, std::int64_t shard, std::vector<std::string> datasets,
                         std::string dataset_path, std::int64_t first, std::int64_t count) {
    return {job, shard, std::move(datasets), std::move(dataset_path), first, count, {}, 0, 0,
            {},  {}};
  }
  /// The listed frames of `datasets` (msg set when sent).
  static ShardWork list(std::int64_t job, std::int64_t shard, std::vector<std::string> datasets,
                        std::string dataset_path, std::vector<std::int64_t> frames) {
    return {job, shard, std::move(datasets), std::move(dataset_path), 0, 0, std::move(frames), 0, 0,
            {},  {}};
  }
};

/// The daemon's answer to JobConfigRequest: the spec, or why there is none.
struct JobConfigReply {
  static constexpr std::string_view kType = "job_config";
  std::int64_t job = 0;
  std::optional<JobSpec> spec;
  std::string error;  ///< when spec is empty
};

/// The job was cancelled: its frames are passed on as cancelled from now on.
struct CancelJob {
  static constexpr std::string_view kType = "cancel";
  std::int64_t job = 0;
};

/// A cancelled job was retried: it is live again.
struct RetryJob {
  static constexpr std::string_view kType = "retry";
  std::int64_t job = 0;
};

/// The job ended: the source closes its files (a retry reopens them).
struct JobEnd {
  static constexpr std::string_view kType = "job_end";
  std::int64_t job = 0;
};

/// The stage is to exit.
struct StopStage {
  static constexpr std::string_view kType = "stop";
};

/// A message from a stage to the daemon.
using StageMessage = std::variant<StageHello, StageHeartbeat, JobConfigRequest, PlanAxes, ShardRead,
                                  StreamStarted, StreamProgress>;
/// A message from the daemon to a stage.
using DaemonMessage =
    std::variant<ShardWork, JobConfigReply, CancelJob, RetryJob, JobEnd, StopStage>;

/// JSON of a message, "type" included.
[[nodiscard]] nlohmann::json to_json(const StageMessage& message);
[[nodiscard]] nlohmann::json to_json(const DaemonMessage& message);
/// JSON of counters.
[[nodiscard]] nlohmann::json to_json(const StageCounters& counters);

/// Parses a message. Throws azflow::Error (kInput) naming the type and the field for an unknown
/// type, a missing field or a field of the wrong type.
[[nodiscard]] StageMessage parse_stage_message(const nlohmann::json& j);
[[nodiscard]] DaemonMessage parse_daemon_message(const nlohmann::json& j);

/// The job a daemon message is about (0 for StopStage).
[[nodiscard]] std::int64_t job_of(const DaemonMessage& message);

}  // namespace azflow::daemon
