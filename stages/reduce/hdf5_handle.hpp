#pragma once
// Helpers to write HDF5 attributes and datasets, with the RAII Handle of base/hdf5_id.hpp,
// shared by the NeXus writer and the image-file reader of azflow::reduce.

#include <hdf5.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/hdf5_id.hpp"

namespace azflow::reduce::h5 {

/// Owns one HDF5 identifier (base/hdf5_id.hpp).
using Handle = azflow::hdf5::Id;

/// Throws azflow::Error (kIo) with `what` if `id` < 0; else returns it wrapped in a Handle.
Handle check(hid_t id, std::string_view what);
/// Throws azflow::Error (kIo) with `what` if `status` < 0.
void check_status(herr_t status, std::string_view what);

/// Turns HDF5's automatic error printing off for the calling thread's default stack, so that
/// failures surface only as azflow::Error messages.
void silence_errors() noexcept;

/// Creates group `name` under `parent` with attribute NX_class = `nx_class`.
Handle create_nx_group(hid_t parent, const std::string& name, std::string_view nx_class);

/// Writes a scalar variable-length UTF-8 string attribute.
void write_string_attr(hid_t obj, const std::string& name, std::string_view value);
/// Writes a 1D variable-length UTF-8 string array attribute (e.g. NXdata @axes).
void write_string_array_attr(hid_t obj, const std::string& name,
                             std::span<const std::string> values);
/// Writes a scalar int64 attribute (e.g. NXdata @q_indices).
void write_int_attr(hid_t obj, const std::string& name, std::int64_t value);

/// Writes a scalar variable-length UTF-8 string dataset; returns it (for attributes).
Handle write_string(hid_t parent, const std::string& name, std::string_view value);
/// Writes a 1D variable-length UTF-8 string dataset.
Handle write_string_array(hid_t parent, const std::string& name,
                          std::span<const std::string> values);
/// Writes a scalar float64 dataset.
Handle write_scalar(hid_t parent, const std::string& name, double value);
/// Writes a scalar int64 dataset.
Handle write_scalar(hid_t parent, const std::string& name, std::int64_t value);
/// Writes a contiguous dataset of `dims` (row-major) from `data`, stored as float64.
Handle write_array(hid_t parent, const std::string& name, std::span<const hsize_t> dims,
                   std::span<const double> data);
/// Same, float32.
Handle write_array(hid_t parent, const std::string& name, std::span<const hsize_t> dims,
                   std::span<const float> data);
/// Same, int64.
Handle write_array(hid_t parent, const std::string& name, std::span<const hsize_t> dims,
                   std::span<const std::int64_t> data);

}  // namespace azflow::reduce::h5
