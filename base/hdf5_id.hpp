#pragma once
// The one RAII owner of HDF5 C API identifiers, used by azflow::source (reading) and
// azflow::reduce (writing). Header-only; include it only from code that links HDF5.

#include <hdf5.h>

#include <utility>

namespace azflow::hdf5 {

/// Owns one HDF5 identifier (file, group, dataset, dataspace, datatype, attribute, property
/// list) and releases it with H5Idec_ref. Move-only; an id < 0 is "none" and owns nothing.
class Id {
 public:
  Id() = default;
  explicit Id(hid_t id) noexcept : id_(id) {}
  Id(Id&& other) noexcept : id_(other.release()) {}
  Id& operator=(Id&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.release();
    }
    return *this;
  }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  ~Id() { reset(); }

  /// The identifier, still owned by this object.
  [[nodiscard]] hid_t get() const noexcept { return id_; }
  /// Whether it holds an identifier (>= 0).
  [[nodiscard]] bool valid() const noexcept { return id_ >= 0; }
  /// Gives up ownership: returns the identifier and holds none.
  hid_t release() noexcept { return std::exchange(id_, H5I_INVALID_HID); }
  /// Releases the identifier now (no-op if none).
  void reset() noexcept {
    if (id_ >= 0) H5Idec_ref(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

}  // namespace azflow::hdf5
