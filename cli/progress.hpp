#pragma once
// A terminal progress bar for long runs: frames done, frames/s and ETA, redrawn on stderr.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <string>
#include <thread>

namespace azflow::cli {

/// A duration as a clock reading, rounded to whole seconds: "M:SS" below an hour, "H:MM:SS" from
/// one hour on (e.g. 75.4 -> "1:15", 3725 -> "1:02:05"). `seconds` must be finite and >= 0.
std::string format_clock(double seconds);

/// Counts finished frames (thread-safe, lock-free) and, when enabled, redraws one line on
/// `stream` five times a second from its own thread:
///   "[#########.........]  412/1000 frames   823.4 frames/s  ETA 0:01".
/// Enabled only when `stream` is a terminal and `quiet` is off; the counter works either way.
class ProgressBar {
 public:
  ProgressBar(std::size_t total, bool quiet, std::FILE* stream = stderr);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// One more frame finished (written or failed).
  void tick() noexcept { done_.fetch_add(1, std::memory_order_relaxed); }
  /// Stops redrawing and ends the line (idempotent).
  void finish();
  /// Seconds from construction to finish() (or to now, before it).
  [[nodiscard]] double elapsed_s() const;

 private:
  void draw(bool final_line) const;

  std::size_t total_;
  std::FILE* stream_;
  std::chrono::steady_clock::time_point start_, end_;
  bool drawing_ = false;
  bool finished_ = false;  // written by the owning thread only, after the drawer joined
  std::atomic<std::size_t> done_{0};
  std::jthread drawer_;
};

}  // namespace azflow::cli
