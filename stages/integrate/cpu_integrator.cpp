// CPU integrator.
//
// Algorithm: the plan holds the pixel-to-bin matrix twice; this backend streams through its
// transpose (per pixel: bins and weights), so the frame, the per-pixel normalization and the bin
// lists are read sequentially once per frame and only the small per-bin accumulators are written
// at random. Each pixel is first "preprocessed" as pyFAI's preproc does, in float32 (signal =
// raw - dark; Poisson variance = max(raw, 1) in 1D and raw in 2D, with no dark term, as pyFAI
// 0.21's integrate1d_ng / integrate2d_ng compute it; normalization from the plan;
// invalid if masked, equal to the dummy or NaN) and then accumulated in float64 into every
// bin it belongs to with weight w: signal += w s, variance += w^2 v, normalization += w n,
// count += w. For the azimuthal error model the variance is the weighted incremental form used by
// pyFAI 0.21 (CSR_common.pxi; Schubert & Gertz, SSDBM 2018). Within a bin pixels are visited in
// increasing index order, the order of pyFAI's CSR rows, so sums agree to the last rounding.
// With several threads each thread owns a contiguous block of pixels and its own accumulators,
// merged at the end (plain sums, or Chan's pairwise formula for the azimuthal variance).
//
// Fast path (error model none or Poisson, the common case): count, normalization and the dark
// terms of a bin do not depend on the frame, so the plan holds them (Plan::static_sums) and the
// hot loop only accumulates w * raw and w^2 * variance per pixel. Pixels found invalid in the
// frame (dummy, NaN) are collected and their static contributions subtracted afterwards.
// Two interleaved accumulator arrays (even / odd pixels) break the store-to-load dependency
// chains that neighbouring pixels of the same bin would otherwise form. The result equals
// pyFAI's up to the order of float64 additions.

#include "stages/integrate/cpu_integrator.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <thread>

#include "base/error.hpp"
#include "stages/integrate/gpu_kernel_math.hpp"
#include "stages/integrate/sigma_clip.hpp"

namespace azflow::integrate {

void BinSums::reset(std::size_t bins) {
  signal.assign(bins, 0.0);
  variance.assign(bins, 0.0);
  normalization.assign(bins, 0.0);
  count.assign(bins, 0.0);
}

void BinSums::add(const BinSums& other) {
  if (other.bins() != bins()) {
    throw Error(ErrorCategory::kInternal, "BinSums::add: " + std::to_string(other.bins()) +
                                              " bins added to " + std::to_string(bins()));
  }
  for (std::size_t b = 0; b < bins(); ++b) {
    signal[b] += other.signal[b];
    variance[b] += other.variance[b];
    normalization[b] += other.normalization[b];
    count[b] += other.count[b];
  }
}

void finalize(const BinSums& sums, std::span<float> intensity, std::span<float> sigma,
              float empty) {
  const std::size_t n = sums.bins();
  if (intensity.size() != n || (!sigma.empty() && sigma.size() != n)) {
    throw Error(ErrorCategory::kInternal, "finalize: output spans do not match the bin count");
  }
  for (std::size_t b = 0; b < n; ++b) {
    const bool filled = sums.count[b] > 0.0;
    intensity[b] = filled ? static_cast<float>(sums.signal[b] / sums.normalization[b]) : empty;
    if (!sigma.empty()) {
      sigma[b] =
          filled ? static_cast<float>(std::sqrt(sums.variance[b]) / sums.normalization[b]) : empty;
    }
  }
}

namespace {

// Accumulator of one bin, kept together so that one pixel touches one cache line; the same
// struct and arithmetic as the CUDA kernels' lanes (gpu_kernel_math.hpp), value-initialised here.
using Acc = gpu::AzimLane;
using gpu::add_azimuthal;

// Decides whether a preprocessed pixel value is valid (pyFAI preproc: NaN is invalid, infinite
// values are kept; dummy compared in float32).
struct PixelFilter {
  bool check_dummy = false;
  bool check_nan = false;
  float dummy = 0, delta = 0;

