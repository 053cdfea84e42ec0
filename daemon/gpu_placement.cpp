#include "daemon/gpu_placement.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <nlohmann/json.hpp>

#include "base/error.hpp"

namespace azflow::daemon {

GpuInventory parse_gpu_probe(std::string_view json) {
  GpuInventory inv;
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    inv.reason = "azflow-stage --probe-gpus printed no JSON object";
    return inv;
  }
  inv.cuda_build = j.value("cuda_build", false);
  inv.reason = j.value("reason", std::string());
  if (j.contains("devices") && j["devices"].is_array()) {
    for (const auto& d : j["devices"]) {
      if (!d.is_object() || !d.contains("ordinal") || !d["ordinal"].is_number_integer()) continue;
      inv.ordinals.push_back(d["ordinal"].get<int>());
      inv.names.push_back(d.value("name", std::string()));
    }
  }
  if (inv.ordinals.empty() && inv.reason.empty()) inv.reason = "no CUDA device visible";
  if (!inv.cuda_build && inv.reason.empty()) inv.reason = "azflow was built without CUDA";
  return inv;
}

namespace {

/// Runs `exe --probe-gpus`, returning its stdout, or nullopt-like empty text with `error` set.
std::string run_probe(const std::filesystem::path& exe, int timeout_s, std::string& error) {
  int fds[2];
  if (::pipe(fds) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    return {};
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    error = std::string("fork: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return {};
  }
  if (pid == 0) {  // child: only async-signal-safe calls until exec
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    const char* argv[] = {exe.c_str(), "--probe-gpus", nullptr};
    ::execv(argv[0], const_cast<char* const*>(argv));
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  char buffer[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      error = "timed out after " + std::to_string(timeout_s) + " s";
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd item{fds[0], POLLIN, 0};
    const int ready = ::poll(&item, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (error.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    error = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                              : "killed by signal " + std::to_string(WTERMSIG(status));
  }
  return out;
}

}  // namespace

GpuInventory probe_gpus(const std::filesystem::path& stage_executable, int timeout_s) {
  std::string error;
  const std::string out = run_probe(stage_executable, timeout_s, error);
  if (!error.empty()) {
    GpuInventory inv;
    inv.reason = stage_executable.string() + " --probe-gpus failed: " + error;
    return inv;
  }
  return parse_gpu_probe(out);
}

std::string device_label(const std::string& device_arg) {
  return device_arg == "cpu" ? device_arg : "cuda:" + device_arg;
}

IntegratePlacement place_integrate_workers(const GpuConfig& config, const GpuInventory& inventory,
                                           std::size_t cpu_workers) {
  IntegratePlacement p;
  const auto cpu = [&](const std::string& why) {
    p.devices.assign(cpu_workers, "cpu");
    p.summary = "integrate backend: CPU (" + why + "), " + std::to_string(cpu_workers) + " worker" +
                (cpu_workers == 1 ? "" : "s");
    return p;
  };
  if (config.devices && config.devices->empty()) return cpu("gpus = [] in the configuration");
  if (!inventory.cuda_build) return cpu("azflow-stage built without CUDA");
  if (inventory.ordinals.empty()) {
    return cpu(inventory.reason.empty() ? "no CUDA device visible" : inventory.reason);
  }
  std::vector<int> use = config.devices ? *config.devices : inventory.ordinals;
  for (const int d : use) {
    if (std::find(inventory.ordinals.begin(), inventory.ordinals.end(), d) ==
        inventory.ordinals.end()) {
      std::string visible;
      for (const int v : inventory.ordinals)
        visible += (visible.empty() ? "" : ", ") + std::to_string(v);
      throw Error(ErrorCategory::kConfig, "gpu.gpus: CUDA device " + std::to_string(d) +
                                              " is not visible (visible: " + visible + ")");
    }
  }
  p.on_gpu = true;
  p.summary = "integrate backend: CUDA, " + std::to_string(config.workers_per_gpu) + " worker" +
              (config.workers_per_gpu == 1 ? "" : "s") + " on each of ";
  for (std::size_t i = 0; i < use.size(); ++i) {
    const auto at = std::find(inventory.ordinals.begin(), inventory.ordinals.end(), use[i]);
    const std::string& name =
        inventory.names[static_cast<std::size_t>(at - inventory.ordinals.begin())];
    p.summary += (i > 0 ? ", " : "") + std::string("cuda:") + std::to_string(use[i]) +
                 (name.empty() ? "" : " (" + name + ")");
    for (std::size_t k = 0; k < config.workers_per_gpu; ++k)
      p.devices.push_back(std::to_string(use[i]));
  }
  return p;
}

}  // namespace azflow::daemon
