// The CUDA backend's host-side parts, without a GPU: plan packing, launch shape, and the kernels'
// arithmetic (gpu_kernel_math.hpp, the very functions the kernels call) run lane by lane on the
// CPU with the kernels' reduction order, compared with the CPU integrator on every mode.

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "stages/integrate/gpu_kernel_math.hpp"
#include "stages/integrate/gpu_plan.hpp"
#include "tests/integrate/gpu_test_cases.hpp"

namespace azflow::integrate {
namespace {

using namespace gpu;
using namespace testing;

/// A PlanView onto a PackedPlan's host vectors.
PlanView host_view(const PackedPlan& p) {
  PlanView v;
  v.s = p.settings;
  v.indptr = p.indptr.data();
  v.indices = p.indices.data();
  v.weights = p.weights.data();
  v.normalization = p.normalization.data();
  v.dark = p.dark.empty() ? nullptr : p.dark.data();
  v.static_entries = p.static_entries.data();
  v.static_count = p.static_count.data();
  v.static_norm = p.static_norm.data();
  v.static_dark = p.static_dark.data();
  return v;
}

/// One row group's reduction exactly as reduce_group() does it on the device: a shuffle tree
/// within each warp (lane i takes lane i + off, off = width/2 ... 1, all reading the values from
/// before the step), then for 256-thread groups the warp partials merged in order.
template <class Lane>
Lane reduce_like_device(std::vector<Lane> lanes) {
  const int group = static_cast<int>(lanes.size());
  const int width = std::min(group, 32);
  for (int w0 = 0; w0 < group; w0 += width) {
    for (int off = width / 2; off > 0; off /= 2) {
      for (int i = 0; i < off; ++i) merge_lanes(lanes[w0 + i], lanes[w0 + i + off]);
    }
  }
  Lane a = lanes[0];
  for (int w = 1; w < group / 32; ++w) merge_lanes(a, lanes[static_cast<std::size_t>(w) * 32]);
  return a;
}

/// What integrate_kernel computes for one frame, row by row.
template <class T>
BinSums emulate(const PackedPlan& packed, const T* frame) {
  const PlanView v = host_view(packed);
  const int group = v.s.row_group;
  const auto bins = static_cast<std::size_t>(v.s.bins);
  std::vector<double> out(4 * bins, -1.0);  // every element must be written
  for (std::int64_t row = 0; row < v.s.bins; ++row) {
    if (v.s.azimuthal) {
      std::vector<AzimLane> lanes(static_cast<std::size_t>(group), AzimLane{});
      for (int l = 0; l < group; ++l) azim_lane<T>(v, frame, row, l, group, lanes[l]);
      finish_azim(v, row, reduce_like_device(lanes), out.data());
    } else {
      std::vector<FastLane> lanes(static_cast<std::size_t>(group), FastLane{});
      for (int l = 0; l < group; ++l) {
        v.s.poisson ? fast_lane<T, true>(v, frame, row, l, group, lanes[l])
                    : fast_lane<T, false>(v, frame, row, l, group, lanes[l]);
      }
      finish_fast(v, row, reduce_like_device(lanes), out.data());
    }
  }
  BinSums s;
  s.signal.assign(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(bins));
  s.variance.assign(out.begin() + static_cast<std::ptrdiff_t>(bins),
                    out.begin() + static_cast<std::ptrdiff_t>(2 * bins));
  s.normalization.assign(out.begin() + static_cast<std::ptrdiff_t>(2 * bins),
                         out.begin() + static_cast<std::ptrdiff_t>(3 * bins));
  s.count.assign(out.begin() + static_cast<std::ptrdiff_t>(3 * bins), out.end());
  return s;
}

template <class T>
void compare_dtype(const PlanCase& c, DType dtype) {
  const auto frames = make_frames<T>(3, 7 + static_cast<unsigned>(dtype));
  CpuIntegrator cpu(c.plan);
  PackedPlan packed = pack_plan(*c.plan);
  for (const int group : kRowGroupSizes) {
    packed.settings.row_group = group;
    for (std::size_t f = 0; f < frames.size(); ++f) {
      BinSums want;
      cpu.integrate(FrameView{frames[f].data(), dtype, kRows, kCols}, want);
      const BinSums got = emulate(packed, frames[f].data());
      const std::string what = c.name + " " + std::string(dtype_name(dtype)) + " group " +
                               std::to_string(group) + " frame " + std::to_string(f);
      expect_close(want, got, what);
      // Integer frames without splitting and without a dark: the CPU sums in int64, the device
      // in float64 exactly, so signal and Poisson variance agree to the last bit.
      if (std::is_integral_v<T> && !packed.settings.split && packed.dark.empty() &&
          !packed.settings.azimuthal) {
        EXPECT_EQ(want.signal, got.signal) << what;
        EXPECT_EQ(want.variance, got.variance) << what;
      }
    }
  }
}

TEST(GpuEmulation, MatchesTheCpuIntegratorInEveryModeDtypeAndRowGroup) {
  for (const PlanCase& c : plan_cases()) {
    compare_dtype<std::uint8_t>(c, DType::kUint8);
    compare_dtype<std::uint16_t>(c, DType::kUint16);
    compare_dtype<std::uint32_t>(c, DType::kUint32);
    compare_dtype<std::int32_t>(c, DType::kInt32);
    compare_dtype<float>(c, DType::kFloat32);
  }
}

TEST(GpuPlan, PackingDropsTheEntriesOfInvalidPixelsAndKeepsRowOrder) {
  for (const PlanCase& c : plan_cases()) {
    const Plan& plan = *c.plan;
    const PackedPlan p = pack_plan(plan);
    ASSERT_EQ(p.indptr.size(), plan.bins() + 1) << c.name;
    EXPECT_EQ(p.indptr.front(), 0);
    EXPECT_EQ(static_cast<std::size_t>(p.indptr.back()), p.nnz());
    std::size_t expected = 0;
    for (std::size_t k = 0; k < plan.csr_indices().size(); ++k) {
      const auto px = static_cast<std::size_t>(plan.csr_indices()[k]);
      if (plan.invalid().empty() || plan.invalid()[px] == 0) ++expected;
    }
    EXPECT_EQ(p.nnz(), expected) << c.name;
    EXPECT_EQ(p.weights.size(), p.nnz());
    for (std::size_t b = 0; b < plan.bins(); ++b) {
      ASSERT_LE(p.indptr[b], p.indptr[b + 1]);
      for (auto k = p.indptr[b]; k < p.indptr[b + 1]; ++k) {
        const auto px = static_cast<std::size_t>(p.indices[k]);
        if (!plan.invalid().empty()) {
          EXPECT_EQ(plan.invalid()[px], 0) << c.name;
        }
        if (k > p.indptr[b]) {
          EXPECT_LT(p.indices[k - 1], p.indices[k]) << c.name;
        }
      }
      // The static entry count is the packed row length: both leave out invalid pixels.
      EXPECT_EQ(p.static_entries[b], p.indptr[b + 1] - p.indptr[b]) << c.name << " bin " << b;
    }
    EXPECT_EQ(p.settings.bins, static_cast<std::int64_t>(plan.bins()));
    EXPECT_EQ(p.settings.pixels, static_cast<std::int64_t>(plan.pixels()));
    EXPECT_EQ(p.settings.variance_floor > 0, !plan.settings().is_2d());
    EXPECT_EQ(p.dark.size(), plan.dark().size());
    EXPECT_GT(p.device_bytes(), p.nnz() * 8);
  }
}

TEST(GpuPlan, RowGroupFollowsTheMeanRowLength) {
  EXPECT_EQ(choose_row_group(0, 0), 2);
  EXPECT_EQ(choose_row_group(12 * 360000, 360000), 2);  // 2D cake rows: a few entries
  EXPECT_EQ(choose_row_group(40 * 1000, 1000), 8);
  EXPECT_EQ(choose_row_group(200 * 1000, 1000), 32);
  EXPECT_EQ(choose_row_group(4'470'000, 1000), 256);  // EIGER 4M, 1D, 1000 bins
}

TEST(GpuPlan, LaunchCoversEveryRowOfEveryFrame) {
  KernelSettings s;
  for (const int group : kRowGroupSizes) {
    for (const std::int64_t bins : {1, 31, 32, 1000, 360000}) {
      s.bins = bins;
      s.row_group = group;
      const std::int64_t rows_per_block = kBlockThreads / group;
      const std::int64_t blocks = launch_blocks(s, 5);
      EXPECT_EQ(blocks % 5, 0);
      // The last row block reaches the last row; one block fewer would not.
      EXPECT_GE(blocks / 5 * rows_per_block, bins);
      EXPECT_LT((blocks / 5 - 1) * rows_per_block, bins);
    }
  }
}

TEST(GpuPlan, BytesPerFrameCountFrameMatrixAndSums) {
  const auto cases = plan_cases();
  const PackedPlan p = pack_plan(*cases.front().plan);  // 1d, no split, none, plain
  const std::size_t expected = kRows * kCols * 4 + (p.settings.bins + 1) * 4 + p.nnz() * 8 +
                               p.settings.bins * (4 + 24) + 4 * p.settings.bins * 8;
  EXPECT_EQ(kernel_bytes_per_frame(p, DType::kUint32), expected);
  EXPECT_EQ(kernel_bytes_per_frame(p, DType::kUint16), expected - kRows * kCols * 2);
}

}  // namespace
}  // namespace azflow::integrate
