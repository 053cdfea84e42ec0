#pragma once
// A warning that may be caused from outside at any rate (refused handshakes, forged peer
// messages): logged at most once per interval, the ones in between only counted and reported
// with the next line, so that a flood of refusals neither fills the log nor grows memory (the
// state is one time point, one counter and the last suppressed line, whatever the flood).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace azflow::daemon {

/// One rate-limited warning stream (not thread-safe: used from the daemon's main loop).
class RateLimitedLog {
 public:
  using Clock = std::chrono::steady_clock;

  /// `what` names the stream in the summary line ("refused peer connections"); `interval` is the
  /// least time between two log lines.
  RateLimitedLog(std::string what, std::chrono::seconds interval)
      : what_(std::move(what)), interval_(interval) {}

  /// Counts one event; logs `line` (spdlog warn) if the last line is at least `interval` old,
  /// with how many were suppressed since, else keeps `line` as the latest suppressed one.
  void warn(const std::string& line, Clock::time_point now = Clock::now());
  /// Logs the count of suppressed events (and the latest of them) once `interval` has passed
  /// since the last line; call it now and then so that the end of a flood is reported.
  void flush(Clock::time_point now = Clock::now());

  /// Events counted since the start (logged or not).
  [[nodiscard]] std::uint64_t total() const noexcept { return total_; }
  /// Events counted since the last line and not yet reported.
  [[nodiscard]] std::uint64_t suppressed() const noexcept { return suppressed_; }

 private:
  std::string what_;
  std::chrono::seconds interval_;
  std::optional<Clock::time_point> last_line_;
  std::uint64_t total_ = 0, suppressed_ = 0;
  std::string latest_;  ///< the last suppressed line (one string, overwritten)
};

}  // namespace azflow::daemon
