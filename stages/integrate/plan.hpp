#pragma once
// The integration plan: everything about an integration that does not depend on the frame,
// built once from geometry and settings and shared (immutable) by every frame and worker.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/dtype.hpp"
#include "stages/integrate/geometry.hpp"
#include "stages/integrate/units.hpp"

namespace azflow::integrate {

/// Pixel splitting: none (each pixel centre falls into one bin), bounding box (a pixel's
/// radial/azimuthal extent centre +- delta is shared between the bins it overlaps, in proportion)
/// or full (the pixel's corner quadrilateral is shared by area, stages/integrate/full_split.hpp).
enum class PixelSplit { kNo, kBBox, kFull };

/// How `sigma` is obtained (pyFAI's error_model): none, Poisson, or azimuthal (the weighted
/// variance of the pixels of each bin). Poisson follows pyFAI 0.21 exactly: variance = max(raw, 1)
/// for 1D and raw for 2D integrations, with no dark-current term in either.
enum class ErrorModel { kNone, kPoisson, kAzimuthal };

/// Sigma clipping of pyFAI 0.21's AzimuthalIntegrator.sigma_clip_ng (1D, CSR engine): per radial
/// bin, up to `max_iter` times, drop every pixel whose corrected value differs from the bin's mean
/// by more than max(thres, Chauvenet's sqrt(2 ln(n / sqrt(2 pi)))) standard deviations, then
/// integrate the rest again (stages/integrate/sigma_clip.hpp has the details).
struct SigmaClip {
  double thres = 5.0;        ///< pyFAI's `thres`, in standard deviations (finite, > 0)
  std::size_t max_iter = 5;  ///< pyFAI's `max_iter`; 0 = no clipping (plain mean)
};

/// Settings of one integration, in pyFAI's terms (AzimuthalIntegrator.integrate1d_ng /
/// integrate2d_ng with method ("no"|"bbox"|"full", "csr", *)).
struct IntegrationSettings {
  RadialUnit unit = RadialUnit::kQ_nm;
  std::size_t npt_rad = 1000;  ///< radial bins (> 0)
  std::size_t npt_azim = 0;    ///< azimuthal bins; 0 for a 1D integration
  /// Radial range in the unit's own scale (e.g. degrees for 2th_deg); default: pyFAI's (min, max)
  /// over unmasked pixels (with their bounding boxes with bbox, their corners with full splitting),
  /// clipped at 0.
  std::optional<std::pair<double, double>> radial_range;
  /// Azimuthal range in degrees (whatever azimuthal_unit is); default: all pixels (1D); for 2D
  /// pyFAI's min..max of the pixels' chi (chi -+ delta with splitting), clipped to [-180, 180].
  /// lo > hi (both in [-180, 180]) is the sector across +-180 deg: chi >= lo or chi <= hi; its 2D
  /// axis runs from lo to hi + 360 (pixels with chi below the middle of the excluded gap are
  /// taken at chi + 360, as pyFAI places chi with its discontinuity at 0).
  std::optional<std::pair<double, double>> azimuth_range_deg;
  /// Unit of the 2D azimuthal axis (chi_deg or chi_rad).
  AzimuthalUnit azimuthal_unit = AzimuthalUnit::kChiDeg;
  PixelSplit split = PixelSplit::kNo;
  bool correct_solid_angle = true;
  std::optional<double> polarization_factor;  ///< none: no polarization correction
  std::optional<double> dummy;                ///< pixel value marking invalid pixels
  std::optional<double> delta_dummy;          ///< tolerance around `dummy`
  double normalization_factor = 1.0;          ///< monitor value: divides every intensity
  ErrorModel error_model = ErrorModel::kNone;
  /// Set: sigma_clip_ng instead of integrate1d_ng (1D only; error_model poisson or azimuthal).
  std::optional<SigmaClip> sigma_clip;

