#include "stages/decompress/gpu_decode.hpp"

#include <algorithm>

#include "base/error.hpp"
#include "stages/decompress/bytes.hpp"

namespace azflow::decompress {
namespace {

using detail::bytes_str;
using gpu::BlockKind;
using gpu::BlockRef;
using gpu::DecodeResult;
using gpu::DecodeStatus;

const std::uint8_t* u8(const std::byte* p) { return reinterpret_cast<const std::uint8_t*>(p); }
std::uint8_t* u8(std::byte* p) { return reinterpret_cast<std::uint8_t*>(p); }

// One LZ4 block as a thread block decodes it: every lane parses (here once, the lanes would all
// agree), then the lanes copy in turn, in the kernel's order.
DecodeResult decode_lz4_lanes(const std::uint8_t* src, const BlockRef& b, std::uint8_t* out,
                              unsigned lanes) {
  DecodeResult r{};
  if (gpu::lz4_special_case(b.src_bytes, b.dst_bytes, src, b.index, r)) return r;
  gpu::Lz4Cursor c = gpu::lz4_start(b.src_bytes, b.dst_bytes);
  while (!c.done) {
    gpu::Lz4Sequence seq{};
    if (!gpu::lz4_next_sequence(src, c, seq)) return gpu::lz4_finish(c, false, b.index);
    for (unsigned lane = 0; lane < lanes; ++lane)
      gpu::lz4_copy_literals(seq, src, out, lane, lanes);
    for (unsigned lane = 0; lane < lanes; ++lane) gpu::lz4_copy_match(seq, out, lane, lanes);
  }
  return gpu::lz4_finish(c, true, b.index);
}

std::string block_name(const DecodeResult& r) { return "block " + std::to_string(r.block); }

std::string describe_header(const DecodeResult& r) {
  switch (r.status) {
    case DecodeStatus::kTruncatedHeader:
      return "truncated: " + bytes_str(r.value) + ", shorter than the 12-byte header";
    case DecodeStatus::kImpossibleSize:
      return "declared size " + bytes_str(r.value) + " is impossible";
    case DecodeStatus::kFrameSizeMismatch:
      return "header declares " + bytes_str(r.value) + " decoded, the frame needs " +
             bytes_str(r.limit);
    case DecodeStatus::kTruncatedSizeField:
      return block_name(r) + ": truncated before its size field (" + bytes_str(r.value) + " left)";
    default:
      return {};
  }
}

std::string describe_bitshuffle(const DecodeResult& r) {
  switch (r.status) {
    case DecodeStatus::kElemSizeZero:
      return "element size 0";
    case DecodeStatus::kNotWholeElements:
      return "decoded size " + bytes_str(r.value) + " is not a whole number of " +
             std::to_string(r.limit) + "-byte elements";
    case DecodeStatus::kBadBlockSize:
      return "block size " + bytes_str(r.value) + " is not a positive multiple of 8 elements of " +
             std::to_string(r.limit) + " bytes";
    case DecodeStatus::kBlockOverruns:
      return block_name(r) + ": compressed size " + bytes_str(r.value) + " overruns the chunk (" +
             bytes_str(r.limit) + " left)";
    case DecodeStatus::kBlockTooLarge:
      return block_name(r) + ": block too large for LZ4";
    case DecodeStatus::kLz4Corrupt:
      return block_name(r) + ": LZ4 error (corrupt or truncated block data)";
    case DecodeStatus::kLz4WrongSize:
      return block_name(r) + ": decodes to " + bytes_str(r.value) + ", expected " +
             bytes_str(r.limit);
    case DecodeStatus::kTrailingMismatch:
      return "after the last block " + bytes_str(r.value) + " remain, expected " +
             bytes_str(r.limit) + " of raw trailing elements";
    default:
      return {};
  }
}

std::string describe_lz4(const DecodeResult& r) {
  switch (r.status) {
    case DecodeStatus::kLz4BlockSizeZero:
      return "block size 0";
    case DecodeStatus::kBlockOverruns:
      return block_name(r) + ": stored size " + bytes_str(r.value) + " overruns the chunk (" +
             bytes_str(r.limit) + " left)";
    case DecodeStatus::kBlockTooLarge:
    case DecodeStatus::kLz4Corrupt:
    case DecodeStatus::kLz4WrongSize:
      return block_name(r) + ": LZ4 error or wrong decoded size (expected " + bytes_str(r.limit) +
             ")";
    case DecodeStatus::kBytesAfterLastBlock:
      return bytes_str(r.value) + " after the last block";
    default:
      return {};
  }
}

DecodeResult decode_blocks_host(gpu::GpuCodec codec, std::span<const std::byte> chunk,
                                std::span<std::byte> out, std::size_t elem_size, unsigned lanes) {
  std::vector<BlockRef> refs;
  const DecodeResult found = find_gpu_blocks(codec, chunk, out.size(), elem_size, refs);
  if (found.status != DecodeStatus::kOk) return found;
  std::uint32_t largest = 0;
  for (const BlockRef& b : refs) largest = std::max(largest, b.dst_bytes);
  std::vector<std::uint8_t> scratch(largest);  // the thread block's shared memory
  const auto es = static_cast<std::uint32_t>(elem_size);
  for (const BlockRef& b : refs) {
    const std::uint8_t* src = u8(chunk.data()) + b.src;
    std::uint8_t* dst = u8(out.data()) + b.dst;
    if (b.kind == BlockKind::kRaw) {
      for (unsigned lane = 0; lane < lanes; ++lane)
        gpu::copy_raw_lanes(src, dst, b.dst_bytes, lane, lanes);
      continue;
    }
    const bool unshuffle = b.kind == BlockKind::kLz4Unshuffle;
    const DecodeResult r = decode_lz4_lanes(src, b, unshuffle ? scratch.data() : dst, lanes);
    if (r.status != DecodeStatus::kOk) return r;
    if (unshuffle) {
      for (unsigned lane = 0; lane < lanes; ++lane) {
        gpu::unshuffle_block_lanes(scratch.data(), dst, b.dst_bytes, es, lane, lanes);
      }
    }
  }
  return gpu::ok_result();
}

}  // namespace

std::optional<gpu::GpuCodec> gpu_codec(const CodecParams& params) noexcept {
  const std::size_t es = params.elem_size;
  if (es != 1 && es != 2 && es != 4) return std::nullopt;
  switch (params.codec) {
    case Codec::kBitshuffleLz4:
      return gpu::GpuCodec::kBitshuffleLz4;
    case Codec::kLz4:
      return gpu::GpuCodec::kLz4H5;
    case Codec::kLz4Raw:
      return gpu::GpuCodec::kLz4Raw;
    default:
      return std::nullopt;
  }
}

DecodeResult find_gpu_blocks(gpu::GpuCodec codec, std::span<const std::byte> chunk,
                             std::size_t frame_bytes, std::size_t elem_size,
                             std::vector<BlockRef>& refs) {
  refs.resize(gpu::block_capacity(codec, u8(chunk.data()), chunk.size(), frame_bytes, elem_size));
  gpu::BlockList list{refs.data(), refs.size(), 0};
  const DecodeResult r =
      gpu::find_blocks(codec, u8(chunk.data()), chunk.size(), frame_bytes, elem_size, list);
  refs.resize(list.count);
  return r;
}

DecodeResult decode_chunk_gpu_host(gpu::GpuCodec codec, std::span<const std::byte> chunk,
                                   std::span<std::byte> out, std::size_t elem_size,
                                   unsigned lanes) {
  if (lanes < 1 || lanes > 1024) {
    throw Error(ErrorCategory::kInternal, "decode_chunk_gpu_host: lanes outside [1, 1024]");
  }
  DecodeResult r = decode_blocks_host(codec, chunk, out, elem_size, lanes);
  if (codec == gpu::GpuCodec::kLz4Raw) r.limit = out.size();  // the message names the frame size
  return r;
}

std::string describe_decode_result(gpu::GpuCodec codec, const DecodeResult& result) {
  if (result.status == DecodeStatus::kOk) return "ok";
  if (result.status == DecodeStatus::kTooManyBlocks) {
    return "more than " + std::to_string(result.limit) + " blocks";
  }
  if (result.status == DecodeStatus::kDeviceBlockTooLarge) {
    return block_name(result) + ": " + bytes_str(result.value) +
           " decoded, more than the GPU decoder's " + bytes_str(result.limit) + " scratch block";
  }
  if (codec == gpu::GpuCodec::kLz4Raw) {
    return "lz4 stream frame: LZ4 error or decoded size other than " + bytes_str(result.limit);
  }
  const bool bs = codec == gpu::GpuCodec::kBitshuffleLz4;
  std::string text = describe_header(result);
  if (text.empty()) text = bs ? describe_bitshuffle(result) : describe_lz4(result);
  if (text.empty()) text = "status " + std::to_string(static_cast<unsigned>(result.status));
  return (bs ? "bitshuffle-lz4 chunk: " : "lz4 chunk: ") + text;
}

std::string decode_error_message(gpu::GpuCodec codec, const DecodeResult& result,
                                 std::string_view file, std::string_view dataset,
                                 std::uint64_t frame) {
  return std::string(file) + " " + std::string(dataset) + " frame " + std::to_string(frame) + ": " +
         describe_decode_result(codec, result);
}

}  // namespace azflow::decompress
