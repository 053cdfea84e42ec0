#include "sim/detector_sim.hpp"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
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
    case DType::kInt16:
      return 77;
    case DType::kInt32:
      return 78;
    case DType::kInt64:
      return 79;
    case DType::kFloat32:
      return 85;
    case DType::kFloat64:
      return 86;
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

/// Sends `parts` as one multipart message; false if stopped.
bool send_parts(zmq::socket_t& socket, std::vector<zmq::message_t>& parts,
                const std::stop_token& stop) {
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const auto flags = i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    bool sent = false;
    while (!sent && !stop.stop_requested()) sent = socket.send(parts[i], flags).has_value();
    if (!sent) return false;
  }
  return true;
}

zmq::message_t json_part(const nlohmann::json& j) {
  const std::string text = j.dump();
  return zmq::message_t(text.data(), text.size());
}

/// Stream v1 sender: the global header, image and end multipart messages (stream1.hpp).
class V1Sender {
 public:
  V1Sender(zmq::socket_t& socket, const source::DatasetInfo& info) : socket_(socket), info_(info) {}

  std::uint64_t header(std::uint64_t series_id, std::size_t images, const std::stop_token& stop) {
    const bool all = info_.pixel_mask.has_value();
    std::vector<zmq::message_t> parts;
    parts.push_back(json_part({{"htype", "dheader-1.0"},
                               {"series", series_id},
                               {"header_detail", all ? "all" : "basic"}}));
    parts.push_back(json_part(config(images)));
    if (all) {
      const nlohmann::json shape = {info_.cols, info_.rows};
      const std::vector<float> flat(info_.rows * info_.cols, 1.0f);
      const std::vector<float> table(2 * 1000, 0.0f);
      parts.push_back(
          json_part({{"htype", "dflatfield-1.0"}, {"shape", shape}, {"type", "float32"}}));
      parts.emplace_back(flat.data(), flat.size() * sizeof(float));
      parts.push_back(
          json_part({{"htype", "dpixelmask-1.0"}, {"shape", shape}, {"type", "uint32"}}));
      parts.emplace_back(info_.pixel_mask->data(), info_.pixel_mask->size() * 4);
      parts.push_back(json_part(
          {{"htype", "dcountrate_table-1.0"}, {"shape", {1000, 2}}, {"type", "float32"}}));
      parts.emplace_back(table.data(), table.size() * sizeof(float));
    }
    return send_counted(parts, stop);
  }

  std::uint64_t image(std::uint64_t series_id, std::uint64_t frame, const Payload& p,
                      const std::stop_token& stop) {
    const std::string encoding = p.codec.codec == Codec::kBitshuffleLz4
                                     ? "bs" + std::to_string(8 * p.codec.elem_size) + "-lz4<"
                                     : "<";
    std::vector<zmq::message_t> parts;
    parts.push_back(json_part(
        {{"htype", "dimage-1.0"}, {"series", series_id}, {"frame", frame}, {"hash", ""}}));
    parts.push_back(json_part({{"htype", "dimage_d-1.0"},
                               {"shape", {info_.cols, info_.rows}},
                               {"type", std::string(dtype_name(info_.dtype))},
                               {"encoding", encoding},
                               {"size", p.bytes.size()}}));
    parts.emplace_back(p.bytes.data(), p.bytes.size());
    parts.push_back(json_part(
        {{"htype", "dconfig-1.0"}, {"start_time", 0}, {"stop_time", 0}, {"real_time", 0}}));
    return send_counted(parts, stop);
  }

  std::uint64_t end(std::uint64_t series_id, const std::stop_token& stop) {
    std::vector<zmq::message_t> parts;
    parts.push_back(json_part({{"htype", "dseries_end-1.0"}, {"series", series_id}}));
    return send_counted(parts, stop);
  }

 private:
  /// The configuration part: what a SIMPLON 1.8 DCU sends that the master file knows.
  nlohmann::json config(std::size_t images) const {
    const source::DetectorMetadata& m = info_.detector;
    nlohmann::json c = {{"x_pixels_in_detector", info_.cols},
                        {"y_pixels_in_detector", info_.rows},
                        {"bit_depth_image", 8 * dtype_size(info_.dtype)},
                        {"nimages", images},
                        {"ntrigger", 1}};
    if (m.beam_center_x_px) c["beam_center_x"] = *m.beam_center_x_px;
    if (m.beam_center_y_px) c["beam_center_y"] = *m.beam_center_y_px;
    if (m.detector_distance_m) c["detector_distance"] = *m.detector_distance_m;
    if (m.incident_wavelength_m) c["wavelength"] = *m.incident_wavelength_m / 1e-10;
    if (m.x_pixel_size_m) c["x_pixel_size"] = *m.x_pixel_size_m;
    if (m.y_pixel_size_m) c["y_pixel_size"] = *m.y_pixel_size_m;
    if (m.description) c["description"] = *m.description;
    return c;
  }
  /// Sends `parts`; their bytes when sent (counted before: a sent message_t is emptied), else 0.
  std::uint64_t send_counted(std::vector<zmq::message_t>& parts, const std::stop_token& stop) {
    std::uint64_t n = 0;
    for (const zmq::message_t& p : parts) n += p.size();
    return send_parts(socket_, parts, stop) ? n : 0;
  }

  zmq::socket_t& socket_;
  const source::DatasetInfo& info_;
};

