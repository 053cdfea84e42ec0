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
//
// With StreamFormat::kV1 it sends legacy DECTRIS stream v1 multipart messages instead (the parts
// stages/source/stream1.hpp reads): a global header (dheader-1.0 with header_detail "all" when the
// master has a pixel mask, else "basic"; the configuration JSON; with "all" a flatfield of ones,
// the pixel mask and a zero count-rate table, each after its header), per frame dimage-1.0,
// dimage_d-1.0 (shape [x, y], type, encoding, size), the blob and dconfig-1.0, then
// dseries_end-1.0. Bitshuffle-LZ4 chunks go out unchanged as "bsNN-lz4<", unfiltered ones as
// "<"; any other layout (LZ4 filter 32004 included) is decoded and sent raw ("<").

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "stages/source/dataset.hpp"

namespace azflow::sim {

/// Which DECTRIS stream protocol to send.
enum class StreamFormat {
  kStream2,  ///< Stream V2: one CBOR message per ZeroMQ message
  kV1,       ///< legacy stream v1: multipart JSON headers and blobs
};

/// What to serve and how fast.
struct SimOptions {
  StreamFormat format = StreamFormat::kStream2;  ///< protocol to send
  std::filesystem::path master;                  ///< EIGER master (or plain HDF5) file
  std::string endpoint = "tcp://*:31001";        ///< ZeroMQ endpoint the PUSH socket binds
  double rate_fps = 0;                  ///< images per second; 0 = as fast as the socket takes
  std::size_t series = 1;               ///< consecutive series to send
  std::optional<std::size_t> frames;    ///< send only the first N frames of each series
  std::string channel = "threshold_1";  ///< name of the one channel in `data`
  std::uint64_t first_series_id = 1;    ///< series_id of the first series (then +1 each)
  int send_timeout_ms = 200;            ///< how often a blocked send looks at the stop token
  int linger_ms = 10000;                ///< how long queued messages may still go at the end
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

/// Throws azflow::Error (kConfig) for a negative rate or an empty channel name.
void check_options(const SimOptions& options);

/// A PUSH socket bound to options.endpoint, with the send timeout and linger of `options`;
/// `on_bound` (if set) gets the endpoint actually bound. Throws azflow::Error (kIo) if the
/// endpoint cannot be bound.
[[nodiscard]] zmq::socket_t bind_push(const SimOptions& options, zmq::context_t& context,
                                      const std::function<void(const std::string&)>& on_bound);

/// Sends series of one open dataset on a bound PUSH socket message by message, in
/// options.format: what serve() and the SIMPLON REST mode (sim/simplon_rest.hpp) drive. Each
/// series announces frames() images (options.frames, at most the dataset's). Every call returns
/// false if `stop` was requested before its message went, and adds what it sent to `stats`
/// (end() counts a series once all its images were sent). Reads throw as source::Dataset does.
/// Not thread-safe: one thread, as the socket.
class SeriesSender {
 public:
  SeriesSender(const SimOptions& options, source::Dataset& dataset, zmq::socket_t& socket,
               SimStats& stats);
  /// The start message (v1: the global header) of series `series_id`.
  bool start(std::uint64_t series_id, const std::stop_token& stop);
  /// Frame `index` as image `index` of the current series (its stored chunk unchanged).
  bool image(std::size_t index, const std::stop_token& stop);
  /// The end message (v1: dseries_end-1.0) of the current series.
  bool end(const std::stop_token& stop);
  /// Images per series.
  [[nodiscard]] std::size_t frames() const noexcept { return frames_; }
  /// series_id of the current (last started) series.
  [[nodiscard]] std::uint64_t series_id() const noexcept { return series_id_; }

 private:
  const SimOptions& options_;
  source::Dataset& dataset_;
  zmq::socket_t& socket_;
  SimStats& stats_;
  std::size_t frames_;
  std::uint64_t series_id_ = 0;
  std::string uid_;
  std::size_t images_ = 0;  ///< images sent in the current series
  std::vector<std::byte> scratch_;
};

/// Binds the PUSH socket, then sends options.series series of the dataset, pacing images at
/// options.rate_fps. `on_bound` (if set) is called once with the endpoint actually bound (the
/// port chosen for "tcp://host:*" or ":0"). Returns early, counting what was sent, when `stop`
/// is requested. Throws azflow::Error: kIo if the dataset cannot be read or the endpoint bound,
/// kInput for a malformed dataset, kConfig for a bad option.
SimStats serve(const SimOptions& options, std::stop_token stop,
               const std::function<void(const std::string&)>& on_bound = {});

}  // namespace azflow::sim
