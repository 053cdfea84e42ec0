#pragma once
// Internal to azflow::source: a read-only memory mapping of a data file, so that stored chunks can
// be decoded where they lie in the page cache instead of being copied out first.
//
// SIGBUS: touching a mapped page that lies wholly past the file's current end kills the process.
// Callers check every range against size() (the mapped bytes) and, right before reading it,
// against current_size() (fstat now); a file truncated between that check and the read is the
// residual risk, documented at Dataset::chunk_view.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace azflow::source {

/// Owns a private read-only mapping (PROT_READ, MAP_PRIVATE) of a whole file and a duplicate of
/// the descriptor it came from. Move-only. An empty file is held with no mapping (size() 0).
class MappedFile {
 public:
  /// Maps the file open on descriptor `fd` (which is duplicated; the caller keeps `fd`). nullopt
  /// if the descriptor cannot be duplicated, is not a regular file, or cannot be mapped.
  [[nodiscard]] static std::optional<MappedFile> from_fd(int fd);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  /// The mapped bytes: the file as it was at the last (re)mapping.
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
    return {static_cast<const std::byte*>(data_), size_};
  }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }

  /// The file's size now (fstat on the held descriptor); nullopt if fstat fails.
  [[nodiscard]] std::optional<std::uint64_t> current_size() const noexcept;

  /// Makes the mapping cover bytes [0, end) if the file has grown that far since it was mapped
  /// (remapping: every span from bytes() is then invalid). False if the file is still shorter
  /// than `end` or cannot be remapped (the old mapping is then kept).
  [[nodiscard]] bool cover(std::uint64_t end);

  /// Asks the kernel to read bytes [offset, offset + size) ahead (MADV_WILLNEED); a hint only,
  /// clipped to the mapping.
  void will_need(std::size_t offset, std::size_t size) const noexcept;

 private:
  MappedFile(int fd, void* data, std::size_t size) noexcept : fd_(fd), data_(data), size_(size) {}
  void release() noexcept;

  int fd_ = -1;
  void* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace azflow::source
