#include "daemon/http_server.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <stdexcept>

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "base/error.hpp"
#include "daemon/config.hpp"
#include "daemon/http_api.hpp"
#include "daemon/json_text.hpp"
#include "daemon/web_assets.hpp"

namespace azflow::daemon {

namespace {

/// Server threads: connections beyond them wait in cpp-httplib's queue.
constexpr std::size_t kHttpThreads = 24;
/// A client that sends nothing for this long is dropped (a stalled client holds one thread).
constexpr time_t kReadTimeout_s = 3;
constexpr time_t kKeepAliveTimeout_s = 1;
/// Connections the kernel queues before the server accepts them.
constexpr int kListenBacklog = 512;
constexpr std::size_t kMaxBodyBytes = std::size_t{1} << 20;  // as the control protocol
constexpr std::chrono::milliseconds kLivePoll{100};

std::vector<float> floats_of(const zmq::message_t& m) {
  std::vector<float> out(m.size() / sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), m.data(), out.size() * sizeof(float));
  return out;
}

}  // namespace

// ---------------------------------------------------------------- MainLoopBridge

std::optional<nlohmann::json> MainLoopBridge::call(const nlohmann::json& request,
                                                   std::chrono::milliseconds timeout) {
  static const std::set<std::string, std::less<>> kReads{"list", "status", "stats", "workers",
                                                         "peers"};
  auto pending = std::make_shared<Pending>();
  pending->text = dump_escaped(request);
  const auto verb = request.find("verb");
  pending->read_only = verb != request.end() && verb->is_string() &&
                       kReads.contains(verb->get_ref<const std::string&>());
  std::future<nlohmann::json> answer = pending->answer.get_future();
  {
    std::lock_guard lock(mutex_);
    if (closed_) return std::nullopt;
    queue_.push_back(pending);
  }
  if (answer.wait_for(timeout) != std::future_status::ready) {
    std::lock_guard lock(mutex_);
    std::erase(queue_, pending);  // not served yet: the main loop will not see it
    return std::nullopt;
  }
  try {
    return answer.get();
  } catch (const std::exception&) {  // closed while queued
    return std::nullopt;
  }
}

std::size_t MainLoopBridge::serve(const std::function<nlohmann::json(std::string_view)>& handle,
                                  std::size_t max) {
  std::size_t served = 0, calls = 0;
  std::map<std::string, nlohmann::json, std::less<>> answered;  // read text -> its answer
  while (true) {
    std::shared_ptr<Pending> next;
    {
      std::lock_guard lock(mutex_);
      if (queue_.empty()) break;
      const auto& front = queue_.front();
      if (calls >= max && !(front->read_only && answered.contains(front->text))) break;
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    if (next->read_only) {
      if (const auto it = answered.find(next->text); it != answered.end()) {
        next->answer.set_value(it->second);
        ++served;
        continue;
      }
    }
    nlohmann::json response = handle(next->text);
    ++calls;
    if (next->read_only) {
      answered.emplace(next->text, response);
    } else {
      answered.clear();  // a write ran: later reads see its effect
    }
    next->answer.set_value(std::move(response));
    ++served;
  }
  return served;
}

std::size_t MainLoopBridge::queued() {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void MainLoopBridge::close() {
  std::deque<std::shared_ptr<Pending>> left;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    left.swap(queue_);
  }
  // the callers hold their Pending too: wake them now (they answer 503), not at their timeout
  for (const auto& pending : left) {
    pending->answer.set_exception(
        std::make_exception_ptr(std::runtime_error("azflowd is stopping")));
  }
}

// ---------------------------------------------------------------- LiveCache

LiveCache::LiveCache(const std::string& live_endpoint)
    : thread_([this, live_endpoint] { run(live_endpoint); }) {}

LiveCache::~LiveCache() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void LiveCache::run(const std::string& endpoint) {
  try {
    zmq::context_t context{1};
    zmq::socket_t sub(context, zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    sub.set(zmq::sockopt::subscribe, "job.");
    sub.connect(endpoint);
    while (!stop_) {
      zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, kLivePoll) <= 0) continue;
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(sub, std::back_inserter(parts), zmq::recv_flags::dontwait)) {
        continue;
      }
      if (parts.size() != 4) continue;
      const auto header = nlohmann::json::parse(parts[1].to_string_view(), nullptr, false);
      if (!header.is_object() || !header.contains("job") || !header.contains("frame")) continue;
      LiveFrame f;
      f.frame = header.value("frame", std::int64_t{0});
      f.ok = header.value("status", "") == "ok";
      f.reason = header.value("reason", "");
      f.I = floats_of(parts[2]);
      f.sigma = floats_of(parts[3]);
      add(header.value("job", std::int64_t{0}), std::move(f), header);
    }
  } catch (const std::exception& e) {
    spdlog::error("http: live subscriber stopped: {}", e.what());
  }
}

