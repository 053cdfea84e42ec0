#pragma once
// systemd service notifications (sd_notify(3)): azflowd tells a Type=notify service manager when
// it is ready, what it is doing (STATUS=), that it is alive (WATCHDOG=1 at half of WatchdogSec,
// from LoopWatchdog's thread while the daemon's loop turns) and that it is stopping. Without
// $NOTIFY_SOCKET (started by hand, in tests) it sends nothing.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace azflow::daemon {

/// What the STATUS= line reports.
struct ServiceCounters {
  std::size_t jobs_queued = 0;       ///< jobs with no shard handed out yet
  std::size_t jobs_running = 0;      ///< jobs with shards handed out
  std::size_t shards_in_flight = 0;  ///< shards handed to the stages, not finished
  std::uint64_t frames_written = 0;  ///< frames the reducer wrote since the start (a counter)
  bool stopping = false;             ///< stopping: finishing the shards in flight
};

/// Sends sd_notify messages to the service manager. Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and
/// $WATCHDOG_PID once, at construction (through libsystemd: sd_watchdog_enabled(3)); keeps them in
/// the environment, so the process's own children see them too (systemd ignores them with
/// NotifyAccess=main). Every method is a no-op when no manager listens. Not thread-safe: call
/// from the daemon's loop.
class ServiceNotifier {
 public:
  using Clock = std::chrono::steady_clock;

  /// `status_period`: how often report() sends a STATUS= line.
  explicit ServiceNotifier(std::chrono::milliseconds status_period = std::chrono::seconds(2));

  /// True when $NOTIFY_SOCKET names a socket to notify.
  [[nodiscard]] bool enabled() const noexcept { return enabled_; }
  /// The watchdog ping period: half of $WATCHDOG_USEC, if the watchdog is on for this process.
  [[nodiscard]] std::optional<std::chrono::microseconds> watchdog_period() const noexcept {
    return watchdog_period_;
  }

  /// READY=1 with a STATUS= line: the daemon accepts requests.
  void ready(std::string_view status);
  /// STOPPING=1 with a STATUS= line: the daemon is shutting down.
  void stopping(std::string_view status);
  /// A STATUS= line now.
  void status(std::string_view text);
  /// A STATUS= line from `counters` (queue, shards in flight, frames/s since the last line) if
  /// `status_period` has passed since the last one.
  void report(const ServiceCounters& counters, Clock::time_point now = Clock::now());

  /// The STATUS= text of `counters` with a throughput of `frames_per_s`.
  static std::string describe(const ServiceCounters& counters, double frames_per_s);

 private:
  void send(const std::string& message);

  bool enabled_ = false;
  std::optional<std::chrono::microseconds> watchdog_period_;
  std::chrono::milliseconds status_period_;
  std::optional<Clock::time_point> last_status_;
  std::uint64_t last_frames_ = 0;
};

/// Feeds the service manager's watchdog from a thread of its own, for as long as the daemon's loop
/// is alive (issue 14: a frozen loop must not be kept alive by pings, and pings must not depend on
/// how often the loop turns). The loop calls beat() every turn. Every `ping_period` the thread
/// sends WATCHDOG=1 (sd_notify, which is thread-safe) if the last beat is at most `stall_limit`
/// old; otherwise it sends nothing, so the manager restarts a loop frozen for WatchdogSec. A
/// loop that has not turned for `warn_after` is logged as a warning once per stall, and how long
/// it stalled is logged when it turns again. Without `ping_period` (no watchdog) only the stall
/// warnings remain. The destructor stops and joins the thread.
class LoopWatchdog {
 public:
  using Clock = std::chrono::steady_clock;

  LoopWatchdog(std::optional<std::chrono::microseconds> ping_period,
               std::chrono::milliseconds stall_limit, std::chrono::milliseconds warn_after);
  ~LoopWatchdog();
  LoopWatchdog(const LoopWatchdog&) = delete;
  LoopWatchdog& operator=(const LoopWatchdog&) = delete;

  /// The loop turned (cheap: one relaxed atomic store).
  void beat() noexcept;
  /// Stalls longer than warn_after seen so far (a stall still going on counts).
  [[nodiscard]] std::uint64_t stalls() const noexcept { return stalls_.load(); }
  /// WATCHDOG=1 messages sent so far.
  [[nodiscard]] std::uint64_t pings() const noexcept { return pings_.load(); }

 private:
  void run();

  std::optional<std::chrono::microseconds> ping_period_;
  std::chrono::milliseconds stall_limit_, warn_after_;
  std::atomic<Clock::rep> last_beat_;
  std::atomic<std::uint64_t> stalls_{0}, pings_{0};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace azflow::daemon
