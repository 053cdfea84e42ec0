// CUDA integrator (see cuda_integrator.hpp for the data flow, gpu_kernel_math.hpp for the
// arithmetic).
//
// Kernel: one launch per batch. Thread block b integrates frame b % frames over row block
// b / frames: kBlockThreads / G CSR rows (bins), G threads per row (G = the plan's row_group, 2, 8,
// 32 or 256). The threads of a row stride over its entries (coalesced index and weight reads, the
// frame gathered by pixel index), accumulate float64 partial sums, and reduce them: warp
// shuffles within a warp, then, for G = 256, the 8 warp partials through shared memory, merged in
// order by thread 0. The first thread of each row writes the bin's four sums. Consecutive blocks
// handle the same rows of consecutive frames, so a batch reads the CSR matrix from DRAM about
// once and from L2 for the other frames. No atomics: every output element has one writer.
//
// Every runtime call is checked; a failure throws CudaError naming the device, the stream (buffer
// set) and the frames. Destructors wait for work in flight and ignore errors (nothing to report
// to at that point; a sticky error was already thrown by the call that saw it).

#include <cuda_runtime.h>

#include <algorithm>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>

#include "stages/integrate/cuda_integrator.hpp"
#include "stages/integrate/gpu_kernel_math.hpp"
#include "stages/integrate/gpu_plan.hpp"

