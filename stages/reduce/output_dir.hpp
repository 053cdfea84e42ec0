#pragma once
// Output files made without following links: a folder held open by a file descriptor, files
// created in it with openat(O_CREAT | O_EXCL | O_NOFOLLOW), checked with fstat/fstatat and moved
// to their final name with renameat (renameat2 RENAME_NOREPLACE unless the output may be
// replaced), then fsynced with their folder. A daemon running as root writes into folders its
// users own; this is what keeps a symbolic link, a hard link or a swapped folder planted by one
// of them from redirecting the write (docs/security.md, "Output files").

#include <sys/types.h>

#include <filesystem>
#include <memory>
#include <string>

namespace azflow::reduce {

/// Which file or folder an inode is: st_dev and st_ino (fstat(2)).
struct FileId {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const FileId&) const = default;
};

/// An open file descriptor, closed by the destructor. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
};

/// The identity of an open file. Throws azflow::Error (kIo) naming `what` if fstat fails.
FileId file_id(int fd, const std::string& what);

/// A folder that output files are made in, held open (O_RDONLY | O_DIRECTORY) for the writer's
/// lifetime: every name below is looked up in this folder, never through a path again.
class OutputDir {
 public:
  /// Opens `folder` as the calling user names it (symbolic links followed): `azflow integrate`,
  /// which runs as its user. Throws azflow::Error (kIo) naming the folder.
  static std::shared_ptr<const OutputDir> open(const std::filesystem::path& folder);

  /// Opens the absolute, canonical `folder` one component at a time from "/" with O_NOFOLLOW, so
  /// that no symbolic link is followed anywhere on the way. With `expected` set, the folder must
  /// still be that inode (recorded when the job was queued). Throws azflow::Error (kIo) naming the
  /// folder: a component that is now a symbolic link or no folder, or a folder replaced since.
  static std::shared_ptr<const OutputDir> open_checked(const std::filesystem::path& folder,
                                                       const FileId* expected);

  /// The folder's path (as given) and inode.
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] FileId id() const noexcept { return id_; }
  [[nodiscard]] int fd() const noexcept { return fd_.get(); }

  /// Whether anything (a file, a folder, a symbolic link, dangling or not) is named `name` here.
  [[nodiscard]] bool exists(const std::string& name) const;

  /// Creates `name` (a plain file name, no '/') read-write, mode 0644, with
  /// O_CREAT | O_EXCL | O_NOFOLLOW. An existing `name` that is a regular file of this process's
  /// user with no other hard link (what an earlier run of the same output leaves) is unlinked
  /// first; anything else there (a symbolic link, a file of another user or with other links, a
  /// folder) is refused. Throws azflow::Error (kIo) naming the file and what is in the way.
  [[nodiscard]] UniqueFd create(const std::string& name) const;

  /// Finishes a file made by create(): fsyncs it (when `sync`), checks that `from` still names
  /// that file (fstatat without following links), renames it to `to` in this folder and fsyncs
  /// the folder (when `sync`). Without `replace` an existing `to` is kept (renameat2
  /// RENAME_NOREPLACE; where the file system lacks it, a check just before renameat). Throws
  /// azflow::Error: kConfig if `to` exists and !replace, kIo otherwise, naming both files.
  void commit(const UniqueFd& file, const std::string& from, const std::string& to, bool replace,
              bool sync) const;

  /// fsyncs the folder and syncfs(2)es its file system (many files committed without sync).
  /// Throws azflow::Error (kIo).
  void sync_all() const;

 private:
  OutputDir(std::filesystem::path path, UniqueFd fd);
  [[nodiscard]] std::string full(const std::string& name) const;

  std::filesystem::path path_;
  UniqueFd fd_;
  FileId id_;
};

/// "/proc/self/fd/N": a name HDF5 (which opens files by name) can open that reaches exactly the
/// file `fd` is open on, whatever its name is now (the kernel's magic link, not a lookup).
std::string proc_fd_path(int fd);

}  // namespace azflow::reduce
