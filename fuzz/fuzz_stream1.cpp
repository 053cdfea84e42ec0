// libFuzzer target: the stream v1 parser (stages/source/stream1.hpp) on arbitrary multipart
// messages, and the decoding of every image it accepts. The input is a sequence of parts, each
// a 2-byte little-endian length then that many bytes (the last part takes what is left when the
// length overruns), at most 16 parts. Arrays are capped at 2^16 pixels so that a small input
// cannot declare a large decoded size.

#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "base/error.hpp"
#include "stages/source/stream1.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace s2 = azflow::source::stream2;
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  std::vector<std::span<const std::byte>> parts;
  std::size_t at = 0;
  while (at + 2 <= size && parts.size() < 16) {
    const std::size_t len = data[at] | (std::size_t{data[at + 1]} << 8);
    at += 2;
    const std::size_t n = len <= size - at ? len : size - at;
    parts.emplace_back(bytes + at, n);
    at += n;
  }
  s2::Limits limits;
  limits.max_pixels = 1u << 16;
  try {
    const s2::Message m = azflow::source::stream1::parse_message(parts, limits);
    if (const auto* img = std::get_if<s2::Image>(&m.body)) {
      for (const s2::Channel& c : img->data) {
        std::vector<std::byte> out(c.array.decoded_bytes());
        s2::decode(c.array, out);
      }
    }
  } catch (const azflow::Error&) {
  }
  return 0;
}
