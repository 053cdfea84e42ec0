#include "daemon/supervisor.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/error.hpp"
#include "daemon/gpu_placement.hpp"

namespace azflow::daemon {

namespace {

using Clock = std::chrono::steady_clock;

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

}  // namespace

Supervisor::Supervisor(StageLaunch launch, std::size_t decompress, std::size_t integrate)
    : Supervisor(std::move(launch), decompress, std::vector<std::string>(integrate, "cpu")) {}

Supervisor::Supervisor(StageLaunch launch, std::size_t decompress,
                       const std::vector<std::string>& integrate_devices)
    : launch_(std::move(launch)) {
  const auto add = [this](const char* role, std::size_t worker, const std::string& device) {
    StageSlot slot;
    slot.role = role;
    slot.worker = worker;
    slot.device_arg = device;
    slot.device = device_label(device);
    slots_.push_back(std::move(slot));
  };
  add("source", 0, "cpu");
  for (std::size_t k = 0; k < decompress; ++k) add("decompress", k, "cpu");
  for (std::size_t k = 0; k < integrate_devices.size(); ++k) {
    add("integrate", k, integrate_devices[k]);
  }
}

Supervisor::~Supervisor() { stop_all(std::chrono::milliseconds(2000)); }

std::filesystem::path Supervisor::stage_executable() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  const auto path = self.parent_path() / "azflow-stage";
  if (ec || ::access(path.c_str(), X_OK) != 0) {
    throw Error(ErrorCategory::kConfig,
                "stage executable " + path.string() + " is missing or not executable");
  }
  return path;
}

void Supervisor::spawn(StageSlot& slot) {
  std::vector<std::string> args = {launch_.executable.string(),
                                   "--role",
                                   slot.role,
                                   "--instance",
                                   launch_.instance,
                                   "--worker",
                                   std::to_string(slot.worker),
                                   "--endpoint",
                                   launch_.endpoint,
                                   "--heartbeat-ms",
                                   std::to_string(launch_.heartbeat_ms),
                                   "--log-level",
                                   launch_.log_level};
  if (slot.role == "integrate") {
    args.push_back("--device");
    args.push_back(slot.device_arg);
    if (!launch_.plan_dir.empty()) {
      args.insert(args.end(), {"--plan-cache", launch_.plan_dir.string(), "--plan-cache-max-mb",
                               std::to_string(launch_.plan_cache_max_mb)});
    }
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    throw Error(ErrorCategory::kResource,
                "cannot start stage " + slot.role + ": fork: " + std::strerror(errno));
  }
  if (pid == 0) {  // child: only async-signal-safe calls until exec
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    // Nothing but stdin/stdout/stderr crosses exec: libhdf5 opens files without O_CLOEXEC, and an
    // output file the result sink is writing while a stage restarts would otherwise stay open in
    // the stage, holding HDF5's lock on the finished output (readers fail with EAGAIN).
    if (::close_range(3, ~0U, 0) != 0) {
      for (int fd = 3; fd < 65536; ++fd) ::close(fd);
    }
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  slot.pid = pid;
  slot.identity.clear();
  slot.started = slot.last_seen = Clock::now();
  spdlog::info("stage {}/{} started (pid {})", slot.role, slot.worker, pid);
}

void Supervisor::start_all() {
  for (auto& slot : slots_) {
    if (slot.pid == 0) spawn(slot);
  }
}

void Supervisor::restart(std::size_t slot) {
  ++slots_.at(slot).restarts;
  spawn(slots_.at(slot));
}

Clock::time_point Supervisor::note_crash(std::size_t slot, Clock::time_point now,
                                         std::chrono::seconds window, std::size_t limit) {
  auto& crashes = slots_.at(slot).crashes;
  crashes.push_back(now);
  while (!crashes.empty() && now - crashes.front() > window) crashes.pop_front();
  if (crashes.size() <= limit) return now;
  const std::size_t excess = std::min<std::size_t>(crashes.size() - limit - 1, 30);
  const auto backoff = std::min<Clock::duration>(std::chrono::seconds(1) * (1LL << excess), window);
  return now + backoff;
}

void Supervisor::forget_crash(std::size_t slot, Clock::time_point at) {
  auto& crashes = slots_.at(slot).crashes;
  if (const auto it = std::find(crashes.begin(), crashes.end(), at); it != crashes.end()) {
    crashes.erase(it);
  }
}

std::vector<StageExit> Supervisor::reap() {
  std::vector<StageExit> exits;
  while (true) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    const auto slot = slot_of_pid(pid);
    if (!slot) continue;
    slots_[*slot].pid = 0;
    slots_[*slot].identity.clear();
    slots_[*slot].last_exit = describe_status(status);
    exits.push_back({*slot, pid, describe_status(status)});
  }
  return exits;
}

void Supervisor::kill(std::size_t slot) {
  if (slots_.at(slot).pid > 0) ::kill(slots_[slot].pid, SIGKILL);
}

void Supervisor::stop_all(std::chrono::milliseconds grace) {
  for (auto& slot : slots_) {
    if (slot.pid > 0) ::kill(slot.pid, SIGTERM);
  }
  const auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    reap();
    bool any = false;
    for (const auto& slot : slots_) any = any || slot.pid > 0;
    if (!any) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& slot : slots_) {
    if (slot.pid <= 0) continue;
    ::kill(slot.pid, SIGKILL);
    ::waitpid(slot.pid, nullptr, 0);
    slot.pid = 0;
  }
}

std::optional<std::size_t> Supervisor::slot_of_pid(pid_t pid) const {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].pid == pid) return i;
  }
  return std::nullopt;
}

std::optional<std::size_t> Supervisor::slot_of(const std::string& role, std::size_t worker) const {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].role == role && slots_[i].worker == worker) return i;
  }
  return std::nullopt;
}

nlohmann::json Supervisor::status_json() const {
  nlohmann::json out = nlohmann::json::array();
  const auto now = Clock::now();
  for (const auto& s : slots_) {
    out.push_back(
        {{"role", s.role},
         {"worker", s.worker},
         {"pid", s.pid},
         {"alive", s.pid > 0},
         {"device", s.device},
         {"restarts", s.restarts},
         {"recent_crashes", s.crashes.size()},
         {"restart_in_s",
          s.restart_at ? std::chrono::duration<double>(*s.restart_at - now).count() : 0.0},
         {"last_exit", s.last_exit},
         {"seconds_since_heartbeat", std::chrono::duration<double>(now - s.last_seen).count()},
         {"counters", to_json(s.counters)}});
  }
  return out;
}

}  // namespace azflow::daemon
