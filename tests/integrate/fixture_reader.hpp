#pragma once
// Reads datasets and attributes of a test fixture HDF5 file (pyFAI references) into std::vector,
// with the HDF5 C API. Test support only: no caching, whole datasets at once.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "base/dtype.hpp"

namespace azflow::testing {

/// A dataset's elements in their stored type (one of azflow's frame dtypes), row-major.
struct RawArray {
  std::vector<std::byte> bytes;
  DType dtype = DType::kFloat32;
  std::vector<std::size_t> shape;

  [[nodiscard]] std::size_t elements() const noexcept;
};

/// One HDF5 file opened read-only. Paths are absolute HDF5 paths ("/cases/x/I"). Every reader
/// throws azflow::Error (kIo for a missing file or object, kInput for an unexpected type or rank)
/// naming the file and object. Not copyable; closes the file on destruction.
class FixtureFile {
 public:
  explicit FixtureFile(const std::filesystem::path& path);
  ~FixtureFile();
  FixtureFile(const FixtureFile&) = delete;
  FixtureFile& operator=(const FixtureFile&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  /// Whether a link (group or dataset) exists at `object` (every parent must exist too).
  [[nodiscard]] bool has(const std::string& object) const;
  /// Whether `object` has an attribute `name`.
  [[nodiscard]] bool has_attribute(const std::string& object, const std::string& name) const;
  /// Names of a group's members, in name order.
  [[nodiscard]] std::vector<std::string> children(const std::string& group) const;

  /// Dataset dimensions (empty for a scalar).
  [[nodiscard]] std::vector<std::size_t> shape(const std::string& dataset) const;
  /// Whole dataset converted by HDF5 to the requested element type (any numeric stored type).
  [[nodiscard]] std::vector<double> read_f64(const std::string& dataset) const;
  [[nodiscard]] std::vector<float> read_f32(const std::string& dataset) const;
  [[nodiscard]] std::vector<std::int32_t> read_i32(const std::string& dataset) const;
  [[nodiscard]] std::vector<std::uint8_t> read_u8(const std::string& dataset) const;
  /// Whole dataset in its stored type, which must be uint8/16/32, int32 or float32.
  [[nodiscard]] RawArray read_raw(const std::string& dataset) const;

  /// Numeric attribute (scalar or first element) converted to double.
  [[nodiscard]] double attr_f64(const std::string& object, const std::string& name) const;
  /// Numeric attribute, all elements, converted to double.
  [[nodiscard]] std::vector<double> attr_f64s(const std::string& object,
                                              const std::string& name) const;
  /// String attribute (fixed or variable length, as h5py writes them).
  [[nodiscard]] std::string attr_string(const std::string& object, const std::string& name) const;

 private:
  std::filesystem::path path_;
  std::int64_t file_ = -1;  // hid_t
};

}  // namespace azflow::testing
