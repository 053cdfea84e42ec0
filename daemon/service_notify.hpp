#pragma once
// systemd service notifications (sd_notify(3)): azflowd tells a Type=notify service manager when
// it is ready, what it is doing (STATUS=), that it is alive (WATCHDOG=1 at half of WatchdogSec)
// and that it is stopping. Without $NOTIFY_SOCKET (started by hand, in tests) it does nothing.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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
  /// WATCHDOG=1 if half the watchdog period has passed since the last ping (or never pinged).
  /// Call at least a few times per watchdog period.
  void tick(Clock::time_point now = Clock::now());
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
  std::optional<Clock::time_point> last_ping_, last_status_;
  std::uint64_t last_frames_ = 0;
};

}  // namespace azflow::daemon
