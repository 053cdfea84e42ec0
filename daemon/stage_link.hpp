#pragma once
// The control link between a stage process and azflowd: one ZeroMQ DEALER connected to the
// daemon's internal ROUTER (DaemonConfig::stages_endpoint). Frames never travel here, only the
// typed control messages of daemon/stage_messages.hpp (one JSON object per frame).
// Not thread-safe: one link per stage process, used from its one processing thread. A keeper
// thread with a socket of its own repeats the last heartbeat while the processing thread is busy
// in one long step (building a plan), for at most kBusyHeartbeatLimit: a stopped process
// (SIGSTOP) misses heartbeats at once, a processing thread stuck for longer than that too.

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "daemon/stage_messages.hpp"

namespace azflow::daemon {

/// A stage's identity.
struct StageIdentity {
  std::string role;  ///< "source", "decompress" or "integrate"
  std::size_t worker = 0;
  std::string device = "cpu";  ///< where it computes: "cpu" or "cuda:N" (integrate on a GPU)
};

/// How long the keeper thread stands in for a busy processing thread's heartbeats.
inline constexpr std::chrono::seconds kBusyHeartbeatLimit{60};

/// The DEALER side of the stage control link.
class StageLink {
 public:
  /// Connects to `endpoint` and sends StageHello; with a `heartbeat_interval` above 0, starts
  /// the keeper thread (see above). Throws zmq::error_t if the endpoint is
  /// malformed.
  StageLink(std::string endpoint, StageIdentity identity,
            std::chrono::milliseconds heartbeat_interval);

  /// Sends one message.
  void send(const StageMessage& message);
  /// Sends a heartbeat with `counters` if the interval has passed since the last one.
  void heartbeat_if_due(const StageCounters& counters);
  /// The next message from the daemon, waiting up to `timeout`; nullopt on timeout. Messages set
  /// aside by request_job_config() come first. A message that does not parse is logged and
  /// skipped (nullopt).
  [[nodiscard]] std::optional<DaemonMessage> receive(std::chrono::milliseconds timeout);
  /// Sends JobConfigRequest for `job` and waits up to `timeout` for its JobConfigReply; other
  /// messages arriving meanwhile are kept for receive(). nullopt on timeout or stop.
  [[nodiscard]] std::optional<JobConfigReply> request_job_config(std::int64_t job,
                                                                 std::chrono::milliseconds timeout);
  /// True once StopStage has been received (by receive or request_job_config).
  [[nodiscard]] bool stop_requested() const noexcept { return stop_; }

 private:
  std::optional<DaemonMessage> receive_socket(std::chrono::milliseconds timeout);

  zmq::context_t context_{1};
  zmq::socket_t socket_;
  StageIdentity identity_;
  std::chrono::milliseconds heartbeat_interval_;
  std::chrono::steady_clock::time_point last_heartbeat_{};
  std::deque<DaemonMessage> pending_;
  bool stop_ = false;
  std::mutex beat_mutex_;                            ///< guards the two below
  StageCounters beat_counters_;                      ///< counters of the last heartbeat_if_due
  std::chrono::steady_clock::time_point beat_seen_;  ///< when heartbeat_if_due last ran
  std::jthread keeper_;                              ///< last: stops before the rest goes
};

}  // namespace azflow::daemon
