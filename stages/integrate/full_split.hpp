#pragma once
// Full pixel splitting, as pyFAI 0.21.3 does it for method ("full", "csr", "cython")
// (pyFAI/ext/splitpixel_common.pyx FullSplitIntegrator, helpers in regrid_common.pxi).
//
// Algorithm. Each pixel is the quadrilateral of its 4 corners in (radial, chi) space, corners in
// pyFAI's order A = corner (i, j), B = (i + 1, j), C = (i + 1, j + 1), D = (i, j + 1), positions
// float32 as pyFAI stores its corner array, chi in (-pi, pi]. A pixel whose corners straddle the
// chi discontinuity at +-pi is first moved to one side of it ("recentre", see recenter()).
// - 1D: the corners' radial positions become bin numbers; a pixel inside one bin gets weight 1.
//   Otherwise, for each edge, the signed area under the edge (chi as a function of the radial
//   bin number) is added to a float32 buffer strip by strip (one strip per radial bin inside the
//   axis); the four edges together leave the polygon's area per bin, and each bin's weight is
//   its area over the sum of the areas inside the axis (so a pixel partly outside the range keeps
//   a total weight of 1, as in pyFAI).
// - 2D: corners are clipped to the ranges and turned into bin numbers on both axes; for each edge
//   and each radial bin column, the signed area under the edge in that column is stacked into
//   the column's cells from the bottom of the pixel's bounding box (each cell takes at most the
//   column width x 1, pyFAI's approximation of the polygon-cell overlap); weights are the cells'
//   areas over the polygon's (shoelace) area. Sums use float32 where pyFAI's do.

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace azflow::integrate::full_split {

/// One axis of bins in internal units (radians for chi): bins of width `delta` from `min`;
/// `maxin` is the range's largest position, `max` = maxin nudged up by one float32 epsilon.
struct BinAxis {
  double min = 0, maxin = 0, max = 0, delta = 0;
  std::size_t bins = 0;
};

/// A pixel's corners A, B, C, D: radial (internal units) and chi (radians).
struct Quad {
  std::array<double, 4> rad{}, chi{};
};

/// The corner grids of a detector, (rows + 1) x (cols + 1) row-major float32 each (Geometry's
/// radial_corners / chi_corners).
class CornerGrid {
 public:
  CornerGrid(std::vector<float> radial, std::vector<float> chi, std::size_t rows, std::size_t cols);
  [[nodiscard]] std::size_t pixels() const noexcept { return rows_ * cols_; }
  /// Corners of pixel p = i * cols + j, in pyFAI's order.
  [[nodiscard]] Quad quad(std::size_t p) const noexcept;

 private:
  std::vector<float> radial_, chi_;
  std::size_t rows_, cols_;
};

/// Extent of the corners of unmasked pixels (pyFAI calc_boundaries in full-split mode, before
/// any clipping); `any` is false when every pixel is masked.
struct Extent {
  double rad_min = 0, rad_max = 0, chi_min = 0, chi_max = 0;
  bool any = false;
};
/// `mask` empty or one byte per pixel, nonzero = masked.
Extent extent(const CornerGrid& grid, const std::vector<std::uint8_t>& mask);

/// pyFAI's _recenter with the chi discontinuity at +-pi: when the quad's sign test
/// 0.5 (C0 - A0)(D1 - B1) - (C1 - A1)(D0 - B0) is positive (pyFAI's marker of a pixel across the
/// discontinuity; the formula is pyFAI's, grouping included), negative chi corners get + 2 pi and,
/// if the mean chi then exceeds pi (float32), every corner gets - 2 pi.
void recenter(Quad& q) noexcept;

/// One matrix entry of a pixel: bin index (azflow layout) and weight.
struct Entry {
  std::size_t bin;
  double weight;
};

/// Splits pixels one at a time; holds the scratch buffers (not thread-safe; one per thread).
class Splitter {
 public:
  /// 1D: radial axis only; `chi_range` non-null restricts pixels to those whose (recentred)
  /// corners reach [chi_range->min, chi_range->maxin] (pyFAI's pos1_range check).
  Splitter(const BinAxis& rad, const BinAxis* chi_range);
  /// 2D: bins = azim * rad.bins + rad.
  Splitter(const BinAxis& rad, const BinAxis& azim);

  /// Appends pixel `q`'s entries (zero weights left out) to `out`.
  void split(Quad q, std::vector<Entry>& out);

 private:
  void split_1d(const Quad& q, std::vector<Entry>& out);
  void split_2d(const Quad& q, std::vector<Entry>& out);

  BinAxis rad_, azim_;
  bool two_d_ = false, check_chi_ = false;
  std::vector<float> strip_;  // 1D: one area per radial bin
  std::vector<float> box_;    // 2D: cells of the pixel's bounding box
};

}  // namespace azflow::integrate::full_split
