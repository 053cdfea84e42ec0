#pragma once
// What every stage process shares: its control link, its stop flag, its counters, and the
// helpers that wait on a ring while still answering the daemon (heartbeats, cancel, stop).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>

#include "daemon/stage_link.hpp"
#include "ipc/ring.hpp"

namespace azflow::daemon {

/// How long one wait on a ring or socket lasts before the stage looks at its link again.
inline constexpr std::chrono::milliseconds kStagePollInterval{50};

/// The state of one stage process. Owned by stage main(); passed to the role's run function.
struct StageRuntime {
  std::string instance;                      ///< daemon instance (names the rings)
  StageLink& link;                           ///< control link to the daemon
  const std::atomic<bool>& stopped;          ///< set by SIGTERM/SIGINT
  std::chrono::milliseconds frame_delay{0};  ///< test hook: extra time per frame
  StageCounters counters;
  std::unordered_set<std::int64_t> cancelled_jobs;  ///< jobs the daemon cancelled
  int gpu_device = -1;  ///< integrate role: CUDA device ordinal (--device N); -1 = CPU backend
  /// Test hook AZFLOW_TEST_CRASH_<ROLE>="JOB:FRAME" ("JOB:*": any frame of the job): the stage
  /// aborts (SIGABRT, no core dump) whenever it takes that job frame from its input ring, as a
  /// stage crashing on a bad frame. Second -1 = any frame.
  std::optional<std::pair<std::int64_t, std::int64_t>> crash_on{};
  /// Integrate role: the node's plan folder (--plan-cache, <state_dir>/plans; "" = plans built in
  /// memory only) and its size cap in bytes (--plan-cache-max-mb).
  std::filesystem::path plan_dir{};
  std::uint64_t plan_cache_max_bytes = 0;

  /// True when the process should stop (signal or "stop" message).
  [[nodiscard]] bool should_stop() const noexcept {
    return stopped.load(std::memory_order_relaxed) || link.stop_requested();
  }
  /// Sends a heartbeat if due.
  void heartbeat() { link.heartbeat_if_due(counters); }
  /// Records CancelJob (the job's frames are passed on as cancelled from now on) or RetryJob (a
  /// retried job is live again); returns true if `message` was either.
  bool note_cancel(const DaemonMessage& message);
  /// Whether `job` is cancelled, after taking every pending message through note_cancel (so that
  /// a "retry" sent before the job's frames is seen before them). For stages whose only messages
  /// are cancel and retry (decompress, integrate).
  bool job_cancelled(std::int64_t job);
  /// Sleeps frame_delay (test hook), if set.
  void delay() const;
  /// Aborts the process if `header` is the crash_on frame (test hook); otherwise nothing. With
  /// AZFLOW_TEST_CRASH_ONCE_FILE set, only the process that creates that file crashes (once over
  /// the stage's restarts).
  void crash_if_asked(const ipc::SlotHeader& header) const;
};

/// The crash_on test hook from AZFLOW_TEST_CRASH_<ROLE> ("JOB:FRAME" or "JOB:*"), or nullopt if
/// unset or malformed.
std::optional<std::pair<std::int64_t, std::int64_t>> test_crash_frame(const std::string& role);

/// Takes a write slot of `ring`, waiting in kStagePollInterval steps while the ring is full;
/// between steps sends heartbeats and passes every incoming message to `on_message`. Returns
/// nullopt if the stage stops or `give_up()` turns true.
template <typename OnMessage, typename GiveUp>
std::optional<ipc::WriteSlot> wait_write(StageRuntime& rt, ipc::Ring& ring, OnMessage&& on_message,
                                         GiveUp&& give_up) {
  while (!rt.should_stop() && !give_up()) {
    if (auto slot = ring.acquire_write(kStagePollInterval)) return slot;
    rt.heartbeat();
    while (auto message = rt.link.receive(std::chrono::milliseconds(0))) on_message(*message);
  }
  return std::nullopt;
}

/// Opens ring `ring` of the instance, retrying for up to 10 s while the daemon creates it.
/// Throws azflow::Error (kResource) if it never appears.
ipc::Ring open_stage_ring(const std::string& instance, const std::string& ring);

/// "frame N of FILE (DATASET): what", or "frame N: what" when `what` already names the file.
std::string frame_reason(std::int64_t frame, const std::string& file, const std::string& dataset,
                         const std::string& what);

}  // namespace azflow::daemon
