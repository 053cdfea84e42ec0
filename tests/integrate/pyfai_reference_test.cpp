// azflow's integration engine against pyFAI 0.21.3 itself (ARCHITECTURE invariant 4).
//
// Reference values come from tests/integrate/fixtures/pyfai_reference.h5, written by
// make_fixtures.py with pyFAI (see the README there for the layout and pyFAI's quirks).
//
// What "matches" means here:
// - Geometry centres (2theta, chi, q, r; float64 in pyFAI): relative error <= 1e-9. Deltas, solid
//   angle and polarization (float32 in pyFAI): relative error <= 1e-5. Values smaller than 1e-3 of
//   the array's largest magnitude are compared relative to that floor (near the beam 2theta -> 0).
// - Radial / azimuthal bin centres: |azflow - pyFAI| <= max(1e-6 |pyFAI|, 1e-9 x axis span).
// - Per bin (I, sigma, sum_signal, sum_variance, sum_normalization, count), over the bins with a
//   meaningful count — pyFAI's count > 0.5, i.e. at least half a pixel, for no-split and bbox
//   alike — and a finite pyFAI value: relative error <= 1e-3 on every such bin and median
//   relative error <= 1e-5. Non-finite pyFAI values (pyFAI 0.21's NaN azimuthal variance next to
//   dummy pixels) are skipped, counted and printed. A bin that pyFAI leaves empty (count 0) must
//   not hold more than 0.5 pixel in azflow either.
// - CSR matrices: same pixel set per bin, weights within 1e-5 absolute; at most 1e-4 x nnz entries
//   (boundary pixels rounded into a neighbouring bin) may differ, and their number is printed.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
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

constexpr double kCentreTolerance = 1e-9;
constexpr double kFloat32ArrayTolerance = 1e-5;
constexpr double kBinMaxTolerance = 1e-3;
constexpr double kBinMedianTolerance = 1e-5;
constexpr double kMeaningfulCount = 0.5;
constexpr double kCsrWeightTolerance = 1e-5;
constexpr double kCsrMovedFraction = 1e-4;

/// The fixture: $AZFLOW_SOURCE_DIR/tests/integrate/fixtures/..., else the path CMake compiled in.
std::filesystem::path fixture_path() {
  const std::filesystem::path relative = "tests/integrate/fixtures/pyfai_reference.h5";
  if (const char* root = std::getenv("AZFLOW_SOURCE_DIR"); root != nullptr && *root != '\0') {
    return std::filesystem::path(root) / relative;
  }
  return AZFLOW_PYFAI_FIXTURE;
}

const FixtureFile& fixture() {
  static const FixtureFile file(fixture_path());
  return file;
}

/// Case names for test registration; a placeholder (whose test then fails) if the file is absent.
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
  if (v.size() != 2) throw Error(ErrorCategory::kInput, object + "@" + name + ": need 2 values");
  return std::pair(v[0], v[1]);
}

Geometry load_geometry(const std::string& name) {
  const std::string object = "/geometries/" + name;
  return Geometry(parse_poni(fixture().attr_string(object, "poni"),
                             fixture().path().string() + ":" + object + "@poni"));
}

// ------------------------------------------------------------------------------------------------
// Comparison helpers

