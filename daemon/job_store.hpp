#pragma once
// Durable job and shard state: an SQLite database (WAL journal) under the state directory.
//
// Durability: journal_mode=WAL with synchronous=FULL, so that a call that returned (a shard
// marked done, a job added) survives a power loss as well as a crash of the daemon; the
// daemon writes a few rows per shard (50 frames), so the fsync per commit costs nothing
// measurable, and shard files renamed to .done before mark_shard_done must not end up
// "undone" in the database after a power cut (that would be redone: correct, but wasted).
//
// Thread safety: every method is safe to call from any thread; one connection per JobStore,
// serialised by an internal mutex. Several JobStore objects (threads or processes) may open the
// same file: WAL lets readers run while one writer commits (busy timeout 5 s for writers).

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/job_spec.hpp"

struct sqlite3;

namespace azflow::daemon {

/// Life cycle of a job: queued -> running -> succeeded | warning (some frames failed) | failed |
/// cancelled (queued/running -> cancelled at any time).
enum class JobState { kQueued, kRunning, kSucceeded, kWarning, kFailed, kCancelled };

/// "queued", "running", "succeeded", "warning", "failed", "cancelled".
std::string_view job_state_name(JobState state) noexcept;
/// Parses a job state name.
std::optional<JobState> parse_job_state(std::string_view name) noexcept;
/// True for succeeded, warning, failed and cancelled.
bool is_final(JobState state) noexcept;

/// A shard's state: queued -> running -> done (running -> queued after a crash).
enum class ShardState { kQueued, kRunning, kDone };
/// "queued", "running", "done".
std::string_view shard_state_name(ShardState state) noexcept;

/// A shard as the scheduler cuts it: frames [first_frame, first_frame + frame_count) of the job
/// (frame indices count across the job's datasets in order).
struct ShardPlan {
  std::int64_t shard_id = 0;  ///< 0..n-1 within the job
  std::int64_t first_frame = 0;
  std::int64_t frame_count = 0;
};

/// A shard row.
struct ShardRecord {
  std::int64_t job_id = 0;
  std::int64_t shard_id = 0;
  std::int64_t first_frame = 0;
  std::int64_t frame_count = 0;
  ShardState state = ShardState::kQueued;
  std::int64_t frames_done = 0;    ///< frames written (ok or failed) when done
  std::int64_t frames_failed = 0;  ///< of which failed
  std::int64_t attempts = 0;       ///< times marked running
};

/// A job row. Timestamps are Unix time in milliseconds; std::nullopt until set.
struct JobRecord {
  std::int64_t id = 0;
  JobState state = JobState::kQueued;
  JobSpec spec;
  std::string output_path;
  std::int64_t frames_total = 0;
  std::int64_t frames_done = 0;    ///< sum over done shards (ok + failed frames)
  std::int64_t frames_failed = 0;  ///< sum over done shards
  std::string error;               ///< why the job failed or ended with a warning ("" = none)
  std::int64_t created_unix_ms = 0;
  std::optional<std::int64_t> started_unix_ms;
  std::optional<std::int64_t> finished_unix_ms;
  std::int64_t priority = 0;        ///< higher runs first among queued jobs (ties: lower id first)
  std::vector<std::int64_t> after;  ///< jobs that must succeed before this one starts (afterok)
};

/// Totals over every job in the store (for `stats`).
struct StoreTotals {
  std::map<JobState, std::int64_t> jobs_by_state;  ///< states with no job are absent
  std::int64_t frames_done = 0;                    ///< sum of frames_done over all jobs
  std::int64_t frames_failed = 0;                  ///< sum of frames_failed over all jobs
};

/// What `retry` re-runs: new shards for failed frames of done shards, plus every shard not done.
struct RetryPlan {
  std::vector<ShardPlan> new_shards;         ///< shard ids continue after the job's last shard
  std::int64_t frames_from_done_shards = 0;  ///< failed frames moved out of the job's counts
};

/// A frame that failed, with the reason the stage gave.
struct FrameErrorRecord {
  std::int64_t job_id = 0;
  std::int64_t frame_index = 0;
  std::string reason;
};

/// The job store. Every SQL failure throws azflow::Error (kIo) naming the database file and what
/// the statement was for; an unknown job or shard id throws azflow::Error (kInput).
class JobStore {
 public:
  /// Opens (creating if needed, with its parent directories) the database at `db_path` and
  /// creates the schema if absent.
  explicit JobStore(std::filesystem::path db_path);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  /// The database file of a state directory: <state_dir>/jobs.sqlite.
  static std::filesystem::path path_in(const std::filesystem::path& state_dir);

