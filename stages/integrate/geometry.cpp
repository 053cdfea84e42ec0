#include "stages/integrate/geometry.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <thread>

#include "base/error.hpp"

namespace azflow::integrate {
namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kTwoPi = 2.0 * std::numbers::pi;

struct Vec3 {
  double t1, t2, t3;
};

// Radial position in internal units (pyFAI units.py: eq_q, eq_2th, eq_r) of a sample-frame point.
double radial_of(const Vec3& t, RadialUnit unit, double wavelength_m) {
  const double r = std::sqrt(t.t1 * t.t1 + t.t2 * t.t2);
  if (unit == RadialUnit::kR_mm || unit == RadialUnit::kR_m) return r;
  const double tth = std::atan2(r, t.t3);
  if (unit == RadialUnit::k2Th_deg || unit == RadialUnit::k2Th_rad) return tth;
  const double q = 4.0e-9 * kPi * std::sin(tth / 2.0) / wavelength_m;  // nm^-1
  switch (unit) {
    case RadialUnit::kD2_A:
    case RadialUnit::kD2_nm:
      return (q / (2.0 * kPi)) * (q / (2.0 * kPi));
    case RadialUnit::kLogQ_nm:
      return std::log(q);
    case RadialUnit::kLog1pQ_nm:
      return std::log1p(q);
    case RadialUnit::kLog1pQ_A:
      return std::log1p(0.1 * q);
    case RadialUnit::kLog10Q_m:
      // pyFAI 0.21.3 evaluates this unit with its numexpr formula
      // "log10(4e-9*pi/lambda*sin(...))", i.e. log10 of q in nm^-1 (not of q in m^-1 as its name
      // and its numpy equation say); azflow reproduces what pyFAI returns.
      return std::log10(q);
    case RadialUnit::kAsinhQ_nm:
      return std::asinh(q);
    case RadialUnit::kAsinhQ_A:
      return std::asinh(0.1 * q);
    default:
      return q;
  }
}

// Runs fn(row) for every row in [0, rows), rows split in contiguous blocks over the machine's
// cores. Each row writes only its own part of the output, so no synchronisation is needed.
template <class Fn>
void for_rows(std::size_t rows, Fn&& fn) {
  const std::size_t threads = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1,
                                                      std::max<std::size_t>(rows / 64, 1));
  auto block = [&](std::size_t t) {
    for (std::size_t i = rows * t / threads; i < rows * (t + 1) / threads; ++i) fn(i);
  };
  std::vector<std::jthread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(block, t);
  block(0);
}

// Angular distance between two angles (radians), in [0, pi].
double angular_distance(double a, double b) {
  double d = std::fmod(std::fabs(a - b), kTwoPi);
  return std::min(d, kTwoPi - d);
}

}  // namespace

Geometry::Geometry(Poni poni) : poni_(std::move(poni)) {
  const DetectorSpec& d = poni_.detector;
  if (d.rows == 0 || d.cols == 0) {
    throw Error(ErrorCategory::kConfig,
                "detector '" + d.name + "' has no shape (give max_shape in Detector_config)");
  }
  if (!(d.pixel1_m > 0) || !(d.pixel2_m > 0)) {
    throw Error(ErrorCategory::kConfig, "detector '" + d.name + "' has no pixel size");
  }
  const double c1 = std::cos(poni_.rot1_rad), s1 = std::sin(poni_.rot1_rad);
  const double c2 = std::cos(poni_.rot2_rad), s2 = std::sin(poni_.rot2_rad);
  const double c3 = std::cos(poni_.rot3_rad), s3 = std::sin(poni_.rot3_rad);
  const double r1[3][3] = {{1, 0, 0}, {0, c1, s1}, {0, -s1, c1}};
  const double r2[3][3] = {{c2, 0, -s2}, {0, 1, 0}, {s2, 0, c2}};
  const double r3[3][3] = {{c3, -s3, 0}, {s3, c3, 0}, {0, 0, 1}};
  double r32[3][3] = {};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) r32[i][j] += r3[i][k] * r2[k][j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      r_[i][j] = 0;
      for (int k = 0; k < 3; ++k) r_[i][j] += r32[i][k] * r1[k][j];
    }
}

namespace {

Vec3 rotate(const double (&r)[3][3], double p1, double p2, double p3) {
  return {r[0][0] * p1 + r[0][1] * p2 + r[0][2] * p3, r[1][0] * p1 + r[1][1] * p2 + r[1][2] * p3,
          r[2][0] * p1 + r[2][1] * p2 + r[2][2] * p3};
}

// Detector-plane offsets from the PONI of pixel (i, j)'s centre. pyFAI 0.21 evaluates centre
// arrays with numpy.fromfunction(..., dtype=float32), so the offset is formed in float32
// arithmetic: f32(f32(pixel) * f32(i + 0.5)) - f32(poni); the rest of the computation is float64.
// Reproducing this keeps pixels that sit on a bin edge in the same bin as pyFAI.
double center_offset(std::size_t index, double pixel_m, double poni_m) {
  const float pos = static_cast<float>(pixel_m) * (static_cast<float>(index) + 0.5f);
  return static_cast<double>(pos - static_cast<float>(poni_m));
}

// Sample-frame position of pixel (i, j)'s centre.
Vec3 center_position(const Poni& p, const double (&r)[3][3], std::size_t i, std::size_t j) {
  return rotate(r, center_offset(i, p.detector.pixel1_m, p.poni1_m),
                center_offset(j, p.detector.pixel2_m, p.poni2_m), p.dist_m);
}

// The same centre in float64 throughout, as pyFAI's position_array (used by units computed from
// their generic equation) forms it: (i + 0.5) * pixel - poni.
Vec3 center_position64(const Poni& p, const double (&r)[3][3], std::size_t i, std::size_t j) {
  return rotate(r, (static_cast<double>(i) + 0.5) * p.detector.pixel1_m - p.poni1_m,
                (static_cast<double>(j) + 0.5) * p.detector.pixel2_m - p.poni2_m, p.dist_m);
}

// Sample-frame position of corner (i, j) (integer pixel coordinates), in float64 as pyFAI's
// corner_array computes it.
Vec3 corner_position(const Poni& p, const double (&r)[3][3], std::size_t i, std::size_t j) {
  return rotate(r, static_cast<double>(i) * p.detector.pixel1_m - p.poni1_m,
                static_cast<double>(j) * p.detector.pixel2_m - p.poni2_m, p.dist_m);
}

double wavelength_for(const Poni& poni, RadialUnit unit) {
  if (!unit_needs_wavelength(unit)) return 0;
  if (!poni.wavelength_m) {
    throw Error(ErrorCategory::kConfig, "unit " + std::string(unit_name(unit)) +
                                            " needs a wavelength (Wavelength in PONI)");
  }
  return *poni.wavelength_m;
}

}  // namespace

