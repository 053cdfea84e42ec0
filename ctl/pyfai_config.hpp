#pragma once
// Import of pyFAI integration settings: the JSON file that pyFAI-integrate saves and that
// pyFAI's Worker reads (pyFAI/worker.py, pyFAI/io/integration_config.py, pyFAI 0.21), so that
// users bring their existing settings to `azflowctl enqueue --config FILE`.

#include <filesystem>

#include "daemon/job_spec.hpp"

namespace azflow::ctl {

/// Reads a pyFAI integration/worker JSON file into a job spec without datasets or output: the
/// geometry (the `poni` block, the top-level PONI keys dist/poni1/poni2/rot1/rot2/rot3/
/// wavelength/detector, or a referenced .poni file, relative to the JSON file's directory) as
/// PONI text, and the settings nbpt_rad, nbpt_azim, unit, do_solid_angle / correct_solid_angle,
/// polarization_factor (with do_polarization), dummy / val_dummy (with do_dummy), delta_dummy,
/// mask_file (with do_mask), dark_current (with do_dark), flat_field (with do_flat), error_model,
/// method (splitting "no" or "bbox" only), radial_range (with do_radial_range), azimuth_range
/// (with do_azimuthal_range) and normalization_factor. Keys that only describe pyFAI's GUI or
/// its output (application, version, output format...) are accepted and ignored; any other key,
/// or a supported key with a value azflow cannot honour (full pixel splitting, a unit azflow
/// lacks), throws azflow::Error (kConfig) naming the file and the key. The result passes
/// daemon::job_spec_from_json's validation once datasets are added.
daemon::JobSpec job_spec_from_pyfai_config(const std::filesystem::path& file);

}  // namespace azflow::ctl
