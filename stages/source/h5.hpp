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

#include "base/hdf5_id.hpp"

namespace azflow::source::h5 {

/// Owns one HDF5 identifier (base/hdf5_id.hpp).
using Id = azflow::hdf5::Id;

/// Opens `file` read-only with HDF5's error printing silenced; an invalid Id if it does not exist
/// or HDF5 cannot open it. Under an input policy (input_policy.hpp) the file is checked before
/// (check_input_file: a FIFO or device is never opened) and after the open (check_open_input,
/// check_hdf5_references); a refusal throws azflow::Error (kInput) naming the file. `no_locking`
/// disables HDF5 file locking (HDF5 >= 1.10.7), so a writer still holding the file does not block
/// us (follow mode).
[[nodiscard]] Id open_file(const std::filesystem::path& file, bool no_locking);

}  // namespace azflow::source::h5

namespace azflow::source {

/// Checks every file the open HDF5 file `file_id` (opened as `path`) can make HDF5 open: each
/// external link's target, each virtual dataset's source files and each external raw-data file,
/// resolved as HDF5 would (every candidate HDF5 may try: the name as stored, in the HDF5 prefix
/// environment variables, beside `path`, in the working folder) must pass check_input_file, and
/// HDF5 files among them are checked the same way in turn (each once). A virtual-dataset source
/// name with a printf-style pattern ('%') is refused. Throws azflow::Error (kInput) naming the
/// link or dataset, the file holding it and the target. With no roots set, does nothing.
void check_hdf5_references(hid_t file_id, const std::filesystem::path& path);

}  // namespace azflow::source

namespace azflow::source::h5 {

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

/// True when this HDF5 can report a chunk's file address (H5Dget_chunk_info_by_coord, HDF5 >=
/// 1.10.5); without it chunk_location() always fails and chunks are read with read_chunk().
inline constexpr bool kHasChunkInfo = H5_VERSION_GE(1, 10, 5);

/// Where a chunk is stored, as the dataset's chunk index says (untrusted: check it against the
/// file before reading).
struct ChunkLocation {
  std::uint64_t address = 0;  ///< relative to the file's base address (see raw_file)
  std::uint64_t size = 0;     ///< stored bytes; 0 = the chunk was never written
  std::uint32_t filter_mask = 0;
};

/// Looks up the chunk at `offset` in the index of `dset` (one B-tree or array lookup). nullopt
/// if HDF5 fails or lacks the call (kHasChunkInfo false); size 0 if the chunk is not written.
[[nodiscard]] std::optional<ChunkLocation> chunk_location(hid_t dset, const hsize_t* offset);

/// The descriptor HDF5 reads the file of `obj` through, and the file's base address (the user
/// block size: chunk addresses count from there). nullopt unless the file is open with the
/// default POSIX driver (sec2), whose handle is one descriptor of one file.
struct RawFile {
  int fd = -1;
  std::uint64_t base_address = 0;
};
[[nodiscard]] std::optional<RawFile> raw_file(hid_t obj);

}  // namespace azflow::source::h5
