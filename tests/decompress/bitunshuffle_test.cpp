// Bit-unshuffle kernels against a bit-by-bit encoder written from bitshuffle's definition.

#include "stages/decompress/bitunshuffle.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
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

constexpr SimdLevel kLevels[] = {SimdLevel::kScalar, SimdLevel::kSse2, SimdLevel::kAvx2,
                                 SimdLevel::kAvx2Gfni};

TEST(Bitunshuffle, EveryLevelUndoesTheReferenceShuffle) {
  for (SimdLevel level : kLevels) {
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

// Streaming (non-temporal) stores take 32- or 16-byte aligned outputs and fall back to ordinary
// stores otherwise; every alignment must give the same bytes and write nothing outside `out`.
TEST(Bitunshuffle, StreamingStoresAtEveryAlignment) {
  for (SimdLevel level : kLevels) {
    if (!simd_level_supported(level)) continue;
    for (std::size_t es : {1, 2, 3, 4}) {
      for (std::size_t n : {8, 256, 264, 2048, 2056}) {
        const auto original = random_bytes(n * es, static_cast<unsigned>(n * 7 + es));
        const auto shuffled = shuffle_reference(original, es);
        for (std::size_t offset : {0, 1, 8, 16, 32, 48}) {
          std::vector<std::byte> buffer(original.size() + 128, std::byte{0xA5});
          const auto base = reinterpret_cast<std::uintptr_t>(buffer.data());
          const std::size_t start = (64 - base % 64) % 64 + offset;  // 64-aligned + offset
          const std::span<std::byte> out(buffer.data() + start, original.size());
          {
            const BlockUnshuffler unshuffle(es, level, StoreMode::kStreaming);
            unshuffle(shuffled, out);
          }
          const std::string what = std::string(simd_level_name(level)) +
                                   " es=" + std::to_string(es) + " n=" + std::to_string(n) +
                                   " offset=" + std::to_string(offset);
          ASSERT_TRUE(std::equal(out.begin(), out.end(), original.begin())) << what;
          for (std::size_t i = 0; i < buffer.size(); ++i) {
            if (i < start || i >= start + out.size()) {
              ASSERT_EQ(buffer[i], std::byte{0xA5}) << what << " wrote outside at " << i;
            }
          }
        }
      }
    }
  }
}

TEST(Bitunshuffle, OneUnshufflerForManyBlocks) {
  const std::size_t es = 4, n = 2048;
  for (SimdLevel level : kLevels) {
    if (!simd_level_supported(level)) continue;
    for (StoreMode mode : {StoreMode::kCached, StoreMode::kStreaming}) {
      const BlockUnshuffler unshuffle(es, level, mode);
      for (unsigned seed = 0; seed < 4; ++seed) {
        const auto original = random_bytes(n * es, seed);
        std::vector<std::byte> out(original.size());
        unshuffle(shuffle_reference(original, es), out);
        ASSERT_EQ(out, original) << simd_level_name(level) << " seed " << seed;
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
  EXPECT_THROW(BlockUnshuffler(0), Error);
  const BlockUnshuffler unshuffle(1);
  EXPECT_THROW(unshuffle(in2, out2), Error);
}

}  // namespace
}  // namespace azflow::decompress
