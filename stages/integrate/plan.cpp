#include "stages/integrate/plan.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <sstream>
#include <string>

#include "base/error.hpp"
#include "stages/integrate/full_split.hpp"

namespace azflow::integrate {

std::string_view split_name(PixelSplit split) noexcept {
  switch (split) {
    case PixelSplit::kNo:
      return "no";
    case PixelSplit::kBBox:
      return "bbox";
    case PixelSplit::kFull:
      return "full";
  }
  return "no";
}

std::string_view error_model_name(ErrorModel model) noexcept {
  switch (model) {
    case ErrorModel::kNone:
      return "none";
    case ErrorModel::kPoisson:
      return "poisson";
    case ErrorModel::kAzimuthal:
      return "azimuthal";
  }
  return "none";
}

std::optional<PixelSplit> parse_split(std::string_view name) noexcept {
  if (name == "no" || name == "none") return PixelSplit::kNo;
  if (name == "bbox") return PixelSplit::kBBox;
  if (name == "full") return PixelSplit::kFull;
  return std::nullopt;
}

std::optional<ErrorModel> parse_error_model(std::string_view name) noexcept {
  if (name == "none" || name.empty()) return ErrorModel::kNone;
  if (name == "poisson") return ErrorModel::kPoisson;
  if (name == "azimuthal") return ErrorModel::kAzimuthal;
  return std::nullopt;
}

namespace {

[[noreturn]] void bad_setting(std::string_view field, const std::string& why) {
  throw Error(ErrorCategory::kConfig, "integration setting '" + std::string(field) + "': " + why);
}

void validate_range(std::string_view field, const std::optional<std::pair<double, double>>& r) {
  if (!r) return;
  if (!std::isfinite(r->first) || !std::isfinite(r->second)) bad_setting(field, "not finite");
  if (!(r->first < r->second)) {
    std::ostringstream s;
    s << "lower bound " << r->first << " must be below upper bound " << r->second;
    bad_setting(field, s.str());
  }
}

}  // namespace

void IntegrationSettings::validate() const {
  if (npt_rad == 0) bad_setting("npt_rad", "must be at least 1");
  constexpr std::size_t kMaxBins = 1u << 28;
  if (npt_rad > kMaxBins || npt_azim > kMaxBins ||
      npt_rad * std::max<std::size_t>(npt_azim, 1) > kMaxBins)
    bad_setting("npt", "too many bins");
  validate_range("radial_range", radial_range);
  if (azimuth_wraps()) {  // the sector across +-180 deg: both bounds inside [-180, 180]
    const auto [lo, hi] = *azimuth_range_deg;
    if (!(lo <= 180.0 && hi >= -180.0)) {
      std::ostringstream m;
      m << "lower bound " << lo << " above upper bound " << hi
        << " is a sector across +-180 deg, whose bounds must lie in [-180, 180] deg";
      bad_setting("azimuth_range", m.str());
    }
  } else {
    validate_range("azimuth_range", azimuth_range_deg);
  }
  if (split == PixelSplit::kFull && azimuth_wraps())
    bad_setting("azimuth_range",
                "full pixel splitting takes no sector across +-180 deg (lower bound above upper "
                "bound); use bbox splitting, or integrate the two sides separately");
  if (!(normalization_factor > 0) || !std::isfinite(normalization_factor))
    bad_setting("normalization_factor", "must be positive and finite");
  if (polarization_factor &&
      (!std::isfinite(*polarization_factor) || std::fabs(*polarization_factor) > 1.0))
    bad_setting("polarization_factor", "must lie in [-1, 1]");
  if (dummy && !std::isfinite(*dummy)) bad_setting("dummy", "not finite");
  if (delta_dummy && (!std::isfinite(*delta_dummy) || *delta_dummy < 0))
    bad_setting("delta_dummy", "must be finite and >= 0");
  if (delta_dummy && !dummy) bad_setting("delta_dummy", "given without dummy");
  if (sigma_clip) {
    if (is_2d()) bad_setting("sigma_clip", "1D only (as pyFAI 0.21's sigma_clip_ng): no npt_azim");
    if (error_model == ErrorModel::kNone)
      bad_setting("sigma_clip", "needs error_model poisson or azimuthal");
    if (!(sigma_clip->thres > 0) || !std::isfinite(sigma_clip->thres))
      bad_setting("thres", "must be positive and finite");
    if (sigma_clip->max_iter > 1000) bad_setting("max_iter", "must be at most 1000");
  }
}

namespace {

// pyFAI's calc_upper_bound (regrid_common.pxi): the largest position is nudged up by one float32
// epsilon so that it falls inside the last bin.
double upper_bound(double maxin) {
  constexpr double kEps32 = 1.0 + static_cast<double>(std::numeric_limits<float>::epsilon());
  return maxin > 0 ? maxin * kEps32 : maxin / kEps32;
}

// One axis of bins: [min, max) cut in n equal bins (pyFAI: delta = (pos_max - pos_min) / bins).
struct Axis {
  double min = 0;    // pos_min
  double maxin = 0;  // largest position (range end)
  double max = 0;    // upper_bound(maxin)
  double delta = 0;
  std::size_t bins = 0;

