#pragma once
// Frame ranges as `azflow integrate --frames` and `azflowctl enqueue --frames` take them: the
// Python slice rules "A:B" (B exclusive), "A:" (to the end), ":B" and "A" (that frame only).
// Parsing needs no dataset (FrameSlice: the end may be open); resolve_frames() then checks the
// slice against a dataset's frame count.

#include <charconv>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace azflow {

/// A half-open range of input frames [first, last).
struct FrameRange {
  std::size_t first = 0;
  std::size_t last = 0;
  /// Number of frames in the range.
  [[nodiscard]] std::size_t size() const noexcept { return last - first; }
  bool operator==(const FrameRange&) const = default;
};

/// A frame range before it meets a dataset: frames [first, last), or [first, end) when `last`
/// is unset.
struct FrameSlice {
  std::size_t first = 0;
  std::optional<std::size_t> last;  ///< exclusive; unset = the dataset's last frame included
  bool operator==(const FrameSlice&) const = default;
};

/// "A:B", "A:", ":B" or "A" as a slice ("A" = A:A+1). Throws azflow::Error (kConfig) for any
/// other text, "NAME: malformed range 'TEXT' (expected A:B, A:, :B or A)" with NAME = `name`
/// (the option, e.g. "--frames"); "" is malformed too (callers treat an absent option as "all
/// frames" themselves).
inline FrameSlice parse_frame_slice(const std::string& text, std::string_view name) {
  const auto index = [](std::string_view s) -> std::optional<std::size_t> {
    std::size_t value = 0;
    const char* end = s.data() + s.size();
    auto [ptr, ec] = std::from_chars(s.data(), end, value);
    if (s.empty() || ec != std::errc() || ptr != end) return std::nullopt;
    return value;
  };
  const std::size_t colon = text.find(':');
  const std::string_view all(text);
  const std::string_view a = all.substr(0, colon);
  const std::string_view b =
      colon == std::string::npos ? std::string_view() : all.substr(colon + 1);
  const bool malformed_colon = colon != std::string::npos && b.find(':') != std::string_view::npos;
  const auto first =
      a.empty() && colon != std::string::npos ? std::optional<std::size_t>(0) : index(a);
  FrameSlice slice;
  if (!malformed_colon && first) {
    slice.first = *first;
    if (colon == std::string::npos) {
      slice.last = *first + 1;
      return slice;
    }
    if (b.empty()) return slice;
    if (const auto last = index(b)) {
      slice.last = *last;
      return slice;
    }
  }
  throw Error(ErrorCategory::kConfig,
              std::string(name) + ": malformed range '" + text + "' (expected A:B, A:, :B or A)");
}

/// What is wrong with `slice` for a dataset of `frames` frames: "" when nothing, else "range
/// A:B is empty or beyond the dataset's N frames" (B = N for an open end).
inline std::string frame_slice_problem(const FrameSlice& slice, std::size_t frames) {
  const std::size_t last = slice.last.value_or(frames);
  if (slice.first < last && last <= frames) return "";
  return "range " + std::to_string(slice.first) + ":" + std::to_string(last) +
         " is empty or beyond the dataset's " + std::to_string(frames) + " frames";
}

/// The frames of `slice` in a dataset of `frames` frames. Throws azflow::Error (kConfig),
/// "NAME: " + frame_slice_problem(), when the range has no frame or ends after the dataset.
inline FrameRange resolve_frames(const FrameSlice& slice, std::size_t frames,
                                 std::string_view name) {
  if (std::string problem = frame_slice_problem(slice, frames); !problem.empty()) {
    throw Error(ErrorCategory::kConfig, std::string(name) + ": " + problem);
  }
  return {slice.first, slice.last.value_or(frames)};
}

}  // namespace azflow
