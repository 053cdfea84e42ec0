#pragma once
// azflowctl's subcommands: their options (CLI11) and what each does with a ControlClient. Every
// command prints a human-readable text by default and, with `as_json`, one JSON document on
// stdout; each returns its exit code (ctl/exit_codes.hpp).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/integrate_options.hpp"
#include "ctl/client.hpp"
#include "daemon/job_spec.hpp"

namespace azflow::ctl {

/// Options of `azflowctl enqueue`: those of `azflow integrate` (reused from cli/) minus the
/// local-only ones, with several datasets (glob patterns), a pyFAI config file, sweeps,
/// dependencies, a priority, an output file or folder, a mode and --wait.
struct EnqueueArgs {
  cli::IntegrateOptions integrate;        ///< --poni, --npt, --unit, ... as `azflow integrate` has
  std::vector<std::string> datasets;      ///< files or glob(3) patterns
  std::string mode = "split";             ///< split or bulk
  std::string config_file;                ///< --config: pyFAI integration JSON ("" = none)
  std::int64_t priority = 0;              ///< --priority: higher runs first among queued jobs
  std::vector<std::int64_t> after;        ///< --after: jobs that must succeed first
  std::vector<std::string> sweeps;        ///< --sweep KEY=V1,V2,... (one per key)
  std::string output_dir;                 ///< --output-dir: folder of generated output names
  bool join = false;                      ///< --join: all datasets in one job (frames in order)
  bool wait = false;                      ///< --wait: wait for the jobs like `wait`
  std::string nodes;                      ///< federation: "all", N or names ("" = this node only)
  std::string stream;                     ///< --stream ENDPOINT: a stream job ("" = file jobs)
  std::string stream_format = "stream2";  ///< --stream-format stream2|v1
  std::string channel;                    ///< --channel: image data channel ("" = the first)
  double stream_timeout_s = 60;           ///< --stream-timeout: idle seconds once started
  std::size_t stream_max_frame_mib = 18;  ///< --stream-max-frame-mib: ring slots before start
  std::string save_raw;                   ///< --save-raw DIR: the series' raw spool ("" = none)
  /// The integration options given on the command line (set by add_enqueue_options; those that
  /// may not be combined with --config).
  std::vector<const CLI::Option*> integration_options;
};

/// One job that `enqueue` will submit: its spec and the sweep values it got.
struct PlannedJob {
  daemon::JobSpec spec;
  std::vector<std::pair<std::string, std::string>> sweep;  ///< (key, value) in --sweep order
};

/// Declares the enqueue options on `command`.
void add_enqueue_options(CLI::App& command, EnqueueArgs& args);

/// Expands the dataset arguments: a pattern with *, ? or [ through glob(3) (sorted; azflow::Error
/// kConfig naming the pattern if it matches nothing), other arguments as given; every path made
/// absolute from the current directory.
std::vector<std::string> expand_datasets(const std::vector<std::string>& patterns);

/// The base job spec of the arguments for `datasets` (no output): from --config (pyFAI JSON) or
/// the integration options, relative paths made absolute, the PONI file read. Throws
/// azflow::Error (kConfig) naming the option or file, and naming both --config and the option
/// when they are combined.
daemon::JobSpec make_job_spec(const EnqueueArgs& args, const std::vector<std::string>& datasets);

/// Every job of an enqueue: one per dataset (all datasets in one job with --join) per
/// combination of the sweeps (cartesian product, the first --sweep varying slowest), each with
/// its output: --output for a single job, else "<dir>/<stem>[_<key><value>...].h5" with dir
/// --output-dir or, when several jobs are made, `default_dir` (the daemon's output folder);
/// otherwise "" (the daemon's job-<id>.h5). Names are made filesystem-safe and unique. Throws
/// azflow::Error (kConfig) naming the --sweep key or value, or --output with several jobs.
std::vector<PlannedJob> plan_jobs(const EnqueueArgs& args, const std::string& default_dir);

/// `enqueue`: submits every planned job; prints the id alone (one plain job) or a table of ids,
/// datasets, outputs and sweep settings (JSON: {"jobs": [...]}); with --wait, waits as `wait`.
int run_enqueue(ControlClient& client, const EnqueueArgs& args, bool as_json);
/// Submits `jobs` (planned by plan_jobs) with the arguments' priority and dependencies and prints
/// them; stops at the first refusal (exit 2, naming how many jobs were enqueued before).
int run_enqueue_jobs(ControlClient& client, const EnqueueArgs& args, bool as_json,
                     const std::vector<PlannedJob>& jobs);
/// `status [JOB]`: the job's (or the daemon's) status, human-readable or as JSON.
int run_status(ControlClient& client, std::optional<std::int64_t> job, bool as_json);
/// `list`: a table of jobs (unfinished ones; with `all` finished ones too).
int run_list(ControlClient& client, const std::string& state, bool all, bool as_json);
/// `cancel JOB...`: cancels; exit 2 if any job could not be cancelled.
int run_cancel(ControlClient& client, const std::vector<std::int64_t>& jobs, bool as_json);
/// `retry JOB`: queues the failed frames and unfinished shards of a finished job again.
int run_retry(ControlClient& client, std::int64_t job, bool as_json);
/// `workers`: a table of the stage processes.
int run_workers(ControlClient& client, bool as_json);
/// `stats`: daemon-wide counters.
int run_stats(ControlClient& client, bool as_json);
/// `config`: the daemon's effective configuration (TOML text; JSON object with as_json).
int run_config(ControlClient& client, bool as_json);
/// `undrain`: the daemon accepts enqueue and retry again after `drain`; prints that, or the
/// result as JSON.
int run_undrain(ControlClient& client, bool as_json);
/// `drain`: the daemon accepts no new jobs; with `wait`, waits until its accepted jobs are done,
/// then with `then_shutdown` stops it.
int run_drain(ControlClient& client, bool wait, bool then_shutdown, bool as_json);
/// `shutdown`: asks the daemon to stop.
int run_shutdown(ControlClient& client, bool as_json);
/// `wait JOB...`: polls until every job is final; progress bars on a terminal, plain lines
/// otherwise. Exit code from the worst final state (failed > cancelled > warning > succeeded);
/// kExitTimeout after `timeout` (0 = no limit).
int run_wait(ControlClient& client, const std::vector<std::int64_t>& jobs,
             std::chrono::milliseconds poll_interval, std::chrono::milliseconds timeout,
             bool as_json);
/// `watch JOB`: prints one line per frame result published on the daemon's live endpoint
/// (`live_endpoint` overrides the one the daemon reports) until the job is final; exit code as
/// `wait`.
int run_watch(ControlClient& client, std::int64_t job, const std::string& live_endpoint,
              bool as_json);

/// The exit code for a final job state (0 succeeded, 3 warning, 4 failed, 5 cancelled).
int exit_code_for(const std::string& state);
/// True for succeeded, warning, failed and cancelled.
bool is_final_state(const std::string& state);

}  // namespace azflow::ctl
