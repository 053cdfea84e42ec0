// Bit-unshuffle kernels against a bit-by-bit encoder written from bitshuffle's definition.

#include "stages/decompress/bitunshuffle.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "base/error.hpp"

namespace azflow::decompress {
namespace {

// Forward bitshuffle of one block, straight from the definition: row 8b+k, byte e/8, bit e%8
// holds bit k of byte b of element e.
std::vector<std::byte> shuffle_reference(const std::vector<std::byte>& in, std::size_t es) {
  const std::size_t n = in.size() / es;
  const std::size_t row = n / 8;
  std::vector<std::byte> out(in.size(), std::byte{0});
  for (std::size_t e = 0; e < n; ++e) {
    for (std::size_t b = 0; b < es; ++b) {
      const auto byte = std::to_integer<unsigned>(in[e * es + b]);
      for (std::size_t k = 0; k < 8; ++k) {
        if ((byte >> k) & 1U) {
          out[(8 * b + k) * row + e / 8] |= static_cast<std::byte>(1U << (e % 8));
        }
      }
    }
  }
  return out;
}

std::vector<std::byte> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(rng() & 0xFF);
  return v;
}

TEST(Bitunshuffle, EveryLevelUndoesTheReferenceShuffle) {
  for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kSse2, SimdLevel::kAvx2}) {
    if (!simd_level_supported(level)) continue;
    for (std::size_t es : {1, 2, 3, 4, 8}) {
      // Element counts covering: one column, vector-width multiples, and scalar tails.
      for (std::size_t n : {8, 16, 120, 128, 136, 256, 264, 512, 1000, 2048, 8192}) {
        const auto original = random_bytes(n * es, static_cast<unsigned>(n * 31 + es));
        const auto shuffled = shuffle_reference(original, es);
        std::vector<std::byte> out(original.size());
        bitunshuffle_block(shuffled, out, es, level);
        ASSERT_EQ(out, original) << simd_level_name(level) << " es=" << es << " n=" << n;
      }
    }
  }
}

TEST(Bitunshuffle, WholeBufferWithPartialBlockAndRawTail) {
  const std::size_t es = 4, block = 64, n = 3 * 64 + 40 + 5;  // 3 blocks, 40-element block, tail 5
  const auto original = random_bytes(n * es, 7);
  std::vector<std::byte> shuffled(original.size());
  std::size_t pos = 0;
  for (std::size_t len : {block, block, block, std::size_t{40}}) {
    std::vector<std::byte> part(original.begin() + static_cast<std::ptrdiff_t>(pos * es),
                                original.begin() + static_cast<std::ptrdiff_t>((pos + len) * es));
    const auto s = shuffle_reference(part, es);
    std::copy(s.begin(), s.end(), shuffled.begin() + static_cast<std::ptrdiff_t>(pos * es));
    pos += len;
  }
  std::copy(original.begin() + static_cast<std::ptrdiff_t>(pos * es), original.end(),
            shuffled.begin() + static_cast<std::ptrdiff_t>(pos * es));
  std::vector<std::byte> out(original.size());
  bitunshuffle(shuffled, out, es, block);
  EXPECT_EQ(out, original);
}

TEST(Bitunshuffle, DefaultBlockSizeMatchesBitshuffle) {
  EXPECT_EQ(default_block_elements(1), 8192u);
  EXPECT_EQ(default_block_elements(2), 4096u);
  EXPECT_EQ(default_block_elements(4), 2048u);
  EXPECT_EQ(default_block_elements(3), 2728u);    // 2730 rounded down to a multiple of 8
  EXPECT_EQ(default_block_elements(1024), 128u);  // never below 128
}

TEST(Bitunshuffle, RejectsSizesThatAreNotWholeColumns) {
  std::vector<std::byte> in(12), out(12);
  EXPECT_THROW(bitunshuffle_block(in, out, 1), Error);
  std::vector<std::byte> out2(16), in2(8);
  EXPECT_THROW(bitunshuffle_block(in2, out2, 1), Error);
  EXPECT_THROW(bitunshuffle(in2, out2, 1, 0), Error);
  EXPECT_THROW(bitunshuffle(in, out, 1, 12), Error);  // block not a multiple of 8
}

}  // namespace
}  // namespace azflow::decompress
