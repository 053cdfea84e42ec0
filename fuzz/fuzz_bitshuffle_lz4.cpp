// libFuzzer target: decode_bitshuffle_lz4 on arbitrary bytes, every SIMD level.
// Input: byte 0 picks the element size (bits 0-1: 1, 2, 4 or 3) and the SIMD level (bits 2-5,
// modulo the number of levels this CPU supports, so every supported level is reached, kAvx2Gfni
// included); the rest is the chunk.
// The output size is the header's declared size (capped at 1 MiB), or that size +- 1 element
// when byte 0 says so, so both consistent and lying headers are explored.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/error.hpp"
#include "stages/decompress/bitshuffle_lz4.hpp"

namespace {

// Every SIMD level this CPU can run, scalar first, up to and including the best one.
const std::vector<azflow::decompress::SimdLevel>& supported_levels() {
  using azflow::decompress::SimdLevel;
  static const std::vector<SimdLevel> levels = [] {
    std::vector<SimdLevel> out;
    for (auto l = static_cast<unsigned>(SimdLevel::kScalar);
         l <= static_cast<unsigned>(azflow::decompress::best_simd_level()); ++l) {
      if (azflow::decompress::simd_level_supported(static_cast<SimdLevel>(l))) {
        out.push_back(static_cast<SimdLevel>(l));
      }
    }
    return out;
  }();
  return levels;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace azflow::decompress;
  if (size < 1) return 0;
  static constexpr std::size_t kElem[] = {1, 2, 4, 3};
  const std::size_t elem = kElem[data[0] & 3];
  const auto& levels = supported_levels();
  const SimdLevel level = levels[((data[0] >> 2) & 0xF) % levels.size()];
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
