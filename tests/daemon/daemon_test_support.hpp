#pragma once
// Support for azflowd's integration tests: temporary folders, a real azflowd process (binary path
// from the AZFLOWD_BIN compile definition) on its own instance name, a real ZeroMQ client of its
// control endpoint, generated Eiger-style series (tests/daemon/fixtures/make_series.py) and
// `azflow integrate` runs of the same data as references.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "ipc/ring.hpp"
#include "tests/common/command.hpp"
#include "tests/reduce/h5_read.hpp"

namespace azflow::testing {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

inline const fs::path kCliFixtures = fs::path(AZFLOW_SOURCE_DIR_PATH) / "tests/cli/fixtures";
inline const fs::path kSeriesScript =
    fs::path(AZFLOW_SOURCE_DIR_PATH) / "tests/daemon/fixtures/make_series.py";

/// A per-test temporary folder and a unique daemon instance name; removed at the end.
class TempSpace {
 public:
  TempSpace() {
    // short: ipc:// socket paths must stay under 108 bytes
    static int counter = 0;
    instance_ = "t" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    root_ = fs::temp_directory_path() / ("azd_" + instance_);
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~TempSpace() {
    ipc::remove_instance_segments(instance_);
    std::error_code ec;
    fs::remove("/dev/shm/azflow-lock." + instance_, ec);  // azflowd's instance lock file
    fs::remove_all(root_, ec);
  }
  TempSpace(const TempSpace&) = delete;
  TempSpace& operator=(const TempSpace&) = delete;

  [[nodiscard]] const fs::path& root() const { return root_; }
  [[nodiscard]] const std::string& instance() const { return instance_; }
  [[nodiscard]] fs::path path(const std::string& name) const { return root_ / name; }

 private:
  fs::path root_;
  std::string instance_;
};

/// Starts `args` (args[0]: the executable) as a child process with `env` added to its
/// environment and stderr sent to `log`; returns its pid.
inline pid_t spawn(std::vector<std::string> args, const fs::path& log,
                   const std::map<std::string, std::string>& env = {}) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::FILE* err = std::freopen(log.c_str(), "w", stderr);
    (void)err;
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

/// A running azflowd. Stopped with SIGTERM (then SIGKILL) when destroyed.
class DaemonProcess {
 public:
  /// Starts azflowd on `space` (state and runtime folders inside it) with `workers` and the extra
  /// TOML text `toml` (written to a config file), with `env` set in its environment.
  DaemonProcess(const TempSpace& space, std::size_t workers, const std::string& toml = "",
                const std::map<std::string, std::string>& env = {})
      : space_(space), log_(space.path("azflowd-" + std::to_string(++starts()) + ".log")) {
    const fs::path config = space.path("azflowd.toml");
    std::ofstream out(config);
    out << "shard_frames = 50\n" << toml;
    // test daemons leave port 8770 alone unless the test configures [http]
    if (toml.find("[http]") == std::string::npos) out << "\n[http]\nlisten = \"\"\n";
    out.close();
    std::vector<std::string> args = {AZFLOWD_BIN,
                                     "--config",
                                     config.string(),
                                     "--instance",
                                     space.instance(),
                                     "--state-dir",
                                     space.path("state").string(),
                                     "--runtime-dir",
                                     space.path("run").string(),
                                     "--workers",
                                     std::to_string(workers),
                                     "--integrate-workers",
                                     std::to_string(workers),
                                     "--log-level",
                                     "debug"};
    pid_ = spawn(args, log_, env);
  }
  ~DaemonProcess() {
    if (pid_ > 0) stop(SIGTERM);
  }
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] std::string endpoint() const {
    return "ipc://" + space_.path("run").string() + "/" + space_.instance() + ".control";
  }
  [[nodiscard]] std::string live_endpoint() const {
    return "ipc://" + space_.path("run").string() + "/" + space_.instance() + ".live";
  }
  [[nodiscard]] std::string stages_endpoint() const {
    return "ipc://" + space_.path("run").string() + "/" + space_.instance() + ".stages";
  }
  [[nodiscard]] std::string log() const {
    std::ifstream in(log_);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  /// Sends `signal` and waits up to 10 s for the exit; returns the wait status (-1 on timeout,
  /// after which the process is SIGKILLed).
  int stop(int signal) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, signal);
    const int status = wait_exit(std::chrono::seconds(10));
    pid_ = 0;
    return status;
  }

