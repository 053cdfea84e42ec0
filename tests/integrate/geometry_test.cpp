// Geometry against closed-form values for simple cases (pyFAI's conventions).

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "stages/integrate/geometry.hpp"

namespace azflow::integrate {
namespace {

Poni untilted() {
  Poni p;
  p.detector = {"Detector", 100e-6, 100e-6, 21, 31};
  p.dist_m = 0.1;
  p.poni1_m = 10.5 * 100e-6;  // beam on the centre of pixel (10, 15)
  p.poni2_m = 15.5 * 100e-6;
  p.wavelength_m = 1e-10;
  return p;
}

TEST(Geometry, UntiltedClosedForms) {
  const Geometry g(untilted());
  const auto tth = g.radial_centers(RadialUnit::k2Th_rad);
  const auto r = g.radial_centers(RadialUnit::kR_mm);
  const auto q = g.radial_centers(RadialUnit::kQ_nm);
  const auto chi = g.chi_centers();
  const auto sa = g.solid_angle();
  const std::size_t centre = 10 * 31 + 15;
  // Pixel offsets are float32 (as in pyFAI): ~1e-10 m rounding over 0.1 m.
  EXPECT_NEAR(tth[centre], 0.0, 1e-8);
  EXPECT_NEAR(sa[centre], 1.0f, 1e-6f);
  // Pixel (10, 25): 10 pixels along the fast axis (x): r = 1 mm, chi = 0.
  const std::size_t px = 10 * 31 + 25;
  EXPECT_NEAR(r[px], 1e-3, 1e-9);
  EXPECT_NEAR(tth[px], std::atan2(1e-3, 0.1), 1e-8);
  EXPECT_NEAR(chi[px], 0.0, 1e-6);
  EXPECT_NEAR(q[px], 4e-9 * std::numbers::pi * std::sin(std::atan2(1e-3, 0.1) / 2) / 1e-10, 1e-6);
  const double cosa = 0.1 / std::hypot(0.1, 1e-3);
  EXPECT_NEAR(sa[px], cosa * cosa * cosa, 1e-6);
  // Pixel (20, 15): 10 pixels along the slow axis (y): chi = +90 degrees.
  EXPECT_NEAR(chi[20 * 31 + 15], std::numbers::pi / 2, 1e-6);
}

TEST(Geometry, DeltasBoundTheCorners) {
  Poni p = untilted();
  p.rot1_rad = 0.2;
  p.rot3_rad = 0.7;
  const Geometry g(p);
  const auto centers = g.radial_centers(RadialUnit::kQ_nm);
  const auto corners = g.radial_corners(RadialUnit::kQ_nm);
  const auto deltas = g.radial_deltas(RadialUnit::kQ_nm);
  const std::size_t w = g.cols() + 1;
  for (std::size_t i = 0; i < g.rows(); ++i)
    for (std::size_t j = 0; j < g.cols(); ++j) {
      const double c = centers[i * g.cols() + j], d = deltas[i * g.cols() + j];
      for (std::size_t k : {i * w + j, (i + 1) * w + j, i * w + j + 1, (i + 1) * w + j + 1})
        EXPECT_LE(std::fabs(corners[k] - c), d + 1e-12);
      EXPECT_GT(d, 0);
    }
  for (double d : g.chi_deltas()) EXPECT_LE(d, std::numbers::pi);
}

TEST(Geometry, PolarizationLimits) {
  const Geometry g(untilted());
  // P = 0 (unpolarized): (1 + cos^2 2theta) / 2, independent of chi.
  const auto unpol = g.polarization(0.0);
  const auto tth = g.radial_centers(RadialUnit::k2Th_rad);
  for (std::size_t p = 0; p < g.pixels(); ++p)
    EXPECT_NEAR(unpol[p], 0.5 * (1 + std::pow(std::cos(tth[p]), 2)), 1e-6);
  // P = 1: no correction along chi = +-90 degrees (vertical plane).
  const auto horiz = g.polarization(1.0);
  EXPECT_NEAR(horiz[20 * 31 + 15], 1.0f, 1e-6f);
}

}  // namespace
}  // namespace azflow::integrate
