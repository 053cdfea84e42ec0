#include "daemon/stage_link.hpp"

#include <unistd.h>

#include <cerrno>

#include <spdlog/spdlog.h>

namespace azflow::daemon {

nlohmann::json to_json(const StageCounters& c) {
  return {{"frames_in", c.frames_in},
          {"frames_out", c.frames_out},
          {"failed", c.failed},
          {"busy_s", c.busy_s}};
}

StageLink::StageLink(std::string endpoint, StageIdentity identity,
                     std::chrono::milliseconds heartbeat_interval)
    : socket_(context_, zmq::socket_type::dealer),
      identity_(std::move(identity)),
      heartbeat_interval_(heartbeat_interval) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.connect(endpoint);
  send({{"type", "hello"},
        {"role", identity_.role},
        {"worker", identity_.worker},
        {"pid", static_cast<std::int64_t>(::getpid())},
        {"device", identity_.device}});
  last_heartbeat_ = std::chrono::steady_clock::now();
}

void StageLink::send(const nlohmann::json& message) {
  const std::string text = message.dump();
  (void)socket_.send(zmq::buffer(text), zmq::send_flags::none);
}

void StageLink::heartbeat_if_due(const StageCounters& counters) {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_heartbeat_ < heartbeat_interval_) return;
  last_heartbeat_ = now;
  send({{"type", "heartbeat"},
        {"role", identity_.role},
        {"worker", identity_.worker},
        {"pid", static_cast<std::int64_t>(::getpid())},
        {"device", identity_.device},
        {"counters", to_json(counters)}});
}

std::optional<nlohmann::json> StageLink::receive_socket(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  try {
    if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return std::nullopt;  // a signal: the caller looks at its stop flag
    throw;
  }
  zmq::message_t message;
  if (!socket_.recv(message, zmq::recv_flags::dontwait)) return std::nullopt;
  nlohmann::json j = nlohmann::json::parse(message.to_string_view(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    spdlog::warn("{} {}: ignoring a control message that is not a JSON object", identity_.role,
                 identity_.worker);
    return std::nullopt;
  }
  if (j.value("type", "") == "stop") stop_ = true;
  return j;
}

std::optional<nlohmann::json> StageLink::receive(std::chrono::milliseconds timeout) {
  if (!pending_.empty()) {
    nlohmann::json j = std::move(pending_.front());
    pending_.pop_front();
    return j;
  }
  return receive_socket(timeout);
}

std::optional<nlohmann::json> StageLink::request(const nlohmann::json& message,
                                                 std::chrono::milliseconds timeout) {
  send(message);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!stop_) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto reply = receive_socket(left);
    if (!reply) continue;
    if (reply->value("type", "") == message.value("type", "") &&
        reply->value("job", std::int64_t{-1}) == message.value("job", std::int64_t{-2})) {
      return reply;
    }
    pending_.push_back(std::move(*reply));
  }
  return std::nullopt;
}

}  // namespace azflow::daemon
