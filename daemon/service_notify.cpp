#include "daemon/service_notify.hpp"

#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include <spdlog/spdlog.h>

namespace azflow::daemon {

ServiceNotifier::ServiceNotifier(std::chrono::milliseconds status_period)
    : status_period_(status_period) {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && socket[0] != '\0';
  std::uint64_t usec = 0;
  // > 0: the watchdog is on and meant for this process ($WATCHDOG_PID unset or our pid)
  if (enabled_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    watchdog_period_ = std::chrono::microseconds(usec / 2);
  }
  if (enabled_) {
    spdlog::debug("service manager notifications on {}{}", socket,
                  watchdog_period_ ? ", watchdog ping every " +
                                         std::to_string(watchdog_period_->count() / 1000) + " ms"
                                   : std::string());
  }
}

void ServiceNotifier::send(const std::string& message) {
  if (!enabled_) return;
  const int r = sd_notify(0, message.c_str());
  if (r < 0) spdlog::warn("sd_notify failed: error {}", -r);
}

void ServiceNotifier::ready(std::string_view status) {
  send("READY=1\nSTATUS=" + std::string(status));
  last_status_ = Clock::now();
}

void ServiceNotifier::stopping(std::string_view status) {
  send("STOPPING=1\nSTATUS=" + std::string(status));
  last_status_ = Clock::now();
}

void ServiceNotifier::status(std::string_view text) {
  send("STATUS=" + std::string(text));
  last_status_ = Clock::now();
}

void ServiceNotifier::report(const ServiceCounters& counters, Clock::time_point now) {
  if (!enabled_) return;
  if (last_status_ && now - *last_status_ < status_period_) return;
  const double seconds =
      last_status_ ? std::chrono::duration<double>(now - *last_status_).count() : 0.0;
  const std::uint64_t frames =
      counters.frames_written - std::min(last_frames_, counters.frames_written);
  const double rate = seconds > 0 ? static_cast<double>(frames) / seconds : 0.0;
  last_frames_ = counters.frames_written;
  send("STATUS=" + describe(counters, rate));
  last_status_ = now;
}

std::string ServiceNotifier::describe(const ServiceCounters& c, double frames_per_s) {
  char rate[32];
  std::snprintf(rate, sizeof rate, "%.1f", frames_per_s);
  std::string text = c.stopping ? "stopping: " : "";
  text += std::to_string(c.jobs_running) + " jobs running, " + std::to_string(c.jobs_queued) +
          " queued, " + std::to_string(c.shards_in_flight) + " shards in flight, " + rate +
          " frames/s";
  return text;
}

LoopWatchdog::LoopWatchdog(std::optional<std::chrono::microseconds> ping_period,
                           std::chrono::milliseconds stall_limit,
                           std::chrono::milliseconds warn_after)
    : ping_period_(ping_period),
      stall_limit_(stall_limit),
      warn_after_(warn_after),
      last_beat_(Clock::now().time_since_epoch().count()),
      thread_([this] { run(); }) {}

LoopWatchdog::~LoopWatchdog() {
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void LoopWatchdog::beat() noexcept {
  last_beat_.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
}

void LoopWatchdog::run() {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  // wake often enough both to ping on time and to notice a stall soon after warn_after
  milliseconds step = std::max(milliseconds(1), warn_after_ / 4);
  if (ping_period_)
    step = std::min(step, std::max(milliseconds(1), duration_cast<milliseconds>(*ping_period_)));
  std::optional<Clock::time_point> last_ping;
  bool stalled = false;
  Clock::time_point stalled_since{};
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, step, [this] { return stop_; })) {
    const auto now = Clock::now();
    const auto beat =
        Clock::time_point(Clock::duration(last_beat_.load(std::memory_order_relaxed)));
    const auto quiet = now - beat;
    if (quiet >= warn_after_ && !stalled) {
      stalled = true;
      stalled_since = beat;
      stalls_.fetch_add(1);
      spdlog::warn("the main loop has not turned for {} ms (requests wait meanwhile){}",
                   duration_cast<milliseconds>(quiet).count(),
                   ping_period_ ? "; the watchdog is fed only while it turns" : "");
    } else if (quiet < warn_after_ && stalled) {
      stalled = false;
      spdlog::info("the main loop turns again, after {} ms",
                   duration_cast<milliseconds>(beat - stalled_since).count());
    }
    if (!ping_period_ || quiet > stall_limit_) continue;
    if (last_ping && now - *last_ping < *ping_period_) continue;
    const int r = sd_notify(0, "WATCHDOG=1");
    if (r < 0) spdlog::warn("sd_notify failed: error {}", -r);
    pings_.fetch_add(1);
    last_ping = now;
  }
}

}  // namespace azflow::daemon
