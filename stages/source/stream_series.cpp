#include "stages/source/stream_series.hpp"

#include <variant>

#include "base/error.hpp"
#include "stages/source/stream1.hpp"

namespace azflow::source {

stream2::Message parse_stream_message(std::string_view format,
                                      std::span<const std::span<const std::byte>> parts) {
  if (format == "v1") {
    return stream1::parse_message(parts);
  }
  if (parts.size() != 1) {
    throw Error(ErrorCategory::kInput, "stream2: a message of " + std::to_string(parts.size()) +
                                           " parts (Stream V2 sends one; is it stream v1?)");
  }
  return stream2::parse_message(parts[0]);
}

void require_start_fields(const stream2::Start& start) {
  if (!start.image_size_x || !start.image_size_y || !start.image_dtype || !start.number_of_images ||
      *start.number_of_images == 0) {
    throw Error(ErrorCategory::kInput,
                "the start message of series " + std::to_string(start.series_id) +
                    " lacks image_size_x, image_size_y, image_dtype or a nonzero "
                    "number_of_images");
  }
}

integrate::Poni poni_from_start(const stream2::Start& s, std::size_t rows, std::size_t cols) {
  if (!s.detector_distance_m || !s.beam_center_x_px || !s.beam_center_y_px || !s.pixel_size_x_m ||
      !s.pixel_size_y_m) {
    throw Error(ErrorCategory::kInput,
                "the start message lacks detector_distance, beam_center_x/y or pixel_size_x/y: "
                "give the geometry with --poni");
  }
  integrate::Poni p;
  p.detector.name = "Detector";
  p.detector.pixel1_m = *s.pixel_size_y_m;
  p.detector.pixel2_m = *s.pixel_size_x_m;
  p.detector.rows = rows;
  p.detector.cols = cols;
  p.dist_m = *s.detector_distance_m;
  p.poni1_m = *s.beam_center_y_px * *s.pixel_size_y_m;
  p.poni2_m = *s.beam_center_x_px * *s.pixel_size_x_m;
  p.wavelength_m = s.incident_wavelength_m;
  if (p.dist_m <= 0 || p.detector.pixel1_m <= 0 || p.detector.pixel2_m <= 0) {
    throw Error(ErrorCategory::kInput, "the start message's distance and pixel sizes must be > 0");
  }
  return p;
}

SeriesTracker::SeriesTracker(const stream2::Start& start, StreamCounts counts)
    : series_id_(start.series_id),
      seen_(static_cast<std::size_t>(*start.number_of_images), false),
      counts_(std::move(counts)) {}

SeriesTracker::Verdict SeriesTracker::classify(const stream2::Message& m) {
  if (m.is_end()) {
    if (std::get<stream2::End>(m.body).series_id != series_id_) {
      ++counts_.foreign;
      return Verdict::kIgnore;
    }
    counts_.ended = true;
    return Verdict::kEnd;
  }
  if (!m.is_image()) {
    if (m.is_start()) ++counts_.foreign;  // another series' start before this one's end
    return Verdict::kIgnore;
  }
  const stream2::Image& img = std::get<stream2::Image>(m.body);
  if (img.series_id != series_id_) {
    ++counts_.foreign;
  } else if (img.image_id >= seen_.size()) {
    ++counts_.out_of_range;
  } else if (seen_[img.image_id]) {
    ++counts_.duplicate;
  } else {
    seen_[img.image_id] = true;
    ++counts_.received;
    return Verdict::kAccept;
  }
  return Verdict::kIgnore;
}

bool SeriesTracker::accept(std::uint64_t id) {
  if (id >= seen_.size() || seen_[id]) return false;
  seen_[id] = true;
  ++counts_.received;
  return true;
}

std::vector<std::uint64_t> SeriesTracker::missing_ids() const {
  std::vector<std::uint64_t> out;
  for (std::size_t id = 0; id < seen_.size(); ++id) {
    if (!seen_[id]) out.push_back(id);
  }
  return out;
}

}  // namespace azflow::source
