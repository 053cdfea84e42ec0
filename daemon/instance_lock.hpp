#pragma once
// One azflowd per instance: an exclusive flock(2) held for the daemon's lifetime, so that a second
// azflowd started by mistake (same instance name, or same state directory) stops with a clear
// error instead of removing the first one's shared-memory rings and sharing its job store.

#include <filesystem>
#include <string>
#include <vector>

namespace azflow::daemon {

/// Exclusive locks on a set of lock files, released (and the files left in place) when destroyed
/// or when the process dies, crash included (the kernel drops flock locks with the last fd).
class InstanceLock {
 public:
  /// Locks every file of `files` (created with mode 0644 if missing, parent directories too) with
  /// flock(LOCK_EX | LOCK_NB) and writes this process's pid into each. Throws azflow::Error
  /// (kResource) naming `what` (e.g. "instance 'default'"), the file and the pid found in it if
  /// another process holds one, or (kIo) naming the file if it cannot be opened.
  InstanceLock(const std::vector<std::filesystem::path>& files, const std::string& what);
  ~InstanceLock();
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

  /// The lock file of an instance's shared-memory namespace: /dev/shm/azflow-lock.<instance>
  /// (outside the "azflow.<instance>." prefix of its rings, so removing stale rings keeps it).
  static std::filesystem::path shm_lock_path(const std::string& instance);
  /// The lock file of a state directory: <state_dir>/azflowd.lock.
  static std::filesystem::path state_lock_path(const std::filesystem::path& state_dir);

 private:
  void close_all() noexcept;

  std::vector<int> fds_;
};

}  // namespace azflow::daemon
