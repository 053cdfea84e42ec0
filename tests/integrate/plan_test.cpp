// Structural properties of integration plans, and invalid settings.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "base/error.hpp"
#include "stages/integrate/plan.hpp"

namespace azflow::integrate {
namespace {

Geometry small_geometry(double rot1 = 0.0) {
  Poni p;
  p.detector = {"Detector", 100e-6, 100e-6, 60, 80};
  p.dist_m = 0.05;
  p.poni1_m = 0.0031;
  p.poni2_m = 0.0042;
  p.rot1_rad = rot1;
  p.wavelength_m = 1e-10;
  return Geometry(p);
}

void expect_config_error(const IntegrationSettings& s, const std::string& field,
                         const Corrections& c = {}) {
  try {
    Plan::build(small_geometry(), s, c);
    FAIL() << "no error, expected one naming " << field;
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kConfig);
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
}

TEST(Plan, CsrAndTransposeHoldTheSameEntries) {
  for (PixelSplit split : {PixelSplit::kNo, PixelSplit::kBBox}) {
    IntegrationSettings s;
    s.npt_rad = 50;
    s.npt_azim = 12;
    s.split = split;
    const auto plan = Plan::build(small_geometry(0.1), s);
    const auto& indptr = plan->csr_indptr();
    ASSERT_EQ(indptr.size(), plan->bins() + 1);
    std::vector<std::pair<int, int>> from_csr, from_pixels;
    for (std::size_t b = 0; b < plan->bins(); ++b)
      for (int k = indptr[b]; k < indptr[b + 1]; ++k)
        from_csr.emplace_back(plan->csr_indices()[k], static_cast<int>(b));
    for (std::size_t p = 0; p < plan->pixels(); ++p)
      for (int k = plan->pixel_ptr()[p]; k < plan->pixel_ptr()[p + 1]; ++k)
        from_pixels.emplace_back(static_cast<int>(p), plan->pixel_bins()[k]);
    std::sort(from_csr.begin(), from_csr.end());
    std::sort(from_pixels.begin(), from_pixels.end());
    EXPECT_EQ(from_csr, from_pixels);
  }
}

TEST(Plan, CsrRowsAreInIncreasingPixelOrder) {
  IntegrationSettings s;
  s.npt_rad = 40;
  s.split = PixelSplit::kBBox;
  const auto plan = Plan::build(small_geometry(), s);
  for (std::size_t b = 0; b < plan->bins(); ++b)
    for (int k = plan->csr_indptr()[b] + 1; k < plan->csr_indptr()[b + 1]; ++k)
      ASSERT_LT(plan->csr_indices()[k - 1], plan->csr_indices()[k]) << "bin " << b;
}

TEST(Plan, BBoxWeightsOfInteriorPixelsSumToOne) {
  IntegrationSettings s;
  s.npt_rad = 64;
  s.split = PixelSplit::kBBox;
  const auto plan = Plan::build(small_geometry(), s);
  std::size_t checked = 0;
  for (std::size_t p = 0; p < plan->pixels(); ++p) {
    const int begin = plan->pixel_ptr()[p], end = plan->pixel_ptr()[p + 1];
    ASSERT_GT(end, begin) << "default range covers every pixel";
    const bool edge = plan->pixel_bins()[begin] == 0 || plan->pixel_bins()[end - 1] == 63;
    if (edge) continue;  // pyFAI gives out-of-range fractions to the edge bins
    double sum = 0;
    for (int k = begin; k < end; ++k) sum += plan->pixel_weights()[k];
    EXPECT_NEAR(sum, 1.0, 1e-6) << "pixel " << p;
    ++checked;
  }
  EXPECT_GT(checked, plan->pixels() / 2);
}

TEST(Plan, MaskedPixelsAreLeftOut) {
  IntegrationSettings s;
  s.npt_rad = 30;
  Corrections c;
  c.mask.assign(60 * 80, 0);
  c.mask[5] = c.mask[100] = 1;
  const auto plan = Plan::build(small_geometry(), s, c);
  EXPECT_EQ(plan->pixel_bin()[5], -1);
  EXPECT_EQ(plan->pixel_bin()[100], -1);
  EXPECT_GE(plan->pixel_bin()[6], 0);
  EXPECT_EQ(plan->csr_indices().size(), 60u * 80u - 2u);
}

TEST(Plan, RadialRangeLimitsBinsAndAxis) {
  IntegrationSettings s;
  s.unit = RadialUnit::k2Th_deg;
  s.npt_rad = 10;
  s.radial_range = std::pair{2.0, 4.0};
  const auto plan = Plan::build(small_geometry(), s);
  ASSERT_EQ(plan->radial_edges().size(), 11u);
  EXPECT_DOUBLE_EQ(plan->radial_edges().front(), 2.0);
  EXPECT_NEAR(plan->radial_edges().back(), 4.0, 4.0 * 2e-7);
  EXPECT_NEAR(plan->radial_centers().front(), 2.1, 1e-6);
  const auto tth = small_geometry().radial_centers(RadialUnit::k2Th_deg);
  for (std::size_t p = 0; p < plan->pixels(); ++p) {
    const double deg = tth[p] * 180.0 / std::numbers::pi;
    if (deg >= 2.0 && deg < 4.0) {
      EXPECT_GE(plan->pixel_bin()[p], 0) << deg;
    }
    if (deg >= 4.0 + 0.2 || deg < 2.0 - 0.2) {
      EXPECT_EQ(plan->pixel_bin()[p], -1) << deg;
    }
  }
}

TEST(Plan, TwoDimensionalBinsFollowChi) {
  IntegrationSettings s;
  s.npt_rad = 20;
  s.npt_azim = 36;
  const auto g = small_geometry();
  const auto plan = Plan::build(g, s);
  ASSERT_EQ(plan->bins(), 20u * 36u);
  ASSERT_EQ(plan->azimuthal_centers().size(), 36u);
  const auto chi = g.chi_centers();
  const auto& edges = plan->azimuthal_edges();
  for (std::size_t p = 0; p < plan->pixels(); p += 7) {
    const int bin = plan->pixel_bin()[p];
    ASSERT_GE(bin, 0);
    const std::size_t azim = static_cast<std::size_t>(bin) / 20;
    const double deg = chi[p] * 180.0 / std::numbers::pi;
    EXPECT_GE(deg, edges[azim] - 1e-9);
    EXPECT_LE(deg, edges[azim + 1] + 1e-9);
  }
}

TEST(Plan, InvalidSettingsNameTheField) {
  IntegrationSettings s;
  s.npt_rad = 0;
  expect_config_error(s, "npt_rad");
  s = {};
  s.radial_range = std::pair{5.0, 1.0};
  expect_config_error(s, "radial_range");
  s = {};
  s.polarization_factor = 1.5;
  expect_config_error(s, "polarization_factor");
  s = {};
  s.normalization_factor = 0;
  expect_config_error(s, "normalization_factor");
  s = {};
  s.delta_dummy = 0.5;
  expect_config_error(s, "delta_dummy");
}

TEST(Plan, CorrectionOfWrongSizeIsNamed) {
  Corrections c;
  c.dark.assign(10, 0.0f);
  expect_config_error({}, "dark", c);
  c = {};
  c.mask.assign(60 * 81, 0);
  expect_config_error({}, "mask", c);
}

TEST(Plan, QUnitWithoutWavelengthIsAnError) {
  Poni p;
  p.detector = {"Detector", 100e-6, 100e-6, 10, 10};
  p.dist_m = 0.1;
  try {
    Plan::build(Geometry(p), IntegrationSettings{});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("wavelength"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace azflow::integrate