/// Relative error of `a` against reference `b`, with `floor` as the smallest denominator.
double relative_error(double a, double b, double floor) {
  return std::fabs(a - b) / std::max(std::fabs(b), floor);
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

/// Compares a full per-pixel azflow array, sampled on the fixture's sub-grid, with pyFAI's.
template <typename T>
void expect_pixels_match(const std::string& what, const std::vector<T>& azflow,
                         const std::vector<double>& ref, const std::vector<std::int32_t>& rows,
                         const std::vector<std::int32_t>& cols, std::size_t width,
                         double tolerance) {
  ASSERT_EQ(ref.size(), rows.size() * cols.size()) << what;
  const double floor = 1e-3 * max_abs(ref);
  double worst = 0;
  std::size_t worst_k = 0, worst_pixel = 0;
  for (std::size_t a = 0; a < rows.size(); ++a) {
    for (std::size_t b = 0; b < cols.size(); ++b) {
      const std::size_t k = a * cols.size() + b;
      const std::size_t pixel = static_cast<std::size_t>(rows[a]) * width + cols[b];
      ASSERT_LT(pixel, azflow.size()) << what;
      const double err = relative_error(static_cast<double>(azflow[pixel]), ref[k], floor);
      if (!(err <= worst)) {  // also catches NaN
        worst = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
        worst_k = k;
        worst_pixel = pixel;
      }
    }
  }
  EXPECT_LE(worst, tolerance) << what << ": worst pixel (row " << worst_pixel / width << ", col "
                              << worst_pixel % width << "): azflow "
                              << static_cast<double>(azflow[worst_pixel]) << ", pyFAI "
                              << ref[worst_k];
}

/// Bin centres: |a - b| <= max(1e-6 |b|, 1e-9 span).
void expect_axis_match(const std::string& what, const std::vector<double>& azflow,
                       const std::vector<double>& ref) {
  ASSERT_EQ(azflow.size(), ref.size()) << what << " length";
  if (ref.empty()) return;
  const double span = std::fabs(ref.back() - ref.front());
  std::size_t bad = 0, first_bad = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double tol = std::max(1e-6 * std::fabs(ref[i]), 1e-9 * span);
    if (!(std::fabs(azflow[i] - ref[i]) <= tol)) {
      if (bad++ == 0) first_bad = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " centres differ; first at " << first_bad
                     << ": azflow " << azflow[first_bad] << ", pyFAI " << ref[first_bad];
}

/// Describes bin k as "k" (1D) or "k (azim a, rad r)" (2D).
std::string bin_name(std::size_t k, std::size_t npt_rad, bool two_d) {
  std::ostringstream s;
  s << k;
  if (two_d) s << " (azim " << k / npt_rad << ", rad " << k % npt_rad << ")";
  return s.str();
}

/// Per-bin comparison over bins with pyFAI count > kMeaningfulCount and a finite reference.
void expect_bins_match(const std::string& what, const std::vector<double>& azflow,
                       const std::vector<double>& ref, const std::vector<double>& ref_count,
                       std::size_t npt_rad, bool two_d) {
  ASSERT_EQ(azflow.size(), ref.size()) << what << ": bin count";
  ASSERT_EQ(ref.size(), ref_count.size()) << what;
  const double floor = 1e-12 * max_abs(ref);
  std::vector<double> errors;
  std::size_t skipped = 0, worst = 0;
  double worst_err = -1;
  for (std::size_t k = 0; k < ref.size(); ++k) {
    if (!(ref_count[k] > kMeaningfulCount)) continue;
    if (!std::isfinite(ref[k])) {
      ++skipped;
      continue;
    }
    double err = relative_error(azflow[k], ref[k], floor);
    if (std::isnan(err)) err = std::numeric_limits<double>::infinity();
    if (err > worst_err) {
      worst_err = err;
      worst = k;
    }
    errors.push_back(err);
  }
  if (skipped > 0) {
    std::cout << "[ note     ] " << what << ": skipped " << skipped
              << " bins whose pyFAI value is not finite\n";
  }
  ASSERT_FALSE(errors.empty()) << what << ": no bin with a meaningful count";
  std::nth_element(errors.begin(), errors.begin() + errors.size() / 2, errors.end());
  const double median = errors[errors.size() / 2];
  const std::string worst_text =
      "worst bin " + bin_name(worst, npt_rad, two_d) + ": azflow " + std::to_string(azflow[worst]) +
      ", pyFAI " + std::to_string(ref[worst]) + ", pyFAI count " +
      std::to_string(ref_count[worst]) + ", relative error " + std::to_string(worst_err);
  std::cout << "[ info     ] " << what << ": max relative error " << worst_err << ", median "
            << median << " over " << errors.size() << " bins\n";
  EXPECT_LE(worst_err, kBinMaxTolerance) << what << ": " << worst_text;
  EXPECT_LE(median, kBinMedianTolerance) << what << ": median relative error " << median << " over "
                                         << errors.size() << " bins; " << worst_text;
}

// ------------------------------------------------------------------------------------------------
// Geometry arrays

class PyfaiGeometryTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PyfaiGeometryTest, PerPixelArraysMatchPyfai) {
  const std::string g = "/geometries/" + GetParam();
  const Geometry geometry = load_geometry(GetParam());
  const std::vector<std::size_t> frame_shape = fixture().shape("/inputs/frame_uint32_flat");
  ASSERT_EQ(geometry.rows(), frame_shape.at(0));
  ASSERT_EQ(geometry.cols(), frame_shape.at(1));

  const std::vector<std::int32_t> rows = fixture().read_i32(g + "/pixel_rows");
  const std::vector<std::int32_t> cols = fixture().read_i32(g + "/pixel_cols");
  const std::size_t width = geometry.cols();
  auto check = [&](const std::string& name, const auto& azflow, double tolerance) {
    expect_pixels_match(GetParam() + " " + name, azflow, fixture().read_f64(g + "/" + name), rows,
                        cols, width, tolerance);
  };
  check("tth", geometry.radial_centers(RadialUnit::k2Th_rad), kCentreTolerance);
  check("chi", geometry.chi_centers(), kCentreTolerance);
  check("q_nm", geometry.radial_centers(RadialUnit::kQ_nm), kCentreTolerance);
  check("r_m", geometry.radial_centers(RadialUnit::kR_mm), kCentreTolerance);
  check("delta_2th", geometry.radial_deltas(RadialUnit::k2Th_rad), kFloat32ArrayTolerance);
  check("delta_q_nm", geometry.radial_deltas(RadialUnit::kQ_nm), kFloat32ArrayTolerance);
  check("delta_r_m", geometry.radial_deltas(RadialUnit::kR_mm), kFloat32ArrayTolerance);
  check("delta_chi", geometry.chi_deltas(), kFloat32ArrayTolerance);
  check("solid_angle", geometry.solid_angle(), kFloat32ArrayTolerance);
  check("polarization_0.95", geometry.polarization(0.95), kFloat32ArrayTolerance);
}

INSTANTIATE_TEST_SUITE_P(PyfaiReference, PyfaiGeometryTest, ::testing::Values("flat", "tilted"),
                         [](const auto& param_info) { return param_info.param; });

// ------------------------------------------------------------------------------------------------
// Integration cases

/// One /cases/<name> group: settings, inputs and the plan built from them.
struct Case {
  std::string group;
  IntegrationSettings settings;
  Corrections corrections;
  std::string geometry_name;
  std::string frame_name;
};

Case load_case(const std::string& name) {
  const FixtureFile& f = fixture();
  Case c;
  c.group = "/cases/" + name;
  const std::string& g = c.group;
  c.geometry_name = f.attr_string(g, "geometry");
  c.frame_name = f.attr_string(g, "frame");
  IntegrationSettings& s = c.settings;
  const std::optional<RadialUnit> unit = parse_radial_unit(f.attr_string(g, "unit"));
  const std::optional<PixelSplit> split = parse_split(f.attr_string(g, "split"));
  const std::optional<ErrorModel> model = parse_error_model(f.attr_string(g, "error_model"));
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
  if (const std::string m = f.attr_string(g, "mask"); !m.empty()) {
    c.corrections.mask = f.read_u8("/inputs/" + m);
  }
  if (const std::string d = f.attr_string(g, "dark"); !d.empty()) {
    c.corrections.dark = f.read_f32("/inputs/" + d);
  }
  if (const std::string fl = f.attr_string(g, "flat"); !fl.empty()) {
    c.corrections.flat = f.read_f32("/inputs/" + fl);
  }
  return c;
}

class PyfaiCaseTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_NE(GetParam(), "fixture_file_missing") << "cannot open " << fixture_path();
    c_ = load_case(GetParam());
    plan_ = Plan::build(load_geometry(c_.geometry_name), c_.settings, c_.corrections);
  }
  [[nodiscard]] std::vector<double> ref(const std::string& name) const {
    return fixture().read_f64(c_.group + "/" + name);
  }
  [[nodiscard]] bool has(const std::string& name) const {
    return fixture().has(c_.group + "/" + name);
  }

  Case c_;
  std::shared_ptr<const Plan> plan_;
};

