#include "stages/source/stream1.hpp"

#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "stages/decompress/bitshuffle_lz4.hpp"

namespace azflow::source::stream1 {

namespace {

using nlohmann::json;
using stream2::Array;

[[noreturn]] void fail(const std::string& message) {
  throw Error(ErrorCategory::kInput, "stream1: " + message);
}

/// Metres per angstrom; h*c in eV*m (CODATA 2018) for photon_energy -> wavelength.
constexpr double kMetresPerAngstrom = 1e-10;
constexpr double kHcEvMetre = 1.239841984e-6;

/// Part `index` (0-based) as a JSON object; `what` names the part in errors.
json json_part(Parts parts, std::size_t index, const std::string& what) {
  if (index >= parts.size()) {
    fail(what + " part " + std::to_string(index + 1) + " is missing (the message has " +
         std::to_string(parts.size()) + " parts)");
  }
  const auto* p = reinterpret_cast<const char*>(parts[index].data());
  json j = json::parse(p, p + parts[index].size(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    fail(what + " part " + std::to_string(index + 1) + " is not a JSON object");
  }
  return j;
}

/// The htype with the trailing version kept and a leading "d" dropped ("dimage-1.0" ->
/// "image-1.0"), as some simulators send the names without it.
std::string htype_of(const json& j) {
  const auto it = j.find("htype");
  if (it == j.end() || !it->is_string()) return "";
  std::string h = it->get<std::string>();
  if (!h.empty() && h[0] == 'd') h.erase(0, 1);
  return h;
}

/// Checks part `index` is a JSON object of htype `want` (without the leading "d").
json expect_part(Parts parts, std::size_t index, std::string_view want, const std::string& what) {
  json j = json_part(parts, index, what);
  const std::string h = htype_of(j);
  if (h != want) {
    fail(what + " part " + std::to_string(index + 1) + ": expected htype 'd" + std::string(want) +
         "', got '" + (j.contains("htype") ? j["htype"].dump() : std::string("none")) + "'");
  }
  return j;
}

template <typename T>
std::optional<T> number(const json& j, const char* key, const std::string& what) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) fail(what + " '" + key + "' must be a number, got " + it->dump());
  if constexpr (std::is_unsigned_v<T>) {
    if (!it->is_number_unsigned()) {
      fail(what + " '" + key + "' must be a non-negative integer, got " + it->dump());
    }
  }
  return it->get<T>();
}

std::uint64_t series_of(const json& j, const std::string& what) {
  const auto s = number<std::uint64_t>(j, "series", what);
  if (!s) fail(what + " has no 'series'");
  return *s;
}

/// The `shape` [x, y] (width, height) and `type` of a blob header, checked against `limits`.
Array blob_header(const json& j, const std::string& what, const Limits& limits) {
  const auto shape = j.find("shape");
  if (shape == j.end() || !shape->is_array() || shape->size() != 2 ||
      !(*shape)[0].is_number_unsigned() || !(*shape)[1].is_number_unsigned()) {
    fail(what + ": 'shape' must be [x, y], got " + (shape == j.end() ? "none" : shape->dump()));
  }
  const auto x = (*shape)[0].get<std::uint64_t>(), y = (*shape)[1].get<std::uint64_t>();
  if (x == 0 || y == 0 || x > limits.max_side_px || y > limits.max_side_px ||
      x * y > limits.max_pixels) {
    fail(what + ": shape [" + std::to_string(x) + ", " + std::to_string(y) +
         "] is outside the limits (1.." + std::to_string(limits.max_side_px) + " per side, " +
         std::to_string(limits.max_pixels) + " pixels)");
  }
  const auto type = j.find("type");
  if (type == j.end() || !type->is_string()) fail(what + ": no 'type'");
  const std::optional<DType> dtype = dtype_from_name(type->get<std::string>());
  if (!dtype) fail(what + ": type '" + type->get<std::string>() + "' is not supported");
  Array a;
  a.rows = static_cast<std::size_t>(y);
  a.cols = static_cast<std::size_t>(x);
  a.dtype = *dtype;
  a.codec = {decompress::Codec::kNone, dtype_size(*dtype), 0};
  return a;
}

/// A raw (little-endian) blob of the header's shape and type at part `index`.
Array raw_blob(Parts parts, std::size_t index, const json& header, const std::string& what,
               const Limits& limits) {
  Array a = blob_header(header, what, limits);
  if (index >= parts.size()) {
    fail(what + " blob (part " + std::to_string(index + 1) + ") is missing");
  }
  a.bytes = parts[index];
  if (a.bytes.size() != a.decoded_bytes()) {
    fail(what + " blob of " + std::to_string(a.bytes.size()) + " bytes, the shape [" +
         std::to_string(a.cols) + ", " + std::to_string(a.rows) + "] of " +
         std::string(dtype_name(a.dtype)) + " needs " + std::to_string(a.decoded_bytes()));
  }
  return a;
}

std::vector<std::uint32_t> mask_values(const Array& a, const std::string& what) {
  return stream2::pixel_mask_values(a.bytes, a.dtype, a.rows * a.cols, "stream1: " + what);
}

/// The configuration part's fields, SI units.
void read_config(const json& c, stream2::Start& s, const Limits& limits) {
  const std::string what = "header config";
  const auto side = [&](const char* key) -> std::optional<std::size_t> {
    const auto v = number<std::uint64_t>(c, key, what);
    if (!v) return std::nullopt;
    if (*v == 0 || *v > limits.max_side_px) {
      fail(what + " '" + key + "' " + std::to_string(*v) + " is outside 1.." +
           std::to_string(limits.max_side_px));
    }
    return static_cast<std::size_t>(*v);
  };
  s.image_size_x = side("x_pixels_in_detector");
  s.image_size_y = side("y_pixels_in_detector");
  if (const auto bits = number<std::uint64_t>(c, "bit_depth_image", what)) {
    if (*bits == 8) s.image_dtype = DType::kUint8;
    if (*bits == 16) s.image_dtype = DType::kUint16;
    if (*bits == 32) s.image_dtype = DType::kUint32;
    if (!s.image_dtype)
      fail(what + " bit_depth_image " + std::to_string(*bits) + " is not 8/16/32");
  }
  const auto nimages = number<std::uint64_t>(c, "nimages", what);
  const auto ntrigger = number<std::uint64_t>(c, "ntrigger", what).value_or(1);
  if (nimages) {
    if (*nimages > limits.max_images || ntrigger > limits.max_images ||
        *nimages * ntrigger > limits.max_images) {
      fail(what + " nimages x ntrigger " + std::to_string(*nimages) + " x " +
           std::to_string(ntrigger) + " is absurd");
    }
    s.number_of_images = *nimages * ntrigger;
  }
  s.beam_center_x_px = number<double>(c, "beam_center_x", what);
  s.beam_center_y_px = number<double>(c, "beam_center_y", what);
  s.detector_distance_m = number<double>(c, "detector_distance", what);
  s.pixel_size_x_m = number<double>(c, "x_pixel_size", what);
  s.pixel_size_y_m = number<double>(c, "y_pixel_size", what);
  s.count_time_s = number<double>(c, "count_time", what);
  s.frame_time_s = number<double>(c, "frame_time", what);
  s.incident_energy_ev = number<double>(c, "photon_energy", what);
  if (const auto wl = number<double>(c, "wavelength", what)) {
    s.incident_wavelength_m = *wl * kMetresPerAngstrom;
  } else if (s.incident_energy_ev && *s.incident_energy_ev > 0) {
    s.incident_wavelength_m = kHcEvMetre / *s.incident_energy_ev;
  }
  if (const auto d = c.find("description"); d != c.end() && d->is_string()) {
    s.detector_description = d->get<std::string>();
  }
}

/// Global header: dheader, config, then with "all" the flatfield, pixel mask and count-rate
/// table (header, blob) pairs; an extra last part (the appendix) is allowed.
stream2::Message parse_header(Parts parts, const json& head, const Limits& limits) {
  stream2::Start s;
  s.series_id = series_of(head, "header");
  const auto detail_it = head.find("header_detail");
  const std::string detail =
      detail_it != head.end() && detail_it->is_string() ? detail_it->get<std::string>() : "none";
  if (detail != "none" && detail != "basic" && detail != "all") {
    fail("header: unknown header_detail '" + detail + "'");
  }
  if (detail != "none") read_config(json_part(parts, 1, "header config"), s, limits);
  if (detail == "all") {
    const json flat = expect_part(parts, 2, "flatfield-1.0", "header flatfield");
    (void)raw_blob(parts, 3, flat, "header flatfield", limits);
    const json mask = expect_part(parts, 4, "pixelmask-1.0", "header pixel mask");
    const Array m = raw_blob(parts, 5, mask, "header pixel mask", limits);
    if ((s.image_size_x && m.cols != *s.image_size_x) ||
        (s.image_size_y && m.rows != *s.image_size_y)) {
      fail("header pixel mask: shape [" + std::to_string(m.cols) + ", " + std::to_string(m.rows) +
           "] differs from x/y_pixels_in_detector");
    }
    s.pixel_masks.emplace_back("", mask_values(m, "header pixel mask"));
    const json table = expect_part(parts, 6, "countrate_table-1.0", "header count-rate table");
    (void)raw_blob(parts, 7, table, "header count-rate table", limits);
  }
  stream2::Message msg;
  msg.body = std::move(s);
  return msg;
}

/// The blob's encoding, checked against the type and the bytes that arrived.
void read_encoding(const json& d, Array& a, const std::string& what) {
  const auto enc = d.find("encoding");
  if (enc == d.end() || !enc->is_string()) fail(what + ": no 'encoding'");
  const std::string name = enc->get<std::string>();
  try {
    a.codec = decompress::stream_codec(name);
  } catch (const Error&) {
    fail(what + ": unknown encoding '" + name +
         "' (azflow decodes 'bs32-lz4<', 'bs16-lz4<', 'bs8-lz4<', 'lz4<', '<')");
  }
  const std::size_t elem = dtype_size(a.dtype);
  if (a.codec.codec == decompress::Codec::kBitshuffleLz4) {
    if (a.codec.elem_size != elem) {
      fail(what + ": encoding '" + name + "' is for " + std::to_string(8 * a.codec.elem_size) +
           "-bit elements but the type is " + std::string(dtype_name(a.dtype)));
    }
    if (a.bytes.size() < decompress::kBitshuffleLz4HeaderBytes) {
      fail(what + ": blob of " + std::to_string(a.bytes.size()) +
           " bytes is shorter than its 12-byte bitshuffle header (truncated)");
    }
    const std::size_t declared = decompress::bitshuffle_lz4_decoded_size(a.bytes);
    if (declared != a.decoded_bytes()) {
      fail(what + ": blob declares " + std::to_string(declared) + " decoded bytes but the shape [" +
           std::to_string(a.cols) + ", " + std::to_string(a.rows) + "] of " +
           std::string(dtype_name(a.dtype)) + " needs " + std::to_string(a.decoded_bytes()));
    }
  } else {
    a.codec.elem_size = elem;
    if (a.codec.codec == decompress::Codec::kNone && a.bytes.size() != a.decoded_bytes()) {
      fail(what + ": raw blob of " + std::to_string(a.bytes.size()) + " bytes, the shape [" +
           std::to_string(a.cols) + ", " + std::to_string(a.rows) + "] of " +
           std::string(dtype_name(a.dtype)) + " needs " + std::to_string(a.decoded_bytes()));
    }
  }
}

/// Image: dimage, dimage_d, blob, dconfig (then an optional appendix).
stream2::Message parse_image(Parts parts, const json& head, const Limits& limits) {
  stream2::Image img;
  img.series_id = series_of(head, "image");
  const auto frame = number<std::uint64_t>(head, "frame", "image");
  if (!frame) fail("image has no 'frame'");
  img.image_id = *frame;
  const std::string what = "image " + std::to_string(img.image_id);
  const json d = expect_part(parts, 1, "image_d-1.0", what);
  stream2::Channel c;
  c.array = blob_header(d, what, limits);
  if (parts.size() < 3) fail(what + ": blob (part 3) is missing");
  c.array.bytes = parts[2];
  if (const auto size = number<std::uint64_t>(d, "size", what); size && *size != parts[2].size()) {
    fail(what + ": blob of " + std::to_string(parts[2].size()) + " bytes, dimage_d declares size " +
         std::to_string(*size) + " (truncated)");
  }
  read_encoding(d, c.array, what);
  (void)expect_part(parts, 3, "config-1.0", what);
  if (parts.size() > 5) {
    fail(what + ": " + std::to_string(parts.size()) + " parts, at most 5 expected");
  }
  img.data.push_back(std::move(c));
  stream2::Message msg;
  msg.body = std::move(img);
  return msg;
}

}  // namespace

