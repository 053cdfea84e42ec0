// libFuzzer target: the host build of the GPU decoders (gpu_decode_math.hpp, run lane by lane by
// decode_chunk_gpu_host) against the CPU decoders on arbitrary bytes. Aborts if they disagree on
// accepting a chunk, or if both accept and the frames differ; AddressSanitizer catches any read or
// write outside the chunk, the scratch block or the frame.
// Input: byte 0 picks the codec (bits 0-1: bitshuffle-LZ4, LZ4 filter, raw LZ4 block; 3 is
// bitshuffle-LZ4 too), the element size (bits 2-3: 1, 2, 4, 4) and the lane count (bits 4-5: 1,
// 7, 32, 128); bits 6-7 make the frame one element larger or smaller than the header declares.
// For the raw LZ4 block (no header) bytes 1-2 give the frame size (little-endian). The rest is the
// chunk. Frames are capped at 1 MiB.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "base/error.hpp"
#include "stages/decompress/bitshuffle_lz4.hpp"
#include "stages/decompress/gpu_decode.hpp"
#include "stages/decompress/lz4.hpp"

namespace {

using azflow::decompress::gpu::GpuCodec;

// The CPU decoder's verdict: true if it accepted the chunk.
bool cpu_decode(GpuCodec codec, std::span<const std::byte> in, std::span<std::byte> out,
                std::size_t elem) {
  using namespace azflow::decompress;
  try {
    if (codec == GpuCodec::kBitshuffleLz4) {
      decode_bitshuffle_lz4(in, out, elem);
    } else if (codec == GpuCodec::kLz4H5) {
      decode_lz4_h5(in, out);
    } else {
      decode_lz4_raw(in, out);
    }
    return true;
  } catch (const azflow::Error&) {
    return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace azflow::decompress;
  if (size < 3) return 0;
  static constexpr GpuCodec kCodec[] = {GpuCodec::kBitshuffleLz4, GpuCodec::kLz4H5,
                                        GpuCodec::kLz4Raw, GpuCodec::kBitshuffleLz4};
  static constexpr std::size_t kElem[] = {1, 2, 4, 4};
  static constexpr unsigned kLanes[] = {1, 7, 32, 128};
  const GpuCodec codec = kCodec[data[0] & 3];
  const std::size_t elem = kElem[(data[0] >> 2) & 3];
  const unsigned lanes = kLanes[(data[0] >> 4) & 3];
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  std::size_t out_size = 0;
  if (codec == GpuCodec::kLz4Raw) {
    out_size = data[1] | (std::size_t{data[2]} << 8);
    in = in.subspan(2);
  } else if (in.size() >= 8) {
    const std::uint64_t declared =
        gpu::read_be(reinterpret_cast<const std::uint8_t*>(in.data()), 8);
    if (declared > (1U << 20)) return 0;
    out_size = static_cast<std::size_t>(declared);
  }
  if ((data[0] & 0x40) != 0) out_size += elem;
  if ((data[0] & 0x80) != 0 && out_size >= elem) out_size -= elem;
  std::vector<std::byte> cpu(out_size), host(out_size, std::byte{0xA5});
  const bool cpu_ok = cpu_decode(codec, in, cpu, elem);
  const gpu::DecodeResult r = decode_chunk_gpu_host(codec, in, host, elem, lanes);
  const bool gpu_ok = r.status == gpu::DecodeStatus::kOk;
  if (cpu_ok != gpu_ok) {
    std::fprintf(stderr, "accept mismatch: cpu %d, gpu host %d (%s)\n", cpu_ok, gpu_ok,
                 describe_decode_result(codec, r).c_str());
    std::abort();
  }
  if (cpu_ok && cpu != host) {
    std::fprintf(stderr, "both accepted, frames differ\n");
    std::abort();
  }
  return 0;
}