  /// Throws azflow::Error (kConfig) naming the field for npt_rad == 0, a reversed or empty range,
  /// non-finite values, a non-positive normalization factor or |polarization_factor| > 1, and for
  /// sigma_clip with a 2D integration, no error model or a thres that is not finite and > 0.
  void validate() const;
  [[nodiscard]] bool is_2d() const noexcept { return npt_azim > 0; }
  /// True for an azimuth range with lo > hi: the sector across +-180 deg.
  [[nodiscard]] bool azimuth_wraps() const noexcept {
    return azimuth_range_deg && azimuth_range_deg->first > azimuth_range_deg->second;
  }
};

/// Per-pixel static corrections, each empty or rows x cols row-major.
struct Corrections {
  std::vector<std::uint8_t> mask;  ///< nonzero = masked (pyFAI convention)
  std::vector<float> dark;         ///< subtracted from the raw signal
  std::vector<float> flat;         ///< divides the signal (multiplies the normalization)
};

/// Adds the detector's own mask (detector_mask) to `corrections.mask` (OR), as pyFAI 0.21 uses
/// the detector's mask when no mask is passed to integrate1d / integrate2d. Callers apply it only
/// when the user gave no mask file. Throws azflow::Error (kConfig) if a non-empty mask does not
/// have the detector's size.
void add_detector_mask(const DetectorSpec& detector, Corrections& corrections);

/// Names of pyFAI-style settings, for output files and messages.
std::string_view split_name(PixelSplit split) noexcept;
std::string_view error_model_name(ErrorModel model) noexcept;
std::optional<PixelSplit> parse_split(std::string_view name) noexcept;
std::optional<ErrorModel> parse_error_model(std::string_view name) noexcept;

/// An immutable integration plan.
///
/// Bins: 1D has npt_rad bins; 2D has npt_azim x npt_rad bins, bin = azim * npt_rad + rad (the
/// layout of pyFAI's 2D result, I[azim][rad]).
///
/// The pixel-to-bin matrix is held in CSR form (one row per bin, columns = pixel indices, float32
/// weights, within a row in increasing pixel order) exactly as pyFAI's splitBBoxCSR (or, with full
/// splitting, splitPixelFullCSR, zero weights left out) builds it, and
/// also transposed (one entry list per pixel), which the CPU integrator streams through.
class Plan {
 public:
  /// Builds the plan. Throws azflow::Error (kConfig) for invalid settings or corrections whose
  /// size is not rows x cols (naming which), or a q unit without wavelength.
  static std::shared_ptr<const Plan> build(const Geometry& geometry,
                                           const IntegrationSettings& settings,
                                           const Corrections& corrections = {});

  [[nodiscard]] const IntegrationSettings& settings() const noexcept { return settings_; }
  [[nodiscard]] std::size_t rows() const noexcept { return rows_; }
  [[nodiscard]] std::size_t cols() const noexcept { return cols_; }
  [[nodiscard]] std::size_t pixels() const noexcept { return rows_ * cols_; }
  [[nodiscard]] std::size_t bins() const noexcept { return bins_; }

  /// Radial bin centres in the user unit (npt_rad), as pyFAI reports them.
  [[nodiscard]] const std::vector<double>& radial_centers() const noexcept {
    return radial_centers_;
  }
  /// Radial bin edges in the user unit (npt_rad + 1).
  [[nodiscard]] const std::vector<double>& radial_edges() const noexcept { return radial_edges_; }
  /// Azimuthal bin centres in settings().azimuthal_unit (npt_azim; empty for 1D).
  [[nodiscard]] const std::vector<double>& azimuthal_centers() const noexcept {
    return azim_centers_;
  }
  [[nodiscard]] const std::vector<double>& azimuthal_edges() const noexcept { return azim_edges_; }

  /// CSR matrix: bins + 1 row pointers, nnz pixel indices, nnz weights.
  [[nodiscard]] const std::vector<std::int32_t>& csr_indptr() const noexcept { return indptr_; }
  [[nodiscard]] std::span<const std::int32_t> csr_indices() const noexcept {
    return pick(mapped_.indices, indices_);
  }
  [[nodiscard]] std::span<const float> csr_weights() const noexcept {
    return pick(mapped_.weights, weights_);
  }

