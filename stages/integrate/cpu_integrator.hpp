#pragma once
// CPU integrator: applies a Plan to frames, producing per-bin partial sums.

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "base/dtype.hpp"
#include "stages/integrate/plan.hpp"

namespace azflow::integrate {

/// Per-bin partial sums of one frame (or several frames added together), in float64, as pyFAI's
/// new-generation integrators define them (pyFAI/ext/CSR_common.pxi, integrate_ng), with w the
/// matrix weight of pixel p in the bin:
///   signal = sum w (raw - dark), variance = sum w^2 var (Poisson) or the weighted azimuthal
///   variance, normalization = sum w norm_p, count = sum w over valid pixels.
/// Sums (not ratios) are what travels between workers, so that sums over frames stay exact.
struct BinSums {
  std::vector<double> signal;
  std::vector<double> variance;
  std::vector<double> normalization;
  std::vector<double> count;

  /// Resizes all four to `bins` and zeroes them.
  void reset(std::size_t bins);
  [[nodiscard]] std::size_t bins() const noexcept { return signal.size(); }
  /// Adds another frame's sums bin by bin (Poisson / none). Throws azflow::Error (kInternal) if
  /// the sizes differ.
  void add(const BinSums& other);
};

/// Intensity and sigma from sums: I = signal / normalization, sigma = sqrt(variance) /
/// normalization; bins with count == 0 get `empty` (pyFAI fills them with its dummy; azflow's
/// files store 0). `sigma` may be empty to skip it. Spans must have sums.bins() elements.
void finalize(const BinSums& sums, std::span<float> intensity, std::span<float> sigma,
              float empty = 0.0f);

/// Applies one plan to frames on the CPU. Thread-compatible: one integrator per thread, sharing
/// the plan. `threads` > 1 splits each frame's pixels over that many threads.
class CpuIntegrator {
 public:
  explicit CpuIntegrator(std::shared_ptr<const Plan> plan, std::size_t threads = 1);
  ~CpuIntegrator();
  CpuIntegrator(const CpuIntegrator&) = delete;
  CpuIntegrator& operator=(const CpuIntegrator&) = delete;

  [[nodiscard]] const Plan& plan() const noexcept { return *plan_; }

  /// Integrates one frame into `out` (reset to plan().bins()). The frame must be rows x cols of
  /// the plan, of any DType (uint8/16/32, int16/32/64, float32/64; each value is converted to
  /// float32 first, as pyFAI's preproc does); else throws azflow::Error (kInput) naming the
  /// expected and actual shape. Pixels that are masked, NaN, or equal to the dummy value
  /// (compared in float32, as pyFAI does) are left out. With plan().settings().sigma_clip the
  /// sums are those left after sigma clipping (sigma_clip.hpp), on one thread.
  void integrate(const FrameView& frame, BinSums& out);

 private:
  struct Impl;
  std::shared_ptr<const Plan> plan_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace azflow::integrate
