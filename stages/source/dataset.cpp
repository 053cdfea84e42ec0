#include "stages/source/dataset.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <regex>
#include <thread>
#include <utility>

#include "base/error.hpp"
#include "stages/decompress/codec.hpp"
#include "stages/source/h5.hpp"
#include "stages/source/mapped_file.hpp"
#include "stages/source/metadata.hpp"

namespace azflow::source {
namespace {

namespace fs = std::filesystem;
using decompress::Codec;
using decompress::CodecParams;
using Clock = std::chrono::steady_clock;

constexpr unsigned kBitshuffleFilterId = 32008;
constexpr unsigned kLz4FilterId = 32004;
constexpr const char* kDefaultDataset = "/entry/data/data";

// Element type of a dataset, and the native type H5Dread converts it to.
struct ElementType {
  DType dtype;
  hid_t mem_type;
};

std::optional<ElementType> classify(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t size = H5Tget_size(type);
  const bool little = size == 1 || H5Tget_order(type) == H5T_ORDER_LE;
  if (cls == H5T_FLOAT && H5Tequal(type, H5T_IEEE_F32LE) > 0) {
    return ElementType{DType::kFloat32, H5T_NATIVE_FLOAT};
  }
  if (cls == H5T_FLOAT && H5Tequal(type, H5T_IEEE_F64LE) > 0) {
    return ElementType{DType::kFloat64, H5T_NATIVE_DOUBLE};
  }
  if (cls != H5T_INTEGER || !little) return std::nullopt;
  const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
  if (!is_signed && size == 1) return ElementType{DType::kUint8, H5T_NATIVE_UINT8};
  if (!is_signed && size == 2) return ElementType{DType::kUint16, H5T_NATIVE_UINT16};
  if (!is_signed && size == 4) return ElementType{DType::kUint32, H5T_NATIVE_UINT32};
  if (is_signed && size == 2) return ElementType{DType::kInt16, H5T_NATIVE_INT16};
  if (is_signed && size == 4) return ElementType{DType::kInt32, H5T_NATIVE_INT32};
  if (is_signed && size == 8) return ElementType{DType::kInt64, H5T_NATIVE_INT64};
  return std::nullopt;
}

// An HDF5 element type in NumPy-style words for messages: "int64", "float64", "big-endian
// uint16", "string" ... (never HDF5's class number).
std::string describe_type(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t bits = 8 * H5Tget_size(type);
  const bool big = H5Tget_size(type) > 1 && H5Tget_order(type) == H5T_ORDER_BE;
  const std::string order = big ? "big-endian " : "";
  switch (cls) {
    case H5T_INTEGER:
      return order + (H5Tget_sign(type) == H5T_SGN_2 ? "int" : "uint") + std::to_string(bits);
    case H5T_FLOAT:
      return order + "float" + std::to_string(bits);
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    case H5T_ARRAY:
      return "array";
    default:
      return "non-numeric type of " + std::to_string(bits / 8) + " bytes";
  }
}

// The codec azflow uses for a dataset's filter pipeline (kOther: leave it to HDF5).
CodecParams codec_of(hid_t dcpl, std::size_t elem_size) {
  const int n = H5Pget_nfilters(dcpl);
  if (n == 0) return {Codec::kNone, elem_size, 0};
  if (n != 1) return {Codec::kOther, elem_size, 0};
  unsigned flags = 0, config = 0;
  unsigned cd[8] = {};
  std::size_t nelmts = 8;
  char name[80] = {};
  const H5Z_filter_t id = H5Pget_filter2(dcpl, 0, &flags, &nelmts, cd, sizeof name, name, &config);
  if (id == kLz4FilterId) return {Codec::kLz4, elem_size, 0};
  if (id != kBitshuffleFilterId) return {Codec::kOther, elem_size, 0};
  const std::size_t cd_elem = nelmts > 2 ? cd[2] : elem_size;
  const unsigned compression = nelmts > 4 ? cd[4] : 0;
  const std::size_t block = nelmts > 3 ? cd[3] : 0;
  if (cd_elem != elem_size) return {Codec::kOther, elem_size, 0};
  if (compression == 2) return {Codec::kBitshuffleLz4, elem_size, 0};
  if (compression == 0) return {Codec::kBitshuffle, elem_size, block};
  return {Codec::kOther, elem_size, 0};
}

// Re-throws `e` with "<context>: " in front of its message, keeping the category.
[[noreturn]] void rethrow_with(const Error& e, const std::string& context) {
  std::string message = e.what();
  const std::size_t colon = message.find(": ");
  if (colon != std::string::npos) message = message.substr(colon + 2);
  throw Error(e.category(), context + ": " + message);
}

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

}  // namespace

// One data file (or the dataset in it) that holds consecutive frames of the series.
struct Part {
  fs::path file;
  std::string object;  // dataset path in `file`
  std::string via;     // how the master names it ("/entry/data/data_000001"), or ""
  bool present = false;
  std::size_t frames = 0;
  std::size_t first = 0;  // global index of its first frame
  int rank = 3;
  bool direct = false;
  bool mappable = false;  // direct, and chunks may be read from a mapping of `file`
  CodecParams codec;
  h5::Id fid, did;
  std::vector<h5::ChunkLocation> locations;  // by local frame, cached once written (size > 0)
  bool map_tried = false;
  std::optional<MappedFile> map;
  std::uint64_t base_address = 0;  // where chunk addresses count from (the user block size)