  void set(double lo, double hi, std::size_t n) {
    min = lo;
    maxin = hi;
    max = upper_bound(hi);
    bins = n;
    delta = (max - min) / static_cast<double>(n);
  }
  [[nodiscard]] double bin_number(double x) const { return (x - min) / delta; }
  // pyFAI 0.21 HistoBBox1d/2d bin_centers: pos_min + (i + 0.5) * delta.
  [[nodiscard]] std::vector<double> centers(double scale) const {
    std::vector<double> c(bins);
    for (std::size_t i = 0; i < bins; ++i)
      c[i] = (min + (static_cast<double>(i) + 0.5) * delta) * scale;
    return c;
  }
  [[nodiscard]] std::vector<double> edges(double scale) const {
    std::vector<double> e(bins + 1);
    for (std::size_t i = 0; i <= bins; ++i) e[i] = (min + static_cast<double>(i) * delta) * scale;
    return e;
  }
};

// Per-pixel positions the plan is built from (pyFAI setup_CSR): radial centre and half-width,
// azimuthal centre and half-width (radians); half-widths are zero without splitting. Full
// splitting uses the corners instead (pos0 etc. empty).
struct Positions {
  std::vector<double> pos0, dpos0, pos1, dpos1;
  std::optional<full_split::CornerGrid> corners;
};

// Emits (bin, weight) pairs of one pixel into the per-pixel lists.
struct PixelLists {
  std::vector<std::int32_t> ptr{0};
  std::vector<std::int32_t> bins;
  std::vector<float> weights;

  void insert(std::size_t bin, double w) {
    bins.push_back(static_cast<std::int32_t>(bin));
    weights.push_back(static_cast<float>(w));
  }
  void end_pixel() { ptr.push_back(static_cast<std::int32_t>(bins.size())); }
};

// First and last bin a [fmin, fmax] bin-number interval touches, clipped to [0, n); false if it
// misses the axis (pyFAI splitBBox_common calc_lut_1d / calc_lut_2d).
bool clip_bins(double fmin, double fmax, std::size_t n, std::ptrdiff_t& lo, std::ptrdiff_t& hi) {
  lo = static_cast<std::ptrdiff_t>(fmin);  // truncation toward zero, as C's cast
  hi = static_cast<std::ptrdiff_t>(fmax);
  const auto nn = static_cast<std::ptrdiff_t>(n);
  if (hi < 0 || lo >= nn) return false;
  hi = std::min(hi, nn - 1);
  lo = std::max<std::ptrdiff_t>(lo, 0);
  return true;
}

}  // namespace

/// Builds a Plan (friend of Plan). Follows pyFAI 0.21's splitBBoxCSR / splitBBox_common:
/// calc_boundaries for the default ranges, then one pass over the pixels in index order
/// distributing each unmasked pixel over the bins its [c - d, c + d] box overlaps.
class PlanBuilder {
 public:
  PlanBuilder(const Geometry& g, const IntegrationSettings& s, const Corrections& c)
      : geometry_(g), settings_(s), corrections_(c) {}

