#include "stages/source/cbor_view.hpp"

#include <cbor.h>

#include <optional>
#include <string>
#include <utility>

#include "base/error.hpp"

namespace azflow::source::cbor {

std::string_view kind_name(Kind kind) noexcept {
  switch (kind) {
    case Kind::kUint:
      return "unsigned integer";
    case Kind::kNegint:
      return "negative integer";
    case Kind::kBytes:
      return "byte string";
    case Kind::kText:
      return "text string";
    case Kind::kArray:
      return "array";
    case Kind::kMap:
      return "map";
    case Kind::kTag:
      return "tag";
    case Kind::kFloat:
      return "float";
    case Kind::kBool:
      return "boolean";
    case Kind::kNull:
      return "null";
    case Kind::kUndefined:
      return "undefined";
  }
  return "unknown";
}

std::string_view Item::text() const noexcept {
  if (kind != Kind::kText) return {};
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

const Item* Item::find(std::string_view key) const noexcept {
  if (kind != Kind::kMap) return nullptr;
  for (std::size_t i = 0; i + 1 < children.size(); i += 2) {
    if (children[i].kind == Kind::kText && children[i].text() == key) return &children[i + 1];
  }
  return nullptr;
}

namespace {

/// An open container on the builder's stack and how many items it still expects.
struct Open {
  Item item;
  std::uint64_t remaining = 0;  ///< items still expected (definite containers and tags)
  bool indefinite = false;      ///< ends at a break instead
};

/// State shared with libcbor's callbacks: the stack of open containers and the first error.
struct Builder {
  std::span<const std::byte> buffer;
  ParseLimits limits;
  std::size_t position = 0;  ///< offset of the item being decoded
  std::vector<Open> stack;
  std::optional<Item> root;
  std::size_t items = 0;
  std::string error;  ///< first error; decoding stops once set

  void fail(std::string message) {
    if (error.empty()) error = std::move(message) + " at byte " + std::to_string(position);
  }

  /// Appends a finished item to the innermost open container (or makes it the root), closing
  /// every container that it completes.
  void add(Item item) {
    if (!error.empty()) return;
    if (++items > limits.max_items) {
      fail("more than " + std::to_string(limits.max_items) + " CBOR items");
      return;
    }
    while (true) {
      if (stack.empty()) {
        if (root) {
          fail("a second top-level CBOR item");
          return;
        }
        root = std::move(item);
        return;
      }
      Open& top = stack.back();
      top.item.children.push_back(std::move(item));
      if (top.indefinite || --top.remaining > 0) return;
      item = std::move(top.item);
      stack.pop_back();
    }
  }

  /// Opens a container expecting `count` items (or until a break when `indefinite`).
  void open(Kind kind, std::uint64_t value, std::uint64_t count, bool indefinite) {
    if (!error.empty()) return;
    if (stack.size() >= limits.max_depth) {
      fail("CBOR nesting deeper than " + std::to_string(limits.max_depth));
      return;
    }
    // Each item takes at least one byte: a declared length beyond what remains is a lie.
    const std::size_t left = buffer.size() - position;
    if (!indefinite && count > left) {
      fail("CBOR " + std::string(kind_name(kind)) + " declares " + std::to_string(count) +
           " items but only " + std::to_string(left) + " bytes remain");
      return;
    }
    Item item;
    item.kind = kind;
    item.value = value;
    if (!indefinite && count == 0) {
      add(std::move(item));
      return;
    }
    stack.push_back(Open{std::move(item), count, indefinite});
  }

  void leaf(Kind kind, std::uint64_t value) {
    Item item;
    item.kind = kind;
    item.value = value;
    add(std::move(item));
  }
};

Builder& self(void* context) { return *static_cast<Builder*>(context); }

void on_uint8(void* c, std::uint8_t v) { self(c).leaf(Kind::kUint, v); }
void on_uint16(void* c, std::uint16_t v) { self(c).leaf(Kind::kUint, v); }
void on_uint32(void* c, std::uint32_t v) { self(c).leaf(Kind::kUint, v); }
void on_uint64(void* c, std::uint64_t v) { self(c).leaf(Kind::kUint, v); }
void on_negint8(void* c, std::uint8_t v) { self(c).leaf(Kind::kNegint, v); }
void on_negint16(void* c, std::uint16_t v) { self(c).leaf(Kind::kNegint, v); }
void on_negint32(void* c, std::uint32_t v) { self(c).leaf(Kind::kNegint, v); }
void on_negint64(void* c, std::uint64_t v) { self(c).leaf(Kind::kNegint, v); }

void on_string(Builder& b, Kind kind, cbor_data data, std::size_t length) {
  Item item;
  item.kind = kind;
  item.bytes = {reinterpret_cast<const std::byte*>(data), length};
  b.add(std::move(item));
}
void on_bytes(void* c, cbor_data data, std::size_t length) {
  on_string(self(c), Kind::kBytes, data, length);
}
void on_text(void* c, cbor_data data, std::size_t length) {
  on_string(self(c), Kind::kText, data, length);
}
void on_indefinite_string(void* c) { self(c).fail("indefinite-length CBOR string (unsupported)"); }

void on_array(void* c, std::size_t n) { self(c).open(Kind::kArray, 0, n, false); }
void on_indef_array(void* c) { self(c).open(Kind::kArray, 0, 0, true); }
void on_map(void* c, std::size_t n) {
  if (n > (std::size_t{1} << 62)) {
    self(c).fail("CBOR map declares " + std::to_string(n) + " entries");
    return;
  }
  self(c).open(Kind::kMap, 0, 2 * std::uint64_t{n}, false);
}
void on_indef_map(void* c) { self(c).open(Kind::kMap, 0, 0, true); }
void on_tag(void* c, std::uint64_t tag) { self(c).open(Kind::kTag, tag, 1, false); }

void on_break(void* c) {
  Builder& b = self(c);
  if (!b.error.empty()) return;
  if (b.stack.empty() || !b.stack.back().indefinite) {
    b.fail("unexpected CBOR break");
    return;
  }
  Open top = std::move(b.stack.back());
  b.stack.pop_back();
  if (top.item.kind == Kind::kMap && top.item.children.size() % 2 != 0) {
    b.fail("CBOR map with a key but no value");
    return;
  }
  b.add(std::move(top.item));
}

void on_float(Builder& b, double v) {
  Item item;
  item.kind = Kind::kFloat;
  item.number = v;
  b.add(std::move(item));
}
void on_float4(void* c, float v) { on_float(self(c), v); }
void on_float8(void* c, double v) { on_float(self(c), v); }
void on_bool(void* c, bool v) { self(c).leaf(Kind::kBool, v ? 1 : 0); }
void on_null(void* c) { self(c).leaf(Kind::kNull, 0); }
void on_undefined(void* c) { self(c).leaf(Kind::kUndefined, 0); }

cbor_callbacks make_callbacks() {
  cbor_callbacks cb = cbor_empty_callbacks;
  cb.uint8 = on_uint8;
  cb.uint16 = on_uint16;
  cb.uint32 = on_uint32;
  cb.uint64 = on_uint64;
  cb.negint8 = on_negint8;
  cb.negint16 = on_negint16;
  cb.negint32 = on_negint32;
  cb.negint64 = on_negint64;
  cb.byte_string = on_bytes;
  cb.byte_string_start = on_indefinite_string;
  cb.string = on_text;
  cb.string_start = on_indefinite_string;
  cb.array_start = on_array;
  cb.indef_array_start = on_indef_array;
  cb.map_start = on_map;
  cb.indef_map_start = on_indef_map;
  cb.tag = on_tag;
  cb.float2 = on_float4;
  cb.float4 = on_float4;
  cb.float8 = on_float8;
  cb.boolean = on_bool;
  cb.null = on_null;
  cb.undefined = on_undefined;
  cb.indef_break = on_break;
  return cb;
}

}  // namespace

Item parse(std::span<const std::byte> buffer, const ParseLimits& limits) {
  static const cbor_callbacks callbacks = make_callbacks();
  Builder b;
  b.buffer = buffer;
  b.limits = limits;
  const auto* data = reinterpret_cast<cbor_data>(buffer.data());
  while (!b.root) {
    if (b.position == buffer.size()) {
      throw Error(ErrorCategory::kInput,
                  buffer.empty()
                      ? "empty message (not CBOR)"
                      : "CBOR message truncated after " + std::to_string(buffer.size()) + " bytes");
    }
    const cbor_decoder_result r =
        cbor_stream_decode(data + b.position, buffer.size() - b.position, &callbacks, &b);
    if (!b.error.empty()) throw Error(ErrorCategory::kInput, b.error);
    if (r.status == CBOR_DECODER_NEDATA) {
      throw Error(ErrorCategory::kInput, "CBOR message truncated: the item at byte " +
                                             std::to_string(b.position) + " needs more than the " +
                                             std::to_string(buffer.size() - b.position) +
                                             " bytes that remain");
    }
    if (r.status != CBOR_DECODER_FINISHED || r.read == 0) {
      throw Error(ErrorCategory::kInput, "not valid CBOR at byte " + std::to_string(b.position));
    }
    b.position += r.read;
  }
  if (b.position != buffer.size()) {
    throw Error(ErrorCategory::kInput, std::to_string(buffer.size() - b.position) +
                                           " trailing bytes after the CBOR item (" +
                                           std::to_string(b.position) + " bytes)");
  }
  return std::move(*b.root);
}

}  // namespace azflow::source::cbor