stream2::Message parse_message(Parts parts, const Limits& limits) {
  if (parts.empty()) fail("empty message (no parts)");
  std::size_t total = 0;
  for (const auto& p : parts) total += p.size();
  if (total > limits.max_message_bytes) {
    fail("message of " + std::to_string(total) + " bytes exceeds the limit of " +
         std::to_string(limits.max_message_bytes));
  }
  const json head = json_part(parts, 0, "message");
  const std::string h = htype_of(head);
  if (h == "header-1.0") return parse_header(parts, head, limits);
  if (h == "image-1.0") return parse_image(parts, head, limits);
  if (h == "series_end-1.0") {
    stream2::End e;
    e.series_id = series_of(head, "series end");
    stream2::Message msg;
    msg.body = e;
    return msg;
  }
  if (h.empty()) fail("message part 1 has no text 'htype'");
  if (h == "image_d-1.0" || h == "config-1.0" || h == "flatfield-1.0" || h == "pixelmask-1.0" ||
      h == "countrate_table-1.0") {
    fail("message starts with a '" + head["htype"].get<std::string>() +
         "' part (parts of another message out of place)");
  }
  stream2::Message msg;
  msg.body = stream2::Unknown{head["htype"].get<std::string>()};
  return msg;
}

}  // namespace azflow::source::stream1
