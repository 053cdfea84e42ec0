// azflow-stage: one stage process of azflowd's pipeline (source, decompress or integrate),
// started and supervised by the daemon:
//   azflow-stage --role source|decompress|integrate --instance NAME --worker K --endpoint EP
// Logs to stderr (spdlog); exits 0 on SIGTERM/SIGINT or a "stop" message, 1 on a setup error
// (ring or endpoint missing), 2 on bad arguments.

#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "daemon/stage_link.hpp"
#include "daemon/stage_runtime.hpp"
#include "daemon/stop_signal.hpp"
#include "stages/decompress/decompress_stage.hpp"
#include "stages/integrate/integrate_stage.hpp"
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"azflow-stage: one stage process of azflowd (started by the daemon)"};
  std::string role, instance, endpoint, log_level = "info";
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
  CLI11_PARSE(app, argc, argv);

  auto logger = spdlog::stderr_color_mt("stage");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e [%l] " + role + "/" + std::to_string(worker) + " %v");
  spdlog::set_level(spdlog::level::from_str(log_level));
  std::atomic<bool>& stop = azflow::daemon::install_stop_signals();
  try {
    azflow::daemon::StageLink link(endpoint, {role, worker},
                                   std::chrono::milliseconds(heartbeat_ms));
    azflow::daemon::StageRuntime rt{instance, link, stop, test_delay(role), {}, {}};
    spdlog::debug("started (pid {})", ::getpid());
    if (role == "source") return azflow::source::run_source_stage(rt);
    if (role == "decompress") return azflow::decompress::run_decompress_stage(rt);
    return azflow::integrate::run_integrate_stage(rt);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