  // A part not opened yet.
  static Part named(fs::path file, std::string object, std::string via = {}) {
    Part p;
    p.file = std::move(file);
    p.object = std::move(object);
    p.via = std::move(via);
    return p;
  }

  [[nodiscard]] std::string where() const {
    return "file " + quoted(file) + ", dataset " + object + (via.empty() ? "" : " (" + via + ")");
  }
};

struct Dataset::Impl {
  OpenOptions options;
  DatasetInfo info;
  std::vector<Part> parts;
  bool shape_known = false;
  hid_t mem_type = -1;
  std::vector<std::byte> chunk_buf;

  [[nodiscard]] bool complete() const {
    const auto expected = expected_frames();
    return expected && info.frames >= *expected;
  }

  [[nodiscard]] std::optional<std::size_t> expected_frames() const {
    const auto& d = info.detector;
    if (!d.nimages) return std::nullopt;
    return *d.nimages * d.ntrigger.value_or(1);
  }

  // Checks rank, type, shape and chunking of `p`'s open dataset and sets its frames and codec.
  void inspect(Part& p, hid_t did) {
    h5::Id space(H5Dget_space(did));
    const int rank = H5Sget_simple_extent_ndims(space.get());
    hsize_t dims[3] = {1, 0, 0};
    if (rank != 2 && rank != 3) {
      throw Error(ErrorCategory::kInput, p.where() + ": rank " + std::to_string(rank) +
                                             ", expected (frames, rows, cols) or (rows, cols)");
    }
    H5Sget_simple_extent_dims(space.get(), rank == 3 ? dims : dims + 1, nullptr);
    h5::Id type(H5Dget_type(did));
    const auto element = classify(type.get());
    if (!element) {
      throw Error(ErrorCategory::kInput, p.where() + ": unsupported element type " +
                                             describe_type(type.get()) +
                                             " (need little-endian uint8, uint16, uint32, int16, "
                                             "int32, int64, float32 or float64)");
    }
    check_shape(p, dims[1], dims[2], element->dtype);
    mem_type = element->mem_type;
    p.rank = rank;
    p.frames = dims[0];
    h5::Id dcpl(H5Dget_create_plist(did));
    hsize_t chunk[3] = {0, 0, 0};
    const bool chunked = H5Pget_layout(dcpl.get()) == H5D_CHUNKED &&
                         H5Pget_chunk(dcpl.get(), rank, rank == 3 ? chunk : chunk + 1) == rank;
    const bool one_frame =
        chunked && (rank == 2 || chunk[0] == 1) && chunk[1] == dims[1] && chunk[2] == dims[2];
    p.codec = codec_of(dcpl.get(), dtype_size(element->dtype));
    p.direct = one_frame && p.codec.codec != Codec::kOther && !options.force_hdf5_filter_path;
    p.mappable = p.direct && options.map_files && h5::kHasChunkInfo &&
                 H5Pget_external_count(dcpl.get()) == 0;
  }

