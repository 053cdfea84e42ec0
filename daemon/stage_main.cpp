// azflow-stage: one stage process of azflowd's pipeline (source, decompress or integrate),
// started and supervised by the daemon:
//   azflow-stage --role source|decompress|integrate --instance NAME --worker K --endpoint EP
//                [--device cpu|N]
//   azflow-stage --probe-gpus     (prints the visible CUDA devices as one JSON object, exits 0)
//   azflow-stage --version | --help
// --device N runs the integrate role on CUDA device N (cudaSetDevice(N)); the default "cpu" runs
// the CPU integrator. Logs to stderr (spdlog); exits 0 on SIGTERM/SIGINT or a "stop" message, 1 on
// a setup error (ring or endpoint missing, CUDA device unusable), 2 on bad arguments (any that
// CLI11 refuses: unknown option, missing or malformed value), 3 on a CUDA error while integrating
// (its frames are then reclaimed and redone by the daemon).

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "daemon/stage_link.hpp"
#include "daemon/stage_runtime.hpp"
#include "daemon/stop_signal.hpp"
#include "stages/decompress/decompress_stage.hpp"
#include "stages/integrate/cuda_integrator.hpp"
#include "stages/integrate/integrate_stage.hpp"
#include "stages/integrate/plan_cache.hpp"
#include "stages/source/input_policy.hpp"
#include "stages/source/source_stage.hpp"

namespace {

/// Test hook: AZFLOW_TEST_DELAY_MS_<ROLE> (e.g. AZFLOW_TEST_DELAY_MS_INTEGRATE=5) slows every
/// frame of that role, so tests can catch a job mid-flight or fill a ring.
std::chrono::milliseconds test_delay(const std::string& role) {
  std::string name = "AZFLOW_TEST_DELAY_MS_";
  for (char c : role) name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const char* value = std::getenv(name.c_str());
  return std::chrono::milliseconds(value != nullptr ? std::atoll(value) : 0);
}

/// --probe-gpus: {"cuda_build": bool, "devices": [{"ordinal", "name", "memory_bytes",
/// "compute_capability"}], "reason": "why none"} on stdout (read by azflowd, daemon/gpu_placement).
int probe_gpus() {
  const azflow::integrate::CudaProbe probe = azflow::integrate::probe_cuda_devices();
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& d : probe.devices) {
    devices.push_back({{"ordinal", d.ordinal},
                       {"name", d.name},
                       {"memory_bytes", d.memory_bytes},
                       {"compute_capability",
                        std::to_string(d.compute_major) + "." + std::to_string(d.compute_minor)}});
  }
  const nlohmann::json out = {
      {"cuda_build", probe.cuda_build}, {"devices", devices}, {"reason", probe.reason}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

/// Parses --device: "cpu" -> -1, a CUDA ordinal "N" -> N; nullopt for anything else.
std::optional<int> parse_device(const std::string& text) {
  if (text == "cpu") return -1;
  if (text.empty() || text.size() > 4 || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return std::stoi(text);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--probe-gpus") return probe_gpus();
  CLI::App app{"azflow-stage: one stage process of azflowd (started by the daemon)"};
  std::string role, instance, endpoint, log_level = "info", device = "cpu";
  std::size_t worker = 0, heartbeat_ms = 1000;
  app.add_option("--role", role, "source, decompress or integrate")
      ->required()
      ->check(CLI::IsMember({"source", "decompress", "integrate"}));
  app.add_option("--instance", instance, "daemon instance (names the rings)")->required();
  app.add_option("--worker", worker, "worker index within the role");
  app.add_option("--endpoint,--control", endpoint, "the daemon's internal stage endpoint")
      ->required();
  app.add_option("--heartbeat-ms", heartbeat_ms, "heartbeat period");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, critical, off");
  app.add_option("--device", device, "integrate backend: cpu, or a CUDA device ordinal N");
  std::string plan_dir;
  std::uint64_t plan_cache_max_mb = azflow::integrate::kDefaultPlanCacheMaxMib;
  app.add_option("--plan-cache", plan_dir, "integrate: the node's plan folder (STATE_DIR/plans)");
  app.add_option("--plan-cache-max-mb", plan_cache_max_mb, "integrate: the plan folder's size cap")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 20));
  app.set_version_flag("--version", std::string("azflow-stage ") + AZFLOW_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  const std::optional<int> gpu = parse_device(device);
  if (!gpu) {
    std::fprintf(stderr, "--device: '%s' is neither cpu nor a CUDA device ordinal\n",
                 device.c_str());
    return 2;
  }

  auto logger = spdlog::stderr_color_mt("stage");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e [%l] " + role + "/" + std::to_string(worker) + " %v");
  spdlog::set_level(spdlog::level::from_str(log_level));
  azflow::source::set_allowed_input_roots_from_env();  // azflowd's allowed_input_roots
  std::atomic<bool>& stop = azflow::daemon::install_stop_signals();
  try {
    const bool on_gpu = role == "integrate" && *gpu >= 0;
    azflow::daemon::StageLink link(endpoint,
                                   {role, worker, on_gpu ? "cuda:" + std::to_string(*gpu) : "cpu"},
                                   std::chrono::milliseconds(heartbeat_ms));
    azflow::daemon::StageRuntime rt{instance, link, stop, test_delay(role), {}, {}};
    rt.gpu_device = on_gpu ? *gpu : -1;
    rt.crash_on = azflow::daemon::test_crash_frame(role);
    rt.plan_dir = plan_dir;
    rt.plan_cache_max_bytes = plan_cache_max_mb << 20;
    spdlog::debug("started (pid {})", ::getpid());
    if (role == "source") return azflow::source::run_source_stage(rt);
    if (role == "decompress") return azflow::decompress::run_decompress_stage(rt);
    return azflow::integrate::run_integrate_stage(rt);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