  /// Transposed matrix (per pixel): pixels + 1 pointers into pixel_bins / pixel_weights. Pixels
  /// made invalid by the dark or flat (see invalid()) have no entries here.
  [[nodiscard]] std::span<const std::int32_t> pixel_ptr() const noexcept {
    return pick(mapped_.pixel_ptr, pixel_ptr_);
  }
  [[nodiscard]] std::span<const std::int32_t> pixel_bins() const noexcept {
    return pick(mapped_.pixel_bins, pixel_bins_);
  }
  [[nodiscard]] std::span<const float> pixel_weights() const noexcept {
    return pick(mapped_.pixel_weights, pixel_weights_);
  }
  /// Without splitting, every pixel has at most one bin of weight 1: its bin, or -1 if it falls
  /// outside the ranges or is masked. Empty with bbox or full splitting.
  [[nodiscard]] std::span<const std::int32_t> pixel_bin() const noexcept {
    return pick(mapped_.pixel_bin, pixel_bin_);
  }

  /// Per-pixel normalization: solid angle x polarization x flat x normalization factor, float32
  /// (pyFAI preproc's normalization channel).
  [[nodiscard]] std::span<const float> normalization() const noexcept {
    return pick(mapped_.normalization, normalization_);
  }
  /// Dark current per pixel (empty if none).
  [[nodiscard]] std::span<const float> dark() const noexcept { return pick(mapped_.dark, dark_); }
  /// Pixels pyFAI 0.21's preproc drops whatever the frame holds: flat 0, NaN or equal to the dummy,
  /// dark NaN, normalization 0 or NaN (the dark is never compared with the dummy); nonzero =
  /// invalid. Empty if no such pixel exists. They stay in the CSR matrix (as in pyFAI) but are
  /// left out of the per-pixel lists and of static_sums().
  [[nodiscard]] std::span<const std::uint8_t> invalid() const noexcept {
    return pick(mapped_.invalid, invalid_);
  }

  /// Frame-independent per-bin sums over the pixels of the per-pixel lists, in CSR row order:
  /// entries (number of matrix entries), count = sum w, normalization = sum w n,
  /// dark = sum w dark. A frame's sums are these minus the
  /// contributions of its invalid (dummy) pixels, plus its own signal and variance terms.
  struct StaticSums {
    std::vector<std::int64_t> entries;
    std::vector<double> count, normalization, dark;
  };
  [[nodiscard]] const StaticSums& static_sums() const noexcept { return static_sums_; }

  /// Whether the per-pixel and matrix arrays above are views into a mapped .plan file
  /// (read_plan_file; its pages are shared by every process that maps the file) rather than
  /// held by this object.
  [[nodiscard]] bool mapped() const noexcept { return storage_ != nullptr; }

 private:
  Plan() = default;
  friend class PlanBuilder;
  friend struct PlanCodec;  // stages/integrate/plan_file.cpp: the .plan file format

  IntegrationSettings settings_;
  std::size_t rows_ = 0, cols_ = 0, bins_ = 0;
  std::vector<double> radial_centers_, radial_edges_, azim_centers_, azim_edges_;
  std::vector<std::int32_t> indptr_, indices_;
  std::vector<float> weights_;
  std::vector<std::int32_t> pixel_ptr_, pixel_bins_;
  std::vector<float> pixel_weights_;
  std::vector<std::int32_t> pixel_bin_;
  std::vector<float> normalization_, dark_;
  std::vector<std::uint8_t> invalid_;
  StaticSums static_sums_;
  /// A plan read from a .plan file: its large arrays are views into the file's read-only
  /// mapping, which storage_ keeps alive (the vectors above stay empty).
  struct Views {
    std::span<const std::int32_t> indices, pixel_ptr, pixel_bins, pixel_bin;
    std::span<const float> weights, pixel_weights, normalization, dark;
    std::span<const std::uint8_t> invalid;
  };
  std::shared_ptr<const void> storage_;
  Views mapped_;

  /// The mapped view of an array for a plan read from a file, else the owned vector.
  template <class T>
  [[nodiscard]] std::span<const T> pick(std::span<const T> mapped,
                                        const std::vector<T>& owned) const noexcept {
    return storage_ ? mapped : std::span<const T>(owned);
  }
};

/// Checks that `frame` can be integrated with `plan`: rows x cols equal to the plan's and data
/// present. Throws azflow::Error (kInput) naming the frame's and the detector's shape. (The dtype
/// is each integrator's business.)
void check_frame(const Plan& plan, const FrameView& frame);

}  // namespace azflow::integrate
