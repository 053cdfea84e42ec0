#pragma once
// Names with any bytes in JSON text and log lines (issue 14). File and dataset names come from
// the file system and from HDF5 files (external links, virtual-dataset sources) as bytes, which
// need not be UTF-8; nlohmann::json refuses to dump a string that is not (type_error 316). The
// daemon carries names as bytes and escapes them only where it writes text: every byte that is
// not part of a valid UTF-8 sequence becomes the four characters \xNN (lower-case hex), so
// "bad\xff.h5" reads back as exactly that. Valid UTF-8 (any language) passes unchanged.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace azflow::daemon {

namespace json_text_detail {

/// Length of the valid UTF-8 sequence at text[i] (1 to 4), or 0 if it is not one (RFC 3629:
/// no overlong forms, no surrogates, nothing above U+10FFFF).
inline std::size_t utf8_sequence(std::string_view text, std::size_t i) noexcept {
  const auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(text[i + k]); };
  const std::uint8_t b0 = byte(0);
  if (b0 < 0x80) return 1;
  std::size_t n = 0;
  std::uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    lo = b0 == 0xE0 ? 0xA0 : 0x80;
    hi = b0 == 0xED ? 0x9F : 0xBF;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    lo = b0 == 0xF0 ? 0x90 : 0x80;
    hi = b0 == 0xF4 ? 0x8F : 0xBF;
  } else {
    return 0;
  }
  if (i + n > text.size() || byte(1) < lo || byte(1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k) {
    if (byte(k) < 0x80 || byte(k) > 0xBF) return 0;
  }
  return n;
}

}  // namespace json_text_detail

/// `text` with every byte outside a valid UTF-8 sequence written as \xNN; always valid UTF-8.
inline std::string escape_bytes(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = json_text_detail::utf8_sequence(text, i);
    if (n > 0) {
      out.append(text.substr(i, n));
      i += n;
      continue;
    }
    const auto b = static_cast<std::uint8_t>(text[i++]);
    out += "\\x";
    out += kHex[b >> 4];
    out += kHex[b & 0xF];
  }
  return out;
}

/// A copy of `j` with every string value and object key passed through escape_bytes.
inline nlohmann::json escaped_json(const nlohmann::json& j) {
  if (j.is_string()) return escape_bytes(j.get_ref<const std::string&>());
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : j) out.push_back(escaped_json(item));
    return out;
  }
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : j.items()) out[escape_bytes(key)] = escaped_json(value);
    return out;
  }
  return j;
}

/// `j` as compact JSON text; names that are not UTF-8 are escaped (escape_bytes) instead of
/// making nlohmann::json throw. Costs one extra walk only when such a string is present.
inline std::string dump_escaped(const nlohmann::json& j) {
  try {
    return j.dump();
  } catch (const nlohmann::json::type_error&) {  // 316: invalid UTF-8 somewhere in `j`
    return escaped_json(j).dump();
  }
}

}  // namespace azflow::daemon
