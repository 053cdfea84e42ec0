#pragma once
// pyFAI PONI geometry files, versions 1 and 2.
//
// Format (pyFAI 0.21, pyFAI/io/ponifile.py): "key: value" lines, '#' comments. Version 2 has
// `poni_version: 2`, `Detector: <class name>` and `Detector_config: {json}` with pixel1, pixel2 and
// max_shape; version 1 has `PixelSize1`/`PixelSize2` (and optionally `Detector`). Both have
// Distance, Poni1, Poni2 (m), Rot1, Rot2, Rot3 (rad) and Wavelength (m).

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "stages/integrate/detector.hpp"

namespace azflow::integrate {

/// A detector geometry as pyFAI describes it: the detector, the sample-detector distance along the
/// detector normal, the point of normal incidence (PONI) on the detector, three rotations and the
/// X-ray wavelength. Lengths in metres, angles in radians.
struct Poni {
  int version = 2;
  DetectorSpec detector;
  double dist_m = 0;
  double poni1_m = 0;  ///< PONI along the slow axis (rows), from the detector's first pixel edge
  double poni2_m = 0;  ///< PONI along the fast axis (columns)
  double rot1_rad = 0;
  double rot2_rad = 0;
  double rot3_rad = 0;
  std::optional<double> wavelength_m;  ///< needed for q units only
};

/// Parses PONI text. `source` names the file in errors. Throws azflow::Error (kConfig) naming
/// source, line and key for a malformed line or value, an unknown detector, a missing key
/// (Distance, Poni1, Poni2, detector or pixel sizes), or a non-positive distance or pixel size.
Poni parse_poni(std::string_view text, std::string_view source);

/// Reads and parses a PONI file; throws azflow::Error (kIo) if it cannot be read.
Poni read_poni(const std::filesystem::path& path);

/// The PONI's detector with its shape taken from the frames when the PONI gives none (a generic
/// `Detector` with only pixel sizes, as PONI version 1 and older pyFAI wrote it): pyFAI then uses
/// the data's shape. A detector with a shape is returned unchanged.
Poni fit_to_frames(Poni poni, std::size_t rows, std::size_t cols);

/// Throws azflow::Error (kInput) unless frames of `rows` x `cols` fit the PONI's detector; the
/// message names `frames` (e.g. "file.h5 (/entry/data/data)"), `poni_source`, both shapes and the
/// detector. A detector without a shape fits any frames (see fit_to_frames).
void check_frame_shape(const Poni& poni, std::size_t rows, std::size_t cols,
                       std::string_view frames, std::string_view poni_source);

/// Writes `poni` as version-2 PONI text that pyFAI 0.21 reads back unchanged.
std::string format_poni(const Poni& poni);

}  // namespace azflow::integrate
