#pragma once
// Support for the federation tests: azflowd nodes on loopback TCP (each with its own temporary
// state, runtime folder and instance name, a shared trusted-keys folder), started with a
// [federation] configuration, and helpers to read their peers table and outputs.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <memory>
#include <set>

#include "tests/daemon/daemon_test_support.hpp"
#include "tests/reduce/h5_read.hpp"

namespace azflow::testing {

/// A free TCP port on 127.0.0.1 (bound and released; the daemon binds it right after).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// One azflowd node of a test federation. The key pair is made with `azflowd keygen` and its
/// public key copied into `trusted` (unless `trusted` is empty).
class Node {
 public:
  Node(std::string name, const fs::path& trusted_for_others)
      : name_(std::move(name)), port_(free_port()) {
    const CommandResult r = run_command(std::string(AZFLOWD_BIN) + " keygen --state-dir " +
                                        quote(state().string()) + " --node " + name_);
    EXPECT_EQ(r.code, 0) << r.output;
    if (!trusted_for_others.empty()) {
      fs::create_directories(trusted_for_others);
      fs::copy_file(state() / "curve" / (name_ + ".pub"), trusted_for_others / (name_ + ".pub"),
                    fs::copy_options::overwrite_existing);
    }
  }

  /// Starts azflowd: 1 + 1 workers, 10 frames per shard, heartbeats every 200 ms, lost after
  /// 1 s, keys trusted from `trusted`, plus `federation_toml` lines in [federation] (federation
  /// off unless `federated`) and `top_toml` top-level lines, with `env` in its environment.
  void start(const fs::path& trusted, const std::string& federation_toml,
             const std::map<std::string, std::string>& env = {}, bool federated = true,
             const std::string& top_toml = "") {
    const fs::path config = space_.path("azflowd.toml");
    std::ofstream out(config);
    out << "shard_frames = 10\n" << top_toml << "\n";
    if (federated) {
      out << "[federation]\nnode = \"" << name_ << "\"\npeer_endpoint = \"" << endpoint()
          << "\"\ntrusted_keys_dir = \"" << trusted.string()
          << "\"\nheartbeat_ms = 200\nlost_after_ms = 1000\n"
          << federation_toml << "\n";
    }
    out << "[http]\nlisten = \"\"\n";  // test daemons leave port 8770 alone
    out.close();
    std::vector<std::string> args = {AZFLOWD_BIN,
                                     "--config",
                                     config.string(),
                                     "--instance",
                                     space_.instance(),
                                     "--state-dir",
                                     state().string(),
                                     "--runtime-dir",
                                     space_.path("run").string(),
                                     "--workers",
                                     "1",
                                     "--integrate-workers",
                                     "1",
                                     "--log-level",
                                     "debug"};
    log_ = space_.path("azflowd-" + std::to_string(++starts_) + ".log");
    pid_ = spawn(args, log_, env);
    client_ = std::make_unique<ControlClient>(control());
    EXPECT_TRUE(client_->wait_ready()) << name_ << ": " << log();
  }

  ~Node() { stop(SIGKILL); }
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// Sends `signal`; for SIGKILL/SIGTERM waits for the exit.
  void stop(int signal) {
    if (pid_ <= 0) return;
    if (signal == SIGCONT || signal == SIGSTOP) {
      ::kill(pid_, signal);
      return;
    }
    ::kill(pid_, SIGCONT);
    std::map<std::string, pid_t> stages;
    if (signal == SIGKILL && client_) stages = stage_pids(*client_);
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
    for (const auto& [role, pid] : stages) {  // a killed daemon leaves its stages behind
      if (pid > 0) ::kill(pid, SIGKILL);
    }
    if (signal == SIGKILL) ipc::remove_instance_segments(space_.instance());
  }

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::string address() const { return name_ + "@" + endpoint(); }
  [[nodiscard]] fs::path state() const { return space_.path("state"); }
  [[nodiscard]] std::string control() const {
    return "ipc://" + space_.path("run").string() + "/" + space_.instance() + ".control";
  }
  [[nodiscard]] ControlClient& client() { return *client_; }
  [[nodiscard]] std::string log() const {
    std::ifstream in(log_);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  /// The job's events.log (shard hand-outs and returns).
  [[nodiscard]] std::string events(std::int64_t job) const {
    std::ifstream in(state() / "jobs" / std::to_string(job) / "events.log");
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  /// The peers result of this node.
  json peers() { return client_->result({{"verb", "peers"}}); }
  /// The state of peer `node` in this node's table ("" if absent).
  std::string peer_state(const std::string& node) {
    for (const json& p : peers().value("peers", json::array())) {
      if (p.value("node", "") == node) return p.value("state", "");
    }
    return "";
  }

 private:
  TempSpace space_;
  std::string name_;
  int port_;
  fs::path log_;
  pid_t pid_ = 0;
  int starts_ = 0;
  std::unique_ptr<ControlClient> client_;
};

/// Polls `predicate` until it holds or `timeout`; false on timeout.
template <typename Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (predicate()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

/// The output of a job: I and sigma rows, the dataset sums, the failed frames and reasons.
struct JobOutput {
  std::vector<double> I, sigma, sum_signal, sum_variance, sum_normalization, sum_count;
  std::vector<double> failed_frames;
  std::vector<std::string> failed_reasons;

  static JobOutput read(const std::string& path) {
    H5File f(path);
    JobOutput o;
    o.I = f.doubles("/entry/integrate/I");
    o.sigma = f.doubles("/entry/integrate/I_errors");
    o.sum_signal = f.doubles("/entry/sum/sum_signal");
    o.sum_variance = f.doubles("/entry/sum/sum_variance");
    o.sum_normalization = f.doubles("/entry/sum/sum_normalization");
    o.sum_count = f.doubles("/entry/sum/sum_count");
    o.failed_frames = f.doubles("/entry/process/failed_frames/frame");
    o.failed_reasons = f.strings("/entry/process/failed_frames/reason");
    return o;
  }
};

/// Every value equal, or both NaN, or within 1e-12 relative.
inline void expect_close(const std::vector<double>& a, const std::vector<double>& b,
                         const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  std::size_t bad = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const bool same = (std::isnan(a[i]) && std::isnan(b[i])) || a[i] == b[i] ||
                      std::abs(a[i] - b[i]) <= 1e-12 * std::max(std::abs(a[i]), std::abs(b[i]));
    if (!same && ++bad < 5) ADD_FAILURE() << what << "[" << i << "]: " << a[i] << " vs " << b[i];
  }
  EXPECT_EQ(bad, 0u) << what;
}

/// Two outputs hold the same results (rows, sums, failed frames; reasons if `reasons`).
inline void expect_same_output(const std::string& path, const std::string& ref_path, bool reasons) {
  const JobOutput a = JobOutput::read(path), b = JobOutput::read(ref_path);
  expect_close(a.I, b.I, "I");
  expect_close(a.sigma, b.sigma, "I_errors");
  expect_close(a.sum_signal, b.sum_signal, "sum_signal");
  expect_close(a.sum_variance, b.sum_variance, "sum_variance");
  expect_close(a.sum_normalization, b.sum_normalization, "sum_normalization");
  expect_close(a.sum_count, b.sum_count, "sum_count");
  EXPECT_EQ(a.failed_frames, b.failed_frames);
  if (reasons) {
    EXPECT_EQ(a.failed_reasons, b.failed_reasons);
  }
}

}  // namespace azflow::testing
