// Bit-unshuffle kernels.
//
// Algorithm: for column m (byte m of every row) and byte plane b, the 8 bytes taken from rows
// 8b..8b+7 form an 8x8 bit matrix whose row k is bit k of byte b of elements 8m..8m+7. Gathering
// them into a 64-bit word (byte k = row 8b+k) and transposing its bits (three delta swaps,
// Hacker's Delight 7-3) gives byte j = byte b of element 8m+j. The vector kernels gather 16
// (SSE2) or 32 (AVX2) columns at once with byte/word/dword unpacks, run the same delta swaps on
// 64-bit lanes, then interleave the byte planes of each element with unpacks before storing.
//
// AVX2 details. Each 32-column strip is done in two halves (the low and the high byte unpacks),
// so that for 4-byte elements the 4 planes x 4 vectors stay in registers instead of 32 vectors
// spilling to the stack; element size and store mode are template parameters, so each kernel is
// straight-line code. kAvx2Gfni replaces the 18-instruction delta-swap transpose by one
// GF2P8AFFINEQB on a word gathered with its rows in reverse order (see transpose_gfni); that
// took the kernel from ~14 to ~50 GB/s in L1 on Zen 4, leaving the frame writes as the cost.
// Streaming variants write with non-temporal stores (MOVNTDQ, 32 or 16 bytes by alignment): a
// 17.9 MB frame does not stay in cache, and skipping the read-for-ownership of each line saves
// memory traffic; the caller fences once per frame (BlockUnshuffler's destructor).

#include "stages/decompress/bitunshuffle.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "base/error.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define AZFLOW_X86 1
#endif

namespace azflow::decompress {
namespace {

constexpr std::uint64_t transpose8x8(std::uint64_t x) noexcept {
  std::uint64_t t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
  x = x ^ t ^ (t << 7);
  t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
  x = x ^ t ^ (t << 14);
  t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
  return x ^ t ^ (t << 28);
}

// Columns [m_begin, m_end) of a block with rows of `row` bytes.
void columns_scalar(const std::uint8_t* in, std::uint8_t* out, std::size_t row, std::size_t es,
                    std::size_t m_begin, std::size_t m_end) noexcept {
  for (std::size_t m = m_begin; m < m_end; ++m) {
    std::uint8_t* dst = out + 8 * m * es;
    for (std::size_t b = 0; b < es; ++b) {
      const std::uint8_t* src = in + 8 * b * row + m;
      std::uint64_t x = 0;
      for (unsigned k = 0; k < 8; ++k) x |= std::uint64_t{src[k * row]} << (8 * k);
      x = transpose8x8(x);
      for (std::size_t j = 0; j < 8; ++j) dst[j * es + b] = static_cast<std::uint8_t>(x >> (8 * j));
    }
  }
}

using Kernel = BlockUnshuffler::Kernel;

// The kernels of one element size and level: ordinary stores, and streaming stores for outputs
// aligned to 32 or 16 bytes.
struct Kernels {
  Kernel cached, stream32, stream16;
};

void block_scalar(const std::uint8_t* in, std::uint8_t* out, std::size_t row, std::size_t es) {
  columns_scalar(in, out, row, es, 0, row);
}

#ifdef AZFLOW_X86

__attribute__((target("sse2"))) inline __m128i load_sse2(const std::uint8_t* p) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

__attribute__((target("sse2"))) inline void store_sse2(std::uint8_t* p, __m128i v) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), v);
}

__attribute__((target("sse2"))) inline __m128i transpose_sse2(__m128i x) {
  __m128i t =
      _mm_and_si128(_mm_xor_si128(x, _mm_srli_epi64(x, 7)), _mm_set1_epi64x(0x00AA00AA00AA00AALL));
  x = _mm_xor_si128(x, _mm_xor_si128(t, _mm_slli_epi64(t, 7)));
  t = _mm_and_si128(_mm_xor_si128(x, _mm_srli_epi64(x, 14)), _mm_set1_epi64x(0x0000CCCC0000CCCCLL));
  x = _mm_xor_si128(x, _mm_xor_si128(t, _mm_slli_epi64(t, 14)));
  t = _mm_and_si128(_mm_xor_si128(x, _mm_srli_epi64(x, 28)), _mm_set1_epi64x(0x00000000F0F0F0F0LL));
  return _mm_xor_si128(x, _mm_xor_si128(t, _mm_slli_epi64(t, 28)));
}