  std::shared_ptr<const Plan> build() {
    settings_.validate();
    check_corrections();
    auto plan = std::shared_ptr<Plan>(new Plan());
    plan->settings_ = settings_;
    plan->rows_ = geometry_.rows();
    plan->cols_ = geometry_.cols();
    const Positions pos = positions();
    boundaries(pos);
    const double scale = unit_scale(settings_.unit);
    plan->radial_centers_ = rad_.centers(scale);
    plan->radial_edges_ = rad_.edges(scale);
    if (settings_.is_2d()) {
      const double azim_scale = azimuthal_unit_scale(settings_.azimuthal_unit);
      plan->azim_centers_ = azim_.centers(azim_scale);
      plan->azim_edges_ = azim_.edges(azim_scale);
    }
    plan->bins_ = settings_.npt_rad * std::max<std::size_t>(settings_.npt_azim, 1);
    PixelLists lists = pos.corners         ? fill_full(pos)
                       : settings_.is_2d() ? fill_2d(pos)
                                           : fill_1d(pos);
    to_csr(lists, *plan);
    corrections(*plan);
    drop_invalid(lists, plan->invalid_);
    if (settings_.split == PixelSplit::kNo) {
      plan->pixel_bin_.assign(plan->pixels(), -1);
      for (std::size_t p = 0; p < plan->pixels(); ++p) {
        if (lists.ptr[p + 1] > lists.ptr[p]) plan->pixel_bin_[p] = lists.bins[lists.ptr[p]];
      }
    }
    plan->pixel_ptr_ = std::move(lists.ptr);
    plan->pixel_bins_ = std::move(lists.bins);
    plan->pixel_weights_ = std::move(lists.weights);
    static_sums(*plan);
    return plan;
  }

 private:
  void check_corrections() const {
    const std::size_t n = geometry_.pixels();
    auto check = [&](std::size_t size, std::string_view what) {
      if (size != 0 && size != n) {
        std::ostringstream s;
        s << what << " has " << size << " pixels, the detector " << geometry_.rows() << " x "
          << geometry_.cols() << " = " << n;
        throw Error(ErrorCategory::kConfig, s.str());
      }
    };
    check(corrections_.mask.size(), "mask");
    check(corrections_.dark.size(), "dark");
    check(corrections_.flat.size(), "flat");
  }

  [[nodiscard]] bool masked(std::size_t p) const {
    return !corrections_.mask.empty() && corrections_.mask[p] != 0;
  }
  [[nodiscard]] bool need_chi() const {
    return settings_.is_2d() || settings_.azimuth_range_deg.has_value();
  }

  [[nodiscard]] Positions positions() const {
    Positions pos;
    if (settings_.split == PixelSplit::kFull) {
      pos.corners.emplace(geometry_.radial_corners(settings_.unit), geometry_.chi_corners(),
                          geometry_.rows(), geometry_.cols());
      return pos;
    }
    pos.pos0 = geometry_.radial_centers(settings_.unit);
    const bool split = settings_.split == PixelSplit::kBBox;
    if (split) pos.dpos0 = geometry_.radial_deltas(settings_.unit);
    if (need_chi()) {
      pos.pos1 = geometry_.chi_centers();
      if (split) pos.dpos1 = geometry_.chi_deltas();
      if (settings_.azimuth_wraps()) wrap_chi(pos.pos1);
    }
    return pos;
  }

  // A sector lo > hi across +-180 deg: chi below the middle of the excluded gap (hi, lo) is
  // taken at chi + 2 pi, so that the sector is the one interval [lo, hi + 2 pi].
  void wrap_chi(std::vector<double>& chi) const {
    constexpr double kRad = std::numbers::pi / 180.0;
    const double middle =
        0.5 * (settings_.azimuth_range_deg->first + settings_.azimuth_range_deg->second) * kRad;
    for (double& c : chi)
      if (c < middle) c += 2.0 * std::numbers::pi;
  }

