// libFuzzer target: the Stream V2 parser (stages/source/stream2.hpp) on arbitrary bytes, and the
// decoding of every image channel and pixel mask it accepts. Arrays are capped at 2^16 pixels so
// that a small input cannot declare a large decoded size.

#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

#include "base/error.hpp"
#include "stages/source/stream2.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace s2 = azflow::source::stream2;
  s2::Limits limits;
  limits.max_pixels = 1u << 16;
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  try {
    const s2::Message m = s2::parse_message(in, limits);
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
