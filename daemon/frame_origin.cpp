#include "daemon/frame_origin.hpp"

#include <algorithm>
#include <utility>

namespace azflow::daemon {

FrameOrigins::FrameOrigins(std::vector<std::string> inputs, std::vector<source::SeriesFile> files,
                           std::int64_t offset)
    : inputs_(std::move(inputs)), files_(std::move(files)), offset_(offset) {}

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

std::string FrameOrigins::attribute(std::int64_t job_frame, std::string_view reason) const {
  const std::int64_t frame = offset_ + job_frame;  // the input frame
  const std::string job_head = "frame " + std::to_string(job_frame) + ": ";
  std::string_view what = reason;
  const bool headed = what.starts_with(job_head);
  if (headed) what.remove_prefix(job_head.size());
  const std::string head = "frame " + std::to_string(frame);
  const auto it = std::find_if(files_.begin(), files_.end(), [&](const source::SeriesFile& f) {
    const auto first = static_cast<std::int64_t>(f.first);
    return frame >= first && frame < first + static_cast<std::int64_t>(f.frames);
  });
  const bool named =
      it != files_.end() && reason.find(it->file.string()) != std::string_view::npos &&
      (inputs_.size() != 1 || reason.find(inputs_.front()) != std::string_view::npos);
  if (it == files_.end() || named) {
    return headed ? head + ": " + std::string(what) : std::string(reason);
  }
  return head + " of " + origin(*it, frame) + ": " + std::string(what);
}

}  // namespace azflow::daemon