void LiveCache::add(std::int64_t job_id, LiveFrame frame, const nlohmann::json& header) {
  std::lock_guard lock(mutex_);
  Job& job = jobs_[job_id];
  job.touched = ++tick_;
  ++job.seen;
  if (frame.ok && !frame.I.empty()) {
    if (job.sum_I.size() != frame.I.size()) {  // first frame (or a changed shape): start over
      job.sum_I.assign(frame.I.size(), 0.0);
      job.sum_var.assign(frame.I.size(), 0.0);
      job.count.assign(frame.I.size(), 0);
      job.ok = 0;
    }
    ++job.ok;
    const bool with_sigma = frame.sigma.size() == frame.I.size();
    for (std::size_t i = 0; i < frame.I.size(); ++i) {
      if (!std::isfinite(frame.I[i])) continue;
      job.sum_I[i] += frame.I[i];
      if (with_sigma) job.sum_var[i] += double(frame.sigma[i]) * frame.sigma[i];
      ++job.count[i];
    }
  }
  nlohmann::json event = {
      {"job", job_id},
      {"frame", frame.frame},
      {"status", frame.ok ? "ok" : "failed"},
      {"unit", header.value("unit", "")},
      {"url", "/api/v1/jobs/" + std::to_string(job_id) + "/frames/" + std::to_string(frame.frame)},
      {"axes", "/api/v1/jobs/" + std::to_string(job_id) + "/axes"}};
  if (!frame.ok) event["reason"] = frame.reason;
  job.frames.push_back(std::move(frame));
  if (job.frames.size() > kLiveFramesPerJob) job.frames.pop_front();
  while (jobs_.size() > kLiveJobs) {
    const auto oldest = std::min_element(
        jobs_.begin(), jobs_.end(),
        [](const auto& a, const auto& b) { return a.second.touched < b.second.touched; });
    jobs_.erase(oldest);
  }
  events_.push_back({++seq_, "frame", std::move(event)});
  if (events_.size() > kLiveEvents) events_.pop_front();
  changed_.notify_all();
}

std::optional<LiveFrame> LiveCache::frame(std::int64_t job,
                                          std::optional<std::int64_t> frame) const {
  std::lock_guard lock(mutex_);
  const auto it = jobs_.find(job);
  if (it == jobs_.end() || it->second.frames.empty()) return std::nullopt;
  const auto& frames = it->second.frames;
  if (!frame) return frames.back();
  for (auto f = frames.rbegin(); f != frames.rend(); ++f) {
    if (f->frame == *frame) return *f;
  }
  return std::nullopt;
}

std::optional<nlohmann::json> LiveCache::mean(std::int64_t job) const {
  std::lock_guard lock(mutex_);
  const auto it = jobs_.find(job);
  if (it == jobs_.end() || it->second.ok == 0) return std::nullopt;
  const Job& j = it->second;
  const double nan = std::nan("");
  std::vector<double> I(j.sum_I.size(), nan), sigma(j.sum_I.size(), nan);
  bool any_sigma = false;
  for (std::size_t i = 0; i < I.size(); ++i) {
    if (j.count[i] == 0) continue;
    I[i] = j.sum_I[i] / j.count[i];
    sigma[i] = std::sqrt(j.sum_var[i]) / j.count[i];
    any_sigma = any_sigma || j.sum_var[i] > 0;
  }
  return nlohmann::json{{"I", I},
                        {"sigma", any_sigma ? nlohmann::json(sigma) : nlohmann::json(nullptr)},
                        {"frames", j.ok}};
}

std::int64_t LiveCache::frames_seen(std::int64_t job) const {
  std::lock_guard lock(mutex_);
  const auto it = jobs_.find(job);
  return it == jobs_.end() ? 0 : it->second.seen;
}

void LiveCache::push_event(std::string name, nlohmann::json data) {
  std::lock_guard lock(mutex_);
  events_.push_back({++seq_, std::move(name), std::move(data)});
  if (events_.size() > kLiveEvents) events_.pop_front();
  changed_.notify_all();
}

std::vector<LiveEvent> LiveCache::events_after(std::uint64_t after,
                                               std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return seq_ > after; });
  std::vector<LiveEvent> out;
  for (const LiveEvent& e : events_) {
    if (e.seq > after) out.push_back(e);
  }
  return out;
}

