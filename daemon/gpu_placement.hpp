#pragma once
// Where azflowd's integrate workers run: on GPUs (workers_per_gpu CUDA workers pinned to each
// configured and visible device) or on the CPU (integrate_workers CPU workers), decided once at
// daemon start from the [gpu] configuration and what `azflow-stage --probe-gpus` reports. The
// daemon itself never links the CUDA runtime: the probe runs in a short-lived azflow-stage.
//
// Pinning: each CUDA worker is started with `--device N` and calls cudaSetDevice(N). Ordinals are
// those the CUDA runtime numbers after CUDA_VISIBLE_DEVICES, which the daemon's environment sets
// (if at all) for the probe and every worker alike; per-worker CUDA_VISIBLE_DEVICES would renumber
// each worker's device to 0 and hide which GPU a worker uses in `azflowctl workers`.

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/config.hpp"

namespace azflow::daemon {

/// What azflow-stage --probe-gpus found.
struct GpuInventory {
  bool cuda_build = false;         ///< azflow-stage has the CUDA backend
  std::vector<int> ordinals;       ///< visible CUDA devices
  std::vector<std::string> names;  ///< their names, same order
  std::string reason;              ///< why none is usable ("" when some are)
};

/// Parses the probe's JSON line ({"cuda_build", "devices": [{"ordinal", "name", ...}],
/// "reason"}). Never throws: malformed text gives an empty inventory whose reason says so.
GpuInventory parse_gpu_probe(std::string_view json);

/// Runs `stage_executable --probe-gpus` (at most `timeout_s` seconds) and parses its output.
/// Never throws: a missing executable, a crash or a timeout give an empty inventory with the
/// reason.
GpuInventory probe_gpus(const std::filesystem::path& stage_executable, int timeout_s = 30);

/// The integrate workers to start.
struct IntegratePlacement {
  /// Per integrate worker, its azflow-stage --device value: "cpu" or a CUDA ordinal "N".
  std::vector<std::string> devices;
  bool on_gpu = false;
  /// The one line the daemon logs at start, e.g. "integrate backend: CUDA, 4 workers on each of
  /// cuda:0 (NVIDIA H100), cuda:1 (...)" or "integrate backend: CPU (no CUDA device visible)".
  std::string summary;
};

/// Decides the placement. GPU when the configuration allows GPUs (gpus = "all" or a non-empty
/// list), azflow-stage has CUDA and a device is visible: workers_per_gpu workers per device,
/// device-major (cuda:0's workers first). Else `cpu_workers` CPU workers, the summary saying why.
/// Throws azflow::Error (kConfig, naming gpu.gpus) if a listed device is not visible while others
/// are.
IntegratePlacement place_integrate_workers(const GpuConfig& config, const GpuInventory& inventory,
                                           std::size_t cpu_workers);

/// The device name a worker reports for a --device value: "cpu" or "cuda:N".
std::string device_label(const std::string& device_arg);

}  // namespace azflow::daemon
