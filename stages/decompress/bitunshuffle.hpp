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

/// Which kernel runs the bit-unshuffle. All give identical bytes; the vector levels are used for
/// element sizes 1, 2 and 4 (other sizes, and columns left over by the vector width, use the
/// scalar kernel). kAvx2Gfni is kAvx2 with each 8x8 bit transpose done by one GF2P8AFFINEQB
/// (AVX2 + GFNI: AMD Zen 4, Intel Ice Lake and later) instead of three delta swaps.
enum class SimdLevel : std::uint8_t { kScalar, kSse2, kAvx2, kAvx2Gfni };

/// How the kernels write their output.
enum class StoreMode : std::uint8_t {
  kCached,     ///< ordinary stores: the output passes through the caches
  kStreaming,  ///< non-temporal stores where the level has them (kAvx2, kAvx2Gfni) and the
               ///< output is 16-byte aligned, then a store fence; for outputs far larger than
               ///< the caches, which the next reader fetches from memory anyway
};

/// Outputs of at least this many bytes (4 MiB, four times a Zen 4 core's L2) are written with
/// StoreMode::kStreaming by bitunshuffle() and decode_bitshuffle_lz4(); an EIGER 4M frame is
/// 17.9 MB (uint32), 9 MB (uint16).
inline constexpr std::size_t kStreamingMinBytes = std::size_t{4} << 20;

/// The store mode bitunshuffle() and decode_bitshuffle_lz4() use for an output of `bytes`.
[[nodiscard]] constexpr StoreMode store_mode_for(std::size_t bytes) noexcept {
  return bytes >= kStreamingMinBytes ? StoreMode::kStreaming : StoreMode::kCached;
}

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

/// Un-transposes the blocks of one buffer with a kernel chosen once for an element size, level
/// and store mode (the per-block work of a decoder: no dispatch, no allocation). With
/// StoreMode::kStreaming the destructor issues the store fence, so the output is visible to other
/// threads once the unshuffler is gone. Not thread-safe; one per decoding thread and buffer.
class BlockUnshuffler {
 public:
  /// Kernel signature: `row` = block bytes / (8 * es), the row length in bytes.
  using Kernel = void (*)(const std::uint8_t* in, std::uint8_t* out, std::size_t row,
                          std::size_t es);

  /// Throws azflow::Error (kInternal) if `elem_size` is 0. A level the CPU lacks falls back to
  /// the best supported one.
  BlockUnshuffler(std::size_t elem_size, SimdLevel level = best_simd_level(),
                  StoreMode mode = StoreMode::kCached);
  ~BlockUnshuffler();
  BlockUnshuffler(const BlockUnshuffler&) = delete;
  BlockUnshuffler& operator=(const BlockUnshuffler&) = delete;

  /// Un-transposes one block: `in` and `out` are the same size, a multiple of 8 * elem_size
  /// bytes (n = size / elem_size elements), and must not overlap. Throws azflow::Error
  /// (kInternal) if the sizes break that rule.
  void operator()(std::span<const std::byte> in, std::span<std::byte> out) const;

 private:
  std::size_t elem_size_;
  StoreMode mode_;
  Kernel cached_ = nullptr, stream32_ = nullptr, stream16_ = nullptr;
};

/// Un-transposes one block (BlockUnshuffler's contract; with kStreaming, fences before
/// returning). Throws azflow::Error (kInternal) if elem_size is 0 or the sizes are wrong.
void bitunshuffle_block(std::span<const std::byte> in, std::span<std::byte> out,
                        std::size_t elem_size, SimdLevel level = best_simd_level(),
                        StoreMode mode = StoreMode::kCached);

/// Un-transposes a whole bitshuffled buffer without compression (HDF5 filter 32008 with
/// compression 0): blocks of `block_elements` elements (0 = default_block_elements), then a last
/// block shortened to a multiple of 8 elements, then fewer than 8 elements stored as they are.
/// `in` and `out` are the same size, a multiple of elem_size; store_mode_for(out.size()) picks the
/// store mode. Throws azflow::Error (kInput) if the sizes do not fit that layout.
void bitunshuffle(std::span<const std::byte> in, std::span<std::byte> out, std::size_t elem_size,
                  std::size_t block_elements, SimdLevel level = best_simd_level());

}  // namespace azflow::decompress
