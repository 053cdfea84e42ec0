#include "daemon/ring_budget.hpp"

#include <sys/statvfs.h>

#include <string>

#include "daemon/job_setup.hpp"

namespace azflow::daemon {

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kPage = 4096;

std::size_t page_round(std::size_t bytes) noexcept { return (bytes + kPage - 1) / kPage * kPage; }

std::string mib(std::size_t bytes) { return std::to_string((bytes + kMiB - 1) / kMiB) + " MiB"; }

}  // namespace

RingSlotBytes ring_slot_bytes(const RingsConfig& rings, std::size_t frame_bytes,
                              std::size_t bins) noexcept {
  return {resolve_slot_bytes(rings.compressed_slot_mib, frame_bytes + 4096),
          resolve_slot_bytes(rings.frames_slot_mib, frame_bytes),
          resolve_slot_bytes(rings.results_slot_mib, 4 * bins * sizeof(double))};
}

std::size_t ring_total_bytes(const RingsConfig& rings, const RingSlotBytes& slots) noexcept {
  return rings.compressed_slots * page_round(slots.compressed) +
         rings.frames_slots * page_round(slots.frames) +
         rings.results_slots * page_round(slots.results) + 3 * kMiB;
}

std::size_t free_bytes(const std::filesystem::path& folder) noexcept {
  struct statvfs s {};
  if (::statvfs(folder.c_str(), &s) != 0) return 0;
  return static_cast<std::size_t>(s.f_bavail) * static_cast<std::size_t>(s.f_frsize);
}

void check_ring_budget(const RingsConfig& rings, const JobSpec& spec, std::size_t frame_bytes,
                       std::size_t shm_free_bytes) {
  const std::size_t bins = spec_bins(spec);
  const RingSlotBytes slots = ring_slot_bytes(rings, frame_bytes, bins);
  const std::size_t need = ring_total_bytes(rings, slots);
  const std::size_t limit = rings.max_total_mib * kMiB;
  const bool over_limit = rings.max_total_mib > 0 && need > limit;
  if (!over_limit && need <= shm_free_bytes) return;
  const std::size_t results = rings.results_slots * slots.results;
  const bool by_bins = 2 * results > need;
  const std::string field =
      by_bins ? (spec.settings.npt_azim > 1 ? "settings.npt_azim" : "settings.npt_rad")
              : "datasets";
  const std::string why = by_bins
                              ? std::to_string(bins) + " bins per result row: results ring " +
                                    std::to_string(rings.results_slots) + " x " + mib(slots.results)
                              : std::to_string(frame_bytes) + " bytes per frame: frames ring " +
                                    std::to_string(rings.frames_slots) + " x " + mib(slots.frames);
  const std::string cap = over_limit ? "the limit rings.max_total_mib is " + mib(limit)
                                     : "/dev/shm can give " + mib(shm_free_bytes);
  throw FieldError(field, "the job's shared-memory rings need " + mib(need) + " (" + why +
                              "), but " + cap + "; use fewer bins or smaller ring slots");
}

}  // namespace azflow::daemon
