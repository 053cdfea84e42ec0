#pragma once
// The worker pool of `azflow integrate`: N threads, each with its own CpuIntegrator sharing one
// plan, taking frame indexes from an atomic counter and handing rows to the result writer.

#include <cstddef>
#include <limits>
#include <memory>

#include "cli/integrate_options.hpp"
#include "cli/progress.hpp"
#include "stages/integrate/plan.hpp"
#include "stages/reduce/nexus_writer.hpp"
#include "stages/source/dataset.hpp"

namespace azflow::cli {

/// Range of the written intensities over bins with pixels (count > 0); min > max when none.
struct IntensityRange {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  void merge(const IntensityRange& other) noexcept;
};

/// Integrates input frames [range.first, range.last) of `dataset` into rows first_row.. of
/// `writer` with `threads` workers (>= 1); first_row > 0 when a run integrates its frames in
/// batches (azflow integrate --follow).
///
/// Reading: the Dataset is not thread-safe, so one mutex guards it; a worker holds it only to
/// read a frame's compressed chunk (direct chunk read) and decodes outside it, or, for layouts
/// without a direct path, around the whole read_frame. The same mutex is held around each row
/// write, so the run never makes two HDF5 calls at once even with a libhdf5 built without
/// thread safety (a row write is a few microseconds). Each worker owns one chunk buffer, one
/// frame buffer and one BinSums, so memory is bounded by threads x (chunk + frame + bins).
///
/// A frame that fails to read, decode or integrate (azflow::Error kInput/kIo) is recorded with
/// writer.fail_frame(row, reason) and the run goes on. A writer failure or any other exception
/// stops all workers and is rethrown here after they have joined. Returns the intensity range.
/// `radial_profile`: each frame's 2D sums are summed over their radial bins first
/// (integrate::sum_radial_bins, pyFAI's integrate_radial), rows of npt_azim values.
IntensityRange integrate_frames(source::Dataset& dataset, FrameRange range,
                                std::shared_ptr<const integrate::Plan> plan,
                                reduce::ResultWriter& writer, std::size_t threads,
                                ProgressBar& progress, std::size_t first_row = 0,
                                bool radial_profile = false);

}  // namespace azflow::cli
