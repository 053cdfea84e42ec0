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
  /// `files`: Dataset::files() of the opened series; `offset`: the input frame of job frame 0
  /// (JobSpec::frame_offset(), for a job of a frame range).
  FrameOrigins(std::vector<std::string> inputs, std::vector<source::SeriesFile> files,
               std::int64_t offset = 0);

  /// `reason` (as a stage reported it) of job frame `frame`, naming input frame N = offset +
  /// `frame` and its own file:
  ///   "frame N of INPUT (dataset DS): what"                    plain file, or one of a list
  ///   "frame N of MASTER (data file FILE, dataset DS): what"   a master with linked data files
  /// with ", frame k of it" when the file's first frame is not frame 0. A leading "frame F: "
  /// (F the job frame, as stages name it) is dropped. Returned unchanged, but for that leading
  /// job frame turned into "frame N: ", if it already names the frame's data file (and the master
  /// file, for a master), or if the frame is outside every file.
  [[nodiscard]] std::string attribute(std::int64_t frame, std::string_view reason) const;

 private:
  [[nodiscard]] std::string origin(const source::SeriesFile& file, std::int64_t frame) const;

  std::vector<std::string> inputs_;
  std::vector<source::SeriesFile> files_;
  std::int64_t offset_ = 0;
};

}  // namespace azflow::daemon
