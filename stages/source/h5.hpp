#pragma once
// Internal to azflow::source: small RAII and query helpers over the HDF5 C API. HDF5 stays out of
// the public header (dataset.hpp).

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace azflow::source::h5 {

/// Owns one HDF5 id (file, dataset, dataspace, type, property list) and releases it with
/// H5Idec_ref. Move-only; an invalid id (< 0) is allowed and owns nothing.
class Id {
 public:
  Id() = default;
  explicit Id(hid_t id) noexcept : id_(id) {}
  Id(Id&& other) noexcept : id_(other.release()) {}
  Id& operator=(Id&& other) noexcept;
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  ~Id() { reset(); }

  [[nodiscard]] hid_t get() const noexcept { return id_; }
  [[nodiscard]] bool valid() const noexcept { return id_ >= 0; }
  hid_t release() noexcept;
  void reset() noexcept;

 private:
  hid_t id_ = -1;
};

/// Opens `file` read-only with HDF5's error printing silenced; an invalid Id if HDF5 cannot
/// open it. `no_locking` disables HDF5 file locking (HDF5 >= 1.10.7), so a writer still
/// holding the file does not block us (follow mode).
[[nodiscard]] Id open_file(const std::filesystem::path& file, bool no_locking);

/// Opens dataset `path` in `loc`, silently; an invalid Id if there is none.
[[nodiscard]] Id open_dataset(hid_t loc, const std::string& path);

/// True if `path` (absolute in the file of `loc`) names a link that exists, every parent
/// group included.
[[nodiscard]] bool path_exists(hid_t loc, const std::string& path);

/// Scalar (or one-element) numeric dataset as double; nullopt if absent or not numeric.
[[nodiscard]] std::optional<double> read_number(hid_t loc, const std::string& path);

/// String dataset (fixed or variable length) or, with `attribute`, a string attribute of the
/// object at `path`; nullopt if absent or not a string.
[[nodiscard]] std::optional<std::string> read_string(hid_t loc, const std::string& path,
                                                     const char* attribute = nullptr);

/// Names of the links in group `group` (empty if it does not exist), in name order.
[[nodiscard]] std::vector<std::string> link_names(hid_t loc, const std::string& group);

/// Where an external link points: file name (as stored) and object path; nullopt if `path`
/// is not an external link.
struct ExternalTarget {
  std::string file;
  std::string object;
};
[[nodiscard]] std::optional<ExternalTarget> external_link(hid_t loc, const std::string& path);

/// Reads the stored bytes of the chunk at `offset` into `buf` (at least the chunk's storage
/// size) without running the filters; sets `filter_mask`. False on failure. Guards the
/// H5Dread_chunk signature change of HDF5 2.0.
[[nodiscard]] bool read_chunk(hid_t dset, const hsize_t* offset, std::uint32_t& filter_mask,
                              void* buf, std::size_t buf_size);

}  // namespace azflow::source::h5
