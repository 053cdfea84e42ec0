#pragma once
// Text output in pyFAI's save1D layout (pyFAI 0.21 pyFAI/io/__init__.py, DefaultAiWriter.save1D
// with the header of Geometry.make_headers), the input of Rietveld programs:
//
//   # == pyFAI calibration ==
//   # Distance Sample to Detector: <dist> m            (Python repr of the float)
//   # PONI: <poni1 %.3e>, <poni2 %.3e> m
//   # Rotations: <rot1 %.6f> <rot2> <rot3> rad
//   #
//   # == Fit2d calibration ==
//   # Distance Sample-beamCenter: <%.3f> mm           (Geometry.getFit2D's formulas)
//   # Center: x=<%.3f>, y=<%.3f> pix
//   # Tilt: <%.3f> deg  TiltPlanRot: <%.3f> deg
//   #
//   # Detector <name>[\t Spline= None]\t PixelSize= <p1 %.3e>, <p2 %.3e> m
//   #                       (<name> as the PONI spells it, e.g. Pilatus100k where pyFAI's own
//   #                       class name is "Pilatus 100k")
//   #    Detector has a mask: True | False             (True for a named detector, whose
//   #    Detector has a dark current: False             pyFAI class computes a mask; azflow
//   #    detector has a flat field: False               attaches no dark/flat to the detector:
//   #                                                   the corrections applied follow)
//   #
//   # Wavelength: <repr> m                            (when the PONI has one)
//   # Mask applied: user provided | False
//   # Dark current applied: provided | False
//   # Flat field applied: provided | False
//   # Polarization factor: <repr> | None
//   # Normalization factor: <repr>
//   # --> <file>
//   #<unit %14s>  <"I " %14s>  <"sigma " %14s>       (without sigma: "#%14s %14s")
//   <radial %14.6e>  <I %14.6e> <sigma %14.6e>         (one line per bin)
//
// Format kXy writes the mean of the frames, I = sum over frames of signal / sum of
// normalization (the dataset-wide sums, as /entry/sum of the NeXus layout), to the output path
// when finish() runs. Format kXyFrames writes each frame's row to its own file as it arrives:
// "<stem>_<input frame index, 5 digits><ext>" in the output's folder (xy_frame_path). Each file
// is written as "<file>.partial" and renamed when complete. A kXy writer destroyed before
// finish() leaves the mean of the frames summed so far in "<output>.partial" (as the NeXus writer
// leaves its .partial file); kXyFrames leaves the files of the frames written. 1D results only.

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "stages/reduce/result_writer.hpp"

namespace azflow::reduce {

/// The file of input frame `frame` in format kXyFrames: "<dir>/<stem>_<frame %05d><ext>" of
/// `output` (e.g. out.xy, frame 7 -> out_00007.xy).
std::filesystem::path xy_frame_path(const std::filesystem::path& output, std::int64_t frame);

/// The save1D header (every line above from "== pyFAI calibration ==" to "--> <file>") of a
/// result written to `file`, each line prefixed with "# ". Throws azflow::Error (kConfig) if
/// `provenance` has no PONI.
std::string xy_header(const OutputProvenance& provenance, const std::filesystem::path& file);

/// Formats a double as Python's repr() does (shortest round-trip; exponent form below 1e-4 and
/// from 1e16), e.g. 0.1 -> "0.1", 1.0 -> "1.0", 1e-10 -> "1e-10".
std::string python_float_repr(double value);

/// Writes results as pyFAI save1D text files (see above). Thread-safe like every ResultWriter.
class XyWriter final : public ResultWriter {
 public:
  /// Checks the layout (1D, a PONI in the provenance) and that the output file(s) do not exist
  /// unless layout.overwrite. Throws azflow::Error (kConfig) naming the output otherwise.
  explicit XyWriter(NexusLayout layout);
  /// Without finish() (kXy): writes the mean so far to partial_path(), ignoring errors.
  ~XyWriter() override;

  [[nodiscard]] const NexusLayout& layout() const noexcept override { return layout_; }
  [[nodiscard]] const std::filesystem::path& partial_path() const noexcept override;
  /// Records that settings were given (the text format has no place for them beyond the header).
  void write_settings(const nlohmann::json& settings) override;
  void write_frame(std::size_t row, std::span<const float> intensity,
                   std::span<const float> sigma) override;
  void write_frame(std::size_t row, const integrate::BinSums& sums) override;
  void add_sums(const integrate::BinSums& sums) override;
  void fail_frame(std::size_t row, std::string_view reason) override;
  /// kXy: writes the mean of the summed frames to layout().path, fsynced with its folder;
  /// kXyFrames: syncs the folder's file system (the frame files are written as they come).
  /// Rows never written or failed are recorded as failed ("never written"). Throws kIo if a
  /// file cannot be written, kConfig if the output appeared meanwhile and overwrite is off.
  WriterSummary finish() override;

 private:
  void check_row(std::size_t row, std::string_view what) const;
  /// Writes `file` (in dir_) as "<file>.partial", then commits it (OutputDir::commit).
  void write_file(const std::filesystem::path& file, std::span<const float> intensity,
                  std::span<const float> sigma, bool replace, bool sync) const;

  NexusLayout layout_;
  std::filesystem::path partial_;
  std::shared_ptr<const OutputDir> dir_;  // where every file is made (no links followed)
  std::mutex mutex_;
  std::vector<std::uint8_t> state_;  // per row: 0 pending, 1 written, 2 failed
  std::vector<FailedFrame> failed_;
  integrate::BinSums total_;
  bool settings_written_ = false;
  bool finished_ = false;
};

}  // namespace azflow::reduce
