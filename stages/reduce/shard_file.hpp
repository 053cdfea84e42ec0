#pragma once
// A shard's durable results: one file per shard under the job's state folder, written by the
// daemon's reducer and read back when the job's NeXus output is assembled.
//
// Format (little-endian, fixed offsets, so rows can be written in any order with pwrite):
//   header  64 bytes: "AZSHARD1", u32 version (1), u32 flags (bit 0 with_errors, bit 1
//           with_clip_stats), i64 job_id, i64 shard_id,
//           i64 first_frame, i64 frame_count, i64 bins, 8 bytes zero
//   records frame_count x record, record k = frame first_frame + k:
//           u8 status (0 pending, 1 ok, 2 failed) + 7 bytes pad, I float32[bins],
//           sigma float32[bins] (only when with_errors), std float32[bins] and count
//           float32[bins] (only when with_clip_stats: sigma clipping), reason char[256]
//           (NUL-padded)
//   trailer the shard's sums over its ok frames, float64[bins] each: signal, variance,
//           normalization, count
// Life cycle: "<name>.partial" while written; ShardFileWriter::commit() writes the trailer,
// fsyncs, renames it to "<name>.done" and fsyncs the folder. A .partial file is never read.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stages/integrate/cpu_integrator.hpp"

namespace azflow::reduce {

/// Bytes of the reason field of a failed frame's record.
inline constexpr std::size_t kShardReasonBytes = 256;

/// Identity and shape of one shard file.
struct ShardFileHeader {
  std::int64_t job_id = 0;
  std::int64_t shard_id = 0;
  std::int64_t first_frame = 0;
  std::int64_t frame_count = 0;
  std::size_t bins = 0;
  bool with_errors = false;
  bool with_clip_stats = false;  ///< records also hold the sigma-clipping std and count
};

/// Paths of shard `shard_id` in `dir`: shard-<id>.partial and shard-<id>.done.
std::filesystem::path shard_partial_path(const std::filesystem::path& dir, std::int64_t shard_id);
std::filesystem::path shard_done_path(const std::filesystem::path& dir, std::int64_t shard_id);

/// Writes one shard file. Not thread-safe (the reducer owns it). Errors are azflow::Error (kIo)
/// naming the file; kInternal for a frame outside the shard or a row of the wrong size.
class ShardFileWriter {
 public:
  /// Creates (truncating) `dir`/shard-<id>.partial, sized for every record.
  ShardFileWriter(const std::filesystem::path& dir, const ShardFileHeader& header);
  ~ShardFileWriter();
  ShardFileWriter(const ShardFileWriter&) = delete;
  ShardFileWriter& operator=(const ShardFileWriter&) = delete;

  [[nodiscard]] const ShardFileHeader& header() const noexcept { return header_; }
  /// Whether input frame `frame` (absolute index) is already written or failed.
  [[nodiscard]] bool has(std::int64_t frame) const;
  /// Frames written or failed so far, and of them failed.
  [[nodiscard]] std::size_t frames_in() const noexcept { return frames_in_; }
  [[nodiscard]] std::size_t frames_failed() const noexcept { return frames_failed_; }
  [[nodiscard]] bool complete() const noexcept {
    return frames_in_ == static_cast<std::size_t>(header_.frame_count);
  }

  /// Records an ok frame: its finalized row (sigma empty unless with_errors) and its sums, which
  /// are added to the shard's (and with_clip_stats the std and count derived from them).
  /// Returns false (and writes nothing) if the frame is already in.
  bool write_ok(std::int64_t frame, std::span<const float> intensity, std::span<const float> sigma,
                const integrate::BinSums& sums);
  /// Records a failed frame with its reason (truncated to kShardReasonBytes - 1). Returns false if
  /// the frame is already in.
  bool write_failed(std::int64_t frame, std::string_view reason);

  /// Writes the sums trailer, fsyncs, closes and renames to shard-<id>.done (fsyncing the folder).
  /// Returns the .done path. Throws kInternal if the shard is not complete.
  std::filesystem::path commit();
  /// Closes and removes the .partial file (cancelled or failed job); no-op after commit().
  void discard() noexcept;

 private:
  [[nodiscard]] std::size_t slot_of(std::int64_t frame) const;
  void pwrite_all(const void* data, std::size_t bytes, std::size_t offset);
  void mark(std::size_t slot, std::uint8_t status);

  std::filesystem::path dir_;
  std::filesystem::path partial_;
  ShardFileHeader header_;
  int fd_ = -1;
  std::vector<std::uint8_t> state_;
  std::size_t frames_in_ = 0;
  std::size_t frames_failed_ = 0;
  integrate::BinSums sums_;
};

/// One frame's record read back.
struct ShardFrame {
  std::int64_t frame = 0;
  bool ok = false;
  std::vector<float> intensity, sigma;  ///< empty for failed frames
  std::vector<float> std_dev, count;    ///< with_clip_stats only (ok frames)
  std::string reason;                   ///< failed frames only
};

/// Reads a committed shard file one record at a time (memory: one row). Errors are
/// azflow::Error (kIo) naming the file if it cannot be read, kInput if it is truncated or its
/// header is not a shard file's.
class ShardFileReader {
 public:
  explicit ShardFileReader(const std::filesystem::path& path);
  ~ShardFileReader();
  ShardFileReader(const ShardFileReader&) = delete;
  ShardFileReader& operator=(const ShardFileReader&) = delete;

  [[nodiscard]] const ShardFileHeader& header() const noexcept { return header_; }
  /// Record k (0 <= k < frame_count) into `out`; kInput if the record is still pending.
  void read(std::size_t k, ShardFrame& out);
  /// The shard's sums (trailer).
  [[nodiscard]] integrate::BinSums sums();

 private:
  void pread_all(void* data, std::size_t bytes, std::size_t offset);

  std::filesystem::path path_;
  ShardFileHeader header_;
  int fd_ = -1;
};

}  // namespace azflow::reduce
