#pragma once
// CUDA integrator: the GPU twin of CpuIntegrator (same plan, same per-frame BinSums), plus an
// asynchronous batch interface for the integrate stage. No CUDA header here (pimpl): this header
// is plain C++ and compiles without a toolkit. Library azflow::integrate_cuda: the real backend
// (cuda_integrator.cu) in CUDA builds, a stub whose constructors throw and whose probe reports
// "built without CUDA" otherwise (cuda_stub.cpp).
//
// Data flow: the plan is packed (gpu_plan.hpp) and uploaded once per device and process, shared
// by every CudaIntegrator of that device (a process-wide cache of weak references). Each
// integrator owns `buffers` buffer sets (default 2: double buffering), each with its own CUDA
// stream, a device frame buffer for max_batch frames (max_batch / 2 of int64 or float64), a device
// and a pinned host result buffer for max_batch x 4 x bins float64, and an event. submit() queues,
// on the next free set's stream, the host-to-device copies of a batch of frames (DMA straight from
// the source memory when it is registered, e.g. the frames ring through PinnedHostRegion), one
// kernel launch over all of them and the copy of their sums back; collect() waits for the oldest
// batch. While one set's kernel runs the other's copies proceed. Kernels: gpu_kernel_math.hpp
// (algorithm) and cuda_integrator.cu.
//
// Numerics: every per-bin sum is accumulated in float64 (the CPU sums integer frames without
// splitting in int64; float64 sums of integers are exact below 2^53, so both agree exactly
// there). Elsewhere the order of the float64 additions differs from the CPU's (several threads per
// bin, merged by a tree), so results agree to float64 rounding: relative differences of order
// 1e-15 x entries per bin; tests/integrate/cuda_integrator_test.cpp allows 1e-9.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/dtype.hpp"
#include "base/error.hpp"
#include "stages/integrate/cpu_integrator.hpp"

namespace azflow::integrate {

/// A failed CUDA runtime call (category kResource). The message names the device ("cuda:N"),
/// the stream and the frames concerned, the call and CUDA's own error string. The device may be
/// unusable afterwards (sticky errors): the integrate stage exits on it so that the daemon
/// reclaims and redoes its frames.
class CudaError : public Error {
 public:
  explicit CudaError(const std::string& message) : Error(ErrorCategory::kResource, message) {}
};

/// One visible CUDA device.
struct CudaDeviceInfo {
  int ordinal = 0;               ///< CUDA device ordinal (after CUDA_VISIBLE_DEVICES)
  std::string name;              ///< e.g. "NVIDIA H100 80GB HBM3"
  std::size_t memory_bytes = 0;  ///< total device memory
  int compute_major = 0;         ///< compute capability, e.g. 9
  int compute_minor = 0;         ///< e.g. 0
};

/// What probe_cuda_devices() found.
struct CudaProbe {
  bool cuda_build = false;              ///< azflow was built with the CUDA backend
  std::vector<CudaDeviceInfo> devices;  ///< visible devices (empty: see reason)
  std::string reason;  ///< why there is none: "built without CUDA", the CUDA error string
};

/// Asks the CUDA runtime for the visible devices. Never throws; with no driver or no device the
/// list is empty and `reason` says why.
CudaProbe probe_cuda_devices() noexcept;

/// How a CudaIntegrator runs.
struct CudaOptions {
  int device = 0;             ///< CUDA device ordinal
  std::size_t max_batch = 8;  ///< frames per kernel launch (1..64)
  std::size_t buffers = 2;    ///< batches in flight, each with its own stream (1..8)
  /// Threads per CSR row: 0 = the plan's own choice (gpu::choose_row_group), else one of
  /// gpu::kRowGroupSizes (tests use it to run every kernel shape).
  int row_group = 0;
};

/// Bytes of one buffer set's device frame buffer for `max_batch` frames of `pixels` pixels:
/// room for max_batch 4-byte frames, and for at least one frame of an 8-byte dtype.
constexpr std::size_t frame_buffer_bytes(std::size_t max_batch, std::size_t pixels) noexcept {
  return (max_batch * 4 > 8 ? max_batch * 4 : 8) * pixels;
}

/// Frames of `dtype` that fit one batch of a CudaIntegrator with `max_batch`: max_batch for 1-
/// to 4-byte dtypes, max(1, max_batch / 2) for int64 and float64 (frame_buffer_bytes).
constexpr std::size_t max_frames_of(std::size_t max_batch, DType dtype) noexcept {
  if (dtype_size(dtype) <= 4) return max_batch;
  return max_batch / 2 > 1 ? max_batch / 2 : 1;
}

/// Device memory and streams are released in the destructor (which waits for work in flight).
/// Thread-compatible: one integrator per thread; integrators share the device plan.
class CudaIntegrator {
 public:
  /// Sums of a collected batch, in pinned host memory: frame i's sums are 4 x bins float64
  /// (signal, variance, normalization, count), the layout of a results-ring slot. Valid until the
  /// next submit() or the integrator's destruction.
  struct Batch {
    std::uint64_t ticket = 0;      ///< what submit() returned
    std::size_t frames = 0;        ///< frames in the batch
    std::size_t bins = 0;          ///< bins per frame
    const double* sums = nullptr;  ///< frames x 4 x bins
    /// Frame i's 4 x bins sums.
    [[nodiscard]] std::span<const double> frame(std::size_t i) const noexcept {
      return {sums + i * 4 * bins, 4 * bins};
    }
    /// Copies frame i's sums into `out` (resized to bins).
    void unpack(std::size_t i, BinSums& out) const {
      const double* s = sums + i * 4 * bins;
      out.signal.assign(s, s + bins);
      out.variance.assign(s + bins, s + 2 * bins);
      out.normalization.assign(s + 2 * bins, s + 3 * bins);
      out.count.assign(s + 3 * bins, s + 4 * bins);
    }
  };

