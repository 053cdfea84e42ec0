#include "daemon/stage_runtime.hpp"

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
