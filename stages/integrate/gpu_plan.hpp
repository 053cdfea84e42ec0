#pragma once
// The integration plan in the layout the CUDA kernels read (plain C++, built and tested without
// CUDA): the CSR matrix without the pixels a dark or flat made invalid, the per-pixel vectors, the
// frame-independent per-bin sums and the scalar settings, plus the launch shape (threads per bin
// row) and the byte counts the benchmark reports. Packed once per plan on the host; the CUDA
// backend uploads it once per device (cuda_integrator.hpp).

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/dtype.hpp"
#include "stages/integrate/plan.hpp"

namespace azflow::integrate::gpu {

/// Threads that share one bin row of the CSR matrix in the kernels: one of kRowGroupSizes.
/// Rows of 1D integrations (thousands of entries) get a whole 256-thread block, 2D cake rows
/// (tens of entries) a few lanes of a warp.
inline constexpr int kRowGroupSizes[] = {2, 8, 32, 256};
/// Threads per block of every integration kernel.
inline constexpr int kBlockThreads = 256;

/// Scalar settings the kernels need, copied by value into each launch.
struct KernelSettings {
  std::int64_t bins = 0;    ///< CSR rows
  std::int64_t pixels = 0;  ///< rows x cols of a frame
  bool split = false;       ///< bbox or full splitting: values converted to float32 first
  bool poisson = false;     ///< error model Poisson (fast path)
  bool azimuthal = false;   ///< error model azimuthal (per-pixel incremental variance)
  bool has_dark = false;    ///< dark vector present
  bool check_dummy = false;
  float dummy = 0.0f;           ///< dummy value, float32 (pyFAI compares in float32)
  float delta_dummy = 0.0f;     ///< tolerance around dummy; 0 = exact comparison
  float variance_floor = 1.0f;  ///< Poisson variance = max(raw, floor): 1 in 1D, -inf in 2D
  int row_group = 32;           ///< threads per CSR row, one of kRowGroupSizes
};

/// A plan packed for the device. Vectors are what gets uploaded, element for element.
struct PackedPlan {
  KernelSettings settings;
  std::vector<std::int32_t> indptr;   ///< bins + 1 row pointers into indices / weights
  std::vector<std::int32_t> indices;  ///< nnz pixel indices, increasing within a row
  std::vector<float> weights;         ///< nnz weights
  std::vector<float> normalization;   ///< pixels: Plan::normalization()
  std::vector<float> dark;            ///< pixels, or empty without a dark
  /// Per bin, the frame-independent sums of the fast path (Plan::static_sums()): entries (int64
  /// narrowed to int32; checked), count, normalization and dark.
  std::vector<std::int32_t> static_entries;
  std::vector<double> static_count, static_norm, static_dark;

  [[nodiscard]] std::size_t nnz() const noexcept { return indices.size(); }
  /// Bytes of every vector above: what one device holds for this plan.
  [[nodiscard]] std::size_t device_bytes() const noexcept;
};

/// Packs `plan` for the kernels. Entries of pixels in Plan::invalid() are dropped from the CSR
/// rows (the CPU backend's per-pixel lists leave them out too), keeping the row order; the static
/// sums are the plan's own. Throws azflow::Error (kResource) if the matrix has 2^31 or more
/// entries (int32 indices), (kInternal) if the plan's vectors disagree in size.
PackedPlan pack_plan(const Plan& plan);

/// Threads per CSR row for a matrix of `nnz` entries over `bins` rows: the mean row length
/// over 4, rounded down to one of kRowGroupSizes (2 for short rows, 256 for 1D rows).
int choose_row_group(std::size_t nnz, std::size_t bins) noexcept;

/// Bytes one frame's kernel reads and writes, as the benchmark counts them: the frame itself
/// (pixels x dtype size), the CSR row pointers, indices and weights (nnz x 8), the per-pixel
/// normalization and dark gathered per entry on the azimuthal path, the static sums read per bin
/// on the fast path, and the 4 x bins float64 sums written. Every frame is counted as if it were
/// alone: the CSR reads shared by a batch (served from L2) are not divided among its frames.
std::size_t kernel_bytes_per_frame(const PackedPlan& plan, DType dtype) noexcept;

/// Number of thread blocks of one launch over `frames` frames: one block per group of
/// kBlockThreads / row_group rows (or per row when row_group = kBlockThreads) and frame.
/// Block b handles frame b % frames and row block b / frames, so that the blocks of one row block
/// for every frame of a batch run together and share the CSR reads through L2.
std::int64_t launch_blocks(const KernelSettings& settings, std::int64_t frames) noexcept;

}  // namespace azflow::integrate::gpu
