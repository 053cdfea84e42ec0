#pragma once
// azflowd's HTTP server (docs/http.md): the JSON API /api/v1/... on cpp-httplib's own threads,
// next to the ZeroMQ control endpoint, never blocking the daemon's main loop.
//
// Threading (why a request queue and not a published snapshot): every verb reads state that
// only the main loop may touch (the SQLite job store, the active jobs, the supervisor's slots,
// the stage observations), and the writes (enqueue, cancel, retry) must run there anyway. So an
// HTTP thread turns its request into a control-protocol v1 request object and hands it to the
// main loop through a MainLoopBridge (a mutex-protected queue); the main loop serves at most
// kMaxBridgeRequestsPerTurn of them per turn with the same ControlServer::handle() that serves
// the ZeroMQ socket (same validation, same errors), and the HTTP thread waits for the answer
// with a time limit (503 when it passes). The main loop never waits for an HTTP thread. A
// snapshot would have to copy every job and store row each turn whether or not anyone asks.
//
// Data that is not the main loop's is read on the HTTP threads themselves: frames of finished
// jobs from their output file (libhdf5 built thread-safe, as Debian's is), axes from the job's
// layout.json, frames of running jobs from a LiveCache (a subscriber of the daemon's live PUB
// endpoint on its own thread that keeps a bounded number of recently published frames per job,
// kLiveFramesPerJob, and each job's running mean) or, once out of it, from the job's committed
// shard files.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace azflow::daemon {

/// Requests handed from HTTP threads to the main loop and their answers. Thread-safe.
class MainLoopBridge {
 public:
  /// HTTP thread: queues `request` (a control-protocol v1 request object) and waits up to
  /// `timeout` for the response object ({"v","id","ok","result"|"error"}). nullopt if the main
  /// loop did not answer in time or the bridge is closed.
  std::optional<nlohmann::json> call(const nlohmann::json& request,
                                     std::chrono::milliseconds timeout);
  /// Main loop: answers queued requests in order with `handle` (request text -> response),
  /// calling it at most `max` times; returns how many requests were answered. A read (verbs
  /// list, status, stats, workers, peers) whose text equals one already answered in this call,
  /// with no other request (a write) handled since, gets that answer without a second call:
  /// the answer is the same, and a crowd of pages polling the same URL costs one call per turn.
  std::size_t serve(const std::function<nlohmann::json(std::string_view)>& handle, std::size_t max);
  /// Answers every queued and future call with nullopt (the daemon is stopping).
  void close();
  /// Requests waiting for the main loop.
  [[nodiscard]] std::size_t queued();

 private:
  struct Pending {
    std::string text;
    bool read_only = false;  ///< a verb that changes nothing (may share an answer)
    std::promise<nlohmann::json> answer;
  };
  std::mutex mutex_;
  std::deque<std::shared_ptr<Pending>> queue_;
  bool closed_ = false;
};

/// One frame as published on the live endpoint (docs/protocol.md "Live results").
struct LiveFrame {
  std::int64_t frame = 0;
  bool ok = false;
  std::string reason;        ///< failed frames
  std::vector<float> I;      ///< npt_rad or npt_azim x npt_rad values (empty if failed)
  std::vector<float> sigma;  ///< same size, or empty without an error model
};

/// An event for /api/v1/events (Server-Sent Events): `name` "frame" (from the live feed) or
/// "job" (a state change), `data` its JSON object.
struct LiveEvent {
  std::uint64_t seq = 0;
  std::string name;
  nlohmann::json data;
};

/// Frames a LiveCache keeps per job (the newest published), and jobs it keeps (least recently
/// published dropped first).
inline constexpr std::size_t kLiveFramesPerJob = 64;
inline constexpr std::size_t kLiveJobs = 16;
/// Events kept for /api/v1/events clients that fall behind (older ones are lost to them).
inline constexpr std::size_t kLiveEvents = 1024;

/// Subscriber of the daemon's live PUB endpoint (own thread): the newest kLiveFramesPerJob frames
/// of up to kLiveJobs jobs, each job's running sums over the ok frames it saw, and the event
/// feed. Like every PUB subscriber it may lose frames when it falls 1000 messages behind; what
/// it serves is what it received. Thread-safe.
class LiveCache {
 public:
  /// Connects to `live_endpoint` (ipc:// or tcp://) and starts the thread.
  explicit LiveCache(const std::string& live_endpoint);
  ~LiveCache();
  LiveCache(const LiveCache&) = delete;
  LiveCache& operator=(const LiveCache&) = delete;

