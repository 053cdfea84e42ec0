#pragma once
// The output formats of an integration result and the one interface their writers share, so
// that `azflow integrate`, the daemon's output assembly or any other caller picks a format with
// one value (NexusLayout::format) and hands rows over the same way whatever it is.
//
//   nexus      azflow's NeXus layout (stages/reduce/nexus_writer.hpp), the default
//   nxazint    the NeXus NXazint1d / NXazint2d application definitions (NeXus v2025.11), written
//              by the same NexusWriter (layout in nexus_writer.hpp)
//   xy         pyFAI's save1D text file of the mean of all frames (the dataset-wide sums) at the
//              output path (stages/reduce/xy_writer.hpp); 1D only
//   xy-frames  one save1D text file per frame, "<stem>_<frame, 5 digits><ext>" beside the output
//              path; 1D only

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "stages/integrate/cpu_integrator.hpp"
#include "stages/integrate/plan.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/integrate/units.hpp"
#include "stages/reduce/output_dir.hpp"

namespace azflow::reduce {

/// Which file format a result is written in (see the table above).
enum class OutputFormat { kNexus, kNxAzint, kXy, kXyFrames };

/// "nexus", "nxazint", "xy" or "xy-frames".
std::string_view output_format_name(OutputFormat format) noexcept;
/// The format named `name` (as output_format_name writes it); nullopt for any other text.
std::optional<OutputFormat> parse_output_format(std::string_view name) noexcept;
/// The accepted names, for messages: "nexus, nxazint, xy or xy-frames".
inline constexpr std::string_view kOutputFormatChoices = "nexus, nxazint, xy or xy-frames";

/// Whether `format` can hold a result with `npt_azim` azimuthal bins (the text formats hold 1D
/// results only). Callers validating options use it to refuse early.
bool format_supports(OutputFormat format, std::size_t npt_azim) noexcept;

/// How a result was made, for the headers of the text format and the `*_applied` flags of
/// NXazint. Filled from the plan by NexusLayout::from_plan (solid angle, polarization, dark,
/// normalization factor); callers add what only they know (poni, mask, flat).
struct OutputProvenance {
  std::optional<integrate::Poni> poni;  ///< geometry (xy header; NXazint wavelength)
  bool solid_angle_applied = false;
  std::optional<double> polarization_factor;  ///< unset = no polarization correction
  double normalization_factor = 1.0;          ///< pyFAI's monitor value
  bool mask_applied = false;                  ///< a mask image or the file's pixel_mask was used
  bool dark_applied = false;
  bool flat_applied = false;
};

/// Shape, axes and format of an output file.
struct NexusLayout {
  std::filesystem::path path;  ///< final output path
  /// The folder `path` is made in, opened and checked by the caller (the daemon: at enqueue,
  /// without following links); null = the writer opens path's parent itself (following links,
  /// as `azflow integrate` does for its user). Only path's file name is used then.
  std::shared_ptr<const OutputDir> dir;
  bool overwrite = false;        ///< replace an existing `path`
  std::size_t frames = 0;        ///< rows of I
  std::int64_t first_frame = 0;  ///< input frame index of row 0 (frame_index = first_frame + row)
  integrate::RadialUnit unit = integrate::RadialUnit::kQ_nm;
  std::vector<double> radial_centers;     ///< npt_rad, in the unit's own scale
  std::vector<double> radial_edges;       ///< npt_rad + 1
  std::vector<double> azimuthal_centers;  ///< npt_azim, in azimuthal_unit; empty for 1D
  std::vector<double> azimuthal_edges;    ///< npt_azim + 1; empty for 1D
  integrate::AzimuthalUnit azimuthal_unit = integrate::AzimuthalUnit::kChiDeg;
  bool with_errors = false;  ///< write I_errors
  /// Sigma clipping (sigma_clip_ng): also write each frame's clipped std and count (NeXus).
  bool with_clip_stats = false;
  /// integrate_radial: the 1D axis (radial_centers / radial_edges) holds chi in azimuthal_unit,
  /// named "chi" (format nexus only).
  bool chi_profile = false;
  OutputFormat format = OutputFormat::kNexus;
  OutputProvenance provenance;
  /// I and sigma of a bin without pixels (count 0) in rows finalized from sums (write_frame with
  /// BinSums, the dataset-wide sums): pyFAI's `empty` (its dummy when one is given, else
  /// AzimuthalIntegrator.empty, 0.0). Rows handed over as values are written as they are.
  float empty_value = 0.0f;