  void check_shape(const Part& p, std::size_t rows, std::size_t cols, DType dtype) {
    if (!shape_known) {
      info.rows = rows;
      info.cols = cols;
      info.dtype = dtype;
      shape_known = true;
      return;
    }
    if (rows != info.rows || cols != info.cols || dtype != info.dtype) {
      throw Error(ErrorCategory::kInput,
                  p.where() + ": frames are " + std::to_string(rows) + " x " +
                      std::to_string(cols) + " " + std::string(dtype_name(dtype)) +
                      ", earlier files " + std::to_string(info.rows) + " x " +
                      std::to_string(info.cols) + " " + std::string(dtype_name(info.dtype)));
    }
  }

  // Opens `p` if its file and dataset exist and can be opened; false if not (yet).
  bool try_open(Part& p) {
    std::error_code ec;
    if (!fs::exists(p.file, ec)) return false;
    h5::Id f = h5::open_file(p.file, options.follow);
    if (!f.valid()) return false;
    h5::Id d = h5::open_dataset(f.get(), p.object);
    if (!d.valid()) {
      if (options.follow) return false;
      throw Error(ErrorCategory::kInput, p.where() + ": no such dataset");
    }
    inspect(p, d.get());
    p.fid = std::move(f);
    p.did = std::move(d);
    p.present = true;
    return true;
  }

  // Re-opens a present part to see frames appended since. HDF5 caches a file's metadata while
  // any handle to it is open, so the old handles are closed first.
  void reopen(Part& p) {
    Part fresh = Part::named(p.file, p.object, p.via);
    fresh.first = p.first;
    p.did.reset();
    p.fid.reset();
    try {
      if (try_open(fresh)) {
        p = std::move(fresh);
        return;
      }
    } catch (const Error&) {
      // A file caught mid-write: look again later.
    }
    try {
      p.present = try_open(p);
    } catch (const Error&) {
      p.present = false;
    }
  }

  void open_all_now() {
    for (Part& p : parts) {
      std::error_code ec;
      if (!fs::exists(p.file, ec)) {
        throw Error(ErrorCategory::kIo, p.where() + ": data file does not exist");
      }
      if (!try_open(p)) throw Error(ErrorCategory::kIo, p.where() + ": HDF5 cannot open the file");
    }
    recount();
  }

  // Frames are counted over the present parts up to the first missing one; the parts from there
  // on start at that count, so that locate() never picks one of them for a frame found earlier.
  void recount() {
    std::size_t total = 0;
    bool counting = true;
    for (Part& p : parts) {
      counting = counting && p.present;
      p.first = total;
      if (counting) total += p.frames;
    }
    info.frames = total;
  }

  std::size_t refresh() {
    for (std::size_t i = 0; i < parts.size(); ++i) {
      Part& p = parts[i];
      const bool last_present = p.present && (i + 1 == parts.size() || !parts[i + 1].present);
      if (!p.present) {
        if (!try_open(p)) break;
        if (i > 0) reopen(parts[i - 1]);  // a later file exists: the earlier one is finished
      } else if (last_present && !complete()) {
        reopen(p);
      }
    }
    recount();
    return info.frames;
  }

  std::size_t wait_for_frames(std::size_t count) {
    const auto idle = std::chrono::duration<double>(options.idle_timeout_s);
    const auto poll =
        std::chrono::duration<double>(std::clamp(options.idle_timeout_s / 20, 0.01, 0.2));
    auto last_progress = Clock::now();
    std::size_t last = info.frames;
    for (;;) {
      if (options.follow) refresh();
      if (info.frames >= count || !options.follow || complete()) return info.frames;
      if (info.frames != last) {
        last = info.frames;
        last_progress = Clock::now();
      } else if (Clock::now() - last_progress > idle) {
        return info.frames;
      }
      std::this_thread::sleep_for(poll);
    }
  }

