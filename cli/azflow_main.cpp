// azflow: command line entry point. Subcommands: `integrate` (integration of a dataset, or with
// --stream of one DECTRIS Stream V2 series, into a NeXus file). Errors are azflow::Error, caught
// here once and printed as "azflow: <category>: <message>".

#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "base/error.hpp"
#include "cli/exit_codes.hpp"
#include "cli/integrate_command.hpp"
#include "cli/integrate_options.hpp"
#include "cli/stream_integrate.hpp"
#include "stages/reduce/nexus_writer.hpp"

namespace {

/// Exit code for an azflow::Error that escaped a command.
int exit_code_for(const azflow::Error& e) {
  return e.category() == azflow::ErrorCategory::kConfig ? azflow::cli::kExitUsage
                                                        : azflow::cli::kExitError;
}

}  // namespace

int main(int argc, char** argv) {
  using azflow::cli::kExitError;
  using azflow::cli::kExitUsage;
  CLI::App app("azflow: pyFAI-exact azimuthal integration of X-ray detector frames");
  app.footer(azflow::cli::kExitCodeHelp);
  app.set_version_flag("--version", "azflow " + std::string(azflow::reduce::program_version()));
  app.require_subcommand(1);

  azflow::cli::IntegrateOptions integrate_options;
  CLI::App* integrate = app.add_subcommand(
      "integrate",
      "integrate every frame of a dataset into a NeXus file (like pyFAI-integrate --no-gui)");
  integrate->footer(std::string(azflow::cli::kOutputHelp) + "\n\n" + azflow::cli::kExitCodeHelp);
  azflow::cli::add_integrate_options(*integrate, integrate_options);
  azflow::cli::add_config_option(*integrate, integrate_options);
  azflow::cli::StreamOptions stream_options;
  azflow::cli::add_stream_options(*integrate, stream_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
  try {
    if (!stream_options.endpoint.empty()) {
      if (!integrate_options.config.empty()) {
        throw azflow::Error(azflow::ErrorCategory::kConfig,
                            "--config applies to file input; with --stream give --poni and the "
                            "integration options");
      }
      if (integrate_options.follow) {
        throw azflow::Error(azflow::ErrorCategory::kConfig,
                            "--follow reads files still being written; it does not apply to "
                            "--stream");
      }
      return azflow::cli::run_stream_integrate(integrate_options, stream_options);
    }
    azflow::cli::check_file_input(integrate_options);
    azflow::cli::apply_config(integrate_options);
    return azflow::cli::run_integrate(integrate_options);
  } catch (const azflow::Error& e) {
    std::fprintf(stderr, "azflow: %s\n", e.what());
    return exit_code_for(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "azflow: internal: %s\n", e.what());
    return kExitError;
  }
}
