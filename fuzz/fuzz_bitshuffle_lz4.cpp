// libFuzzer target: decode_bitshuffle_lz4 on arbitrary bytes, every SIMD level.
// Input: byte 0 picks the element size (1, 2, 4 or 3) and the SIMD level; the rest is the chunk.
// The output size is the header's declared size (capped at 1 MiB), or that size +- 1 element
// when byte 0 says so, so both consistent and lying headers are explored.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/error.hpp"
#include "stages/decompress/bitshuffle_lz4.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace azflow::decompress;
  if (size < 1) return 0;
  static constexpr std::size_t kElem[] = {1, 2, 4, 3};
  const std::size_t elem = kElem[data[0] & 3];
  const SimdLevel level = static_cast<SimdLevel>((data[0] >> 2) % 3);
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  try {
    std::size_t out_size = bitshuffle_lz4_decoded_size(in);
    if (out_size > (1U << 20)) return 0;
    if ((data[0] & 0x40) != 0) out_size += elem;
    if ((data[0] & 0x80) != 0 && out_size >= elem) out_size -= elem;
    std::vector<std::byte> out(out_size);
    decode_bitshuffle_lz4(in, out, elem, level);
  } catch (const azflow::Error&) {
  }
  return 0;
}
