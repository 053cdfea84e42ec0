#pragma once
// DECTRIS Stream V2: one CBOR message (RFC 8949) per ZeroMQ message, parsed into a typed start,
// image or end message. Format facts from DECTRIS' public documentation (github.com/dectris/
// documentation: stream_v2/README.md, cbor/dectris-compression-tag.md):
//   - the message is the self-describe tag 55799 around a map of text keys; `type` is "start",
//     "image" or "end" (any other type is returned as kUnknown; unknown keys are counted);
//   - images and pixel masks are multi-dimensional arrays, tag 40 [[rows, cols], typed array]
//     (RFC 8746 section 3.1, row-major: rows = image_size_y, the slow axis); tag 1040
//     (column-major) is refused;
//   - typed arrays are RFC 8746 tags around a byte string: 64/68 uint8, 69 uint16 LE, 70 uint32
//     LE, 78 int32 LE, 85 float32 LE (big-endian and 64-bit tags are refused);
//   - the byte string may be replaced by the DECTRIS compression tag 56500 [algorithm, modifier,
//     bytes]: "bslz4" with the element size (bytes framed as HDF5 filter 32008's chunks) or "lz4"
//     with 0 (HDF5 filter 32004's framing); any other algorithm (e.g. PSI's "bszstd") is refused.
// Units: beam centre in pixels, pixel size and (Jungfraujoch's extension) detector_distance in
// metres, incident_wavelength in angstrom, incident_energy in eV, times in seconds.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "base/dtype.hpp"
#include "stages/decompress/codec.hpp"

namespace azflow::source::stream2 {

/// CBOR tags Stream V2 uses.
inline constexpr std::uint64_t kSelfDescribeTag = 55799;        ///< RFC 8949 section 3.4.6
inline constexpr std::uint64_t kMultiDimRowMajorTag = 40;       ///< RFC 8746 section 3.1.1
inline constexpr std::uint64_t kMultiDimColumnMajorTag = 1040;  ///< RFC 8746 section 3.1.2
inline constexpr std::uint64_t kDectrisCompressionTag = 56500;  ///< DECTRIS compression tag

/// Bounds on what a message may declare, checked before anything is allocated or decoded.
struct Limits {
  std::size_t max_message_bytes = std::size_t{1} << 31;  ///< whole message (2 GiB)
  std::size_t max_side_px = 1u << 16;                    ///< rows or cols of one array
  std::size_t max_pixels = std::size_t{1} << 28;         ///< rows * cols of one array
  std::size_t max_channels = 64;                         ///< entries of `data` / `pixel_mask`
  std::uint64_t max_images = std::uint64_t{1} << 40;     ///< number_of_images
};

/// One 2-D array of a message, not decoded: a view of its stored bytes inside the message
/// buffer (valid while that buffer is). `codec` is kNone (raw little-endian elements),
/// kBitshuffleLz4 (with elem_size) or kLz4; parse_message has already checked that the
/// stored or declared decoded size equals rows * cols * dtype_size(dtype).
struct Array {
  std::size_t rows = 0, cols = 0;  ///< shape [rows, cols] as sent (row-major)
  DType dtype = DType::kUint32;
  decompress::CodecParams codec;
  std::span<const std::byte> bytes;  ///< stored bytes: the compressed chunk or the raw pixels

  /// Bytes of the decoded array.
  [[nodiscard]] std::size_t decoded_bytes() const noexcept {
    return rows * cols * dtype_size(dtype);
  }
};

/// One channel (threshold) of an image: its name in the `data` map and its pixels.
struct Channel {
  std::string name;
  Array array;
};

/// The `start` message: series identity and the detector geometry, SI units. Fields the
/// message does not carry are absent.
struct Start {
  std::uint64_t series_id = 0;
  std::string series_unique_id;
  std::optional<std::size_t> image_size_x, image_size_y;  ///< cols (width), rows (height)
  std::optional<DType> image_dtype;
  std::optional<std::uint64_t> number_of_images;
  std::optional<double> beam_center_x_px, beam_center_y_px;
  std::optional<double> detector_distance_m;    ///< `detector_distance` (Jungfraujoch), metres
  std::optional<double> incident_wavelength_m;  ///< from incident_wavelength, else energy
  std::optional<double> incident_energy_ev;
  std::optional<double> pixel_size_x_m, pixel_size_y_m;
  std::optional<double> count_time_s, frame_time_s;
  std::optional<std::uint64_t> saturation_value;
  std::optional<std::string> detector_description;
  std::vector<std::string> channels;  ///< `channels`, in the order images carry them
  /// `pixel_mask`: channel name -> rows*cols values (nonzero = bad pixel), decoded.
  std::vector<std::pair<std::string, std::vector<std::uint32_t>>> pixel_masks;

  /// The pixel mask of `channel` ("" = the first one sent); nullptr if there is none.
  [[nodiscard]] const std::vector<std::uint32_t>* pixel_mask(std::string_view channel) const;
};

/// The `image` message: one exposure, every active channel.
struct Image {
  std::uint64_t series_id = 0;
  std::string series_unique_id;
  std::uint64_t image_id = 0;
  std::vector<Channel> data;  ///< the `data` map in message order (at least one channel)

  /// The channel named `name`, or the first one when `name` is "". Throws azflow::Error
  /// (kInput) naming the image and the channels it has when there is no such channel.
  [[nodiscard]] const Channel& channel(std::string_view name) const;
};

/// The `end` message.
struct End {
  std::uint64_t series_id = 0;
  std::string series_unique_id;
};

/// A message whose `type` azflow does not know: ignored by callers, and counted.
struct Unknown {
  std::string type;
};

/// One parsed message and the top-level keys it carried that azflow does not use.
struct Message {
  std::variant<Start, Image, End, Unknown> body;
  std::size_t unknown_fields = 0;

  [[nodiscard]] bool is_start() const noexcept { return body.index() == 0; }
  [[nodiscard]] bool is_image() const noexcept { return body.index() == 1; }
  [[nodiscard]] bool is_end() const noexcept { return body.index() == 2; }
};

/// Parses one ZeroMQ message. Image arrays stay views into `message` (no copy). Throws
/// azflow::Error (kInput) with a message starting "stream2: " for: not CBOR, a message not
/// wrapped in tag 55799, a top level that is not a map or has no text `type`, a field of the
/// wrong CBOR type, wrong or unsupported tags (1040, big-endian typed arrays), an unknown
/// compression, a truncated message, a declared size that does not match the bytes or the
/// decoded size, and any size beyond `limits`.
[[nodiscard]] Message parse_message(std::span<const std::byte> message, const Limits& limits = {});

/// Decodes `array` into `out` (exactly array.decoded_bytes()) with azflow::decompress, straight
/// from the message bytes. Throws azflow::Error (kInput) on corrupt compressed data or a wrong
/// `out` size.
void decode(const Array& array, std::span<std::byte> out);

/// A pixel mask (nonzero = bad pixel, EIGER bit semantics) from `pixels` little-endian integer
/// elements of `dtype` in `raw` (exactly pixels * dtype_size(dtype) bytes): 8-, 16- and 32-bit
/// values as they are, 64-bit ones as they are when they fit 32 bits, else 0xFFFFFFFF (still
/// masked). Shared by the Stream V2 and v1 parsers. Throws azflow::Error (kInput, starting with
/// `what`) for float32/float64, kInternal when `raw` has the wrong size.
[[nodiscard]] std::vector<std::uint32_t> pixel_mask_values(std::span<const std::byte> raw,
                                                           DType dtype, std::size_t pixels,
                                                           const std::string& what);

}  // namespace azflow::source::stream2
