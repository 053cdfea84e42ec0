// azflowctl: the command-line client of azflowd (JSON protocol v1 over ZeroMQ).
#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "ctl/commands.hpp"
#include "ctl/exit_codes.hpp"
#include "ctl/peers_command.hpp"
#include "ctl/suggest.hpp"
#include "daemon/config.hpp"
#include "daemon/federation/curve_keys.hpp"

namespace {

using namespace azflow;

/// Everything the command line sets.
struct Args {
  std::string endpoint;
  std::string instance = "default";  ///< --instance: which daemon's socket discovery looks for
  std::vector<std::string> tried;    ///< the endpoints discovery looked at (none: --endpoint)
  double timeout_s = 3.0;
  bool json = false;
  ctl::EnqueueArgs enqueue;
  std::optional<std::int64_t> status_job;
  std::string list_state;
  bool list_all = false;
  std::vector<std::int64_t> wait_jobs;
  double wait_interval_s = 0.25, wait_timeout_s = 0;
  std::vector<std::int64_t> cancel_jobs;
  std::int64_t retry_job = 0;
  std::int64_t watch_job = 0;
  std::string live_endpoint;
  bool drain_wait = false, drain_shutdown = false;
  std::string server_key;  ///< the daemon's <node>.pub (CurveZMQ TCP control)
  std::string client_key;  ///< this client's secret key file NAME.key (NAME.pub next to it)
};

/// The CurveZMQ keys of --server-key/--client-key (both or neither). Throws azflow::Error.
std::optional<ctl::CurveClientKeys> curve_keys(const Args& a) {
  if (a.server_key.empty() && a.client_key.empty()) return std::nullopt;
  if (a.server_key.empty() || a.client_key.empty()) {
    throw Error(ErrorCategory::kConfig, "--server-key and --client-key go together");
  }
  const auto server = daemon::read_public_key(a.server_key);
  if (!server) throw Error(ErrorCategory::kConfig, "--server-key: no file " + a.server_key);
  const daemon::CurveKeyPair client = daemon::read_key_pair(a.client_key);
  return ctl::CurveClientKeys{*server, client.public_z85, client.secret_z85};
}

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long>(seconds * 1000));
}

int dispatch(CLI::App& app, const Args& a) {
  ctl::ControlClient client(a.endpoint, ms(a.timeout_s), curve_keys(a));
  client.set_tried(a.tried);
  if (app.got_subcommand("enqueue")) return ctl::run_enqueue(client, a.enqueue, a.json);
  if (app.got_subcommand("status")) return ctl::run_status(client, a.status_job, a.json);
  if (app.got_subcommand("list")) return ctl::run_list(client, a.list_state, a.list_all, a.json);
  if (app.got_subcommand("cancel")) return ctl::run_cancel(client, a.cancel_jobs, a.json);
  if (app.got_subcommand("retry")) return ctl::run_retry(client, a.retry_job, a.json);
  if (app.got_subcommand("workers")) return ctl::run_workers(client, a.json);
  if (app.got_subcommand("stats")) return ctl::run_stats(client, a.json);
  if (app.got_subcommand("config")) return ctl::run_config(client, a.json);
  if (app.got_subcommand("drain"))
    return ctl::run_drain(client, a.drain_wait, a.drain_shutdown, a.json);
  if (app.got_subcommand("undrain")) return ctl::run_undrain(client, a.json);
  if (app.got_subcommand("shutdown")) return ctl::run_shutdown(client, a.json);
  if (app.got_subcommand("peers")) return ctl::run_peers(client, a.json);
  if (app.got_subcommand("watch"))
    return ctl::run_watch(client, a.watch_job, a.live_endpoint, a.json);
  return ctl::run_wait(client, a.wait_jobs, ms(a.wait_interval_s), ms(a.wait_timeout_s), a.json);
}

