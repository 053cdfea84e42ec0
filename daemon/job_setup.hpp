#pragma once
// What a job needs before its frames can be integrated: the opened dataset, the resolved
// settings, the corrections (detector pixel_mask OR user mask, dark, flat) and the plan.
//
// The shape check (integrate::check_frame_shape) and correction loading (reduce::load_corrections)
// are shared with `azflow integrate`.

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "daemon/job_spec.hpp"
#include "stages/integrate/plan.hpp"
#include "stages/integrate/plan_cache.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/reduce/nexus_writer.hpp"
#include "stages/reduce/plan_setup.hpp"
#include "stages/source/dataset.hpp"

namespace azflow::daemon {

/// Opens a job's input: Dataset::open for one file, Dataset::open_files for several, with the
/// spec's dataset path. A follow job (spec.follow_timeout_s) is opened in follow mode: with
/// `wait` (the source stage) its idle timeout is the spec's, else 0, so that the daemon's loop
/// never waits: the master and a first frame must exist then. Throws azflow::Error (kIo/kInput)
/// naming the file and dataset.
source::Dataset open_job_dataset(const JobSpec& spec, bool wait = false);

/// The input's shape, dtype, frame count and pixel mask: of the opened dataset for a file job
/// (open_job_dataset), from the series for a stream job whose start message arrived (the pixel
/// mask read back from StreamSeries::pixel_mask_path). Throws azflow::Error (kConfig) for a stream
/// job before its start message, kIo/kInput as open_job_dataset or for a pixel mask file of the
/// wrong size.
source::DatasetInfo job_input_info(const JobSpec& spec);

/// Writes a stream series' pixel mask (rows x cols uint32, little-endian) to `path`, created
/// anew (O_EXCL, no link followed). Throws azflow::Error (kIo) naming the file.
void write_stream_pixel_mask(const std::string& path, std::span<const std::uint32_t> mask);

/// Parses the spec's PONI text (source named by poni_path). Throws azflow::Error (kConfig).
integrate::Poni job_poni(const JobSpec& spec);
/// job_poni with the detector's shape taken from `info` when the PONI gives none (fit_to_frames).
integrate::Poni job_poni(const JobSpec& spec, const source::DatasetInfo& info);

/// The plan of a job on a dataset: PONI (fit_to_frames), shape check, the mask/dark/flat paths
/// checked against the allowed input roots, then reduce::make_plan (the path `azflow integrate`
/// takes too) with settings_for(dtype), from the plan folder `cache` when given. Throws
/// azflow::Error as the steps above and Plan::build.
reduce::PlanResult make_job_plan(const JobSpec& spec, const source::DatasetInfo& info,
                                 integrate::PlanCache* cache = nullptr);

/// make_job_plan(...).plan.
std::shared_ptr<const integrate::Plan> build_job_plan(const JobSpec& spec,
                                                      const source::DatasetInfo& info,
                                                      integrate::PlanCache* cache = nullptr);

/// A key under which a job's plan may be cached and shared with other jobs: everything the plan
/// depends on (PONI text, settings, dummy rule, mask/dark/flat paths with their size and mtime,
/// whether the detector mask is used and a 64-bit FNV-1a hash of it, the frame shape and dtype),
/// nothing it does not (datasets, dataset path, frames, follow, a stream job's endpoint and
/// series, output, format, mode, nodes): a stream job's plan is found again by the next series,
/// and a file job's by a job on other frames of the same detector.
std::string plan_cache_key(const JobSpec& spec, const source::DatasetInfo& info);

/// The output axes of a plan as JSON: {"unit", "radial_centers", "radial_edges",
/// "azimuthal_centers", "azimuthal_edges", "with_errors", "with_clip_stats", "bins"}; what an
/// integrate worker sends the daemon so that the daemon never has to build a plan itself.
nlohmann::json plan_axes_json(const integrate::Plan& plan);

/// A NexusLayout from plan_axes_json() output. Throws azflow::Error (kInput) naming the field
/// when a value is missing or of the wrong type.
reduce::NexusLayout layout_from_axes_json(const nlohmann::json& axes, std::string path,
                                          std::size_t frames);

/// Values per result row of a spec's settings: npt_rad, or npt_azim * npt_rad for 2D.
std::size_t spec_bins(const JobSpec& spec) noexcept;

}  // namespace azflow::daemon