  /// Waits for the process to exit by itself; -1 on timeout (then SIGKILL).
  int wait_exit(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    int status = 0;
    while (Clock::now() < deadline) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        return status;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = 0;
    return -1;
  }

 private:
  static int& starts() {
    static int n = 0;
    return n;
  }
  const TempSpace& space_;
  fs::path log_;
  pid_t pid_ = 0;
};

/// A DEALER client of the control endpoint (protocol v1), one request at a time.
class ControlClient {
 public:
  explicit ControlClient(const std::string& endpoint)
      : socket_(context_, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }
  /// Sends raw text; returns the reply text, or nullopt after `timeout`.
  std::optional<std::string> raw(const std::string& text,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    (void)socket_.send(zmq::buffer(text), zmq::send_flags::none);
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
    zmq::message_t reply;
    (void)socket_.recv(reply);
    return reply.to_string();
  }
  /// Sends a request object (v and id added) and returns the whole response (null on timeout).
  json call(json request) {
    request["v"] = 1;
    request["id"] = ++next_id_;
    const auto text = raw(request.dump());
    if (!text) return nullptr;
    return json::parse(*text);
  }
  /// The result of a request that must succeed.
  json result(const json& request) {
    const json r = call(request);
    EXPECT_TRUE(r.is_object() && r.value("ok", false)) << request.dump() << " -> " << r.dump();
    return r.is_object() && r.contains("result") ? r["result"] : json::object();
  }
  /// Waits up to `timeout` for the daemon to answer a status request.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (!call({{"verb", "status"}}).is_null()) return true;
    }
    return false;
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  int next_id_ = 0;
};

/// The job spec of `datasets` with the reference settings (1D q_nm^-1, 200 bins, poisson).
inline json job_spec(const std::vector<std::string>& datasets, const std::string& output,
                     const std::string& mode = "split") {
  const fs::path poni = kCliFixtures / "pilatus.poni";
  std::ifstream in(poni);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return {{"datasets", datasets},
          {"poni_path", poni.string()},
          {"poni_text", text},
          {"settings", {{"npt_rad", 200}, {"unit", "q_nm^-1"}, {"error_model", "poisson"}}},
          {"output_path", output},
          {"mode", mode}};
}

/// Enqueues a job with the real azflowctl (the job_spec() settings); returns its id (0 if
/// azflowctl failed).
inline std::int64_t ctl_enqueue(const std::string& endpoint, const std::string& master,
                                const std::string& output, const std::string& mode = "split") {
  const CommandResult r = run_command(
      std::string(AZFLOWCTL_BIN) + " --endpoint " + quote(endpoint) + " enqueue " + quote(master) +
      " --poni " + quote((kCliFixtures / "pilatus.poni").string()) +
      " --npt 200 --unit q_nm^-1 --error-model poisson --mode " + mode + " -o " + quote(output));
  EXPECT_EQ(r.code, 0) << r.output;
  try {
    return std::stoll(r.output.substr(r.output.find_first_of("0123456789")));
  } catch (const std::exception&) {
    ADD_FAILURE() << "no job id in: " << r.output;
    return 0;
  }
}

/// `azflowctl wait ID`: its exit code (0 succeeded, 3 warning, 4 failed, 5 cancelled).
inline int ctl_wait(const std::string& endpoint, std::int64_t id) {
  return run_command(std::string(AZFLOWCTL_BIN) + " --endpoint " + quote(endpoint) + " wait " +
                     std::to_string(id) + " --interval 0.02 --timeout 60")
      .code;
}

/// Enqueues a spec directly over the control socket; returns its id (0 if refused).
inline std::int64_t enqueue(ControlClient& client, const json& spec) {
  const json r = client.result({{"verb", "enqueue"}, {"spec", spec}});
  return r.value("job_id", std::int64_t{0});
}

/// The job object of `id` (empty object if the request fails).
inline json job_status(ControlClient& client, std::int64_t id) {
  const json r = client.result({{"verb", "status"}, {"job_id", id}});
  return r.value("job", json::object());
}

inline bool is_final_state(const std::string& state) {
  return state == "succeeded" || state == "warning" || state == "failed" || state == "cancelled";
}

