#include "sim/detector_sim.hpp"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <thread>
#include <zmq.hpp>

#include "base/error.hpp"
#include "sim/cbor_writer.hpp"
#include "stages/source/stream2.hpp"

namespace azflow::sim {

static_assert(std::endian::native == std::endian::little,
              "Stream V2 typed arrays are sent little-endian: host byte order");

namespace {

using decompress::Codec;
using decompress::CodecParams;
using Clock = std::chrono::steady_clock;

/// RFC 8746 little-endian typed-array tag of `dtype`.
std::uint64_t typed_array_tag(DType dtype) {
  switch (dtype) {
    case DType::kUint8:
      return 64;
    case DType::kUint16:
      return 69;
    case DType::kUint32:
      return 70;
    case DType::kInt32:
      return 78;
    case DType::kFloat32:
      return 85;
  }
  return 64;
}

/// Starts a self-described message: tag 55799 and a map of `fields` entries, `type` first.
void begin_message(CborWriter& w, std::size_t fields, std::string_view type) {
  w.tag(source::stream2::kSelfDescribeTag);
  w.map(fields);
  w.text("type");
  w.text(type);
}

/// tag 40 [[rows, cols], typed array tag ...]: everything before the typed array's content.
void array_head(CborWriter& w, std::size_t rows, std::size_t cols, DType dtype) {
  w.tag(source::stream2::kMultiDimRowMajorTag);
  w.array(2);
  w.array(2);
  w.uint(rows);
  w.uint(cols);
  w.tag(typed_array_tag(dtype));
}

/// The optional numeric start fields present in `info`, as (key, value).
std::vector<std::pair<std::string_view, double>> geometry_fields(const source::DatasetInfo& info) {
  const source::DetectorMetadata& m = info.detector;
  std::vector<std::pair<std::string_view, double>> f;
  if (m.beam_center_x_px) f.emplace_back("beam_center_x", *m.beam_center_x_px);
  if (m.beam_center_y_px) f.emplace_back("beam_center_y", *m.beam_center_y_px);
  if (m.detector_distance_m) f.emplace_back("detector_distance", *m.detector_distance_m);
  if (m.incident_wavelength_m)
    f.emplace_back("incident_wavelength", *m.incident_wavelength_m / 1e-10);
  if (m.x_pixel_size_m) f.emplace_back("pixel_size_x", *m.x_pixel_size_m);
  if (m.y_pixel_size_m) f.emplace_back("pixel_size_y", *m.y_pixel_size_m);
  return f;
}

/// A frame's bytes as they go into its image message, and their codec.
struct Payload {
  std::span<const std::byte> bytes;
  CodecParams codec;
  bool passthrough = false;  ///< the stored chunk itself
};

bool sendable(Codec c) {
  return c == Codec::kNone || c == Codec::kBitshuffleLz4 || c == Codec::kLz4;
}

/// Frame `index`'s stored chunk when Stream V2 can carry it as is, else its decoded pixels.
Payload frame_payload(source::Dataset& d, std::size_t index, std::vector<std::byte>& scratch) {
  if (sendable(d.frame_codec(index).codec)) {
    if (auto view = d.chunk_view(index); view && sendable(view->codec.codec)) {
      return {view->bytes, view->codec, true};
    }
    scratch.resize(d.chunk_bytes(index));
    const source::RawChunk r = d.read_chunk(index, scratch);
    if (sendable(r.codec.codec)) return {std::span(scratch).first(r.bytes), r.codec, true};
  }
  scratch.resize(d.info().frame_bytes());
  d.read_frame(index, scratch);
  return {scratch, CodecParams{Codec::kNone, dtype_size(d.info().dtype), 0}, false};
}

/// Sends `msg`, retrying after each send timeout until it goes or `stop` is requested.
bool send(zmq::socket_t& socket, zmq::message_t& msg, const std::stop_token& stop) {
  while (!stop.stop_requested()) {
    if (socket.send(msg, zmq::send_flags::none)) return true;
  }
  return false;
}

bool send(zmq::socket_t& socket, const std::vector<std::byte>& bytes, const std::stop_token& stop) {
  zmq::message_t msg(bytes.data(), bytes.size());
  return send(socket, msg, stop);
}

/// Sleeps until `when` in slices, so that a stop request is seen; false if stopped.
bool wait_until(Clock::time_point when, const std::stop_token& stop) {
  while (Clock::now() < when) {
    if (stop.stop_requested()) return false;
    std::this_thread::sleep_until(std::min(when, Clock::now() + std::chrono::milliseconds(50)));
  }
  return !stop.stop_requested();
}

}  // namespace

std::vector<std::byte> encode_start(const source::DatasetInfo& info, std::size_t number_of_images,
                                    std::uint64_t series_id, const std::string& series_unique_id,
                                    const std::string& channel) {
  const auto geometry = geometry_fields(info);
  const bool description = info.detector.description.has_value();
  const bool mask = info.pixel_mask.has_value();
  CborWriter w;
  begin_message(w, 9 + geometry.size() + (description ? 1 : 0) + (mask ? 1 : 0), "start");
  w.text("series_id");
  w.uint(series_id);
  w.text("series_unique_id");
  w.text(series_unique_id);
  w.text("image_size_x");
  w.uint(info.cols);
  w.text("image_size_y");
  w.uint(info.rows);
  w.text("image_dtype");
  w.text(dtype_name(info.dtype));
  w.text("number_of_images");
  w.uint(number_of_images);
  w.text("channels");
  w.array(1);
  w.text(channel);
  for (const auto& [key, value] : geometry) {
    w.text(key);
    w.float64(value);
  }
  if (description) {
    w.text("detector_description");
    w.text(*info.detector.description);
  }
  if (mask) {
    w.text("pixel_mask");
    w.map(1);
    w.text(channel);
    array_head(w, info.rows, info.cols, DType::kUint32);
    w.bytes(std::as_bytes(std::span(*info.pixel_mask)));
  }
  w.text("pixel_mask_enabled");
  w.boolean(mask);
  return w.take();
}

std::vector<std::byte> encode_end(std::uint64_t series_id, const std::string& series_unique_id) {
  CborWriter w;
  begin_message(w, 3, "end");
  w.text("series_id");
  w.uint(series_id);
  w.text("series_unique_id");
  w.text(series_unique_id);
  return w.take();
}

std::vector<std::byte> encode_image_head(const source::DatasetInfo& info, const CodecParams& codec,
                                         std::size_t payload_bytes, std::uint64_t image_id,
                                         std::uint64_t series_id,
                                         const std::string& series_unique_id,
                                         const std::string& channel) {
  CborWriter w;
  begin_message(w, 5, "image");
  w.text("series_id");
  w.uint(series_id);
  w.text("series_unique_id");
  w.text(series_unique_id);
  w.text("image_id");
  w.uint(image_id);
  w.text("data");  // last, so that the array bytes end the message
  w.map(1);
  w.text(channel);
  array_head(w, info.rows, info.cols, info.dtype);
  if (codec.codec == Codec::kBitshuffleLz4 || codec.codec == Codec::kLz4) {
    w.tag(source::stream2::kDectrisCompressionTag);
    w.array(3);
    w.text(codec.codec == Codec::kLz4 ? "lz4" : "bslz4");
    w.uint(codec.codec == Codec::kLz4 ? 0 : codec.elem_size);
  } else if (codec.codec != Codec::kNone) {
    throw Error(ErrorCategory::kInternal, "encode_image_head: codec '" +
                                              std::string(decompress::codec_name(codec.codec)) +
                                              "' has no Stream V2 form");
  }
  w.bytes_header(payload_bytes);
  return w.take();
}

SimStats serve(const SimOptions& options, std::stop_token stop,
               const std::function<void(const std::string&)>& on_bound) {
  if (options.rate_fps < 0) throw Error(ErrorCategory::kConfig, "--rate must be >= 0");
  if (options.channel.empty()) throw Error(ErrorCategory::kConfig, "--channel must not be empty");
  source::Dataset d = source::Dataset::open(options.master);
  const source::DatasetInfo& info = d.info();
  const std::size_t frames = std::min(options.frames.value_or(info.frames), info.frames);

  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::push);
  socket.set(zmq::sockopt::sndtimeo, options.send_timeout_ms);
  socket.set(zmq::sockopt::linger, options.linger_ms);
  try {
    socket.bind(options.endpoint);
  } catch (const zmq::error_t& e) {
    throw Error(ErrorCategory::kIo, "cannot bind " + options.endpoint + ": " + e.what());
  }
  if (on_bound) on_bound(socket.get(zmq::sockopt::last_endpoint));

