// CUDA decoders (see cuda_decode.hpp for the data flow, gpu_decode_math.hpp for the arithmetic).
//
// Kernel: one launch per batch, one thread block of kLanes = 32 threads (one warp) per job (an
// LZ4 block of some frame, or a raw piece). Every lane parses the LZ4 sequences itself from the
// same bytes (the parse is cheap next to the copies and needs no broadcast), then the lanes copy
// the sequence's literals and match with a lane stride, a __syncwarp() after each so that the
// next match sees every byte written before it (__syncwarp orders the warp's shared and global
// memory accesses). Bitshuffle blocks are decoded into dynamic shared memory (at most
// kMaxScratchBytes; 8 KiB for bitshuffle's default block) and un-transposed from there: lane m
// writes the 8 x elem_size contiguous bytes of column m, so a warp's stores are consecutive.
// LZ4-filter blocks decode straight into the frame. Lane 0 writes the job's status; no atomics,
// every output byte has one writer.
//
// Every runtime call is checked and a failure throws azflow::Error (kResource) naming the device
// and the call. Bad bytes never fault: every read and write of the kernel is bounds-checked
// against the job's source and destination sizes, which the host checked against the chunk and
// the frame.

#include <cuda_runtime.h>

#include <algorithm>
#include <string>
#include <utility>

#include "base/error.hpp"
#include "stages/decompress/cuda_decode.hpp"
#include "stages/decompress/gpu_decode.hpp"

namespace azflow::decompress {

namespace {

using gpu::BlockKind;
using gpu::DecodeResult;
using gpu::DecodeStatus;

constexpr unsigned kLanes = 32;

/// One thread block's work, with absolute device pointers.
struct Job {
  const std::uint8_t* src;
  std::uint8_t* dst;
  std::uint32_t src_bytes;
  std::uint32_t dst_bytes;
  BlockKind kind;
  std::uint32_t index;  // block number in its chunk
  std::uint32_t es;     // element size
  std::uint32_t item;   // which item of the batch
};

std::string device_name(int device) { return "cuda:" + std::to_string(device); }

void check(cudaError_t status, const char* call, const std::string& where) {
  if (status == cudaSuccess) return;
  throw Error(ErrorCategory::kResource, where + ": " + call +
                                            " failed: " + cudaGetErrorName(status) + " (" +
                                            cudaGetErrorString(status) + ")");
}

// ------------------------------------------------------------------------------ kernel

__device__ DecodeResult decode_lz4_job(const Job& j, std::uint8_t* out, unsigned lane) {
  DecodeResult r{};
  if (gpu::lz4_special_case(j.src_bytes, j.dst_bytes, j.src, j.index, r)) return r;
  gpu::Lz4Cursor c = gpu::lz4_start(j.src_bytes, j.dst_bytes);
  bool parsed = true;
  while (!c.done) {
    gpu::Lz4Sequence seq;
    if (!gpu::lz4_next_sequence(j.src, c, seq)) {
      parsed = false;
      break;
    }
    gpu::lz4_copy_literals(seq, j.src, out, lane, kLanes);
    __syncwarp();
    gpu::lz4_copy_match(seq, out, lane, kLanes);
    __syncwarp();
  }
  return gpu::lz4_finish(c, parsed, j.index);
}

__global__ void __launch_bounds__(kLanes)
    decode_kernel(const Job* __restrict__ jobs, DecodeResult* __restrict__ status) {
  extern __shared__ std::uint8_t scratch[];
  const Job j = jobs[blockIdx.x];
  const unsigned lane = threadIdx.x;
  DecodeResult r = gpu::ok_result();
  if (j.kind == BlockKind::kRaw) {
    gpu::copy_raw_lanes(j.src, j.dst, j.dst_bytes, lane, kLanes);
  } else {
    const bool unshuffle = j.kind == BlockKind::kLz4Unshuffle;
    r = decode_lz4_job(j, unshuffle ? scratch : j.dst, lane);
    if (unshuffle && r.status == DecodeStatus::kOk) {
      __syncwarp();
      gpu::unshuffle_block_lanes(scratch, j.dst, j.dst_bytes, j.es, lane, kLanes);
    }
  }
  if (lane == 0) status[blockIdx.x] = r;
}

// ------------------------------------------------------------------------------ memory

/// CUDA memory grown on demand, never shrunk: device memory (cudaMalloc / cudaFree) or, with
/// `kPinned`, page-locked host memory (cudaMallocHost / cudaFreeHost).
template <bool kPinned>
class CudaBuffer {
 public:
  CudaBuffer() = default;
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;
  ~CudaBuffer() { release(); }
  void reserve(std::size_t bytes, const std::string& where) {
    if (bytes <= bytes_) return;
    release();
    if constexpr (kPinned) {
      check(cudaMallocHost(&data_, bytes), "cudaMallocHost",
            where + " (" + std::to_string(bytes) + " bytes)");
    } else {
      check(cudaMalloc(&data_, bytes), "cudaMalloc",
            where + " (" + std::to_string(bytes) + " bytes)");
    }
    bytes_ = bytes;
  }
  template <class T>
  [[nodiscard]] T* as() const noexcept {
    return static_cast<T*>(data_);
  }

