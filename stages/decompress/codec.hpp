#pragma once
// How a chunk or stream frame is encoded, and one entry point that decodes any of them.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "stages/decompress/bitunshuffle.hpp"

namespace azflow::decompress {

/// A chunk's encoding as azflow decodes it.
enum class Codec : std::uint8_t {
  kNone,           ///< raw little-endian elements
  kBitshuffleLz4,  ///< HDF5 filter 32008 with compression 2, or Dectris "bsNN-lz4<"
  kLz4,            ///< HDF5 filter 32004
  kLz4Raw,         ///< one raw LZ4 block, Dectris "lz4<"
  kBitshuffle,     ///< HDF5 filter 32008 without compression (block size from cd_values[3])
  kOther,          ///< anything else: azflow cannot decode it, use the HDF5 filter pipeline
};

/// "none", "bitshuffle-lz4", "lz4", "lz4-raw", "bitshuffle", "other".
[[nodiscard]] std::string_view codec_name(Codec codec) noexcept;

/// A codec with the parameters its decoder needs.
struct CodecParams {
  Codec codec = Codec::kNone;
  std::size_t elem_size = 1;       ///< bytes per element (bit-unshuffle granularity)
  std::size_t block_elements = 0;  ///< kBitshuffle only: block size, 0 = bitshuffle's default
};

/// Codec of a Dectris stream2/SIMPLON `encoding` string: "<" (raw), "lz4<", "bs32-lz4<",
/// "bs16-lz4<", "bs8-lz4<". Throws azflow::Error (kInput) for any other string, big-endian
/// data included.
[[nodiscard]] CodecParams stream_codec(std::string_view encoding);

/// Decodes `in` into `out` (exactly the frame's size in bytes) with `params`. Throws
/// azflow::Error: kInput for any inconsistency in the bytes, kInternal for Codec::kOther.
void decode(const CodecParams& params, std::span<const std::byte> in, std::span<std::byte> out,
            SimdLevel level = best_simd_level());

}  // namespace azflow::decompress