  // pyFAI calc_boundaries: min/max over unmasked pixels of c -+ d, radial clipped at 0, the
  // azimuthal range clipped to [-pi, pi] (pyFAI compares with float32 pi); explicit ranges win.
  void boundaries(const Positions& pos) {
    double r_min = std::numeric_limits<double>::infinity(), r_max = -r_min;
    double a_min = r_min, a_max = -r_min;
    const bool split = !pos.dpos0.empty();
    const bool chi = !pos.pos1.empty() || (pos.corners && need_chi());
    if (pos.corners) {  // pyFAI's full-split calc_boundaries: extent of the corners
      const full_split::Extent e = full_split::extent(*pos.corners, corrections_.mask);
      if (e.any) {
        r_min = e.rad_min;
        r_max = e.rad_max;
        a_min = e.chi_min;
        a_max = e.chi_max;
      }
    }
    for (std::size_t p = 0; p < pos.pos0.size(); ++p) {
      if (masked(p)) continue;
      const double d0 = split ? pos.dpos0[p] : 0.0;
      r_min = std::min(r_min, pos.pos0[p] - d0);
      r_max = std::max(r_max, pos.pos0[p] + d0);
      if (chi) {
        const double d1 = split ? pos.dpos1[p] : 0.0;
        a_min = std::min(a_min, pos.pos1[p] - d1);
        a_max = std::max(a_max, pos.pos1[p] + d1);
      }
    }
    if (!std::isfinite(r_min)) {
      throw Error(ErrorCategory::kConfig, "every pixel is masked: nothing to integrate");
    }
    r_min = std::max(0.0, r_min);
    r_max = std::max(0.0, r_max);
    const double pi32 = static_cast<double>(static_cast<float>(std::numbers::pi));
    a_max = std::min(a_max, pi32);
    a_min = std::max(a_min, -pi32);
    if (settings_.radial_range) {
      const double scale = unit_scale(settings_.unit);
      r_min = settings_.radial_range->first / scale;
      r_max = settings_.radial_range->second / scale;
    }
    if (settings_.azimuth_range_deg) {
      constexpr double kRad = std::numbers::pi / 180.0;
      a_min = settings_.azimuth_range_deg->first * kRad;
      a_max = settings_.azimuth_range_deg->second * kRad;
      if (settings_.azimuth_wraps()) a_max += 2.0 * std::numbers::pi;
    }
    rad_.set(r_min, r_max, settings_.npt_rad);
    if (chi) azim_.set(a_min, a_max, std::max<std::size_t>(settings_.npt_azim, 1));
  }

  // One pass over the pixels in index order; each unmasked pixel's entries come from `insert`.
  template <class Insert>
  PixelLists fill(std::size_t pixels, Insert&& insert) const {
    PixelLists out;
    out.ptr.reserve(pixels + 1);
    out.bins.reserve(pixels);
    out.weights.reserve(pixels);
    for (std::size_t p = 0; p < pixels; ++p) {
      if (!masked(p)) insert(p, out);
      out.end_pixel();
    }
    return out;
  }

  // Full splitting: each unmasked pixel's quadrilateral through full_split::Splitter.
  PixelLists fill_full(const Positions& pos) const {
    const auto axis = [](const Axis& a) {
      return full_split::BinAxis{a.min, a.maxin, a.max, a.delta, a.bins};
    };
    const full_split::BinAxis rad = axis(rad_), azim = axis(azim_);
    full_split::Splitter splitter =
        settings_.is_2d()
            ? full_split::Splitter(rad, azim)
            : full_split::Splitter(rad, settings_.azimuth_range_deg ? &azim : nullptr);
    std::vector<full_split::Entry> entries;
    return fill(pos.corners->pixels(), [&](std::size_t p, PixelLists& out) {
      entries.clear();
      splitter.split(pos.corners->quad(p), entries);
      for (const full_split::Entry& e : entries) out.insert(e.bin, e.weight);
    });
  }

