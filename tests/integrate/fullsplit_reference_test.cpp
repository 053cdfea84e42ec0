// Full pixel splitting against pyFAI 0.21.3, method ("full", "csr", "cython").
//
// References: tests/integrate/fixtures/fullsplit_reference.h5, written by
// make_fullsplit_fixtures.py (layout as pyfai_reference.h5, see the README there): 1D and 2D,
// flat / tilted geometries and one with the PONI off the detector, units q_nm^-1, q_A^-1, 2th_deg,
// 2th_rad, r_mm, with mask, dark, flat, radial and azimuth ranges.
//
// What "matches" means here:
// - Bin centres within 1e-3 of a bin width (radial and azimuthal).
// - I, count, sum_signal, sum_normalization (and sigma, sum_variance where pyFAI gives them):
//   relative error <= 1e-3 on every bin pyFAI counts (count > 0, finite value); a bin pyFAI leaves
//   empty holds less than 1e-6 pixel in azflow.
// - CSR matrices (nonzero entries; pyFAI keeps zero weights, azflow leaves them out): the same
//   pixels per bin with weights within 1e-5, except at most 1e-4 x nnz entries (boundary cases).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/dtype.hpp"
#include "base/error.hpp"
#include "stages/integrate/cpu_integrator.hpp"
#include "stages/integrate/geometry.hpp"
#include "stages/integrate/plan.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/integrate/units.hpp"
#include "tests/integrate/fixture_reader.hpp"

namespace azflow::integrate {
namespace {

using azflow::testing::FixtureFile;
using azflow::testing::RawArray;

constexpr double kBinTolerance = 1e-3;   // relative, every counted bin
constexpr double kAxisTolerance = 1e-3;  // of a bin width
constexpr double kEmptyCount = 1e-6;
constexpr double kCsrWeightTolerance = 1e-5;
constexpr double kCsrMovedFraction = 1e-4;

std::filesystem::path fixture_path() {
  const std::filesystem::path relative = "tests/integrate/fixtures/fullsplit_reference.h5";
  if (const char* root = std::getenv("AZFLOW_SOURCE_DIR"); root != nullptr && *root != '\0') {
    return std::filesystem::path(root) / relative;
  }
  return AZFLOW_FULLSPLIT_FIXTURE;
}

const FixtureFile& fixture() {
  static const FixtureFile file(fixture_path());
  return file;
}

std::vector<std::string> case_names() {
  try {
    return fixture().children("/cases");
  } catch (const Error&) {
    return {"fixture_file_missing"};
  }
}

std::optional<double> optional_attr(const std::string& object, const std::string& name) {
  const double v = fixture().attr_f64(object, name);
  return std::isnan(v) ? std::nullopt : std::optional(v);
}

std::optional<std::pair<double, double>> optional_range(const std::string& object,
                                                        const std::string& name) {
  if (!fixture().has_attribute(object, name)) return std::nullopt;
  const std::vector<double> v = fixture().attr_f64s(object, name);
  return std::pair(v.at(0), v.at(1));
}

/// Settings and corrections of /cases/<name>, as pyFAI was called.
struct Case {
  std::string group, frame;
  IntegrationSettings settings;
  Corrections corrections;
  std::shared_ptr<const Plan> plan;
};

Case load_case(const std::string& name) {
  const FixtureFile& f = fixture();
  Case c;
  c.group = "/cases/" + name;
  const std::string& g = c.group;
  c.frame = f.attr_string(g, "frame");
  IntegrationSettings& s = c.settings;
  const auto unit = parse_radial_unit(f.attr_string(g, "unit"));
  const auto split = parse_split(f.attr_string(g, "split"));
  const auto model = parse_error_model(f.attr_string(g, "error_model"));
  if (!unit || !split || !model) throw Error(ErrorCategory::kInput, g + ": unknown setting");
  s.unit = *unit;
  s.split = *split;
  s.error_model = *model;
  s.npt_rad = static_cast<std::size_t>(f.attr_f64(g, "npt_rad"));
  s.npt_azim = static_cast<std::size_t>(f.attr_f64(g, "npt_azim"));
  s.correct_solid_angle = f.attr_f64(g, "correct_solid_angle") != 0;
  s.polarization_factor = optional_attr(g, "polarization_factor");
  s.dummy = optional_attr(g, "dummy");
  s.delta_dummy = optional_attr(g, "delta_dummy");
  s.normalization_factor = f.attr_f64(g, "normalization_factor");
  s.radial_range = optional_range(g, "radial_range");
  s.azimuth_range_deg = optional_range(g, "azimuth_range");
  if (const std::string m = f.attr_string(g, "mask"); !m.empty())
    c.corrections.mask = f.read_u8("/inputs/" + m);
  if (const std::string d = f.attr_string(g, "dark"); !d.empty())
    c.corrections.dark = f.read_f32("/inputs/" + d);
  if (const std::string fl = f.attr_string(g, "flat"); !fl.empty())
    c.corrections.flat = f.read_f32("/inputs/" + fl);
  const std::string geometry = "/geometries/" + f.attr_string(g, "geometry");
  const Geometry geo(parse_poni(f.attr_string(geometry, "poni"), f.path().string() + geometry));
  c.plan = Plan::build(geo, s, c.corrections);
  return c;
}

/// Every bin with a positive pyFAI count and a finite value within kBinTolerance.
void expect_bins_match(const std::string& what, const std::vector<double>& azflow,
                       const std::vector<double>& ref, const std::vector<double>& count) {
  ASSERT_EQ(azflow.size(), ref.size()) << what;
  std::size_t compared = 0, bad = 0, worst = 0;
  double worst_err = 0;
  for (std::size_t k = 0; k < ref.size(); ++k) {
    if (!(count[k] > 0) || !std::isfinite(ref[k])) continue;
    ++compared;
    const double err = std::fabs(azflow[k] - ref[k]) / std::max(std::fabs(ref[k]), 1e-300);
    if (!(err <= kBinTolerance)) ++bad;
    if (!(err <= worst_err)) {
      worst_err = std::isnan(err) ? INFINITY : err;
      worst = k;
    }
  }
  std::cout << "[ info     ] " << what << ": max relative error " << worst_err << " over "
            << compared << " bins\n";
  EXPECT_GT(compared, 0u) << what;
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " bins off; worst bin " << worst << ": azflow "
                     << azflow[worst] << ", pyFAI " << ref[worst] << ", pyFAI count "
                     << count[worst];
}

void expect_axis_match(const std::string& what, const std::vector<double>& azflow,
                       const std::vector<double>& ref) {
  ASSERT_EQ(azflow.size(), ref.size()) << what;
  ASSERT_GT(ref.size(), 1u) << what;
  const double width = (ref.back() - ref.front()) / static_cast<double>(ref.size() - 1);
  double worst = 0;
  for (std::size_t i = 0; i < ref.size(); ++i)
    worst = std::max(worst, std::fabs(azflow[i] - ref[i]) / std::fabs(width));
  EXPECT_LE(worst, kAxisTolerance) << what << ": worst centre off by " << worst << " bin";
}

class FullSplitTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_NE(GetParam(), "fixture_file_missing") << "cannot open " << fixture_path();
    c_ = load_case(GetParam());
    ASSERT_EQ(c_.settings.split, PixelSplit::kFull);
  }
  [[nodiscard]] std::vector<double> ref(const std::string& name) const {
    return fixture().read_f64(c_.group + "/" + name);
  }
  Case c_;
};

