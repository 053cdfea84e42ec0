#pragma once
// The reducer: turns per-frame partial sums, arriving in any order from any worker, into shard
// files (stages/reduce/shard_file.hpp), exactly once per frame.
//
// Input: one FrameResult per frame (ok: 4 x bins float64 sums; failed: a reason). A frame index
// already in its shard, or a frame of a shard that is not open (already committed, cancelled,
// unknown), is ignored and counted: redone frames after a stage crash count once.
// Output: the frame's finalized row (I, sigma float32) in its shard file, the shard's float64
// sums, and a "shard complete" signal; the owner then calls commit_shard().
// Memory: one ShardFileWriter (bins x 4 float64 sums) per open shard, plus one row buffer.
// Not thread-safe: one reducer thread.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stages/integrate/cpu_integrator.hpp"
#include "stages/reduce/shard_file.hpp"

namespace azflow::reduce {

/// One frame's result as the integrate stage delivers it.
struct FrameResult {
  std::int64_t job_id = 0;
  std::int64_t shard_id = 0;
  std::int64_t frame = 0;        ///< input frame index
  bool ok = false;               ///< false: failed, `reason` says why
  std::string_view reason;       ///< failed frames
  std::span<const double> sums;  ///< ok frames: signal, variance, normalization, count (4 x bins)
};

/// What add() did with a frame.
enum class AddOutcome {
  kWritten,    ///< new ok frame: row written
  kFailed,     ///< new failed frame: recorded with its reason
  kDuplicate,  ///< the frame was already in its shard: ignored
  kNotOpen,    ///< its shard is not open (done, cancelled or unknown): ignored
};

/// A committed shard: where it is and what it holds.
struct CommittedShard {
  std::filesystem::path path;
  std::size_t frames = 0;
  std::size_t failed = 0;
};

/// Counters, for the daemon's status.
struct ReducerCounters {
  std::uint64_t written = 0, failed = 0, duplicates = 0, not_open = 0, shards_committed = 0;
};

class Reducer {
 public:
  /// Opens shard (header.job_id, header.shard_id) in `dir` (a fresh .partial file); a shard
  /// already open is left as it is. Throws azflow::Error (kIo) if the file cannot be created.
  void open_shard(const std::filesystem::path& dir, const ShardFileHeader& header);
  /// Whether the shard is open.
  [[nodiscard]] bool is_open(std::int64_t job_id, std::int64_t shard_id) const;

  /// Adds one frame. For an ok frame with the wrong number of sums the frame is recorded as
  /// failed with a reason naming it. The finalized row of a written frame is in last_row() until
  /// the next add(). Throws azflow::Error (kIo) if the shard file cannot be written.
  AddOutcome add(const FrameResult& result);
  /// Whether every frame of the shard is in (false if not open).
  [[nodiscard]] bool complete(std::int64_t job_id, std::int64_t shard_id) const;
  /// Frames of an open shard not yet in (empty if not open).
  [[nodiscard]] std::vector<std::int64_t> missing(std::int64_t job_id, std::int64_t shard_id) const;
  /// Keys (job, shard) of every open shard.
  [[nodiscard]] std::vector<std::pair<std::int64_t, std::int64_t>> open_keys() const;
  /// Commits a complete shard (shard_file commit: fsync, rename to .done) and closes it.
  CommittedShard commit_shard(std::int64_t job_id, std::int64_t shard_id);
  /// Closes an open shard and hands its writer over, for the caller to commit() (for example
  /// outside a lock the reducer is under); counted as committed. Throws kInternal if not open.
  std::unique_ptr<ShardFileWriter> take_shard(std::int64_t job_id, std::int64_t shard_id);
  /// Closes every open shard of a job without committing (cancel, job failure), removing their
  /// .partial files.
  void drop_job(std::int64_t job_id);

  /// I and sigma (sigma empty without errors) of the last written frame.
  [[nodiscard]] std::span<const float> last_intensity() const noexcept { return intensity_; }
  [[nodiscard]] std::span<const float> last_sigma() const noexcept { return sigma_; }
  [[nodiscard]] const ReducerCounters& counters() const noexcept { return counters_; }
  [[nodiscard]] std::size_t open_shards() const noexcept { return shards_.size(); }

 private:
  using Key = std::pair<std::int64_t, std::int64_t>;
  AddOutcome add_ok(ShardFileWriter& shard, const FrameResult& result);

  std::map<Key, std::unique_ptr<ShardFileWriter>> shards_;
  integrate::BinSums frame_sums_;
  std::vector<float> intensity_, sigma_;
  ReducerCounters counters_;
};

}  // namespace azflow::reduce