  /// Layout matching a plan's bins, unit, error model and corrections (format nexus).
  static NexusLayout from_plan(const integrate::Plan& plan, std::filesystem::path path,
                               std::size_t frames);
  [[nodiscard]] std::size_t npt_rad() const noexcept { return radial_centers.size(); }
  [[nodiscard]] std::size_t npt_azim() const noexcept { return azimuthal_centers.size(); }
  /// Values per row: npt_rad (1D) or npt_azim * npt_rad (2D).
  [[nodiscard]] std::size_t bins() const noexcept;
};

/// One frame that could not be integrated: its output row, input frame and why.
struct FailedFrame {
  std::size_t row = 0;
  std::int64_t frame = 0;
  std::string reason;
};

/// What finish() wrote.
struct WriterSummary {
  std::size_t frames_written = 0;
  std::vector<FailedFrame> failed;  ///< in row order
};

/// A writer of one integration result, in any format. Every member is thread-safe, so workers
/// may hand rows over in any order. Invariant: every row ends written or failed; a row written
/// twice, or written after it failed, is a bug (azflow::Error kInternal); rows still pending at
/// finish() are recorded as failed ("never written").
class ResultWriter {
 public:
  virtual ~ResultWriter() = default;
  ResultWriter() = default;
  ResultWriter(const ResultWriter&) = delete;
  ResultWriter& operator=(const ResultWriter&) = delete;

  [[nodiscard]] virtual const NexusLayout& layout() const noexcept = 0;
  /// Where the result is until finish() ("<layout().path>.partial").
  [[nodiscard]] virtual const std::filesystem::path& partial_path() const noexcept = 0;

  /// Records the settings (a JSON object). Call at most once, before finish(); kInternal
  /// otherwise.
  virtual void write_settings(const nlohmann::json& settings) = 0;

  /// Writes row `row`: `intensity` and `sigma` have layout().bins() values (sigma may be empty
  /// when the layout has no errors). Throws kInternal for a bad row or size or a row already
  /// written or failed; kIo if the file cannot be written.
  virtual void write_frame(std::size_t row, std::span<const float> intensity,
                           std::span<const float> sigma) = 0;

  /// Finalizes a frame's sums (integrate::finalize) into row `row` and adds them to the
  /// dataset-wide sums.
  virtual void write_frame(std::size_t row, const integrate::BinSums& sums) = 0;

  /// Adds one frame's sums to the dataset-wide sums (for callers using the span overload).
  virtual void add_sums(const integrate::BinSums& sums) = 0;

  /// Writes row `row` of the sigma-clipping statistics when layout().with_clip_stats: `std_dev`
  /// (integrate::clipped_std) and `count` (the count after clipping), layout().bins() values
  /// each. Call it besides the span overload of write_frame. Formats without such datasets (xy)
  /// ignore it; NexusWriter throws kInternal for a bad row or size.
  virtual void write_clip_stats(std::size_t /*row*/, std::span<const float> /*std_dev*/,
                                std::span<const float> /*count*/) {}

  /// Marks row `row` failed with `reason`. Throws kInternal if it was written.
  virtual void fail_frame(std::size_t row, std::string_view reason) = 0;

  /// Completes the output and moves it to layout().path. Throws kIo if that fails, kConfig if
  /// the output appeared meanwhile and overwrite is off.
  virtual WriterSummary finish() = 0;
};

/// The writer of `layout.format`. Throws azflow::Error (kConfig) naming the output for an empty
/// or inconsistent layout, an existing output without overwrite, or a 2D layout in a text
/// format; kIo if the file cannot be created.
std::unique_ptr<ResultWriter> make_result_writer(NexusLayout layout);

}  // namespace azflow::reduce