/// Polls until job `id` is final or `timeout`; returns its last job object.
inline json wait_job(ControlClient& client, std::int64_t id,
                     std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  const auto deadline = Clock::now() + timeout;
  json job;
  while (Clock::now() < deadline) {
    job = job_status(client, id);
    if (is_final_state(job.value("state", ""))) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ADD_FAILURE() << "job " << id << " not final after the timeout: " << job.dump();
  return job;
}

/// Polls until `predicate(job)` holds for job `id`; false on timeout.
template <typename Predicate>
bool wait_until(ControlClient& client, std::int64_t id, Predicate predicate,
                std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (predicate(job_status(client, id))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

/// Makes a series with make_series.py; returns its master file.
inline std::string make_series(const TempSpace& space, const std::string& name, int frames,
                               const std::vector<int>& corrupt = {}) {
  std::string cmd = "/usr/bin/python3 " + quote(kSeriesScript.string()) + " --out-dir " +
                    quote(space.path("data").string()) + " --name " + name + " --frames " +
                    std::to_string(frames);
  for (int c : corrupt) cmd += " --corrupt-frame " + std::to_string(c);
  const CommandResult r = run_command(cmd);
  EXPECT_EQ(r.code, 0) << r.output;
  return (space.path("data") / (name + "_master.h5")).string();
}

/// `azflow integrate` of `master` with the job_spec() settings into `output` (the reference).
inline void reference_integrate(const std::string& master, const std::string& output) {
  const CommandResult r = run_command(
      std::string(AZFLOW_BIN) + " integrate " + quote(master) + " --poni " +
      quote((kCliFixtures / "pilatus.poni").string()) +
      " --npt 200 --unit q_nm^-1 --error-model poisson --quiet --overwrite -o " + quote(output));
  EXPECT_TRUE(r.code == 0 || r.code == 3) << r.output;
}

/// PIDs of the stage processes of the daemon's status, by "role/worker".
inline std::map<std::string, pid_t> stage_pids(ControlClient& client) {
  std::map<std::string, pid_t> pids;
  const json r = client.result({{"verb", "status"}});
  for (const auto& s : r["daemon"].value("stages", json::array())) {
    pids[s.value("role", "") + "/" + std::to_string(s.value("worker", 0))] = s.value("pid", 0);
  }
  return pids;
}

/// Whether a process exists and is not a zombie.
inline bool process_alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_text, comm, state;
  stat >> pid_text >> comm >> state;
  return state != "Z";
}

/// Waits up to `timeout` for `pid` to be gone; true if it is.
inline bool wait_gone(pid_t pid, std::chrono::milliseconds timeout = std::chrono::seconds(3)) {
  const auto deadline = Clock::now() + timeout;
  while (process_alive(pid)) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

/// Every row of `out` equals the reference's row (same plan, same integrator: bit-identical), or
/// is NaN where the reference's is; the dataset-wide sums agree to float64 rounding.
inline void expect_same_as_reference(const std::string& out, const std::string& ref_path) {
  H5File f(out);
  H5File ref(ref_path);
  const auto I = f.doubles("/entry/integrate/I");
  const auto I_ref = ref.doubles("/entry/integrate/I");
  ASSERT_EQ(I.size(), I_ref.size());
  const std::size_t bins = std::max<std::size_t>(1, ref.dims("/entry/integrate/I").back());
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < I.size(); ++i) {
    const bool same = (std::isnan(I[i]) && std::isnan(I_ref[i])) || I[i] == I_ref[i];
    if (!same && ++mismatches < 5) ADD_FAILURE() << "row " << i / bins << " bin " << i % bins;
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(f.doubles("/entry/integrate/frame_index"), ref.doubles("/entry/integrate/frame_index"));
  for (const char* name : {"sum_signal", "sum_normalization", "sum_count", "sum_variance"}) {
    const auto a = f.doubles(std::string("/entry/sum/") + name);
    const auto b = ref.doubles(std::string("/entry/sum/") + name);
    ASSERT_EQ(a.size(), b.size()) << name;
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_NEAR(a[i], b[i], 1e-9 * std::max(1.0, std::abs(b[i]))) << name << " bin " << i;
    }
  }
}

}  // namespace azflow::testing
