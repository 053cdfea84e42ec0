#pragma once
// The arithmetic of the CUDA integration kernels, written once for the device (nvcc) and the
// host (g++), so that the CPU tests run exactly the per-row loops and merges the kernels run
// (tests/integrate/gpu_plan_test.cpp emulates a launch lane by lane). Internal header of the
// integrate library: no CUDA header is included; under nvcc the functions are __host__
// __device__.
//
// Algorithm (one CSR row = one bin, one frame): the G threads of a row group take the row's
// entries k = begin + lane, begin + lane + G, ... (consecutive lanes read consecutive entries:
// coalesced CSR reads), each accumulating its own partial sums in float64; the G partials are then
// merged by a tree (lane i takes lane i + off for off = G/2, ..., 1 within a warp; warps of a
// 256-thread group then merged in order by the first lane). Per entry the pixel value is
// converted exactly as the CPU integrator converts it (cpu_integrator.cpp):
//   - no splitting: the value itself in float64 (integer frames are thus summed exactly, as the
//     CPU's int64 sums are, as long as a bin's sum stays below 2^53);
//   - bbox splitting: float32(value) x weight in float64;
//   - the dummy test in float32 (pyFAI preproc), the finiteness test only for float32 frames.
// Fast path (error model none / Poisson): a row accumulates w*value and (Poisson) w*w*max(value,
// floor) over its valid pixels; count, normalization and dark come from the plan's static sums
// minus the entries of pixels this frame made invalid, which the lanes also accumulate. A bin
// whose every entry was invalid is exactly zero. Azimuthal path: pyFAI 0.21's weighted
// incremental variance per lane (CSR_common.pxi; Schubert & Gertz, SSDBM 2018), the lanes' partial
// results merged with Chan et al.'s pairwise formula, as the CPU merges its threads.

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "stages/integrate/gpu_plan.hpp"

#if defined(__CUDACC__)
#define AZFLOW_HD __host__ __device__ __forceinline__
#else
#define AZFLOW_HD inline
#endif

