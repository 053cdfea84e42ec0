#pragma once
// Exit codes of the `azflow` command line tool (documented in `azflow --help`).

namespace azflow::cli {

/// Process exit codes.
enum ExitCode : int {
  kExitOk = 0,            ///< every frame integrated and written
  kExitError = 1,         ///< input, I/O, resource or internal error: nothing (complete) written
  kExitUsage = 2,         ///< bad option or configuration (PONI, settings), or output exists
  kExitFramesFailed = 3,  ///< output written, but some frames failed (NaN rows, listed in file)
  /// --follow: no new frame for --follow-timeout seconds before the series was complete; output
  /// written with the frames seen, the missing ones listed as failed rows.
  kExitFollowIncomplete = 4,
};

/// The exit-code table for --help.
inline constexpr const char* kExitCodeHelp =
    "Exit codes: 0 success; 1 input, I/O or internal error; 2 bad option or configuration "
    "(malformed PONI, invalid setting, existing output without --overwrite); 3 output written "
    "but some frames failed (their rows are NaN; listed in /entry/process/failed_frames); 4 with "
    "--follow: the series stopped short of nimages x ntrigger for --follow-timeout seconds "
    "(output written with the frames seen; the missing ones are failed rows).";

}  // namespace azflow::cli
