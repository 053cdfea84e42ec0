#pragma once
// LZ4 decoding: HDF5 filter 32004 (nexusformat/HDF5-External-Filter-Plugins, LZ4/src/H5Zlz4.c)
// and the Dectris stream encoding "lz4<" (one raw LZ4 block holding the whole frame).
//
// HDF5 filter 32004 chunk layout:
//   bytes 0-7   big-endian uint64: decoded size in bytes
//   bytes 8-11  big-endian uint32: block size in bytes (the encoder clamps it to the decoded size)
//   then each block: big-endian uint32 stored size, then the block. A block whose stored size
//   equals its decoded size is stored raw; otherwise it is one LZ4 block. All blocks are full
//   size but the last, which holds the remainder.

#include <cstddef>
#include <span>

namespace azflow::decompress {

/// Size in bytes of the LZ4 filter chunk header (raw size + block size).
inline constexpr std::size_t kLz4HeaderBytes = 12;

/// Decoded size in bytes that an HDF5 LZ4 (32004) chunk's header declares. Throws azflow::Error
/// (kInput) if `in` is shorter than the header.
[[nodiscard]] std::size_t lz4_h5_decoded_size(std::span<const std::byte> in);

/// Decodes one HDF5 LZ4 (32004) chunk into `out` (exactly the decoded size) with
/// LZ4_decompress_safe. Throws azflow::Error (kInput) naming the block on any inconsistency;
/// `out` is then partly written and must not be used.
void decode_lz4_h5(std::span<const std::byte> in, std::span<std::byte> out);

/// Decodes one raw LZ4 block (Dectris "lz4<") into `out`, which must be exactly the decoded
/// size (known from the frame's shape and type). Throws azflow::Error (kInput) on an LZ4 error
/// or a decoded size other than out.size().
void decode_lz4_raw(std::span<const std::byte> in, std::span<std::byte> out);

}  // namespace azflow::decompress
