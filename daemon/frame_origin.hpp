#pragma once
// Where each frame of a job comes from, to name it in a failed frame's reason (ARCHITECTURE
// invariant 2: the file, dataset and frame). Stages report what went wrong ("frame 37: LZ4
// error"); they do not know which of a job's files a frame came from (decompress and integrate
// see only its index). The daemon knows the job's files and names the right one.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "stages/source/dataset.hpp"

namespace azflow::daemon {

/// The inputs of a job and the data files behind them, by frame index.
class FrameOrigins {
 public:
  FrameOrigins() = default;
  /// `inputs`: the job's datasets as given (one master file or plain file, or a list of files);
  /// `files`: Dataset::files() of the opened series.
  FrameOrigins(std::vector<std::string> inputs, std::vector<source::SeriesFile> files);

  /// `reason` (as a stage reported it) of frame `frame`, naming the frame's own file:
  ///   "frame N of INPUT (dataset DS): what"                    plain file, or one of a list
  ///   "frame N of MASTER (data file FILE, dataset DS): what"   a master with linked data files
  /// with ", frame k of it" when the file's first frame is not frame 0. A leading "frame N: " of
  /// `reason` is dropped. Returned unchanged if it already names the frame's data file (and the
  /// master file, for a master), or if the frame is outside every file.
  [[nodiscard]] std::string attribute(std::int64_t frame, std::string_view reason) const;

 private:
  [[nodiscard]] std::string origin(const source::SeriesFile& file, std::int64_t frame) const;

  std::vector<std::string> inputs_;
  std::vector<source::SeriesFile> files_;
};

}  // namespace azflow::daemon
