// Sigma clipping (pyFAI 0.21 sigma_clip_ng); the algorithm is described in sigma_clip.hpp.

#include "stages/integrate/sigma_clip.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <type_traits>

#include "base/error.hpp"

namespace azflow::integrate {

namespace {

// Sums of one bin over its kept pixels.
struct ClipSums {
  double sig = 0, var = 0, norm = 0, count = 0;
};

// pyFAI preproc's validity test of a raw value: NaN is invalid (floating-point frames only),
// the dummy is compared in float32.
struct ValueFilter {
  bool check_dummy = false;
  float dummy = 0, delta = 0;

  template <class T>
  [[nodiscard]] bool valid(float raw) const {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(raw)) return false;
    }
    if (!check_dummy) return true;
    return delta == 0.0f ? raw != dummy : std::fabs(raw - dummy) > delta;
  }
};

template <class T>
void preprocess(const Plan& plan, const FrameView& frame, SigmaClipBuffers& b) {
  const IntegrationSettings& s = plan.settings();
  ValueFilter filter;
  if (s.dummy) {
    filter.check_dummy = true;
    filter.dummy = static_cast<float>(*s.dummy);
    filter.delta = static_cast<float>(s.delta_dummy.value_or(0.0));
  }
  const std::size_t n = plan.pixels();
  b.signal.resize(n);
  b.variance.resize(n);
  b.normalization.resize(n);
  b.keep.resize(n);
  const T* data = static_cast<const T*>(frame.data);
  const std::span<const float> dark = plan.dark();
  const std::span<const std::uint8_t> invalid = plan.invalid();
  const std::span<const float> norm = plan.normalization();
  for (std::size_t p = 0; p < n; ++p) {
    const auto raw = static_cast<float>(data[p]);
    const float sig = raw - (dark.empty() ? 0.0f : dark[p]);
    b.signal[p] = sig;
    b.variance[p] = std::max(raw, 1.0f);
    b.normalization[p] = norm[p];
    const bool ok = (invalid.empty() || invalid[p] == 0) && filter.valid<T>(raw) &&
                    !std::isnan(sig) && !std::isnan(norm[p]) && norm[p] != 0.0f;
    b.keep[p] = ok ? 1 : 0;
  }
}

// Integrates the kept pixels of CSR row `bin` (pyFAI CsrIntegrator.sigma_clip's inner loop).
ClipSums integrate_bin(const Plan& plan, const SigmaClipBuffers& b, std::size_t bin,
                       bool azimuthal) {
  const auto& indptr = plan.csr_indptr();
  const auto indices = plan.csr_indices();
  const auto weights = plan.csr_weights();
  ClipSums a;
  for (std::int32_t k = indptr[bin]; k < indptr[bin + 1]; ++k) {
    const double w = weights[k];
    const auto p = static_cast<std::size_t>(indices[k]);
    if (w == 0.0 || b.keep[p] == 0) continue;
    const double sig = b.signal[p], norm = b.normalization[p];
    if (!azimuthal) {
      a.sig += w * sig;
      a.var += w * w * static_cast<double>(b.variance[p]);
      a.norm += w * norm;
      a.count += w;
    } else if (a.norm == 0.0) {  // first pixel: the variance stays 0
      a.sig = w * sig;
      a.norm = w * norm;
      a.count = w;
    } else {  // weighted incremental variance (Schubert & Gertz, SSDBM 2018)
      const double omega_a = a.norm, omega_b = w * norm, x = w * sig;
      a.norm = omega_a + omega_b;
      const double delta = omega_b * a.sig - omega_a * x;
      a.var += delta * delta / (a.norm * omega_a * omega_b);
      a.sig += x;
      a.count += w;
    }
  }
  return a;
}

