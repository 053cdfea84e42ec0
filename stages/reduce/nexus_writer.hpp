#pragma once
// NeXus (HDF5) writer for azimuthal-integration results: one row per frame, written at its index in
// any order, plus the dataset-wide sums, the settings and the failed frames.
//
// File layout (NeXus NXentry / NXprocess / NXdata,
// https://manual.nexusformat.org/classes/base_classes/):
//
//   /                      @default="entry"  @creator="azflow"  @file_time (ISO 8601)
//   /entry      NXentry    @default="integrate"; start_time, end_time (ISO 8601)
//     process   NXprocess  program="azflow", version, date, sequence_index=1
//       configuration NXnote   type="application/json", data = every setting as JSON text
//       parameters    NXcollection  one dataset per setting (string / float64 / int64)
//       frames_total, frames_written, frames_failed (int64)
//       failed_frames NXcollection  row (int64: output row), frame (int64: input frame), reason
//       (str)
//     integrate NXdata     @signal="I"  @axes=["frame_index", "<rad>"] (1D) or
//                          ["frame_index", "chi", "<rad>"] (2D); @frame_index_indices=0,
//                          @chi_indices=1 (2D), @<rad>_indices=1 (1D) or 2 (2D)
//       I         float32 (frames, npt_rad) or (frames, npt_azim, npt_rad); NaN = failed/missing
//       I_errors  float32, same shape (only when an error model is on)
//       std, count float32, same shape (sigma clipping only): each frame's standard deviation
//                 sqrt(variance / normalization) and pixel count after clipping
//       <rad>     float64 (npt_rad) bin centres, @units;  <rad>_edges float64 (npt_rad + 1)
//       chi       float64 (npt_azim) degrees, 2D only;    chi_edges (npt_azim + 1)
//       frame_index int64 (frames): the input frame of each row
//     sum       NXdata     @signal="I"  @axes=["<rad>"] or ["chi", "<rad>"]: I and I_errors of the
//                          dataset-wide sums (float32), and sum_signal, sum_variance,
//                          sum_normalization, sum_count (float64), axes hard-linked from integrate
//
// With NexusLayout::format == kNxAzint the file follows the NeXus NXazint1d / NXazint2d
// application definitions (NeXus v2025.11, https://manual.nexusformat.org/classes/applications/):
//
//   /entry      NXentry    @default="data"; definition="NXazint1d" or "NXazint2d";
//                          solid_angle_applied, polarization_applied, normalization_applied (1),
//                          monitor_applied (normalization factor != 1), and beyond the
//                          definition mask_applied, dark_applied, flat_applied: NX_BOOLEAN (int8)
//     instrument NXinstrument name="unknown"; source NXsource (name, type "unknown", probe
//                          "x-ray"); monochromator NXmonochromator wavelength (angstrom),
//                          energy (keV), when the PONI has a wavelength
//     reduction NXprocess  program, version, date, reference, note, sequence_index;
//                          input NXparameters (one dataset per setting, as parameters above),
//                          configuration NXnote, frames_total/written/failed, failed_frames
//     data      NXdata     @signal="I" @interpretation="spectrum"|"image"
//                          @axes=[".", "radial_axis"] or [".", "azimuthal_axis", "radial_axis"]
//       I, I_errors        as in integrate above, @long_name, @units="arbitrary units"
//       radial_axis(_edges) @long_name "q" | "2theta" ("r" for r_mm, which the definition lacks),
//                          @units "1/nm" | "1/angstrom" | "degree" | "rad" | "mm"
//       azimuthal_axis(_edges) degrees (2D)
//       norm      float64 (npt_rad) or (npt_azim, npt_rad): sum_normalization of the written
//                          frames divided by their number (the per-frame normalization)
//       frame_index int64 (frames)
//   (no /entry/sum group: the definition has one NXdata)
//
// With NexusLayout::chi_profile (integrate_radial, format nexus only) the one axis is "chi"
// (units deg or rad) instead of <rad>.
// <rad> is the radial unit's family: "q" (q_nm^-1, q_A^-1), "2th" (2th_deg, 2th_rad), "r" (r_mm).
// The file is created as "<path>.partial" and renamed to <path> by finish(); an unfinished writer
// leaves the ".partial" file behind. Both names are made in NexusLayout::dir without following
// links (stages/reduce/output_dir.hpp): the ".partial" with O_EXCL | O_NOFOLLOW, then handed to
// HDF5 as /proc/self/fd/N (HDF5 opens files by name only), the rename checked and fsynced.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "stages/integrate/cpu_integrator.hpp"
#include "stages/integrate/plan.hpp"
#include "stages/integrate/units.hpp"
#include "stages/reduce/result_writer.hpp"