namespace azflow::integrate {

namespace {

using namespace gpu;

std::string device_name(int device) { return "cuda:" + std::to_string(device); }

void check(cudaError_t status, const char* call, const std::string& where) {
  if (status == cudaSuccess) return;
  throw CudaError(where + ": " + call + " failed: " + cudaGetErrorName(status) + " (" +
                  cudaGetErrorString(status) + ")");
}

/// Makes `device` current for the calling thread.
void use_device(int device) { check(cudaSetDevice(device), "cudaSetDevice", device_name(device)); }

/// Device memory (cudaMalloc / cudaFree); empty for 0 bytes.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(std::size_t bytes, const std::string& where) : bytes_(bytes) {
    if (bytes == 0) return;
    check(cudaMalloc(&data_, bytes), "cudaMalloc",
          where + " (" + std::to_string(bytes) + " bytes)");
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  ~DeviceBuffer() {
    if (data_ != nullptr) (void)cudaFree(data_);
  }
  template <class T>
  [[nodiscard]] T* as() const noexcept {
    return static_cast<T*>(data_);
  }
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

/// Pinned host memory (cudaMallocHost / cudaFreeHost).
class PinnedBuffer {
 public:
  PinnedBuffer(std::size_t bytes, const std::string& where) {
    check(cudaMallocHost(&data_, bytes), "cudaMallocHost",
          where + " (" + std::to_string(bytes) + " bytes)");
  }
  PinnedBuffer(PinnedBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)) {}
  PinnedBuffer& operator=(PinnedBuffer&&) = delete;
  ~PinnedBuffer() {
    if (data_ != nullptr) (void)cudaFreeHost(data_);
  }
  template <class T>
  [[nodiscard]] T* as() const noexcept {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
};

/// A non-blocking CUDA stream.
class Stream {
 public:
  explicit Stream(const std::string& where) {
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate", where);
  }
  Stream(Stream&& o) noexcept : stream_(std::exchange(o.stream_, nullptr)) {}
  Stream& operator=(Stream&&) = delete;
  ~Stream() {
    if (stream_ != nullptr) {
      (void)cudaStreamSynchronize(stream_);
      (void)cudaStreamDestroy(stream_);
    }
  }
  [[nodiscard]] cudaStream_t get() const noexcept { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

/// A CUDA event without timing.
class Event {
 public:
  explicit Event(const std::string& where) {
    check(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), "cudaEventCreate", where);
  }
  Event(Event&& o) noexcept : event_(std::exchange(o.event_, nullptr)) {}
  Event& operator=(Event&&) = delete;
  ~Event() {
    if (event_ != nullptr) (void)cudaEventDestroy(event_);
  }
  [[nodiscard]] cudaEvent_t get() const noexcept { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

// ------------------------------------------------------------------------------ device plan

/// One plan on one device: the packed vectors in device memory and the view the kernels take.
struct DevicePlan {
  std::shared_ptr<const Plan> plan;  // keeps the cache key's address alive
  int device = 0;
  std::size_t bins = 0;
  std::vector<DeviceBuffer> buffers;
  PlanView view;
};

template <class T>
const T* upload(DevicePlan& dp, const std::vector<T>& host, const char* what) {
  if (host.empty()) return nullptr;
  const std::string where = device_name(dp.device) + " plan upload (" + what + ")";
  DeviceBuffer& b = dp.buffers.emplace_back(host.size() * sizeof(T), where);
  check(cudaMemcpy(b.as<void>(), host.data(), b.bytes(), cudaMemcpyHostToDevice), "cudaMemcpy",
        where);
  return b.as<const T>();
}

std::shared_ptr<DevicePlan> upload_plan(const std::shared_ptr<const Plan>& plan, int device) {
  const PackedPlan packed = pack_plan(*plan);
  auto dp = std::make_shared<DevicePlan>();
  dp->plan = plan;
  dp->device = device;
  dp->bins = plan->bins();
  dp->buffers.reserve(9);
  PlanView& v = dp->view;
  v.s = packed.settings;
  v.indptr = upload(*dp, packed.indptr, "indptr");
  v.indices = upload(*dp, packed.indices, "indices");
  v.weights = upload(*dp, packed.weights, "weights");
  v.normalization = upload(*dp, packed.normalization, "normalization");
  v.dark = upload(*dp, packed.dark, "dark");
  v.static_entries = upload(*dp, packed.static_entries, "static entries");
  v.static_count = upload(*dp, packed.static_count, "static count");
  v.static_norm = upload(*dp, packed.static_norm, "static normalization");
  v.static_dark = upload(*dp, packed.static_dark, "static dark");
  return dp;
}

/// The device copy of `plan` on `device`, uploaded once per process and shared by every
/// integrator that asks while one is alive.
std::shared_ptr<DevicePlan> shared_device_plan(const std::shared_ptr<const Plan>& plan,
                                               int device) {
  static std::mutex mutex;
  static std::map<std::pair<const Plan*, int>, std::weak_ptr<DevicePlan>> cache;
  const std::lock_guard lock(mutex);
  std::erase_if(cache, [](const auto& entry) { return entry.second.expired(); });
  std::weak_ptr<DevicePlan>& slot = cache[{plan.get(), device}];
  if (auto existing = slot.lock()) return existing;
  auto fresh = upload_plan(plan, device);
  slot = fresh;
  return fresh;
}

// ------------------------------------------------------------------------------ kernels

enum Mode { kModeNone = 0, kModePoisson = 1, kModeAzimuthal = 2 };

__device__ __forceinline__ FastLane shfl_down(const FastLane& a, int off, int width) {
  constexpr unsigned kAll = 0xffffffffu;
  FastLane b;
  b.sig = __shfl_down_sync(kAll, a.sig, off, width);
  b.var = __shfl_down_sync(kAll, a.var, off, width);
  b.bad_count = __shfl_down_sync(kAll, a.bad_count, off, width);
  b.bad_norm = __shfl_down_sync(kAll, a.bad_norm, off, width);
  b.bad_dark = __shfl_down_sync(kAll, a.bad_dark, off, width);
  b.bad_entries = __shfl_down_sync(kAll, a.bad_entries, off, width);
  return b;
}

__device__ __forceinline__ AzimLane shfl_down(const AzimLane& a, int off, int width) {
  constexpr unsigned kAll = 0xffffffffu;
  AzimLane b;
  b.sig = __shfl_down_sync(kAll, a.sig, off, width);
  b.var = __shfl_down_sync(kAll, a.var, off, width);
  b.norm = __shfl_down_sync(kAll, a.norm, off, width);
  b.count = __shfl_down_sync(kAll, a.count, off, width);
  return b;
}

/// Reduces the partials of a group of G threads into its first thread's `a` (other threads'
/// values are meaningless afterwards). Every thread of the block must call it (full-warp
/// shuffles; __syncthreads for G = kBlockThreads).
template <int G, class Lane>
__device__ __forceinline__ void reduce_group(Lane& a) {
  static_assert(G <= 32 || G == kBlockThreads, "a row group is part of a warp or the block");
  constexpr int kWidth = G < 32 ? G : 32;
  for (int off = kWidth / 2; off > 0; off /= 2) {
    const Lane b = shfl_down(a, off, kWidth);
    merge_lanes(a, b);
  }
  if constexpr (G > 32) {
    __shared__ Lane warp_partials[G / 32];
    if (threadIdx.x % 32 == 0) warp_partials[threadIdx.x / 32] = a;
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < G / 32; ++w) merge_lanes(a, warp_partials[w]);
    }
  }
}

template <class T, int G, int kMode>
__global__ void __launch_bounds__(kBlockThreads)
    integrate_kernel(PlanView v, const T* __restrict__ frames, int frame_count,
                     double* __restrict__ out) {
  constexpr int kRowsPerBlock = kBlockThreads / G;
  const std::int64_t block = blockIdx.x;
  const std::int64_t f = block % frame_count;
  const std::int64_t row = (block / frame_count) * kRowsPerBlock + threadIdx.x / G;
  const int lane = static_cast<int>(threadIdx.x % G);
  const bool active = row < v.s.bins;
  const T* frame = frames + f * v.s.pixels;
  double* frame_out = out + f * 4 * v.s.bins;
  if constexpr (kMode == kModeAzimuthal) {
    AzimLane a{};
    if (active) azim_lane<T>(v, frame, row, lane, G, a);
    reduce_group<G>(a);
    if (active && lane == 0) finish_azim(v, row, a, frame_out);
  } else {
    FastLane a{};
    if (active) fast_lane<T, kMode == kModePoisson>(v, frame, row, lane, G, a);
    reduce_group<G>(a);
    if (active && lane == 0) finish_fast(v, row, a, frame_out);
  }
}

template <class T, int kMode>
void launch_mode(const PlanView& v, const void* frames, int count, double* out, cudaStream_t stream,
                 unsigned blocks) {
  const auto* f = static_cast<const T*>(frames);
  switch (v.s.row_group) {
    case 2:
      integrate_kernel<T, 2, kMode><<<blocks, kBlockThreads, 0, stream>>>(v, f, count, out);
      return;
    case 8:
      integrate_kernel<T, 8, kMode><<<blocks, kBlockThreads, 0, stream>>>(v, f, count, out);
      return;
    case 32:
      integrate_kernel<T, 32, kMode><<<blocks, kBlockThreads, 0, stream>>>(v, f, count, out);
      return;
    case 256:
      integrate_kernel<T, 256, kMode><<<blocks, kBlockThreads, 0, stream>>>(v, f, count, out);
      return;
    default:
      throw Error(ErrorCategory::kInternal,
                  "CUDA integrator: row group " + std::to_string(v.s.row_group) + " not compiled");
  }
}

template <class T>
void launch_typed(const PlanView& v, const void* frames, int count, double* out,
                  cudaStream_t stream, unsigned blocks) {
  if (v.s.azimuthal) {
    launch_mode<T, kModeAzimuthal>(v, frames, count, out, stream, blocks);
  } else if (v.s.poisson) {
    launch_mode<T, kModePoisson>(v, frames, count, out, stream, blocks);
  } else {
    launch_mode<T, kModeNone>(v, frames, count, out, stream, blocks);
  }
}

/// Queues the kernel for `count` frames of `dtype` at `frames` (device) into `out` (device).
void launch(DType dtype, const PlanView& v, const void* frames, int count, double* out,
            cudaStream_t stream) {
  const std::int64_t blocks = launch_blocks(v.s, count);
  if (blocks <= 0 || blocks > 0x7fffffff) {
    throw Error(ErrorCategory::kInternal,
                "CUDA integrator: " + std::to_string(blocks) + " thread blocks for one launch");
  }
  const auto b = static_cast<unsigned>(blocks);
  switch (dtype) {
    case DType::kUint8:
      return launch_typed<std::uint8_t>(v, frames, count, out, stream, b);
    case DType::kUint16:
      return launch_typed<std::uint16_t>(v, frames, count, out, stream, b);
    case DType::kUint32:
      return launch_typed<std::uint32_t>(v, frames, count, out, stream, b);
    case DType::kInt32:
      return launch_typed<std::int32_t>(v, frames, count, out, stream, b);
    case DType::kFloat32:
      return launch_typed<float>(v, frames, count, out, stream, b);
    case DType::kInt16:
      return launch_typed<std::int16_t>(v, frames, count, out, stream, b);
    case DType::kInt64:
      return launch_typed<std::int64_t>(v, frames, count, out, stream, b);
    case DType::kFloat64:
      return launch_typed<double>(v, frames, count, out, stream, b);
  }
}

// ------------------------------------------------------------------------------ integrator

/// One buffer set: a stream and the memory of one batch in flight.
struct BufferSet {
  std::string where;  // "cuda:N stream K"
  Stream stream;
  Event done;
  DeviceBuffer frames;  // max(max_batch x 4, 8) bytes x pixels (frame_buffer_bytes)
  DeviceBuffer sums;    // max_batch x 4 x bins float64
  PinnedBuffer host;    // same, on the host
  std::size_t count = 0;
  std::uint64_t ticket = 0;
  std::string frames_text;  // "frames 10-17" for messages

