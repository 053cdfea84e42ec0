#pragma once
// Per-pixel geometry of a flat detector: radial and azimuthal positions of pixel centres and
// corners, solid angle and polarization factors, following pyFAI 0.21 (pyFAI/geometry.py).
//
// Frame of reference (pyFAI's "PONI" convention, see pyFAI's documentation "Geometry"): pixel
// (i, j) has its centre at p1 = (i + 0.5) * pixel1 - poni1, p2 = (j + 0.5) * pixel2 - poni2 on the
// detector (formed in float32, as pyFAI 0.21 does for centres), at p3 = dist along its normal.
// R = R3(rot3) . R2(rot2) . R1(rot1),
//   R1 = [[1,0,0],[0,c1,s1],[0,-s1,c1]], R2 = [[c2,0,-s2],[0,1,0],[s2,0,c2]],
//   R3 = [[c3,-s3,0],[s3,c3,0],[0,0,1]].
// Then r = sqrt(t1^2 + t2^2), 2theta = atan2(r, t3), q = 4e-9 pi sin(2theta / 2) / wavelength
// (nm^-1) and chi = atan2(t1, t2) in (-pi, pi]. Corners are at integer pixel coordinates.

#include <cstddef>
#include <vector>

#include "stages/integrate/poni.hpp"
#include "stages/integrate/units.hpp"

namespace azflow::integrate {

/// Geometry of one detector from a PONI description; cheap to copy. All arrays returned are
/// row-major, rows x cols (centres) or (rows + 1) x (cols + 1) (corners).
class Geometry {
 public:
  /// Throws azflow::Error (kConfig) if the detector has no shape or pixel size.
  explicit Geometry(Poni poni);

  [[nodiscard]] const Poni& poni() const noexcept { return poni_; }
  [[nodiscard]] std::size_t rows() const noexcept { return poni_.detector.rows; }
  [[nodiscard]] std::size_t cols() const noexcept { return poni_.detector.cols; }
  [[nodiscard]] std::size_t pixels() const noexcept { return rows() * cols(); }

  /// Radial position of every pixel centre in internal units (see RadialUnit), float64.
  /// Throws azflow::Error (kConfig) for a q unit without a wavelength.
  [[nodiscard]] std::vector<double> radial_centers(RadialUnit unit) const;
  /// Radial position of every pixel corner, float32 as pyFAI stores corners.
  [[nodiscard]] std::vector<float> radial_corners(RadialUnit unit) const;
  /// Half-width used by bounding-box splitting: max over the 4 corners of |corner - centre|
  /// (pyFAI Geometry.delta_array).
  [[nodiscard]] std::vector<double> radial_deltas(RadialUnit unit) const;

  /// Azimuthal angle chi of every pixel centre, radians in (-pi, pi] (pyFAI chiArray).
  [[nodiscard]] std::vector<double> chi_centers() const;
  /// chi of every pixel corner, float32 radians.
  [[nodiscard]] std::vector<float> chi_corners() const;
  /// Max over the 4 corners of the angular distance to the centre, modulo 2 pi (pyFAI deltaChi).
  [[nodiscard]] std::vector<double> chi_deltas() const;

  /// Solid-angle factor cos(incidence)^3 = (dist / sqrt(dist^2 + p1^2 + p2^2))^3, relative to the
  /// PONI pixel, float32 (pyFAI Geometry.solidAngleArray, order 3).
  [[nodiscard]] std::vector<float> solid_angle() const;

  /// Polarization factor 0.5 * (1 + cos^2 2theta - P cos(2 (chi + offset)) (1 - cos^2 2theta)),
  /// float32, for polarization factor P in [-1, 1] (pyFAI Geometry.polarization).
  [[nodiscard]] std::vector<float> polarization(double factor, double axis_offset_rad = 0) const;

 private:
  Poni poni_;
  double r_[3][3];  // rotation matrix R3 . R2 . R1
};

}  // namespace azflow::integrate
