#include "sim/simplon_rest.hpp"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <utility>

#include "base/error.hpp"

namespace azflow::sim {

namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kCommandPrefix = "/detector/api/1.8.0/command/";
constexpr const char* kModePath = "/stream/api/1.8.0/config/mode";

/// A detector command, as its path names it.
enum class Command { kArm, kTrigger, kDisarm };

/// The HTTP answer to a command.
struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
};

/// Commands from the HTTP threads to the sending thread; each carries the promise of its reply.
class CommandQueue {
 public:
  struct Item {
    Command command;
    std::promise<Reply> reply;
  };

  std::future<Reply> push(Command command) {
    auto item = std::make_shared<Item>(Item{command, {}});
    std::future<Reply> answer = item->reply.get_future();
    {
      std::lock_guard lock(mutex_);
      if (closed_) {
        item->reply.set_value({503, "the simulator is stopping\n", "text/plain"});
        return answer;
      }
      items_.push_back(std::move(item));
    }
    ready_.notify_one();
    return answer;
  }

  /// The next command, waiting up to `wait`; nullptr when none came.
  std::shared_ptr<Item> pop(std::chrono::milliseconds wait) {
    std::unique_lock lock(mutex_);
    ready_.wait_for(lock, wait, [this] { return !items_.empty(); });
    if (items_.empty()) return nullptr;
    auto item = std::move(items_.front());
    items_.pop_front();
    return item;
  }

  /// Refuses new commands and answers the queued ones with 503.
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    for (auto& item : items_)
      item->reply.set_value({503, "the simulator is stopping\n", "text/plain"});
    items_.clear();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::shared_ptr<Item>> items_;
  bool closed_ = false;
};

/// "HOST:PORT" split; throws kConfig naming --rest when malformed.
std::pair<std::string, int> parse_host_port(const std::string& rest) {
  const std::size_t colon = rest.rfind(':');
  int port = -1;
  if (colon != std::string::npos && colon > 0) {
    const char* first = rest.data() + colon + 1;
    const char* last = rest.data() + rest.size();
    const auto [end, ec] = std::from_chars(first, last, port);
    if (ec != std::errc() || end != last || first == last) port = -1;
  }
  if (port < 0 || port > 65535) {
    throw Error(ErrorCategory::kConfig,
                "--rest: expected HOST:PORT (port 0-65535, 0 = any), got '" + rest + "'");
  }
  return {rest.substr(0, colon), port};
}

Reply sequence_id(std::uint64_t id) { return {200, nlohmann::json{{"sequence id", id}}.dump()}; }

Reply refused(const std::string& why) { return {400, why + "\n", "text/plain"}; }

/// The detector's state machine, on the sending thread: idle -> armed -> triggered -> idle.
class Detector {
 public:
  Detector(const SimOptions& options, SeriesSender& sender, const std::atomic<bool>& enabled)
      : options_(options), sender_(sender), enabled_(enabled) {}

  Reply run(Command command, const std::stop_token& stop) {
    switch (command) {
      case Command::kArm:
        return arm(stop);
      case Command::kTrigger:
        return trigger(stop);
      case Command::kDisarm:
        return disarm(stop);
    }
    return refused("unknown command");
  }

 private:
  Reply arm(const std::stop_token& stop) {
    if (armed_) return refused("arm: the detector is armed already (disarm first)");
    series_id_ = next_series_id_++;
    streaming_ = enabled_.load();
    triggered_ = false;
    armed_ = true;
    if (streaming_ && !sender_.start(series_id_, stop)) return {503, "stopped\n", "text/plain"};
    return sequence_id(series_id_);
  }

  Reply trigger(const std::stop_token& stop) {
    if (!armed_) return refused("trigger: the detector is not armed");
    if (triggered_) return refused("trigger: this series was triggered already (ntrigger 1)");
    triggered_ = true;
    const Clock::time_point t0 = Clock::now();
    for (std::size_t i = 0; streaming_ && i < sender_.frames(); ++i) {
      const Clock::time_point when =
          options_.rate_fps > 0
              ? t0 + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(static_cast<double>(i) / options_.rate_fps))
              : t0;
      while (Clock::now() < when && !stop.stop_requested()) {  // paced, and stoppable
        std::this_thread::sleep_until(std::min(when, Clock::now() + std::chrono::milliseconds(50)));
      }
      if (!sender_.image(i, stop)) return {503, "stopped\n", "text/plain"};
    }
    return {200, "", "text/plain"};
  }

  Reply disarm(const std::stop_token& stop) {
    if (!armed_) return sequence_id(series_id_);  // nothing to end, as a DCU answers
    armed_ = false;
    if (streaming_ && !sender_.end(stop)) return {503, "stopped\n", "text/plain"};
    return sequence_id(series_id_);
  }

  const SimOptions& options_;
  SeriesSender& sender_;
  const std::atomic<bool>& enabled_;
  std::uint64_t next_series_id_ = options_.first_series_id;
  std::uint64_t series_id_ = 0;
  bool armed_ = false, triggered_ = false, streaming_ = false;
};

