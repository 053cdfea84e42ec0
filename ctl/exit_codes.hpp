#pragma once
// Exit codes of azflowctl (documented in `azflowctl --help` and the README).

namespace azflow::ctl {

/// Process exit codes. For commands that wait on several jobs (wait, enqueue --wait) the code is
/// that of the worst final state: failed > cancelled > warning > succeeded.
enum ExitCode : int {
  kExitOk = 0,         ///< done; wait/watch/enqueue --wait: the job(s) succeeded
  kExitNoDaemon = 1,   ///< no answer from azflowd, a broken reply, or an internal error
  kExitRefused = 2,    ///< bad option, unreadable local file, or request refused by the daemon
  kExitWarning = 3,    ///< wait/watch: a job ended with a warning (some frames failed)
  kExitFailed = 4,     ///< wait/watch: a job failed
  kExitCancelled = 5,  ///< wait/watch: a job was cancelled
  kExitTimeout = 6,    ///< `wait --timeout`: a job had not finished in time
};

/// The exit-code table for --help.
inline constexpr const char* kExitCodeHelp =
    "Exit codes: 0 success (wait, watch, enqueue --wait: every job succeeded); 1 no answer from "
    "azflowd (or a broken reply); 2 bad option, pattern matching nothing, or request refused by "
    "the daemon (the message names the field); 3 a waited job ended with a warning (some frames "
    "failed); 4 a waited job failed; 5 a waited job was cancelled; 6 wait --timeout reached. "
    "With several jobs the worst state counts (failed > cancelled > warning).";

}  // namespace azflow::ctl