  PixelLists fill_1d(const Positions& pos) const {
    const bool split = !pos.dpos0.empty();
    const bool check_chi = settings_.azimuth_range_deg.has_value();
    return fill(pos.pos0.size(),
                [&](std::size_t p, PixelLists& out) { insert_1d(pos, p, split, check_chi, out); });
  }

  void insert_1d(const Positions& pos, std::size_t p, bool split, bool check_chi,
                 PixelLists& out) const {
    const double c0 = pos.pos0[p], d0 = split ? pos.dpos0[p] : 0.0;
    if (check_chi) {
      const double c1 = pos.pos1[p], d1 = split ? pos.dpos1[p] : 0.0;
      if (c1 + d1 < azim_.min || c1 - d1 > azim_.maxin) return;
    }
    const double f_min = rad_.bin_number(c0 - d0), f_max = rad_.bin_number(c0 + d0);
    std::ptrdiff_t lo = 0, hi = 0;
    if (!clip_bins(f_min, f_max, rad_.bins, lo, hi)) return;
    if (lo == hi) {
      out.insert(static_cast<std::size_t>(lo), 1.0);
      return;
    }
    const double inv_area = 1.0 / (f_max - f_min);
    out.insert(static_cast<std::size_t>(lo), inv_area * (static_cast<double>(lo + 1) - f_min));
    for (std::ptrdiff_t b = lo + 1; b < hi; ++b) out.insert(static_cast<std::size_t>(b), inv_area);
    out.insert(static_cast<std::size_t>(hi), inv_area * (f_max - static_cast<double>(hi)));
  }

  PixelLists fill_2d(const Positions& pos) const {
    const bool split = !pos.dpos0.empty();
    return fill(pos.pos0.size(),
                [&](std::size_t p, PixelLists& out) { insert_2d(pos, p, split, out); });
  }

  // Bin index of (radial r, azimuthal a): azim-major, as azflow's 2D results are laid out.
  [[nodiscard]] std::size_t bin_2d(std::ptrdiff_t r, std::ptrdiff_t a) const {
    return static_cast<std::size_t>(a) * rad_.bins + static_cast<std::size_t>(r);
  }

  // pyFAI calc_lut_2d: the same bounding-box rule on both axes; entries are inserted in pyFAI's
  // order so that each bin's pixel list is identical.
  void insert_2d(const Positions& pos, std::size_t p, bool split, PixelLists& out) const {
    const double c0 = pos.pos0[p], d0 = split ? pos.dpos0[p] : 0.0;
    const double c1 = pos.pos1[p], d1 = split ? pos.dpos1[p] : 0.0;
    const double f0_min = rad_.bin_number(c0 - d0), f0_max = rad_.bin_number(c0 + d0);
    const double f1_min = azim_.bin_number(c1 - d1), f1_max = azim_.bin_number(c1 + d1);
    std::ptrdiff_t r0 = 0, r1 = 0, a0 = 0, a1 = 0;
    if (!clip_bins(f0_min, f0_max, rad_.bins, r0, r1)) return;
    if (!clip_bins(f1_min, f1_max, azim_.bins, a0, a1)) return;
    const double left = static_cast<double>(r0 + 1) - f0_min,
                 right = f0_max - static_cast<double>(r1);
    const double down = static_cast<double>(a0 + 1) - f1_min, up = f1_max - static_cast<double>(a1);
    if (r0 == r1 && a0 == a1) {
      out.insert(bin_2d(r0, a0), 1.0);
    } else if (r0 == r1) {
      const double inv = 1.0 / (f1_max - f1_min);
      out.insert(bin_2d(r0, a0), inv * down);
      out.insert(bin_2d(r0, a1), inv * up);
      for (std::ptrdiff_t a = a0 + 1; a < a1; ++a) out.insert(bin_2d(r0, a), inv);
    } else if (a0 == a1) {
      const double inv = 1.0 / (f0_max - f0_min);
      out.insert(bin_2d(r0, a0), inv * left);
      out.insert(bin_2d(r1, a0), inv * right);
      for (std::ptrdiff_t r = r0 + 1; r < r1; ++r) out.insert(bin_2d(r, a0), inv);
    } else {
      const double inv = 1.0 / ((f0_max - f0_min) * (f1_max - f1_min));
      out.insert(bin_2d(r0, a0), inv * left * down);
      out.insert(bin_2d(r0, a1), inv * left * up);
      out.insert(bin_2d(r1, a0), inv * right * down);
      out.insert(bin_2d(r1, a1), inv * right * up);
      for (std::ptrdiff_t r = r0 + 1; r < r1; ++r) {
        out.insert(bin_2d(r, a0), inv * down);
        for (std::ptrdiff_t a = a0 + 1; a < a1; ++a) out.insert(bin_2d(r, a), inv);
        out.insert(bin_2d(r, a1), inv * up);
      }
      for (std::ptrdiff_t a = a0 + 1; a < a1; ++a) {
        out.insert(bin_2d(r0, a), inv * left);
        out.insert(bin_2d(r1, a), inv * right);
      }
    }
  }

