#pragma once
// Options of `azflow integrate` (the offline equivalent of `pyFAI-integrate --no-gui`): their
// CLI11 declaration, validation and translation into integration settings.

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/dtype.hpp"
#include "base/frame_range.hpp"
#include "stages/integrate/plan.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/reduce/plan_setup.hpp"
#include "stages/reduce/pyfai_config.hpp"
#include "stages/reduce/result_writer.hpp"

namespace azflow::cli {

/// Every option of `azflow integrate`, as given on the command line (not yet validated).
struct IntegrateOptions {
  std::string input;  ///< master or plain HDF5 file
  std::string poni;   ///< PONI geometry file
  /// --config FILE: a pyFAI integration/worker JSON (reduce::read_pyfai_config) whose geometry,
  /// settings, mask, dark and flat replace the integration options (refused together with them).
  std::string config;
  /// What --config gave, once apply_config() has read it (make_settings and options_poni use it).
  std::optional<reduce::PyfaiSettings> pyfai;
  std::string dataset;           ///< dataset path inside the input ("" = auto)
  std::string output;            ///< output file (NeXus, or the xy file / file-name pattern)
  std::string format = "nexus";  ///< output format (reduce::parse_output_format names)
  std::size_t npt = 1000;
  std::optional<std::size_t> npt_rad, npt_azim;
  std::string unit = "q_nm^-1";
  std::string split = "no";
  std::string method;  ///< pyFAI method name or triple (integrate::parse_method); "" = --split
  std::string mask, dark, flat;  ///< image specs (HDF5 "FILE[::/path]", .npy, EDF)
  bool no_file_mask = false;     ///< ignore the detector's pixel_mask
  bool no_solid_angle = false;
  std::optional<double> polarization_factor;
  std::string error_model = "none";
  bool sigma_clip = false;   ///< pyFAI's sigma_clip_ng instead of integrate1d_ng
  double thres = 5.0;        ///< sigma clipping cut-off, in standard deviations
  std::size_t max_iter = 5;  ///< sigma clipping iterations
  /// pyFAI's integrate_radial: I(chi), the 2D integration (npt_rad x npt_azim) summed over its
  /// radial bins
  bool integrate_radial = false;
  std::vector<double> radial_range, azimuth_range;  ///< empty or {A, B}
  std::string azimuth_unit = "chi_deg";  ///< chi_deg or chi_rad: 2D axis and azimuth_range
  std::optional<double> dummy, delta_dummy;
  bool no_dummy = false;
  double normalization_factor = 1.0;
  float empty = 0.0f;       ///< I and sigma of bins without pixels (pyFAI's `empty`)
  std::size_t threads = 0;  ///< 0 = hardware concurrency
  std::string frames;       ///< "A:B" (Python slice, B exclusive), "A:", ":B" or "A"
  bool overwrite = false;
  bool quiet = false;
  /// --follow: the input is still being written; integrate frames as they appear, until
  /// nimages x ntrigger (the master's detectorSpecific) or follow_timeout_s without a new frame.
  bool follow = false;
  double follow_timeout_s = 30;  ///< --follow-timeout: seconds without a new frame [s]
  /// --plan-cache DIR: a plan folder (integrate::PlanCache, cap kDefaultPlanCacheMaxMib) to take
  /// the plan from and store it in; "" = build the plan in memory only.
  std::string plan_cache;
};

/// Declares the options on the `integrate` subcommand, storing into `options`.
void add_integrate_options(CLI::App& command, IntegrateOptions& options);

/// Declares `azflow integrate --config` (after add_integrate_options), excluding --poni and the
/// integration options it replaces. Not part of add_integrate_options because azflowctl enqueue,
/// which reuses those, has its own --config.
void add_config_option(CLI::App& command, IntegrateOptions& options);

/// Reads --config, if given, into options.pyfai, and takes its mask, dark, flat and do_mask false
/// (no_file_mask; --no-file-mask may be given too) into the options. Throws as
/// reduce::read_pyfai_config (kConfig naming the file and key, kIo for an unreadable file).
void apply_config(IntegrateOptions& options);

/// The geometry of the options: --config's PONI, else the --poni file (integrate::read_poni).
integrate::Poni options_poni(const IntegrateOptions& options);

/// The PONI text recorded in the output: --config's geometry as PONI text, else the --poni file.
std::string options_poni_text(const IntegrateOptions& options);

/// A half-open range of input frames [first, last) (base/frame_range.hpp).
using azflow::FrameRange;

/// Parses `--frames` against a dataset of `frames` frames ("" = all), with the rules of
/// azflow::parse_frame_slice (shared with `azflowctl enqueue --frames`). Throws azflow::Error
/// (kConfig, "--frames: ...") for malformed text or a range that is empty or beyond the dataset.
FrameRange parse_frame_range(const std::string& text, std::size_t frames);

/// Integration settings from the options; the default dummy is the maximum of `dtype` when it is
/// an unsigned integer type (the Eiger gap value), unless --no-dummy. Throws azflow::Error
/// (kConfig) naming the option for an unknown unit, split or error model, or invalid values.
/// --sigma-clip without --error-model uses poisson, as pyFAI's sigma_clip_ng does. With --config
/// the settings are the config's as read (a dummy only if it names one, as pyFAI's Worker).
integrate::IntegrationSettings make_settings(const IntegrateOptions& options, DType dtype);

/// The output format of `--format`; throws azflow::Error (kConfig) naming --format for an
/// unknown name or a text format (xy, xy-frames) with a 2D integration (`npt_azim` > 0).
reduce::OutputFormat parse_format_option(const std::string& format, std::size_t npt_azim);

/// The plan for frames of rows x cols: reduce::make_plan with the options' mask, dark and flat,
/// `pixel_mask` unless --no-file-mask, and the --plan-cache folder if given (a note from the
/// folder, such as a rejected file, is printed on stderr as a warning). Throws as make_plan.
reduce::PlanResult cli_plan(const IntegrateOptions& options, const integrate::Poni& poni,
                            std::size_t rows, std::size_t cols,
                            const integrate::IntegrationSettings& settings,
                            const std::vector<std::uint32_t>* pixel_mask);

/// Every setting as a JSON object, for the output's NXprocess.
nlohmann::json settings_json(const IntegrateOptions& options,
                             const integrate::IntegrationSettings& settings);

}  // namespace azflow::cli
