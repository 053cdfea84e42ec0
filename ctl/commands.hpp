#pragma once
// azflowctl's subcommands: their options (CLI11) and what each does with a ControlClient.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/integrate_options.hpp"
#include "ctl/client.hpp"
#include "daemon/job_spec.hpp"

namespace azflow::ctl {

/// Options of `azflowctl enqueue`: those of `azflow integrate` (reused from cli/) minus the
/// local-only ones, with several datasets, an optional output and a mode.
struct EnqueueArgs {
  cli::IntegrateOptions integrate;    ///< --poni, --npt, --unit, ... as `azflow integrate` has
  std::vector<std::string> datasets;  ///< one or more master/plain HDF5 files
  std::string mode = "split";         ///< split or bulk
  std::string nodes;                  ///< federation: "all", N or names ("" = this node only)
};

/// Declares the enqueue options on `command`.
void add_enqueue_options(CLI::App& command, EnqueueArgs& args);

/// The job spec for the arguments: relative paths made absolute (from the current directory),
/// the PONI file read. Throws azflow::Error (kConfig) naming the option or file.
daemon::JobSpec make_job_spec(const EnqueueArgs& args);

/// `enqueue`: prints the new job id alone on stdout.
int run_enqueue(ControlClient& client, const EnqueueArgs& args);
/// `status [JOB]`: the job's (or the daemon's) status, human-readable or as JSON.
int run_status(ControlClient& client, std::optional<std::int64_t> job, bool as_json);
/// `list`: a table of jobs (unfinished ones; with `all` finished ones too).
int run_list(ControlClient& client, const std::string& state, bool all, bool as_json);
/// `cancel JOB...`: cancels; exit 2 if any job could not be cancelled.
int run_cancel(ControlClient& client, const std::vector<std::int64_t>& jobs);
/// `shutdown`: asks the daemon to stop.
int run_shutdown(ControlClient& client);
/// `wait JOB`: polls until the job is final; progress bar on a terminal, plain lines otherwise.
/// Exit code from the final state (ExitCode); kExitTimeout after `timeout` (0 = no limit).
int run_wait(ControlClient& client, std::int64_t job, std::chrono::milliseconds poll_interval,
             std::chrono::milliseconds timeout);

}  // namespace azflow::ctl
