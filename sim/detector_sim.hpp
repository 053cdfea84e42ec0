#pragma once
// azflow-detector-sim's engine: serves an EIGER-layout HDF5 series as DECTRIS Stream V2 on a
// bound ZeroMQ PUSH socket, as a DECTRIS DCU does (clients connect PULL sockets).
//
// Per series: one `start` message built from the master file's metadata (image size and dtype,
// beam centre [px], detector_distance [m] (Jungfraujoch's extension), incident_wavelength [Å],
// pixel_size_x/y [m], number_of_images, channels, pixel_mask per channel as tag 40 uint32),
// one `image` message per frame (image_id 0, 1, ... in frame order), one `end` message. Each
// image carries the frame's stored HDF5 chunk unchanged (direct chunk read, no recompression):
// a bitshuffle-LZ4 (filter 32008) chunk as DECTRIS tag 56500 ["bslz4", elem_size, bytes], an LZ4
// (filter 32004) chunk as ["lz4", 0, bytes], an unfiltered chunk as a raw typed array; any other
// layout is decoded by azflow's source and sent raw. Message layout as DECTRIS documents it
// (github.com/dectris/documentation, stream_v2/README.md, cbor/dectris-compression-tag.md).

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

#include "stages/source/dataset.hpp"

namespace azflow::sim {

/// What to serve and how fast.
struct SimOptions {
  std::filesystem::path master;            ///< EIGER master (or plain HDF5) file
  std::string endpoint = "tcp://*:31001";  ///< ZeroMQ endpoint the PUSH socket binds
  double rate_fps = 0;                     ///< images per second; 0 = as fast as the socket takes
  std::size_t series = 1;                  ///< consecutive series to send
  std::optional<std::size_t> frames;       ///< send only the first N frames of each series
  std::string channel = "threshold_1";     ///< name of the one channel in `data`
  std::uint64_t first_series_id = 1;       ///< series_id of the first series (then +1 each)
  int send_timeout_ms = 200;               ///< how often a blocked send looks at the stop token
  int linger_ms = 10000;                   ///< how long queued messages may still go at the end
};

/// What was sent.
struct SimStats {
  std::size_t series = 0;                  ///< series completed (start, images, end)
  std::size_t images = 0;                  ///< image messages sent
  std::size_t compressed_passthrough = 0;  ///< images whose stored chunk went out unchanged
  std::uint64_t bytes = 0;                 ///< bytes of all messages
  double seconds = 0;  ///< wall time from the first start message to the last end
};

/// The start message of one series (self-described CBOR), from `info`.
[[nodiscard]] std::vector<std::byte> encode_start(const source::DatasetInfo& info,
                                                  std::size_t number_of_images,
                                                  std::uint64_t series_id,
                                                  const std::string& series_unique_id,
                                                  const std::string& channel);

/// The end message of one series.
[[nodiscard]] std::vector<std::byte> encode_end(std::uint64_t series_id,
                                                const std::string& series_unique_id);

/// The image message up to (not including) its array bytes, which are its last `payload_bytes`:
/// the caller appends the stored chunk (or raw pixels) after it. `codec` is how those bytes are
/// encoded (kNone, kBitshuffleLz4 or kLz4).
[[nodiscard]] std::vector<std::byte> encode_image_head(
    const source::DatasetInfo& info, const decompress::CodecParams& codec,
    std::size_t payload_bytes, std::uint64_t image_id, std::uint64_t series_id,
    const std::string& series_unique_id, const std::string& channel);

/// Binds the PUSH socket, then sends options.series series of the dataset, pacing images at
/// options.rate_fps. `on_bound` (if set) is called once with the endpoint actually bound (the
/// port chosen for "tcp://host:*" or ":0"). Returns early, counting what was sent, when `stop`
/// is requested. Throws azflow::Error: kIo if the dataset cannot be read or the endpoint bound,
/// kInput for a malformed dataset, kConfig for a bad option.
SimStats serve(const SimOptions& options, std::stop_token stop,
               const std::function<void(const std::string&)>& on_bound = {});

}  // namespace azflow::sim