  BufferSet(const std::string& w, std::size_t frame_bytes, std::size_t sum_bytes)
      : where(w),
        stream(w),
        done(w),
        frames(frame_bytes, w + " frame buffer"),
        sums(sum_bytes, w + " sums buffer"),
        host(sum_bytes, w + " pinned sums buffer") {}
};

std::string describe_frames(std::span<const std::uint64_t> ids, std::size_t count) {
  if (ids.empty()) return std::to_string(count) + " frame(s)";
  std::string text = ids.size() == 1 ? "frame " : "frames ";
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) text += ",";
    text += std::to_string(ids[i]);
  }
  return text;
}

}  // namespace

struct CudaIntegrator::Impl {
  CudaOptions options;
  std::shared_ptr<DevicePlan> device_plan;
  PlanView view;  // device_plan->view with this integrator's row group
  std::vector<BufferSet> sets;
  std::deque<std::size_t> in_flight;  // set indices, oldest first
  std::size_t next_set = 0;
  std::uint64_t tickets = 0;

  // Work in flight reads the buffers and the plan: wait for it before anything is freed.
  ~Impl() {
    for (const BufferSet& set : sets) (void)cudaStreamSynchronize(set.stream.get());
  }
};

CudaIntegrator::CudaIntegrator(std::shared_ptr<const Plan> plan, CudaOptions options)
    : plan_(std::move(plan)), impl_(std::make_unique<Impl>()) {
  if (!plan_) throw Error(ErrorCategory::kInternal, "CudaIntegrator: null plan");
  if (plan_->settings().sigma_clip) {
    throw Error(ErrorCategory::kConfig,
                "CUDA integrator: sigma clipping (sigma_clip_ng) runs on the CPU only for now");
  }
  if (options.max_batch < 1 || options.max_batch > 64) {
    throw Error(ErrorCategory::kConfig,
                "CUDA max_batch " + std::to_string(options.max_batch) + " is outside [1, 64]");
  }
  if (options.buffers < 1 || options.buffers > 8) {
    throw Error(ErrorCategory::kConfig,
                "CUDA buffers " + std::to_string(options.buffers) + " is outside [1, 8]");
  }
  const auto* groups = std::begin(kRowGroupSizes);
  if (options.row_group != 0 &&
      std::find(groups, std::end(kRowGroupSizes), options.row_group) == std::end(kRowGroupSizes)) {
    throw Error(ErrorCategory::kConfig,
                "CUDA row_group " + std::to_string(options.row_group) + " is not 2, 8, 32 or 256");
  }
  impl_->options = options;
  use_device(options.device);
  impl_->device_plan = shared_device_plan(plan_, options.device);
  impl_->view = impl_->device_plan->view;
  if (options.row_group != 0) impl_->view.s.row_group = options.row_group;
  const std::size_t frame_bytes = frame_buffer_bytes(options.max_batch, plan_->pixels());
  const std::size_t sum_bytes = options.max_batch * 4 * plan_->bins() * sizeof(double);
  impl_->sets.reserve(options.buffers);
  for (std::size_t k = 0; k < options.buffers; ++k) {
    impl_->sets.emplace_back(device_name(options.device) + " stream " + std::to_string(k),
                             frame_bytes, sum_bytes);
  }
}

