#pragma once
// Import of pyFAI integration settings: the JSON file that pyFAI-integrate saves and that
// pyFAI's Worker reads (pyFAI/worker.py, pyFAI/io/integration_config.py, pyFAI 0.21), so that
// users bring their existing settings to `azflowctl enqueue --config FILE` and
// `azflow integrate --config FILE`.

#include <filesystem>
#include <string>

#include "stages/integrate/plan.hpp"

namespace azflow::reduce {

/// The integration settings of a pyFAI configuration file (read_pyfai_config).
struct PyfaiSettings {
  std::string poni_text;  ///< version-2 PONI text of the geometry
  std::string poni_path;  ///< the .poni file the config names, else the config file itself
  integrate::IntegrationSettings settings;      ///< validated; dummy only if the config names one
  std::string mask_path, dark_path, flat_path;  ///< absolute image specs ("" = none)
  bool use_file_mask = true;  ///< false for do_mask false: no pixel_mask from the input either
};

/// Reads a pyFAI integration/worker JSON file into integration settings, as
/// pyFAI 0.21's Worker.set_config() reads it (versions 1 to 3, and Worker.get_config()'s keys),
/// and as current pyFAI's WorkerConfig reads versions 4 and 5 (application "worker"; the `poni`
/// geometry object, polarization_description [factor, offset] with offset 0, val_dummy,
/// integrator_class AzimuthalIntegrator, integrator_method / integrator_name integrate1d(_ng) /
/// integrate2d(_ng), extra_options null or {}, or sigma_clip_ng with extra_options thres,
/// max_iter and error_model, shape ignored, error_model "no", and the v4 -> v5
/// renames mask_image, dark_current_image, flat_field_image, dummy, azimuthal_range_min/max,
/// do_azimuth_range taken as mask_file, dark_current, flat_field, val_dummy, azimuth_range_min/max,
/// do_azimuthal_range):
/// - geometry: the `poni` entry (a .poni file name or a geometry object) and/or the top-level
///   keys dist/poni1/poni2/rot1/rot2/rot3/wavelength/detector/detector_config (or pixel1/pixel2
///   and shape), the top-level keys winning (pyFAI's version-1 migration); the result is
///   version-2 PONI text in poni_text, poni_path = the .poni file if one was named, else the
///   JSON file;
/// - nbpt_rad (default 500), nbpt_azim (2D only when do_2D, default true, and nbpt_azim > 1),
///   unit (default 2th_deg), do_solid_angle / correct_solid_angle, polarization_factor (with
///   do_polarization; 0 or null = none, as the Worker), val_dummy / dummy (with do_dummy; no
///   dummy when absent: dummy_auto is false), delta_dummy, mask_file (with do_mask),
///   dark_current (with do_dark), flat_field (with do_flat), do_poisson / error_model, method,
///   radial_range / radial_range_min+max (with do_radial_range), azimuth_range /
///   azimuth_range_min+max (with do_azimuthal_range or do_azimuth_range), normalization_factor;
/// - method: [split, algo, impl], a serialized Method, or a name; the split is what pyFAI 0.21
///   resolves ("no", "bbox" or "full"; names without one resolve as pyFAI does: LUT/OpenCL ->
///   bbox, others -> no); pseudo splitting, and the old names "splitpixel" / "pseudo" (which the
///   Worker reads as no splitting), throw;
/// - file names relative to the JSON file's directory; a "::/dataset" suffix is kept;
///   dark_current / flat_field with more than one file (pyFAI averages them) throws.
/// use_file_mask keeps azflow's default (true). application, version and opencl_device are
/// accepted and change nothing; any other key, and any value azflow cannot honour (pseudo
/// splitting, a unit azflow lacks, a spline, a monitor_name, chi_discontinuity_at_0 with a 2D
/// or azimuth-ranged integration), throws azflow::Error (kConfig) naming the file and the key;
/// an unreadable file throws kIo.
PyfaiSettings read_pyfai_config(const std::filesystem::path& file);

}  // namespace azflow::reduce
