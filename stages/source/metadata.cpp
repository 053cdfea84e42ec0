#include "stages/source/metadata.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "base/error.hpp"
#include "stages/source/h5.hpp"

namespace azflow::source {
namespace {

constexpr const char* kDetector = "/entry/instrument/detector/";
constexpr const char* kSpecific = "/entry/instrument/detector/detectorSpecific/";

// A length in metres: the value at `path` times its units attribute (or `default_units`).
std::optional<double> read_length_m(hid_t file, const std::string& path,
                                    const std::string& default_units) {
  const auto value = h5::read_number(file, path);
  if (!value) return std::nullopt;
  const auto units = h5::read_string(file, path, "units").value_or(default_units);
  const auto scale = metres_per_unit(units);
  if (!scale) return std::nullopt;
  return *value * *scale;
}

std::optional<std::size_t> read_count(hid_t file, const std::string& path) {
  const auto value = h5::read_number(file, path);
  if (!value || *value < 0 || !std::isfinite(*value)) return std::nullopt;
  return static_cast<std::size_t>(*value);
}

}  // namespace

std::optional<double> metres_per_unit(const std::string& units) {
  std::string u;
  for (char c : units) {
    if (!std::isspace(static_cast<unsigned char>(c))) {
      u += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  if (u == "m" || u == "meter" || u == "metre" || u == "meters" || u == "metres") return 1.0;
  if (u == "mm" || u == "millimeter" || u == "millimetre") return 1e-3;
  if (u == "um" || u == "micron" || u == "microns" || u == "micrometer" || u == "\xc2\xb5m") {
    return 1e-6;
  }
  if (u == "nm" || u == "nanometer" || u == "nanometre") return 1e-9;
  if (u == "a" || u == "angstrom" || u == "angstroms" || u == "\xc3\xa5") return 1e-10;
  return std::nullopt;
}

DetectorMetadata read_detector_metadata(hid_t file) {
  DetectorMetadata m;
  const std::string det = kDetector;
  m.beam_center_x_px = h5::read_number(file, det + "beam_center_x");
  m.beam_center_y_px = h5::read_number(file, det + "beam_center_y");
  m.detector_distance_m = read_length_m(file, det + "detector_distance", "m");
  m.x_pixel_size_m = read_length_m(file, det + "x_pixel_size", "m");
  m.y_pixel_size_m = read_length_m(file, det + "y_pixel_size", "m");
  m.incident_wavelength_m =
      read_length_m(file, "/entry/instrument/beam/incident_wavelength", "angstrom");
  if (!m.incident_wavelength_m) {
    m.incident_wavelength_m =
        read_length_m(file, "/entry/instrument/monochromator/wavelength", "angstrom");
  }
  m.description = h5::read_string(file, det + "description");
  m.nimages = read_count(file, std::string(kSpecific) + "nimages");
  m.ntrigger = read_count(file, std::string(kSpecific) + "ntrigger");
  return m;
}

std::optional<std::vector<std::uint32_t>> read_pixel_mask(hid_t file, const std::string& file_name,
                                                          std::size_t rows, std::size_t cols) {
  const std::string path = std::string(kSpecific) + "pixel_mask";
  h5::Id d = h5::open_dataset(file, path);
  if (!d.valid()) return std::nullopt;
  h5::Id space(H5Dget_space(d.get()));
  hsize_t dims[2] = {0, 0};
  if (H5Sget_simple_extent_ndims(space.get()) != 2 ||
      H5Sget_simple_extent_dims(space.get(), dims, nullptr) < 0 || dims[0] != rows ||
      dims[1] != cols) {
    throw Error(ErrorCategory::kInput,
                "file " + file_name + ", dataset " + path + ": shape does not match the frames (" +
                    std::to_string(rows) + " x " + std::to_string(cols) + ")");
  }
  std::vector<std::uint32_t> mask(rows * cols);
  herr_t status = -1;
  H5E_BEGIN_TRY {
    status = H5Dread(d.get(), H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, mask.data());
  }
  H5E_END_TRY;
  if (status < 0) {
    throw Error(ErrorCategory::kIo, "file " + file_name + ", dataset " + path + ": cannot read");
  }
  return mask;
}

}  // namespace azflow::source
