#pragma once
// What a job's shared-memory rings cost, checked at enqueue (issue 14): the three rings
// (compressed, frames, results) are reserved whole in /dev/shm with posix_fallocate when a job
// starts, so a job whose rings cannot fit is refused before it is queued, with an error naming
// the request field that makes them big (settings.npt_rad, settings.npt_azim or the frame size).

#include <cstddef>
#include <filesystem>

#include "daemon/config.hpp"
#include "daemon/job_spec.hpp"

namespace azflow::daemon {

/// Slot sizes in bytes of the three rings for a job (the same sizes ensure_pipeline creates).
struct RingSlotBytes {
  std::size_t compressed = 0, frames = 0, results = 0;
};

/// Slot sizes for frames of `frame_bytes` bytes and result rows of `bins` values (4 doubles per
/// bin), with the configured or auto slot sizes of `rings` (resolve_slot_bytes).
[[nodiscard]] RingSlotBytes ring_slot_bytes(const RingsConfig& rings, std::size_t frame_bytes,
                                            std::size_t bins) noexcept;

/// Bytes the three rings of `slots` reserve in /dev/shm: slots x slot size (page-rounded) per
/// ring plus 1 MiB per ring for headers and slot controls (an upper bound of ipc::Ring's layout).
[[nodiscard]] std::size_t ring_total_bytes(const RingsConfig& rings,
                                           const RingSlotBytes& slots) noexcept;

/// Bytes free for an unprivileged writer in the file system of `folder` (statvfs f_bavail x
/// f_frsize); 0 if statvfs fails.
[[nodiscard]] std::size_t free_bytes(const std::filesystem::path& folder) noexcept;

/// Throws FieldError when the rings of `spec` (frames of `frame_bytes`) need more than
/// rings.max_total_mib (when non-zero) or more than `shm_free_bytes` (what /dev/shm has free plus
/// the bytes of this daemon's rings there now, which it frees before re-creating them bigger).
/// The field is settings.npt_azim (2D) or settings.npt_rad when the results ring is the larger
/// part, else datasets (the frame size).
void check_ring_budget(const RingsConfig& rings, const JobSpec& spec, std::size_t frame_bytes,
                       std::size_t shm_free_bytes);

}  // namespace azflow::daemon