// Byte plane b of 16 columns from m0: t[i] holds the transposed words of columns m0+2i, m0+2i+1.
__attribute__((target("sse2"))) inline void plane_sse2(const std::uint8_t* src, std::size_t row,
                                                       __m128i* t) {
  const auto load = [src, row](std::size_t k) { return src + k * row; };
  const __m128i v0 = load_sse2(load(0)), v1 = load_sse2(load(1)), v2 = load_sse2(load(2)),
                v3 = load_sse2(load(3));
  const __m128i v4 = load_sse2(load(4)), v5 = load_sse2(load(5));
  const __m128i v6 = load_sse2(load(6)), v7 = load_sse2(load(7));
  const __m128i a01l = _mm_unpacklo_epi8(v0, v1), a01h = _mm_unpackhi_epi8(v0, v1);
  const __m128i a23l = _mm_unpacklo_epi8(v2, v3), a23h = _mm_unpackhi_epi8(v2, v3);
  const __m128i a45l = _mm_unpacklo_epi8(v4, v5), a45h = _mm_unpackhi_epi8(v4, v5);
  const __m128i a67l = _mm_unpacklo_epi8(v6, v7), a67h = _mm_unpackhi_epi8(v6, v7);
  const __m128i b0 = _mm_unpacklo_epi16(a01l, a23l), b1 = _mm_unpackhi_epi16(a01l, a23l);
  const __m128i b2 = _mm_unpacklo_epi16(a01h, a23h), b3 = _mm_unpackhi_epi16(a01h, a23h);
  const __m128i d0 = _mm_unpacklo_epi16(a45l, a67l), d1 = _mm_unpackhi_epi16(a45l, a67l);
  const __m128i d2 = _mm_unpacklo_epi16(a45h, a67h), d3 = _mm_unpackhi_epi16(a45h, a67h);
  t[0] = transpose_sse2(_mm_unpacklo_epi32(b0, d0));
  t[1] = transpose_sse2(_mm_unpackhi_epi32(b0, d0));
  t[2] = transpose_sse2(_mm_unpacklo_epi32(b1, d1));
  t[3] = transpose_sse2(_mm_unpackhi_epi32(b1, d1));
  t[4] = transpose_sse2(_mm_unpacklo_epi32(b2, d2));
  t[5] = transpose_sse2(_mm_unpackhi_epi32(b2, d2));
  t[6] = transpose_sse2(_mm_unpacklo_epi32(b3, d3));
  t[7] = transpose_sse2(_mm_unpackhi_epi32(b3, d3));
}

__attribute__((target("sse2"))) void block_sse2(const std::uint8_t* in, std::uint8_t* out,
                                                std::size_t row, std::size_t es) {
  const std::size_t strips = row / 16;
  __m128i t[4][8];
  for (std::size_t s = 0; s < strips; ++s) {
    const std::size_t m0 = s * 16;
    for (std::size_t b = 0; b < es; ++b) plane_sse2(in + 8 * b * row + m0, row, t[b]);
    // Where the 16 bytes `part` of column m0 + c go.
    const auto at = [out, m0, es](std::size_t c, std::size_t part) {
      return out + (m0 + c) * 8 * es + part * 16;
    };
    for (std::size_t i = 0; i < 8; ++i) {
      if (es == 1) {
        store_sse2(at(2 * i, 0), t[0][i]);
      } else if (es == 2) {
        store_sse2(at(2 * i, 0), _mm_unpacklo_epi8(t[0][i], t[1][i]));
        store_sse2(at(2 * i + 1, 0), _mm_unpackhi_epi8(t[0][i], t[1][i]));
      } else {
        const __m128i p01l = _mm_unpacklo_epi8(t[0][i], t[1][i]);
        const __m128i p23l = _mm_unpacklo_epi8(t[2][i], t[3][i]);
        const __m128i p01h = _mm_unpackhi_epi8(t[0][i], t[1][i]);
        const __m128i p23h = _mm_unpackhi_epi8(t[2][i], t[3][i]);
        store_sse2(at(2 * i, 0), _mm_unpacklo_epi16(p01l, p23l));
        store_sse2(at(2 * i, 1), _mm_unpackhi_epi16(p01l, p23l));
        store_sse2(at(2 * i + 1, 0), _mm_unpacklo_epi16(p01h, p23h));
        store_sse2(at(2 * i + 1, 1), _mm_unpackhi_epi16(p01h, p23h));
      }
    }
  }
  columns_scalar(in, out, row, es, strips * 16, row);
}