TEST_P(PyfaiCaseTest, BinCentresMatchPyfai) {
  expect_axis_match("radial centres", plan_->radial_centers(), ref("radial"));
  if (c_.settings.is_2d()) {
    expect_axis_match("azimuthal centres", plan_->azimuthal_centers(), ref("azimuthal"));
  } else {
    EXPECT_TRUE(plan_->azimuthal_centers().empty());
  }
}

TEST_P(PyfaiCaseTest, IntegrationMatchesPyfai) {
  const RawArray frame = fixture().read_raw("/inputs/" + c_.frame_name);
  ASSERT_EQ(frame.shape.size(), 2u);
  const FrameView view{frame.bytes.data(), frame.dtype, frame.shape[0], frame.shape[1]};
  std::cout << "[ info     ] frame " << c_.frame_name << " (" << dtype_name(view.dtype) << "), "
            << plan_->bins() << " bins, nnz " << plan_->csr_indices().size() << "\n";

  CpuIntegrator integrator(plan_);
  BinSums sums;
  integrator.integrate(view, sums);
  ASSERT_EQ(sums.bins(), plan_->bins());

  const bool two_d = c_.settings.is_2d();
  const std::size_t npt = c_.settings.npt_rad;
  const std::vector<double> count = ref("count");
  ASSERT_EQ(count.size(), sums.bins());

  // A bin pyFAI leaves empty must be (nearly) empty in azflow too.
  std::size_t spurious = 0, first_spurious = 0;
  for (std::size_t k = 0; k < count.size(); ++k) {
    if (count[k] == 0 && sums.count[k] > kMeaningfulCount && spurious++ == 0) first_spurious = k;
  }
  EXPECT_EQ(spurious, 0u) << "bins empty in pyFAI but not in azflow; first "
                          << bin_name(first_spurious, npt, two_d) << " with azflow count "
                          << sums.count[first_spurious];

  const bool with_sigma = has("sigma");
  std::vector<float> intensity(sums.bins()), sigma(with_sigma ? sums.bins() : 0);
  finalize(sums, intensity, sigma);
  expect_bins_match("I", {intensity.begin(), intensity.end()}, ref("I"), count, npt, two_d);
  if (with_sigma) {
    expect_bins_match("sigma", {sigma.begin(), sigma.end()}, ref("sigma"), count, npt, two_d);
    expect_bins_match("sum_variance", sums.variance, ref("sum_variance"), count, npt, two_d);
  }
  expect_bins_match("sum_signal", sums.signal, ref("sum_signal"), count, npt, two_d);
  expect_bins_match("sum_normalization", sums.normalization, ref("sum_normalization"), count, npt,
                    two_d);
  expect_bins_match("count", sums.count, count, count, npt, two_d);
}

