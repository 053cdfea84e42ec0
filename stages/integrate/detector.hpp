#pragma once
// Built-in table of area detectors (pixel size and shape), as pyFAI defines them.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace azflow::integrate {

/// A flat, regular-grid detector: `rows` x `cols` pixels of `pixel1_m` (slow axis, rows, pyFAI's
/// dim1 / y) by `pixel2_m` (fast axis, columns, dim2 / x), in metres.
struct DetectorSpec {
  std::string name;
  double pixel1_m = 0;
  double pixel2_m = 0;
  std::size_t rows = 0;
  std::size_t cols = 0;
  /// Module layout for the detector's own mask (pyFAI's calc_mask): modules of module_rows x
  /// module_cols pixels separated by gap_rows / gap_cols masked pixels; 0 = no modules.
  std::size_t module_rows = 0, module_cols = 0, gap_rows = 0, gap_cols = 0;
  /// CdTe sensors: columns masked in the middle of every module (2 for Eiger2 CdTe, 3 for Pilatus
  /// CdTe); 0 = none.
  std::size_t mid_module_cols = 0;
  /// Circular active area (Mar345): pixels outside the inscribed circle are masked.
  bool circular = false;

  [[nodiscard]] std::size_t pixels() const noexcept { return rows * cols; }
};

/// The built-in detectors: Eiger 500k/1M/4M/9M/16M, Eiger2 (CdTe) 500k/1M/4M/9M/16M, Pilatus
/// 100k/200k/300k/300kw/1M/2M/6M and Pilatus3/CdTe variants; values from pyFAI 0.21's
/// pyFAI/detectors/_dectris.py (75 um Eiger, 172 um Pilatus pixels; shape = MAX_SHAPE).
std::span<const DetectorSpec> known_detectors() noexcept;

/// Looks a detector up by name as pyFAI does: case-insensitive, ignoring spaces, '_' and '-'
/// ("Eiger4M", "eiger_4m", "Pilatus 1M" all match). nullopt if unknown.
std::optional<DetectorSpec> find_detector(std::string_view name);

/// The detector's own mask as pyFAI 0.21's detector classes compute it (calc_mask in
/// pyFAI/detectors/_dectris.py and _rayonix.py), rows x cols row-major, 1 = masked:
/// - modules: rows [m + k (m + g), m + k (m + g) + g) for module height m and gap g, k = 0, 1, ...
///   (and the same along the columns) are gaps;
/// - CdTe: in every module the columns c - 1 .. c (Eiger2 CdTe) or c - 1 .. c + 1 (Pilatus CdTe),
///   c = module start + module_cols / 2;
/// - circular (Mar345): (i + 0.5 - R)^2 + (j + 0.5 - C)^2 > R^2 with R = rows / 2, C = cols / 2.
/// Empty if the detector masks no pixel (generic detectors, single-module ones).
std::vector<std::uint8_t> detector_mask(const DetectorSpec& detector);

}  // namespace azflow::integrate
