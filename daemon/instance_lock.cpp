#include "daemon/instance_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "base/error.hpp"

namespace azflow::daemon {

namespace {

std::string pid_in(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string pid;
  in >> pid;
  return pid.empty() ? "unknown" : pid;
}

}  // namespace

InstanceLock::InstanceLock(const std::vector<std::filesystem::path>& files,
                           const std::string& what) {
  for (const auto& file : files) {
    std::error_code ec;
    if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
    const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      const int err = errno;
      close_all();
      throw Error(ErrorCategory::kIo,
                  "cannot open lock file " + file.string() + ": " + std::strerror(err));
    }
    fds_.push_back(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const std::string holder = pid_in(file);
      close_all();
      if (err == EWOULDBLOCK) {
        throw Error(ErrorCategory::kResource, "another azflowd (pid " + holder + ") already runs " +
                                                  what + ": " + file.string() + " is locked");
      }
      throw Error(ErrorCategory::kIo, "cannot lock " + file.string() + ": " + std::strerror(err));
    }
    const std::string pid = std::to_string(::getpid()) + "\n";
    // The pid only serves a second daemon's error message; a failed write is harmless.
    const bool written = ::ftruncate(fd, 0) == 0 && ::pwrite(fd, pid.data(), pid.size(), 0) ==
                                                        static_cast<ssize_t>(pid.size());
    (void)written;
  }
}

InstanceLock::~InstanceLock() { close_all(); }

void InstanceLock::close_all() noexcept {
  for (const int fd : fds_) ::close(fd);  // closing the last descriptor releases the flock
  fds_.clear();
}

std::filesystem::path InstanceLock::shm_lock_path(const std::string& instance) {
  return std::filesystem::path("/dev/shm") / ("azflow-lock." + instance);
}

std::filesystem::path InstanceLock::state_lock_path(const std::filesystem::path& state_dir) {
  return state_dir / "azflowd.lock";
}

}  // namespace azflow::daemon