std::uint64_t LiveCache::latest_seq() const {
  std::lock_guard lock(mutex_);
  return seq_;
}

// ---------------------------------------------------------------- token

std::string ensure_http_token(const std::filesystem::path& state_dir) {
  const std::filesystem::path path = state_dir / "http.token";
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    std::random_device random;
    static constexpr char kHex[] = "0123456789abcdef";
    std::string token;
    for (int i = 0; i < 32; ++i) {
      const unsigned byte = random() & 0xFFu;
      token += kHex[byte >> 4];
      token += kHex[byte & 0xF];
    }
    const std::string line = token + "\n";
    const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::close(fd);
    if (!written) throw Error(ErrorCategory::kIo, "cannot write the HTTP token " + path.string());
    spdlog::info("http: created the API token {} (mode 0600)", path.string());
    return token;
  }
  if (errno != EEXIST) {
    throw Error(ErrorCategory::kIo,
                "cannot create the HTTP token " + path.string() + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 0077) != 0) {
    spdlog::warn("http: {} was readable by others; set to mode 0600", path.string());
    ::chmod(path.c_str(), 0600);
  }
  std::ifstream in(path);
  std::string token;
  in >> token;
  if (token.empty()) {
    throw Error(ErrorCategory::kIo, "the HTTP token " + path.string() +
                                        " is empty or unreadable (remove it: a new one is made)");
  }
  return token;
}

// ---------------------------------------------------------------- HttpServer

struct HttpServer::Impl {
  MainLoopBridge bridge;
  std::unique_ptr<LiveCache> live;
  HttpApiContext context;
  httplib::Server server;
  std::thread thread;
};

HttpServer::HttpServer(HttpOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {
  const auto [host, port] = parse_listen(options_.listen, "http.listen");
  impl_->context.token = ensure_http_token(options_.state_dir);
  impl_->context.bridge = &impl_->bridge;
  impl_->context.state_dir = options_.state_dir;
  impl_->context.bridge_timeout = options_.bridge_timeout;
  httplib::Server& s = impl_->server;
  s.new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  s.set_read_timeout(kReadTimeout_s, 0);
  s.set_write_timeout(kReadTimeout_s, 0);
  s.set_keep_alive_timeout(kKeepAliveTimeout_s);
  s.set_payload_max_length(kMaxBodyBytes);
  // cpp-httplib's default sets SO_REUSEPORT, which lets a second daemon bind the same port (the
  // kernel then shares connections between them): SO_REUSEADDR only, so a port in use fails.
  auto listening = std::make_shared<std::atomic<int>>(-1);
  s.set_socket_options([listening](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listening->store(sock);
  });
  add_api_routes(s, impl_->context);
  add_page_routes(s);
  if (port == 0) {
    port_ = s.bind_to_any_port(host);
  } else if (s.bind_to_port(host, port)) {
    port_ = port;
  }
  if (port_ <= 0) {
    port_ = 0;
    spdlog::warn("http: cannot listen on {} (port in use or address not local): HTTP API off",
                 options_.listen);
    return;
  }
  // Debian's build listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled into the
  // library): connections beyond it wait for SYN retries (1 s, 3 s, ...). Listening again on the
  // bound socket raises the backlog (Linux listen(2) updates it).
  if (listening->load() >= 0 && ::listen(listening->load(), kListenBacklog) != 0) {
    spdlog::warn("http: cannot raise the listen backlog to {}: {}", kListenBacklog,
                 std::strerror(errno));
  }
  impl_->live = std::make_unique<LiveCache>(options_.live_endpoint);  // before any request
  impl_->context.live = impl_->live.get();
  const bool v6 = host.find(':') != std::string::npos;
  url_ = "http://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port_);
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  spdlog::info("http: listening on {} (URL in {})", url_, url_file().string());
  std::ofstream(url_file()) << url_ << "\n";  // after the log line: a reader of it finds both
}

HttpServer::~HttpServer() {
  impl_->context.stopping = true;
  impl_->bridge.close();
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  if (!url_.empty()) {
    std::error_code ec;
    std::filesystem::remove(url_file(), ec);
  }
}

std::size_t HttpServer::serve_pending(
    const std::function<nlohmann::json(std::string_view)>& handle) {
  return impl_->bridge.serve(handle, kMaxBridgeRequestsPerTurn);
}

std::filesystem::path HttpServer::url_file() const {
  return options_.runtime_dir / (options_.instance + ".http");
}

}  // namespace azflow::daemon
