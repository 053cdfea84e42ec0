#pragma once
// Host side of the GPU decoders (gpu_decode_math.hpp): which codecs they take, the block list of a
// chunk, the host build of the very per-block code the CUDA kernels run (lanes emulated in loops,
// for the tests and the fuzzer), and the messages of their status codes, in the CPU decoders'
// words (bitshuffle_lz4.cpp, lz4.cpp) and naming the file, dataset and frame.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stages/decompress/codec.hpp"
#include "stages/decompress/gpu_decode_math.hpp"

namespace azflow::decompress {

/// The GPU codec for `params`, or nullopt when the GPU decoders do not take it (none, bitshuffle
/// without LZ4, other). Element sizes other than 1, 2 and 4 are not taken either.
[[nodiscard]] std::optional<gpu::GpuCodec> gpu_codec(const CodecParams& params) noexcept;

/// (a) The block list of one chunk (gpu::find_blocks with gpu::block_capacity entries). On
/// failure `refs` holds the blocks found so far and the result says why.
gpu::DecodeResult find_gpu_blocks(gpu::GpuCodec codec, std::span<const std::byte> chunk,
                                  std::size_t frame_bytes, std::size_t elem_size,
                                  std::vector<gpu::BlockRef>& refs);

/// Decodes one chunk into `out` (exactly the frame's size) with the host build of the GPU
/// decoder: the block list, then each block as one CUDA thread block of `lanes` threads would
/// (lz4_next_sequence, lane-strided literal and match copies into a scratch block, lane-strided
/// unshuffle columns into `out`). Never throws for bad bytes: returns the status (`out` is then
/// partly written). `lanes` 1..1024.
gpu::DecodeResult decode_chunk_gpu_host(gpu::GpuCodec codec, std::span<const std::byte> chunk,
                                        std::span<std::byte> out, std::size_t elem_size,
                                        unsigned lanes = 32);

/// The message of a failed result in the CPU decoder's words, e.g. "bitshuffle-lz4 chunk: block
/// 3: compressed size 9000 bytes overruns the chunk (120 bytes left)".
[[nodiscard]] std::string describe_decode_result(gpu::GpuCodec codec,
                                                 const gpu::DecodeResult& result);

/// describe_decode_result prefixed with where the chunk came from: "<file> <dataset> frame N: ".
[[nodiscard]] std::string decode_error_message(gpu::GpuCodec codec, const gpu::DecodeResult& result,
                                               std::string_view file, std::string_view dataset,
                                               std::uint64_t frame);

}  // namespace azflow::decompress
