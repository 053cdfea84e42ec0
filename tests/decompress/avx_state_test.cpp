// The AVX2 kernels must leave the upper halves of the YMM registers clean (vzeroupper): a dirty
// upper state makes every later SSE instruction of the process slow (found as a 3.3x slowdown of
// the CPU integrator after one decoded frame). Checked through XINUSE (XGETBV with ECX = 1).

#include <cpuid.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "stages/decompress/bitunshuffle.hpp"

namespace azflow::decompress {
namespace {

// Whether the CPU reports which state components are in use (CPUID.(0DH,1):EAX[2]) and the OS
// enabled XSAVE (CPUID.1:ECX[27]).
bool xinuse_supported() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;
  if (!__get_cpuid_count(0xD, 1, &a, &b, &c, &d)) return false;
  return (a & (1u << 2)) != 0;
}

// Bit 2 of XINUSE: the AVX state (upper YMM halves) is not in its initial, clean state.
bool avx_upper_in_use() {
  std::uint32_t eax = 0, edx = 0;
  asm volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(1));
  return (eax & (1u << 2)) != 0;
}

TEST(AvxState, KernelsLeaveTheUpperHalvesClean) {
  if (!xinuse_supported()) GTEST_SKIP() << "CPU cannot report XINUSE (XGETBV ECX=1)";
  for (SimdLevel level : {SimdLevel::kAvx2, SimdLevel::kAvx2Gfni}) {
    if (!simd_level_supported(level)) continue;
    for (std::size_t es : {1u, 2u, 4u}) {
      for (StoreMode mode : {StoreMode::kCached, StoreMode::kStreaming}) {
        const std::size_t bytes = 8192 * es;
        alignas(64) static std::byte in[8192 * 4], out[8192 * 4];
        bitunshuffle_block(std::span(in, bytes), std::span(out, bytes), es, level, mode);
        EXPECT_FALSE(avx_upper_in_use()) << "level " << static_cast<int>(level) << ", element size "
                                         << es << ", mode " << static_cast<int>(mode);
      }
    }
  }
}

}  // namespace
}  // namespace azflow::decompress