__attribute__((target("avx2"), always_inline)) inline __m256i load_avx2(const std::uint8_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// How the AVX2 kernels write the frame: ordinary stores, or non-temporal stores that bypass the
// caches (32 bytes at a time where the output is 32-byte aligned, else 16).
enum class Store : std::uint8_t { kCached, kStream32, kStream16 };

template <Store kStore>
__attribute__((target("avx2"), always_inline)) inline void store_avx2(std::uint8_t* p, __m256i v) {
  if constexpr (kStore == Store::kCached) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v);
  } else {
    _mm256_stream_si256(reinterpret_cast<__m256i*>(p), v);
  }
}

// Stores the low lanes of x, y (32 bytes) at `lo` and their high lanes at `hi`.
template <Store kStore>
__attribute__((target("avx2"), always_inline)) inline void store_lanes_avx2(std::uint8_t* lo,
                                                                            std::uint8_t* hi,
                                                                            __m256i x, __m256i y) {
  if constexpr (kStore == Store::kStream16) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(lo), _mm256_castsi256_si128(x));
    _mm_stream_si128(reinterpret_cast<__m128i*>(lo + 16), _mm256_castsi256_si128(y));
    _mm_stream_si128(reinterpret_cast<__m128i*>(hi), _mm256_extracti128_si256(x, 1));
    _mm_stream_si128(reinterpret_cast<__m128i*>(hi + 16), _mm256_extracti128_si256(y, 1));
  } else {
    store_avx2<kStore>(lo, _mm256_permute2x128_si256(x, y, 0x20));
    store_avx2<kStore>(hi, _mm256_permute2x128_si256(x, y, 0x31));
  }
}

__attribute__((target("avx2"), always_inline)) inline __m256i transpose_avx2(__m256i x) {
  __m256i t = _mm256_and_si256(_mm256_xor_si256(x, _mm256_srli_epi64(x, 7)),
                               _mm256_set1_epi64x(0x00AA00AA00AA00AALL));
  x = _mm256_xor_si256(x, _mm256_xor_si256(t, _mm256_slli_epi64(t, 7)));
  t = _mm256_and_si256(_mm256_xor_si256(x, _mm256_srli_epi64(x, 14)),
                       _mm256_set1_epi64x(0x0000CCCC0000CCCCLL));
  x = _mm256_xor_si256(x, _mm256_xor_si256(t, _mm256_slli_epi64(t, 14)));
  t = _mm256_and_si256(_mm256_xor_si256(x, _mm256_srli_epi64(x, 28)),
                       _mm256_set1_epi64x(0x00000000F0F0F0F0LL));
  return _mm256_xor_si256(x, _mm256_xor_si256(t, _mm256_slli_epi64(t, 28)));
}

// GFNI: gf2p8affineqb(x, A) sets bit k of byte i of each 64-bit lane to parity(A.byte[7-k] &
// x.byte[i]) (Intel SDM, GF2P8AFFINEQB). With x.byte[i] = 1 << i that is bit i of A.byte[7-k]:
// the bit transpose of A with its byte order reversed, which gather_half_avx2<..., true> gives.
__attribute__((target("avx2,gfni"), always_inline)) inline __m256i transpose_gfni(
    __m256i reversed) {
  return _mm256_gf2p8affine_epi64_epi8(_mm256_set1_epi64x(0x8040201008040201LL), reversed, 0);
}

