#include "stages/reduce/image_file.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>

#include "base/error.hpp"
#include "stages/reduce/hdf5_handle.hpp"

namespace azflow::reduce {

namespace {

/// Element type of raw image data in .npy and EDF files.
struct RawType {
  char kind = 'f';  ///< 'b' bool, 'i' signed, 'u' unsigned, 'f' float
  std::size_t size = 8;
};

[[noreturn]] void fail(std::string_view file, const std::string& message) {
  throw Error(ErrorCategory::kInput, std::string(file) + ": " + message);
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCategory::kIo, "cannot open " + path);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(ErrorCategory::kIo, "cannot read " + path);
  return bytes;
}

std::string shape_text(const std::vector<std::size_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

/// Drops leading axes of length 1 and requires 2 axes left.
std::pair<std::size_t, std::size_t> image_shape(std::vector<std::size_t> shape,
                                                std::string_view file) {
  while (shape.size() > 2 && shape.front() == 1) shape.erase(shape.begin());
  if (shape.size() != 2) fail(file, "expected a 2D image, found shape " + shape_text(shape));
  return {shape[0], shape[1]};
}

/// Converts one element at `p` to double; `swap` reverses its bytes first.
double element(const unsigned char* p, RawType type, bool swap) {
  std::array<unsigned char, 8> b{};
  std::memcpy(b.data(), p, type.size);
  if (swap) std::reverse(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(type.size));
  auto as = [&b]<typename T>(T) {
    T v;
    std::memcpy(&v, b.data(), sizeof v);
    return static_cast<double>(v);
  };
  switch (type.kind) {
    case 'b':
      return b[0] ? 1.0 : 0.0;
    case 'u':
      switch (type.size) {
        case 1:
          return as(std::uint8_t{});
        case 2:
          return as(std::uint16_t{});
        case 4:
          return as(std::uint32_t{});
        default:
          return as(std::uint64_t{});
      }
    case 'i':
      switch (type.size) {
        case 1:
          return as(std::int8_t{});
        case 2:
          return as(std::int16_t{});
        case 4:
          return as(std::int32_t{});
        default:
          return as(std::int64_t{});
      }
    default:
      return type.size == 4 ? as(float{}) : as(double{});
  }
}

/// Converts rows * cols raw elements starting at `offset` in `bytes`.
Image convert(const std::string& bytes, std::size_t offset, std::size_t rows, std::size_t cols,
              RawType type, bool swap, const std::string& file) {
  const std::size_t n = rows * cols;
  if (offset > bytes.size() || (bytes.size() - offset) / type.size < n) {
    fail(file, "truncated data: " + std::to_string(rows) + " x " + std::to_string(cols) + " of " +
                   std::to_string(type.size) + "-byte elements need " +
                   std::to_string(n * type.size) + " bytes, file has " +
                   std::to_string(bytes.size() > offset ? bytes.size() - offset : 0));
  }
  Image image{rows, cols, std::vector<double>(n), file};
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + offset;
  for (std::size_t i = 0; i < n; ++i) image.values[i] = element(p + i * type.size, type, swap);
  return image;
}

std::size_t parse_size(std::string_view text, std::string_view file, std::string_view what) {
  std::size_t value = 0;
  const auto* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) {
    fail(file, "malformed " + std::string(what) + " '" + std::string(text) + "'");
  }
  return value;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// ---------------------------------------------------------------- NumPy .npy

/// Value text of key `key` in the .npy header dict ("'key': value"), up to the next top-level ','
/// or '}' (a tuple counts as one value).
std::string_view npy_field(std::string_view header, std::string_view key, const std::string& file) {
  std::string quoted(key.size() + 2, '\'');
  key.copy(quoted.data() + 1, key.size());
  std::size_t pos = header.find(quoted);
  if (pos == std::string_view::npos)
    fail(file, "malformed .npy header: no '" + std::string(key) + "'");
  pos = header.find(':', pos + quoted.size());
  if (pos == std::string_view::npos)
    fail(file, "malformed .npy header near '" + std::string(key) + "'");
  std::size_t end = pos + 1;
  int depth = 0;
  for (; end < header.size(); ++end) {
    const char c = header[end];
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth == 0 && (c == ',' || c == '}')) break;
  }
  return trim(header.substr(pos + 1, end - pos - 1));
}

RawType npy_type(std::string_view descr, const std::string& file) {
  if (descr.size() < 4 || (descr.front() != '\'' && descr.front() != '"')) {
    fail(file, "malformed .npy descr " + std::string(descr));
  }
  const std::string_view d = descr.substr(1, descr.size() - 2);
  if (d.size() < 3) fail(file, "unsupported .npy dtype '" + std::string(d) + "'");
  const char order = d[0];
  if (order == '>') fail(file, "big-endian .npy data ('" + std::string(d) + "') is not supported");
  const RawType type{d[1], parse_size(d.substr(2), file, ".npy dtype size")};
  const bool ok = (type.kind == 'b' && type.size == 1) ||
                  ((type.kind == 'i' || type.kind == 'u') &&
                   (type.size == 1 || type.size == 2 || type.size == 4 || type.size == 8)) ||
                  (type.kind == 'f' && (type.size == 4 || type.size == 8));
  if (!ok || (order != '<' && order != '|' && order != '=')) {
    fail(file, "unsupported .npy dtype '" + std::string(d) + "'");
  }
  return type;
}

std::vector<std::size_t> npy_shape(std::string_view text, const std::string& file) {
  if (text.size() < 2 || text.front() != '(' || text.back() != ')') {
    fail(file, "malformed .npy shape " + std::string(text));
  }
  std::vector<std::size_t> shape;
  std::string_view rest = text.substr(1, text.size() - 2);
  while (!trim(rest).empty()) {
    const std::size_t comma = rest.find(',');
    shape.push_back(parse_size(trim(rest.substr(0, comma)), file, ".npy shape"));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return shape;
}

Image read_npy(const std::string& path, const std::string& bytes) {
  if (bytes.size() < 10) fail(path, "truncated .npy header");
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned major = u[6];
  std::size_t header_len = 0;
  std::size_t header_start = 10;
  if (major == 1) {
    header_len = u[8] | (std::size_t{u[9]} << 8);
  } else if (major == 2 || major == 3) {
    header_start = 12;
    if (bytes.size() < 12) fail(path, "truncated .npy header");
    header_len =
        u[8] | (std::size_t{u[9]} << 8) | (std::size_t{u[10]} << 16) | (std::size_t{u[11]} << 24);
  } else {
    fail(path, "unsupported .npy version " + std::to_string(major));
  }
  if (bytes.size() < header_start + header_len) fail(path, "truncated .npy header");
  const std::string_view header(bytes.data() + header_start, header_len);
  const RawType type = npy_type(npy_field(header, "descr", path), path);
  if (npy_field(header, "fortran_order", path) != "False") {
    fail(path, "Fortran-order .npy data is not supported (save it in C order)");
  }
  const auto [rows, cols] = image_shape(npy_shape(npy_field(header, "shape", path), path), path);
  return convert(bytes, header_start + header_len, rows, cols, type, false, path);
}

// ---------------------------------------------------------------- EDF

std::map<std::string, std::string> edf_keys(std::string_view header) {
  std::map<std::string, std::string> keys;
  while (!header.empty()) {
    const std::size_t semi = header.find(';');
    const std::string_view item = header.substr(0, semi);
    const std::size_t eq = item.find('=');
    if (eq != std::string_view::npos) {
      keys[std::string(trim(item.substr(0, eq)))] = std::string(trim(item.substr(eq + 1)));
    }
    if (semi == std::string_view::npos) break;
    header.remove_prefix(semi + 1);
  }
  return keys;
}

RawType edf_type(const std::string& name, const std::string& file) {
  static const std::map<std::string, RawType> kTypes = {
      {"UnsignedByte", {'u', 1}}, {"SignedByte", {'i', 1}},      {"UnsignedShort", {'u', 2}},
      {"SignedShort", {'i', 2}},  {"UnsignedInteger", {'u', 4}}, {"SignedInteger", {'i', 4}},
      {"UnsignedLong", {'u', 4}}, {"SignedLong", {'i', 4}},      {"Unsigned64", {'u', 8}},
      {"Signed64", {'i', 8}},     {"FloatValue", {'f', 4}},      {"Float", {'f', 4}},
      {"FLOATVALUE", {'f', 4}},   {"FLOAT", {'f', 4}},           {"DoubleValue", {'f', 8}},
      {"Double", {'f', 8}},       {"DOUBLEVALUE", {'f', 8}}};
  const auto it = kTypes.find(name);
  if (it == kTypes.end()) fail(file, "unsupported EDF DataType '" + name + "'");
  return it->second;
}

std::string edf_key(const std::map<std::string, std::string>& keys, const std::string& key,
                    const std::string& file) {
  const auto it = keys.find(key);
  if (it == keys.end()) fail(file, "malformed EDF header: no " + key + " key");
  return it->second;
}

Image read_edf(const std::string& path, const std::string& bytes) {
  const std::size_t close = bytes.find('}');
  if (close == std::string::npos || close > (1u << 20)) {
    fail(path, "malformed EDF header: no closing '}'");
  }
  std::size_t data_start = close + 1;
  if (data_start < bytes.size() && bytes[data_start] == '\r') ++data_start;
  if (data_start < bytes.size() && bytes[data_start] == '\n') ++data_start;
  const auto keys = edf_keys(std::string_view(bytes).substr(1, close - 1));
  const std::size_t cols = parse_size(edf_key(keys, "Dim_1", path), path, "EDF Dim_1");
  const std::size_t rows = parse_size(edf_key(keys, "Dim_2", path), path, "EDF Dim_2");
  const RawType type = edf_type(edf_key(keys, "DataType", path), path);
  const auto order = keys.find("ByteOrder");
  bool big = false;
  if (order != keys.end()) {
    if (order->second != "LowByteFirst" && order->second != "HighByteFirst") {
      fail(path, "unsupported EDF ByteOrder '" + order->second + "'");
    }
    big = order->second == "HighByteFirst";
  }
  const auto compression = keys.find("Compression");
  if (compression != keys.end() && compression->second != "None" &&
      compression->second != "NoCompression") {
    fail(path, "compressed EDF data ('" + compression->second + "') is not supported");
  }
  const bool swap = type.size > 1 && (big == (std::endian::native == std::endian::little));
  return convert(bytes, data_start, rows, cols, type, swap, path);
}

// ---------------------------------------------------------------- HDF5

/// H5Lvisit callback: remembers the first 2D (or (1, r, c)) dataset reached by a hard link.
herr_t find_image_dataset(hid_t root, const char* name, const H5L_info_t* info, void* out) {
  if (info->type != H5L_TYPE_HARD) return 0;
  if (H5Oexists_by_name(root, name, H5P_DEFAULT) <= 0) return 0;
  h5::Handle object(H5Oopen(root, name, H5P_DEFAULT));
  if (!object.valid() || H5Iget_type(object.get()) != H5I_DATASET) return 0;
  h5::Handle ds(H5Dopen2(root, name, H5P_DEFAULT));
  if (!ds.valid()) return 0;
  h5::Handle space(H5Dget_space(ds.get()));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 2) return 0;
  std::array<hsize_t, 8> dims{};
  if (rank > 8 || H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) < 0) return 0;
  for (int i = 0; i < rank - 2; ++i) {
    if (dims[static_cast<std::size_t>(i)] != 1) return 0;
  }
  *static_cast<std::string*>(out) = std::string("/") + name;
  return 1;
}

