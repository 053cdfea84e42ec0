#pragma once
// The source stage process (`azflow-stage --role source`): reads the frames of the shards the
// daemon hands it and pushes them into the rings.
//
// Input: "shard" messages on the control link ({job, shard, datasets, dataset_path, first +
// count, or an explicit "frames" list for frames to redo after a crash}), processed in order.
// Output, one slot per frame:
//   - "compressed" ring: the frame's stored chunk read directly (no HDF5 filter), kind
//     kCompressedChunk, with codec, element size, block size, dtype and shape in the header;
//   - "frames" ring: frames whose codec is kOther (or whose chunk is larger than a compressed
//     slot) are read through Dataset::read_frame and pushed already decoded, kind kFrame;
//   - a frame that cannot be read becomes a failed slot (status kFailed, reason naming file,
//     dataset and frame) in the compressed ring: it is counted downstream, never dropped.
// After the last frame of a shard message it sends {"type":"shard_read", job, shard}.
// "cancel" drops the job's remaining frames. Memory: up to 4 open datasets (LRU), no frame
// buffers of its own (chunks are read straight into ring slots).

#include "daemon/stage_runtime.hpp"

namespace azflow::source {

/// Runs the source role until stopped; returns the exit code (0).
int run_source_stage(daemon::StageRuntime& rt);

}  // namespace azflow::source
