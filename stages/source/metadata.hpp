#pragma once
// Internal to azflow::source: reading detector metadata and the pixel mask from a master file.

#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "stages/source/dataset.hpp"

namespace azflow::source {

/// The Eiger/NXmx metadata found in `file` (see DetectorMetadata for paths and units).
[[nodiscard]] DetectorMetadata read_detector_metadata(hid_t file);

/// /entry/instrument/detector/detectorSpecific/pixel_mask as uint32, rows*cols; nullopt if
/// absent. Throws azflow::Error (kInput) naming `file_name` if its shape is not (rows, cols).
[[nodiscard]] std::optional<std::vector<std::uint32_t>> read_pixel_mask(
    hid_t file, const std::string& file_name, std::size_t rows, std::size_t cols);

/// Metres per `units` for a length ("m", "mm", "um", "nm", "angstrom", ...); nullopt if unknown.
[[nodiscard]] std::optional<double> metres_per_unit(const std::string& units);

}  // namespace azflow::source