  /// Frame `frame` of `job` if cached; with nullopt, the job's most recently published frame.
  [[nodiscard]] std::optional<LiveFrame> frame(std::int64_t job,
                                               std::optional<std::int64_t> frame) const;
  /// Running mean over the ok frames seen of `job` (NaN-free bins only): {"I", "sigma" (root of
  /// the summed variances over the count, or empty), "frames"}; nullopt if none seen.
  [[nodiscard]] std::optional<nlohmann::json> mean(std::int64_t job) const;
  /// Frames of `job` received (ok and failed) since this daemon started; 0 if none.
  [[nodiscard]] std::int64_t frames_seen(std::int64_t job) const;
  /// Appends an event to the feed (job state changes come from the HTTP side).
  void push_event(std::string name, nlohmann::json data);
  /// Events with seq > `after`, waiting up to `timeout` for one; the first call passes
  /// `after` = latest_seq() to get only new ones.
  [[nodiscard]] std::vector<LiveEvent> events_after(std::uint64_t after,
                                                    std::chrono::milliseconds timeout) const;
  [[nodiscard]] std::uint64_t latest_seq() const;

 private:
  struct Job {
    std::deque<LiveFrame> frames;  // arrival order, newest last
    std::vector<double> sum_I, sum_var;
    std::vector<std::uint32_t> count;
    std::int64_t seen = 0, ok = 0;
    std::uint64_t touched = 0;
  };
  void run(const std::string& endpoint);
  void add(std::int64_t job, LiveFrame frame, const nlohmann::json& header);

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::map<std::int64_t, Job> jobs_;
  std::deque<LiveEvent> events_;
  std::uint64_t seq_ = 0, tick_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

/// Where and how the HTTP server runs (from DaemonConfig).
struct HttpOptions {
  std::string listen;                 ///< "HOST:PORT" ("[::1]:PORT" for IPv6); port 0 = any free
  std::filesystem::path state_dir;    ///< http.token, jobs/<id>/layout.json
  std::filesystem::path runtime_dir;  ///< <instance>.http (the URL actually bound)
  std::string instance;
  std::string live_endpoint;
  /// How long an HTTP thread waits for the main loop before answering 503.
  std::chrono::milliseconds bridge_timeout{10000};
};

/// Requests from the bridge the main loop serves per turn at most.
inline constexpr std::size_t kMaxBridgeRequestsPerTurn = 16;

/// The bearer token in `<state_dir>/http.token`: read, or created (32 random bytes as 64 hex
/// characters, mode 0600) when missing; a file readable by others is set back to 0600 with a
/// warning. Throws azflow::Error (kIo) naming the file if it cannot be read or made.
std::string ensure_http_token(const std::filesystem::path& state_dir);

/// The HTTP server: binds at construction, serves on its own threads until destroyed.
class HttpServer {
 public:
  /// Creates the token, binds options.listen and starts the live subscriber. A bind failure (port
  /// in use, address not local) is logged as a warning and leaves the server off (bound() false):
  /// never a reason for the daemon not to start. On success logs "http: listening on URL" and
  /// writes URL to <runtime_dir>/<instance>.http (removed when destroyed). Throws azflow::Error
  /// only for a token that cannot be made.
  explicit HttpServer(HttpOptions options);
  /// Closes the bridge (waiting HTTP threads answer 503), stops listening, joins the threads.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Main loop: serves the requests HTTP threads handed over (at most kMaxBridgeRequestsPerTurn).
  std::size_t serve_pending(const std::function<nlohmann::json(std::string_view)>& handle);
  /// Whether the socket is bound and served.
  [[nodiscard]] bool bound() const noexcept { return port_ > 0; }
  /// The bound port (0 if not bound).
  [[nodiscard]] int port() const noexcept { return port_; }
  /// "http://HOST:PORT" ("" if not bound).
  [[nodiscard]] const std::string& url() const noexcept { return url_; }
  /// The file holding url().
  [[nodiscard]] std::filesystem::path url_file() const;

 private:
  struct Impl;
  HttpOptions options_;
  int port_ = 0;
  std::string url_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace azflow::daemon
