#include "daemon/stage_link.hpp"
#include "daemon/json_text.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <spdlog/spdlog.h>

#include "base/error.hpp"

namespace azflow::daemon {

StageLink::StageLink(std::string endpoint, StageIdentity identity,
                     std::chrono::milliseconds heartbeat_interval)
    : socket_(context_, zmq::socket_type::dealer),
      identity_(std::move(identity)),
      heartbeat_interval_(heartbeat_interval) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.connect(endpoint);
  send(StageHello{identity_.role, identity_.worker, static_cast<std::int64_t>(::getpid()),
                  identity_.device});
  last_heartbeat_ = beat_seen_ = std::chrono::steady_clock::now();
  if (heartbeat_interval_.count() <= 0) return;  // heartbeats only when asked for (tests)
  keeper_ = std::jthread([this, endpoint](const std::stop_token& stop) {
    zmq::socket_t socket(context_, zmq::socket_type::dealer);
    socket.set(zmq::sockopt::linger, 0);
    socket.connect(endpoint);
    const auto step =
        std::min<std::chrono::milliseconds>(heartbeat_interval_, std::chrono::milliseconds(100));
    auto last_sent = std::chrono::steady_clock::now();
    while (!stop.stop_requested()) {
      std::this_thread::sleep_for(step);
      const auto now = std::chrono::steady_clock::now();
      if (now - last_sent < heartbeat_interval_) continue;
      std::optional<StageHeartbeat> beat;
      {
        const std::lock_guard lock(beat_mutex_);
        const auto busy = now - beat_seen_;
        if (busy >= heartbeat_interval_ && busy < kBusyHeartbeatLimit) {
          beat = StageHeartbeat{identity_.role, identity_.worker,
                                static_cast<std::int64_t>(::getpid()), identity_.device,
                                beat_counters_};
        }
      }
      if (!beat) continue;
      last_sent = now;
      const std::string text = dump_escaped(to_json(*beat));
      (void)socket.send(zmq::buffer(text), zmq::send_flags::dontwait);
    }
  });
}

void StageLink::send(const StageMessage& message) {
  const std::string text = dump_escaped(to_json(message));
  (void)socket_.send(zmq::buffer(text), zmq::send_flags::none);
}

void StageLink::heartbeat_if_due(const StageCounters& counters) {
  const auto now = std::chrono::steady_clock::now();
  {
    const std::lock_guard lock(beat_mutex_);
    beat_seen_ = now;
    beat_counters_ = counters;
  }
  if (now - last_heartbeat_ < heartbeat_interval_) return;
  last_heartbeat_ = now;
  send(StageHeartbeat{identity_.role, identity_.worker, static_cast<std::int64_t>(::getpid()),
                      identity_.device, counters});
}

std::optional<DaemonMessage> StageLink::receive_socket(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  try {
    if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return std::nullopt;  // a signal: the caller looks at its stop flag
    throw;
  }
  zmq::message_t message;
  if (!socket_.recv(message, zmq::recv_flags::dontwait)) return std::nullopt;
  try {
    DaemonMessage m =
        parse_daemon_message(nlohmann::json::parse(message.to_string_view(), nullptr, false));
    if (std::holds_alternative<StopStage>(m)) stop_ = true;
    return m;
  } catch (const Error& e) {
    spdlog::warn("{} {}: ignoring a control message: {}", identity_.role, identity_.worker,
                 e.what());
    return std::nullopt;
  }
}

std::optional<DaemonMessage> StageLink::receive(std::chrono::milliseconds timeout) {
  if (!pending_.empty()) {
    DaemonMessage m = std::move(pending_.front());
    pending_.pop_front();
    return m;
  }
  return receive_socket(timeout);
}

std::optional<JobConfigReply> StageLink::request_job_config(std::int64_t job,
                                                            std::chrono::milliseconds timeout) {
  send(JobConfigRequest{job});
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!stop_) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto reply = receive_socket(left);
    if (!reply) continue;
    if (auto* config = std::get_if<JobConfigReply>(&*reply); config && config->job == job) {
      return std::move(*config);
    }
    pending_.push_back(std::move(*reply));
  }
  return std::nullopt;
}

}  // namespace azflow::daemon
