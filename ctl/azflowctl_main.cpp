// azflowctl: the command-line client of azflowd (JSON protocol v1 over ZeroMQ).
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "ctl/commands.hpp"
#include "ctl/exit_codes.hpp"
#include "ctl/peers_command.hpp"
#include "daemon/config.hpp"
#include "daemon/federation/curve_keys.hpp"

namespace {

using namespace azflow;

struct GlobalArgs {
  std::string endpoint;
  double timeout_s = 3.0;
  bool json = false;
  std::string server_key;  ///< the daemon's <node>.pub (CurveZMQ TCP control)
  std::string client_key;  ///< this client's secret key file NAME.key (NAME.pub next to it)
};

/// The CurveZMQ keys of --server-key/--client-key (both or neither). Throws azflow::Error.
std::optional<ctl::CurveClientKeys> curve_keys(const GlobalArgs& g) {
  if (g.server_key.empty() && g.client_key.empty()) return std::nullopt;
  if (g.server_key.empty() || g.client_key.empty()) {
    throw Error(ErrorCategory::kConfig, "--server-key and --client-key go together");
  }
  const auto server = daemon::read_public_key(g.server_key);
  if (!server) throw Error(ErrorCategory::kConfig, "--server-key: no file " + g.server_key);
  const daemon::CurveKeyPair client = daemon::read_key_pair(g.client_key);
  return ctl::CurveClientKeys{*server, client.public_z85, client.secret_z85};
}

int dispatch(CLI::App& app, const GlobalArgs& g, const ctl::EnqueueArgs& enqueue,
             const std::optional<std::int64_t>& status_job, const std::string& list_state,
             bool list_all, std::int64_t wait_job, double wait_interval_s, double wait_timeout_s,
             const std::vector<std::int64_t>& cancel_jobs) {
  ctl::ControlClient client(
      g.endpoint, std::chrono::milliseconds(static_cast<long>(g.timeout_s * 1000)), curve_keys(g));
  if (app.got_subcommand("enqueue")) return ctl::run_enqueue(client, enqueue);
  if (app.got_subcommand("status")) return ctl::run_status(client, status_job, g.json);
  if (app.got_subcommand("list")) return ctl::run_list(client, list_state, list_all, g.json);
  if (app.got_subcommand("cancel")) return ctl::run_cancel(client, cancel_jobs);
  if (app.got_subcommand("shutdown")) return ctl::run_shutdown(client);
  if (app.got_subcommand("peers")) return ctl::run_peers(client, g.json);
  return ctl::run_wait(client, wait_job,
                       std::chrono::milliseconds(static_cast<long>(wait_interval_s * 1000)),
                       std::chrono::milliseconds(static_cast<long>(wait_timeout_s * 1000)));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("azflowctl: enqueue, inspect and cancel azflowd integration jobs", "azflowctl");
  app.footer(ctl::kExitCodeHelp);
  app.require_subcommand(1);
  GlobalArgs g;
  g.endpoint = daemon::default_control_endpoint(daemon::Environment::current());
  app.add_option("--endpoint", g.endpoint,
                 "azflowd control endpoint (ipc://PATH or tcp://HOST:PORT)")
      ->envname("AZFLOW_ENDPOINT")
      ->capture_default_str();
  app.add_option("--timeout", g.timeout_s, "seconds to wait for each answer")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--server-key", g.server_key,
                 "tcp:// endpoint with CurveZMQ: the daemon's public key file (<node>.pub)");
  app.add_option("--client-key", g.client_key,
                 "tcp:// endpoint with CurveZMQ: this client's secret key file NAME.key (NAME.pub "
                 "next to it; made by azflowd keygen; NAME.pub in the daemon's trusted folder)");
  app.add_flag("--json", g.json, "status, list, peers: print the daemon's JSON result");

  ctl::EnqueueArgs enqueue;
  auto* enq = app.add_subcommand("enqueue", "add an integration job; prints its id on stdout");
  ctl::add_enqueue_options(*enq, enqueue);

  std::optional<std::int64_t> status_job;
  app.add_subcommand("status", "a job's status, or the daemon's without JOB")
      ->add_option("job", status_job, "job id");

  std::string list_state;
  bool list_all = false;
  auto* list = app.add_subcommand("list", "jobs, newest first (unfinished ones unless --all)");
  list->add_option("--state", list_state, "only jobs in this state")
      ->check(CLI::IsMember({"queued", "running", "succeeded", "warning", "failed", "cancelled"}));
  list->add_flag("--all", list_all, "include finished jobs");

  std::int64_t wait_job = 0;
  double wait_interval_s = 0.25, wait_timeout_s = 0;
  auto* wait = app.add_subcommand(
      "wait", "wait for a job to finish, with progress; exit code from its final state");
  wait->add_option("job", wait_job, "job id")->required();
  wait->add_option("--interval", wait_interval_s, "seconds between status polls")
      ->check(CLI::Range(0.01, 60.0))
      ->capture_default_str();
  wait->add_option("--timeout", wait_timeout_s, "give up after this many seconds (0 = never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  wait->footer(
      "Exit codes: 0 succeeded, 3 warning (some frames failed), 4 failed, 5 cancelled, "
      "6 --timeout reached, 1 no answer from azflowd, 2 refused (e.g. no such job).");

  std::vector<std::int64_t> cancel_jobs;
  app.add_subcommand("cancel", "cancel queued or running jobs")
      ->add_option("jobs", cancel_jobs, "job ids")
      ->required();
  app.add_subcommand("shutdown", "stop azflowd (unfinished jobs resume when it starts again)");
  app.add_subcommand("peers", "federation: peer daemons with state, capacity, shards, heartbeat");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? ctl::kExitOk : ctl::kExitRefused;
  }
  try {
    return dispatch(app, g, enqueue, status_job, list_state, list_all, wait_job, wait_interval_s,
                    wait_timeout_s, cancel_jobs);
  } catch (const ctl::RequestRefused& e) {
    std::cerr << "azflowctl: " << e.what() << "\n";
    return ctl::kExitRefused;
  } catch (const Error& e) {
    std::cerr << "azflowctl: " << e.what() << "\n";
    return e.category() == ErrorCategory::kConfig ? ctl::kExitRefused : ctl::kExitNoDaemon;
  } catch (const std::exception& e) {
    std::cerr << "azflowctl: internal error: " << e.what() << "\n";
    return ctl::kExitNoDaemon;
  }
}
