#include "stages/integrate/full_split.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>

namespace azflow::integrate::full_split {
namespace {

constexpr double kTwoPi = 2.0 * std::numbers::pi;
// pyFAI compares with its float32 pi.
const double kPi32 = static_cast<double>(static_cast<float>(std::numbers::pi));

double min4(const std::array<double, 4>& v) { return std::min({v[0], v[1], v[2], v[3]}); }
double max4(const std::array<double, 4>& v) { return std::max({v[0], v[1], v[2], v[3]}); }

// Adds `a` to a float32 accumulator the way a Cython `buffer[i] += a` does (sum in double).
void add_to(float& cell, double a) { cell = static_cast<float>(static_cast<double>(cell) + a); }

// Signed area between x = a and x = b under the line y = slope x + intercept.
double area_under(double a, double b, double slope, double intercept) {
  return (b - a) * (0.5 * slope * (b + a) + intercept);
}

// 1D: adds to strip[i] (i in [0, n)) the signed area under the segment (x0, y0) -> (x1, y1)
// between the strip's edges x = i and i + 1 (x in radial bin numbers). Strips outside [0, n)
// are left out.
void add_segment_1d(std::vector<float>& strip, double x0, double y0, double x1, double y1) {
  if (x1 == x0) return;
  const auto n = static_cast<std::ptrdiff_t>(strip.size());
  const double slope = (y1 - y0) / (x1 - x0);
  const double intercept = y0 - slope * x0;
  const auto i0 = static_cast<std::ptrdiff_t>(std::floor(x0));
  const auto i1 = static_cast<std::ptrdiff_t>(std::floor(x1));
  auto at = [&](std::ptrdiff_t i) -> float& { return strip[static_cast<std::size_t>(i)]; };
  const bool in0 = x0 >= 0 && x0 < static_cast<double>(n);
  const bool in1 = x1 >= 0 && x1 < static_cast<double>(n);
  if (i0 == i1 && i0 >= 0 && i0 < n) {
    add_to(at(i0), area_under(x0, x1, slope, intercept));
  } else if (x1 > x0) {
    if (in0) add_to(at(i0), area_under(x0, std::floor(x0 + 1.0), slope, intercept));
    for (std::ptrdiff_t i = std::max<std::ptrdiff_t>(i0 + 1, 0); i < std::min(i1, n); ++i)
      add_to(at(i), area_under(double(i), double(i + 1), slope, intercept));
    if (in1) add_to(at(i1), area_under(double(i1), x1, slope, intercept));
  } else {
    if (in0) add_to(at(i0), area_under(x0, double(i0), slope, intercept));
    for (std::ptrdiff_t i = std::min(i0, n) - 1; i > std::max<std::ptrdiff_t>(i1, -1); --i)
      add_to(at(i), area_under(double(i + 1), double(i), slope, intercept));
    if (in1) add_to(at(i1), area_under(std::floor(x1 + 1.0), x1, slope, intercept));
  }
}

// 2D box of cells [column][row], column = radial bin offset, row = azimuthal bin offset.
struct Box {
  std::vector<float>& cells;
  std::size_t height;  // rows per column
  float& at(std::ptrdiff_t col, std::ptrdiff_t row) {
    return cells[static_cast<std::size_t>(col) * height + static_cast<std::size_t>(row)];
  }
  // Stacks a column's signed area `area` (float32) from row 0 up, each cell taking at most
  // `width` (the column's width covered by the segment, a cell height being 1).
  void stack(std::ptrdiff_t col, float width, float area) {
    if (area == 0.0f) return;
    float left = std::fabs(area);
    float take = width;
    for (std::ptrdiff_t row = 0; left > 0 && static_cast<std::size_t>(row) < height; ++row) {
      if (take > left) {
        take = left;
        left = -1;
      }
      add_to(at(col, row), std::copysign(static_cast<double>(take), static_cast<double>(area)));
      left -= take;
    }
  }
};

// 2D: the segment (x0, y0) -> (x1, y1) in bin numbers relative to the box (x radial, y
// azimuthal, both >= 0), column by column. pyFAI keeps slope, intercept, the column bounds and
// areas in float32 here; so does this.
void add_segment_2d(Box& box, double x0, double y0, double x1, double y1) {
  if (x0 == x1) return;
  const auto slope = static_cast<float>((y1 - y0) / (x1 - x0));
  const auto intercept = static_cast<float>(y1 - static_cast<double>(slope) * x1);
  auto area = [&](double a, double b) {
    return static_cast<float>(area_under(a, b, slope, intercept));
  };
  if (x0 < x1) {
    auto p = static_cast<float>(std::ceil(x0));
    const auto dp = static_cast<float>(p - x0);
    if (p > x1) {  // one column
      box.stack(static_cast<std::ptrdiff_t>(x0), static_cast<float>(x1 - x0), area(x0, x1));
      return;
    }
    if (dp > 0) box.stack(static_cast<std::ptrdiff_t>(p) - 1, dp, area(x0, p));
    for (auto i = static_cast<std::ptrdiff_t>(std::floor(p));
         i < static_cast<std::ptrdiff_t>(std::floor(x1)); ++i)
      box.stack(i, 1.0f, area(double(i), double(i + 1)));
    p = static_cast<float>(std::floor(x1));
    const auto dq = static_cast<float>(x1 - p);
    if (dq > 0) box.stack(static_cast<std::ptrdiff_t>(p), std::fabs(dq), area(p, x1));
  } else {
    auto p = static_cast<float>(std::floor(x0));
    if (x1 > p) {  // one column
      box.stack(static_cast<std::ptrdiff_t>(x0), static_cast<float>(x0 - x1), area(x0, x1));
      return;
    }
    const auto dp = static_cast<float>(p - x0);
    if (dp < 0) box.stack(static_cast<std::ptrdiff_t>(p), std::fabs(dp), area(x0, p));
    for (auto i = static_cast<std::ptrdiff_t>(x0); i > static_cast<std::ptrdiff_t>(std::ceil(x1));
         --i)
      box.stack(i - 1, 1.0f, area(double(i), double(i - 1)));
    p = static_cast<float>(std::ceil(x1));
    const auto dq = static_cast<float>(x1 - p);
    if (dq < 0) box.stack(static_cast<std::ptrdiff_t>(x1), std::fabs(dq), area(p, x1));
  }
}

}  // namespace

CornerGrid::CornerGrid(std::vector<float> radial, std::vector<float> chi, std::size_t rows,
                       std::size_t cols)
    : radial_(std::move(radial)), chi_(std::move(chi)), rows_(rows), cols_(cols) {}

Quad CornerGrid::quad(std::size_t p) const noexcept {
  const std::size_t w = cols_ + 1, i = p / cols_, j = p % cols_;
  const std::size_t k[4] = {i * w + j, (i + 1) * w + j, (i + 1) * w + j + 1, i * w + j + 1};
  Quad q;
  for (int c = 0; c < 4; ++c) {
    q.rad[c] = radial_[k[c]];
    q.chi[c] = chi_[k[c]];
  }
  return q;
}

Extent extent(const CornerGrid& grid, const std::vector<std::uint8_t>& mask) {
  Extent e;
  for (std::size_t p = 0; p < grid.pixels(); ++p) {
    if (!mask.empty() && mask[p] != 0) continue;
    const Quad q = grid.quad(p);
    const double r0 = min4(q.rad), r1 = max4(q.rad), c0 = min4(q.chi), c1 = max4(q.chi);
    if (!e.any) {
      e = {r0, r1, c0, c1, true};
      continue;
    }
    e.rad_min = std::min(e.rad_min, r0);
    e.rad_max = std::max(e.rad_max, r1);
    e.chi_min = std::min(e.chi_min, c0);
    e.chi_max = std::max(e.chi_max, c1);
  }
  return e;
}

void recenter(Quad& q) noexcept {
  const auto& r = q.rad;
  auto& c = q.chi;
  const double test = 0.5 * ((r[2] - r[0]) * (c[3] - c[1])) - ((c[2] - c[0]) * (r[3] - r[1]));
  if (!(test > 0)) return;
  for (double& x : c)
    if (x < 0) x += kTwoPi;
  if (0.25 * (c[0] + c[1] + c[2] + c[3]) > kPi32)
    for (double& x : c) x -= kTwoPi;
}

Splitter::Splitter(const BinAxis& rad, const BinAxis* chi_range)
    : rad_(rad), check_chi_(chi_range != nullptr), strip_(rad.bins, 0.0f) {
  if (chi_range) azim_ = *chi_range;
}

Splitter::Splitter(const BinAxis& rad, const BinAxis& azim)
    : rad_(rad), azim_(azim), two_d_(true) {}

void Splitter::split(Quad q, std::vector<Entry>& out) {
  recenter(q);
  two_d_ ? split_2d(q, out) : split_1d(q, out);
}

void Splitter::split_1d(const Quad& q, std::vector<Entry>& out) {
  std::array<double, 4> f{};
  for (int c = 0; c < 4; ++c) f[c] = (q.rad[c] - rad_.min) / rad_.delta;
  const double lo = min4(f), hi = max4(f);
  if (hi < 0 || lo >= static_cast<double>(rad_.bins)) return;
  if (check_chi_ && (max4(q.chi) < azim_.min || min4(q.chi) > azim_.maxin)) return;
  auto first = static_cast<std::ptrdiff_t>(std::floor(lo));
  auto last = static_cast<std::ptrdiff_t>(std::floor(hi));
  if (first == last) {
    out.push_back({static_cast<std::size_t>(first), 1.0});
    return;
  }
  first = std::max<std::ptrdiff_t>(first, 0);
  const std::ptrdiff_t end = std::min(static_cast<std::ptrdiff_t>(rad_.bins), last + 1);
  for (int c = 0; c < 4; ++c) {
    const int d = (c + 1) % 4;
    add_segment_1d(strip_, f[c], q.chi[c], f[d], q.chi[d]);
  }
  double total = 0;
  for (std::ptrdiff_t b = first; b < end; ++b) total += strip_[static_cast<std::size_t>(b)];
  const double inv = 1.0 / total;
  for (std::ptrdiff_t b = first; b < end; ++b) {
    float& s = strip_[static_cast<std::size_t>(b)];
    if (s != 0.0f && total != 0) out.push_back({static_cast<std::size_t>(b), s * inv});
    s = 0.0f;
  }
}

void Splitter::split_2d(const Quad& q, std::vector<Entry>& out) {
  if (max4(q.rad) < rad_.min || min4(q.rad) > rad_.maxin || max4(q.chi) < azim_.min ||
      min4(q.chi) >= azim_.max)
    return;
  std::array<double, 4> x{}, y{};
  for (int c = 0; c < 4; ++c) {
    x[c] = (std::clamp(q.rad[c], rad_.min, rad_.maxin) - rad_.min) / rad_.delta;
    y[c] = (std::clamp(q.chi[c], azim_.min, azim_.maxin) - azim_.min) / azim_.delta;
  }
  const double off0 = std::floor(min4(x)), off1 = std::floor(min4(y));
  const auto w0 = static_cast<std::ptrdiff_t>(std::ceil(max4(x)) - off0);
  const auto w1 = static_cast<std::ptrdiff_t>(std::ceil(max4(y)) - off1);
  const auto height = static_cast<std::size_t>(w1 + 1);
  box_.assign(static_cast<std::size_t>(w0 + 1) * height, 0.0f);
  for (int c = 0; c < 4; ++c) {
    x[c] -= off0;
    y[c] -= off1;
  }
  Box box{box_, height};
  for (int c = 0; c < 4; ++c) {
    const int d = (c + 1) % 4;
    add_segment_2d(box, x[c], y[c], x[d], y[d]);
  }
  const double area = 0.5 * ((y[2] - y[0]) * (x[3] - x[1]) - (x[2] - x[0]) * (y[3] - y[1]));
  if (area == 0.0) return;
  const double inv = 1.0 / area;
  const auto col0 = static_cast<std::size_t>(off0), row0 = static_cast<std::size_t>(off1);
  for (std::ptrdiff_t i = 0; i < w0; ++i) {
    for (std::ptrdiff_t j = 0; j < w1; ++j) {
      const float a = box.at(i, j);
      if (a == 0.0f) continue;
      const std::size_t bin =
          (row0 + static_cast<std::size_t>(j)) * rad_.bins + col0 + static_cast<std::size_t>(i);
      out.push_back({bin, a * inv});
    }
  }
}

}  // namespace azflow::integrate::full_split
