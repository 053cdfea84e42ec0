#include "daemon/control.hpp"
#include "daemon/json_text.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <initializer_list>
#include <system_error>

#include <zmq_addon.hpp>

namespace azflow::daemon {

namespace {

using nlohmann::json;

/// Hard cap on a received message: beyond it ZeroMQ drops the connection instead of buffering.
constexpr std::int64_t kMaxReceiveBytes = std::int64_t{64} << 20;
/// Requests served per socket per poll() call, so that one busy client cannot starve the loop.
constexpr std::size_t kMaxRequestsPerPoll = 64;

json optional_time(const std::optional<std::int64_t>& unix_ms) {
  return unix_ms ? json(iso_utc(*unix_ms)) : json(nullptr);
}

/// elapsed_s (started to finished, or to now), frames_per_s (frames_integrated over it) and eta_s
/// (null when not started, or no frame integrated yet, or final).
void add_rates(json& j, const JobRecord& job, std::int64_t frames_integrated) {
  j["elapsed_s"] = nullptr;
  j["frames_per_s"] = nullptr;
  j["eta_s"] = nullptr;
  if (!job.started_unix_ms) return;
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const double elapsed =
      static_cast<double>(job.finished_unix_ms.value_or(now) - *job.started_unix_ms) / 1000.0;
  j["elapsed_s"] = std::max(0.0, elapsed);
  if (elapsed <= 0 || frames_integrated <= 0) return;
  const double rate = static_cast<double>(frames_integrated) / elapsed;
  j["frames_per_s"] = rate;
  if (!is_final(job.state)) {
    j["eta_s"] = static_cast<double>(job.frames_total - frames_integrated) / rate;
  }
}

json parse_message(std::string_view text) {
  if (text.size() > kMaxRequestBytes) {
    throw FieldError("", "request of " + std::to_string(text.size()) +
                             " bytes exceeds the limit of " + std::to_string(kMaxRequestBytes) +
                             " bytes");
  }
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw FieldError("", "not valid JSON");
  if (!j.is_object())
    throw FieldError("", std::string("expected a JSON object, got ") + j.type_name());
  return j;
}

void reject_unknown(const json& j, std::initializer_list<std::string_view> verb_fields) {
  for (const auto& [key, value] : j.items()) {
    if (key == "v" || key == "id" || key == "verb") continue;
    if (std::find(verb_fields.begin(), verb_fields.end(), key) == verb_fields.end()) {
      throw FieldError(key, "unknown field for verb '" + j["verb"].get<std::string>() + "'");
    }
  }
}

void check_version(const json& j) {
  const auto it = j.find("v");
  if (it == j.end()) {
    throw FieldError("v", "missing protocol version (this daemon speaks v" +
                              std::to_string(kProtocolVersion) + ")");
  }
  if (!it->is_number_integer()) {
    throw FieldError("v", std::string("expected an integer, got ") + it->type_name());
  }
  if (it->get<std::int64_t>() != kProtocolVersion) {
    throw FieldError("v", "unsupported protocol version " + it->dump() + " (this daemon speaks v" +
                              std::to_string(kProtocolVersion) + ")");
  }
}

std::int64_t job_id_value(const json& v, const std::string& field) {
  if (!v.is_number_integer() || v.get<std::int64_t>() <= 0) {
    throw FieldError(field, "expected a job id (an integer > 0), got " + v.dump());
  }
  return v.get<std::int64_t>();
}

EnqueueRequest decode_enqueue(const json& j) {
  reject_unknown(j, {"spec", "priority", "after"});
  const auto it = j.find("spec");
  if (it == j.end()) throw FieldError("spec", "required (the job spec object)");
  EnqueueRequest r{job_spec_from_json(*it, "spec."), 0, {}};
  if (const auto p = j.find("priority"); p != j.end() && !p->is_null()) {
    if (!p->is_number_integer())
      throw FieldError("priority", "expected an integer, got " + p->dump());
    r.priority = p->get<std::int64_t>();
  }
  if (const auto a = j.find("after"); a != j.end() && !a->is_null()) {
    if (!a->is_array()) throw FieldError("after", "expected a list of job ids");
    if (a->size() > kMaxIdsPerRequest) {
      throw FieldError("after", std::to_string(a->size()) + " ids exceed the limit of " +
                                    std::to_string(kMaxIdsPerRequest) + " per request");
    }
    for (std::size_t i = 0; i < a->size(); ++i) {
      r.after.push_back(job_id_value((*a)[i], "after[" + std::to_string(i) + "]"));
    }
  }
  return r;
}

RetryRequest decode_retry(const json& j) {
  reject_unknown(j, {"job_id"});
  const auto it = j.find("job_id");
  if (it == j.end()) throw FieldError("job_id", "required");
  return RetryRequest{job_id_value(*it, "job_id")};
}

StatusRequest decode_status(const json& j) {
  reject_unknown(j, {"job_id"});
  StatusRequest r;
  const auto it = j.find("job_id");
  if (it != j.end() && !it->is_null()) r.job_id = job_id_value(*it, "job_id");
  return r;
}

ListRequest decode_list(const json& j) {
  reject_unknown(j, {"state", "all"});
  ListRequest r;
  if (const auto it = j.find("state"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) throw FieldError("state", "expected a job state name");
    r.state = parse_job_state(it->get<std::string>());
    if (!r.state) {
      throw FieldError("state", "unknown state '" + it->get<std::string>() +
                                    "' (expected queued, running, succeeded, warning, failed or "
                                    "cancelled)");
    }
  }
  if (const auto it = j.find("all"); it != j.end()) {
    if (!it->is_boolean()) throw FieldError("all", "expected a boolean");
    r.all = it->get<bool>();
  }
  return r;
}

CancelRequest decode_cancel(const json& j) {
  reject_unknown(j, {"job_ids"});
  const auto it = j.find("job_ids");
  if (it == j.end()) throw FieldError("job_ids", "required (a list of job ids)");
  if (!it->is_array() || it->empty()) throw FieldError("job_ids", "expected a non-empty list");
  if (it->size() > kMaxIdsPerRequest) {
    throw FieldError("job_ids", std::to_string(it->size()) + " ids exceed the limit of " +
                                    std::to_string(kMaxIdsPerRequest) +
                                    " per request; send them in several requests");
  }
  CancelRequest r;
  for (std::size_t i = 0; i < it->size(); ++i) {
    r.ids.push_back(job_id_value((*it)[i], "job_ids[" + std::to_string(i) + "]"));
  }
  return r;
}

Request decode_json(const json& j) {
  check_version(j);
  const auto it = j.find("verb");
  if (it == j.end()) throw FieldError("verb", "required");
  if (!it->is_string())
    throw FieldError("verb", std::string("expected a string, got ") + it->type_name());
  const std::string verb = it->get<std::string>();
  if (verb == "enqueue") return decode_enqueue(j);
  if (verb == "status") return decode_status(j);
  if (verb == "list") return decode_list(j);
  if (verb == "cancel") return decode_cancel(j);
  if (verb == "retry") return decode_retry(j);
  if (verb == "shutdown" || verb == "workers" || verb == "stats" || verb == "config" ||
      verb == "drain" || verb == "undrain") {
    reject_unknown(j, {});
    if (verb == "workers") return WorkersRequest{};
    if (verb == "stats") return StatsRequest{};
    if (verb == "config") return ConfigRequest{};
    if (verb == "drain") return DrainRequest{};
    if (verb == "undrain") return DrainRequest{false};
    return ShutdownRequest{};
  }
  if (verb == "peers") {
    reject_unknown(j, {});
    return PeersRequest{};
  }
  throw FieldError("verb", "unknown verb '" + verb +
                               "' (expected enqueue, status, list, cancel, retry, workers, stats, "
                               "config, drain, undrain, peers or shutdown)");
}

json request_id(const json& j) {
  const auto it = j.find("id");
  return it == j.end() ? json(nullptr) : *it;
}

void ensure_ipc_directory(const std::string& endpoint) {
  if (!endpoint.starts_with("ipc://")) return;
  const std::filesystem::path dir = std::filesystem::path(endpoint.substr(6)).parent_path();
  if (dir.empty()) return;
  std::error_code ec;
  if (std::filesystem::create_directories(dir, ec)) {
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
  }
  if (ec) {
    throw Error(ErrorCategory::kIo, "control endpoint " + endpoint + ": cannot create " +
                                        dir.string() + ": " + ec.message());
  }
}

[[noreturn]] void unsupported(std::string_view verb) {
  throw Error(ErrorCategory::kConfig,
              "verb '" + std::string(verb) + "' is not supported by this server");
}

}  // namespace

std::string iso_utc(std::int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[40];
  std::snprintf(out, sizeof out, "%s.%03dZ", text, static_cast<int>(unix_ms % 1000));
  return out;
}

json ControlHandler::retry(const RetryRequest&) { unsupported("retry"); }
json ControlHandler::workers(const WorkersRequest&) { unsupported("workers"); }
json ControlHandler::stats(const StatsRequest&) { unsupported("stats"); }
json ControlHandler::config(const ConfigRequest&) { unsupported("config"); }
json ControlHandler::drain(const DrainRequest&) { unsupported("drain"); }
nlohmann::json ControlHandler::peers(const PeersRequest&) {
  return {{"node", nullptr}, {"peer_endpoint", nullptr}, {"peers", json::array()}};
}

json job_json(const JobRecord& job, const std::vector<ShardRecord>* shards,
              std::int64_t frames_pending) {
  const std::int64_t frames_integrated =
      std::min(job.frames_total, job.frames_done + std::max<std::int64_t>(0, frames_pending));
  json j{{"job_id", job.id},
         {"state", std::string(job_state_name(job.state))},
         {"datasets", job.spec.datasets},
         {"output", job.output_path},
         {"mode", std::string(mode_name(job.spec.mode))},
         {"frames_total", job.frames_total},
         {"frames_done", job.frames_done},
         {"frames_integrated", frames_integrated},
         {"frames_failed", job.frames_failed},
         {"error", job.error},
         {"created", iso_utc(job.created_unix_ms)},
         {"started", optional_time(job.started_unix_ms)},
         {"finished", optional_time(job.finished_unix_ms)},
         {"priority", job.priority},
         {"after", job.after}};
  if (job.spec.stream) j["stream_endpoint"] = job.spec.stream->endpoint;
  add_rates(j, job, frames_integrated);
  if (shards != nullptr) {
    std::int64_t queued = 0, running = 0, done = 0;
    for (const ShardRecord& s : *shards) {
      queued += s.state == ShardState::kQueued;
      running += s.state == ShardState::kRunning;
      done += s.state == ShardState::kDone;
    }
    j["shards"] = {{"total", static_cast<std::int64_t>(shards->size())},
                   {"queued", queued},
                   {"running", running},
                   {"done", done}};
  }
  return j;
}

std::pair<Request, nlohmann::json> decode_request(std::string_view text) {
  const json j = parse_message(text);
  return {decode_json(j), request_id(j)};
}

nlohmann::json error_response(const nlohmann::json& id, const std::string& field,
                              const std::string& message) {
  return json{{"v", kProtocolVersion},
              {"id", id},
              {"ok", false},
              {"error", {{"field", field}, {"message", message}}}};
}

ControlServer::ControlServer(zmq::context_t& context, const std::vector<std::string>& endpoints,
                             ControlHandler& handler, const std::string& tcp_curve_secret_z85)
    : handler_(&handler) {
  for (const std::string& endpoint : endpoints) {
    ensure_ipc_directory(endpoint);
    zmq::socket_t socket(context, zmq::socket_type::router);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::maxmsgsize, kMaxReceiveBytes);
    if (!tcp_curve_secret_z85.empty() && endpoint.starts_with("tcp://")) {
      socket.set(zmq::sockopt::curve_server, true);
      socket.set(zmq::sockopt::curve_secretkey, tcp_curve_secret_z85);
      socket.set(zmq::sockopt::zap_domain, std::string("azflow-control"));
    }
    try {
      socket.bind(endpoint);
    } catch (const zmq::error_t& e) {
      throw Error(ErrorCategory::kIo,
                  "control endpoint " + endpoint + ": cannot bind: " + std::string(e.what()));
    }
    endpoints_.push_back(socket.get(zmq::sockopt::last_endpoint));
    sockets_.push_back(std::move(socket));
  }
}