CudaIntegrator::~CudaIntegrator() {
  if (impl_) (void)cudaSetDevice(impl_->options.device);  // streams synchronize on destruction
}

const CudaOptions& CudaIntegrator::options() const noexcept { return impl_->options; }

const void* CudaIntegrator::device_plan_id() const noexcept { return impl_->device_plan.get(); }

std::size_t CudaIntegrator::max_frames(DType dtype) const noexcept {
  return max_frames_of(impl_->options.max_batch, dtype);
}

bool CudaIntegrator::can_submit() const noexcept {
  return impl_->in_flight.size() < impl_->sets.size();
}

std::size_t CudaIntegrator::in_flight() const noexcept { return impl_->in_flight.size(); }

std::uint64_t CudaIntegrator::submit(std::span<const FrameView> frames,
                                     std::span<const std::uint64_t> frame_ids) {
  if (!can_submit()) {
    throw Error(ErrorCategory::kInternal, "CudaIntegrator::submit: every buffer set is in use");
  }
  if (frames.empty() || frames.size() > max_frames(frames.front().dtype)) {
    throw Error(ErrorCategory::kInternal,
                "CudaIntegrator::submit: " + std::to_string(frames.size()) + " " +
                    std::string(dtype_name(frames.front().dtype)) +
                    " frames for a batch of at most " +
                    std::to_string(max_frames(frames.front().dtype)));
  }
  if (!frame_ids.empty() && frame_ids.size() != frames.size()) {
    throw Error(ErrorCategory::kInternal, "CudaIntegrator::submit: frame_ids size mismatch");
  }
  const DType dtype = frames.front().dtype;
  for (const FrameView& f : frames) {
    check_frame(*plan_, f);
    if (f.dtype != dtype) {
      throw Error(ErrorCategory::kInput, "a CUDA batch mixes " + std::string(dtype_name(dtype)) +
                                             " and " + std::string(dtype_name(f.dtype)) +
                                             " frames");
    }
  }
  const std::size_t index = impl_->next_set;
  BufferSet& set = impl_->sets[index];
  set.frames_text = describe_frames(frame_ids, frames.size());
  const std::string where = set.where + " " + set.frames_text;
  use_device(impl_->options.device);
  const std::size_t frame_bytes = frames.front().bytes();
  auto* device_frames = set.frames.as<std::byte>();
  for (std::size_t i = 0; i < frames.size(); ++i) {
    check(cudaMemcpyAsync(device_frames + i * frame_bytes, frames[i].data, frame_bytes,
                          cudaMemcpyHostToDevice, set.stream.get()),
          "cudaMemcpyAsync (frame to device)", where);
  }
  const DevicePlan& dp = *impl_->device_plan;
  launch(dtype, impl_->view, device_frames, static_cast<int>(frames.size()), set.sums.as<double>(),
         set.stream.get());
  check(cudaGetLastError(), "integration kernel launch", where);
  const std::size_t sum_bytes = frames.size() * 4 * dp.bins * sizeof(double);
  check(cudaMemcpyAsync(set.host.as<void>(), set.sums.as<void>(), sum_bytes, cudaMemcpyDeviceToHost,
                        set.stream.get()),
        "cudaMemcpyAsync (sums to host)", where);
  check(cudaEventRecord(set.done.get(), set.stream.get()), "cudaEventRecord", where);
  set.count = frames.size();
  set.ticket = ++impl_->tickets;
  impl_->in_flight.push_back(index);
  impl_->next_set = (index + 1) % impl_->sets.size();
  return set.ticket;
}

