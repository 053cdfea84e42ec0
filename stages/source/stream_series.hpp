#pragma once
// One detector series as azflow receives it, shared by `azflow integrate --stream`
// (cli/stream_integrate.cpp) and the daemon's source stage (stream jobs): parsing a ZeroMQ
// message in either protocol, the fields a start message must carry, its geometry as a PONI,
// and the sorting of the series' messages into accepted images, duplicates, ids out of range,
// messages of another series and the end, with their counts (docs/streams.md).

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stages/integrate/poni.hpp"
#include "stages/source/stream2.hpp"

namespace azflow::source {

/// Parses one ZeroMQ message, its `parts` (Stream V2 has one, stream v1 several), as `format`
/// ("stream2" or "v1"). The message holds views into the parts. Throws azflow::Error (kInput)
/// when it is not valid (stream2: / stream1: reasons; a Stream V2 message of several parts).
[[nodiscard]] stream2::Message parse_stream_message(
    std::string_view format, std::span<const std::span<const std::byte>> parts);

/// Throws azflow::Error (kInput) unless the start message declares image_size_x, image_size_y,
/// image_dtype and a nonzero number_of_images.
void require_start_fields(const stream2::Start& start);

/// The start message's geometry as a PONI: no rotations, Distance = detector_distance, Poni1 =
/// beam_center_y x pixel_size_y, Poni2 = beam_center_x x pixel_size_x (pyFAI's origin is the
/// first pixel's edge), a generic Detector of the start's pixel sizes and a rows x cols shape.
/// Throws azflow::Error (kInput) when a field is missing or a size is not > 0.
[[nodiscard]] integrate::Poni poni_from_start(const stream2::Start& start, std::size_t rows,
                                              std::size_t cols);

/// What a series' messages were, beyond the images accepted.
struct StreamCounts {
  std::size_t received = 0;        ///< image messages of the series with a new, valid id
  std::size_t before_start = 0;    ///< images and ends that came before the start message
  std::size_t duplicate = 0;       ///< image ids that came again (the first one is kept)
  std::size_t out_of_range = 0;    ///< image ids >= number_of_images
  std::size_t foreign = 0;         ///< messages of another series
  std::size_t invalid = 0;         ///< messages that are not valid in the protocol
  std::size_t unknown = 0;         ///< messages of unknown type
  std::size_t unknown_fields = 0;  ///< keys azflow does not use, over all messages
  std::string first_invalid;       ///< reason of the first invalid message
  bool ended = false;              ///< the end message arrived

  /// Counts an invalid message, keeping the first reason.
  void note_invalid(const std::string& reason) {
    if (invalid++ == 0) first_invalid = reason;
  }
  /// Counts what a parsed message carries beyond the fields used (unknown keys and types).
  void note_parsed(const stream2::Message& m) {
    unknown_fields += m.unknown_fields;
    if (m.body.index() == 3) ++unknown;
  }
};

/// Sorts the messages that follow a start message: each image id of the series is accepted
/// once, in any order; the series' end message ends it. Not thread-safe.
class SeriesTracker {
 public:
  /// What to do with a message.
  enum class Verdict {
    kAccept,  ///< an image of the series with an id not seen before: integrate it
    kEnd,     ///< the series' end message
    kIgnore,  ///< counted (duplicate, out of range, another series, a start, unknown type)
  };

  /// `start` must have passed require_start_fields; `counts`: what was counted before it.
  explicit SeriesTracker(const stream2::Start& start, StreamCounts counts = {});

  /// The verdict on message `m`, counted in counts().
  Verdict classify(const stream2::Message& m);

  /// Counts image `id` as accepted without a message (an image a resumed series holds in its
  /// raw spool already); false when it is out of range or was accepted before.
  bool accept(std::uint64_t id);

  /// Image ids never accepted (ascending).
  [[nodiscard]] std::vector<std::uint64_t> missing_ids() const;
  [[nodiscard]] bool seen(std::uint64_t id) const { return id < seen_.size() && seen_[id]; }
  [[nodiscard]] std::size_t images() const noexcept { return seen_.size(); }
  [[nodiscard]] std::uint64_t series_id() const noexcept { return series_id_; }
  [[nodiscard]] StreamCounts& counts() noexcept { return counts_; }
  [[nodiscard]] const StreamCounts& counts() const noexcept { return counts_; }

 private:
  std::uint64_t series_id_;
  std::vector<bool> seen_;
  StreamCounts counts_;
};

}  // namespace azflow::source
