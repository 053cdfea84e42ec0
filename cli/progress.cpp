#include "cli/progress.hpp"

#include <unistd.h>

#include <string>

namespace azflow::cli {

namespace {

constexpr int kBarWidth = 30;

}  // namespace

std::string format_clock(double seconds) {
  const auto s = static_cast<long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  }
  return buf;
}

ProgressBar::ProgressBar(std::size_t total, bool quiet, std::FILE* stream)
    : total_(total), stream_(stream), start_(std::chrono::steady_clock::now()) {
  if (quiet || total == 0 || !isatty(fileno(stream))) return;
  drawing_ = true;
  drawer_ = std::jthread([this](std::stop_token stop) {
    while (!stop.stop_requested()) {
      draw(false);
      for (int i = 0; i < 4 && !stop.stop_requested(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  });
}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::finish() {
  if (finished_) return;
  if (drawer_.joinable()) {
    drawer_.request_stop();
    drawer_.join();
  }
  end_ = std::chrono::steady_clock::now();
  finished_ = true;
  if (drawing_) draw(true);
}

double ProgressBar::elapsed_s() const {
  const auto end = finished_ ? end_ : std::chrono::steady_clock::now();
  return std::chrono::duration<double>(end - start_).count();
}

void ProgressBar::draw(bool final_line) const {
  const std::size_t done = done_.load(std::memory_order_relaxed);
  const double elapsed = elapsed_s();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double fraction = static_cast<double>(done) / static_cast<double>(total_);
  const int filled = static_cast<int>(fraction * kBarWidth);
  std::string bar(static_cast<std::size_t>(filled), '#');
  bar.append(static_cast<std::size_t>(kBarWidth - filled), '.');
  const std::string eta =
      final_line
          ? "done in " + format_clock(elapsed)
          : (rate > 0 ? "ETA " + format_clock(static_cast<double>(total_ - done) / rate) : "ETA ?");
  std::fprintf(stream_, "\r[%s] %zu/%zu frames %9.1f frames/s  %-16s%s", bar.c_str(), done, total_,
               rate, eta.c_str(), final_line ? "\n" : "");
  std::fflush(stream_);
}

}  // namespace azflow::cli