  /// Uploads the plan to device `options.device` (or shares the copy another integrator of this
  /// process uploaded) and allocates the buffer sets. Throws azflow::Error (kConfig) for options
  /// out of range or a plan with sigma_clip (CPU only for now), CudaError if the device cannot be
  /// used or memory is short (naming the device and how much was asked), and in builds without
  /// CUDA.
  CudaIntegrator(std::shared_ptr<const Plan> plan, CudaOptions options = {});
  ~CudaIntegrator();
  CudaIntegrator(const CudaIntegrator&) = delete;
  CudaIntegrator& operator=(const CudaIntegrator&) = delete;

  [[nodiscard]] const Plan& plan() const noexcept { return *plan_; }
  [[nodiscard]] const CudaOptions& options() const noexcept;
  /// Identity of the device copy of the plan: equal for integrators that share one (same plan
  /// object, same device, same process). For tests and logs.
  [[nodiscard]] const void* device_plan_id() const noexcept;

  /// Integrates one frame synchronously, as CpuIntegrator::integrate does (same checks, same
  /// sums). Only when nothing is in flight; throws azflow::Error (kInternal) otherwise.
  void integrate(const FrameView& frame, BinSums& out);
  /// Integrates `frames` synchronously in launches of up to max_batch frames, double-buffered;
  /// out[i] gets frame i's sums. Sizes must match. Only when nothing is in flight.
  void integrate_batch(std::span<const FrameView> frames, std::span<BinSums> out);

  /// Frames of `dtype` one submit() takes: max_batch for 1- to 4-byte dtypes; for int64 and
  /// float64 as many as the frame buffer (sized for max_batch 4-byte frames, and at least one
  /// 8-byte frame) holds: max(1, max_batch / 2).
  [[nodiscard]] std::size_t max_frames(DType dtype) const noexcept;
  /// True while a buffer set is free for submit().
  [[nodiscard]] bool can_submit() const noexcept;
  /// Batches submitted and not yet collected.
  [[nodiscard]] std::size_t in_flight() const noexcept;
  /// Queues one batch (1..max_frames(dtype) frames of one dtype, each of the plan's shape: checked
  /// as CpuIntegrator checks, azflow::Error kInput) and returns at once with its ticket. The
  /// frames' memory must stay untouched until the batch is collected. `frame_ids` (empty, or one
  /// per frame) name the frames in error messages. Throws azflow::Error (kInternal) if no buffer
  /// set is free, CudaError if a CUDA call fails.
  std::uint64_t submit(std::span<const FrameView> frames,
                       std::span<const std::uint64_t> frame_ids = {});
  /// Waits for the oldest batch in flight and returns its sums. Throws azflow::Error (kInternal)
  /// if none is in flight, CudaError if its copies or kernel failed.
  Batch collect();

  /// Benchmark hook: seconds per kernel launch over the first `frames` frames of `dtype` left in
  /// the first buffer set by the last batch submitted there, averaged over `repeats` launches
  /// timed with CUDA events (no copies). Only when nothing is in flight; throws azflow::Error
  /// (kInternal) otherwise or for frames outside [1, max_batch], CudaError if a call fails.
  double time_kernel(std::size_t frames, DType dtype, std::size_t repeats);

 private:
  struct Impl;
  std::shared_ptr<const Plan> plan_;
  std::unique_ptr<Impl> impl_;
};

/// Registers a host memory range with the CUDA driver as pinned (page-locked) memory for as long
/// as the object lives (cudaHostRegister / cudaHostUnregister), so that copies from it run as
/// asynchronous DMA. The integrate stage registers the whole payload area of its frames ring
/// (ipc::Ring::payload_area). Throws CudaError naming the device and the range if registration
/// fails (e.g. RLIMIT_MEMLOCK), and in builds without CUDA.
class PinnedHostRegion {
 public:
  PinnedHostRegion(int device, void* data, std::size_t bytes);
  ~PinnedHostRegion();
  PinnedHostRegion(const PinnedHostRegion&) = delete;
  PinnedHostRegion& operator=(const PinnedHostRegion&) = delete;

 private:
  int device_ = 0;
  void* data_ = nullptr;
};

}  // namespace azflow::integrate
