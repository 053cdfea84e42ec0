#pragma once
// The control link between a stage process and azflowd: one ZeroMQ DEALER connected to the
// daemon's internal ROUTER (DaemonConfig::stages_endpoint). Frames never travel here, only JSON
// control messages (one frame each), see docs/daemon-design.md "Control path":
//   stage -> daemon  {"type":"hello"|"heartbeat", "role", "worker", "pid", "counters",
//                     "device" (optional: what the stage computes on, shown by `workers`)}
//                    {"type":"job_config", "job"}            (integrate: ask for a JobSpec)
//                    {"type":"plan_axes", "job", "axes"}     (integrate: the plan's output axes)
//                    {"type":"shard_read", "job", "shard"}   (source: every frame pushed)
//   daemon -> stage  {"type":"shard", "job", "shard", "datasets", "dataset_path",
//                     "first", "count" | "frames": [...]}   (source)
//                    {"type":"job_config", "job", "spec" | "error"}   (integrate)
//                    {"type":"cancel", "job"}  {"type":"retry", "job"} (a cancelled job is live
//                     again)  {"type":"job_end", "job"} (source: close the job's files)
//                    {"type":"stop"}
// Not thread-safe: one link per stage process, used from its one processing thread.

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

namespace azflow::daemon {

/// What a stage counts; sent in every heartbeat and shown by `status`.
struct StageCounters {
  std::uint64_t frames_in = 0;   ///< slots taken from the input ring (or frames read: source)
  std::uint64_t frames_out = 0;  ///< slots committed to the output ring (ok or failed)
  std::uint64_t failed = 0;      ///< frames this stage marked failed
  double busy_s = 0;             ///< seconds spent processing frames (not waiting)
};

/// JSON of counters (and back).
nlohmann::json to_json(const StageCounters& counters);

/// A stage's identity.
struct StageIdentity {
  std::string role;  ///< "source", "decompress" or "integrate"
  std::size_t worker = 0;
  std::string device = "cpu";  ///< where it computes: "cpu" or "cuda:N" (integrate on a GPU)
};

/// The DEALER side of the stage control link.
class StageLink {
 public:
  /// Connects to `endpoint` and sends hello. Throws zmq::error_t if the endpoint is malformed.
  StageLink(std::string endpoint, StageIdentity identity,
            std::chrono::milliseconds heartbeat_interval);

  /// Sends one message (adds nothing to it).
  void send(const nlohmann::json& message);
  /// Sends a heartbeat with `counters` if the interval has passed since the last one.
  void heartbeat_if_due(const StageCounters& counters);
  /// The next message from the daemon, waiting up to `timeout`; nullopt on timeout. Messages set
  /// aside by request() come first. A message that is not JSON is logged and skipped.
  [[nodiscard]] std::optional<nlohmann::json> receive(std::chrono::milliseconds timeout);
  /// Sends `message` and waits up to `timeout` for the reply of the same "type" and "job"; other
  /// messages arriving meanwhile are kept for receive(). nullopt on timeout.
  [[nodiscard]] std::optional<nlohmann::json> request(const nlohmann::json& message,
                                                      std::chrono::milliseconds timeout);
  /// True once a "stop" message has been received (by receive or request).
  [[nodiscard]] bool stop_requested() const noexcept { return stop_; }

 private:
  std::optional<nlohmann::json> receive_socket(std::chrono::milliseconds timeout);

  zmq::context_t context_{1};
  zmq::socket_t socket_;
  StageIdentity identity_;
  std::chrono::milliseconds heartbeat_interval_;
  std::chrono::steady_clock::time_point last_heartbeat_{};
  std::deque<nlohmann::json> pending_;
  bool stop_ = false;
};

}  // namespace azflow::daemon