namespace azflow::integrate::gpu {

/// Device (or host) pointers to one uploaded PackedPlan, plus its settings.
struct PlanView {
  KernelSettings s;
  const std::int32_t* indptr = nullptr;
  const std::int32_t* indices = nullptr;
  const float* weights = nullptr;
  const float* normalization = nullptr;
  const float* dark = nullptr;  ///< null without a dark
  const std::int32_t* static_entries = nullptr;
  const double* static_count = nullptr;
  const double* static_norm = nullptr;
  const double* static_dark = nullptr;
};

/// One lane's partial sums on the fast path: signal and variance of its valid entries, and the
/// static contributions of its entries that this frame made invalid.
/// Trivial (no member initializers) so that it can live in __shared__ memory: value-initialize
/// it (`FastLane a{}`).
struct FastLane {
  double sig, var, bad_count, bad_norm, bad_dark;
  std::int32_t bad_entries;
};

/// One lane's accumulator on the azimuthal path (cpu_integrator.cpp's Acc); trivial, as FastLane.
struct AzimLane {
  double sig, var, norm, count;
};

AZFLOW_HD void merge_fast(FastLane& a, const FastLane& b);
AZFLOW_HD void merge_azim(AzimLane& a, const AzimLane& b);
/// The merge of either lane type (for the kernels' generic group reduction).
AZFLOW_HD void merge_lanes(FastLane& a, const FastLane& b) { merge_fast(a, b); }
AZFLOW_HD void merge_lanes(AzimLane& a, const AzimLane& b) { merge_azim(a, b); }

/// pyFAI preproc drops NaN raw values and keeps infinite ones.
AZFLOW_HD bool not_nan(float x) {
#if defined(__CUDA_ARCH__)
  return !isnan(x);
#else
  return !std::isnan(x);
#endif
}

/// pyFAI preproc's validity test of a raw value (float32 comparison with the dummy).
template <class T>
AZFLOW_HD bool valid_value(const KernelSettings& s, float raw) {
  if constexpr (!std::is_integral_v<T>) {
    if (!not_nan(raw)) return false;
  }
  if (!s.check_dummy) return true;
  if (s.delta_dummy == 0.0f) return raw != s.dummy;
  const float d = raw - s.dummy;
  return (d < 0.0f ? -d : d) > s.delta_dummy;
}

/// True for the integer types whose raw values are summed exactly without splitting (8 to 32
/// bits, as the CPU integrator's integer sums); int64 and floating types are first rounded to
/// float32, as pyFAI's preproc does.
template <class T>
inline constexpr bool kExactRawSums = std::is_integral_v<T> && sizeof(T) <= 4;

/// The signal value of raw pixel `x`, as the CPU sums it: exact for kExactRawSums types without
/// splitting, float32 otherwise.
template <class T>
AZFLOW_HD double signal_value(const KernelSettings& s, T x) {
  if (s.split || !kExactRawSums<T>) return static_cast<double>(static_cast<float>(x));
  return static_cast<double>(x);
}

/// Poisson variance of raw pixel `x`: max(value, floor) in the precision signal_value uses.
template <class T>
AZFLOW_HD double poisson_value(const KernelSettings& s, T x) {
  if (s.split || !kExactRawSums<T>) {
    const float r = static_cast<float>(x);
    return static_cast<double>(r < s.variance_floor ? s.variance_floor : r);
  }
  const double r = static_cast<double>(x);
  return r < static_cast<double>(s.variance_floor) ? static_cast<double>(s.variance_floor) : r;
}

/// Accumulates the entries of `row` that lane `lane` of a group of `group` threads owns.
template <class T, bool kPoisson>
AZFLOW_HD void fast_lane(const PlanView& v, const T* frame, std::int64_t row, int lane, int group,
                         FastLane& a) {
  const std::int32_t end = v.indptr[row + 1];
  for (std::int32_t k = v.indptr[row] + lane; k < end; k += group) {
    const std::int32_t p = v.indices[k];
    const T x = frame[p];
    const double w = v.weights[k];
    if (!valid_value<T>(v.s, static_cast<float>(x))) {
      a.bad_count += w;
      a.bad_norm += w * v.normalization[p];
      if (v.dark != nullptr) a.bad_dark += w * v.dark[p];
      ++a.bad_entries;
      continue;
    }
    a.sig += w * signal_value<T>(v.s, x);
    if constexpr (kPoisson) a.var += w * w * poisson_value<T>(v.s, x);
  }
}

/// Adds lane b's partial sums to lane a's.
AZFLOW_HD void merge_fast(FastLane& a, const FastLane& b) {
  a.sig += b.sig;
  a.var += b.var;
  a.bad_count += b.bad_count;
  a.bad_norm += b.bad_norm;
  a.bad_dark += b.bad_dark;
  a.bad_entries += b.bad_entries;
}

/// Writes bin `row` of one frame's sums from the merged lanes: out is 4 x bins float64 (signal,
/// variance, normalization, count), the layout of a results-ring slot.
AZFLOW_HD void finish_fast(const PlanView& v, std::int64_t row, const FastLane& a, double* out) {
  const std::int64_t bins = v.s.bins;
  double sig = 0, var = 0, norm = 0, count = 0;
  if (v.static_entries[row] - a.bad_entries > 0) {
    sig = a.sig - v.static_dark[row] + a.bad_dark;
    var = v.s.poisson ? a.var : 0.0;
    norm = v.static_norm[row] - a.bad_norm;
    count = v.static_count[row] - a.bad_count;
  }
  out[row] = sig;
  out[bins + row] = var;
  out[2 * bins + row] = norm;
  out[3 * bins + row] = count;
}

/// Adds pixel value x = w * sig with weight w * norm to an azimuthal accumulator (the CPU's
/// add_azimuthal, pyFAI 0.21 integrate_ng).
AZFLOW_HD void add_azimuthal(AzimLane& a, double w, float sig, float norm) {
  const double x = w * sig, omega_b = w * norm;
  if (a.count == 0.0) {
    a.sig = x;
    a.norm = omega_b;
    a.count = w;
    return;
  }
  const double omega_a = a.norm;
  a.norm = omega_a + omega_b;
  if (omega_b != 0.0 && omega_a != 0.0) {
    const double delta = omega_b * a.sig - omega_a * x;
    a.var += delta * delta / (a.norm * omega_a * omega_b);
  }
  a.sig += x;
  a.count += w;
}

/// Accumulates the valid entries of `row` that lane `lane` of a group of `group` owns.
template <class T>
AZFLOW_HD void azim_lane(const PlanView& v, const T* frame, std::int64_t row, int lane, int group,
                         AzimLane& a) {
  const std::int32_t end = v.indptr[row + 1];
  for (std::int32_t k = v.indptr[row] + lane; k < end; k += group) {
    const std::int32_t p = v.indices[k];
    const auto raw = static_cast<float>(frame[p]);
    if (!valid_value<T>(v.s, raw)) continue;
    const float sig = raw - (v.dark != nullptr ? v.dark[p] : 0.0f);
    add_azimuthal(a, static_cast<double>(v.weights[k]), sig, v.normalization[p]);
  }
}

/// Merges azimuthal accumulator b into a (the CPU's merge_azimuthal: Chan et al.'s pairwise
/// update; plain sums when either side has no normalization).
AZFLOW_HD void merge_azim(AzimLane& a, const AzimLane& b) {
  if (a.count == 0.0) {
    a = b;
    return;
  }
  if (b.count == 0.0 || a.norm == 0.0 || b.norm == 0.0) {
    a.sig += b.sig;
    a.var += b.var;
    a.norm += b.norm;
    a.count += b.count;
    return;
  }
  const double n = a.norm + b.norm;
  const double delta = b.norm * a.sig - a.norm * b.sig;
  a.var += b.var + delta * delta / (n * a.norm * b.norm);
  a.sig += b.sig;
  a.norm = n;
  a.count += b.count;
}

/// Writes bin `row` of one frame's azimuthal sums (layout as finish_fast).
AZFLOW_HD void finish_azim(const PlanView& v, std::int64_t row, const AzimLane& a, double* out) {
  const std::int64_t bins = v.s.bins;
  out[row] = a.sig;
  out[bins + row] = a.var;
  out[2 * bins + row] = a.norm;
  out[3 * bins + row] = a.count;
}

}  // namespace azflow::integrate::gpu