  // Transposes the per-pixel lists into CSR (counting sort by bin; stable, so each row keeps
  // increasing pixel order, as pyFAI's SparseBuilder does).
  static void to_csr(const PixelLists& lists, Plan& plan) {
    plan.indptr_.assign(plan.bins_ + 1, 0);
    for (std::int32_t b : lists.bins) ++plan.indptr_[static_cast<std::size_t>(b) + 1];
    for (std::size_t b = 0; b < plan.bins_; ++b) plan.indptr_[b + 1] += plan.indptr_[b];
    plan.indices_.resize(lists.bins.size());
    plan.weights_.resize(lists.bins.size());
    std::vector<std::int32_t> next(plan.indptr_.begin(), plan.indptr_.end() - 1);
    const std::size_t pixels = lists.ptr.size() - 1;
    for (std::size_t p = 0; p < pixels; ++p) {
      for (std::int32_t k = lists.ptr[p]; k < lists.ptr[p + 1]; ++k) {
        const auto slot = static_cast<std::size_t>(next[static_cast<std::size_t>(lists.bins[k])]++);
        plan.indices_[slot] = static_cast<std::int32_t>(p);
        plan.weights_[slot] = lists.weights[k];
      }
    }
  }

  // Per-pixel normalization nf * flat * polarization * solid angle (float32, pyFAI preproc), dark,
  // and the pixels pyFAI's preproc drops whatever the frame holds (mark_invalid_corrections).
  void corrections(Plan& plan) const {
    const std::size_t n = plan.pixels();
    plan.normalization_.assign(n, static_cast<float>(settings_.normalization_factor));
    if (!corrections_.flat.empty())
      for (std::size_t p = 0; p < n; ++p) plan.normalization_[p] *= corrections_.flat[p];
    if (settings_.polarization_factor) {
      const auto pol = geometry_.polarization(*settings_.polarization_factor);
      for (std::size_t p = 0; p < n; ++p) plan.normalization_[p] *= pol[p];
    }
    if (settings_.correct_solid_angle) {
      const auto sa = geometry_.solid_angle();
      for (std::size_t p = 0; p < n; ++p) plan.normalization_[p] *= sa[p];
    }
    plan.dark_ = corrections_.dark;
    mark_invalid_corrections(plan);
  }

