#pragma once
// Exit codes of azflowctl (documented in `azflowctl --help`).

namespace azflow::ctl {

/// Process exit codes.
enum ExitCode : int {
  kExitOk = 0,         ///< done; for `wait`: the job succeeded
  kExitNoDaemon = 1,   ///< no answer from azflowd, a broken reply, or an internal error
  kExitRefused = 2,    ///< bad option, unreadable local file, or request refused by the daemon
  kExitWarning = 3,    ///< `wait`: the job ended with a warning (some frames failed)
  kExitFailed = 4,     ///< `wait`: the job failed
  kExitCancelled = 5,  ///< `wait`: the job was cancelled
  kExitTimeout = 6,    ///< `wait --timeout`: the job had not finished in time
};

/// The exit-code table for --help.
inline constexpr const char* kExitCodeHelp =
    "Exit codes: 0 success (wait: job succeeded); 1 no answer from azflowd (or a broken reply); "
    "2 bad option or request refused by the daemon; 3 wait: job ended with a warning (some "
    "frames failed); 4 wait: job failed; 5 wait: job cancelled; 6 wait: --timeout reached.";

}  // namespace azflow::ctl