/// pyFAI's CSR row (bin) for azflow bin k: 2D rows are rad * npt_azim + azim in pyFAI.
std::size_t pyfai_row(std::size_t k, const IntegrationSettings& s) {
  if (!s.is_2d()) return k;
  return (k % s.npt_rad) * s.npt_azim + k / s.npt_rad;
}

/// The cases for which the fixture stores pyFAI's CSR matrix.
std::vector<std::string> csr_case_names() {
  std::vector<std::string> names;
  for (const std::string& name : case_names()) {
    if (fixture().has("/cases/" + name + "/csr_indptr")) names.push_back(name);
  }
  return names;
}

class PyfaiCsrTest : public PyfaiCaseTest {};

TEST_P(PyfaiCsrTest, MatrixMatchesPyfai) {
  const std::vector<std::int32_t> indptr = fixture().read_i32(c_.group + "/csr_indptr");
  const std::vector<std::int32_t> indices = fixture().read_i32(c_.group + "/csr_indices");
  const std::vector<float> data = fixture().read_f32(c_.group + "/csr_data");
  const std::vector<std::int32_t>& a_ptr = plan_->csr_indptr();
  const std::span<const std::int32_t> a_idx = plan_->csr_indices();
  const std::span<const float> a_w = plan_->csr_weights();
  ASSERT_EQ(indptr.size(), plan_->bins() + 1);
  ASSERT_EQ(a_ptr.size(), plan_->bins() + 1);
  ASSERT_EQ(a_idx.size(), a_w.size());

  std::size_t moved = 0, weight_bad = 0;
  std::string first_issue;
  for (std::size_t k = 0; k < plan_->bins(); ++k) {
    const std::size_t r = pyfai_row(k, c_.settings);
    std::map<std::int32_t, float> theirs;
    for (std::int32_t j = indptr[r]; j < indptr[r + 1]; ++j) theirs[indices[j]] = data[j];
    std::set<std::int32_t> seen;
    for (std::int32_t j = a_ptr[k]; j < a_ptr[k + 1]; ++j) {
      seen.insert(a_idx[j]);
      const auto it = theirs.find(a_idx[j]);
      if (it == theirs.end()) {
        ++moved;
        if (first_issue.empty()) {
          first_issue = "bin " + bin_name(k, c_.settings.npt_rad, c_.settings.is_2d()) +
                        ": pixel " + std::to_string(a_idx[j]) + " only in azflow";
        }
      } else if (!(std::fabs(it->second - a_w[j]) <= kCsrWeightTolerance)) {
        ++weight_bad;
        if (first_issue.empty()) {
          first_issue = "bin " + bin_name(k, c_.settings.npt_rad, c_.settings.is_2d()) +
                        ": pixel " + std::to_string(a_idx[j]) + " weight azflow " +
                        std::to_string(a_w[j]) + ", pyFAI " + std::to_string(it->second);
        }
      }
    }
    for (const auto& [pixel, w] : theirs) {
      if (seen.count(pixel) == 0) {
        ++moved;
        if (first_issue.empty()) {
          first_issue = "bin " + bin_name(k, c_.settings.npt_rad, c_.settings.is_2d()) +
                        ": pixel " + std::to_string(pixel) + " only in pyFAI (weight " +
                        std::to_string(w) + ")";
        }
      }
    }
  }
  const auto allowed =
      static_cast<std::size_t>(kCsrMovedFraction * static_cast<double>(indices.size()));
  std::cout << "[ info     ] CSR nnz azflow " << a_idx.size() << ", pyFAI " << indices.size()
            << "; entries in one matrix only: " << moved << " (allowed " << allowed
            << "); weights off by > 1e-5: " << weight_bad << "\n";
  EXPECT_LE(moved, allowed) << first_issue;
  EXPECT_EQ(weight_bad, 0u) << first_issue;

  // Bin edges from pyFAI's engine: pos0_min + i * delta (internal units), times the unit scale.
  const double scale = unit_scale(c_.settings.unit);
  const double pos0_min = fixture().attr_f64(c_.group, "pos0_min");
  const double delta = fixture().attr_f64(c_.group, "delta");
  std::vector<double> edges(c_.settings.npt_rad + 1);
  for (std::size_t i = 0; i < edges.size(); ++i) {
    edges[i] = (pos0_min + static_cast<double>(i) * delta) * scale;
  }
  expect_axis_match("radial edges", plan_->radial_edges(), edges);
}

