#pragma once
// `azflow integrate`: offline integration of a whole dataset into one NeXus file.

#include "cli/integrate_options.hpp"

namespace azflow::cli {

/// The output layout summary for `azflow integrate --help`.
inline constexpr const char* kOutputHelp =
    "Output (NeXus/HDF5, written as OUT.partial and renamed when complete): /entry/integrate "
    "(NXdata, the @default plot): I (frames x npt, or frames x npt_azim x npt_rad, float32), "
    "I_errors, the radial axis q|2th|r with @units and its _edges, chi (2D), frame_index; "
    "/entry/sum (NXdata): I of the dataset-wide sums and sum_signal, sum_variance, "
    "sum_normalization, sum_count (float64); /entry/process (NXprocess): program, version, "
    "date, configuration (JSON), parameters, failed_frames.";

/// Runs `azflow integrate` with validated-by-CLI11 `options`: opens the input, builds the plan
/// (PONI geometry, pixel_mask + --mask, dark, flat), integrates the frames with a worker pool,
/// writes the NeXus file and prints a summary on stdout unless --quiet. Returns kExitOk, or
/// kExitFramesFailed after a warning listing the failed frames on stderr. Throws azflow::Error
/// for anything that prevents a complete output (the caller maps it to an exit code).
int run_integrate(const IntegrateOptions& options);

}  // namespace azflow::cli