// Half of byte plane b of 32 columns from m0, not yet bit-transposed: g[j] holds the gathered
// 64-bit words (byte k = row 8b+k, or row 8b+7-k if kReversed) of columns m0+2i, m0+2i+1 in its
// low lane and m0+16+2i, m0+17+2i in its high lane, for i = 4 * kHigh + j. Unpacks work per
// 128-bit lane; splitting the plane in halves keeps 4 planes' worth of vectors in registers.
template <bool kHigh, bool kReversed>
__attribute__((target("avx2"), always_inline)) inline void gather_half_avx2(const std::uint8_t* src,
                                                                            std::size_t row,
                                                                            __m256i* g) {
  __m256i v[8];
#pragma GCC unroll 8
  for (std::size_t k = 0; k < 8; ++k) v[k] = load_avx2(src + (kReversed ? 7 - k : k) * row);
  __m256i a[4];
#pragma GCC unroll 4
  for (std::size_t k = 0; k < 4; ++k) {
    a[k] = kHigh ? _mm256_unpackhi_epi8(v[2 * k], v[2 * k + 1])
                 : _mm256_unpacklo_epi8(v[2 * k], v[2 * k + 1]);
  }
  const __m256i b0 = _mm256_unpacklo_epi16(a[0], a[1]), b1 = _mm256_unpackhi_epi16(a[0], a[1]);
  const __m256i d0 = _mm256_unpacklo_epi16(a[2], a[3]), d1 = _mm256_unpackhi_epi16(a[2], a[3]);
  g[0] = _mm256_unpacklo_epi32(b0, d0);
  g[1] = _mm256_unpackhi_epi32(b0, d0);
  g[2] = _mm256_unpacklo_epi32(b1, d1);
  g[3] = _mm256_unpackhi_epi32(b1, d1);
}

// Interleaves the byte planes t[b][j] (bit-transposed: byte j = byte b of an element) of column
// pairs i = 4 * kHigh + j into kEs-byte elements and stores them.
template <std::size_t kEs, Store kStore, bool kHigh>
__attribute__((target("avx2"), always_inline)) inline void store_half_avx2(
    std::uint8_t* out, std::size_t m0, const __m256i (&t)[kEs][4]) {
  // Column m0 + c (low lanes) and column m0 + 16 + c (high lanes).
  std::uint8_t* const lo = out + m0 * 8 * kEs;
  std::uint8_t* const hi = out + (m0 + 16) * 8 * kEs;
  constexpr std::size_t kC0 = kHigh ? 8 : 0;  // first column of this half
#pragma GCC unroll 4
  for (std::size_t j = 0; j < 4; ++j) {
    const std::size_t c = (kC0 + 2 * j) * 8 * kEs;
    if constexpr (kEs == 1) {
      if (j % 2 == 0) store_lanes_avx2<kStore>(lo + c, hi + c, t[0][j], t[0][j + 1]);
    } else if constexpr (kEs == 2) {
      store_lanes_avx2<kStore>(lo + c, hi + c, _mm256_unpacklo_epi8(t[0][j], t[1][j]),
                               _mm256_unpackhi_epi8(t[0][j], t[1][j]));
    } else {
      const __m256i p01l = _mm256_unpacklo_epi8(t[0][j], t[1][j]);
      const __m256i p23l = _mm256_unpacklo_epi8(t[2][j], t[3][j]);
      const __m256i p01h = _mm256_unpackhi_epi8(t[0][j], t[1][j]);
      const __m256i p23h = _mm256_unpackhi_epi8(t[2][j], t[3][j]);
      store_lanes_avx2<kStore>(lo + c, hi + c, _mm256_unpacklo_epi16(p01l, p23l),
                               _mm256_unpackhi_epi16(p01l, p23l));
      store_lanes_avx2<kStore>(lo + c + 32, hi + c + 32, _mm256_unpacklo_epi16(p01h, p23h),
                               _mm256_unpackhi_epi16(p01h, p23h));
    }
  }
}

