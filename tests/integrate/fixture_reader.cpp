#include "tests/integrate/fixture_reader.hpp"

#include <hdf5.h>

#include <algorithm>
#include <utility>

#include "base/error.hpp"

namespace azflow::testing {
namespace {

static_assert(sizeof(hid_t) == sizeof(std::int64_t), "hid_t is expected to be 64 bits");

/// Closes an HDF5 identifier with the matching H5*close on scope exit.
class Handle {
 public:
  Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Handle() {
    if (id_ >= 0) close_(id_);
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  [[nodiscard]] hid_t get() const noexcept { return id_; }
  [[nodiscard]] bool ok() const noexcept { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

[[noreturn]] void fail(ErrorCategory category, const std::filesystem::path& file,
                       const std::string& object, const std::string& what) {
  throw Error(category, file.string() + ":" + object + ": " + what);
}

std::vector<std::size_t> space_dims(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(static_cast<std::size_t>(std::max(rank, 0)));
  if (rank > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return {dims.begin(), dims.end()};
}

std::size_t product(const std::vector<std::size_t>& dims) {
  std::size_t n = 1;
  for (std::size_t d : dims) n *= d;
  return n;
}

}  // namespace

std::size_t RawArray::elements() const noexcept { return product(shape); }

FixtureFile::FixtureFile(const std::filesystem::path& path) : path_(path) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // errors are reported by exceptions instead
  file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file_ < 0) fail(ErrorCategory::kIo, path_, "/", "cannot open HDF5 file");
}

FixtureFile::~FixtureFile() {
  if (file_ >= 0) H5Fclose(file_);
}

bool FixtureFile::has(const std::string& object) const {
  if (object == "/") return true;
  // H5Lexists needs every parent to exist: check the path component by component.
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = object.find('/', pos + 1);
    const std::string prefix = object.substr(0, pos);
    if (prefix.empty() || prefix == "/") continue;
    if (H5Lexists(file_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return true;
}

bool FixtureFile::has_attribute(const std::string& object, const std::string& name) const {
  if (!has(object)) return false;
  return H5Aexists_by_name(file_, object.c_str(), name.c_str(), H5P_DEFAULT) > 0;
}

std::vector<std::string> FixtureFile::children(const std::string& group) const {
  Handle g(H5Gopen2(file_, group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.ok()) fail(ErrorCategory::kIo, path_, group, "no such group");
  H5G_info_t info{};
  if (H5Gget_info(g.get(), &info) < 0) fail(ErrorCategory::kIo, path_, group, "cannot list");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t size =
        H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (size < 0) fail(ErrorCategory::kIo, path_, group, "cannot read member names");
    std::string name(static_cast<std::size_t>(size) + 1, '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                       H5P_DEFAULT);
    name.resize(static_cast<std::size_t>(size));
    names.push_back(std::move(name));
  }
  return names;
}

std::vector<std::size_t> FixtureFile::shape(const std::string& dataset) const {
  Handle d(H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.ok()) fail(ErrorCategory::kIo, path_, dataset, "no such dataset");
  Handle space(H5Dget_space(d.get()), H5Sclose);
  return space_dims(space.get());
}

namespace {

/// Reads a whole dataset, converted to `mem_type`, into a vector of T.
template <typename T>
std::vector<T> read_as(hid_t file, const std::filesystem::path& path, const std::string& dataset,
                       hid_t mem_type) {
  Handle d(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.ok()) fail(ErrorCategory::kIo, path, dataset, "no such dataset");
  Handle space(H5Dget_space(d.get()), H5Sclose);
  std::vector<T> out(product(space_dims(space.get())));
  if (!out.empty() && H5Dread(d.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    fail(ErrorCategory::kInput, path, dataset, "cannot read (or convert) dataset");
  }
  return out;
}

/// The frame dtype of a stored HDF5 type, if it is one.
std::optional<DType> dtype_of(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const std::size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) return size == 4 ? std::optional(DType::kFloat32) : std::nullopt;
  if (cls != H5T_INTEGER) return std::nullopt;
  const bool is_signed = H5Tget_sign(type) == H5T_SGN_2;
  if (is_signed) return size == 4 ? std::optional(DType::kInt32) : std::nullopt;
  switch (size) {
    case 1:
      return DType::kUint8;
    case 2:
      return DType::kUint16;
    case 4:
      return DType::kUint32;
    default:
      return std::nullopt;
  }
}

hid_t native_type(DType t) {
  switch (t) {
    case DType::kUint8:
      return H5T_NATIVE_UINT8;
    case DType::kUint16:
      return H5T_NATIVE_UINT16;
    case DType::kUint32:
      return H5T_NATIVE_UINT32;
    case DType::kInt32:
      return H5T_NATIVE_INT32;
    case DType::kFloat32:
      return H5T_NATIVE_FLOAT;
    case DType::kInt16:
      return H5T_NATIVE_INT16;
    case DType::kInt64:
      return H5T_NATIVE_INT64;
    case DType::kFloat64:
      return H5T_NATIVE_DOUBLE;
  }
  return H5T_NATIVE_FLOAT;
}

}  // namespace

std::vector<double> FixtureFile::read_f64(const std::string& dataset) const {
  return read_as<double>(file_, path_, dataset, H5T_NATIVE_DOUBLE);
}

std::vector<float> FixtureFile::read_f32(const std::string& dataset) const {
  return read_as<float>(file_, path_, dataset, H5T_NATIVE_FLOAT);
}

std::vector<std::int32_t> FixtureFile::read_i32(const std::string& dataset) const {
  return read_as<std::int32_t>(file_, path_, dataset, H5T_NATIVE_INT32);
}

std::vector<std::uint8_t> FixtureFile::read_u8(const std::string& dataset) const {
  return read_as<std::uint8_t>(file_, path_, dataset, H5T_NATIVE_UINT8);
}

RawArray FixtureFile::read_raw(const std::string& dataset) const {
  Handle d(H5Dopen2(file_, dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.ok()) fail(ErrorCategory::kIo, path_, dataset, "no such dataset");
  Handle type(H5Dget_type(d.get()), H5Tclose);
  const std::optional<DType> dtype = dtype_of(type.get());
  if (!dtype) fail(ErrorCategory::kInput, path_, dataset, "not a uint8/16/32, int32 or float32");
  Handle space(H5Dget_space(d.get()), H5Sclose);
  RawArray out;
  out.dtype = *dtype;
  out.shape = space_dims(space.get());
  out.bytes.resize(out.elements() * dtype_size(out.dtype));
  if (!out.bytes.empty() && H5Dread(d.get(), native_type(out.dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                    out.bytes.data()) < 0) {
    fail(ErrorCategory::kInput, path_, dataset, "cannot read dataset");
  }
  return out;
}

std::vector<double> FixtureFile::attr_f64s(const std::string& object,
                                           const std::string& name) const {
  const std::string where = object + "@" + name;
  if (!has_attribute(object, name)) fail(ErrorCategory::kIo, path_, where, "no such attribute");
  Handle a(H5Aopen_by_name(file_, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
           H5Aclose);
  Handle type(H5Aget_type(a.get()), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
    fail(ErrorCategory::kInput, path_, where, "attribute is not numeric");
  }
  Handle space(H5Aget_space(a.get()), H5Sclose);
  std::vector<double> out(product(space_dims(space.get())));
  if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, out.data()) < 0) {
    fail(ErrorCategory::kInput, path_, where, "cannot read attribute");
  }
  return out;
}

double FixtureFile::attr_f64(const std::string& object, const std::string& name) const {
  const std::vector<double> values = attr_f64s(object, name);
  if (values.empty()) fail(ErrorCategory::kInput, path_, object + "@" + name, "empty attribute");
  return values.front();
}

std::string FixtureFile::attr_string(const std::string& object, const std::string& name) const {
  const std::string where = object + "@" + name;
  if (!has_attribute(object, name)) fail(ErrorCategory::kIo, path_, where, "no such attribute");
  Handle a(H5Aopen_by_name(file_, object.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT),
           H5Aclose);
  Handle type(H5Aget_type(a.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING) {
    fail(ErrorCategory::kInput, path_, where, "attribute is not a string");
  }
  if (H5Tis_variable_str(type.get()) > 0) {
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    char* text = nullptr;
    if (H5Aread(a.get(), mem.get(), &text) < 0) {
      fail(ErrorCategory::kInput, path_, where, "cannot read attribute");
    }
    std::string out = text != nullptr ? text : "";
    H5free_memory(text);
    return out;
  }
  const std::size_t size = H5Tget_size(type.get());
  std::string out(size, '\0');
  if (H5Aread(a.get(), type.get(), out.data()) < 0) {
    fail(ErrorCategory::kInput, path_, where, "cannot read attribute");
  }
  out.resize(std::min(out.find('\0'), out.size()));
  return out;
}

}  // namespace azflow::testing