  SimStats stats;
  std::vector<std::byte> scratch;
  const Clock::time_point t0 = Clock::now();
  std::size_t sent_total = 0;
  for (std::size_t s = 0; s < options.series; ++s) {
    const std::uint64_t series_id = options.first_series_id + s;
    const std::string uid =
        "azflow-sim-" + std::to_string(getpid()) + "-" + std::to_string(series_id);
    const auto start = encode_start(info, frames, series_id, uid, options.channel);
    if (!send(socket, start, stop)) break;
    stats.bytes += start.size();
    for (std::size_t i = 0; i < frames; ++i, ++sent_total) {
      if (options.rate_fps > 0 &&
          !wait_until(
              t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                       static_cast<double>(sent_total) / options.rate_fps)),
              stop)) {
        break;
      }
      const Payload p = frame_payload(d, i, scratch);
      const auto head =
          encode_image_head(info, p.codec, p.bytes.size(), i, series_id, uid, options.channel);
      zmq::message_t msg(head.size() + p.bytes.size());
      std::memcpy(msg.data(), head.data(), head.size());
      std::memcpy(static_cast<std::byte*>(msg.data()) + head.size(), p.bytes.data(),
                  p.bytes.size());
      if (!send(socket, msg, stop)) break;
      ++stats.images;
      stats.compressed_passthrough += p.passthrough ? 1 : 0;
      stats.bytes += head.size() + p.bytes.size();
    }
    if (stop.stop_requested()) break;
    const auto end = encode_end(series_id, uid);
    if (!send(socket, end, stop)) break;
    stats.bytes += end.size();
    ++stats.series;
  }
  stats.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return stats;
}

}  // namespace azflow::sim
