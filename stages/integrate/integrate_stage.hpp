#pragma once
// The integrate stage process (`azflow-stage --role integrate`, N of them): takes decoded frames
// from the "frames" ring, integrates each with its job's plan, and writes the per-frame partial
// sums into the "results" ring (commit before releasing the input slot). Backend: the CPU
// integrator, or with `--device N` (StageRuntime::gpu_device) the CUDA integrator on device N,
// fed batches of up to 8 ready frames of one job straight from the frames ring, registered as
// pinned memory, two batches in flight (docs/architecture.md, "The CUDA backend"). A CUDA error
// ends the process with status 3 without releasing its input slots, so the daemon reclaims and
// redoes those frames.
//
// Plans: on the first frame of a job the worker asks the daemon for the job's JobSpec
// ({"type":"job_config","job"}), opens the dataset for its metadata (pixel_mask, dtype), builds
// the plan exactly as `azflow integrate` does (daemon::make_job_plan -> reduce::make_plan), sends
// the plan's output axes to the daemon ({"type":"plan_axes"}) and caches plan + integrator for the
// job (LRU, at most 2 jobs). Plans are also cached by their inputs (daemon::plan_cache_key, LRU of
// 2) in memory and, with --plan-cache DIR (azflowd passes <state_dir>/plans), in the node's plan
// folder (integrate::PlanCache): one worker builds a plan while the others wait and then read its
// file, stored from a background thread; it logs "plan <hash> built in" or "loaded from". A
// job whose plan cannot be built fails each of its frames with that reason. Output: kBinSums slots,
// 4 x bins float64 (signal, variance, normalization, count); a failed input, or a frame that fails
// to integrate, becomes a failed slot with its reason.

#include "daemon/stage_runtime.hpp"

namespace azflow::integrate {

/// Runs the integrate role until stopped; returns the exit code (0).
int run_integrate_stage(daemon::StageRuntime& rt);

}  // namespace azflow::integrate
