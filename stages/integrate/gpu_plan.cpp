#include "stages/integrate/gpu_plan.hpp"

#include <limits>
#include <string>

#include "base/error.hpp"

namespace azflow::integrate::gpu {

namespace {

template <class V>
std::size_t bytes_of(const V& v) noexcept {
  return v.size() * sizeof(typename V::value_type);
}

KernelSettings kernel_settings(const Plan& plan) {
  const IntegrationSettings& s = plan.settings();
  KernelSettings k;
  k.bins = static_cast<std::int64_t>(plan.bins());
  k.pixels = static_cast<std::int64_t>(plan.pixels());
  k.split = s.split != PixelSplit::kNo;
  k.poisson = s.error_model == ErrorModel::kPoisson;
  k.azimuthal = s.error_model == ErrorModel::kAzimuthal;
  k.has_dark = !plan.dark().empty();
  if (s.dummy) {
    k.check_dummy = true;
    k.dummy = static_cast<float>(*s.dummy);
    k.delta_dummy = static_cast<float>(s.delta_dummy.value_or(0.0));
  }
  k.variance_floor = s.is_2d() ? -std::numeric_limits<float>::infinity() : 1.0f;
  return k;
}

}  // namespace

std::size_t PackedPlan::device_bytes() const noexcept {
  return bytes_of(indptr) + bytes_of(indices) + bytes_of(weights) + bytes_of(normalization) +
         bytes_of(dark) + bytes_of(static_entries) + bytes_of(static_count) +
         bytes_of(static_norm) + bytes_of(static_dark);
}

PackedPlan pack_plan(const Plan& plan) {
  const auto& indptr = plan.csr_indptr();
  const auto indices = plan.csr_indices();
  const auto weights = plan.csr_weights();
  const auto invalid = plan.invalid();
  const Plan::StaticSums& st = plan.static_sums();
  const std::size_t bins = plan.bins();
  if (indptr.size() != bins + 1 || indices.size() != weights.size() ||
      plan.normalization().size() != plan.pixels() || st.entries.size() != bins ||
      st.count.size() != bins || st.normalization.size() != bins || st.dark.size() != bins) {
    throw Error(ErrorCategory::kInternal, "pack_plan: the plan's vectors disagree in size");
  }
  if (indices.size() >= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw Error(ErrorCategory::kResource, "pack_plan: " + std::to_string(indices.size()) +
                                              " matrix entries exceed the CUDA backend's int32 "
                                              "indices");
  }
  PackedPlan out;
  out.settings = kernel_settings(plan);
  out.indptr.reserve(bins + 1);
  out.indices.reserve(indices.size());
  out.weights.reserve(weights.size());
  out.indptr.push_back(0);
  for (std::size_t b = 0; b < bins; ++b) {
    for (auto k = static_cast<std::size_t>(indptr[b]); k < static_cast<std::size_t>(indptr[b + 1]);
         ++k) {
      const auto p = static_cast<std::size_t>(indices[k]);
      if (!invalid.empty() && invalid[p] != 0) continue;
      out.indices.push_back(indices[k]);
      out.weights.push_back(weights[k]);
    }
    out.indptr.push_back(static_cast<std::int32_t>(out.indices.size()));
  }
  out.normalization.assign(plan.normalization().begin(), plan.normalization().end());
  out.dark.assign(plan.dark().begin(), plan.dark().end());
  out.static_entries.reserve(bins);
  for (const std::int64_t e : st.entries)
    out.static_entries.push_back(static_cast<std::int32_t>(e));
  out.static_count = st.count;
  out.static_norm = st.normalization;
  out.static_dark = st.dark;
  out.settings.row_group = choose_row_group(out.nnz(), bins);
  return out;
}

int choose_row_group(std::size_t nnz, std::size_t bins) noexcept {
  const std::size_t per_lane = bins == 0 ? 0 : nnz / bins / 4;
  int group = kRowGroupSizes[0];
  for (const int g : kRowGroupSizes) {
    if (static_cast<std::size_t>(g) <= per_lane) group = g;
  }
  return group;
}

std::size_t kernel_bytes_per_frame(const PackedPlan& plan, DType dtype) noexcept {
  const std::size_t nnz = plan.nnz();
  const auto pixels = static_cast<std::size_t>(plan.settings.pixels);
  const auto bins = static_cast<std::size_t>(plan.settings.bins);
  std::size_t bytes = pixels * dtype_size(dtype) + bytes_of(plan.indptr) + nnz * 8;
  if (plan.settings.azimuthal) {
    bytes += nnz * sizeof(float) * (plan.dark.empty() ? 1 : 2);  // normalization (+ dark) gathers
  } else {
    bytes += bins * (sizeof(std::int32_t) + 3 * sizeof(double));  // static sums
  }
  return bytes + 4 * bins * sizeof(double);
}

std::int64_t launch_blocks(const KernelSettings& settings, std::int64_t frames) noexcept {
  const std::int64_t rows_per_block = kBlockThreads / settings.row_group;
  const std::int64_t row_blocks = (settings.bins + rows_per_block - 1) / rows_per_block;
  return row_blocks * frames;
}

}  // namespace azflow::integrate::gpu
