#include "stages/reduce/shard_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "base/error.hpp"
#include "stages/integrate/sigma_clip.hpp"

namespace azflow::reduce {

namespace {

constexpr std::array<char, 8> kMagic{'A', 'Z', 'S', 'H', 'A', 'R', 'D', '1'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeaderBytes = 64;
constexpr std::size_t kStatusBytes = 8;
constexpr std::uint8_t kPending = 0, kOk = 1, kFailed = 2;

/// On-disk header, exactly kHeaderBytes.
struct RawHeader {
  std::array<char, 8> magic;
  std::uint32_t version;
  std::uint32_t with_errors;
  std::int64_t job_id, shard_id, first_frame, frame_count, bins, reserved;
};
static_assert(sizeof(RawHeader) == kHeaderBytes);

std::size_t record_bytes(const ShardFileHeader& h) {
  const std::size_t rows = 1 + (h.with_errors ? 1 : 0) + (h.with_clip_stats ? 2 : 0);
  return kStatusBytes + h.bins * sizeof(float) * rows + kShardReasonBytes;
}
std::size_t record_offset(const ShardFileHeader& h, std::size_t k) {
  return kHeaderBytes + k * record_bytes(h);
}
std::size_t trailer_offset(const ShardFileHeader& h) {
  return record_offset(h, static_cast<std::size_t>(h.frame_count));
}

[[noreturn]] void io_error(const std::filesystem::path& path, const std::string& what) {
  throw Error(ErrorCategory::kIo,
              "shard file " + path.string() + ": " + what + ": " + std::strerror(errno));
}

void fsync_dir(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::filesystem::path shard_path(const std::filesystem::path& dir, std::int64_t id,
                                 const char* ext) {
  return dir / ("shard-" + std::to_string(id) + ext);
}

}  // namespace

std::filesystem::path shard_partial_path(const std::filesystem::path& dir, std::int64_t shard_id) {
  return shard_path(dir, shard_id, ".partial");
}
std::filesystem::path shard_done_path(const std::filesystem::path& dir, std::int64_t shard_id) {
  return shard_path(dir, shard_id, ".done");
}

// ---------------------------------------------------------------- writer

ShardFileWriter::ShardFileWriter(const std::filesystem::path& dir, const ShardFileHeader& header)
    : dir_(dir), partial_(shard_partial_path(dir, header.shard_id)), header_(header) {
  if (header.frame_count <= 0 || header.bins == 0) {
    throw Error(ErrorCategory::kInternal, "shard file " + partial_.string() + ": empty shard");
  }
  fd_ = ::open(partial_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) io_error(partial_, "cannot create");
  const std::size_t total = trailer_offset(header_) + 4 * header_.bins * sizeof(double);
  if (::ftruncate(fd_, static_cast<off_t>(total)) != 0) io_error(partial_, "cannot size");
  RawHeader raw{kMagic,
                kVersion,
                (header.with_errors ? 1u : 0u) | (header.with_clip_stats ? 2u : 0u),
                header.job_id,
                header.shard_id,
                header.first_frame,
                header.frame_count,
                static_cast<std::int64_t>(header.bins),
                0};
  pwrite_all(&raw, sizeof raw, 0);
  state_.assign(static_cast<std::size_t>(header.frame_count), kPending);
  sums_.reset(header.bins);
}

ShardFileWriter::~ShardFileWriter() {
  if (fd_ >= 0) ::close(fd_);
}

std::size_t ShardFileWriter::slot_of(std::int64_t frame) const {
  if (frame < header_.first_frame || frame >= header_.first_frame + header_.frame_count) {
    throw Error(ErrorCategory::kInternal, "shard file " + partial_.string() + ": frame " +
                                              std::to_string(frame) + " is not in the shard");
  }
  return static_cast<std::size_t>(frame - header_.first_frame);
}

bool ShardFileWriter::has(std::int64_t frame) const { return state_[slot_of(frame)] != kPending; }

void ShardFileWriter::pwrite_all(const void* data, std::size_t bytes, std::size_t offset) {
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd_, p, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) io_error(partial_, "write failed");
    p += n;
    bytes -= static_cast<std::size_t>(n);
    offset += static_cast<std::size_t>(n);
  }
}

void ShardFileWriter::mark(std::size_t slot, std::uint8_t status) {
  std::array<std::uint8_t, kStatusBytes> bytes{};
  bytes[0] = status;
  pwrite_all(bytes.data(), bytes.size(), record_offset(header_, slot));
  state_[slot] = status;
  ++frames_in_;
  if (status == kFailed) ++frames_failed_;
}

bool ShardFileWriter::write_ok(std::int64_t frame, std::span<const float> intensity,
                               std::span<const float> sigma, const integrate::BinSums& sums) {
  const std::size_t slot = slot_of(frame);
  if (state_[slot] != kPending) return false;
  if (intensity.size() != header_.bins || sums.bins() != header_.bins ||
      sigma.size() != (header_.with_errors ? header_.bins : 0)) {
    throw Error(ErrorCategory::kInternal, "shard file " + partial_.string() + ": frame " +
                                              std::to_string(frame) + " has the wrong bin count");
  }
  const std::size_t at = record_offset(header_, slot) + kStatusBytes;
  pwrite_all(intensity.data(), intensity.size_bytes(), at);
  if (!sigma.empty()) pwrite_all(sigma.data(), sigma.size_bytes(), at + intensity.size_bytes());
  if (header_.with_clip_stats) {
    std::vector<float> stats;
    integrate::clipped_std(sums, stats, 0.0f);
    stats.insert(stats.end(), sums.count.begin(), sums.count.end());
    pwrite_all(stats.data(), stats.size() * sizeof(float),
               at + intensity.size_bytes() + sigma.size_bytes());
  }
  sums_.add(sums);
  mark(slot, kOk);
  return true;
}

bool ShardFileWriter::write_failed(std::int64_t frame, std::string_view reason) {
  const std::size_t slot = slot_of(frame);
  if (state_[slot] != kPending) return false;
  std::array<char, kShardReasonBytes> text{};
  std::copy_n(reason.data(), std::min(reason.size(), text.size() - 1), text.data());
  const std::size_t at = record_offset(header_, slot) + record_bytes(header_) - kShardReasonBytes;
  pwrite_all(text.data(), text.size(), at);
  mark(slot, kFailed);
  return true;
}

std::filesystem::path ShardFileWriter::commit() {
  if (!complete()) {
    throw Error(ErrorCategory::kInternal,
                "shard file " + partial_.string() + ": commit before every frame is in");
  }
  std::size_t at = trailer_offset(header_);
  for (const auto* v : {&sums_.signal, &sums_.variance, &sums_.normalization, &sums_.count}) {
    pwrite_all(v->data(), v->size() * sizeof(double), at);
    at += header_.bins * sizeof(double);
  }
  if (::fsync(fd_) != 0) io_error(partial_, "fsync failed");
  ::close(fd_);
  fd_ = -1;
  const std::filesystem::path done = shard_done_path(dir_, header_.shard_id);
  if (::rename(partial_.c_str(), done.c_str()) != 0) io_error(partial_, "rename failed");
  fsync_dir(dir_);
  return done;
}

void ShardFileWriter::discard() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  ::unlink(partial_.c_str());
}