  /// Adds a queued job and its queued shards in one transaction; returns the new job id (> 0).
  /// `spec.output_path` is stored as the job's output path.
  /// `after` lists jobs that must succeed first (stored in the job_deps table).
  std::int64_t add_job(const JobSpec& spec, std::int64_t frames_total,
                       std::span<const ShardPlan> shards, std::int64_t priority = 0,
                       std::span<const std::int64_t> after = {});

  /// Counts of jobs by state and frame sums over every job.
  [[nodiscard]] StoreTotals totals() const;

  /// Makes a final job queued again for `retry`, in one transaction: adds `plan.new_shards`,
  /// sets running shards queued, removes the frame errors of every frame about to be redone
  /// (those of the new shards and of shards not done), subtracts
  /// `plan.frames_from_done_shards` from frames_done and frames_failed, clears error, started
  /// and finished. Throws kInput for an unknown job.
  void requeue_for_retry(std::int64_t job_id, const RetryPlan& plan);

  /// The job, or std::nullopt if there is none with that id.
  [[nodiscard]] std::optional<JobRecord> job(std::int64_t id) const;
  /// Jobs in `state`, oldest first.
  [[nodiscard]] std::vector<JobRecord> jobs_in_state(JobState state) const;
  /// Jobs newest first: with `state` only those, else unfinished ones plus, if `all`, finished
  /// ones too; at most `limit`.
  [[nodiscard]] std::vector<JobRecord> list(std::optional<JobState> state, bool all,
                                            std::size_t limit = 1000) const;

  /// Sets a job's state (and error text if not empty); running sets started_unix_ms (once), a
  /// final state sets finished_unix_ms. Throws kInput for an unknown job.
  void set_job_state(std::int64_t id, JobState state, std::string_view error = {});
  /// Sets the output path (e.g. the daemon's default location chosen after add_job).
  void set_output_path(std::int64_t id, const std::string& output_path);
  /// A stream job's start message arrived: stores its spec (with spec.stream->series), its
  /// frame count, and that count as the frame_count of its one shard (shard 0, first frame 0),
  /// in one transaction. Throws kInput for an unknown job or shard.
  void size_stream_job(std::int64_t id, const JobSpec& spec, std::int64_t frames_total);

  /// Shard -> running, attempts + 1. Throws kInput for an unknown shard.
  void mark_shard_running(std::int64_t job_id, std::int64_t shard_id);
  /// Shard -> done with its counts, and the job's frames_done/frames_failed increased by them,
  /// in one transaction. Returns false (and changes nothing) if the shard was already done, so a
  /// shard is never counted twice. Throws kInput for an unknown shard.
  bool mark_shard_done(std::int64_t job_id, std::int64_t shard_id, std::int64_t frames_done,
                       std::int64_t frames_failed);
  /// Shard running -> queued (its stage crashed; to be redone). No-op for a done shard.
  void requeue_shard(std::int64_t job_id, std::int64_t shard_id);
  /// Every shard of a job, by shard id.
  [[nodiscard]] std::vector<ShardRecord> shards(std::int64_t job_id) const;
  /// Shards of a job not done (queued or running), by shard id.
  [[nodiscard]] std::vector<ShardRecord> unfinished_shards(std::int64_t job_id) const;

  /// Records a failed frame (a second record for the same frame replaces the first).
  void record_frame_error(std::int64_t job_id, std::int64_t frame_index, std::string_view reason);
  /// Failed frames of a job by frame index, at most `limit`.
  [[nodiscard]] std::vector<FrameErrorRecord> frame_errors(std::int64_t job_id,
                                                           std::size_t limit = 1000) const;

  /// After a daemon crash: every running shard -> queued. Returns how many were requeued.
  std::size_t requeue_running_shards_on_startup();

  /// The database file.
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  class Statement;
  void create_schema();
  void migrate(std::int64_t from_version);
  void exec(const char* sql, std::string_view purpose) const;
  [[noreturn]] void fail(std::string_view purpose) const;
  [[noreturn]] void no_shard(std::int64_t job_id, std::int64_t shard_id) const;

  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
  mutable std::mutex mutex_;
};

}  // namespace azflow::daemon
