#pragma once
// The integration cases on which the GPU backend (its CPU emulation in gpu_plan_test.cpp, the
// device itself in cuda_integrator_test.cpp) is compared with the CPU integrator: 1D and 2D, no,
// bbox and full splitting, every error model, without and with every correction, frames of every
// dtype with dummy, masked and (float32) non-finite pixels.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "stages/integrate/cpu_integrator.hpp"
#include "stages/integrate/plan.hpp"

namespace azflow::integrate::testing {

inline constexpr std::size_t kRows = 60, kCols = 80;
/// Relative tolerance per bin between two float64 sums of the same terms in a different order
/// (plus kAbsTolerance x the largest magnitude of that quantity, for sums that cancel).
inline constexpr double kRelTolerance = 1e-9;
inline constexpr double kAbsTolerance = 1e-12;

/// A small tilted detector with the beam off centre, so bins have uneven populations.
inline Geometry test_geometry() {
  Poni p;
  p.detector = {"Detector", 100e-6, 100e-6, kRows, kCols};
  p.dist_m = 0.05;
  p.poni1_m = 0.0031;
  p.poni2_m = 0.0042;
  p.rot1_rad = 0.02;
  p.rot2_rad = 0.05;
  p.wavelength_m = 1e-10;
  return Geometry(p);
}

/// One plan to compare on.
struct PlanCase {
  std::string name;
  std::shared_ptr<const Plan> plan;
};

/// Every combination of 1D/2D, no/bbox/full splitting, none/Poisson/azimuthal, and plain/full
/// corrections.
inline std::vector<PlanCase> plan_cases() {
  std::vector<PlanCase> cases;
  const Geometry g = test_geometry();
  for (const bool two_d : {false, true}) {
    for (const PixelSplit split : {PixelSplit::kNo, PixelSplit::kBBox, PixelSplit::kFull}) {
      for (const ErrorModel em :
           {ErrorModel::kNone, ErrorModel::kPoisson, ErrorModel::kAzimuthal}) {
        for (const bool full : {false, true}) {
          IntegrationSettings s;
          s.npt_rad = two_d ? 30 : 50;
          s.npt_azim = two_d ? 16 : 0;
          s.split = split;
          s.error_model = em;
          Corrections c;
          if (full) {
            s.polarization_factor = 0.9;
            s.normalization_factor = 2.5;
            s.dummy = 200.0;
            s.delta_dummy = two_d ? 0.5 : 0.0;
            std::mt19937 rng(11);
            std::uniform_real_distribution<float> u(0.0f, 1.0f);
            for (std::size_t p = 0; p < kRows * kCols; ++p) {
              c.mask.push_back(u(rng) < 0.03f ? 1 : 0);
              c.dark.push_back(u(rng) < 0.01f ? 200.0f : 5.0f * u(rng));  // dummy dark: invalid
              c.flat.push_back(0.8f + 0.4f * u(rng));
            }
          } else {
            s.correct_solid_angle = false;
          }
          const std::string name = std::string(two_d ? "2d" : "1d") + "_" +
                                   std::string(split_name(split)) + "_" +
                                   std::string(error_model_name(em)) + (full ? "_full" : "_plain");
          cases.push_back({name, Plan::build(g, s, c)});
        }
      }
    }
  }
  return cases;
}

/// `count` frames of element type T: values spread over T's useful range (integers beyond 2^24
/// for 32-bit types, so that exact and float32 conversions differ), 2% of the pixels at the
/// dummy value 200, and for float32 a few NaN and infinite pixels.
template <class T>
std::vector<std::vector<T>> make_frames(std::size_t count, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  double lo = 0, hi = 254;
  if constexpr (std::is_same_v<T, std::uint16_t>) hi = 60000;
  if constexpr (std::is_same_v<T, std::uint32_t>) hi = 3.0e9;
  if constexpr (std::is_same_v<T, std::int32_t>) lo = -1000, hi = 2.0e9;
  if constexpr (std::is_same_v<T, float>) lo = -10, hi = 1.0e4;
  if constexpr (std::is_same_v<T, std::int16_t>) lo = -1000, hi = 32000;
  if constexpr (std::is_same_v<T, std::int64_t>) lo = -1000, hi = 6.0e13;  // above 2^32
  if constexpr (std::is_same_v<T, double>) lo = -10, hi = 1.0e6;
  std::vector<std::vector<T>> frames(count, std::vector<T>(kRows * kCols));
  for (auto& f : frames) {
    for (auto& v : f) {
      const double r = u(rng);
      // Mostly small counts (as detectors see), a tail of large values.
      const double x =
          r < 0.9 ? lo + (std::min(hi, 1000.0) - lo) * u(rng) : lo + (hi - lo) * u(rng);
      v = static_cast<T>(x);
      if (u(rng) < 0.02) v = static_cast<T>(200);
    }
    if constexpr (std::is_floating_point_v<T>) {
      f[17] = std::numeric_limits<T>::quiet_NaN();
      f[1234] = std::numeric_limits<T>::infinity();
      f[2345] = -std::numeric_limits<T>::infinity();
    }
  }
  return frames;
}

inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (const double x : v) m = std::max(m, std::fabs(x));
  return m;
}

/// Expects `got` to equal `want` bin by bin within kRelTolerance (see above); returns the largest
/// relative difference seen.
inline double expect_close(const BinSums& want, const BinSums& got, const std::string& what) {
  EXPECT_EQ(got.bins(), want.bins()) << what;
  if (got.bins() != want.bins()) return 1.0;
  double worst = 0;
  const std::vector<double> BinSums::*fields[] = {&BinSums::signal, &BinSums::variance,
                                                  &BinSums::normalization, &BinSums::count};
  const char* names[] = {"signal", "variance", "normalization", "count"};
  for (int f = 0; f < 4; ++f) {
    const auto& a = want.*fields[f];
    const auto& b = got.*fields[f];
    const double floor = kAbsTolerance * max_abs(a);
    int failures = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      const double diff = std::fabs(a[i] - b[i]);
      const double scale = std::max(std::fabs(a[i]), std::fabs(b[i]));
      if (scale > 0) worst = std::max(worst, diff / scale);
      if (diff > kRelTolerance * scale + floor && failures++ < 3) {
        ADD_FAILURE() << what << ": " << names[f] << "[" << i << "] CPU " << a[i] << " GPU "
                      << b[i];
      }
    }
  }
  return worst;
}

}  // namespace azflow::integrate::testing
