#pragma once
// Suggestions for mistyped long options of azflowctl, pyFAI's spellings first: pyFAI-integrate
// and pyFAI's JSON use '_' (npt_rad, error_model), azflowctl '-' (--npt-rad, --error-model).

#include <optional>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>

namespace azflow::ctl {

/// The option of `command` (or of its parent `app`) meant by an unknown `--name`: the same name
/// with '_' read as '-', a pyFAI-integrate alias (--polarization -> --polarization-factor), or the
/// one long option at edit distance 1 or 2 (none when two are equally close). nullopt if
/// `given` is known or nothing is close. `given` is "--name" without "=value".
std::optional<std::string> suggest_option(const CLI::App& app, const CLI::App& command,
                                          std::string_view given);

/// Looks through argv (before parsing) for the first unknown long option after the subcommand
/// and returns "COMMAND: unknown option --x_y: did you mean --x-y?" when suggest_option has an
/// answer; nullopt otherwise (CLI11's own error then applies). Stops at "--".
std::optional<std::string> unknown_option_hint(const CLI::App& app, int argc,
                                               const char* const* argv);

}  // namespace azflow::ctl