  // The part holding global frame `index`, waiting for it in follow mode.
  Part& locate(std::size_t index) {
    if (index >= info.frames && options.follow) wait_for_frames(index + 1);
    if (index >= info.frames) {
      throw Error(
          options.follow ? ErrorCategory::kIo : ErrorCategory::kInput,
          "file " + quoted(info.path) + ", dataset " + info.dataset + ", frame " +
              std::to_string(index) + ": " +
              (options.follow ? "not written within the idle timeout; " : "out of range; ") +
              std::to_string(info.frames) + " frames found");
    }
    auto it = std::upper_bound(parts.begin(), parts.end(), index,
                               [](std::size_t i, const Part& p) { return i < p.first; });
    return *(it - 1);
  }

  std::string context(const Part& p, std::size_t index) const {
    std::string s = p.where() + ", frame " + std::to_string(index);
    if (p.first != 0) s += " (frame " + std::to_string(index - p.first) + " of this file)";
    return s;
  }

  // Frame `index`'s chunk in `p` as its index says; `addressed` false when HDF5 cannot give
  // addresses (then loc.address is 0 and only loc.size is known). loc.size 0 = not written.
  struct Stored {
    h5::ChunkLocation loc;
    bool addressed = false;
  };

  // Frame `index`'s chunk location from `p`'s cache, else from the chunk index (cached once
  // written); nullopt if `p` is not mappable or HDF5 cannot say. Does not throw.
  std::optional<h5::ChunkLocation> locate_chunk(Part& p, std::size_t index) {
    const std::size_t local = index - p.first;
    if (!p.mappable || local >= p.frames) return std::nullopt;
    if (local < p.locations.size() && p.locations[local].size != 0) return p.locations[local];
    hsize_t offset[3] = {local, 0, 0};
    const auto loc = h5::chunk_location(p.did.get(), p.rank == 3 ? offset : offset + 1);
    if (loc && loc->size != 0) {
      if (p.locations.size() < p.frames) p.locations.resize(p.frames);
      p.locations[local] = *loc;
    }
    return loc;
  }

  // Looks frame `index`'s chunk up (once, where addresses are cached).
  Stored query(Part& p, std::size_t index) {
    if (const auto loc = locate_chunk(p, index)) return {*loc, true};
    hsize_t offset[3] = {index - p.first, 0, 0};
    const hsize_t* at = p.rank == 3 ? offset : offset + 1;
    hsize_t bytes = 0;
    if (H5Dget_chunk_storage_size(p.did.get(), at, &bytes) < 0) {
      throw Error(ErrorCategory::kIo, context(p, index) + ": HDF5 cannot locate the chunk");
    }
    return {{0, bytes, 0}, false};
  }

