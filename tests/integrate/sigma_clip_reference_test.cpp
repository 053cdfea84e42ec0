// Sigma clipping (sigma_clip_ng) and the radial profile (integrate_radial) against pyFAI 0.21.3
// (tests/integrate/fixtures/sigma_clip_reference.h5, made by make_sigma_clip_fixtures.py).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "stages/integrate/cpu_integrator.hpp"
#include "stages/integrate/geometry.hpp"
#include "stages/integrate/plan.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/integrate/radial_profile.hpp"
#include "stages/integrate/sigma_clip.hpp"
#include "tests/integrate/fixture_reader.hpp"

namespace azflow::integrate {
namespace {

using testing::FixtureFile;
using testing::RawArray;

const FixtureFile& fixture() {
  static const FixtureFile file(AZFLOW_SIGMA_CLIP_FIXTURE);
  return file;
}

std::optional<double> optional_attr(const std::string& object, const std::string& name) {
  const double v = fixture().attr_f64(object, name);
  return std::isnan(v) ? std::nullopt : std::optional(v);
}

std::optional<std::pair<double, double>> range_attr(const std::string& object) {
  if (!fixture().has_attribute(object, "radial_range")) return std::nullopt;
  const std::vector<double> v = fixture().attr_f64s(object, "radial_range");
  if (v.size() != 2) return std::nullopt;
  return std::pair(v[0], v[1]);
}

Geometry geometry() {
  return Geometry(parse_poni(fixture().attr_string("/geometry", "poni"),
                             fixture().path().string() + ":/geometry@poni"));
}

RadialUnit radial_unit(const std::string& name) {
  const auto unit = parse_radial_unit(name);
  if (!unit) throw std::runtime_error("unknown unit " + name);
  return *unit;
}

/// Integrates the fixture frame `frame` with `settings` and `corrections`.
BinSums integrate_frame(const std::shared_ptr<const Plan>& plan, const std::string& frame) {
  const RawArray raw = fixture().read_raw("/inputs/" + frame);
  const FrameView view{raw.bytes.data(), raw.dtype, raw.shape[0], raw.shape[1]};
  CpuIntegrator integrator(plan);
  BinSums sums;
  integrator.integrate(view, sums);
  return sums;
}

double relative_error(double a, double b) {
  return std::fabs(a - b) / std::max(std::fabs(b), 1e-6);
}

/// Expects azflow's `ours` within `tolerance` (relative) of pyFAI's `ref` on bins pyFAI counts.
void expect_close(const std::string& what, const std::vector<float>& ours,
                  const std::vector<double>& ref, const std::vector<double>& ref_count,
                  double tolerance) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  std::size_t compared = 0;
  for (std::size_t b = 0; b < ref.size(); ++b) {
    if (ref_count[b] <= 0) continue;
    ++compared;
    EXPECT_LE(relative_error(ours[b], ref[b]), tolerance)
        << what << " bin " << b << ": azflow " << ours[b] << ", pyFAI " << ref[b];
  }
  EXPECT_GE(compared, 10u) << what << ": too few bins with pixels";
}

class SigmaClipReference : public ::testing::TestWithParam<std::string> {};

TEST_P(SigmaClipReference, MatchesPyfaiSigmaClipNg) {
  const std::string g = "/sigma_clip/" + GetParam();
  IntegrationSettings s;
  s.unit = radial_unit(fixture().attr_string(g, "unit"));
  s.npt_rad = static_cast<std::size_t>(fixture().attr_f64(g, "npt"));
  s.error_model = *parse_error_model(fixture().attr_string(g, "error_model"));
  s.sigma_clip = SigmaClip{fixture().attr_f64(g, "thres"),
                           static_cast<std::size_t>(fixture().attr_f64(g, "max_iter"))};
  s.polarization_factor = optional_attr(g, "polarization_factor");
  s.dummy = optional_attr(g, "dummy");
  s.radial_range = range_attr(g);
  Corrections c;
  if (fixture().attr_f64(g, "mask") != 0) c.mask = fixture().read_u8("/inputs/mask");
  if (fixture().attr_f64(g, "dark") != 0) c.dark = fixture().read_f32("/inputs/dark");
  if (fixture().attr_f64(g, "flat") != 0) c.flat = fixture().read_f32("/inputs/flat");
  const auto plan = Plan::build(geometry(), s, c);
  const BinSums sums = integrate_frame(plan, fixture().attr_string(g, "frame"));

  std::vector<float> intensity(sums.bins()), sigma(sums.bins()), std_dev;
  finalize(sums, intensity, sigma);
  clipped_std(sums, std_dev, 0.0f);
  const std::vector<double> ref_count = fixture().read_f64(g + "/count");
  const std::vector<double> radial = fixture().read_f64(g + "/radial");
  ASSERT_EQ(plan->radial_centers().size(), radial.size());
  for (std::size_t b = 0; b < radial.size(); ++b) {
    EXPECT_NEAR(plan->radial_centers()[b], radial[b], 1e-6 * std::fabs(radial[b]) + 1e-9);
  }
  expect_close(g + "/I", intensity, fixture().read_f64(g + "/I"), ref_count, 1e-3);
  expect_close(g + "/sigma", sigma, fixture().read_f64(g + "/sigma"), ref_count, 1e-3);
  expect_close(g + "/std", std_dev, fixture().read_f64(g + "/std"), ref_count, 1e-3);
  // pyFAI reports max(3, count) in bins where clipping stopped early (sigma_clip.hpp).
  for (std::size_t b = 0; b < ref_count.size(); ++b) {
    if (ref_count[b] > 3 || ref_count[b] == 0) {
      EXPECT_EQ(sums.count[b], ref_count[b]) << g << " count, bin " << b;
    } else {
      EXPECT_GT(sums.count[b], 0) << g << " count, bin " << b;
      EXPECT_LE(sums.count[b], ref_count[b]) << g << " count, bin " << b;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixture, SigmaClipReference,
                         ::testing::ValuesIn([] { return fixture().children("/sigma_clip"); }()));

TEST(SigmaClipReferenceFixture, CoversBothErrorModelsAndClipping) {
  std::set<std::string> models;
  bool clipped = false;
  for (const std::string& name : fixture().children("/sigma_clip")) {
    models.insert(fixture().attr_string("/sigma_clip/" + name, "error_model"));
    clipped = clipped || fixture().attr_f64("/sigma_clip/" + name, "max_iter") > 0;
  }
  EXPECT_EQ(models, (std::set<std::string>{"azimuthal", "poisson"}));
  EXPECT_TRUE(clipped);
}

TEST(SigmaClipSettings, RefusesWhatPyfaiSigmaClipNgDoesNotDo) {
  IntegrationSettings s;
  s.sigma_clip = SigmaClip{};
  EXPECT_THROW(s.validate(), Error);  // no error model
  s.error_model = ErrorModel::kPoisson;
  EXPECT_NO_THROW(s.validate());
  s.npt_azim = 36;
  EXPECT_THROW(s.validate(), Error);  // 2D
  s.npt_azim = 0;
  s.sigma_clip->thres = 0;
  EXPECT_THROW(s.validate(), Error);
}

class RadialReference : public ::testing::TestWithParam<std::string> {};

TEST_P(RadialReference, MatchesPyfaiIntegrateRadial) {
  const std::string g = "/radial/" + GetParam();
  IntegrationSettings s;
  s.unit = radial_unit(fixture().attr_string(g, "radial_unit"));
  s.npt_rad = static_cast<std::size_t>(fixture().attr_f64(g, "npt_rad"));
  s.npt_azim = static_cast<std::size_t>(fixture().attr_f64(g, "npt"));
  s.azimuthal_unit = *parse_azimuthal_unit(fixture().attr_string(g, "unit"));
  s.split = *parse_split(fixture().attr_string(g, "split"));
  s.radial_range = range_attr(g);
  s.polarization_factor = optional_attr(g, "polarization_factor");
  s.dummy = optional_attr(g, "dummy");
  const auto plan = Plan::build(geometry(), s);
  const BinSums sums2d = integrate_frame(plan, fixture().attr_string(g, "frame"));
  BinSums sums;
  sum_radial_bins(*plan, sums2d, sums);
  std::vector<float> intensity(sums.bins());
  finalize(sums, intensity, {});

  const std::vector<double> chi = fixture().read_f64(g + "/chi");
  ASSERT_EQ(plan->azimuthal_centers().size(), chi.size());
  const double bin = std::fabs(chi[1] - chi[0]);
  for (std::size_t b = 0; b < chi.size(); ++b) {
    EXPECT_NEAR(plan->azimuthal_centers()[b], chi[b], 1e-3 * bin) << g << " chi bin " << b;
  }
  const std::vector<double> ref_count = fixture().read_f64(g + "/count");
  expect_close(g + "/I", intensity, fixture().read_f64(g + "/I"), ref_count, 1e-3);
  for (std::size_t b = 0; b < ref_count.size(); ++b) {
    EXPECT_NEAR(sums.count[b], ref_count[b], 1e-3 * ref_count[b] + 1e-6) << g << " bin " << b;
  }
}

INSTANTIATE_TEST_SUITE_P(Fixture, RadialReference,
                         ::testing::ValuesIn([] { return fixture().children("/radial"); }()));

}  // namespace
}  // namespace azflow::integrate
