#pragma once
// `azflow integrate --stream ENDPOINT`: integrates one DECTRIS Stream V2 series, from its start
// message to its end message, into the same output as file integration (row = image_id).

#include <string>

#include <CLI/CLI.hpp>

#include "cli/integrate_options.hpp"

namespace azflow::cli {

/// Options that only stream integration has.
struct StreamOptions {
  std::string endpoint;   ///< ZeroMQ endpoint of the detector's PUSH socket ("" = file input)
  std::string channel;    ///< channel of the `data` map ("" = the first one)
  double timeout_s = 60;  ///< give up after this long without a message
};

/// Declares --stream, --channel and --stream-timeout on `command`, and makes the positional
/// input and --poni optional there (run_stream_integrate and check_file_input enforce them).
void add_stream_options(CLI::App& command, StreamOptions& stream);

/// For a file run (no --stream): throws azflow::Error (kConfig) unless the input and --poni are
/// given, as CLI11 did when they were required.
void check_file_input(const IntegrateOptions& options);

/// Connects a ZeroMQ PULL socket to `stream.endpoint`, waits for a start message (images and
/// ends before it are counted and skipped), builds the plan from --poni or, without one, from the
/// start message's geometry (distance, beam centre x pixel size, wavelength; no rotations), with
/// the start message's pixel_mask of the channel as the detector mask, and integrates every image
/// of that series until its end message: row = image_id (0 .. number_of_images-1). An image that
/// fails to decode or has the wrong shape, and an image id that never arrived (end, or timeout),
/// become failed rows with their reason; duplicate, out-of-range and foreign-series images,
/// invalid and unknown messages are counted and reported, never fatal. Returns kExitOk, or
/// kExitFramesFailed after listing the failed rows. Throws azflow::Error: kConfig for bad
/// options, kInput for a start message without image size, dtype or number_of_images (or
/// without geometry when there is no --poni), kIo when no start message arrives in time.
int run_stream_integrate(const IntegrateOptions& options, const StreamOptions& stream);

}  // namespace azflow::cli
