// azflowd: the azflow daemon. Runs in the foreground, logs with levels to stderr.
//   azflowd [--config FILE] [--instance NAME] [--state-dir DIR] [--runtime-dir DIR]
//           [--control ENDPOINT] [--workers N] [--integrate-workers N] [--log-level LEVEL]
// Exit codes: 0 after SIGTERM/SIGINT or a shutdown request; 2 for a wrong configuration or
// command line (nothing started); 1 if the daemon cannot start (store, sockets, shared memory).

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <optional>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "base/error.hpp"
#include "daemon/config.hpp"
#include "daemon/daemon.hpp"
#include "daemon/stop_signal.hpp"

int main(int argc, char** argv) {
  CLI::App app{"azflowd: the azflow daemon (azimuthal integration service)"};
  std::optional<std::filesystem::path> config_path;
  azflow::daemon::ConfigOverrides overrides;
  azflow::daemon::add_config_options(app, config_path, overrides);
  CLI11_PARSE(app, argc, argv);

  spdlog::set_default_logger(spdlog::stderr_color_mt("azflowd"));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e [%l] azflowd %v");
  azflow::daemon::DaemonConfig config;
  try {
    config = azflow::daemon::load_config(config_path, overrides);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "azflowd: %s\n", e.what());
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(config.log_level));
  spdlog::debug("configuration:\n{}", azflow::daemon::describe(config));
  std::atomic<bool>& stop = azflow::daemon::install_stop_signals();
  try {
    azflow::daemon::Daemon daemon(config);
    return daemon.run(stop);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
