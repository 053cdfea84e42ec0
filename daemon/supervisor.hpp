#pragma once
// The supervisor: starts azflowd's stage processes (azflow-stage, found next to azflowd), notices
// when one exits (waitpid, polled by the daemon's main loop), and restarts it.
//
// Each stage slot (role, worker) has at most one live process. Children get PR_SET_PDEATHSIG
// SIGKILL, so a daemon killed with SIGKILL never leaves stage processes behind. What to do about
// the frames a dead stage held (Ring::reclaim) is the daemon's business: reap() reports the exit
// and the daemon calls restart().

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/stage_link.hpp"

namespace azflow::daemon {

/// One supervised stage process slot.
struct StageSlot {
  std::string role;
  std::size_t worker = 0;
  pid_t pid = 0;             ///< 0 while not running
  std::size_t restarts = 0;  ///< times restarted after an unexpected exit
  /// When its recent crashes happened (those within the restart window, see note_crash).
  std::deque<std::chrono::steady_clock::time_point> crashes;
  /// Set while a restart waits out a back-off (too many crashes within the window).
  std::optional<std::chrono::steady_clock::time_point> restart_at;
  std::string identity;    ///< ZeroMQ routing id of its link (after hello), "" before
  StageCounters counters;  ///< from its last heartbeat
  std::chrono::steady_clock::time_point started, last_seen;
  std::string last_exit;  ///< how the previous process ended ("" if none)
  /// azflow-stage --device value (integrate: "cpu" or a CUDA ordinal "N"; others "cpu").
  std::string device_arg = "cpu";
  /// Where it computes, "cpu" or "cuda:N": from device_arg, then as its hello/heartbeat reports.
  std::string device = "cpu";
};

/// What the stage processes are started with.
struct StageLaunch {
  std::filesystem::path executable;  ///< azflow-stage
  std::string instance;
  std::string endpoint;  ///< the daemon's internal stage endpoint
  std::size_t heartbeat_ms = 1000;
  std::string log_level = "info";
  /// Integrate stages: --plan-cache (the node's plan folder, "" = none) and --plan-cache-max-mb.
  std::filesystem::path plan_dir{};
  std::size_t plan_cache_max_mb = 4096;
};

/// A stage process that exited.
struct StageExit {
  std::size_t slot = 0;  ///< index into slots()
  pid_t pid = 0;
  std::string how;  ///< "exit status N" or "killed by signal N"
};

class Supervisor {
 public:
  /// Plans 1 source, `decompress` decompress and `integrate` integrate slots (nothing started).
  Supervisor(StageLaunch launch, std::size_t decompress, std::size_t integrate);
  /// As above with one integrate slot per element of `integrate_devices`, each started with
  /// `--device` that value ("cpu" or a CUDA ordinal, see gpu_placement.hpp).
  Supervisor(StageLaunch launch, std::size_t decompress,
             const std::vector<std::string>& integrate_devices);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  /// azflow-stage next to this process's executable (/proc/self/exe). Throws azflow::Error
  /// (kConfig) naming the path if it is missing or not executable.
  static std::filesystem::path stage_executable();

  /// Starts every slot that has no process. Throws azflow::Error (kResource) if fork fails.
  void start_all();
  /// Starts slot `slot` again after an exit (counts a restart).
  void restart(std::size_t slot);
  /// Records a crash of slot `slot` at `now`, forgets its crashes older than `window`, and
  /// returns when it may start again: `now` while at most `limit` crashes lie within the window,
  /// else `now` plus a back-off of 1 s doubling with each crash past the limit, at most `window`.
  std::chrono::steady_clock::time_point note_crash(std::size_t slot,
                                                   std::chrono::steady_clock::time_point now,
                                                   std::chrono::seconds window, std::size_t limit);
  /// Forgets the crash of slot `slot` recorded at `at` (a poison shard's crash: the shard is
  /// failed, so the crash does not count against the slot's restart limit).
  void forget_crash(std::size_t slot, std::chrono::steady_clock::time_point at);
  /// Collects exited children (non-blocking) and marks their slots not running.
  std::vector<StageExit> reap();
  /// SIGTERM to every process, waits up to `grace`, then SIGKILLs and reaps the rest.
  void stop_all(std::chrono::milliseconds grace);
  /// SIGKILL to slot's process (a stage that stopped answering); reap() reports it.
  void kill(std::size_t slot);

  [[nodiscard]] std::vector<StageSlot>& slots() noexcept { return slots_; }
  [[nodiscard]] const std::vector<StageSlot>& slots() const noexcept { return slots_; }
  /// The slot whose live process is `pid`, if any.
  [[nodiscard]] std::optional<std::size_t> slot_of_pid(pid_t pid) const;
  /// The slot of role/worker, if any.
  [[nodiscard]] std::optional<std::size_t> slot_of(const std::string& role,
                                                   std::size_t worker) const;
  /// Every slot as JSON for `status`.
  [[nodiscard]] nlohmann::json status_json() const;

 private:
  void spawn(StageSlot& slot);

  StageLaunch launch_;
  std::vector<StageSlot> slots_;
};

}  // namespace azflow::daemon