Image read_hdf5(const std::string& spec, const std::string& path, std::string dataset) {
  h5::silence_errors();
  h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file.valid()) fail(path, "cannot open as HDF5");
  if (dataset.empty()) {
    if (H5Lvisit(file.get(), H5_INDEX_NAME, H5_ITER_INC, find_image_dataset, &dataset) < 0 ||
        dataset.empty()) {
      fail(path, "no 2D dataset found (name one with FILE::/path)");
    }
  }
  h5::Handle ds(H5Dopen2(file.get(), dataset.c_str(), H5P_DEFAULT));
  if (!ds.valid()) fail(path, "no dataset " + dataset);
  h5::Handle space(H5Dget_space(ds.get()));
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 8) fail(spec, "unsupported dataspace");
  std::array<hsize_t, 8> dims{};
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  std::vector<std::size_t> shape(dims.begin(), dims.begin() + rank);
  const auto [rows, cols] = image_shape(shape, spec);
  h5::Handle type(H5Dget_type(ds.get()));
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_INTEGER && cls != H5T_FLOAT && cls != H5T_ENUM) {
    fail(spec, "dataset is not numeric");
  }
  Image image{rows, cols, std::vector<double>(rows * cols), spec};
  if (H5Dread(ds.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, image.values.data()) <
      0) {
    throw Error(ErrorCategory::kIo, spec + ": cannot read dataset " + dataset);
  }
  return image;
}

}  // namespace

