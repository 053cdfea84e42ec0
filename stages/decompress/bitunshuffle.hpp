#pragma once
// The inverse of bitshuffle's bit transpose (kiyo-masui/bitshuffle, bshuf_trans_bit_elem), with
// scalar, SSE2 and AVX2 kernels chosen at run time.
//
// Format (verified against blocks written by the bitshuffle HDF5 plugin): a block of n elements
// of `elem_size` bytes (n a multiple of 8) is stored as 8 * elem_size rows of n / 8 bytes. Row
// r = 8 * b + k holds bit k of byte b of every element: bit (e % 8) of the row's byte (e / 8)
// is bit k of byte b of element e. Bytes are little-endian as the detector wrote them.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace azflow::decompress {

/// Which kernel runs the bit-unshuffle. All give identical bytes; kSse2/kAvx2 are used for
/// element sizes 1, 2 and 4 (other sizes, and columns left over by the vector width, use the
/// scalar kernel).
enum class SimdLevel : std::uint8_t { kScalar, kSse2, kAvx2 };

/// The fastest level this CPU supports (detected once with __builtin_cpu_supports).
[[nodiscard]] SimdLevel best_simd_level() noexcept;

/// "scalar", "sse2" or "avx2".
[[nodiscard]] std::string_view simd_level_name(SimdLevel level) noexcept;

/// True if `level` can run on this CPU.
[[nodiscard]] bool simd_level_supported(SimdLevel level) noexcept;

/// bitshuffle's default block size in elements for `elem_size`-byte elements:
/// 8192 bytes / elem_size, rounded down to a multiple of 8, at least 128
/// (bshuf_default_block_size). `elem_size` must be at least 1.
[[nodiscard]] std::size_t default_block_elements(std::size_t elem_size) noexcept;

/// Un-transposes one block: `in` and `out` are the same size, a multiple of 8 * elem_size bytes
/// (n = size / elem_size elements), and must not overlap. Throws azflow::Error (kInternal) if the
/// sizes break that rule. A level the CPU lacks falls back to the best supported one.
void bitunshuffle_block(std::span<const std::byte> in, std::span<std::byte> out,
                        std::size_t elem_size, SimdLevel level = best_simd_level());

/// Un-transposes a whole bitshuffled buffer without compression (HDF5 filter 32008 with
/// compression 0): blocks of `block_elements` elements (0 = default_block_elements), then a last
/// block shortened to a multiple of 8 elements, then fewer than 8 elements stored as they are.
/// `in` and `out` are the same size, a multiple of elem_size. Throws azflow::Error (kInput) if
/// the sizes do not fit that layout.
void bitunshuffle(std::span<const std::byte> in, std::span<std::byte> out, std::size_t elem_size,
                  std::size_t block_elements, SimdLevel level = best_simd_level());

}  // namespace azflow::decompress
