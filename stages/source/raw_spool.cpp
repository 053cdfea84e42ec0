#include "stages/source/raw_spool.hpp"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "base/error.hpp"
#include "stages/reduce/hdf5_handle.hpp"
#include "stages/reduce/output_dir.hpp"
#include "stages/source/h5.hpp"

namespace azflow::source {

namespace {

namespace fs = std::filesystem;
namespace rh5 = azflow::reduce::h5;
using decompress::Codec;
using decompress::CodecParams;
using reduce::UniqueFd;

constexpr unsigned kBitshuffleFilterId = 32008;
constexpr unsigned kLz4FilterId = 32004;
constexpr unsigned kBitshuffleLz4 = 2;         // bitshuffle cd_values[4]: LZ4 after the shuffle
constexpr std::size_t kMaxDataFiles = 999999;  // six digits in data_NNNNNN
constexpr const char* kDataset = "/entry/data/data";

[[noreturn]] void io_error(const std::string& what, int err) {
  throw Error(ErrorCategory::kIo, what + ": " + std::strerror(err));
}

/// The little-endian HDF5 file type of `dtype`.
hid_t file_type(DType dtype) {
  switch (dtype) {
    case DType::kUint8:
      return H5T_STD_U8LE;
    case DType::kUint16:
      return H5T_STD_U16LE;
    case DType::kUint32:
      return H5T_STD_U32LE;
    case DType::kInt16:
      return H5T_STD_I16LE;
    case DType::kInt32:
      return H5T_STD_I32LE;
    case DType::kInt64:
      return H5T_STD_I64LE;
    case DType::kFloat32:
      return H5T_IEEE_F32LE;
    case DType::kFloat64:
      return H5T_IEEE_F64LE;
  }
  return H5T_STD_U32LE;
}

/// RawSpoolOptions::prefix when none is given.
std::string default_prefix(std::uint64_t series_id) {
  return "series_" + std::to_string(series_id);
}

std::string data_file_name(const std::string& prefix, std::size_t index) {
  char digits[16];
  std::snprintf(digits, sizeof digits, "%06zu", index + 1);
  return prefix + "_data_" + digits + ".h5";
}

std::string codec_name(const CodecParams& c) {
  switch (c.codec) {
    case Codec::kNone:
      return "raw";
    case Codec::kBitshuffleLz4:
      return "bslz4";
    case Codec::kLz4:
      return "lz4";
    case Codec::kLz4Raw:
      return "a bare LZ4 block (stream v1 lz4<, no HDF5 filter's framing)";
    default:
      return "another codec";
  }
}

/// A new file `name` in `dir`: O_CREAT | O_EXCL | O_NOFOLLOW, so an existing one (of any kind) is
/// refused, never replaced. Throws azflow::Error: kConfig if it exists, kIo otherwise.
UniqueFd create_new(const reduce::OutputDir& dir, const std::string& name) {
  UniqueFd fd(
      ::openat(dir.fd(), name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) {
    const std::string path = (dir.path() / name).string();
    if (errno == EEXIST) {
      throw Error(ErrorCategory::kConfig,
                  "raw spool file " + path + " already exists: a spool is never overwritten");
    }
    io_error("cannot create raw spool file " + path, errno);
  }
  return fd;
}

/// Opens (or, with `create`, makes) the HDF5 file on `fd` by its /proc/self/fd name: the inode
/// create_new made, whatever its name now is.
rh5::Handle open_hdf5(const UniqueFd& fd, bool create, const std::string& what) {
  const std::string by_fd = reduce::proc_fd_path(fd.get());
  return rh5::check(create ? H5Fcreate(by_fd.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)
                           : H5Fopen(by_fd.c_str(), H5F_ACC_RDWR, H5P_DEFAULT),
                    "cannot " + std::string(create ? "create" : "open") + " raw spool file " +
                        what + " (as " + by_fd + ")");
}

/// Writes dataset `name` of `dims` (empty: scalar) from native `mem` values stored as `type`;
/// with `deflate`, as one chunk compressed by HDF5's built-in deflate (zlib) filter.
rh5::Handle write_values(hid_t parent, const std::string& name, std::vector<hsize_t> dims,
                         hid_t type, hid_t mem, const void* data, bool deflate = false) {
  rh5::Handle space = rh5::check(
      dims.empty() ? H5Screate(H5S_SCALAR)
                   : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
      "H5Screate failed");
  const rh5::Handle dcpl = rh5::check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate failed");
  if (deflate && !dims.empty()) {
    rh5::check_status(H5Pset_chunk(dcpl.get(), static_cast<int>(dims.size()), dims.data()),
                      "cannot chunk dataset " + name);
    rh5::check_status(H5Pset_deflate(dcpl.get(), 4), "cannot compress dataset " + name);
  }
  rh5::Handle d = rh5::check(
      H5Dcreate2(parent, name.c_str(), type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
      "cannot create dataset " + name);
  if (H5Sget_simple_extent_npoints(space.get()) > 0) {
    rh5::check_status(H5Dwrite(d.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                      "cannot write dataset " + name);
  }
  return d;
}

void write_uint(hid_t parent, const std::string& name, std::uint64_t value) {
  write_values(parent, name, {}, H5T_STD_U64LE, H5T_NATIVE_UINT64, &value);
}

void write_with_units(hid_t parent, const std::string& name, const std::optional<double>& value,
                      double scale, std::string_view units) {
  if (!value) return;
  const rh5::Handle d = rh5::write_scalar(parent, name, *value * scale);
  rh5::write_string_attr(d.get(), "units", units);
}

void write_u64_attr(hid_t obj, const std::string& name, std::uint64_t value) {
  rh5::Handle space = rh5::check(H5Screate(H5S_SCALAR), "H5Screate failed");
  rh5::Handle a = rh5::check(
      H5Acreate2(obj, name.c_str(), H5T_STD_U64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
      "cannot create attribute " + name);
  rh5::check_status(H5Awrite(a.get(), H5T_NATIVE_UINT64, &value), "cannot write attribute " + name);
}

/// Declares `codec` on the chunked dataset creation list `dcpl`. The bitshuffle plugin's
/// set_local, when HDF5 finds the plugin, takes the user options (block size, compression) and
/// fills the first three slots itself; without the plugin all five are given.
void declare_filter(hid_t dcpl, const CodecParams& codec) {
  if (codec.codec == Codec::kLz4) {
    rh5::check_status(H5Pset_filter(dcpl, kLz4FilterId, H5Z_FLAG_OPTIONAL, 0, nullptr),
                      "cannot declare the LZ4 filter");
  } else if (codec.codec == Codec::kBitshuffleLz4) {
    const bool plugin = H5Zfilter_avail(kBitshuffleFilterId) > 0;
    const unsigned user[2] = {0, kBitshuffleLz4};
    const unsigned all[5] = {0, 3, static_cast<unsigned>(codec.elem_size), 0, kBitshuffleLz4};
    rh5::check_status(plugin ? H5Pset_filter(dcpl, kBitshuffleFilterId, H5Z_FLAG_OPTIONAL, 2, user)
                             : H5Pset_filter(dcpl, kBitshuffleFilterId, H5Z_FLAG_OPTIONAL, 5, all),
                      "cannot declare the bitshuffle filter");
  }
}

/// Checks that the dataset declares what azflow's reader needs for `codec` (element size and
/// LZ4 in the bitshuffle options). Throws azflow::Error (kInternal) naming `what` otherwise.
void check_filter(hid_t dset, const CodecParams& codec, const std::string& what) {
  if (codec.codec != Codec::kBitshuffleLz4) return;
  rh5::Handle dcpl = rh5::check(H5Dget_create_plist(dset), "cannot read the filters of " + what);
  unsigned flags = 0, config = 0;
  unsigned cd[8] = {};
  std::size_t n = 8;
  char name[64] = {};
  if (H5Pget_filter_by_id2(dcpl.get(), kBitshuffleFilterId, &flags, &n, cd, sizeof name, name,
                           &config) < 0 ||
      n < 5 || cd[2] != codec.elem_size || cd[4] != kBitshuffleLz4) {
    throw Error(ErrorCategory::kInternal,
                what + ": the bitshuffle filter's options are not {.., .., " +
                    std::to_string(codec.elem_size) + ", 0, 2} as declared");
  }
}

}  // namespace

struct RawSpool::Impl {
  std::shared_ptr<const reduce::OutputDir> dir;
  RawSpoolOptions options;
  fs::path master;
  std::size_t rows = 0, cols = 0;
  DType dtype = DType::kUint32;
  std::uint64_t images = 0;
  std::size_t files = 0;             // data files: ceil(images / images_per_file)
  std::optional<CodecParams> codec;  // the spool's, fixed by its first image
  std::vector<bool> spooled;
  std::size_t spooled_count = 0;
  UniqueFd master_fd;
  std::vector<UniqueFd> data_fds;  // per data file; none = not created yet
  // the one data file open in HDF5 (images arrive in id order, so this rarely changes)
  std::size_t open_index = SIZE_MAX;
  rh5::Handle open_file, open_dset;
  bool closed = false;

  [[nodiscard]] std::string file_path(const std::string& name) const {
    return (dir->path() / name).string();
  }
  [[nodiscard]] std::string data_name(std::size_t k) const {
    return data_file_name(options.prefix, k);
  }
  [[nodiscard]] std::uint64_t first_id(std::size_t k) const { return k * options.images_per_file; }
  [[nodiscard]] std::uint64_t count_in(std::size_t k) const {
    return std::min<std::uint64_t>(options.images_per_file, images - first_id(k));
  }

  void refuse_existing() const {
    auto refuse = [&](const std::string& name) {
      if (dir->exists(name)) {
        throw Error(ErrorCategory::kConfig, "raw spool file " + file_path(name) +
                                                " already exists: a spool is never overwritten");
      }
    };
    refuse(master.filename().string());
    for (std::size_t k = 0; k < files; ++k) refuse(data_name(k));
  }

  void sync_file(const UniqueFd& fd, hid_t file, const std::string& what) const {
    rh5::check_status(H5Fflush(file, H5F_SCOPE_LOCAL), "cannot flush raw spool file " + what);
    if (::fsync(fd.get()) != 0) io_error("cannot fsync raw spool file " + what, errno);
  }
  void sync_folder() const {
    if (::fsync(dir->fd()) != 0)
      io_error("cannot fsync raw spool folder " + dir->path().string(), errno);
  }

  void init(std::shared_ptr<const reduce::OutputDir> folder, const stream2::Start& start,
            RawSpoolOptions opts);
  void write_master(const stream2::Start& s);
  void create_data_file(std::size_t k);
  hid_t data_dataset(std::size_t k);
  void write_record();
};

void RawSpool::Impl::write_master(const stream2::Start& s) {
  const std::string what = master.string();
  master_fd = create_new(*dir, master.filename().string());
  const rh5::Handle file = open_hdf5(master_fd, true, what);
  rh5::write_string_attr(file.get(), "default", "entry");
  rh5::write_string_attr(file.get(), "creator", "azflow raw spool");
  const rh5::Handle entry = rh5::create_nx_group(file.get(), "entry", "NXentry");
  rh5::write_string_attr(entry.get(), "default", "data");
  const rh5::Handle data = rh5::create_nx_group(entry.get(), "data", "NXdata");
  rh5::write_string_attr(data.get(), "signal", "data_000001");
  for (std::size_t k = 0; k < files; ++k) {
    char link[32];
    std::snprintf(link, sizeof link, "data_%06zu", k + 1);
    rh5::check_status(H5Lcreate_external(data_name(k).c_str(), kDataset, data.get(), link,
                                         H5P_DEFAULT, H5P_DEFAULT),
                      "cannot link " + std::string(link) + " in " + what);
  }
  const rh5::Handle inst = rh5::create_nx_group(entry.get(), "instrument", "NXinstrument");
  if (s.incident_wavelength_m) {
    const rh5::Handle beam = rh5::create_nx_group(inst.get(), "beam", "NXbeam");
    write_with_units(beam.get(), "incident_wavelength", s.incident_wavelength_m, 1e10, "angstrom");
  }
  const rh5::Handle det = rh5::create_nx_group(inst.get(), "detector", "NXdetector");
  write_with_units(det.get(), "beam_center_x", s.beam_center_x_px, 1, "pixel");
  write_with_units(det.get(), "beam_center_y", s.beam_center_y_px, 1, "pixel");
  write_with_units(det.get(), "detector_distance", s.detector_distance_m, 1, "m");
  write_with_units(det.get(), "x_pixel_size", s.pixel_size_x_m, 1, "m");
  write_with_units(det.get(), "y_pixel_size", s.pixel_size_y_m, 1, "m");
  write_with_units(det.get(), "count_time", s.count_time_s, 1, "s");
  write_with_units(det.get(), "frame_time", s.frame_time_s, 1, "s");
  if (s.saturation_value) write_uint(det.get(), "saturation_value", *s.saturation_value);
  if (s.detector_description) rh5::write_string(det.get(), "description", *s.detector_description);
  const rh5::Handle spec = rh5::create_nx_group(det.get(), "detectorSpecific", "NXcollection");
  write_uint(spec.get(), "nimages", images);
  write_uint(spec.get(), "ntrigger", 1);
  write_uint(spec.get(), "x_pixels_in_detector", cols);
  write_uint(spec.get(), "y_pixels_in_detector", rows);
  write_with_units(spec.get(), "photon_energy", s.incident_energy_ev, 1, "eV");
  if (const std::vector<std::uint32_t>* mask = s.pixel_mask(options.channel)) {
    write_values(spec.get(), "pixel_mask", {rows, cols}, H5T_STD_U32LE, H5T_NATIVE_UINT32,
                 mask->data(), true);
  }
  const rh5::Handle spool = rh5::create_nx_group(entry.get(), "azflow_spool", "NXcollection");
  write_uint(spool.get(), "series_id", s.series_id);
  rh5::write_string(spool.get(), "series_unique_id", s.series_unique_id);
  const bool first = options.channel.empty() && !s.channels.empty();
  rh5::write_string(spool.get(), "channel", first ? s.channels.front() : options.channel);
  write_uint(spool.get(), "images_per_file", options.images_per_file);
  write_uint(spool.get(), "complete", 0);
  sync_file(master_fd, file.get(), what);  // always: the spool must be findable after a crash
  sync_folder();
}

void RawSpool::Impl::create_data_file(std::size_t k) {
  const std::string name = data_name(k), what = file_path(name);
  data_fds[k] = create_new(*dir, name);
  rh5::Handle file = open_hdf5(data_fds[k], true, what);
  const rh5::Handle entry = rh5::create_nx_group(file.get(), "entry", "NXentry");
  const rh5::Handle data = rh5::create_nx_group(entry.get(), "data", "NXdata");
  const hsize_t dims[3] = {count_in(k), rows, cols}, chunk[3] = {1, rows, cols};
  const rh5::Handle space = rh5::check(H5Screate_simple(3, dims, nullptr), "H5Screate failed");
  const rh5::Handle dcpl = rh5::check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate failed");
  rh5::check_status(H5Pset_chunk(dcpl.get(), 3, chunk), "cannot chunk " + what);
  if (codec) declare_filter(dcpl.get(), *codec);
  rh5::Handle dset = rh5::check(H5Dcreate2(data.get(), "data", file_type(dtype), space.get(),
                                           H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                                "cannot create dataset " + std::string(kDataset) + " in " + what);
  if (codec) check_filter(dset.get(), *codec, what);
  write_u64_attr(dset.get(), "image_nr_low", first_id(k) + 1);
  write_u64_attr(dset.get(), "image_nr_high", first_id(k) + count_in(k));
  if (options.fsync) {
    sync_file(data_fds[k], file.get(), what);
    sync_folder();
  } else if (options.flush_each) {
    rh5::check_status(H5Fflush(file.get(), H5F_SCOPE_LOCAL), "cannot flush raw spool file " + what);
  }
  open_dset = std::move(dset);
  open_file = std::move(file);
  open_index = k;
}

hid_t RawSpool::Impl::data_dataset(std::size_t k) {
  if (open_index == k) return open_dset.get();
  open_dset.reset();
  open_file.reset();
  open_index = SIZE_MAX;
  if (!data_fds[k]) {
    create_data_file(k);
  } else {
    const std::string what = file_path(data_name(k));
    open_file = open_hdf5(data_fds[k], false, what);
    open_dset = rh5::check(H5Dopen2(open_file.get(), kDataset, H5P_DEFAULT),
                           "cannot open " + std::string(kDataset) + " in " + what);
    open_index = k;
  }
  return open_dset.get();
}

void RawSpool::Impl::write_record() {
  const std::string what = master.string();
  const rh5::Handle file = open_hdf5(master_fd, false, what);
  const rh5::Handle spool = rh5::check(H5Gopen2(file.get(), "/entry/azflow_spool", H5P_DEFAULT),
                                       "cannot open /entry/azflow_spool in " + what);
  write_uint(spool.get(), "images_spooled", spooled_count);
  std::vector<std::uint64_t> missing;
  for (std::uint64_t id = 0; id < images; ++id) {
    if (!spooled[id]) missing.push_back(id);
  }
  write_values(spool.get(), "missing_image_ids", {missing.size()}, H5T_STD_U64LE, H5T_NATIVE_UINT64,
               missing.data());
  const rh5::Handle complete = rh5::check(H5Dopen2(spool.get(), "complete", H5P_DEFAULT),
                                          "cannot open /entry/azflow_spool/complete in " + what);
  const std::uint64_t one = 1;
  rh5::check_status(
      H5Dwrite(complete.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &one),
      "cannot write /entry/azflow_spool/complete in " + what);
  sync_file(master_fd, file.get(), what);
}

namespace {

std::shared_ptr<const reduce::OutputDir> open_folder(const fs::path& folder) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) io_error("cannot create raw spool folder " + folder.string(), ec.value());
  return reduce::OutputDir::open(folder);
}

}  // namespace

RawSpool::RawSpool(const fs::path& folder, const stream2::Start& start, RawSpoolOptions options)
    : RawSpool(open_folder(folder), start, std::move(options)) {}

/// Checks `start` and `options` and sets the spool's layout (not its files). Throws as the
/// constructor does.
void RawSpool::Impl::init(std::shared_ptr<const reduce::OutputDir> folder,
                          const stream2::Start& start, RawSpoolOptions opts) {
  const std::string name = folder->path().string();
  if (!start.image_size_x || !start.image_size_y || !start.image_dtype || !start.number_of_images ||
      *start.number_of_images == 0) {
    throw Error(ErrorCategory::kInput, "raw spool " + name + ": the start message of series " +
                                           std::to_string(start.series_id) +
                                           " lacks image_size_x/y, image_dtype or a nonzero "
                                           "number_of_images");
  }
  if (opts.images_per_file == 0) {
    throw Error(ErrorCategory::kConfig, "raw spool " + name + ": images_per_file must be >= 1");
  }
  if (opts.prefix.empty()) opts.prefix = default_prefix(start.series_id);
  if (opts.prefix.find('/') != std::string::npos) {
    throw Error(ErrorCategory::kConfig,
                "raw spool prefix '" + opts.prefix + "' is not a plain file name");
  }
  options = std::move(opts);
  rows = *start.image_size_y;
  cols = *start.image_size_x;
  dtype = *start.image_dtype;
  images = *start.number_of_images;
  const std::uint64_t n = (images + options.images_per_file - 1) / options.images_per_file;
  if (n > kMaxDataFiles) {
    throw Error(ErrorCategory::kInput, "raw spool " + name + ": number_of_images " +
                                           std::to_string(images) + " needs more than " +
                                           std::to_string(kMaxDataFiles) + " data files of " +
                                           std::to_string(options.images_per_file) + " images");
  }
  files = static_cast<std::size_t>(n);
  rh5::silence_errors();
  dir = std::move(folder);
  master = dir->path() / (options.prefix + "_master.h5");
  spooled.assign(images, false);
  data_fds.resize(files);
}

RawSpool::RawSpool(std::shared_ptr<const reduce::OutputDir> folder, const stream2::Start& start,
                   RawSpoolOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->init(std::move(folder), start, std::move(options));
  impl_->refuse_existing();
  impl_->write_master(start);
}

namespace {

/// Opens the existing file `name` in `dir` for writing, never through a symbolic link; an empty
/// descriptor when there is no such file. Throws azflow::Error (kIo) for another failure.
UniqueFd open_existing(const reduce::OutputDir& dir, const std::string& name) {
  UniqueFd fd(::openat(dir.fd(), name.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
  if (!fd && errno != ENOENT)
    io_error("cannot open raw spool file " + dir.path().string() + "/" + name, errno);
  return fd;
}

/// The uint64 dataset `name` (a path in `file`), or nullopt when it is absent.
std::optional<std::uint64_t> read_uint(hid_t file, const std::string& name) {
  std::optional<std::uint64_t> value;
  H5E_BEGIN_TRY {
    const rh5::Handle d(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
    std::uint64_t v = 0;
    if (d.valid() && H5Dread(d.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0) {
      value = v;
    }
  }
  H5E_END_TRY;
  return value;
}

/// The codec a spool data file's dataset declares: filter 32008 bitshuffle-LZ4 (element size
/// `elem`), 32004 LZ4, none raw.
CodecParams declared_codec(hid_t dset, std::size_t elem) {
  const rh5::Handle dcpl(H5Dget_create_plist(dset));
  const int n = dcpl.valid() ? H5Pget_nfilters(dcpl.get()) : 0;
  for (int i = 0; i < n; ++i) {
    unsigned flags = 0, config = 0;
    std::size_t cd_n = 0;
    const H5Z_filter_t id = H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &cd_n,
                                           nullptr, 0, nullptr, &config);
    if (id == kBitshuffleFilterId) return {Codec::kBitshuffleLz4, elem, 0};
    if (id == kLz4FilterId) return {Codec::kLz4, elem, 0};
  }
  return {Codec::kNone, elem, 0};
}

}  // namespace

RawSpool RawSpool::reopen(std::shared_ptr<const reduce::OutputDir> folder,
                          const stream2::Start& start, RawSpoolOptions options) {
  RawSpool spool;
  spool.impl_ = std::make_unique<Impl>();
  Impl& s = *spool.impl_;
  s.init(std::move(folder), start, std::move(options));
  const std::string what = s.master.string();
  s.master_fd = open_existing(*s.dir, s.master.filename().string());
  if (!s.master_fd) {
    throw Error(ErrorCategory::kConfig, "raw spool " + what + ": no such file to resume");
  }
  {
    const rh5::Handle file = open_hdf5(s.master_fd, false, what);
    const auto series = read_uint(file.get(), "/entry/azflow_spool/series_id");
    const auto per_file = read_uint(file.get(), "/entry/azflow_spool/images_per_file");
    const auto nimages =
        read_uint(file.get(), "/entry/instrument/detector/detectorSpecific/nimages");
    if (series != start.series_id || per_file != s.options.images_per_file || nimages != s.images) {
      throw Error(ErrorCategory::kConfig,
                  "raw spool " + what + " is not series " + std::to_string(start.series_id) +
                      " of " + std::to_string(s.images) + " images in files of " +
                      std::to_string(s.options.images_per_file) + ": not resumed");
    }
    s.closed = read_uint(file.get(), "/entry/azflow_spool/complete").value_or(0) == 1;
  }
  for (const std::uint64_t id : spooled_ids(s.master)) {
    if (id < s.images && !s.spooled[id]) {
      s.spooled[id] = true;
      ++s.spooled_count;
    }
  }
  for (std::size_t k = 0; k < s.files; ++k) {
    s.data_fds[k] = open_existing(*s.dir, s.data_name(k));
    if (!s.data_fds[k] || s.codec) continue;
    s.codec = declared_codec(s.data_dataset(k), dtype_size(s.dtype));
  }
  return spool;
}

RawSpool::StoredImage RawSpool::read_image(std::uint64_t image_id, std::span<std::byte> out) {
  Impl& s = *impl_;
  const std::string what = "raw spool " + s.master.string() + ", image " + std::to_string(image_id);
  if (image_id >= s.images || !s.spooled[image_id]) {
    throw Error(ErrorCategory::kInput, what + ": not in the spool");
  }
  const std::size_t k = static_cast<std::size_t>(image_id / s.options.images_per_file);
  if (!s.data_fds[k]) throw Error(ErrorCategory::kInternal, what + ": the spool is closed");
  const hid_t dset = s.data_dataset(k);
  const hsize_t offset[3] = {image_id - s.first_id(k), 0, 0};
  hsize_t bytes = 0;
  rh5::check_status(H5Dget_chunk_storage_size(dset, offset, &bytes),
                    "cannot find " + what + "'s chunk in " + s.file_path(s.data_name(k)));
  if (bytes > out.size()) {
    throw Error(ErrorCategory::kInput, what + ": chunk of " + std::to_string(bytes) +
                                           " bytes exceeds the " + std::to_string(out.size()) +
                                           " bytes given");
  }
  std::uint32_t filter_mask = 0;
  rh5::check_status(H5Dread_chunk(dset, H5P_DEFAULT, offset, &filter_mask, out.data()),
                    "cannot read " + what + " from " + s.file_path(s.data_name(k)));
  CodecParams codec = s.codec.value_or(CodecParams{Codec::kNone, dtype_size(s.dtype), 0});
  if ((filter_mask & 1U) != 0) codec.codec = Codec::kNone;  // a raw image in a compressed spool
  return {static_cast<std::size_t>(bytes), codec};
}

bool RawSpool::complete() const noexcept { return impl_->closed; }

std::string RawSpool::default_master_name(std::uint64_t series_id) {
  return default_prefix(series_id) + "_master.h5";
}

RawSpool::RawSpool(RawSpool&&) noexcept = default;
RawSpool& RawSpool::operator=(RawSpool&&) noexcept = default;
RawSpool::~RawSpool() = default;

RawSpool::Appended RawSpool::append(std::uint64_t image_id, const stream2::Array& image) {
  Impl& s = *impl_;
  if (s.closed)
    throw Error(ErrorCategory::kInternal, "raw spool " + s.master.string() + ": closed");
  const std::string what = "raw spool " + s.master.string() + ", image " + std::to_string(image_id);
  if (image_id >= s.images) {
    throw Error(ErrorCategory::kInput,
                what + ": id out of range (number_of_images " + std::to_string(s.images) + ")");
  }
  if (image.rows != s.rows || image.cols != s.cols || image.dtype != s.dtype) {
    throw Error(ErrorCategory::kInput,
                what + ": array [" + std::to_string(image.rows) + ", " +
                    std::to_string(image.cols) + "] of " + std::string(dtype_name(image.dtype)) +
                    ", the start message declared [" + std::to_string(s.rows) + ", " +
                    std::to_string(s.cols) + "] of " + std::string(dtype_name(s.dtype)));
  }
  const Codec c = image.codec.codec;
  if (c != Codec::kNone && c != Codec::kBitshuffleLz4 && c != Codec::kLz4) {
    throw Error(ErrorCategory::kInput, what + ": " + codec_name(image.codec) + " is not spooled");
  }
  if (c == Codec::kBitshuffleLz4 && image.codec.elem_size != dtype_size(s.dtype)) {
    throw Error(ErrorCategory::kInput, what + ": bslz4 element size " +
                                           std::to_string(image.codec.elem_size) + " is not " +
                                           std::string(dtype_name(s.dtype)) + "'s");
  }
  if (!s.codec) s.codec = CodecParams{c, dtype_size(s.dtype), 0};
  std::uint32_t filter_mask = 0;
  if (c != s.codec->codec) {
    if (c != Codec::kNone || s.codec->codec == Codec::kNone) {
      throw Error(ErrorCategory::kInput, what + ": a " + codec_name(image.codec) + " image in a " +
                                             codec_name(*s.codec) + " spool");
    }
    filter_mask = 1;  // a raw image in a compressed dataset: its one filter skipped
  }
  if (c == Codec::kNone && image.bytes.size() != image.decoded_bytes()) {
    throw Error(ErrorCategory::kInput, what + ": " + std::to_string(image.bytes.size()) +
                                           " raw bytes, not " +
                                           std::to_string(image.decoded_bytes()));
  }
  if (s.spooled[image_id]) return Appended::kDuplicate;
  const std::size_t k = static_cast<std::size_t>(image_id / s.options.images_per_file);
  const hid_t dset = s.data_dataset(k);
  const hsize_t offset[3] = {image_id - s.first_id(k), 0, 0};
  rh5::check_status(
      H5Dwrite_chunk(dset, H5P_DEFAULT, filter_mask, offset, image.bytes.size(),
                     image.bytes.data()),
      "cannot write image " + std::to_string(image_id) + " into " + s.file_path(s.data_name(k)));
  if (s.options.fsync) {
    s.sync_file(s.data_fds[k], s.open_file.get(), s.file_path(s.data_name(k)));
  } else if (s.options.flush_each) {
    rh5::check_status(H5Fflush(s.open_file.get(), H5F_SCOPE_LOCAL),
                      "cannot flush raw spool file " + s.file_path(s.data_name(k)));
  }
  s.spooled[image_id] = true;
  ++s.spooled_count;
  return Appended::kWritten;
}

void RawSpool::flush() {
  Impl& s = *impl_;
  if (s.closed) return;
  if (s.open_file.valid()) {
    s.sync_file(s.data_fds[s.open_index], s.open_file.get(),
                s.file_path(s.data_name(s.open_index)));
  }
  s.sync_folder();
}

void RawSpool::close() {
  Impl& s = *impl_;
  if (s.closed) return;
  for (std::size_t k = 0; k < s.files; ++k) {
    if (!s.data_fds[k]) s.data_dataset(k);  // an empty data file: every link resolves
  }
  if (s.open_file.valid()) {
    s.sync_file(s.data_fds[s.open_index], s.open_file.get(),
                s.file_path(s.data_name(s.open_index)));
  }
  s.open_dset.reset();
  s.open_file.reset();
  s.open_index = SIZE_MAX;
  for (UniqueFd& fd : s.data_fds) {
    if (::fsync(fd.get()) != 0) io_error("cannot fsync a data file of " + s.master.string(), errno);
    fd = UniqueFd();
  }
  s.write_record();
  s.master_fd = UniqueFd();
  s.sync_folder();
  s.closed = true;
}

const fs::path& RawSpool::master_path() const noexcept { return impl_->master; }

std::size_t RawSpool::images_spooled() const noexcept { return impl_->spooled_count; }

std::vector<std::uint64_t> RawSpool::missing_ids() const {
  std::vector<std::uint64_t> missing;
  for (std::uint64_t id = 0; id < impl_->images; ++id) {
    if (!impl_->spooled[id]) missing.push_back(id);
  }
  return missing;
}

namespace {

/// The ids of the chunks written in data file `file` (dataset `object`). Needs HDF5 >= 1.10.5
/// (h5::chunk_location), which tells an unwritten chunk from a failure.
void add_spooled_ids(const fs::path& file, const std::string& object,
                     std::vector<std::uint64_t>& ids) {
  const h5::Id f = h5::open_file(file, false);
  if (!f.valid())
    throw Error(ErrorCategory::kIo, "raw spool data file " + file.string() + ": cannot open");
  const h5::Id d = h5::open_dataset(f.get(), object);
  const std::string what = "raw spool data file " + file.string() + ", dataset " + object;
  if (!d.valid()) throw Error(ErrorCategory::kInput, what + ": no such dataset");
  const h5::Id space(H5Dget_space(d.get()));
  const h5::Id dcpl(H5Dget_create_plist(d.get()));
  hsize_t dims[3] = {}, chunk[3] = {};
  if (H5Sget_simple_extent_ndims(space.get()) != 3 ||
      H5Sget_simple_extent_dims(space.get(), dims, nullptr) < 0 ||
      H5Pget_layout(dcpl.get()) != H5D_CHUNKED || H5Pget_chunk(dcpl.get(), 3, chunk) != 3 ||
      chunk[0] != 1 || chunk[1] != dims[1] || chunk[2] != dims[2]) {
    throw Error(ErrorCategory::kInput, what + ": not (n, rows, cols) in chunks of one image");
  }
  std::uint64_t low = 0;
  herr_t status = -1;
  H5E_BEGIN_TRY {
    const h5::Id attr(H5Aopen(d.get(), "image_nr_low", H5P_DEFAULT));
    if (attr.valid()) status = H5Aread(attr.get(), H5T_NATIVE_UINT64, &low);
  }
  H5E_END_TRY;
  if (status < 0 || low == 0) throw Error(ErrorCategory::kInput, what + ": no @image_nr_low >= 1");
  for (hsize_t i = 0; i < dims[0]; ++i) {
    const hsize_t at[3] = {i, 0, 0};
    const std::optional<h5::ChunkLocation> loc = h5::chunk_location(d.get(), at);
    if (!loc) throw Error(ErrorCategory::kIo, what + ": cannot read the chunk index");
    if (loc->size > 0) ids.push_back(low - 1 + i);
  }
}

}  // namespace

std::vector<std::uint64_t> RawSpool::spooled_ids(const fs::path& master) {
  rh5::silence_errors();
  const h5::Id file = h5::open_file(master, false);
  if (!file.valid())
    throw Error(ErrorCategory::kIo, "raw spool " + master.string() + ": cannot open");
  std::vector<std::uint64_t> ids;
  for (const std::string& name : h5::link_names(file.get(), "/entry/data")) {
    if (name.rfind("data_", 0) != 0) continue;
    const auto target = h5::external_link(file.get(), "/entry/data/" + name);
    if (!target) continue;
    fs::path data = target->file;
    if (data.is_relative()) data = master.parent_path() / data;
    if (!fs::exists(data)) continue;  // no image reached it
    add_spooled_ids(data, target->object, ids);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace azflow::source