std::vector<double> Geometry::radial_centers(RadialUnit unit) const {
  const double wl = wavelength_for(poni_, unit);
  std::vector<double> out(pixels());
  const auto position = unit_uses_equation(unit) ? center_position64 : center_position;
  for_rows(rows(), [&](std::size_t i) {
    for (std::size_t j = 0; j < cols(); ++j)
      out[i * cols() + j] = radial_of(position(poni_, r_, i, j), unit, wl);
  });
  return out;
}

std::vector<float> Geometry::radial_corners(RadialUnit unit) const {
  const double wl = wavelength_for(poni_, unit);
  const std::size_t w = cols() + 1;
  std::vector<float> out((rows() + 1) * w);
  for_rows(rows() + 1, [&](std::size_t i) {
    for (std::size_t j = 0; j <= cols(); ++j)
      out[i * w + j] = static_cast<float>(radial_of(corner_position(poni_, r_, i, j), unit, wl));
  });
  return out;
}

std::vector<double> Geometry::chi_centers() const {
  std::vector<double> out(pixels());
  for_rows(rows(), [&](std::size_t i) {
    for (std::size_t j = 0; j < cols(); ++j) {
      const Vec3 t = center_position(poni_, r_, i, j);
      out[i * cols() + j] = std::atan2(t.t1, t.t2);
    }
  });
  return out;
}

std::vector<float> Geometry::chi_corners() const {
  const std::size_t w = cols() + 1;
  std::vector<float> out((rows() + 1) * w);
  for_rows(rows() + 1, [&](std::size_t i) {
    for (std::size_t j = 0; j <= cols(); ++j) {
      const Vec3 t = corner_position(poni_, r_, i, j);
      out[i * w + j] = static_cast<float>(std::atan2(t.t1, t.t2));
    }
  });
  return out;
}

namespace {

// max over the 4 corners of distance(corner, centre), corners (rows+1) x (cols+1).
template <class Distance>
std::vector<double> corner_deltas(const std::vector<double>& centers,
                                  const std::vector<float>& corners, std::size_t rows,
                                  std::size_t cols, Distance distance) {
  std::vector<double> out(rows * cols);
  const std::size_t w = cols + 1;
  for_rows(rows, [&](std::size_t i) {
    for (std::size_t j = 0; j < cols; ++j) {
      const double c = centers[i * cols + j];
      const double d = std::max(
          {distance(corners[i * w + j], c), distance(corners[(i + 1) * w + j], c),
           distance(corners[(i + 1) * w + j + 1], c), distance(corners[i * w + j + 1], c)});
      out[i * cols + j] = d;
    }
  });
  return out;
}

}  // namespace

std::vector<double> Geometry::radial_deltas(RadialUnit unit) const {
  return corner_deltas(radial_centers(unit), radial_corners(unit), rows(), cols(),
                       [](float corner, double c) { return std::fabs(double(corner) - c); });
}

std::vector<double> Geometry::chi_deltas() const {
  return corner_deltas(chi_centers(), chi_corners(), rows(), cols(),
                       [](float corner, double c) { return angular_distance(corner, c); });
}

std::vector<float> Geometry::solid_angle() const {
  std::vector<float> out(pixels());
  const double L = poni_.dist_m;
  for_rows(rows(), [&](std::size_t i) {
    const double p1 = center_offset(i, poni_.detector.pixel1_m, poni_.poni1_m);
    for (std::size_t j = 0; j < cols(); ++j) {
      const double p2 = center_offset(j, poni_.detector.pixel2_m, poni_.poni2_m);
      const double cosa = L / std::sqrt(L * L + (p1 * p1 + p2 * p2));
      out[i * cols() + j] = static_cast<float>(cosa * cosa * cosa);
    }
  });
  return out;
}

std::vector<float> Geometry::polarization(double factor, double axis_offset_rad) const {
  std::vector<float> out(pixels());
  for_rows(rows(), [&](std::size_t i) {
    for (std::size_t j = 0; j < cols(); ++j) {
      const Vec3 t = center_position(poni_, r_, i, j);
      const double tth = std::atan2(std::sqrt(t.t1 * t.t1 + t.t2 * t.t2), t.t3);
      const double chi = std::atan2(t.t1, t.t2);
      const double cos2 = std::cos(tth) * std::cos(tth);
      out[i * cols() + j] = static_cast<float>(
          0.5 * (1.0 + cos2 - factor * std::cos(2.0 * (chi + axis_offset_rad)) * (1.0 - cos2)));
    }
  });
  return out;
}

}  // namespace azflow::integrate
