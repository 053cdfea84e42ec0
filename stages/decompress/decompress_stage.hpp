#pragma once
// The decompress stage process (`azflow-stage --role decompress`, T of them): takes compressed
// chunks from the "compressed" ring, decodes them (azflow::decompress::decode, bounds-checked)
// straight into a slot of the "frames" ring, and commits it before releasing the input slot (the
// ring's crash-recovery protocol).
//
// Input: kCompressedChunk slots (ok or failed). Output: kFrame slots, rows x cols x elem_size
// bytes; a chunk that fails to decode, or whose frame does not fit a slot, becomes a failed slot
// with a reason naming the frame; a failed input is passed on as failed. Memory: none of its own.

#include "daemon/stage_runtime.hpp"

namespace azflow::decompress {

/// Runs the decompress role until stopped; returns the exit code (0).
int run_decompress_stage(daemon::StageRuntime& rt);

}  // namespace azflow::decompress
