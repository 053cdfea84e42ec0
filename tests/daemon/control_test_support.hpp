#pragma once
// Test support shared by tests/daemon/control_* and tests/ctl: a temp directory, a
// ControlHandler backed by a real JobStore, and a ControlServer polled on its own thread.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "daemon/control.hpp"
#include "daemon/job_store.hpp"

namespace azflow::daemon::test {

/// A fresh directory under /tmp (short path: ipc socket paths are limited to ~107 bytes),
/// removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/azflow-ctl-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// Writes `text` to `path`.
inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

/// A valid version-2 PONI text (Pilatus 100k-like detector).
inline const char* kPoniText =
    "poni_version: 2\n"
    "Detector: Detector\n"
    "Detector_config: {\"pixel1\": 0.000172, \"pixel2\": 0.000172, \"max_shape\": [195, 487]}\n"
    "Distance: 0.1\nPoni1: 0.015\nPoni2: 0.04\nRot1: 0\nRot2: 0\nRot3: 0\n"
    "Wavelength: 1e-10\n";

/// ControlHandler over a real JobStore: every job gets `frames_total` frames in shards of 50.
/// Progress is driven by the test through store().
class StoreHandler : public ControlHandler {
 public:
  explicit StoreHandler(const std::filesystem::path& db, std::int64_t frames_total = 100)
      : store_(db), frames_total_(frames_total) {}

  nlohmann::json enqueue(const EnqueueRequest& r) override {
    std::vector<ShardPlan> shards;
    for (std::int64_t first = 0, k = 0; first < frames_total_; first += 50, ++k) {
      shards.push_back({k, first, std::min<std::int64_t>(50, frames_total_ - first)});
    }
    const std::int64_t id = store_.add_job(r.spec, frames_total_, shards);
    last_spec = r.spec;
    return {{"job_id", id}, {"state", "queued"}, {"frames_total", frames_total_}};
  }
  nlohmann::json status(const StatusRequest& r) override {
    if (!r.job_id) {
      return {{"daemon",
               {{"instance", "test"},
                {"queued", store_.jobs_in_state(JobState::kQueued).size()},
                {"running", store_.jobs_in_state(JobState::kRunning).size()}}}};
    }
    const auto job = store_.job(*r.job_id);
    if (!job) throw FieldError("job_id", "no job " + std::to_string(*r.job_id));
    const auto shards = store_.shards(job->id);
    return {{"job", job_json(*job, &shards)}};
  }
  nlohmann::json list(const ListRequest& r) override {
    nlohmann::json jobs = nlohmann::json::array();
    for (const JobRecord& j : store_.list(r.state, r.all)) jobs.push_back(job_json(j));
    return {{"jobs", jobs}};
  }
  nlohmann::json cancel(const CancelRequest& r) override {
    nlohmann::json cancelled = nlohmann::json::array(), refused = nlohmann::json::array();
    for (std::int64_t id : r.ids) {
      const auto job = store_.job(id);
      if (!job || is_final(job->state)) {
        refused.push_back({{"job_id", id}, {"reason", job ? "already finished" : "no such job"}});
        continue;
      }
      store_.set_job_state(id, JobState::kCancelled, "cancelled by request");
      cancelled.push_back(id);
    }
    return {{"cancelled", cancelled}, {"not_cancelled", refused}};
  }
  nlohmann::json shutdown(const ShutdownRequest&) override {
    shutdowns.fetch_add(1);
    return nlohmann::json::object();
  }

  JobStore& store() { return store_; }
  JobSpec last_spec;
  std::atomic<int> shutdowns{0};

 private:
  JobStore store_;
  std::int64_t frames_total_;
};

/// A ControlServer on `endpoint`, polled every 10 ms on its own thread until destroyed.
class ServerThread {
 public:
  ServerThread(const std::string& endpoint, ControlHandler& handler)
      : server_(context_, {endpoint}, handler), thread_([this](std::stop_token stop) {
          while (!stop.stop_requested()) (void)server_.poll(std::chrono::milliseconds(10));
        }) {}
  ~ServerThread() { thread_.request_stop(); }
  ServerThread(const ServerThread&) = delete;
  ServerThread& operator=(const ServerThread&) = delete;
  [[nodiscard]] const std::string& endpoint() const { return server_.endpoints().front(); }

 private:
  zmq::context_t context_;
  ControlServer server_;
  std::jthread thread_;  // last: stops and joins before the server is destroyed
};

}  // namespace azflow::daemon::test