namespace azflow::reduce {

/// azflow's version (CMake PROJECT_VERSION), e.g. "0.1.0".
std::string_view program_version() noexcept;

/// The integration settings as NXprocess parameters, under pyFAI's names: unit, npt_rad,
/// npt_azim, method, radial_range, azimuth_range_deg, correct_solid_angle, polarization_factor,
/// dummy, delta_dummy, normalization_factor, error_model, sigma_clip (bool) and with it thres and
/// max_iter (null where a setting is unset).
/// Callers add what they know of the input and output.
nlohmann::json settings_parameters(const integrate::IntegrationSettings& s);

/// The integration as a pyFAI WorkerConfig version 5 (pyFAI/io/integration_config.py): application
/// "worker", the `poni` geometry object (PONI version 2 keys), nbpt_rad, nbpt_azim (null for 1D),
/// unit, polarization_description [factor, 0] or null, val_dummy, delta_dummy,
/// correct_solid_angle, mask_file / dark_current / flat_field (the image files, null if none),
/// error_model ("no", "poisson", "azimuthal"), method [split, "csr", "cython"], radial_range,
/// azimuth_range (degrees), normalization_factor, integrator_class AzimuthalIntegrator,
/// integrator_method integrate1d_ng / integrate2d_ng, extra_options null; with sigma clipping
/// integrator_method sigma_clip_ng and extra_options {thres, max_iter, error_model} (the keyword
/// arguments pyFAI's Worker passes to it). `azflowctl enqueue
/// --config` reads it back. azflow-only settings (the input file's pixel_mask, azimuthal_unit)
/// have no pyFAI key and are not in it.
nlohmann::json pyfai_worker_config(const integrate::IntegrationSettings& s,
                                   const integrate::Poni& poni, const std::string& mask_file,
                                   const std::string& dark_file, const std::string& flat_file);

/// The current UTC time as ISO 8601, e.g. "2026-11-21T10:53:13Z".
std::string iso8601_now();

/// NeXus name of a radial unit's axis: "q", "2th" or "r".
std::string_view radial_axis_name(integrate::RadialUnit unit) noexcept;

/// Writes one integration result file (layout above). Every public member is thread-safe (one
/// internal mutex), so workers may hand rows over in any order. With a libhdf5 built without
/// thread safety, callers must also keep other threads' HDF5 calls (e.g. reads) apart from the
/// writer's, e.g. with one mutex around both. Rows are stored in 1-row chunks
/// with fill value NaN, so a row never written reads as NaN.
///
/// Invariant: every row ends written or failed. A row written twice, or written after it failed,
/// is a bug (azflow::Error kInternal); rows still pending at finish() are recorded as failed.
class NexusWriter final : public ResultWriter {
 public:
  /// Creates "<layout.path>.partial" (replacing a stale one azflow left: OutputDir::create).
  /// Throws azflow::Error: kConfig naming the path if it exists and !layout.overwrite, or for an
  /// empty layout; kIo if the file cannot be created or something else is in its way.
  explicit NexusWriter(NexusLayout layout);
  ~NexusWriter() override;

  [[nodiscard]] const NexusLayout& layout() const noexcept override { return layout_; }
  /// "<layout().path>.partial": where the file is until finish().
  [[nodiscard]] const std::filesystem::path& partial_path() const noexcept override;

  /// Records the settings (a JSON object) in the NXprocess: as JSON text and one dataset per key.
  /// A key "pyfai_config" (pyfai_worker_config()) is written instead as the NXnote
  /// /entry/process/pyfai_config (type application/json, data: the JSON text, readable by
  /// `azflowctl enqueue --config`). Call at most once, before finish(). Throws kInternal
  /// otherwise.
  void write_settings(const nlohmann::json& settings) override;

  /// Writes row `row`: `intensity` and `sigma` have layout().bins() values (sigma may be empty
  /// when the layout has no errors). Throws kInternal for a bad row or size or a row already
  /// written or failed; kIo if HDF5 fails.
  void write_frame(std::size_t row, std::span<const float> intensity,
                   std::span<const float> sigma) override;

  /// Finalizes a frame's sums (integrate::finalize) into row `row` and adds them to the
  /// dataset-wide sums.
  void write_frame(std::size_t row, const integrate::BinSums& sums) override;

  /// Adds one frame's sums to the dataset-wide sums (for callers using the span overload).
  void add_sums(const integrate::BinSums& sums) override;

  /// Writes row `row` of the `std` and `count` datasets (layout().with_clip_stats only).
  void write_clip_stats(std::size_t row, std::span<const float> std_dev,
                        std::span<const float> count) override;

  /// Marks row `row` failed with `reason`; its row stays NaN. Throws kInternal if it was written.
  void fail_frame(std::size_t row, std::string_view reason) override;

  /// Writes the sums, counts and failed frames, closes the file and renames it to layout().path.
  /// Rows never written or failed are recorded as failed ("never written"). The file and its
  /// folder are fsynced (OutputDir::commit). Throws kIo if the rename fails, kConfig if the
  /// output appeared meanwhile and overwrite is off.
  WriterSummary finish() override;

 private:
  struct Files;
  void create_file();
  void create_frame_group();
  void check_row(std::size_t row, std::string_view what) const;
  void write_sum_group();
  void write_norm();
  void write_failures(const std::vector<FailedFrame>& failed);

  NexusLayout layout_;
  std::filesystem::path partial_;
  std::shared_ptr<const OutputDir> dir_;  // where partial_ and layout_.path are made
  UniqueFd fd_;                           // partial_, as created (O_EXCL | O_NOFOLLOW)
  std::mutex mutex_;
  std::unique_ptr<Files> files_;
  std::vector<std::uint8_t> state_;  // per row: 0 pending, 1 written, 2 failed
  std::vector<FailedFrame> failed_;
  integrate::BinSums total_;
  bool settings_written_ = false;
  bool finished_ = false;
};

}  // namespace azflow::reduce
