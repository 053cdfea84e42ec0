#include "ctl/client.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include <zmq_addon.hpp>

namespace azflow::ctl {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

/// Receives one [delimiter, payload] reply, or nothing before `deadline`.
std::optional<std::string> receive_before(zmq::socket_t& socket, Clock::time_point deadline) {
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, left) <= 0) continue;
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(socket, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
      continue;
    }
    if (!frames.empty()) return frames.back().to_string();
  }
}

}  // namespace

ControlClient::ControlClient(std::string endpoint, std::chrono::milliseconds timeout,
                             const std::optional<CurveClientKeys>& curve)
    : endpoint_(std::move(endpoint)),
      timeout_(timeout),
      socket_(context_, zmq::socket_type::dealer) {
  socket_.set(zmq::sockopt::linger, 0);
  if (curve) {
    socket_.set(zmq::sockopt::curve_serverkey, curve->server_public);
    socket_.set(zmq::sockopt::curve_publickey, curve->client_public);
    socket_.set(zmq::sockopt::curve_secretkey, curve->client_secret);
  }
  socket_.set(zmq::sockopt::sndtimeo, static_cast<int>(timeout.count()));
  try {
    socket_.connect(endpoint_);
  } catch (const zmq::error_t& e) {
    throw Error(ErrorCategory::kIo, "cannot connect to " + endpoint_ + ": " + e.what());
  }
}

void ControlClient::no_answer(const std::string& why) const {
  std::string tried;
  for (const std::string& t : tried_) tried += (tried.empty() ? "" : ", ") + t;
  throw Error(ErrorCategory::kIo,
              "no answer from azflowd at " + endpoint_ + ": " + why +
                  (tried_.size() > 1 ? " (endpoints tried: " + tried + ")" : std::string()) +
                  " (is azflowd running? set --endpoint or AZFLOW_ENDPOINT, or --instance)");
}

std::vector<std::string> candidate_endpoints(const daemon::Environment& env,
                                             const std::string& instance,
                                             const std::filesystem::path& system_run) {
  std::vector<std::string> out;
  for (const std::string& e :
       {daemon::default_control_endpoint(env, instance),
        "ipc://" + (system_run / "azflow" / (instance + ".control")).string(),
        "ipc://" + (system_run / ("azflow-" + instance) / (instance + ".control")).string()}) {
    if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
  }
  return out;
}

std::string choose_endpoint(const std::vector<std::string>& candidates) {
  for (const std::string& e : candidates) {
    if (!e.starts_with("ipc://")) return e;
    struct stat st {};
    if (::stat(e.substr(6).c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return e;
  }
  return candidates.front();
}

nlohmann::json ControlClient::call(nlohmann::json request) {
  if (endpoint_.starts_with("ipc://") && !std::filesystem::exists(endpoint_.substr(6))) {
    no_answer("no socket " + endpoint_.substr(6));
  }
  const std::int64_t id = next_id_++;
  request["v"] = 1;
  request["id"] = id;
  const std::string text = request.dump();
  std::vector<zmq::const_buffer> frames = {zmq::const_buffer(nullptr, 0), zmq::buffer(text)};
  if (!zmq::send_multipart(socket_, frames, zmq::send_flags::none)) {
    no_answer("cannot send (not connected)");
  }
  const auto deadline = Clock::now() + timeout_;
  while (true) {
    const auto reply = receive_before(socket_, deadline);
    if (!reply) no_answer("nothing within " + std::to_string(timeout_.count()) + " ms");
    const json r = json::parse(*reply, nullptr, false);
    if (r.is_discarded() || !r.is_object() || r.value("v", 0) != 1) {
      throw Error(ErrorCategory::kIo, "azflowd at " + endpoint_ +
                                          " sent a reply that is not "
                                          "protocol v1 JSON: " +
                                          reply->substr(0, 200));
    }
    if (r.value("id", json()) != json(id)) continue;  // a late reply to an earlier request
    if (r.value("ok", false)) return r.value("result", json::object());
    const json error = r.value("error", json::object());
    throw RequestRefused(error.value("field", ""), error.value("message", "(no message)"));
  }
}

}  // namespace azflow::ctl