 private:
  void release() noexcept {
    if (data_ == nullptr) return;
    if constexpr (kPinned) {
      (void)cudaFreeHost(std::exchange(data_, nullptr));
    } else {
      (void)cudaFree(std::exchange(data_, nullptr));
    }
    bytes_ = 0;
  }

  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

using DeviceArray = CudaBuffer<false>;  ///< device memory
using PinnedArray = CudaBuffer<true>;   ///< pinned host memory

}  // namespace

struct CudaDecoder::Impl {
  int device = 0;
  std::string where;  // "cuda:N decoder"
  cudaStream_t stream = nullptr;
  DeviceArray jobs, status;
  PinnedArray host_jobs, host_status;
  std::vector<gpu::BlockRef> refs;  // one chunk's blocks, reused
  std::size_t job_count = 0;        // of the last decode()
  std::uint32_t scratch_bytes = 0;  // of the last decode()
  std::size_t decoded_bytes = 0;    // of the last decode()

  ~Impl() {
    if (stream != nullptr) {
      (void)cudaSetDevice(device);
      (void)cudaStreamSynchronize(stream);
      (void)cudaStreamDestroy(stream);
    }
  }

  void launch() const {
    if (job_count == 0) return;
    decode_kernel<<<static_cast<unsigned>(job_count), kLanes, scratch_bytes, stream>>>(
        jobs.as<Job>(), status.as<DecodeResult>());
    check(cudaGetLastError(), "decode kernel launch", where);
  }

  // Adds item i's jobs to the host job list (grown as needed); returns its framing result.
  DecodeResult add_jobs(const CudaDecodeItem& item, std::uint32_t i, std::vector<Job>& out) {
    if (item.elem_size != 1 && item.elem_size != 2 && item.elem_size != 4) {
      return gpu::fail(DecodeStatus::kElemSizeZero);
    }
    DecodeResult r =
        find_gpu_blocks(item.codec, item.host_chunk, item.frame_bytes, item.elem_size, refs);
    if (r.status != DecodeStatus::kOk) return r;
    for (const gpu::BlockRef& b : refs) {
      if (b.kind == BlockKind::kLz4Unshuffle && b.dst_bytes > kMaxScratchBytes) {
        return gpu::fail(DecodeStatus::kDeviceBlockTooLarge, b.index, b.dst_bytes,
                         kMaxScratchBytes);
      }
    }
    for (const gpu::BlockRef& b : refs) {
      const auto* src = reinterpret_cast<const std::uint8_t*>(item.device_chunk) + b.src;
      auto* dst = reinterpret_cast<std::uint8_t*>(item.device_frame) + b.dst;
      out.push_back({src, dst, b.src_bytes, b.dst_bytes, b.kind, b.index,
                     static_cast<std::uint32_t>(item.elem_size), i});
      if (b.kind == BlockKind::kLz4Unshuffle) scratch_bytes = std::max(scratch_bytes, b.dst_bytes);
    }
    decoded_bytes += item.frame_bytes;
    return r;
  }
};

CudaDecoder::CudaDecoder(int device) : impl_(std::make_unique<Impl>()) {
  impl_->device = device;
  impl_->where = device_name(device) + " decoder";
  check(cudaSetDevice(device), "cudaSetDevice", impl_->where);
  check(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking), "cudaStreamCreate",
        impl_->where);
}

CudaDecoder::~CudaDecoder() = default;

std::vector<DecodeResult> CudaDecoder::decode(std::span<const CudaDecodeItem> items) {
  Impl& m = *impl_;
  check(cudaSetDevice(m.device), "cudaSetDevice", m.where);
  std::vector<DecodeResult> results(items.size(), gpu::ok_result());
  std::vector<Job> jobs;
  m.scratch_bytes = 0;
  m.decoded_bytes = 0;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (reinterpret_cast<std::uintptr_t>(items[i].device_frame) % 8 != 0) {
      throw Error(ErrorCategory::kInternal, m.where + ": frame buffer of batch item " +
                                                std::to_string(i) + " is not 8-byte aligned");
    }
    results[i] = m.add_jobs(items[i], static_cast<std::uint32_t>(i), jobs);
    if (items[i].codec == gpu::GpuCodec::kLz4Raw && results[i].status != DecodeStatus::kOk) {
      results[i].limit = items[i].frame_bytes;
    }
  }
  m.job_count = jobs.size();
  if (jobs.empty()) return results;
  m.jobs.reserve(jobs.size() * sizeof(Job), m.where + " job list");
  m.status.reserve(jobs.size() * sizeof(DecodeResult), m.where + " status list");
  m.host_jobs.reserve(jobs.size() * sizeof(Job), m.where + " pinned job list");
  m.host_status.reserve(jobs.size() * sizeof(DecodeResult), m.where + " pinned status list");
  std::copy(jobs.begin(), jobs.end(), m.host_jobs.as<Job>());
  check(cudaMemcpyAsync(m.jobs.as<void>(), m.host_jobs.as<void>(), jobs.size() * sizeof(Job),
                        cudaMemcpyHostToDevice, m.stream),
        "cudaMemcpyAsync (jobs to device)", m.where);
  m.launch();
  check(cudaMemcpyAsync(m.host_status.as<void>(), m.status.as<void>(),
                        jobs.size() * sizeof(DecodeResult), cudaMemcpyDeviceToHost, m.stream),
        "cudaMemcpyAsync (status to host)", m.where);
  check(cudaStreamSynchronize(m.stream), "decode (copies or kernel)", m.where);
  const DecodeResult* status = m.host_status.as<const DecodeResult>();
  for (std::size_t k = 0; k < jobs.size(); ++k) {  // a frame's first failing block, in order
    DecodeResult& r = results[jobs[k].item];
    if (r.status == DecodeStatus::kOk && status[k].status != DecodeStatus::kOk) {
      r = status[k];
      if (items[jobs[k].item].codec == gpu::GpuCodec::kLz4Raw) {
        r.limit = items[jobs[k].item].frame_bytes;
      }
    }
  }
  return results;
}