  // Frame `index`'s chunk in `p`; in follow mode waits for it to be written.
  Stored find_chunk(Part& p, std::size_t index) {
    const auto deadline_step = std::chrono::duration<double>(options.idle_timeout_s);
    const auto start = Clock::now();
    for (;;) {
      const Stored s = query(p, index);
      if (s.loc.size > 0 || !options.follow || Clock::now() - start > deadline_step) {
        if (s.loc.size == 0) {
          throw Error(ErrorCategory::kInput,
                      context(p, index) + ": the frame's chunk was never written");
        }
        return s;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      reopen(p);
    }
  }

  void check_plausible(const Part& p, std::size_t index, std::uint64_t bytes) const {
    const std::size_t limit = 2 * info.frame_bytes() + 4096;  // LZ4 expands by < 1%
    if (bytes > limit) {
      throw Error(ErrorCategory::kInput, context(p, index) + ": chunk of " + std::to_string(bytes) +
                                             " bytes is implausibly large for a frame of " +
                                             std::to_string(info.frame_bytes()));
    }
  }

  // `p`'s data file mapped read-only (on first use); nullptr if it cannot be.
  MappedFile* mapping(Part& p) {
    if (!p.map_tried) {
      p.map_tried = true;
      if (const auto raw = h5::raw_file(p.did.get())) {
        p.map = MappedFile::from_fd(raw->fd);
        p.base_address = raw->base_address;
      }
    }
    return p.map ? &*p.map : nullptr;
  }

  // Bytes [begin, end) of chunk `loc` in the file mapped by `m`, checked: inside the file as
  // mapped, remapping it if it grew (kInput if not: the index lies), and inside the file now,
  // by fstat (kIo if it shrank).
  std::pair<std::uint64_t, std::uint64_t> checked_range(const Part& p, std::size_t index,
                                                        MappedFile& m,
                                                        const h5::ChunkLocation& loc) const {
    const std::uint64_t begin = p.base_address + loc.address;
    const std::uint64_t end = begin + loc.size;
    const bool overflows = begin < p.base_address || end < begin;
    const auto describe = [&](const std::optional<std::uint64_t>& size) {
      return "bytes [" + std::to_string(begin) + ", " + std::to_string(end) + ") of a file of " +
             (size ? std::to_string(*size) : std::string("?")) + " bytes";
    };
    if (overflows || !m.cover(end)) {
      throw Error(ErrorCategory::kInput, context(p, index) + ": the chunk index puts the chunk " +
                                             (overflows ? "at an address that overflows, "
                                                        : "past the end of the file, ") +
                                             describe(m.current_size()));
    }
    const auto now = m.current_size();
    if (!now || *now < end) {
      throw Error(
          ErrorCategory::kIo,
          context(p, index) + ": the file shrank while open; the chunk was at " + describe(now));
    }
    return {begin, end};
  }

  // Frame `index`'s chunk `s` inside the mapping of `p`'s file, checked against the file's size
  // now; nullopt if it cannot be mapped. See Dataset::chunk_view for the residual SIGBUS race.
  std::optional<ChunkView> view(Part& p, std::size_t index, const Stored& s) {
    if (!s.addressed || !p.mappable) return std::nullopt;
    MappedFile* m = mapping(p);
    if (m == nullptr) return std::nullopt;
    check_plausible(p, index, s.loc.size);
    const auto [begin, end] = checked_range(p, index, *m, s.loc);
    ChunkView v{
        m->bytes().subspan(static_cast<std::size_t>(begin), static_cast<std::size_t>(end - begin)),
        p.codec};
    if ((s.loc.filter_mask & 1U) != 0) v.codec.codec = Codec::kNone;  // filter skipped
    return v;
  }

  // Hints the kernel to read frame `index`'s chunk ahead, if it is in `p` and already indexed.
  void prefetch(Part& p, std::size_t index) {
    if (!p.map) return;
    const auto loc = locate_chunk(p, index);
    if (loc && loc->size != 0 && loc->address < p.map->size()) {
      p.map->will_need(static_cast<std::size_t>(p.base_address + loc->address),
                       static_cast<std::size_t>(loc->size));
    }
  }

  // Reads frame `index`'s stored chunk `s` into `out`: a copy from the mapping (when `v`, the
  // chunk's view, is given), or H5Dread_chunk.
  RawChunk read_raw(Part& p, std::size_t index, std::span<std::byte> out, const Stored& s,
                    const std::optional<ChunkView>& v) {
    const std::size_t bytes = static_cast<std::size_t>(s.loc.size);
    check_plausible(p, index, bytes);
    if (out.size() < bytes) {
      throw Error(ErrorCategory::kInternal, context(p, index) + ": buffer of " +
                                                std::to_string(out.size()) +
                                                " bytes for a chunk of " + std::to_string(bytes));
    }
    if (v) {
      std::copy(v->bytes.begin(), v->bytes.end(), out.begin());
      return RawChunk{bytes, v->codec};
    }
    hsize_t offset[3] = {index - p.first, 0, 0};
    std::uint32_t mask = 0;
    if (!h5::read_chunk(p.did.get(), p.rank == 3 ? offset : offset + 1, mask, out.data(), bytes)) {
      throw Error(ErrorCategory::kIo, context(p, index) + ": HDF5 cannot read the chunk");
    }
    RawChunk raw{bytes, p.codec};
    if ((mask & 1U) != 0) raw.codec.codec = Codec::kNone;  // the filter was skipped for this chunk
    return raw;
  }

  void decode_chunk(const Part& p, std::size_t index, const CodecParams& codec,
                    std::span<const std::byte> in, std::span<std::byte> out) const {
    try {
      decompress::decode(codec, in, out);
    } catch (const Error& e) {
      rethrow_with(e, context(p, index));
    }
  }

  void read_direct(Part& p, std::size_t index, std::span<std::byte> out) {
    const Stored s = find_chunk(p, index);
    if (const auto v = view(p, index, s)) {
      decode_chunk(p, index, v->codec, v->bytes, out);
      prefetch(p, index + 1);
      return;
    }
    const auto bytes = static_cast<std::size_t>(s.loc.size);
    check_plausible(p, index, bytes);
    if (chunk_buf.size() < bytes) chunk_buf.resize(std::max(bytes, chunk_buf.size() * 5 / 4));
    const RawChunk raw = read_raw(p, index, chunk_buf, s, std::nullopt);
    decode_chunk(p, index, raw.codec, std::span<const std::byte>(chunk_buf.data(), raw.bytes), out);
  }

  // Opens the parts (waiting for the first in follow mode) and reads the mask and metadata.
  void finish_open(hid_t meta_file, const std::string& meta_name) {
    info.detector = read_detector_metadata(meta_file);
    if (options.follow) {
      wait_for_frames(1);
      if (!shape_known) {
        throw Error(ErrorCategory::kIo, parts.front().where() + ": no data appeared within " +
                                            std::to_string(options.idle_timeout_s) + " s");
      }
    } else {
      open_all_now();
    }
    info.pixel_mask = read_pixel_mask(meta_file, meta_name, info.rows, info.cols);
  }

  void read_hdf5(Part& p, std::size_t index, std::span<std::byte> out) {
    h5::Id fspace(H5Dget_space(p.did.get()));
    const hsize_t start[3] = {index - p.first, 0, 0};
    const hsize_t count[3] = {1, info.rows, info.cols};
    const int skip = p.rank == 3 ? 0 : 1;
    const hsize_t n = info.rows * info.cols;
    h5::Id mspace(H5Screate_simple(1, &n, nullptr));
    herr_t status = -1;
    H5E_BEGIN_TRY {
      status = H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start + skip, nullptr,
                                   count + skip, nullptr);
      if (status >= 0) {
        status =
            H5Dread(p.did.get(), mem_type, mspace.get(), fspace.get(), H5P_DEFAULT, out.data());
      }
    }
    H5E_END_TRY;
    if (status < 0) {
      throw Error(ErrorCategory::kInput,
                  context(p, index) +
                      ": HDF5's filter pipeline could not read the frame (corrupt chunk or "
                      "missing filter plugin)");
    }
  }
};

Dataset::Dataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dataset::Dataset(Dataset&&) noexcept = default;
Dataset& Dataset::operator=(Dataset&&) noexcept = default;
Dataset::~Dataset() = default;

namespace {

// Opens `path` read-only; in follow mode retries until the idle timeout.
h5::Id open_or_wait(const fs::path& path, const OpenOptions& options) {
  const auto start = Clock::now();
  for (;;) {
    h5::Id f = h5::open_file(path, options.follow);
    if (f.valid()) return f;
    const bool expired =
        Clock::now() - start > std::chrono::duration<double>(options.idle_timeout_s);
    if (!options.follow || expired) {
      std::error_code ec;
      throw Error(ErrorCategory::kIo,
                  "file " + quoted(path) + ": " +
                      (fs::exists(path, ec) ? "HDF5 cannot open it" : "does not exist"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// The parts a master or plain file names (see the header for the layouts).
std::vector<Part> discover(hid_t file, const fs::path& path, const OpenOptions& options,
                           std::string& description) {
  std::vector<Part> parts;
  if (!options.dataset_path.empty()) {
    description = options.dataset_path;
    parts.push_back(Part::named(path, options.dataset_path));
    return parts;
  }
  static const std::regex kDataLink("data_[0-9]{6}");
  for (const std::string& name : h5::link_names(file, "/entry/data")) {
    if (!std::regex_match(name, kDataLink)) continue;
    const std::string link = "/entry/data/" + name;
    Part p = Part::named(path, link);
    if (const auto target = h5::external_link(file, link)) {
      const fs::path target_file(target->file);
      p.file = target_file.is_absolute() ? target_file : path.parent_path() / target_file;
      p.object = target->object;
      p.via = "linked from " + quoted(path) + " " + link;
    }
    parts.push_back(std::move(p));
  }
  if (!parts.empty()) {
    description = "/entry/data/data_NNNNNN (" + std::to_string(parts.size()) + " links)";
    return parts;
  }
  if (h5::path_exists(file, kDefaultDataset)) {
    description = kDefaultDataset;
    parts.push_back(Part::named(path, kDefaultDataset));
    return parts;
  }
  throw Error(ErrorCategory::kInput, "file " + quoted(path) +
                                         ": no frames: neither /entry/data/data_NNNNNN links nor "
                                         "/entry/data/data");
}

}  // namespace

Dataset Dataset::open(const fs::path& path, const OpenOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->info.path = path;
  h5::Id master = open_or_wait(path, options);
  impl->parts = discover(master.get(), path, options, impl->info.dataset);
  impl->finish_open(master.get(), quoted(path));
  return Dataset(std::move(impl));
}

Dataset Dataset::open_files(const std::vector<fs::path>& files, const OpenOptions& options) {
  if (files.empty()) throw Error(ErrorCategory::kConfig, "open_files: no files given");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->info.path = files.front();
  const std::string object =
      options.dataset_path.empty() ? std::string(kDefaultDataset) : options.dataset_path;
  impl->info.dataset = object;
  for (const auto& f : files) {
    impl->parts.push_back(Part::named(f, object));
  }
  h5::Id first = open_or_wait(files.front(), options);
  impl->finish_open(first.get(), quoted(files.front()));
  return Dataset(std::move(impl));
}

const DatasetInfo& Dataset::info() const { return impl_->info; }

std::vector<SeriesFile> Dataset::files() const {
  std::vector<SeriesFile> out;
  for (const Part& p : impl_->parts) {
    if (p.present) out.push_back({p.file, p.object, p.first, p.frames});
  }
  return out;
}

void Dataset::read_frame(std::size_t index, std::span<std::byte> out) {
  if (out.size() != impl_->info.frame_bytes()) {
    throw Error(ErrorCategory::kInternal, "read_frame: buffer of " + std::to_string(out.size()) +
                                              " bytes for frames of " +
                                              std::to_string(impl_->info.frame_bytes()));
  }
  Part& p = impl_->locate(index);
  if (p.direct) {
    impl_->read_direct(p, index, out);
  } else {
    impl_->read_hdf5(p, index, out);
  }
}

CodecParams Dataset::frame_codec(std::size_t index) {
  const Part& p = impl_->locate(index);
  return p.direct ? p.codec : CodecParams{Codec::kOther, dtype_size(impl_->info.dtype), 0};
}

std::size_t Dataset::chunk_bytes(std::size_t index) {
  Part& p = impl_->locate(index);
  if (!p.direct) {
    throw Error(ErrorCategory::kInternal, impl_->context(p, index) + ": no direct chunk read");
  }
  return static_cast<std::size_t>(impl_->find_chunk(p, index).loc.size);
}

RawChunk Dataset::read_chunk(std::size_t index, std::span<std::byte> out) {
  Part& p = impl_->locate(index);
  if (!p.direct) {
    throw Error(ErrorCategory::kInternal, impl_->context(p, index) + ": no direct chunk read");
  }
  const auto s = impl_->find_chunk(p, index);
  return impl_->read_raw(p, index, out, s, impl_->view(p, index, s));
}

std::optional<ChunkView> Dataset::chunk_view(std::size_t index) {
  Part& p = impl_->locate(index);
  if (!p.mappable) return std::nullopt;
  return impl_->view(p, index, impl_->find_chunk(p, index));
}

std::optional<std::size_t> Dataset::expected_frames() const { return impl_->expected_frames(); }

std::size_t Dataset::refresh() { return impl_->refresh(); }

std::size_t Dataset::wait_for_frames(std::size_t count) { return impl_->wait_for_frames(count); }

std::size_t Dataset::follow() {
  return impl_->wait_for_frames(
      impl_->expected_frames().value_or(std::numeric_limits<std::size_t>::max()));
}

}  // namespace azflow::source