// Drops the kept pixels of row `bin` with |s/n - mean| > cutoff; returns how many.
std::size_t clip_bin(const Plan& plan, SigmaClipBuffers& b, std::size_t bin, double mean,
                     double cutoff) {
  const auto& indptr = plan.csr_indptr();
  const auto indices = plan.csr_indices();
  const auto weights = plan.csr_weights();
  std::size_t dropped = 0;
  for (std::int32_t k = indptr[bin]; k < indptr[bin + 1]; ++k) {
    const auto p = static_cast<std::size_t>(indices[k]);
    if (weights[k] == 0.0f || b.keep[p] == 0) continue;
    const double x = static_cast<double>(b.signal[p]) / static_cast<double>(b.normalization[p]);
    if (std::fabs(x - mean) > cutoff) {
      b.keep[p] = 0;
      ++dropped;
    }
  }
  return dropped;
}

ClipSums clip_one_bin(const Plan& plan, SigmaClipBuffers& b, std::size_t bin, const SigmaClip& clip,
                      bool azimuthal) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  ClipSums a = integrate_bin(plan, b, bin, azimuthal);
  for (std::size_t iter = 0; iter < clip.max_iter; ++iter) {
    if (a.norm == 0.0 || a.count == 0.0) break;
    const double mean = a.sig / a.norm;
    const double std_dev = a.norm > 0.0 ? std::sqrt(a.var / a.norm) : nan;
    const double n = std::max(3.0, a.count);
    const double chauvenet = std::sqrt(2.0 * std::log(n / std::sqrt(2.0 * std::numbers::pi)));
    const double cutoff = std::max(clip.thres, chauvenet) * std_dev;
    if (clip_bin(plan, b, bin, mean, cutoff) == 0) break;
    a = integrate_bin(plan, b, bin, azimuthal);
  }
  return a;
}

template <class T>
void clip_typed(const Plan& plan, const FrameView& frame, SigmaClipBuffers& b, BinSums& out) {
  preprocess<T>(plan, frame, b);
  const IntegrationSettings& s = plan.settings();
  const bool azimuthal = s.error_model == ErrorModel::kAzimuthal;
  out.reset(plan.bins());
  for (std::size_t bin = 0; bin < plan.bins(); ++bin) {
    const ClipSums a = clip_one_bin(plan, b, bin, *s.sigma_clip, azimuthal);
    if (a.count <= 0.0 || a.norm == 0.0) continue;  // empty bin: all sums 0
    out.signal[bin] = a.sig;
    out.variance[bin] = a.var;
    out.normalization[bin] = a.norm;
    out.count[bin] = a.count;
  }
}

}  // namespace

void sigma_clip_frame(const Plan& plan, const FrameView& frame, SigmaClipBuffers& buffers,
                      BinSums& out) {
  if (!plan.settings().sigma_clip) {
    throw Error(ErrorCategory::kInternal, "sigma_clip_frame: the plan has no sigma_clip setting");
  }
  check_frame(plan, frame);
  switch (frame.dtype) {
    case DType::kUint8:
      return clip_typed<std::uint8_t>(plan, frame, buffers, out);
    case DType::kUint16:
      return clip_typed<std::uint16_t>(plan, frame, buffers, out);
    case DType::kUint32:
      return clip_typed<std::uint32_t>(plan, frame, buffers, out);
    case DType::kInt16:
      return clip_typed<std::int16_t>(plan, frame, buffers, out);
    case DType::kInt32:
      return clip_typed<std::int32_t>(plan, frame, buffers, out);
    case DType::kInt64:
      return clip_typed<std::int64_t>(plan, frame, buffers, out);
    case DType::kFloat32:
      return clip_typed<float>(plan, frame, buffers, out);
    case DType::kFloat64:
      return clip_typed<double>(plan, frame, buffers, out);
  }
}

void clipped_std(const BinSums& sums, std::vector<float>& std_dev, float empty) {
  std_dev.resize(sums.bins());
  for (std::size_t b = 0; b < sums.bins(); ++b) {
    std_dev[b] = sums.count[b] > 0.0
                     ? static_cast<float>(std::sqrt(sums.variance[b] / sums.normalization[b]))
                     : empty;
  }
}

}  // namespace azflow::integrate