Image read_image(const std::string& spec) {
  std::string path = spec;
  std::string dataset;
  if (const std::size_t sep = spec.find("::"); sep != std::string::npos) {
    path = spec.substr(0, sep);
    dataset = spec.substr(sep + 2);
  }
  std::ifstream probe(path, std::ios::binary);
  if (!probe) throw Error(ErrorCategory::kIo, "cannot open " + path);
  std::array<char, 8> magic{};
  probe.read(magic.data(), magic.size());
  const std::string_view head(magic.data(), static_cast<std::size_t>(probe.gcount()));
  probe.close();
  if (head == std::string_view("\x89HDF\r\n\x1a\n", 8)) return read_hdf5(spec, path, dataset);
  if (!dataset.empty()) fail(path, "'::" + dataset + "' given but the file is not HDF5");
  if (head.substr(0, 6) == "\x93NUMPY") return read_npy(path, read_all(path));
  if (!trim(head).empty() && trim(head).front() == '{') {
    std::string bytes = read_all(path);
    const std::size_t brace = bytes.find('{');
    return read_edf(path, bytes.substr(brace));
  }
  fail(path, "unknown image format (expected HDF5, NumPy .npy or EDF)");
}

Image read_image(const std::string& spec, std::size_t rows, std::size_t cols,
                 std::string_view what) {
  Image image = read_image(spec);
  if (image.rows != rows || image.cols != cols) {
    throw Error(ErrorCategory::kInput,
                std::string(what) + " " + spec + " has shape (" + std::to_string(image.rows) +
                    ", " + std::to_string(image.cols) + "), the detector is (" +
                    std::to_string(rows) + ", " + std::to_string(cols) + ")");
  }
  return image;
}

integrate::Corrections load_corrections(std::size_t rows, std::size_t cols,
                                        const std::vector<std::uint32_t>* detector_mask,
                                        const CorrectionFiles& files) {
  integrate::Corrections c;
  const std::size_t pixels = rows * cols;
  if (detector_mask) {
    c.mask.assign(pixels, 0);
    for (std::size_t i = 0; i < pixels; ++i) c.mask[i] = (*detector_mask)[i] != 0;
  }
  if (!files.mask.empty()) {
    const Image mask = read_image(files.mask, rows, cols, "mask");
    c.mask.resize(pixels, 0);
    for (std::size_t i = 0; i < pixels; ++i) c.mask[i] |= mask.values[i] != 0;
  }
  for (auto [spec, out, what] :
       {std::tuple{&files.dark, &c.dark, "dark"}, std::tuple{&files.flat, &c.flat, "flat"}}) {
    if (spec->empty()) continue;
    const Image image = read_image(*spec, rows, cols, what);
    out->assign(image.values.begin(), image.values.end());
  }
  return c;
}

}  // namespace azflow::reduce