INSTANTIATE_TEST_SUITE_P(PyfaiReference, PyfaiCaseTest, ::testing::ValuesIn(case_names()),
                         [](const auto& param_info) { return param_info.param; });
INSTANTIATE_TEST_SUITE_P(PyfaiReference, PyfaiCsrTest, ::testing::ValuesIn(csr_case_names()),
                         [](const auto& param_info) { return param_info.param; });

TEST(PyfaiReferenceFixture, CoversEveryFrameTypeUnitAndSplit) {
  std::set<std::string> dtypes, units, splits, models;
  std::size_t two_d = 0;
  for (const std::string& name : case_names()) {
    const std::string g = "/cases/" + name;
    const std::string frame = fixture().attr_string(g, "frame");
    dtypes.insert(std::string(dtype_name(fixture().read_raw("/inputs/" + frame).dtype)));
    units.insert(fixture().attr_string(g, "unit"));
    splits.insert(fixture().attr_string(g, "split"));
    models.insert(fixture().attr_string(g, "error_model"));
    if (fixture().attr_f64(g, "npt_azim") > 0) ++two_d;
  }
  EXPECT_EQ(dtypes, (std::set<std::string>{"float32", "uint16", "uint32"}));
  EXPECT_EQ(units, (std::set<std::string>{"2th_deg", "2th_rad", "q_A^-1", "q_nm^-1", "r_mm"}));
  EXPECT_EQ(splits, (std::set<std::string>{"bbox", "no"}));
  EXPECT_EQ(models, (std::set<std::string>{"azimuthal", "none", "poisson"}));
  EXPECT_GT(two_d, 0u);
}

}  // namespace
}  // namespace azflow::integrate