ControlServer::~ControlServer() = default;

std::size_t ControlServer::poll(std::chrono::milliseconds timeout) {
  std::vector<zmq::pollitem_t> items;
  for (zmq::socket_t& s : sockets_) items.push_back({s.handle(), 0, ZMQ_POLLIN, 0});
  try {
    if (zmq::poll(items, timeout) <= 0) return 0;
  } catch (const zmq::error_t& e) {
    if (e.num() == EINTR) return 0;  // a signal (SIGTERM): the caller looks at its stop flag
    throw;
  }
  std::size_t served = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if ((items[i].revents & ZMQ_POLLIN) == 0) continue;
    for (std::size_t n = 0; n < kMaxRequestsPerPoll && serve_one(sockets_[i]); ++n) ++served;
  }
  return served;
}

bool ControlServer::serve_one(zmq::socket_t& socket) {
  std::vector<zmq::message_t> frames;
  if (!zmq::recv_multipart(socket, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
    return false;
  }
  if (frames.size() < 2) return true;  // no identity + payload: nothing to answer
  const json response = handle(frames.back().to_string_view());
  const std::string reply = dump_escaped(response);
  frames.back().rebuild(reply.data(), reply.size());
  // Identity and the REQ delimiter (if any) go back unchanged; ROUTER drops unroutable replies.
  (void)zmq::send_multipart(socket, frames, zmq::send_flags::dontwait);
  return true;
}

nlohmann::json ControlServer::handle(std::string_view text) {
  json id = nullptr;
  try {
    const json j = parse_message(text);
    id = request_id(j);
    const Request request = decode_json(j);
    json response{{"v", kProtocolVersion}, {"id", id}, {"ok", true}, {"result", dispatch(request)}};
    if (std::holds_alternative<ShutdownRequest>(request)) shutdown_requested_ = true;
    return response;
  } catch (const FieldError& e) {
    return error_response(id, e.field(), e.message());
  } catch (const Error& e) {
    return error_response(id, "", e.what());
  } catch (const std::exception& e) {
    return error_response(id, "", std::string("internal error: ") + e.what());
  }
}

nlohmann::json ControlServer::dispatch(const Request& request) {
  json result = std::visit(
      [this](const auto& r) -> json {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, EnqueueRequest>) return handler_->enqueue(r);
        if constexpr (std::is_same_v<T, StatusRequest>) return handler_->status(r);
        if constexpr (std::is_same_v<T, ListRequest>) return handler_->list(r);
        if constexpr (std::is_same_v<T, CancelRequest>) return handler_->cancel(r);
        if constexpr (std::is_same_v<T, ShutdownRequest>) return handler_->shutdown(r);
        if constexpr (std::is_same_v<T, RetryRequest>) return handler_->retry(r);
        if constexpr (std::is_same_v<T, WorkersRequest>) return handler_->workers(r);
        if constexpr (std::is_same_v<T, StatsRequest>) return handler_->stats(r);
        if constexpr (std::is_same_v<T, ConfigRequest>) return handler_->config(r);
        if constexpr (std::is_same_v<T, DrainRequest>) return handler_->drain(r);
        if constexpr (std::is_same_v<T, PeersRequest>) return handler_->peers(r);
      },
      request);
  if (result.is_null()) result = json::object();
  if (!result.is_object()) throw Error(ErrorCategory::kInternal, "handler returned a non-object");
  return result;
}

}  // namespace azflow::daemon
