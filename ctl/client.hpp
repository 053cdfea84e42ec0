#pragma once
// azflowctl's side of JSON protocol v1 (docs/protocol.md): one request, one response, bounded
// wait.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "base/error.hpp"
#include "daemon/config.hpp"

namespace azflow::ctl {

/// The daemon answered {"ok": false}: it refused the request.
class RequestRefused : public Error {
 public:
  RequestRefused(std::string field, const std::string& message)
      : Error(ErrorCategory::kConfig,
              "azflowd refused the request: " + (field.empty() ? message : field + ": " + message)),
        field_(std::move(field)) {}
  /// JSON path of the offending request field ("" = the whole request).
  [[nodiscard]] const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

/// CurveZMQ keys of a client (Z85): the daemon's public key and the client's own pair.
struct CurveClientKeys {
  std::string server_public, client_public, client_secret;
};

/// A DEALER connection to azflowd's control endpoint. Not thread-safe (one socket).
class ControlClient {
 public:
  /// Connects (lazily, as ZeroMQ does) to `endpoint`; `timeout` bounds each request. With
  /// `curve`, the connection is a CurveZMQ client: {server public key, client public key, client
  /// secret key}, all Z85 (for azflowd's TCP control endpoint when it has federation keys).
  ControlClient(std::string endpoint, std::chrono::milliseconds timeout,
                const std::optional<CurveClientKeys>& curve = std::nullopt);
  ControlClient(const ControlClient&) = delete;
  ControlClient& operator=(const ControlClient&) = delete;

  /// Sends `request` (a JSON object with "verb" and its fields; "v" and "id" are added) and
  /// returns the response's "result". Throws azflow::Error (kIo) naming the endpoint when nothing
  /// answers within the timeout (or, for ipc://, no socket file exists) or the reply is not v1
  /// JSON; RequestRefused when the daemon answers with an error.
  nlohmann::json call(nlohmann::json request);

  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }

  /// The endpoints discovery looked at (candidate_endpoints): the "no answer" error lists them.
  void set_tried(std::vector<std::string> tried) { tried_ = std::move(tried); }

 private:
  [[noreturn]] void no_answer(const std::string& why) const;

  std::string endpoint_;
  std::chrono::milliseconds timeout_;
  zmq::context_t context_;
  zmq::socket_t socket_;
  std::int64_t next_id_ = 1;
  std::vector<std::string> tried_;
};

/// The control endpoints azflowctl looks at for `instance` when neither --endpoint nor
/// AZFLOW_ENDPOINT is given, in this order: this user's default
/// (daemon::default_control_endpoint: what azflowd started by this user binds), then the system
/// services' sockets ipc://<system_run>/azflow/<instance>.control (azflowd.service) and
/// ipc://<system_run>/azflow-<instance>/<instance>.control (azflowd@<instance>.service), which a
/// member of the azflow group may use. Duplicates removed.
std::vector<std::string> candidate_endpoints(const daemon::Environment& env,
                                             const std::string& instance,
                                             const std::filesystem::path& system_run = "/run");

/// The first of `candidates` whose ipc:// socket file exists (a tcp:// one counts as existing);
/// the first candidate if none does (its error then lists every candidate). `candidates` must
/// not be empty.
std::string choose_endpoint(const std::vector<std::string>& candidates);

}  // namespace azflow::ctl
