#include "daemon/frame_origin.hpp"

#include <algorithm>
#include <utility>

namespace azflow::daemon {

FrameOrigins::FrameOrigins(std::vector<std::string> inputs, std::vector<source::SeriesFile> files)
    : inputs_(std::move(inputs)), files_(std::move(files)) {}

std::string FrameOrigins::origin(const source::SeriesFile& file, std::int64_t frame) const {
  const std::string data_file = file.file.string();
  const bool listed = std::find(inputs_.begin(), inputs_.end(), data_file) != inputs_.end();
  const std::string input = listed || inputs_.size() != 1 ? data_file : inputs_.front();
  std::string s = input + " (";
  if (input != data_file) s += "data file " + data_file + ", ";
  s += "dataset " + file.dataset;
  if (file.first != 0) {
    s += ", frame " + std::to_string(frame - static_cast<std::int64_t>(file.first)) + " of it";
  }
  return s + ")";
}

std::string FrameOrigins::attribute(std::int64_t frame, std::string_view reason) const {
  const auto it = std::find_if(files_.begin(), files_.end(), [&](const source::SeriesFile& f) {
    const auto first = static_cast<std::int64_t>(f.first);
    return frame >= first && frame < first + static_cast<std::int64_t>(f.frames);
  });
  if (it == files_.end()) return std::string(reason);
  const bool named =
      reason.find(it->file.string()) != std::string_view::npos &&
      (inputs_.size() != 1 || reason.find(inputs_.front()) != std::string_view::npos);
  if (named) return std::string(reason);
  const std::string head = "frame " + std::to_string(frame);
  std::string_view what = reason;
  if (what.starts_with(head + ": ")) what.remove_prefix(head.size() + 2);
  return head + " of " + origin(*it, frame) + ": " + std::string(what);
}

}  // namespace azflow::daemon