/// Frame `index` as stream v1 carries it: the stored chunk when bitshuffle-LZ4 or raw, else the
/// decoded pixels (v1's "lz4<" is a bare LZ4 block, not the 32004 framing).
Payload v1_payload(source::Dataset& d, std::size_t index, std::vector<std::byte>& scratch) {
  Payload p = frame_payload(d, index, scratch);
  if (p.codec.codec != Codec::kLz4) return p;
  std::vector<std::byte> chunk(p.bytes.begin(), p.bytes.end());
  scratch.resize(d.info().frame_bytes());
  decompress::decode(p.codec, chunk, scratch);
  return {scratch, CodecParams{Codec::kNone, dtype_size(d.info().dtype), 0}, false};
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

namespace {

/// Images before image `sent_total` wait for their slot at `rate_fps`; false if stopped.
bool pace(const SimOptions& o, Clock::time_point t0, std::size_t sent_total,
          const std::stop_token& stop) {
  if (o.rate_fps <= 0) return !stop.stop_requested();
  return wait_until(t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                             static_cast<double>(sent_total) / o.rate_fps)),
                    stop);
}

}  // namespace

void check_options(const SimOptions& options) {
  if (options.rate_fps < 0) throw Error(ErrorCategory::kConfig, "--rate must be >= 0");
  if (options.channel.empty()) throw Error(ErrorCategory::kConfig, "--channel must not be empty");
}

zmq::socket_t bind_push(const SimOptions& options, zmq::context_t& context,
                        const std::function<void(const std::string&)>& on_bound) {
  zmq::socket_t socket(context, zmq::socket_type::push);
  socket.set(zmq::sockopt::sndtimeo, options.send_timeout_ms);
  socket.set(zmq::sockopt::linger, options.linger_ms);
  try {
    socket.bind(options.endpoint);
  } catch (const zmq::error_t& e) {
    throw Error(ErrorCategory::kIo, "cannot bind " + options.endpoint + ": " + e.what());
  }
  if (on_bound) on_bound(socket.get(zmq::sockopt::last_endpoint));
  return socket;
}

SeriesSender::SeriesSender(const SimOptions& options, source::Dataset& dataset,
                           zmq::socket_t& socket, SimStats& stats)
    : options_(options),
      dataset_(dataset),
      socket_(socket),
      stats_(stats),
      frames_(std::min(options.frames.value_or(dataset.info().frames), dataset.info().frames)) {}

bool SeriesSender::start(std::uint64_t series_id, const std::stop_token& stop) {
  series_id_ = series_id;
  uid_ = "azflow-sim-" + std::to_string(getpid()) + "-" + std::to_string(series_id);
  images_ = 0;
  if (options_.format == StreamFormat::kV1) {
    const std::uint64_t sent = V1Sender(socket_, dataset_.info()).header(series_id, frames_, stop);
    stats_.bytes += sent;
    return sent != 0;
  }
  const auto start = encode_start(dataset_.info(), frames_, series_id, uid_, options_.channel);
  if (!send(socket_, start, stop)) return false;
  stats_.bytes += start.size();
  return true;
}

bool SeriesSender::image(std::size_t index, const std::stop_token& stop) {
  std::uint64_t sent = 0;
  bool passthrough = false;
  if (options_.format == StreamFormat::kV1) {
    const Payload p = v1_payload(dataset_, index, scratch_);
    sent = V1Sender(socket_, dataset_.info()).image(series_id_, index, p, stop);
    passthrough = p.passthrough;
  } else {
    const Payload p = frame_payload(dataset_, index, scratch_);
    const auto head = encode_image_head(dataset_.info(), p.codec, p.bytes.size(), index, series_id_,
                                        uid_, options_.channel);
    zmq::message_t msg(head.size() + p.bytes.size());
    std::memcpy(msg.data(), head.data(), head.size());
    std::memcpy(static_cast<std::byte*>(msg.data()) + head.size(), p.bytes.data(), p.bytes.size());
    if (send(socket_, msg, stop)) sent = head.size() + p.bytes.size();
    passthrough = p.passthrough;
  }
  if (sent == 0) return false;
  ++images_;
  ++stats_.images;
  stats_.compressed_passthrough += passthrough ? 1 : 0;
  stats_.bytes += sent;
  return true;
}

bool SeriesSender::end(const std::stop_token& stop) {
  std::uint64_t sent = 0;
  if (options_.format == StreamFormat::kV1) {
    sent = V1Sender(socket_, dataset_.info()).end(series_id_, stop);
  } else {
    const auto end = encode_end(series_id_, uid_);
    if (send(socket_, end, stop)) sent = end.size();
  }
  if (sent == 0) return false;
  stats_.bytes += sent;
  if (images_ == frames_) ++stats_.series;
  return true;
}

SimStats serve(const SimOptions& options, std::stop_token stop,
               const std::function<void(const std::string&)>& on_bound) {
  check_options(options);
  source::Dataset d = source::Dataset::open(options.master);
  zmq::context_t context(1);
  zmq::socket_t socket = bind_push(options, context, on_bound);
  SimStats stats;
  SeriesSender sender(options, d, socket, stats);
  const Clock::time_point t0 = Clock::now();
  std::size_t sent_total = 0;
  for (std::size_t s = 0; s < options.series; ++s) {
    if (!sender.start(options.first_series_id + s, stop)) break;
    bool stopped = false;
    for (std::size_t i = 0; i < sender.frames() && !stopped; ++i, ++sent_total) {
      stopped = !pace(options, t0, sent_total, stop) || !sender.image(i, stop);
    }
    if (stopped || !sender.end(stop)) break;
  }
  stats.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return stats;
}

}  // namespace azflow::sim
