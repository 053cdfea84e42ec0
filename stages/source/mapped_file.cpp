#include "stages/source/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

namespace azflow::source {
namespace {

// Maps `size` bytes of `fd` read-only; nullptr for an empty file, MAP_FAILED on failure.
void* map(int fd, std::size_t size) {
  if (size == 0) return nullptr;
  return mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
}

std::optional<std::uint64_t> file_size(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0) return std::nullopt;
  return static_cast<std::uint64_t>(st.st_size);
}

}  // namespace

std::optional<MappedFile> MappedFile::from_fd(int fd) {
  const int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) return std::nullopt;
  const auto size = file_size(own);
  void* data = size ? map(own, static_cast<std::size_t>(*size)) : MAP_FAILED;
  if (data == MAP_FAILED) {
    close(own);
    return std::nullopt;
  }
  return MappedFile(own, data, static_cast<std::size_t>(*size));
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

MappedFile::~MappedFile() { release(); }

void MappedFile::release() noexcept {
  if (data_ != nullptr) munmap(data_, size_);
  if (fd_ >= 0) close(fd_);
  data_ = nullptr;
  size_ = 0;
  fd_ = -1;
}

std::optional<std::uint64_t> MappedFile::current_size() const noexcept { return file_size(fd_); }

bool MappedFile::cover(std::uint64_t end) {
  if (end <= size_) return true;
  const auto now = current_size();
  if (!now || *now < end) return false;
  const auto size = static_cast<std::size_t>(*now);
  void* data = map(fd_, size);
  if (data == MAP_FAILED) return false;
  if (data_ != nullptr) munmap(data_, size_);
  data_ = data;
  size_ = size;
  return true;
}

void MappedFile::will_need(std::size_t offset, std::size_t size) const noexcept {
  if (data_ == nullptr || offset >= size_) return;
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t start = offset / page * page;
  const std::size_t end = size_ - offset < size ? size_ : offset + size;
  madvise(static_cast<std::byte*>(data_) + start, end - start, MADV_WILLNEED);
}

}  // namespace azflow::source