// ---------------------------------------------------------------- reader

ShardFileReader::ShardFileReader(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) io_error(path, "cannot open");
  RawHeader raw{};
  pread_all(&raw, sizeof raw, 0);
  if (raw.magic != kMagic || raw.version != kVersion || raw.frame_count <= 0 || raw.bins <= 0) {
    throw Error(ErrorCategory::kInput, "shard file " + path.string() + ": not a shard file");
  }
  header_ = {raw.job_id,
             raw.shard_id,
             raw.first_frame,
             raw.frame_count,
             static_cast<std::size_t>(raw.bins),
             (raw.with_errors & 1u) != 0,
             (raw.with_errors & 2u) != 0};
  struct stat st {};
  const std::size_t total = trailer_offset(header_) + 4 * header_.bins * sizeof(double);
  if (::fstat(fd_, &st) != 0 || static_cast<std::size_t>(st.st_size) < total) {
    throw Error(ErrorCategory::kInput, "shard file " + path.string() + ": truncated");
  }
}

ShardFileReader::~ShardFileReader() {
  if (fd_ >= 0) ::close(fd_);
}

void ShardFileReader::pread_all(void* data, std::size_t bytes, std::size_t offset) {
  auto* p = static_cast<char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::pread(fd_, p, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) io_error(path_, "read failed");
    if (n == 0) throw Error(ErrorCategory::kInput, "shard file " + path_.string() + ": truncated");
    p += n;
    bytes -= static_cast<std::size_t>(n);
    offset += static_cast<std::size_t>(n);
  }
}

void ShardFileReader::read(std::size_t k, ShardFrame& out) {
  const std::size_t at = record_offset(header_, k);
  std::array<std::uint8_t, kStatusBytes> status{};
  pread_all(status.data(), status.size(), at);
  out.frame = header_.first_frame + static_cast<std::int64_t>(k);
  out.ok = status[0] == kOk;
  out.intensity.clear();
  out.sigma.clear();
  out.std_dev.clear();
  out.count.clear();
  out.reason.clear();
  if (status[0] == kOk) {
    out.intensity.resize(header_.bins);
    pread_all(out.intensity.data(), header_.bins * sizeof(float), at + kStatusBytes);
    if (header_.with_errors) {
      out.sigma.resize(header_.bins);
      pread_all(out.sigma.data(), header_.bins * sizeof(float),
                at + kStatusBytes + header_.bins * sizeof(float));
    }
    if (header_.with_clip_stats) {
      const std::size_t rows = header_.with_errors ? 2 : 1;
      out.std_dev.resize(header_.bins);
      out.count.resize(header_.bins);
      const std::size_t std_at = at + kStatusBytes + rows * header_.bins * sizeof(float);
      pread_all(out.std_dev.data(), header_.bins * sizeof(float), std_at);
      pread_all(out.count.data(), header_.bins * sizeof(float),
                std_at + header_.bins * sizeof(float));
    }
  } else if (status[0] == kFailed) {
    std::array<char, kShardReasonBytes> text{};
    pread_all(text.data(), text.size(), at + record_bytes(header_) - kShardReasonBytes);
    out.reason.assign(text.data(), strnlen(text.data(), text.size()));
  } else {
    throw Error(ErrorCategory::kInput, "shard file " + path_.string() + ": frame " +
                                           std::to_string(out.frame) + " was never written");
  }
}

integrate::BinSums ShardFileReader::sums() {
  integrate::BinSums s;
  s.reset(header_.bins);
  std::size_t at = trailer_offset(header_);
  for (auto* v : {&s.signal, &s.variance, &s.normalization, &s.count}) {
    pread_all(v->data(), header_.bins * sizeof(double), at);
    at += header_.bins * sizeof(double);
  }
  return s;
}

}  // namespace azflow::reduce
