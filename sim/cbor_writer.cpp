#include "sim/cbor_writer.hpp"

#include <cbor.h>

#include <cstring>
#include <utility>

#include "base/error.hpp"

namespace azflow::sim {

template <typename Fn>
void CborWriter::put(Fn&& fn) {
  constexpr std::size_t kMaxHeader = 9;  // the longest CBOR head: 1 + 8 bytes
  const std::size_t at = buf_.size();
  buf_.resize(at + kMaxHeader);
  const std::size_t n = fn(reinterpret_cast<unsigned char*>(buf_.data() + at), kMaxHeader);
  if (n == 0) throw Error(ErrorCategory::kInternal, "CborWriter: libcbor encoder wrote nothing");
  buf_.resize(at + n);
}

void CborWriter::uint(std::uint64_t v) {
  put([&](unsigned char* p, std::size_t s) { return cbor_encode_uint(v, p, s); });
}
void CborWriter::float64(double v) {
  put([&](unsigned char* p, std::size_t s) { return cbor_encode_double(v, p, s); });
}
void CborWriter::boolean(bool v) {
  put([&](unsigned char* p, std::size_t s) { return cbor_encode_bool(v, p, s); });
}
void CborWriter::text(std::string_view t) {
  put([&](unsigned char* p, std::size_t s) { return cbor_encode_string_start(t.size(), p, s); });
  raw(std::as_bytes(std::span(t.data(), t.size())));
}
void CborWriter::bytes_header(std::size_t length) {
  put([&](unsigned char* p, std::size_t s) { return cbor_encode_bytestring_start(length, p, s); });
}
void CborWriter::bytes(std::span<const std::byte> b) {
  bytes_header(b.size());
  raw(b);
}
void CborWriter::array(std::size_t n) {
  put([&](unsigned char* p, std::size_t s) { return cbor_encode_array_start(n, p, s); });
}
void CborWriter::map(std::size_t n) {
  put([&](unsigned char* p, std::size_t s) { return cbor_encode_map_start(n, p, s); });
}
void CborWriter::tag(std::uint64_t t) {
  put([&](unsigned char* p, std::size_t s) { return cbor_encode_tag(t, p, s); });
}
void CborWriter::raw(std::span<const std::byte> b) { buf_.insert(buf_.end(), b.begin(), b.end()); }

}  // namespace azflow::sim