void add_job_commands(CLI::App& app, Args& a) {
  auto* enq = app.add_subcommand("enqueue", "add integration jobs; prints their ids");
  ctl::add_enqueue_options(*enq, a.enqueue);
  enq->footer(
      "One job per dataset (--join: one job over all of them), times every combination of the "
      "--sweep values. A single plain job prints its id alone; otherwise a table of ids, outputs "
      "and sweep values (--json: {\"jobs\": [...]}). Sweep outputs are named "
      "<stem>_<key><value>....h5 under --output-dir (default: the daemon's output folder).\n"
      "Examples:\n"
      "  azflowctl enqueue /data/s1_master.h5 --poni geo.poni --npt 2000 --unit 2th_deg\n"
      "  azflowctl enqueue '/data/*_master.h5' --config pyfai.json --output-dir /data/out\n"
      "  azflowctl enqueue s1_master.h5 --poni geo.poni --sweep npt=1000,2000 "
      "--sweep unit=q_nm^-1,2th_deg\n"
      "  azflowctl enqueue s2_master.h5 --poni geo.poni --after 12,13 --priority 5 --wait");

  auto* status = app.add_subcommand("status",
                                    "a job's status (state, frames, rate, ETA, output, errors), "
                                    "or the daemon's without JOB");
  status->add_option("job", a.status_job, "job id");
  status->footer(
      "Examples:\n  azflowctl status 12\n  azflowctl --json status 12\n"
      "  azflowctl status            # the daemon: version, uptime, stages, rings");

  auto* list = app.add_subcommand("list", "jobs, newest first (unfinished ones unless --all)");
  list->add_option("--state", a.list_state, "only jobs in this state")
      ->check(CLI::IsMember({"queued", "running", "succeeded", "warning", "failed", "cancelled"}));
  list->add_flag("--all", a.list_all, "include finished jobs");
  list->footer(
      "Examples:\n  azflowctl list\n  azflowctl list --all\n"
      "  azflowctl --json list --state failed");

  auto* wait = app.add_subcommand(
      "wait", "wait for jobs to finish, with progress; exit code from the worst final state");
  wait->add_option("jobs", a.wait_jobs, "job ids")->required();
  wait->add_option("--interval", a.wait_interval_s, "seconds between status polls")
      ->check(CLI::Range(0.01, 60.0))
      ->capture_default_str();
  wait->add_option("--timeout", a.wait_timeout_s, "give up after this many seconds (0 = never)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  wait->footer(
      "Progress bars on a terminal (stderr), plain lines otherwise; the final states on stdout.\n"
      "Exit codes: 0 succeeded, 3 warning (some frames failed), 4 failed, 5 cancelled (the worst "
      "of all jobs), 6 --timeout reached, 1 no answer from azflowd, 2 refused (e.g. no such "
      "job).\nExamples:\n  azflowctl wait 12\n  azflowctl wait 12 13 14 --timeout 600");

  auto* cancel = app.add_subcommand("cancel", "cancel queued or running jobs");
  cancel->add_option("jobs", a.cancel_jobs, "job ids")->required();
  cancel->footer(
      "Exit code 2 if any job could not be cancelled (already finished, unknown).\n"
      "Example:\n  azflowctl cancel 12 13");

  auto* retry = app.add_subcommand(
      "retry", "re-run the failed frames (and unfinished shards) of a finished job");
  retry->add_option("job", a.retry_job, "job id")->required();
  retry->footer(
      "A job that ended warning, failed or cancelled goes back to queued; only its failed frames "
      "and the shards it had not finished run again, and its output is rewritten with them "
      "(then succeeded, or warning if frames fail again). A succeeded, queued or running job is "
      "refused (exit 2).\nExample:\n  azflowctl retry 12 && azflowctl wait 12");

  auto* watch = app.add_subcommand(
      "watch", "print each frame's result as the daemon publishes it, until the job is final");
  watch->add_option("job", a.watch_job, "job id")->required();
  watch->add_option("--live-endpoint", a.live_endpoint,
                    "the daemon's PUB endpoint (default: as the daemon reports it)");
  watch->footer(
      "One line per frame: index, ok/failed, sum and maximum of I and the bin of the maximum (with "
      "its radial position), or the failure reason; --json: one JSON object per line. Frames "
      "finished before watch started are not shown. Exit code as wait.\n"
      "Example:\n  azflowctl watch 12");
}