template <std::size_t kEs, Store kStore>
__attribute__((target("avx2"))) void block_avx2(const std::uint8_t* in, std::uint8_t* out,
                                                std::size_t row, std::size_t /*es*/) {
  const std::size_t strips = row / 32;
  for (std::size_t m0 = 0; m0 < strips * 32; m0 += 32) {
    __m256i t[kEs][4];
#pragma GCC unroll 4
    for (std::size_t b = 0; b < kEs; ++b) {
      gather_half_avx2<false, false>(in + 8 * b * row + m0, row, t[b]);
#pragma GCC unroll 4
      for (auto& v : t[b]) v = transpose_avx2(v);
    }
    store_half_avx2<kEs, kStore, false>(out, m0, t);
#pragma GCC unroll 4
    for (std::size_t b = 0; b < kEs; ++b) {
      gather_half_avx2<true, false>(in + 8 * b * row + m0, row, t[b]);
#pragma GCC unroll 4
      for (auto& v : t[b]) v = transpose_avx2(v);
    }
    store_half_avx2<kEs, kStore, true>(out, m0, t);
  }
  // GCC emits no vzeroupper for functions made AVX only by a target attribute; left dirty, the
  // upper YMM halves slow every later SSE instruction of the process (measured: the CPU
  // integrator's float64 bbox loop ran 3.3x slower after one decoded frame).
  _mm256_zeroupper();
  columns_scalar(in, out, row, kEs, strips * 32, row);
}

template <std::size_t kEs, Store kStore>
__attribute__((target("avx2,gfni"))) void block_gfni(const std::uint8_t* in, std::uint8_t* out,
                                                     std::size_t row, std::size_t /*es*/) {
  const std::size_t strips = row / 32;
  for (std::size_t m0 = 0; m0 < strips * 32; m0 += 32) {
    __m256i t[kEs][4];
#pragma GCC unroll 4
    for (std::size_t b = 0; b < kEs; ++b) {
      gather_half_avx2<false, true>(in + 8 * b * row + m0, row, t[b]);
#pragma GCC unroll 4
      for (auto& v : t[b]) v = transpose_gfni(v);
    }
    store_half_avx2<kEs, kStore, false>(out, m0, t);
#pragma GCC unroll 4
    for (std::size_t b = 0; b < kEs; ++b) {
      gather_half_avx2<true, true>(in + 8 * b * row + m0, row, t[b]);
#pragma GCC unroll 4
      for (auto& v : t[b]) v = transpose_gfni(v);
    }
    store_half_avx2<kEs, kStore, true>(out, m0, t);
  }
  // GCC emits no vzeroupper for functions made AVX only by a target attribute; left dirty, the
  // upper YMM halves slow every later SSE instruction of the process (measured: the CPU
  // integrator's float64 bbox loop ran 3.3x slower after one decoded frame).
  _mm256_zeroupper();
  columns_scalar(in, out, row, kEs, strips * 32, row);
}

template <std::size_t kEs>
Kernels avx2_kernels(SimdLevel level) {
  if (level == SimdLevel::kAvx2Gfni) {
    return {block_gfni<kEs, Store::kCached>, block_gfni<kEs, Store::kStream32>,
            block_gfni<kEs, Store::kStream16>};
  }
  return {block_avx2<kEs, Store::kCached>, block_avx2<kEs, Store::kStream32>,
          block_avx2<kEs, Store::kStream16>};
}

Kernels select_kernels(std::size_t es, SimdLevel level) noexcept {
  if (level == SimdLevel::kAvx2 || level == SimdLevel::kAvx2Gfni) {
    if (es == 1) return avx2_kernels<1>(level);
    if (es == 2) return avx2_kernels<2>(level);
    if (es == 4) return avx2_kernels<4>(level);
  }
  if (level == SimdLevel::kSse2 && (es == 1 || es == 2 || es == 4)) {
    return {block_sse2, block_sse2, block_sse2};
  }
  return {block_scalar, block_scalar, block_scalar};
}

void store_fence() noexcept { _mm_sfence(); }

SimdLevel detect() noexcept {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("gfni")) {
    return SimdLevel::kAvx2Gfni;
  }
  if (__builtin_cpu_supports("avx2")) return SimdLevel::kAvx2;
  if (__builtin_cpu_supports("sse2")) return SimdLevel::kSse2;
  return SimdLevel::kScalar;
}

#else

Kernels select_kernels(std::size_t, SimdLevel) noexcept {
  return {block_scalar, block_scalar, block_scalar};
}

void store_fence() noexcept {}

SimdLevel detect() noexcept { return SimdLevel::kScalar; }

#endif

}  // namespace

SimdLevel best_simd_level() noexcept {
  static const SimdLevel level = detect();
  return level;
}

std::string_view simd_level_name(SimdLevel level) noexcept {
  switch (level) {
    case SimdLevel::kScalar:
      return "scalar";
    case SimdLevel::kSse2:
      return "sse2";
    case SimdLevel::kAvx2:
      return "avx2";
    case SimdLevel::kAvx2Gfni:
      return "avx2-gfni";
  }
  return "unknown";
}

