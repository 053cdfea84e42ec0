#include "stages/reduce/output_dir.hpp"

#include <fcntl.h>
#include <stdio.h>  // renameat2 (glibc >= 2.28)
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "base/error.hpp"

namespace azflow::reduce {

namespace {

[[noreturn]] void io_error(const std::string& what, int err) {
  throw Error(ErrorCategory::kIo, what + ": " + std::strerror(err));
}

std::string kind_of(const struct stat& st) {
  if (S_ISLNK(st.st_mode)) return "a symbolic link";
  if (S_ISDIR(st.st_mode)) return "a folder";
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  if (st.st_uid != ::geteuid()) return "a file of user " + std::to_string(st.st_uid);
  if (st.st_nlink != 1) return "a file with " + std::to_string(st.st_nlink) + " hard links";
  return "";
}

}  // namespace

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

FileId file_id(int fd, const std::string& what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) io_error("cannot stat " + what, errno);
  return {st.st_dev, st.st_ino};
}

std::string proc_fd_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

OutputDir::OutputDir(std::filesystem::path path, UniqueFd fd)
    : path_(std::move(path)), fd_(std::move(fd)), id_(file_id(fd_.get(), path_.string())) {}

std::shared_ptr<const OutputDir> OutputDir::open(const std::filesystem::path& folder) {
  const std::filesystem::path p = folder.empty() ? "." : folder;
  UniqueFd fd(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) io_error("cannot open output folder " + p.string(), errno);
  return std::shared_ptr<const OutputDir>(new OutputDir(p, std::move(fd)));
}

std::shared_ptr<const OutputDir> OutputDir::open_checked(const std::filesystem::path& folder,
                                                         const FileId* expected) {
  if (!folder.is_absolute()) {
    throw Error(ErrorCategory::kInternal, "output folder " + folder.string() + " is not absolute");
  }
  UniqueFd fd(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) io_error("cannot open /", errno);
  std::filesystem::path walked = "/";
  for (const auto& part : folder.relative_path()) {
    if (part.empty() || part == ".") continue;
    walked /= part;
    if (part == "..") {
      throw Error(ErrorCategory::kIo, "output folder " + folder.string() + " is not canonical");
    }
    UniqueFd next(
        ::openat(fd.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!next) {
      const int err = errno;
      if (err == ELOOP || err == ENOTDIR) {
        throw Error(ErrorCategory::kIo, "output folder " + folder.string() + ": " +
                                            walked.string() +
                                            " is now a symbolic link or not a folder (it was "
                                            "replaced after the job was queued); not written "
                                            "through it");
      }
      io_error("cannot open output folder " + walked.string(), err);
    }
    fd = std::move(next);
  }
  auto dir = std::shared_ptr<const OutputDir>(new OutputDir(folder, std::move(fd)));
  if (expected && !(dir->id() == *expected)) {
    throw Error(ErrorCategory::kIo, "output folder " + folder.string() +
                                        " is not the folder checked when the job was queued (it "
                                        "was replaced since); not written");
  }
  return dir;
}

std::string OutputDir::full(const std::string& name) const { return (path_ / name).string(); }

bool OutputDir::exists(const std::string& name) const {
  struct stat st {};
  return ::fstatat(fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

UniqueFd OutputDir::create(const std::string& name) const {
  if (name.empty() || name.find('/') != std::string::npos) {
    throw Error(ErrorCategory::kInternal, "output file name '" + name + "' is not a plain name");
  }
  constexpr int kFlags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  UniqueFd fd(::openat(fd_.get(), name.c_str(), kFlags, 0644));
  if (!fd && errno == EEXIST) {
    struct stat st {};
    if (::fstatat(fd_.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (const std::string kind = kind_of(st); !kind.empty()) {
        throw Error(ErrorCategory::kIo, "output file " + full(name) + " exists and is " + kind +
                                            ", not a file azflow left there: not written "
                                            "through it (remove it to write this output)");
      }
      if (::unlinkat(fd_.get(), name.c_str(), 0) != 0 && errno != ENOENT) {
        io_error("cannot remove the stale " + full(name), errno);
      }
    }
    fd = UniqueFd(::openat(fd_.get(), name.c_str(), kFlags, 0644));
  }
  if (!fd) io_error("cannot create output file " + full(name), errno);
  return fd;
}

void OutputDir::commit(const UniqueFd& file, const std::string& from, const std::string& to,
                       bool replace, bool sync) const {
  if (sync && ::fsync(file.get()) != 0) io_error("cannot fsync " + full(from), errno);
  struct stat st {};
  const FileId mine = file_id(file.get(), full(from));
  if (::fstatat(fd_.get(), from.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
      !(FileId{st.st_dev, st.st_ino} == mine)) {
    throw Error(ErrorCategory::kIo, full(from) +
                                        " is no longer the file azflow wrote (moved or replaced "
                                        "while writing); " +
                                        full(to) + " not written");
  }
  int rc = 0;
  if (replace) {
    rc = ::renameat(fd_.get(), from.c_str(), fd_.get(), to.c_str());
  } else {
    rc = ::renameat2(fd_.get(), from.c_str(), fd_.get(), to.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {  // no RENAME_NOREPLACE here (NFS)
      if (exists(to)) {
        errno = EEXIST;
      } else {
        rc = ::renameat(fd_.get(), from.c_str(), fd_.get(), to.c_str());
      }
    }
  }
  if (rc != 0) {
    const int err = errno;
    if (err == EEXIST) {
      throw Error(ErrorCategory::kConfig, "output " + full(to) +
                                              " appeared while writing and is not replaced "
                                              "(use --overwrite to replace it); result left in " +
                                              full(from));
    }
    io_error("cannot rename " + full(from) + " to " + full(to), err);
  }
  if (sync && ::fsync(fd_.get()) != 0)
    io_error("cannot fsync output folder " + path_.string(), errno);
}

void OutputDir::sync_all() const {
  if (::fsync(fd_.get()) != 0) io_error("cannot fsync output folder " + path_.string(), errno);
  if (::syncfs(fd_.get()) != 0) io_error("cannot sync the file system of " + path_.string(), errno);
}

}  // namespace azflow::reduce