void add_daemon_commands(CLI::App& app, Args& a) {
  app.add_subcommand("workers",
                     "stage processes: role, worker, pid, device, state, frames/s, ring fill")
      ->footer(
          "RING is the ring the stage reads; FILL its occupied slots.\n"
          "Examples:\n  azflowctl workers\n  azflowctl --json workers");
  app.add_subcommand("stats",
                     "daemon-wide counters: uptime, jobs by state, frames, frames/s, "
                     "rings")
      ->footer("Example:\n  azflowctl stats");
  app.add_subcommand("config", "the daemon's effective configuration (TOML; --json: an object)")
      ->footer("Example:\n  azflowctl config > effective.toml");
  auto* drain = app.add_subcommand(
      "drain", "accept no more jobs; queued and running ones still run to the end");
  drain->add_flag("--wait", a.drain_wait, "wait until every accepted job has finished");
  drain->add_flag("--shutdown", a.drain_shutdown, "then stop the daemon (with --wait)")
      ->needs(drain->get_option("--wait"));
  drain->footer(
      "While draining, enqueue and retry are refused (exit 2); `azflowctl undrain` or a restart of "
      "azflowd ends it.\n"
      "Example:\n  azflowctl drain --wait --shutdown   # before maintenance");
  app.add_subcommand("undrain", "accept jobs again after drain")
      ->footer("Example:\n  azflowctl undrain   # after maintenance");
  app.add_subcommand("shutdown", "stop azflowd (unfinished jobs resume when it starts again)")
      ->footer("Example:\n  azflowctl shutdown");
  app.add_subcommand("peers", "federation: peer daemons with state, capacity, shards, heartbeat")
      ->footer("Examples:\n  azflowctl peers\n  azflowctl --json peers");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("azflowctl: enqueue, watch and manage azflowd integration jobs", "azflowctl");
  app.footer(std::string(ctl::kExitCodeHelp) +
             "\nExamples:\n  azflowctl enqueue /data/s1_master.h5 --poni geo.poni --wait\n"
             "  azflowctl list --all\n  azflowctl --json status 12\n"
             "Run azflowctl COMMAND --help for each command's options and examples.");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("azflowctl ") + AZFLOW_VERSION);
  Args a;
  auto* endpoint = app.add_option("--endpoint", a.endpoint,
                                  "azflowd control endpoint (ipc://PATH or tcp://HOST:PORT); "
                                  "default: the first socket found of this user's daemon, "
                                  "/run/azflow/INSTANCE.control, "
                                  "/run/azflow-INSTANCE/INSTANCE.control")
                       ->envname("AZFLOW_ENDPOINT");
  app.add_option("--instance", a.instance,
                 "without --endpoint: the daemon instance whose socket to look for")
      ->capture_default_str();
  app.add_option("--timeout", a.timeout_s, "seconds to wait for each answer")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--server-key", a.server_key,
                 "tcp:// endpoint with CurveZMQ: the daemon's public key file (<node>.pub)");
  app.add_option("--client-key", a.client_key,
                 "tcp:// endpoint with CurveZMQ: this client's secret key file NAME.key (NAME.pub "
                 "next to it; made by azflowd keygen; NAME.pub in the daemon's trusted folder)");
  app.add_flag("--json", a.json, "print one JSON document on stdout (watch: one per line)");
  add_job_commands(app, a);
  add_daemon_commands(app, a);

  if (const auto hint = ctl::unknown_option_hint(app, argc, argv)) {
    std::cerr << "azflowctl: " << *hint << "\n";
    return ctl::kExitRefused;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? ctl::kExitOk : ctl::kExitRefused;
  }
  try {
    if (endpoint->count() == 0) {
      a.tried = ctl::candidate_endpoints(daemon::Environment::current(), a.instance);
      a.endpoint = ctl::choose_endpoint(a.tried);
    }
    return dispatch(app, a);
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
