#pragma once
// DECTRIS legacy stream v1 ("stream" interface of SIMPLON 1.x): each ZeroMQ message is multipart,
// every part but the binary blobs is a JSON object with an `htype`. Parsed into the same typed
// start / image / end values as Stream V2 (stream2::Message), so a receiver handles both alike.
// Format facts from DECTRIS' SIMPLON API reference (stream interface) and a real EIGER 4M capture
// (SIMPLON 1.6.6, ../shared/real-data/dls-eiger-detector-stream1):
//   - global header: part 1 {"htype": "dheader-1.0", "series", "header_detail"}; with
//     header_detail "basic" or "all" part 2 is the detector configuration (JSON: beam_center_x/y
//     [pixel], detector_distance [m], wavelength [Å], photon_energy [eV], x/y_pixel_size [m],
//     x/y_pixels_in_detector, nimages, ntrigger, count_time, frame_time, description, ...);
//     with "all" three (header, blob) pairs follow: dflatfield-1.0, dpixelmask-1.0,
//     dcountrate_table-1.0, each header {"shape": [x, y], "type"}; an optional last part is the
//     header appendix (any bytes). The names without the leading `d` are accepted too;
//   - image: part 1 {"htype": "dimage-1.0", "series", "frame", "hash"}, part 2 {"htype":
//     "dimage_d-1.0", "shape": [x, y] (width, height), "type", "encoding", "size"}, part 3 the
//     blob, part 4 {"htype": "dconfig-1.0", "start_time", "stop_time", "real_time"}, an optional
//     part 5 the image appendix;
//   - end: {"htype": "dseries_end-1.0", "series"}.
// Encodings: "bs32-lz4<", "bs16-lz4<", "bs8-lz4<" (bytes framed exactly as an HDF5 bitshuffle
// filter 32008 chunk), "lz4<" (one raw LZ4 block), "<" (raw little-endian elements).
// The start value has image_dtype only when the configuration carries `bit_depth_image` (SIMPLON
// 1.8); otherwise the first image's `type` tells it.

#include <cstddef>
#include <span>

#include "stages/source/stream2.hpp"

namespace azflow::source::stream1 {

/// The same bounds as Stream V2 (message bytes, pixels per side and per array, images).
using Limits = stream2::Limits;

/// One multipart ZeroMQ message: its parts in order, views valid while the caller's buffers are.
using Parts = std::span<const std::span<const std::byte>>;

/// Parses one multipart message into a stream2::Message: Start (from dheader + config; the pixel
/// mask blob decoded, [y][x] row-major, when sent), Image (one channel named "" whose array views
/// the blob, rows = shape[1], cols = shape[0]) or End. A message whose first part is JSON with an
/// unknown htype is Unknown. Throws azflow::Error (kInput) with a message starting "stream1: "
/// for: no parts, a part that is not a JSON object, a missing part, a wrong htype, a shape or
/// type missing or outside `limits`, an unknown encoding, a blob whose size does not match shape
/// and type (raw), the declared `size`, or its compressed header's decoded size.
[[nodiscard]] stream2::Message parse_message(Parts parts, const Limits& limits = {});

}  // namespace azflow::source::stream1
