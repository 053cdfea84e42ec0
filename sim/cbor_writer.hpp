#pragma once
// Appends CBOR (RFC 8949) data item headers and values to a byte buffer with libcbor's encoding
// functions (cbor/encoding.h). Strings and byte strings may be written as a header only, so that
// large payloads (a detector chunk) are placed by the caller without an intermediate copy.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace azflow::sim {

/// A growing buffer of CBOR. Every call appends one data item (or one header).
class CborWriter {
 public:
  void uint(std::uint64_t v);
  void float64(double v);
  void boolean(bool v);
  void text(std::string_view s);
  /// Header of a definite byte string of `length` bytes; the caller appends the bytes.
  void bytes_header(std::size_t length);
  /// A whole byte string (header and bytes).
  void bytes(std::span<const std::byte> b);
  /// Header of a definite array of `n` items / map of `n` key-value pairs.
  void array(std::size_t n);
  void map(std::size_t n);
  void tag(std::uint64_t tag);
  /// Appends raw bytes (the body of a byte string whose header was written).
  void raw(std::span<const std::byte> b);

  [[nodiscard]] const std::vector<std::byte>& buffer() const noexcept { return buf_; }
  [[nodiscard]] std::vector<std::byte> take() noexcept { return std::move(buf_); }

 private:
  /// Runs a libcbor encoder `fn(buffer, size)` on free space at the end of the buffer.
  template <typename Fn>
  void put(Fn&& fn);
  std::vector<std::byte> buf_;
};

}  // namespace azflow::sim
