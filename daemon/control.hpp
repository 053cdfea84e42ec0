#pragma once
// The daemon's client endpoint: a ZeroMQ ROUTER speaking JSON protocol v1 (docs/protocol.md).
// ControlServer receives, validates and decodes requests into typed structs and hands them to a
// ControlHandler (the daemon's job logic); it serialises the result or the error. A malformed
// request is answered with an error and never affects the daemon.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "daemon/job_spec.hpp"
#include "daemon/job_store.hpp"

namespace azflow::daemon {

/// The protocol version this build speaks (the "v" field of every message).
inline constexpr int kProtocolVersion = 1;
/// Largest request accepted; bigger ones are answered with an error (field "").
inline constexpr std::size_t kMaxRequestBytes = std::size_t{1} << 20;
/// Most job ids one request may name (cancel's job_ids, enqueue's after): a longer list is
/// refused naming the field, so that no single request holds the main loop for long.
inline constexpr std::size_t kMaxIdsPerRequest = 10000;

/// `enqueue`: add a job.
struct EnqueueRequest {
  JobSpec spec;
  std::int64_t priority = 0;        ///< higher runs first among queued jobs (ties: lower id)
  std::vector<std::int64_t> after;  ///< jobs that must succeed first (SLURM afterok)
};
/// `status`: one job's status, or the daemon's when job_id is absent.
struct StatusRequest {
  std::optional<std::int64_t> job_id;
};
/// `list`: jobs, optionally only those in one state; finished ones only with `all`.
struct ListRequest {
  std::optional<JobState> state;
  bool all = false;
};
/// `cancel`: cancel queued or running jobs.
struct CancelRequest {
  std::vector<std::int64_t> ids;
};
/// `shutdown`: stop the daemon after answering (unfinished jobs resume at the next start).
struct ShutdownRequest {};

/// `retry`: re-run the failed frames (and unfinished shards) of a final job.
struct RetryRequest {
  std::int64_t job_id = 0;
};
/// `workers`: every stage process with its device, state, rate and input ring fill.
struct WorkersRequest {};
/// `stats`: daemon-wide counters.
struct StatsRequest {};
/// `config`: the effective configuration.
struct ConfigRequest {};
/// `drain`: accept no new jobs; accepted ones (queued and running) still run to the end.
/// `undrain` (draining = false): accept jobs again.
struct DrainRequest {
  bool draining = true;
};

/// `peers`: the federation's peers as this daemon sees them (docs/federation.md).
struct PeersRequest {};

/// Any decoded request.
using Request = std::variant<EnqueueRequest, StatusRequest, ListRequest, CancelRequest,
                             ShutdownRequest, RetryRequest, WorkersRequest, StatsRequest,
                             ConfigRequest, DrainRequest, PeersRequest>;

/// The job logic behind the endpoint, implemented by the daemon. Each method returns the JSON
/// object placed under "result" in the response (shapes in docs/protocol.md; job_json() builds
/// the job objects). To refuse a request, throw FieldError (answered with its field) or
/// azflow::Error (field ""); any other exception is answered as an internal error. Methods are
/// called on the thread that calls ControlServer::poll.
class ControlHandler {
 public:
  virtual ~ControlHandler() = default;
  /// Result: {"job_id": int, "state": "queued", "frames_total": int}.
  virtual nlohmann::json enqueue(const EnqueueRequest& request) = 0;
  /// Result with job_id: {"job": job_json(...)}; without: {"daemon": {...}}.
  virtual nlohmann::json status(const StatusRequest& request) = 0;
  /// Result: {"jobs": [job_json(...), ...]} newest first.
  virtual nlohmann::json list(const ListRequest& request) = 0;
  /// Result: {"cancelled": [ids], "not_cancelled": [{"job_id": int, "reason": str}]}.
  virtual nlohmann::json cancel(const CancelRequest& request) = 0;
  /// Result: {} (the daemon stops after this response is sent).
  virtual nlohmann::json shutdown(const ShutdownRequest& request) = 0;
  // The verbs below have a default that refuses the request (azflow::Error "not supported by
  // this server"), so that handlers serving only the five verbs above keep working.
  /// Result: {"job_id", "state": "queued", "frames_retried", "shards_queued"}.
  virtual nlohmann::json retry(const RetryRequest& request);
  /// Result: {"workers": [{"role", "worker", "pid", "device", "state", "frames_per_s",
  /// "ring", "ring_fill", ...}]}.
  virtual nlohmann::json workers(const WorkersRequest& request);
  /// Result: {"uptime_s", "jobs": {state: count}, "frames_done", "frames_failed", ...}.
  virtual nlohmann::json stats(const StatsRequest& request);
  /// Result: {"text": TOML text (describe()), "config": the same as a JSON object}.
  virtual nlohmann::json config(const ConfigRequest& request);
  /// Result: {"draining": request.draining, "active_jobs": [ids]}.
  virtual nlohmann::json drain(const DrainRequest& request);
  /// Result: {"node", "peer_endpoint", "public_key", "refused_connections", "peers": [...]}
  /// (docs/protocol.md "peers"); this default answers for a daemon without federation.
  virtual nlohmann::json peers(const PeersRequest& request);
};

/// A Unix time in milliseconds as ISO 8601 UTC with milliseconds, "2026-11-21T13:45:37.818Z"
/// (the protocol's timestamps).
std::string iso_utc(std::int64_t unix_ms);

/// The protocol's job object (docs/protocol.md "Job object"): id, state, datasets, output,
/// frames_total/done/failed, frames_integrated (frames_done, counted when a shard is done, plus
/// `frames_pending`: frames already reduced in shards not done yet), error,
/// created/started/finished (ISO 8601 UTC or null), priority, after, elapsed_s / frames_per_s /
/// eta_s (from started, finished or now, and frames_integrated), and, when `shards` is given, a
/// shard summary {"total","queued","running","done"}.
nlohmann::json job_json(const JobRecord& job, const std::vector<ShardRecord>* shards = nullptr,
                        std::int64_t frames_pending = 0);

/// Decodes one request message (the JSON text) into a typed request and the client's "id" (any
/// JSON value, echoed; null if absent). Throws FieldError naming the field for anything invalid
/// (field "" for text that is not a JSON object or is too large).
std::pair<Request, nlohmann::json> decode_request(std::string_view text);

/// A v1 error response: {"v":1,"id":id,"ok":false,"error":{"field":field,"message":message}}.
nlohmann::json error_response(const nlohmann::json& id, const std::string& field,
                              const std::string& message);

/// ROUTER socket(s) bound to the control endpoint(s). Works with REQ and DEALER clients (an
/// empty delimiter frame is echoed when present). One thread only (the daemon's main loop).
class ControlServer {
 public:
  /// Binds `endpoints` (e.g. {ipc://..., tcp://...}); for ipc:// endpoints the socket's directory
  /// is created (mode 0700). With `tcp_curve_secret_z85`, tcp:// endpoints are CurveZMQ servers
  /// with that secret key (clients are checked by the context's ZAP handler). `handler` must
  /// outlive the server. Throws azflow::Error (kIo) naming the endpoint if a bind fails.
  ControlServer(zmq::context_t& context, const std::vector<std::string>& endpoints,
                ControlHandler& handler, const std::string& tcp_curve_secret_z85 = "");
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  /// Waits up to `timeout` for requests and serves every one that is ready. Returns how many
  /// requests were answered (0 on timeout or when a signal interrupts the wait).
  std::size_t poll(std::chrono::milliseconds timeout);

  /// True once a shutdown request has been answered.
  [[nodiscard]] bool shutdown_requested() const noexcept { return shutdown_requested_; }

  /// The endpoints actually bound (tcp://*:0 resolved to its port).
  [[nodiscard]] const std::vector<std::string>& endpoints() const noexcept { return endpoints_; }

  /// Serves one request text; returns the response JSON (exposed for tests and in-process use).
  nlohmann::json handle(std::string_view text);

 private:
  bool serve_one(zmq::socket_t& socket);
  nlohmann::json dispatch(const Request& request);

  ControlHandler* handler_;
  std::vector<zmq::socket_t> sockets_;
  std::vector<std::string> endpoints_;
  bool shutdown_requested_ = false;
};

}  // namespace azflow::daemon
