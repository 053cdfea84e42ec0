#pragma once
// Built-in table of area detectors (pixel size and shape), as pyFAI defines them.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace azflow::integrate {

/// A flat, regular-grid detector: `rows` x `cols` pixels of `pixel1_m` (slow axis, rows, pyFAI's
/// dim1 / y) by `pixel2_m` (fast axis, columns, dim2 / x), in metres.
struct DetectorSpec {
  std::string name;
  double pixel1_m = 0;
  double pixel2_m = 0;
  std::size_t rows = 0;
  std::size_t cols = 0;

  [[nodiscard]] std::size_t pixels() const noexcept { return rows * cols; }
};

/// The built-in detectors: Eiger 500k/1M/4M/9M/16M, Eiger2 (CdTe) 500k/1M/4M/9M/16M, Pilatus
/// 100k/200k/300k/300kw/1M/2M/6M and Pilatus3/CdTe variants; values from pyFAI 0.21's
/// pyFAI/detectors/_dectris.py (75 um Eiger, 172 um Pilatus pixels; shape = MAX_SHAPE).
std::span<const DetectorSpec> known_detectors() noexcept;

/// Looks a detector up by name as pyFAI does: case-insensitive, ignoring spaces, '_' and '-'
/// ("Eiger4M", "eiger_4m", "Pilatus 1M" all match). nullopt if unknown.
std::optional<DetectorSpec> find_detector(std::string_view name);

}  // namespace azflow::integrate
