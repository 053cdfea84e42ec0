#pragma once
// Test helpers: write datasets through HDF5 with the installed filter plugins, and read them back
// with HDF5's own H5Dread (the reference azflow's decoders must match) or as raw chunks.

#include <hdf5.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace azflow::test {

inline constexpr unsigned kBitshuffleFilter = 32008;
inline constexpr unsigned kLz4Filter = 32004;

/// Closes an HDF5 id with H5Idec_ref when it goes out of scope.
class H5Id {
 public:
  explicit H5Id(hid_t id) : id_(id) {
    if (id_ < 0) throw std::runtime_error("HDF5 call failed");
  }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  ~H5Id() { H5Idec_ref(id_); }
  operator hid_t() const { return id_; }  // NOLINT(google-explicit-constructor)

 private:
  hid_t id_;
};

/// One dataset to write: shape (frames, rows, cols), element type, chunking, one filter.
struct DatasetSpec {
  std::string name = "/data";
  hid_t type = H5T_NATIVE_UINT32;  // a native type: the file type is the same, little-endian
  std::size_t frames = 1, rows = 37, cols = 53;
  std::vector<hsize_t> chunk;  // empty = (1, rows, cols)
  unsigned filter = 0;         // 0 = none
  std::vector<unsigned> cd_values;
};

/// Writes `data` (frames*rows*cols elements of spec.type, row-major) into `file` (created or
/// opened for writing).
inline void write_dataset(const std::filesystem::path& file, const DatasetSpec& spec,
                          const void* data) {
  H5Id f(std::filesystem::exists(file)
             ? H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT)
             : H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
  const hsize_t dims[3] = {spec.frames, spec.rows, spec.cols};
  H5Id space(H5Screate_simple(3, dims, nullptr));
  H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
  std::vector<hsize_t> chunk = spec.chunk;
  if (chunk.empty()) chunk = {1, spec.rows, spec.cols};
  if (H5Pset_chunk(dcpl, 3, chunk.data()) < 0) throw std::runtime_error("H5Pset_chunk");
  if (spec.filter != 0 && H5Pset_filter(dcpl, spec.filter, H5Z_FLAG_MANDATORY,
                                        spec.cd_values.size(), spec.cd_values.data()) < 0) {
    throw std::runtime_error("H5Pset_filter " + std::to_string(spec.filter));
  }
  H5Id d(H5Dcreate2(f, spec.name.c_str(), spec.type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  if (H5Dwrite(d, spec.type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    throw std::runtime_error("H5Dwrite");
  }
}

/// The whole dataset as HDF5 itself decodes it (H5Dread through the filter plugins).
inline std::vector<std::byte> h5_read_all(const std::filesystem::path& file,
                                          const std::string& name) {
  H5Id f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  H5Id d(H5Dopen2(f, name.c_str(), H5P_DEFAULT));
  H5Id type(H5Dget_type(d));
  H5Id space(H5Dget_space(d));
  const auto n = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space));
  std::vector<std::byte> out(n * H5Tget_size(type));
  if (H5Dread(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    throw std::runtime_error("H5Dread");
  }
  return out;
}

/// The stored (still encoded) chunk of frame `frame` of a (1, rows, cols)-chunked dataset.
inline std::vector<std::byte> read_raw_chunk(const std::filesystem::path& file,
                                             const std::string& name, std::size_t frame) {
  H5Id f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  H5Id d(H5Dopen2(f, name.c_str(), H5P_DEFAULT));
  const hsize_t offset[3] = {frame, 0, 0};
  hsize_t bytes = 0;
  if (H5Dget_chunk_storage_size(d, offset, &bytes) < 0) throw std::runtime_error("chunk size");
  std::vector<std::byte> out(bytes);
  std::uint32_t mask = 0;
#if H5_VERSION_GE(2, 0, 0)
  std::size_t nalloc = out.size();
  const herr_t status = H5Dread_chunk2(d, H5P_DEFAULT, offset, &mask, out.data(), &nalloc);
#else
  const herr_t status = H5Dread_chunk(d, H5P_DEFAULT, offset, &mask, out.data());
#endif
  if (status < 0) throw std::runtime_error("H5Dread_chunk");
  return out;
}

/// Detector-like test data: mostly small Poisson-ish counts, some zeros and a few pixels at the
/// type's maximum (gaps), so blocks compress; `noise` = uniform random bytes instead (blocks
/// that do not compress, stored raw by the LZ4 filter).
inline std::vector<std::byte> make_frames(std::size_t bytes, std::size_t elem_size, unsigned seed,
                                          bool noise = false) {
  std::mt19937 rng(seed);
  std::vector<std::byte> out(bytes);
  if (noise) {
    for (auto& b : out) b = static_cast<std::byte>(rng() & 0xFF);
    return out;
  }
  std::poisson_distribution<unsigned> counts(3.0);
  for (std::size_t i = 0; i + elem_size <= bytes; i += elem_size) {
    std::uint64_t v = counts(rng);
    if (rng() % 97 == 0) v = ~0ULL;
    for (std::size_t b = 0; b < elem_size; ++b) out[i + b] = static_cast<std::byte>(v >> (8 * b));
  }
  return out;
}

}  // namespace azflow::test
