#pragma once
// The result sink: the daemon's part that turns per-frame results into shard files and job
// outputs, on its own threads, so that the main loop (control endpoint, scheduler, stage links)
// never waits for the disk.
//
// Two SerialWorker threads:
//   reducer thread: per frame, Reducer::add (a row into its shard file), the live PUB
//     publication, and, when a shard is complete, its commit (fsync, rename to .done).
//   output thread:  assembly of a job's NeXus output from its committed shards (seconds for a
//     large 2D cake), then removal of the shard files of a succeeded job.
// The main loop hands work over (add, assemble) and reads back what happened with take_events(),
// in the order it happened: a frame's failure before its shard's commit, a shard's commit before
// anything about a later shard. It records them in the job store itself, so the store keeps its
// order: a shard file is renamed to .done before the store marks the shard done (crash recovery,
// daemon/job_store.hpp). Queries (is_open, missing, counters) answer from the reducer under a
// mutex that the reducer thread holds only for one frame's add, never during a commit.
//
// Memory: the reducer thread's queue holds ring slots (bounded by the results ring) and peer rows
// (bounded by kMaxQueuedRows: add() then blocks the caller).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "daemon/frame_origin.hpp"
#include "daemon/job_spec.hpp"
#include "daemon/job_store.hpp"
#include "daemon/serial_worker.hpp"
#include "ipc/ring.hpp"
#include "stages/reduce/reducer.hpp"

namespace azflow::daemon {

/// A frame that failed, to be recorded in the job store (FrameErrorRecord).
struct FrameFailedEvent {
  std::int64_t job = 0, shard = 0, frame = 0;
  std::string reason;
};

/// A shard whose file was committed (.done), or whose commit failed (`error` non-empty).
struct ShardCommittedEvent {
  std::int64_t job = 0, shard = 0;
  std::size_t frames = 0, failed = 0;
  std::string error;
};

/// A job whose output was assembled (or could not be): its final state and reason.
struct OutputWrittenEvent {
  std::int64_t job = 0;
  JobState state = JobState::kSucceeded;
  std::string reason;
};

/// What the sink reports to the main loop.
using SinkEvent = std::variant<FrameFailedEvent, ShardCommittedEvent, OutputWrittenEvent>;

/// One frame's result owned by the caller's copy (a peer's row), for ResultSink::add.
struct OwnedFrameResult {
  std::int64_t job_id = 0, shard_id = 0, frame = 0;
  bool ok = false;
  std::string reason;        ///< failed frames
  std::vector<double> sums;  ///< ok frames: 4 x bins (signal, variance, normalization, count)
};

/// Everything the output thread needs to write one job's output (daemon/job_output.hpp) and
/// decide its final state.
struct OutputTask {
  std::int64_t job_id = 0;
  JobSpec spec;
  std::int64_t frames_total = 0;
  std::filesystem::path dir;  ///< <state>/jobs/<id>: the .done shard files
  std::vector<ShardRecord> shards;
  nlohmann::json axes;  ///< plan_axes_json
  std::string output;
  bool finish = false;                    ///< true: the final file; false: "<output>.partial"
  JobState state = JobState::kSucceeded;  ///< the state the job ends in if the output is written
  std::string reason;
};

class ResultSink {
 public:
  /// Binds the live PUB endpoint (`live_endpoint`, high-water mark `live_hwm` messages) and starts
  /// the threads. `delay_per_frame` > 0 slows the reducer (a test hook). Throws zmq::error_t if
  /// the endpoint cannot be bound.
  ResultSink(zmq::context_t& context, const std::string& live_endpoint, int live_hwm,
             std::chrono::milliseconds delay_per_frame);
  /// Finishes every task handed over, then stops the threads.
  ~ResultSink();
  ResultSink(const ResultSink&) = delete;
  ResultSink& operator=(const ResultSink&) = delete;

  /// Registers a job: its radial unit's name and its axes when known (live publication), and
  /// where its frames come from (a failed frame's reason names its own file and dataset).
  void set_job(std::int64_t job, std::string unit, std::optional<nlohmann::json> axes,
               FrameOrigins origins);
  /// The job's plan axes arrived (published with the next frame).
  void set_axes(std::int64_t job, const nlohmann::json& axes);

  /// Reducer::open_shard, now (not queued); a shard being committed counts as open (its file is
  /// not touched). Throws azflow::Error (kIo).
  void open_shard(const std::filesystem::path& dir, const reduce::ShardFileHeader& header);
  /// Reducer::drop_job now, and forgets the job's live state; frames of it still queued are
  /// then ignored (not open).
  void drop_job(std::int64_t job);
  /// Whether the shard is open or being committed (until its ShardCommittedEvent is taken).
  [[nodiscard]] bool is_open(std::int64_t job, std::int64_t shard) const;
  /// Frames of an open shard not yet reduced (empty if not open or being committed).
  [[nodiscard]] std::vector<std::int64_t> missing(std::int64_t job, std::int64_t shard) const;
  [[nodiscard]] std::vector<std::pair<std::int64_t, std::int64_t>> open_keys() const;
  [[nodiscard]] std::size_t open_shards() const;
  [[nodiscard]] reduce::ReducerCounters counters() const;
  /// Frames of the job reduced (ok or failed, duplicates not counted) in shards whose commit the
  /// main loop has not taken yet: the job store's frames_done plus this is the job's frame-exact
  /// progress (the store counts a shard only when it is done).
  [[nodiscard]] std::int64_t frames_pending(std::int64_t job) const;

  /// Queues a results-ring slot (released once reduced). A failed slot with status kCancelled is
  /// ignored: it was left in the rings by a cancel of its job.
  void add(ipc::ReadSlot slot);
  /// Queues a result that arrived some other way (a peer's row).
  void add(OwnedFrameResult result);
  /// Queues the assembly of a job's output; an OutputWrittenEvent follows.
  void assemble(OutputTask task);

  /// Events since the last call, in order.
  [[nodiscard]] std::vector<SinkEvent> take_events();
  /// Blocks until every slot and row handed over is reduced and released (before the rings are
  /// removed).
  void wait_reducer_idle();
  /// Blocks until every task handed over (frames and outputs) has run.
  void wait_idle();

  /// Peer rows queued at most before add() blocks.
  static constexpr std::size_t kMaxQueuedRows = 4096;

 private:
  struct LiveJob {
    std::string unit;
    std::optional<nlohmann::json> axes;
    FrameOrigins origins;
    /// When a header last carried the axes (none yet: they go with the next frame published).
    std::optional<std::chrono::steady_clock::time_point> axes_sent;
  };
  void reduce(reduce::FrameResult result);
  void commit(std::unique_ptr<reduce::ShardFileWriter> shard);
  void publish(std::int64_t job, std::int64_t frame, bool ok, std::string_view reason);
  void write_output(const OutputTask& task);
  void push(SinkEvent event);

  zmq::socket_t live_;  // used by the reducer thread only (after the constructor)
  std::chrono::milliseconds delay_;
  mutable std::mutex mutex_;  // reducer_ and live_jobs_
  reduce::Reducer reducer_;
  std::map<std::int64_t, LiveJob> live_jobs_;
  std::set<std::pair<std::int64_t, std::int64_t>> committing_;  // taken out, event not yet taken
  std::map<std::int64_t, std::int64_t> pending_;  // job -> frames_pending (under mutex_)
  std::mutex events_mutex_;
  std::vector<SinkEvent> events_;
  // last: their threads use the members above, and are joined first
  SerialWorker output_thread_{"output", 1024};
  SerialWorker reducer_thread_{"reducer", kMaxQueuedRows};
};

}  // namespace azflow::daemon
