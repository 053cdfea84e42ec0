#pragma once
// A read-only tree of one CBOR data item (RFC 8949), built with libcbor's streaming decoder so
// that byte and text strings stay views into the caller's buffer (no copy of image data).
// Internal to azflow::source (the Stream V2 parser); not a general CBOR library.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace azflow::source::cbor {

/// The kind of a CBOR data item (major types, with simple values split out).
enum class Kind : std::uint8_t {
  kUint,       ///< major type 0: `value`
  kNegint,     ///< major type 1: the integer -1 - `value`
  kBytes,      ///< major type 2: `bytes` (definite length only)
  kText,       ///< major type 3: `bytes` hold UTF-8 (definite length only)
  kArray,      ///< major type 4: `children`
  kMap,        ///< major type 5: `children` = key, value, key, value, ...
  kTag,        ///< major type 6: tag number `value`, tagged item `children[0]`
  kFloat,      ///< major type 7 half, single or double: `number`
  kBool,       ///< major type 7 false/true: `value` 0 or 1
  kNull,       ///< major type 7 null
  kUndefined,  ///< major type 7 undefined
};

/// Name of a kind for error messages ("unsigned integer", "byte string", "map", ...).
[[nodiscard]] std::string_view kind_name(Kind kind) noexcept;

/// One decoded CBOR data item. Strings view the buffer given to parse(): the item must not
/// outlive it.
struct Item {
  Kind kind = Kind::kNull;
  std::uint64_t value = 0;           ///< kUint, kNegint (see Kind), kTag number, kBool
  double number = 0;                 ///< kFloat
  std::span<const std::byte> bytes;  ///< kBytes, kText
  std::vector<Item> children;        ///< kArray, kMap (key/value pairs flattened), kTag (one)

  /// The text of a kText item (unchecked UTF-8), "" for any other kind.
  [[nodiscard]] std::string_view text() const noexcept;
  /// Value of `key` in a kMap with text keys; nullptr if absent or not a map.
  [[nodiscard]] const Item* find(std::string_view key) const noexcept;
};

/// Bounds applied while decoding, before anything is allocated for a declared size.
struct ParseLimits {
  std::size_t max_depth = 64;        ///< nesting of arrays, maps and tags
  std::size_t max_items = 1u << 20;  ///< data items in the whole message
};

/// Decodes exactly one CBOR data item filling all of `buffer`. Declared array and map lengths
/// are checked against the bytes that remain before any element is stored. Throws
/// azflow::Error (kInput) with "not valid CBOR" and the byte offset when libcbor reports
/// malformed data, "truncated" when the buffer ends inside an item (a byte string longer than
/// what arrived included), and errors for indefinite-length strings, trailing bytes, too deep
/// nesting or too many items.
[[nodiscard]] Item parse(std::span<const std::byte> buffer, const ParseLimits& limits = {});

}  // namespace azflow::source::cbor