CudaIntegrator::Batch CudaIntegrator::collect() {
  if (impl_->in_flight.empty()) {
    throw Error(ErrorCategory::kInternal, "CudaIntegrator::collect: no batch in flight");
  }
  BufferSet& set = impl_->sets[impl_->in_flight.front()];
  impl_->in_flight.pop_front();
  check(cudaEventSynchronize(set.done.get()), "integration (copies or kernel)",
        set.where + " " + set.frames_text);
  return Batch{set.ticket, set.count, impl_->device_plan->bins, set.host.as<const double>()};
}

double CudaIntegrator::time_kernel(std::size_t frames, DType dtype, std::size_t repeats) {
  if (in_flight() != 0 || frames < 1 || frames > max_frames(dtype) || repeats < 1) {
    throw Error(ErrorCategory::kInternal, "CudaIntegrator::time_kernel: bad call");
  }
  use_device(impl_->options.device);
  BufferSet& set = impl_->sets[0];
  const std::string where = set.where + " kernel timing";
  cudaEvent_t start = nullptr, stop = nullptr;
  check(cudaEventCreate(&start), "cudaEventCreate", where);
  check(cudaEventCreate(&stop), "cudaEventCreate", where);
  float ms = 0;
  try {
    check(cudaEventRecord(start, set.stream.get()), "cudaEventRecord", where);
    for (std::size_t r = 0; r < repeats; ++r) {
      launch(dtype, impl_->view, set.frames.as<void>(), static_cast<int>(frames),
             set.sums.as<double>(), set.stream.get());
      check(cudaGetLastError(), "integration kernel launch", where);
    }
    check(cudaEventRecord(stop, set.stream.get()), "cudaEventRecord", where);
    check(cudaEventSynchronize(stop), "integration kernel", where);
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime", where);
  } catch (...) {
    (void)cudaEventDestroy(start);
    (void)cudaEventDestroy(stop);
    throw;
  }
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(stop);
  return static_cast<double>(ms) / 1e3 / static_cast<double>(repeats);
}

