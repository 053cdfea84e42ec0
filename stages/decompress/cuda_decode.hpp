#pragma once
// CUDA decoders for bitshuffle-LZ4 (HDF5 filter 32008), LZ4 (filter 32004) and Dectris "lz4<":
// a batch of compressed chunks already in device memory is decoded into device frame buffers,
// with one status per frame. No CUDA header here (pimpl), so this header compiles without a
// toolkit. Library azflow::decompress_cuda: the real decoder (cuda_decode.cu) in CUDA builds, a
// stub whose constructor throws and whose availability check says "built without CUDA" otherwise
// (cuda_decode_stub.cpp).
//
// Data flow of decode(): on the host, each chunk's framing is walked (gpu::find_blocks, on the
// host copy of the chunk, e.g. the pinned compressed ring slot the device copy came from) into one
// job per LZ4 block (or raw piece) with its device source and destination; the job list goes to
// the device in one copy, one kernel launch decodes every block of the batch (one thread block of
// 32 threads per job, the bit-shuffled block decoded into shared memory, un-shuffled from there
// with coalesced stores into the frame), and one copy brings back a status per job. A frame whose
// framing or any block fails gets that failure (the first failing block's) and its frame buffer
// must not be used; the other frames of the batch are unaffected. The kernel's arithmetic is
// gpu_decode_math.hpp, whose host build the CPU tests check bit-exact against the CPU decoders.
//
// NOTE: written and compiled without a GPU; its device tests and benchmark have not yet run on
// one (tests/decompress/cuda_decode_test.cpp skips without a device; bench/cuda/run.sh measures
// it where one is present).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "stages/decompress/gpu_decode_math.hpp"

namespace azflow::decompress {

/// Empty if a CUDA device can run the decoder, else why not ("built without CUDA", "no CUDA device
/// visible: ..."). Never throws.
[[nodiscard]] std::string cuda_decoder_unavailable() noexcept;

/// One chunk of a batch.
struct CudaDecodeItem {
  gpu::GpuCodec codec = gpu::GpuCodec::kBitshuffleLz4;
  std::size_t elem_size = 1;                ///< bytes per element: 1, 2 or 4
  std::span<const std::byte> host_chunk;    ///< the chunk in host memory (its framing is read here)
  const std::byte* device_chunk = nullptr;  ///< the same bytes in device memory
  std::byte* device_frame = nullptr;        ///< frame_bytes of device memory, 8-byte aligned
  std::size_t frame_bytes = 0;              ///< the frame's decoded size (rows x cols x elem)
};

/// Decodes batches of chunks on one device. Thread-compatible: one decoder per thread. Device
/// memory (the job and status lists, grown to the largest batch seen) and its stream are released
/// in the destructor, which waits for work in flight.
class CudaDecoder {
 public:
  /// Largest decoded bitshuffle block the kernel takes, in bytes (its shared-memory scratch).
  /// bitshuffle's default block is 8192 bytes; a frame with larger blocks fails with
  /// gpu::DecodeStatus::kDeviceBlockTooLarge (decode it on the CPU).
  static constexpr std::uint32_t kMaxScratchBytes = 48 * 1024;

  /// Throws azflow::Error (kResource) naming the device if it cannot be used, (kConfig) in
  /// builds without CUDA.
  explicit CudaDecoder(int device = 0);
  ~CudaDecoder();
  CudaDecoder(const CudaDecoder&) = delete;
  CudaDecoder& operator=(const CudaDecoder&) = delete;

  /// Decodes every item (synchronously, on the decoder's own non-blocking stream: the device
  /// chunks must be complete, their copies finished, before the call) and returns one result per
  /// item, in order: gpu::DecodeStatus::kOk, or the first failure (describe_decode_result /
  /// decode_error_message in gpu_decode.hpp give its message). Bad bytes never throw and never
  /// touch memory outside the item's chunk and frame. Throws azflow::Error (kResource) if a CUDA
  /// call fails, naming the device and the call, (kInternal) if a frame buffer is not 8-byte
  /// aligned.
  std::vector<gpu::DecodeResult> decode(std::span<const CudaDecodeItem> items);

  /// Benchmark hook: seconds per kernel launch over the jobs of the last decode() (repeated
  /// `repeats` times, timed with CUDA events, no copies), and the decoded bytes they write.
  /// Throws azflow::Error (kInternal) before any decode(), (kResource) if a CUDA call fails.
  double time_kernel(std::size_t repeats, std::size_t* decoded_bytes = nullptr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Device memory (cudaMalloc) with copies to and from the host that are complete on return
/// (cudaDeviceSynchronize after each), for callers that keep the CUDA runtime out of their own
/// code (tests, benchmarks). Throws azflow::Error (kResource) if allocation or a copy fails or
/// the range is outside the buffer, (kConfig) without CUDA.
class DeviceBytes {
 public:
  DeviceBytes(int device, std::size_t bytes);
  ~DeviceBytes();
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  [[nodiscard]] std::byte* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return bytes_; }
  /// Copies `from` to device bytes [offset, offset + from.size()).
  void upload(std::span<const std::byte> from, std::size_t offset = 0);
  /// Copies device bytes [offset, offset + to.size()) to `to`.
  void download(std::span<std::byte> to, std::size_t offset = 0) const;
  /// Sets every byte to `value` (to poison frames before a decode).
  void fill(std::uint8_t value);

 private:
  int device_ = 0;
  std::byte* data_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace azflow::decompress