  // pyFAI 0.21 preproc's frame-independent validity rules: a pixel is dropped if its flat is 0,
  // NaN or equal to the dummy (within delta_dummy), its dark is NaN, or its normalization is 0 or
  // NaN. The dark is never compared with the dummy; infinite values are kept (as pyFAI does).
  void mark_invalid_corrections(Plan& plan) const {
    const bool check_dummy = settings_.dummy.has_value();
    const auto dummy = static_cast<float>(settings_.dummy.value_or(0.0));
    const auto delta = static_cast<float>(settings_.delta_dummy.value_or(0.0));
    auto is_dummy = [&](float v) {
      return check_dummy && (delta == 0 ? v == dummy : std::fabs(v - dummy) <= delta);
    };
    std::vector<std::uint8_t> invalid(plan.pixels(), 0);
    bool any = false;
    for (std::size_t p = 0; p < plan.pixels(); ++p) {
      bool bad = plan.normalization_[p] == 0.0f || std::isnan(plan.normalization_[p]);
      if (!corrections_.flat.empty()) {
        const float f = corrections_.flat[p];
        bad = bad || f == 0.0f || std::isnan(f) || is_dummy(f);
      }
      if (!corrections_.dark.empty()) bad = bad || std::isnan(corrections_.dark[p]);
      invalid[p] = bad ? 1 : 0;
      any = any || bad;
    }
    if (any) plan.invalid_ = std::move(invalid);
  }

  // Removes the entries of pixels made invalid by their corrections from the per-pixel lists.
  static void drop_invalid(PixelLists& lists, const std::vector<std::uint8_t>& invalid) {
    if (invalid.empty()) return;
    PixelLists kept;
    const std::size_t pixels = lists.ptr.size() - 1;
    for (std::size_t p = 0; p < pixels; ++p) {
      if (!invalid[p])
        for (std::int32_t k = lists.ptr[p]; k < lists.ptr[p + 1]; ++k)
          kept.insert(static_cast<std::size_t>(lists.bins[k]), lists.weights[k]);
      kept.end_pixel();
    }
    lists = std::move(kept);
  }

  // Per-bin sums that do not depend on the frame, in CSR row order (pyFAI's summation order).
  static void static_sums(Plan& plan) {
    Plan::StaticSums& s = plan.static_sums_;
    s.entries.assign(plan.bins_, 0);
    s.count.assign(plan.bins_, 0.0);
    s.normalization.assign(plan.bins_, 0.0);
    s.dark.assign(plan.bins_, 0.0);
    for (std::size_t b = 0; b < plan.bins_; ++b) {
      for (std::int32_t k = plan.indptr_[b]; k < plan.indptr_[b + 1]; ++k) {
        const auto p = static_cast<std::size_t>(plan.indices_[k]);
        if (!plan.invalid_.empty() && plan.invalid_[p]) continue;
        const double w = plan.weights_[k];
        ++s.entries[b];
        s.count[b] += w;
        s.normalization[b] += w * plan.normalization_[p];
        if (!plan.dark_.empty()) s.dark[b] += w * plan.dark_[p];
      }
    }
  }

  const Geometry& geometry_;
  IntegrationSettings settings_;
  const Corrections& corrections_;
  Axis rad_, azim_;
};

void add_detector_mask(const DetectorSpec& detector, Corrections& corrections) {
  std::vector<std::uint8_t> own = detector_mask(detector);
  if (own.empty()) return;
  if (corrections.mask.empty()) {
    corrections.mask = std::move(own);
    return;
  }
  if (corrections.mask.size() != own.size()) {
    throw Error(ErrorCategory::kConfig, "mask has " + std::to_string(corrections.mask.size()) +
                                            " pixels, the detector " + detector.name + " " +
                                            std::to_string(own.size()));
  }
  for (std::size_t p = 0; p < own.size(); ++p) corrections.mask[p] |= own[p];
}

std::shared_ptr<const Plan> Plan::build(const Geometry& geometry,
                                        const IntegrationSettings& settings,
                                        const Corrections& corrections) {
  return PlanBuilder(geometry, settings, corrections).build();
}

void check_frame(const Plan& plan, const FrameView& frame) {
  if (frame.rows != plan.rows() || frame.cols != plan.cols()) {
    std::ostringstream s;
    s << "frame shape " << frame.rows << " x " << frame.cols << " does not match the detector "
      << plan.rows() << " x " << plan.cols();
    throw Error(ErrorCategory::kInput, s.str());
  }
  if (frame.data == nullptr) throw Error(ErrorCategory::kInput, "frame has no data");
}

}  // namespace azflow::integrate