TEST_P(FullSplitTest, AxesMatchPyfai) {
  expect_axis_match("radial", c_.plan->radial_centers(), ref("radial"));
  if (c_.settings.is_2d()) {
    expect_axis_match("azimuthal", c_.plan->azimuthal_centers(), ref("azimuthal"));
  }
}

TEST_P(FullSplitTest, IntegrationMatchesPyfai) {
  const RawArray frame = fixture().read_raw("/inputs/" + c_.frame);
  const FrameView view{frame.bytes.data(), frame.dtype, frame.shape.at(0), frame.shape.at(1)};
  CpuIntegrator integrator(c_.plan);
  BinSums sums;
  integrator.integrate(view, sums);
  const std::vector<double> count = ref("count");
  ASSERT_EQ(count.size(), sums.bins());
  std::size_t spurious = 0;
  for (std::size_t k = 0; k < count.size(); ++k)
    if (count[k] == 0 && sums.count[k] > kEmptyCount) ++spurious;
  EXPECT_EQ(spurious, 0u) << "bins empty in pyFAI but not in azflow";

  const bool with_sigma = fixture().has(c_.group + "/sigma");
  std::vector<float> intensity(sums.bins()), sigma(with_sigma ? sums.bins() : 0);
  finalize(sums, intensity, sigma);
  expect_bins_match("I", {intensity.begin(), intensity.end()}, ref("I"), count);
  expect_bins_match("count", sums.count, count, count);
  expect_bins_match("sum_signal", sums.signal, ref("sum_signal"), count);
  expect_bins_match("sum_normalization", sums.normalization, ref("sum_normalization"), count);
  if (with_sigma) {
    expect_bins_match("sigma", {sigma.begin(), sigma.end()}, ref("sigma"), count);
    expect_bins_match("sum_variance", sums.variance, ref("sum_variance"), count);
  }
}

