#include "stages/source/stream2.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "base/error.hpp"
#include "stages/decompress/bitshuffle_lz4.hpp"
#include "stages/decompress/lz4.hpp"
#include "stages/source/cbor_view.hpp"

namespace azflow::source::stream2 {

namespace {

using cbor::Item;
using cbor::Kind;

[[noreturn]] void fail(const std::string& message) {
  throw Error(ErrorCategory::kInput, "stream2: " + message);
}

std::string got(const Item& item) {
  if (item.kind == Kind::kTag) return "tag " + std::to_string(item.value);
  return std::string(cbor::kind_name(item.kind));
}

std::uint64_t as_uint(const Item& item, const std::string& what) {
  if (item.kind != Kind::kUint) fail(what + ": expected an unsigned integer, got " + got(item));
  return item.value;
}

double as_float(const Item& item, const std::string& what) {
  if (item.kind == Kind::kFloat) return item.number;
  if (item.kind == Kind::kUint) return static_cast<double>(item.value);
  if (item.kind == Kind::kNegint) return -1.0 - static_cast<double>(item.value);
  fail(what + ": expected a number, got " + got(item));
}

std::string as_text(const Item& item, const std::string& what) {
  if (item.kind != Kind::kText) fail(what + ": expected a text string, got " + got(item));
  return std::string(item.text());
}

/// Element type of an RFC 8746 typed-array tag azflow reads (little-endian only).
DType typed_array_dtype(std::uint64_t tag, const std::string& what) {
  switch (tag) {
    case 64:  // uint8
    case 68:  // uint8, clamped arithmetic
      return DType::kUint8;
    case 69:
      return DType::kUint16;
    case 70:
      return DType::kUint32;
    case 77:
      return DType::kInt16;
    case 78:
      return DType::kInt32;
    case 79:
      return DType::kInt64;
    case 85:
      return DType::kFloat32;
    case 86:
      return DType::kFloat64;
    default:
      break;
  }
  if (tag >= 64 && tag <= 87) {
    fail(what + ": RFC 8746 typed array tag " + std::to_string(tag) +
         " is not supported (azflow reads uint8 64/68, uint16 LE 69, uint32 LE 70, int16 LE 77, "
         "int32 LE 78, int64 LE 79, float32 LE 85, float64 LE 86)");
  }
  fail(what + ": expected an RFC 8746 typed array tag (64-87), got tag " + std::to_string(tag));
}

/// The DECTRIS compression tag's content, checked against the array's decoded size.
void parse_compression(const Item& tagged, Array& array, const std::string& what) {
  const Item& c = tagged.children[0];
  if (c.kind != Kind::kArray || c.children.size() != 3) {
    fail(what + ": compression tag 56500 must hold [algorithm, modifier, bytes], got " + got(c) +
         (c.kind == Kind::kArray ? " of " + std::to_string(c.children.size()) : ""));
  }
  const std::string algorithm = as_text(c.children[0], what + " compression algorithm");
  const std::uint64_t modifier = as_uint(c.children[1], what + " compression modifier");
  if (c.children[2].kind != Kind::kBytes) {
    fail(what + ": compressed data must be a byte string, got " + got(c.children[2]));
  }
  array.bytes = c.children[2].bytes;
  const std::size_t elem = dtype_size(array.dtype);
  std::size_t declared = 0;
  if (algorithm == "bslz4") {
    if (modifier != elem) {
      fail(what + ": bslz4 element size " + std::to_string(modifier) + " but the typed array's " +
           std::string(dtype_name(array.dtype)) + " elements are " + std::to_string(elem) +
           " bytes");
    }
    if (array.bytes.size() < decompress::kBitshuffleLz4HeaderBytes) {
      fail(what + ": bslz4 data of " + std::to_string(array.bytes.size()) +
           " bytes is shorter than its 12-byte header (truncated)");
    }
    array.codec = {decompress::Codec::kBitshuffleLz4, elem, 0};
    declared = decompress::bitshuffle_lz4_decoded_size(array.bytes);
  } else if (algorithm == "lz4") {
    if (array.bytes.size() < decompress::kLz4HeaderBytes) {
      fail(what + ": lz4 data of " + std::to_string(array.bytes.size()) +
           " bytes is shorter than its 12-byte header (truncated)");
    }
    array.codec = {decompress::Codec::kLz4, elem, 0};
    declared = decompress::lz4_h5_decoded_size(array.bytes);
  } else {
    fail(what + ": unknown compression '" + algorithm +
         "' (azflow decodes DECTRIS 'bslz4' and 'lz4')");
  }
  if (declared != array.decoded_bytes()) {
    fail(what + ": compressed data declares " + std::to_string(declared) +
         " decoded bytes but the array [" + std::to_string(array.rows) + ", " +
         std::to_string(array.cols) + "] of " + std::string(dtype_name(array.dtype)) + " needs " +
         std::to_string(array.decoded_bytes()));
  }
}

/// Reads the dimensions [rows, cols] of a multi-dimensional array and checks them.
void parse_dimensions(const Item& dims, Array& array, const std::string& what,
                      const Limits& limits) {
  if (dims.kind != Kind::kArray || dims.children.size() != 2) {
    fail(what + ": dimensions must be [rows, cols], got " + got(dims) +
         (dims.kind == Kind::kArray ? " of " + std::to_string(dims.children.size()) : ""));
  }
  const std::uint64_t rows = as_uint(dims.children[0], what + " rows");
  const std::uint64_t cols = as_uint(dims.children[1], what + " cols");
  if (rows == 0 || cols == 0 || rows > limits.max_side_px || cols > limits.max_side_px ||
      rows * cols > limits.max_pixels) {
    fail(what + ": dimensions [" + std::to_string(rows) + ", " + std::to_string(cols) +
         "] are outside the limits (1.." + std::to_string(limits.max_side_px) + " per side, " +
         std::to_string(limits.max_pixels) + " pixels)");
  }
  array.rows = static_cast<std::size_t>(rows);
  array.cols = static_cast<std::size_t>(cols);
}

/// A multi-dimensional array (tag 40 [[rows, cols], typed array]) as a view of its bytes.
Array parse_array(const Item& item, const std::string& what, const Limits& limits) {
  if (item.kind != Kind::kTag) {
    fail(what + ": expected a multi-dimensional array (tag 40), got " + got(item));
  }
  if (item.value == kMultiDimColumnMajorTag) {
    fail(what +
         ": column-major multi-dimensional array (tag 1040) is not supported; azflow "
         "reads row-major arrays (tag 40)");
  }
  if (item.value != kMultiDimRowMajorTag) {
    fail(what + ": expected a multi-dimensional array (tag 40), got tag " +
         std::to_string(item.value));
  }
  const Item& body = item.children[0];
  if (body.kind != Kind::kArray || body.children.size() != 2) {
    fail(what + ": tag 40 must hold [dimensions, typed array], got " + got(body));
  }
  Array array;
  parse_dimensions(body.children[0], array, what, limits);
  const Item& typed = body.children[1];
  if (typed.kind != Kind::kTag) {
    fail(what + ": expected an RFC 8746 typed array (tag), got " + got(typed));
  }
  array.dtype = typed_array_dtype(typed.value, what);
  const Item& content = typed.children[0];
  if (content.kind == Kind::kBytes) {
    array.bytes = content.bytes;
    array.codec = {decompress::Codec::kNone, dtype_size(array.dtype), 0};
    if (array.bytes.size() != array.decoded_bytes()) {
      fail(what + ": array [" + std::to_string(array.rows) + ", " + std::to_string(array.cols) +
           "] of " + std::string(dtype_name(array.dtype)) + " needs " +
           std::to_string(array.decoded_bytes()) + " bytes but its byte string holds " +
           std::to_string(array.bytes.size()));
    }
  } else if (content.kind == Kind::kTag && content.value == kDectrisCompressionTag) {
    parse_compression(content, array, what);
  } else {
    fail(what + ": typed array must hold a byte string or the compression tag 56500, got " +
         got(content));
  }
  return array;
}

/// Whether `key` is one of DECTRIS' documented fields of a message azflow does not use.
bool documented(std::string_view key, std::span<const std::string_view> fields) {
  return std::find(fields.begin(), fields.end(), key) != fields.end();
}

constexpr std::array<std::string_view, 19> kStartFieldsUnused = {
    "arm_date",
    "countrate_correction_enabled",
    "countrate_correction_lookup_table",
    "detector_serial_number",
    "detector_translation",
    "flatfield",
    "flatfield_enabled",
    "goniometer",
    "pixel_mask_enabled",
    "sensor_material",
    "sensor_thickness",
    "threshold_energy",
    "user_data",
    "virtual_pixel_interpolation_enabled",
    "count_time_unit",
    "frame_time_unit",
    "image_appendix",
    "header_appendix",
    "series_date"};
constexpr std::array<std::string_view, 6> kImageFieldsUnused = {
    "real_time", "series_date", "start_time", "stop_time", "user_data", "image_appendix"};

/// Iterates the text keys of a top-level map; calls `field(key, value)`, which returns false
/// for a key it does not handle. Returns how many keys were neither handled nor documented.
template <typename Field>
std::size_t each_field(const Item& map, std::span<const std::string_view> documented_fields,
                       Field&& field) {
  std::size_t unknown = 0;
  for (std::size_t i = 0; i + 1 < map.children.size(); i += 2) {
    const Item& key = map.children[i];
    if (key.kind != Kind::kText) fail("message key must be a text string, got " + got(key));
    if (key.text() == "type") continue;
    if (!field(key.text(), map.children[i + 1]) && !documented(key.text(), documented_fields)) {
      ++unknown;
    }
  }
  return unknown;
}

std::vector<std::uint32_t> decode_mask(const Array& array, const std::string& what) {
  std::vector<std::byte> raw(array.decoded_bytes());
  decode(array, raw);
  return pixel_mask_values(raw, array.dtype, array.rows * array.cols, "stream2: " + what);
}

void parse_pixel_masks(const Item& map, Start& start, const Limits& limits) {
  if (map.kind != Kind::kMap) fail("start pixel_mask: expected a map, got " + got(map));
  if (map.children.size() / 2 > limits.max_channels) {
    fail("start pixel_mask: " + std::to_string(map.children.size() / 2) + " channels, more than " +
         std::to_string(limits.max_channels));
  }
  for (std::size_t i = 0; i + 1 < map.children.size(); i += 2) {
    const std::string name = as_text(map.children[i], "start pixel_mask channel name");
    const std::string what = "start pixel_mask '" + name + "'";
    const Array array = parse_array(map.children[i + 1], what, limits);
    if ((start.image_size_y && array.rows != *start.image_size_y) ||
        (start.image_size_x && array.cols != *start.image_size_x)) {
      fail(what + ": shape [" + std::to_string(array.rows) + ", " + std::to_string(array.cols) +
           "] differs from image_size_y x image_size_x");
    }
    start.pixel_masks.emplace_back(name, decode_mask(array, what));
  }
}

std::size_t image_size(const Item& item, const std::string& what, const Limits& limits) {
  const std::uint64_t v = as_uint(item, what);
  if (v == 0 || v > limits.max_side_px) {
    fail(what + " " + std::to_string(v) + " is outside 1.." + std::to_string(limits.max_side_px));
  }
  return static_cast<std::size_t>(v);
}

/// Metres per angstrom; h*c in eV*m (CODATA 2018: 1.239841984e-6 eV m) for energy -> wavelength.
constexpr double kMetresPerAngstrom = 1e-10;
constexpr double kHcEvMetre = 1.239841984e-6;

bool start_field(std::string_view key, const Item& v, Start& s, const Limits& limits) {
  if (key == "series_id") {
    s.series_id = as_uint(v, "start series_id");
  } else if (key == "series_unique_id") {
    s.series_unique_id = as_text(v, "start series_unique_id");
  } else if (key == "image_size_x") {
    s.image_size_x = image_size(v, "start image_size_x", limits);
  } else if (key == "image_size_y") {
    s.image_size_y = image_size(v, "start image_size_y", limits);
  } else if (key == "image_dtype") {
    const std::string name = as_text(v, "start image_dtype");
    s.image_dtype = dtype_from_name(name);
    if (!s.image_dtype) fail("start image_dtype '" + name + "' is not supported");
  } else if (key == "number_of_images") {
    s.number_of_images = as_uint(v, "start number_of_images");
    if (*s.number_of_images > limits.max_images) {
      fail("start number_of_images " + std::to_string(*s.number_of_images) + " is absurd");
    }
  } else if (key == "beam_center_x") {
    s.beam_center_x_px = as_float(v, "start beam_center_x");
  } else if (key == "beam_center_y") {
    s.beam_center_y_px = as_float(v, "start beam_center_y");
  } else if (key == "detector_distance") {
    s.detector_distance_m = as_float(v, "start detector_distance");
  } else if (key == "incident_wavelength") {
    s.incident_wavelength_m = as_float(v, "start incident_wavelength") * kMetresPerAngstrom;
  } else if (key == "incident_energy") {
    s.incident_energy_ev = as_float(v, "start incident_energy");
  } else if (key == "pixel_size_x") {
    s.pixel_size_x_m = as_float(v, "start pixel_size_x");
  } else if (key == "pixel_size_y") {
    s.pixel_size_y_m = as_float(v, "start pixel_size_y");
  } else if (key == "count_time") {
    s.count_time_s = as_float(v, "start count_time");
  } else if (key == "frame_time") {
    s.frame_time_s = as_float(v, "start frame_time");
  } else if (key == "saturation_value") {
    s.saturation_value = as_uint(v, "start saturation_value");
  } else if (key == "detector_description") {
    s.detector_description = as_text(v, "start detector_description");
  } else if (key == "channels") {
    if (v.kind != Kind::kArray) fail("start channels: expected an array, got " + got(v));
    for (const Item& c : v.children) s.channels.push_back(as_text(c, "start channels"));
  } else if (key == "pixel_mask") {
    return false;  // parsed after the loop, once image_size_x/y are known
  } else {
    return false;
  }
  return true;
}

Start parse_start(const Item& map, const Limits& limits, std::size_t& unknown) {
  Start s;
  unknown = each_field(map, kStartFieldsUnused, [&](std::string_view key, const Item& v) {
    return start_field(key, v, s, limits) || key == "pixel_mask";
  });
  if (const Item* mask = map.find("pixel_mask")) parse_pixel_masks(*mask, s, limits);
  if (!s.incident_wavelength_m && s.incident_energy_ev) {
    if (*s.incident_energy_ev <= 0) fail("start incident_energy must be positive");
    s.incident_wavelength_m = kHcEvMetre / *s.incident_energy_ev;
  }
  return s;
}

Image parse_image(const Item& map, const Limits& limits, std::size_t& unknown) {
  Image img;
  const Item* data = nullptr;
  bool have_id = false;
  unknown = each_field(map, kImageFieldsUnused, [&](std::string_view key, const Item& v) {
    if (key == "series_id") {
      img.series_id = as_uint(v, "image series_id");
    } else if (key == "series_unique_id") {
      img.series_unique_id = as_text(v, "image series_unique_id");
    } else if (key == "image_id") {
      img.image_id = as_uint(v, "image image_id");
      have_id = true;
    } else if (key == "data") {
      data = &v;
    } else {
      return false;
    }
    return true;
  });
  if (!have_id) fail("image message without image_id");
  const std::string what = "image " + std::to_string(img.image_id);
  if (!data) fail(what + ": no data");
  if (data->kind != Kind::kMap) fail(what + " data: expected a map, got " + got(*data));
  const std::size_t n = data->children.size() / 2;
  if (n == 0 || n > limits.max_channels) {
    fail(what + " data: " + std::to_string(n) + " channels (1.." +
         std::to_string(limits.max_channels) + " allowed)");
  }
  for (std::size_t i = 0; i < data->children.size(); i += 2) {
    Channel c;
    c.name = as_text(data->children[i], what + " channel name");
    c.array = parse_array(data->children[i + 1], what + " channel '" + c.name + "'", limits);
    img.data.push_back(std::move(c));
  }
  return img;
}

End parse_end(const Item& map, std::size_t& unknown) {
  End e;
  unknown = each_field(map, {}, [&](std::string_view key, const Item& v) {
    if (key == "series_id") {
      e.series_id = as_uint(v, "end series_id");
    } else if (key == "series_unique_id") {
      e.series_unique_id = as_text(v, "end series_unique_id");
    } else {
      return false;
    }
    return true;
  });
  return e;
}

}  // namespace

std::vector<std::uint32_t> pixel_mask_values(std::span<const std::byte> raw, DType dtype,
                                             std::size_t pixels, const std::string& what) {
  if (dtype == DType::kFloat32 || dtype == DType::kFloat64) {
    throw Error(ErrorCategory::kInput,
                what + ": a pixel mask must be integers, got " + std::string(dtype_name(dtype)));
  }
  const std::size_t elem = dtype_size(dtype);
  if (raw.size() != pixels * elem) {
    throw Error(ErrorCategory::kInternal, what + ": mask bytes do not match its shape");
  }
  std::vector<std::uint32_t> mask(pixels);
  for (std::size_t i = 0; i < pixels; ++i) {
    const std::byte* at = raw.data() + elem * i;
    std::uint64_t bits = 0;  // the element's bits, zero-extended (little-endian host)
    std::memcpy(&bits, at, elem);
    if (bits == 0 || elem <= 4) {
      mask[i] = static_cast<std::uint32_t>(bits);
    } else {  // a 64-bit value: keep it when it fits, else any nonzero = masked
      mask[i] = bits <= 0xFFFFFFFFu ? static_cast<std::uint32_t>(bits) : 0xFFFFFFFFu;
    }
  }
  return mask;
}

const std::vector<std::uint32_t>* Start::pixel_mask(std::string_view channel) const {
  for (const auto& [name, mask] : pixel_masks) {
    if (channel.empty() || name == channel) return &mask;
  }
  return nullptr;
}

const Channel& Image::channel(std::string_view name) const {
  if (data.empty()) fail("image " + std::to_string(image_id) + " has no channel");
  if (name.empty()) return data.front();
  std::string names;
  for (const Channel& c : data) {
    if (c.name == name) return c;
    names += (names.empty() ? "'" : ", '") + c.name + "'";
  }
  fail("image " + std::to_string(image_id) + " has no channel '" + std::string(name) +
       "' (it has " + names + ")");
}

Message parse_message(std::span<const std::byte> message, const Limits& limits) {
  if (message.size() > limits.max_message_bytes) {
    fail("message of " + std::to_string(message.size()) + " bytes exceeds the limit of " +
         std::to_string(limits.max_message_bytes));
  }
  Item root;
  try {
    root = cbor::parse(message);
  } catch (const Error& e) {
    const std::string detail = e.what();  // "input: ..." : drop the repeated category
    fail("not a valid CBOR message (" + detail.substr(detail.find(": ") + 2) + ")");
  }
  if (root.kind != Kind::kTag || root.value != kSelfDescribeTag) {
    fail("message does not start with the CBOR self-describe tag 55799 (got " + got(root) + ")");
  }
  const Item& map = root.children[0];
  if (map.kind != Kind::kMap) fail("message must be a map, got " + got(map));
  const Item* type = map.find("type");
  if (!type) fail("message has no 'type'");
  const std::string kind = as_text(*type, "message type");
  Message m;
  if (kind == "start") {
    m.body = parse_start(map, limits, m.unknown_fields);
  } else if (kind == "image") {
    m.body = parse_image(map, limits, m.unknown_fields);
  } else if (kind == "end") {
    m.body = parse_end(map, m.unknown_fields);
  } else {
    m.body = Unknown{kind};
    m.unknown_fields = map.children.size() / 2 - 1;
  }
  return m;
}

void decode(const Array& array, std::span<std::byte> out) {
  if (out.size() != array.decoded_bytes()) {
    throw Error(ErrorCategory::kInternal,
                "stream2 decode: output of " + std::to_string(out.size()) +
                    " bytes for an array of " + std::to_string(array.decoded_bytes()));
  }
  decompress::decode(array.codec, array.bytes, out);
}

}  // namespace azflow::source::stream2