void CudaIntegrator::integrate(const FrameView& frame, BinSums& out) {
  integrate_batch(std::span<const FrameView>(&frame, 1), std::span<BinSums>(&out, 1));
}

void CudaIntegrator::integrate_batch(std::span<const FrameView> frames, std::span<BinSums> out) {
  if (frames.size() != out.size()) {
    throw Error(ErrorCategory::kInternal, "CudaIntegrator::integrate_batch: size mismatch");
  }
  if (in_flight() != 0) {
    throw Error(ErrorCategory::kInternal,
                "CudaIntegrator::integrate_batch: batches are in flight (collect them first)");
  }
  std::size_t next_in = 0, next_out = 0;
  while (next_out < frames.size()) {
    while (next_in < frames.size() && can_submit()) {
      std::size_t n = 1;
      while (n < max_frames(frames[next_in].dtype) && next_in + n < frames.size() &&
             frames[next_in + n].dtype == frames[next_in].dtype) {
        ++n;
      }
      submit(frames.subspan(next_in, n));
      next_in += n;
    }
    const Batch batch = collect();
    for (std::size_t i = 0; i < batch.frames; ++i) batch.unpack(i, out[next_out + i]);
    next_out += batch.frames;
  }
}

// ------------------------------------------------------------------------------ probe, pinning

CudaProbe probe_cuda_devices() noexcept {
  CudaProbe probe;
  probe.cuda_build = true;
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    probe.reason = std::string("no CUDA device visible: ") + cudaGetErrorString(status);
    return probe;
  }
  if (count == 0) {
    probe.reason = "no CUDA device visible";
    return probe;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    probe.devices.push_back(
        {i, prop.name, static_cast<std::size_t>(prop.totalGlobalMem), prop.major, prop.minor});
  }
  if (probe.devices.empty()) probe.reason = "no CUDA device could be queried";
  return probe;
}

PinnedHostRegion::PinnedHostRegion(int device, void* data, std::size_t bytes) : device_(device) {
  use_device(device);
  std::ostringstream where;
  where << device_name(device) << " host range " << data << " (" << bytes << " bytes)";
  check(cudaHostRegister(data, bytes, cudaHostRegisterPortable), "cudaHostRegister", where.str());
  data_ = data;
}

PinnedHostRegion::~PinnedHostRegion() {
  if (data_ == nullptr) return;
  (void)cudaSetDevice(device_);
  (void)cudaHostUnregister(data_);
}

}  // namespace azflow::integrate
