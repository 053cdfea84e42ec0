#include "daemon/stage_runtime.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "base/error.hpp"

namespace azflow::daemon {

bool StageRuntime::note_cancel(const DaemonMessage& message) {
  if (const auto* retry = std::get_if<RetryJob>(&message)) {
    cancelled_jobs.erase(retry->job);
    return true;
  }
  if (const auto* cancel = std::get_if<CancelJob>(&message)) {
    cancelled_jobs.insert(cancel->job);
    return true;
  }
  return false;
}

bool StageRuntime::job_cancelled(std::int64_t job) {
  while (auto message = link.receive(std::chrono::milliseconds(0))) note_cancel(*message);
  return cancelled_jobs.contains(job);
}

void StageRuntime::delay() const {
  if (frame_delay.count() > 0) std::this_thread::sleep_for(frame_delay);
}

void StageRuntime::crash_if_asked(const ipc::SlotHeader& header) const {
  if (!crash_on || static_cast<std::int64_t>(header.job_id) != crash_on->first ||
      (crash_on->second >= 0 &&
       static_cast<std::int64_t>(header.frame_index) != crash_on->second)) {
    return;
  }
  if (const char* once = std::getenv("AZFLOW_TEST_CRASH_ONCE_FILE"); once != nullptr) {
    const int fd = ::open(once, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0) return;  // an earlier process of the stage crashed already
    ::close(fd);
  }
  ::prctl(PR_SET_DUMPABLE, 0);  // a test crash leaves no core file
  std::abort();
}

std::optional<std::pair<std::int64_t, std::int64_t>> test_crash_frame(const std::string& role) {
  std::string name = "AZFLOW_TEST_CRASH_";
  for (char c : role) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const char* value = std::getenv(name.c_str());
  const char* colon = value != nullptr ? std::strchr(value, ':') : nullptr;
  if (colon == nullptr) return std::nullopt;
  const std::int64_t frame = std::strcmp(colon + 1, "*") == 0 ? -1 : std::atoll(colon + 1);
  return std::pair{static_cast<std::int64_t>(std::atoll(value)), frame};
}

ipc::Ring open_stage_ring(const std::string& instance, const std::string& ring) {
  const std::string name = ipc::ring_name(instance, ring);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (true) {
    try {
      return ipc::Ring::open(name);
    } catch (const Error&) {
      if (std::chrono::steady_clock::now() > deadline) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

std::string frame_reason(std::int64_t frame, const std::string& file, const std::string& dataset,
                         const std::string& what) {
  const std::string head = "frame " + std::to_string(frame);
  if (file.empty() || what.find(file) != std::string::npos) return head + ": " + what;
  return head + " of " + file + (dataset.empty() ? "" : " (" + dataset + ")") + ": " + what;
}

}  // namespace azflow::daemon
