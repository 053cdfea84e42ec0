// azflowd: the azflow daemon. Runs in the foreground, logs with levels to stderr.
//   azflowd [--config FILE] [--instance NAME] [--state-dir DIR] [--runtime-dir DIR]
//           [--control ENDPOINT] [--workers N] [--integrate-workers N] [--log-level LEVEL]
//           [--http HOST:PORT]
//           [--node NAME] [--peer-endpoint tcp://ADDR:PORT] [--peer NODE@tcp://HOST:PORT]...
//           [--join NODE@tcp://HOST:PORT] [--trusted-keys DIR]
//   azflowd keygen --state-dir DIR [--node NAME]   (creates the CurveZMQ key pair and exits)
//   azflowd --version | --help
// Exit codes: 0 after SIGTERM/SIGINT or a shutdown request (and for --help, --version); 2 for a
// wrong configuration or command line, whatever CLI11 or the configuration reader found
// (nothing started; the systemd units' RestartPreventExitStatus=2 stops restarts); 1 if the
// daemon cannot start (store, sockets, shared memory).

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "base/error.hpp"
#include "daemon/config.hpp"
#include "daemon/daemon.hpp"
#include "daemon/federation/curve_keys.hpp"
#include "daemon/stop_signal.hpp"
#include "stages/source/input_policy.hpp"

int main(int argc, char** argv) {
  CLI::App app{"azflowd: the azflow daemon (azimuthal integration service)"};
  std::optional<std::filesystem::path> config_path;
  azflow::daemon::ConfigOverrides overrides;
  azflow::daemon::add_config_options(app, config_path, overrides);
  std::filesystem::path keygen_state;
  std::string keygen_node = azflow::daemon::host_node_name();
  auto* keygen = app.add_subcommand(
      "keygen", "create this node's CurveZMQ key pair (<state-dir>/curve/<node>.key, .pub); exit");
  keygen->add_option("--state-dir", keygen_state, "state directory")->required();
  keygen->add_option("--node", keygen_node, "node name (default: host name)")
      ->capture_default_str();
  app.set_version_flag("--version", std::string("azflowd ") + AZFLOW_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (105 for a missing file, 104 a bad number, 109 an unknown option, ...)
    // become 2: a usage error that a restart cannot fix
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (keygen->parsed()) {
    try {
      azflow::daemon::check_node_name(keygen_node, "--node");
      bool created = false;
      const auto keys = azflow::daemon::ensure_key_pair(std::filesystem::absolute(keygen_state),
                                                        keygen_node, &created);
      std::printf(
          "%s %s\n",
          azflow::daemon::public_key_path(std::filesystem::absolute(keygen_state), keygen_node)
              .c_str(),
          created ? "created" : "exists");
      (void)keys;
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "azflowd keygen: %s\n", e.what());
      const auto* error = dynamic_cast<const azflow::Error*>(&e);
      return error != nullptr && error->category() == azflow::ErrorCategory::kConfig ? 2 : 1;
    }
  }

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
  if (config.config_file.empty()) {
    spdlog::info(
        "configuration: no file read (built-in defaults and the command line; --config "
        "FILE to read one)");
  } else {
    spdlog::info("configuration: read {}", config.config_file.string());
  }
  spdlog::debug("configuration:\n{}", azflow::daemon::describe(config));
  // every file HDF5 opens for a job, here and in the stages (which inherit the environment)
  azflow::source::set_allowed_input_roots(config.allowed_input_roots);
  ::setenv(azflow::source::kInputRootsEnv,
           azflow::source::input_roots_env_value(config.allowed_input_roots).c_str(), 1);
  std::atomic<bool>& stop = azflow::daemon::install_stop_signals();
  try {
    azflow::daemon::Daemon daemon(config);
    return daemon.run(stop);
  } catch (const azflow::Error& e) {
    // a configuration the daemon finds wrong only once it looks (e.g. a listed GPU not visible)
    spdlog::critical("{}", e.what());
    return e.category() == azflow::ErrorCategory::kConfig ? 2 : 1;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}