TEST_P(FullSplitTest, MatrixMatchesPyfai) {
  if (!fixture().has(c_.group + "/csr_indptr")) GTEST_SKIP() << "no CSR matrix stored";
  const std::vector<std::int32_t> indptr = fixture().read_i32(c_.group + "/csr_indptr");
  const std::vector<std::int32_t> indices = fixture().read_i32(c_.group + "/csr_indices");
  const std::vector<float> data = fixture().read_f32(c_.group + "/csr_data");
  const Plan& plan = *c_.plan;
  ASSERT_EQ(indptr.size(), plan.bins() + 1);
  const IntegrationSettings& s = c_.settings;
  std::size_t moved = 0, weight_bad = 0, nonzero = 0;
  double max_diff = 0;
  std::string first;
  for (std::size_t k = 0; k < plan.bins(); ++k) {
    // pyFAI's 2D row is rad * npt_azim + azim; azflow's bin azim * npt_rad + rad.
    const std::size_t r = s.is_2d() ? (k % s.npt_rad) * s.npt_azim + k / s.npt_rad : k;
    std::map<std::int32_t, float> theirs;
    for (std::int32_t j = indptr[r]; j < indptr[r + 1]; ++j)
      if (data[j] != 0.0f) theirs[indices[j]] = data[j];
    nonzero += theirs.size();
    for (std::int32_t j = plan.csr_indptr()[k]; j < plan.csr_indptr()[k + 1]; ++j) {
      const std::int32_t pixel = plan.csr_indices()[j];
      const float w = plan.csr_weights()[j];
      const auto it = theirs.find(pixel);
      if (it == theirs.end()) {
        ++moved;
        if (first.empty())
          first = "bin " + std::to_string(k) + ": pixel " + std::to_string(pixel) +
                  " only in azflow, weight " + std::to_string(w);
        continue;
      }
      if (!(std::fabs(it->second - w) <= kCsrWeightTolerance) && weight_bad++ == 0 && first.empty())
        first = "bin " + std::to_string(k) + ": pixel " + std::to_string(pixel) + " weight " +
                std::to_string(w) + ", pyFAI " + std::to_string(it->second);
      max_diff = std::max(max_diff, double(std::fabs(it->second - w)));
      theirs.erase(it);
    }
    for (const auto& [pixel, w] : theirs) {
      ++moved;
      if (first.empty())
        first = "bin " + std::to_string(k) + ": pixel " + std::to_string(pixel) +
                " only in pyFAI, weight " + std::to_string(w);
    }
  }
  const auto allowed = static_cast<std::size_t>(kCsrMovedFraction * static_cast<double>(nonzero));
  std::cout << "[ info     ] nonzero entries azflow " << plan.csr_indices().size() << ", pyFAI "
            << nonzero << "; in one only " << moved << " (allowed " << allowed << "), weights off "
            << weight_bad << ", largest weight difference " << max_diff << "\n";
  EXPECT_LE(moved, allowed) << first;
  EXPECT_EQ(weight_bad, 0u) << first;
}

// Properties that hold whatever pyFAI does: with the default (full) radial range every unmasked
// pixel's weights sum to 1 (1D), and a sector across +-180 deg is refused with full splitting.
TEST(FullSplitPlan, EveryPixelKeepsWeightOneAndWrappedSectorsAreRefused) {
  const Case c = load_case("1d_qnm_full_flat_u32_dummy_poisson");
  const Plan& plan = *c.plan;
  std::size_t pixels_with_entries = 0;
  double worst = 0;
  for (std::size_t p = 0; p < plan.pixels(); ++p) {
    double sum = 0;
    for (std::int32_t k = plan.pixel_ptr()[p]; k < plan.pixel_ptr()[p + 1]; ++k)
      sum += plan.pixel_weights()[k];
    if (plan.pixel_ptr()[p + 1] > plan.pixel_ptr()[p]) ++pixels_with_entries;
    worst = std::max(worst, std::fabs(sum - 1.0));
  }
  EXPECT_EQ(pixels_with_entries, plan.pixels());  // no mask in this case
  EXPECT_LT(worst, 1e-5);

  IntegrationSettings wrapped = c.settings;
  wrapped.azimuth_range_deg = std::pair(170.0, -170.0);
  try {
    wrapped.validate();
    ADD_FAILURE() << "full splitting accepted a sector across +-180 deg";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("azimuth_range"), std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(PyfaiFullSplit, FullSplitTest, ::testing::ValuesIn(case_names()),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace azflow::integrate