nlohmann::json mode_document(bool enabled) {
  return {{"value", enabled ? "enabled" : "disabled"},
          {"value_type", "string"},
          {"access_mode", "rw"},
          {"allowed_values", {"enabled", "disabled"}}};
}

/// PUT of the stream mode: body {"value": "enabled"|"disabled"}.
void put_mode(const httplib::Request& req, httplib::Response& res, std::atomic<bool>& enabled) {
  const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
  const auto value = body.is_object() ? body.find("value") : body.end();
  if (value == body.end() || !value->is_string() || (*value != "enabled" && *value != "disabled")) {
    res.status = 400;
    res.set_content("mode: expected {\"value\": \"enabled\"} or {\"value\": \"disabled\"}\n",
                    "text/plain");
    return;
  }
  enabled = *value == "enabled";
  res.set_content(nlohmann::json::array({"mode"}).dump(), "application/json");
}

void add_routes(httplib::Server& server, CommandQueue& queue, std::atomic<bool>& enabled) {
  const std::pair<const char*, Command> commands[] = {
      {"arm", Command::kArm}, {"trigger", Command::kTrigger}, {"disarm", Command::kDisarm}};
  for (const auto& [name, command] : commands) {
    server.Put(std::string(kCommandPrefix) + name,
               [&queue, command](const httplib::Request&, httplib::Response& res) {
                 const Reply r = queue.push(command).get();
                 res.status = r.status;
                 res.set_content(r.body, r.content_type);
               });
  }
  server.Get(kModePath, [&enabled](const httplib::Request&, httplib::Response& res) {
    res.set_content(mode_document(enabled.load()).dump(), "application/json");
  });
  server.Put(kModePath, [&enabled](const httplib::Request& req, httplib::Response& res) {
    put_mode(req, res, enabled);
  });
}

/// The HTTP server listening on `rest`, on its own thread until destroyed.
class RestServer {
 public:
  RestServer(const std::string& rest, CommandQueue& queue, std::atomic<bool>& enabled) {
    const auto [host, port] = parse_host_port(rest);
    add_routes(server_, queue, enabled);
    port_ =
        port == 0 ? server_.bind_to_any_port(host) : (server_.bind_to_port(host, port) ? port : -1);
    if (port_ <= 0) throw Error(ErrorCategory::kIo, "--rest: cannot listen on " + rest);
    host_ = host;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~RestServer() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  RestServer(const RestServer&) = delete;
  RestServer& operator=(const RestServer&) = delete;

  [[nodiscard]] std::string address() const { return host_ + ":" + std::to_string(port_); }

 private:
  httplib::Server server_;
  std::string host_;
  int port_ = -1;
  std::thread thread_;
};

}  // namespace

SimStats serve_rest(const SimOptions& options, const std::string& rest, std::stop_token stop,
                    const std::function<void(const std::string&)>& on_bound,
                    const std::function<void(const std::string&)>& on_rest) {
  check_options(options);
  parse_host_port(rest);
  source::Dataset d = source::Dataset::open(options.master);
  zmq::context_t context(1);
  zmq::socket_t socket = bind_push(options, context, on_bound);
  SimStats stats;
  SeriesSender sender(options, d, socket, stats);
  std::atomic<bool> enabled{true};
  CommandQueue queue;
  Detector detector(options, sender, enabled);
  const Clock::time_point t0 = Clock::now();
  {
    RestServer server(rest, queue, enabled);
    if (on_rest) on_rest(server.address());
    while (!stop.stop_requested()) {
      if (auto item = queue.pop(std::chrono::milliseconds(100))) {
        item->reply.set_value(detector.run(item->command, stop));
      }
    }
    queue.close();
  }
  stats.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return stats;
}

}  // namespace azflow::sim