bool simd_level_supported(SimdLevel level) noexcept {
  return static_cast<int>(level) <= static_cast<int>(best_simd_level());
}

std::size_t default_block_elements(std::size_t elem_size) noexcept {
  constexpr std::size_t kTargetBytes = 8192;
  constexpr std::size_t kMinElements = 128;
  const std::size_t n = (kTargetBytes / std::max<std::size_t>(elem_size, 1)) / 8 * 8;
  return std::max(n, kMinElements);
}

BlockUnshuffler::BlockUnshuffler(std::size_t elem_size, SimdLevel level, StoreMode mode)
    : elem_size_(elem_size), mode_(mode) {
  if (elem_size == 0) throw Error(ErrorCategory::kInternal, "BlockUnshuffler: element size 0");
  if (!simd_level_supported(level)) level = best_simd_level();
  const Kernels k = select_kernels(elem_size, level);
  cached_ = k.cached;
  stream32_ = k.stream32;
  stream16_ = k.stream16;
}

BlockUnshuffler::~BlockUnshuffler() {
  if (mode_ == StoreMode::kStreaming) store_fence();
}

void BlockUnshuffler::operator()(std::span<const std::byte> in, std::span<std::byte> out) const {
  if (in.size() != out.size() || in.size() % (8 * elem_size_) != 0) {
    throw Error(ErrorCategory::kInternal, "bitunshuffle_block: " + std::to_string(in.size()) +
                                              " bytes in, " + std::to_string(out.size()) +
                                              " out, element size " + std::to_string(elem_size_) +
                                              " (need equal sizes, a multiple of 8 elements)");
  }
  const auto* src = reinterpret_cast<const std::uint8_t*>(in.data());
  auto* dst = reinterpret_cast<std::uint8_t*>(out.data());
  Kernel kernel = cached_;
  if (mode_ == StoreMode::kStreaming) {
    const auto address = reinterpret_cast<std::uintptr_t>(dst);
    if (address % 32 == 0) {
      kernel = stream32_;
    } else if (address % 16 == 0) {
      kernel = stream16_;
    }
  }
  kernel(src, dst, in.size() / (8 * elem_size_), elem_size_);
}

void bitunshuffle_block(std::span<const std::byte> in, std::span<std::byte> out,
                        std::size_t elem_size, SimdLevel level, StoreMode mode) {
  if (elem_size == 0) {
    throw Error(ErrorCategory::kInternal, "bitunshuffle_block: element size 0");
  }
  BlockUnshuffler(elem_size, level, mode)(in, out);
}

void bitunshuffle(std::span<const std::byte> in, std::span<std::byte> out, std::size_t elem_size,
                  std::size_t block_elements, SimdLevel level) {
  if (block_elements == 0) block_elements = default_block_elements(elem_size);
  if (elem_size == 0 || in.size() != out.size() || in.size() % elem_size != 0 ||
      block_elements % 8 != 0) {
    throw Error(ErrorCategory::kInput,
                "bitshuffle: " + std::to_string(in.size()) + " bytes in for " +
                    std::to_string(out.size()) + " out, element size " + std::to_string(elem_size) +
                    ", block of " + std::to_string(block_elements) +
                    " elements (need equal sizes and a block that is a multiple of 8 elements)");
  }
  const std::size_t n = in.size() / elem_size;
  const std::size_t block_bytes = block_elements * elem_size;
  const BlockUnshuffler unshuffle(elem_size, level, store_mode_for(out.size()));
  std::size_t pos = 0;
  for (std::size_t i = 0; i < n / block_elements; ++i, pos += block_bytes) {
    unshuffle(in.subspan(pos, block_bytes), out.subspan(pos, block_bytes));
  }
  const std::size_t last_bytes = (n % block_elements) / 8 * 8 * elem_size;
  if (last_bytes > 0) {
    unshuffle(in.subspan(pos, last_bytes), out.subspan(pos, last_bytes));
    pos += last_bytes;
  }
  std::memcpy(out.data() + pos, in.data() + pos, in.size() - pos);
}

}  // namespace azflow::decompress
