#pragma once
// bitshuffle + LZ4 decoding: HDF5 filter 32008 with compression 2 (kiyo-masui/bitshuffle,
// bshuf_h5filter.c / bitshuffle.c) and the Dectris stream encodings "bs32-lz4<", "bs16-lz4<",
// "bs8-lz4<" (the same bytes, element size from the encoding name).
//
// Chunk layout (verified against chunks written through the Debian bitshuffle 0.3.5 plugin):
//   bytes 0-7   big-endian uint64: decoded size in bytes
//   bytes 8-11  big-endian uint32: block size in BYTES (block elements * element size);
//               0 means bitshuffle's default block (default_block_elements)
//   then each block: big-endian uint32 compressed size, then that many bytes of one LZ4 block
//               that decodes to the block's bit-shuffled bytes. Blocks are full-size, then a
//               last block shortened to a multiple of 8 elements (absent if that is 0).
//   then the remaining (size % 8) elements, stored raw.

#include <cstddef>
#include <span>

#include "stages/decompress/bitunshuffle.hpp"

namespace azflow::decompress {

/// Size in bytes of the bitshuffle-LZ4 chunk header (raw size + block size).
inline constexpr std::size_t kBitshuffleLz4HeaderBytes = 12;

/// Decoded size in bytes that a bitshuffle-LZ4 chunk's header declares. Throws azflow::Error
/// (kInput) if `in` is shorter than the header.
[[nodiscard]] std::size_t bitshuffle_lz4_decoded_size(std::span<const std::byte> in);

/// Decodes one bitshuffle-LZ4 chunk of `elem_size`-byte elements (1, 2, 4, or any other size
/// with the scalar kernel) into `out`, which must be exactly the decoded size. LZ4 runs through
/// LZ4_decompress_safe; every size in the chunk is checked against what arrived and against
/// `out`. Throws azflow::Error (kInput) naming the block on any inconsistency (truncated chunk,
/// wrong raw or block size, a block that overruns, an LZ4 error, trailing bytes); `out` is then
/// partly written and must not be used. Each block is decoded into a per-thread scratch block
/// (grows to at most one block, <= out.size(), and is reused; 8 KB by default, so it stays in L1)
/// and un-shuffled from there into `out` by one BlockUnshuffler, with streaming stores when
/// `out` is at least kStreamingMinBytes (store_mode_for); the stores are fenced before return.
void decode_bitshuffle_lz4(std::span<const std::byte> in, std::span<std::byte> out,
                           std::size_t elem_size, SimdLevel level = best_simd_level());

}  // namespace azflow::decompress
