#pragma once
// `azflow integrate`: offline integration of a whole dataset into one NeXus file.

#include "cli/integrate_options.hpp"

namespace azflow::cli {

/// Runs `azflow integrate` with validated-by-CLI11 `options`: opens the input, builds the plan
/// (PONI geometry, pixel_mask + --mask, dark, flat), integrates the frames with a worker pool,
/// writes the NeXus file and prints a summary on stdout unless --quiet. Returns kExitOk, or
/// kExitFramesFailed after a warning listing the failed frames on stderr. Throws azflow::Error
/// for anything that prevents a complete output (the caller maps it to an exit code).
int run_integrate(const IntegrateOptions& options);

}  // namespace azflow::cli