double CudaDecoder::time_kernel(std::size_t repeats, std::size_t* decoded_bytes) {
  Impl& m = *impl_;
  if (m.job_count == 0 || repeats == 0) {
    throw Error(ErrorCategory::kInternal, "CudaDecoder::time_kernel: nothing decoded yet");
  }
  check(cudaSetDevice(m.device), "cudaSetDevice", m.where);
  cudaEvent_t start = nullptr, stop = nullptr;
  check(cudaEventCreate(&start), "cudaEventCreate", m.where);
  check(cudaEventCreate(&stop), "cudaEventCreate", m.where);
  float ms = 0;
  try {
    m.launch();  // warm-up
    check(cudaEventRecord(start, m.stream), "cudaEventRecord", m.where);
    for (std::size_t r = 0; r < repeats; ++r) m.launch();
    check(cudaEventRecord(stop, m.stream), "cudaEventRecord", m.where);
    check(cudaEventSynchronize(stop), "decode kernel", m.where);
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime", m.where);
  } catch (...) {
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    throw;
  }
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  if (decoded_bytes != nullptr) *decoded_bytes = m.decoded_bytes;
  return static_cast<double>(ms) / 1e3 / static_cast<double>(repeats);
}

DeviceBytes::DeviceBytes(int device, std::size_t bytes) : device_(device), bytes_(bytes) {
  const std::string where = device_name(device) + " buffer of " + std::to_string(bytes) + " bytes";
  check(cudaSetDevice(device), "cudaSetDevice", where);
  void* p = nullptr;
  if (bytes > 0) check(cudaMalloc(&p, bytes), "cudaMalloc", where);
  data_ = static_cast<std::byte*>(p);
}

DeviceBytes::~DeviceBytes() {
  if (data_ == nullptr) return;
  (void)cudaSetDevice(device_);
  (void)cudaFree(data_);
}

namespace {
void check_range(std::size_t offset, std::size_t n, std::size_t size, int device) {
  if (offset > size || n > size - offset) {
    throw Error(ErrorCategory::kResource,
                device_name(device) + " buffer of " + std::to_string(size) + " bytes: copy of " +
                    std::to_string(n) + " at " + std::to_string(offset) + " is outside it");
  }
}
}  // namespace

void DeviceBytes::upload(std::span<const std::byte> from, std::size_t offset) {
  check_range(offset, from.size(), bytes_, device_);
  check(cudaSetDevice(device_), "cudaSetDevice", device_name(device_));
  check(cudaMemcpy(data_ + offset, from.data(), from.size(), cudaMemcpyHostToDevice), "cudaMemcpy",
        device_name(device_) + " upload");
  // From pageable memory cudaMemcpy may return before the DMA lands, and the decoder's stream
  // does not wait for the legacy default stream: finish here.
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize", device_name(device_) + " upload");
}

void DeviceBytes::download(std::span<std::byte> to, std::size_t offset) const {
  check_range(offset, to.size(), bytes_, device_);
  check(cudaSetDevice(device_), "cudaSetDevice", device_name(device_));
  check(cudaMemcpy(to.data(), data_ + offset, to.size(), cudaMemcpyDeviceToHost), "cudaMemcpy",
        device_name(device_) + " download");
}

void DeviceBytes::fill(std::uint8_t value) {
  check(cudaSetDevice(device_), "cudaSetDevice", device_name(device_));
  check(cudaMemset(data_, value, bytes_), "cudaMemset", device_name(device_) + " fill");
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize", device_name(device_) + " fill");
}

std::string cuda_decoder_unavailable() noexcept {
  try {
    int count = 0;
    const cudaError_t status = cudaGetDeviceCount(&count);
    if (status != cudaSuccess) {
      return std::string("no CUDA device visible: ") + cudaGetErrorString(status);
    }
    return count == 0 ? "no CUDA device visible" : "";
  } catch (...) {
    return "CUDA device query failed";
  }
}

}  // namespace azflow::decompress