  [[nodiscard]] bool valid(float raw) const {
    if (check_nan && std::isnan(raw)) return false;
    if (!check_dummy) return true;
    return delta == 0.0f ? raw != dummy : std::fabs(raw - dummy) > delta;
  }
};

// Everything a pixel block needs, gathered once per frame. Pixels made invalid by the dark or
// flat are not in the plan's per-pixel lists, so only the frame's own values are tested here.
template <class T>
struct Job {
  const T* data;
  const Plan* plan;
  PixelFilter filter;
  const float* norm;
  const float* dark;     // null if none
  float variance_floor;  // Poisson variance = max(raw, floor): 1 (1D), -inf (2D)
};

// --- azimuthal error model ----------------------------------------------------------------
// add_azimuthal (pyFAI 0.21's weighted incremental variance, CSR_common.pxi integrate_ng;
// Schubert & Gertz, SSDBM 2018) and the thread merge gpu::merge_azim (Chan et al.'s pairwise
// update) come from gpu_kernel_math.hpp, shared with the CUDA kernels.

// Pixels [begin, end), every (bin, weight) entry of each valid pixel, in pixel order.
template <class T>
void azimuthal_block(const Job<T>& job, std::size_t begin, std::size_t end, Acc* acc) {
  const std::int32_t* ptr = job.plan->pixel_ptr().data();
  const std::int32_t* bins = job.plan->pixel_bins().data();
  const float* weights = job.plan->pixel_weights().data();
  for (std::size_t p = begin; p < end; ++p) {
    if (ptr[p] == ptr[p + 1]) continue;
    const auto raw = static_cast<float>(job.data[p]);
    if (!job.filter.valid(raw)) continue;
    const float sig = raw - (job.dark ? job.dark[p] : 0.0f);
    for (std::int32_t k = ptr[p]; k < ptr[p + 1]; ++k) {
      add_azimuthal(acc[bins[k]], static_cast<double>(weights[k]), sig, job.norm[p]);
    }
  }
}

// --- fast path: error model none / Poisson -----------------------------------------------

// Signal and variance accumulators of one bin.
struct SigVar {
  double sig = 0, var = 0;
};

// Exact integer sums of one bin, for integer frames of at most 32 bits without splitting: raw
// values are summed as integers (exact; pyFAI converts to float32 first, which is the same below
// 2^24 counts). int64 frames take the float32 path instead, as pyFAI does: their values may
// overflow an int64 sum, and above 2^24 float32 rounding is what pyFAI integrates.
struct IntSigVar {
  std::int64_t sig = 0, var = 0;
};

// Per-thread state of the fast path.
struct FastState {
  std::vector<SigVar> even, odd;       // pixels with even / odd index
  std::vector<IntSigVar> ints;         // integer frames without splitting
  std::vector<std::uint32_t> invalid;  // pixels found invalid in this frame
};

// Integer values [lo, hi] that pyFAI's float32 dummy test flags (float(raw) == dummy, or
// |float(raw) - dummy| <= delta in float32). float(x) is monotonic in x, so the flagged values
// form one interval, found by bisection over T's range; empty (lo > hi) if none.
template <class T>
std::pair<std::int64_t, std::int64_t> dummy_interval(const PixelFilter& f) {
  if (!f.check_dummy) return {1, 0};
  auto flagged = [&](std::int64_t x) { return !f.valid(static_cast<float>(static_cast<T>(x))); };
  auto below = [&](std::int64_t x) {  // float(x) lies below the flagged window
    const float v = static_cast<float>(static_cast<T>(x));
    return f.delta == 0.0f ? v < f.dummy : v - f.dummy < -f.delta;
  };
  std::int64_t lo = std::numeric_limits<T>::min(), hi = std::numeric_limits<T>::max();
  while (lo < hi) {  // first x not below the window
    const std::int64_t mid = lo + (hi - lo) / 2;
    below(mid) ? lo = mid + 1 : hi = mid;
  }
  const std::int64_t first = lo;
  if (!flagged(first)) return {1, 0};
  hi = std::numeric_limits<T>::max();
  while (lo < hi) {  // last flagged x
    const std::int64_t mid = lo + (hi - lo + 1) / 2;
    flagged(mid) ? lo = mid : hi = mid - 1;
  }
  return {first, lo};
}

template <class T, bool kPoisson>
void fast_nosplit_int(const Job<T>& job, std::size_t begin, std::size_t end, FastState& st) {
  const std::int32_t* bin = job.plan->pixel_bin().data();
  IntSigVar* h = st.ints.data();
  const auto [lo, hi] = dummy_interval<T>(job.filter);
  const auto span = static_cast<std::uint64_t>(hi - lo);
  const bool check = lo <= hi;
  const std::int64_t floor = job.variance_floor > 0 ? 1 : std::numeric_limits<std::int64_t>::min();
  for (std::size_t p = begin; p < end; ++p) {
    const std::int32_t b = bin[p];
    if (b < 0) continue;
    const auto raw = static_cast<std::int64_t>(job.data[p]);
    if (check && static_cast<std::uint64_t>(raw - lo) <= span) [[unlikely]] {
      st.invalid.push_back(static_cast<std::uint32_t>(p));
      continue;
    }
    h[b].sig += raw;
    if constexpr (kPoisson) h[b].var += std::max(raw, floor);
  }
}

template <class T, bool kPoisson>
void fast_nosplit(const Job<T>& job, std::size_t begin, std::size_t end, FastState& st) {
  const std::int32_t* bin = job.plan->pixel_bin().data();
  SigVar* h[2] = {st.even.data(), st.odd.data()};
  for (std::size_t p = begin; p < end; ++p) {
    const std::int32_t b = bin[p];
    if (b < 0) continue;
    const auto raw = static_cast<float>(job.data[p]);
    if (!job.filter.valid(raw)) [[unlikely]] {
      st.invalid.push_back(static_cast<std::uint32_t>(p));
      continue;
    }
    SigVar& a = h[p & 1][b];
    a.sig += raw;
    if constexpr (kPoisson) a.var += std::max(raw, job.variance_floor);
  }
}

template <class T, bool kPoisson>
void fast_split(const Job<T>& job, std::size_t begin, std::size_t end, FastState& st) {
  const std::int32_t* ptr = job.plan->pixel_ptr().data();
  const std::int32_t* bins = job.plan->pixel_bins().data();
  const float* weights = job.plan->pixel_weights().data();
  SigVar* h[2] = {st.even.data(), st.odd.data()};
  for (std::size_t p = begin; p < end; ++p) {
    const std::int32_t k0 = ptr[p], k1 = ptr[p + 1];
    if (k0 == k1) continue;
    const auto raw = static_cast<float>(job.data[p]);
    if (!job.filter.valid(raw)) [[unlikely]] {
      st.invalid.push_back(static_cast<std::uint32_t>(p));
      continue;
    }
    const double v = std::max(raw, job.variance_floor);
    SigVar* hist = h[p & 1];
    for (std::int32_t k = k0; k < k1; ++k) {
      const double w = weights[k];
      SigVar& a = hist[bins[k]];
      a.sig += w * raw;
      if constexpr (kPoisson) a.var += w * w * v;
    }
  }
}

template <class T>
void fast_block(const Job<T>& job, bool poisson, std::size_t begin, std::size_t end,
                FastState& st) {
  const bool split = job.plan->settings().split != PixelSplit::kNo;
  if (split) {
    poisson ? fast_split<T, true>(job, begin, end, st) : fast_split<T, false>(job, begin, end, st);
  } else if constexpr (gpu::kExactRawSums<T>) {
    poisson ? fast_nosplit_int<T, true>(job, begin, end, st)
            : fast_nosplit_int<T, false>(job, begin, end, st);
  } else {
    poisson ? fast_nosplit<T, true>(job, begin, end, st)
            : fast_nosplit<T, false>(job, begin, end, st);
  }
}

// Frame sums from the static sums, the accumulators of every thread and the invalid pixels.
void fast_finish(const Plan& plan, bool poisson, std::vector<FastState>& states, BinSums& out) {
  const Plan::StaticSums& st = plan.static_sums();
  out.signal.resize(plan.bins());
  out.variance.resize(plan.bins());
  out.normalization = st.normalization;
  out.count = st.count;
  std::vector<std::int64_t> entries = st.entries;
  for (std::size_t b = 0; b < plan.bins(); ++b) {
    double sig = -st.dark[b], var = 0.0;
    for (const FastState& s : states) {
      if (!s.ints.empty()) {
        sig += static_cast<double>(s.ints[b].sig);
        var += static_cast<double>(s.ints[b].var);
      } else {
        sig += s.even[b].sig + s.odd[b].sig;
        var += s.even[b].var + s.odd[b].var;
      }
    }
    out.signal[b] = sig;
    out.variance[b] = var;
  }
  const auto ptr = plan.pixel_ptr();
  const auto bins = plan.pixel_bins();
  const auto weights = plan.pixel_weights();
  const auto norm = plan.normalization();
  const auto dark = plan.dark();
  for (const FastState& s : states) {
    for (std::uint32_t p : s.invalid) {
      for (std::int32_t k = ptr[p]; k < ptr[p + 1]; ++k) {
        const auto b = static_cast<std::size_t>(bins[k]);
        const double w = weights[k];
        --entries[b];
        out.count[b] -= w;
        out.normalization[b] -= w * norm[p];
        if (!dark.empty()) out.signal[b] += w * dark[p];
      }
    }
  }
  // A bin whose every pixel was invalid is empty: exactly zero, not a rounding residue.
  for (std::size_t b = 0; b < plan.bins(); ++b) {
    if (entries[b] == 0) out.signal[b] = out.variance[b] = out.normalization[b] = out.count[b] = 0;
  }
  if (!poisson) std::fill(out.variance.begin(), out.variance.end(), 0.0);
}

}  // namespace

struct CpuIntegrator::Impl {
  std::size_t threads = 1;
  std::vector<std::vector<Acc>> partial;  // azimuthal path: one accumulator array per thread
  std::vector<FastState> fast;            // fast path: one state per thread
  SigmaClipBuffers clip;                  // sigma clipping (one thread)
};

CpuIntegrator::CpuIntegrator(std::shared_ptr<const Plan> plan, std::size_t threads)
    : plan_(std::move(plan)), impl_(std::make_unique<Impl>()) {
  if (!plan_) throw Error(ErrorCategory::kInternal, "CpuIntegrator: null plan");
  impl_->threads = std::max<std::size_t>(1, threads);
  impl_->partial.resize(impl_->threads);
  impl_->fast.resize(impl_->threads);
}

CpuIntegrator::~CpuIntegrator() = default;

namespace {

template <class T>
Job<T> make_job(const Plan& plan, const FrameView& frame) {
  const IntegrationSettings& s = plan.settings();
  Job<T> job{static_cast<const T*>(frame.data),
             &plan,
             {},
             plan.normalization().data(),
             plan.dark().empty() ? nullptr : plan.dark().data(),
             s.is_2d() ? -std::numeric_limits<float>::infinity() : 1.0f};
  job.filter.check_nan = std::is_floating_point_v<T>;  // float64 NaN stays NaN in float32
  if (s.dummy) {
    job.filter.check_dummy = true;
    job.filter.dummy = static_cast<float>(*s.dummy);
    job.filter.delta = static_cast<float>(s.delta_dummy.value_or(0.0));
  }
  return job;
}

// Runs work(t) for t in [0, threads), on threads - 1 extra threads and the caller's.
template <class Work>
void run_threads(std::size_t threads, Work&& work) {
  if (threads == 1) {
    work(0);
    return;
  }
  std::vector<std::jthread> pool;
  pool.reserve(threads - 1);
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
}

template <class T>
void integrate_fast(const Plan& plan, const FrameView& frame, std::vector<FastState>& states,
                    BinSums& out) {
  const Job<T> job = make_job<T>(plan, frame);
  const bool poisson = plan.settings().error_model == ErrorModel::kPoisson;
  const std::size_t threads = states.size(), pixels = plan.pixels();
  run_threads(threads, [&](std::size_t t) {
    FastState& st = states[t];
    const bool ints = gpu::kExactRawSums<T> && plan.settings().split == PixelSplit::kNo;
    st.even.assign(ints ? 0 : plan.bins(), SigVar{});
    st.odd.assign(ints ? 0 : plan.bins(), SigVar{});
    st.ints.assign(ints ? plan.bins() : 0, IntSigVar{});
    st.invalid.clear();
    fast_block(job, poisson, pixels * t / threads, pixels * (t + 1) / threads, st);
  });
  fast_finish(plan, poisson, states, out);
}

template <class T>
void integrate_azimuthal(const Plan& plan, const FrameView& frame,
                         std::vector<std::vector<Acc>>& partial, BinSums& out) {
  const Job<T> job = make_job<T>(plan, frame);
  const std::size_t threads = partial.size(), pixels = plan.pixels();
  run_threads(threads, [&](std::size_t t) {
    auto& acc = partial[t];
    acc.assign(plan.bins(), Acc{});
    azimuthal_block(job, pixels * t / threads, pixels * (t + 1) / threads, acc.data());
  });
  std::vector<Acc>& total = partial[0];
  for (std::size_t t = 1; t < partial.size(); ++t)
    for (std::size_t b = 0; b < total.size(); ++b) gpu::merge_azim(total[b], partial[t][b]);
  out.reset(plan.bins());
  for (std::size_t b = 0; b < total.size(); ++b) {
    out.signal[b] = total[b].sig;
    out.variance[b] = total[b].var;
    out.normalization[b] = total[b].norm;
    out.count[b] = total[b].count;
  }
}

template <class T>
void integrate_typed(const Plan& plan, const FrameView& frame,
                     std::vector<std::vector<Acc>>& partial, std::vector<FastState>& fast,
                     BinSums& out) {
  if (plan.settings().error_model == ErrorModel::kAzimuthal) {
    integrate_azimuthal<T>(plan, frame, partial, out);
  } else {
    integrate_fast<T>(plan, frame, fast, out);
  }
}

}  // namespace

void CpuIntegrator::integrate(const FrameView& frame, BinSums& out) {
  if (plan_->settings().sigma_clip) {
    sigma_clip_frame(*plan_, frame, impl_->clip, out);
    return;
  }
  check_frame(*plan_, frame);
  auto& p = impl_->partial;
  auto& f = impl_->fast;
  switch (frame.dtype) {
    case DType::kUint8:
      integrate_typed<std::uint8_t>(*plan_, frame, p, f, out);
      break;
    case DType::kUint16:
      integrate_typed<std::uint16_t>(*plan_, frame, p, f, out);
      break;
    case DType::kUint32:
      integrate_typed<std::uint32_t>(*plan_, frame, p, f, out);
      break;
    case DType::kInt32:
      integrate_typed<std::int32_t>(*plan_, frame, p, f, out);
      break;
    case DType::kFloat32:
      integrate_typed<float>(*plan_, frame, p, f, out);
      break;
    case DType::kInt16:
      integrate_typed<std::int16_t>(*plan_, frame, p, f, out);
      break;
    case DType::kInt64:
      integrate_typed<std::int64_t>(*plan_, frame, p, f, out);
      break;
    case DType::kFloat64:
      integrate_typed<double>(*plan_, frame, p, f, out);
      break;
  }
}

}  // namespace azflow::integrate
