#include "daemon/federation/rate_limited_log.hpp"

#include <spdlog/spdlog.h>

namespace azflow::daemon {

void RateLimitedLog::warn(const std::string& line, Clock::time_point now) {
  ++total_;
  if (last_line_ && now - *last_line_ < interval_) {
    ++suppressed_;
    latest_ = line;
    return;
  }
  if (suppressed_ > 0) {
    spdlog::warn("{} ({} more {} in the last {} s, not logged one by one)", line, suppressed_,
                 what_,
                 std::chrono::duration_cast<std::chrono::seconds>(now - *last_line_).count());
  } else {
    spdlog::warn("{}", line);
  }
  last_line_ = now;
  suppressed_ = 0;
  latest_.clear();
}

void RateLimitedLog::flush(Clock::time_point now) {
  if (suppressed_ == 0 || !last_line_ || now - *last_line_ < interval_) return;
  spdlog::warn("{} more {} in the last {} s, not logged one by one (latest: {})", suppressed_,
               what_, std::chrono::duration_cast<std::chrono::seconds>(now - *last_line_).count(),
               latest_);
  last_line_ = now;
  suppressed_ = 0;
  latest_.clear();
  latest_.shrink_to_fit();
}

}  // namespace azflow::daemon
