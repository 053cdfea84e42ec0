#pragma once
// `azflow integrate --stream ENDPOINT`: integrates one DECTRIS Stream V2 (or, with
// --stream-format v1, legacy stream v1) series, from its start message (v1: the global header)
// to its end message, into the same output as file integration (row = image_id, v1: frame).

#include <string>

#include <CLI/CLI.hpp>

#include "cli/integrate_options.hpp"

namespace azflow::cli {

/// Options that only stream integration has.
struct StreamOptions {
  std::string endpoint;  ///< ZeroMQ endpoint of the detector's PUSH socket ("" = file input)
  std::string channel;   ///< channel of the `data` map ("" = the first one)
  std::string format = "stream2";  ///< "stream2" (Stream V2, CBOR) or "v1" (legacy stream v1)
  double timeout_s = 60;           ///< give up after this long without a message
  std::string save_raw;            ///< folder of the raw spool (source/raw_spool.hpp); "" = none
};

/// Declares --stream, --stream-format, --channel, --stream-timeout and --save-raw on `command`, and
/// makes the positional input and --poni optional there (run_stream_integrate and check_file_input
/// enforce them).
void add_stream_options(CLI::App& command, StreamOptions& stream);

/// For a file run (no --stream): throws azflow::Error (kConfig) unless the input and --poni are
/// given, as CLI11 did when they were required.
void check_file_input(const IntegrateOptions& options);

/// Connects a ZeroMQ PULL socket to `stream.endpoint`, reads `stream.format` messages (stream v1
/// without an image type in its header: the first image's type), waits for a start message (images
/// and ends before it are counted and skipped), builds the plan from --poni or, without one, from
/// the start message's geometry (distance, beam centre x pixel size, wavelength; no rotations),
/// with the start message's pixel_mask of the channel as the detector mask, and integrates every
/// image of that series until its end message: row = image_id (0 .. number_of_images-1). An image
/// that fails to decode or has the wrong shape, and an image id that never arrived (end, or
/// timeout), become failed rows with their reason; duplicate, out-of-range and foreign-series
/// images, invalid and unknown messages are counted and reported, never fatal. With --save-raw
/// every accepted image is also written, stored bytes unchanged, to the raw spool
/// <save_raw>/series_<series_id>_master.h5 + data files as it arrives (an image the spool cannot
/// hold is counted and reported). Returns kExitOk, or
/// kExitFramesFailed after listing the failed rows. Throws azflow::Error: kConfig for bad
/// options or an existing raw spool, kInput for a start message without image size, dtype or
/// number_of_images (or without geometry when there is no --poni), kIo when no start message
/// arrives in time or the raw spool cannot be written.
int run_stream_integrate(const IntegrateOptions& options, const StreamOptions& stream);

}  // namespace azflow::cli
