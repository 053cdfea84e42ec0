#pragma once
// The one way azflow builds an integration plan from a job's settings, shared by `azflow
// integrate` (cli/integrate_command.cpp, cli/stream_integrate.cpp) and azflowd
// (daemon/job_setup.cpp): corrections loaded, the detector's own mask added when no mask file is
// given, the plan key computed and the plan taken from a plan folder when one is given.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stages/integrate/plan.hpp"
#include "stages/integrate/plan_cache.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/reduce/image_file.hpp"

namespace azflow::reduce {

/// Everything a plan is built from.
struct PlanRequest {
  /// Geometry after integrate::fit_to_frames, its shape checked against the frames
  /// (integrate::check_frame_shape): the callers do both, with their own names in messages.
  integrate::Poni poni;
  std::size_t rows = 0, cols = 0;           ///< frame shape
  integrate::IntegrationSettings settings;  ///< dummy already resolved for the frames' dtype
  /// The input file's detector pixel_mask (rows * cols, nonzero = masked), or null when absent
  /// or not to be used (--no-file-mask, use_file_mask false).
  const std::vector<std::uint32_t>* pixel_mask = nullptr;
  CorrectionFiles images;  ///< user mask, dark, flat ("" = none)
};

/// A plan and how it was obtained.
struct PlanResult {
  std::shared_ptr<const integrate::Plan> plan;
  bool built = true;     ///< false: read from the plan folder
  std::string key_hash;  ///< plan_key_hash of the key ("" without a plan folder)
  double seconds = 0;    ///< spent building or loading
  std::string note;      ///< PlanCache's note (a rejected file, a plan not stored), else ""
};

/// Builds the plan of `request`: load_corrections (pixel_mask OR mask file, dark, flat), the
/// detector's own mask when no mask file is given (integrate::add_detector_mask), then
/// Plan::build, or with `cache` the stored plan of the same key (integrate::plan_key_text).
/// Throws azflow::Error as load_corrections and Plan::build; a broken plan folder only adds a note.
PlanResult make_plan(const PlanRequest& request, integrate::PlanCache* cache = nullptr);

}  // namespace azflow::reduce
