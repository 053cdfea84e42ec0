// Poison shards (issue 14, finding 6; docs/security.md "Stage crashes"): a shard whose frames
// crash a stage again and again is failed alone. Every crash of a stage process is blamed on the
// shards whose frames it held (the slots Ring::reclaim gives back: the frame it was working on);
// a shard blamed config.shard_crash_limit times has its missing frames failed with the reason
// instead of being redone once more, and the crashes it caused are taken off the slots' restart
// counts, so it neither takes the stage down (back-off) for other jobs nor loops for ever.

#include <spdlog/spdlog.h>

#include "daemon/daemon.hpp"

namespace azflow::daemon {

bool Daemon::blame_shards(const StageExit& exit, const std::vector<ipc::SlotHeader>& held,
                          std::chrono::steady_clock::time_point now) {
  std::erase_if(shard_crashes_, [&](const auto& kv) {  // shards of jobs that ended meanwhile
    return !jobs_.contains(kv.first.first) && !guest_jobs_.contains(kv.first.first);
  });
  std::map<std::pair<std::int64_t, std::int64_t>, std::vector<std::int64_t>> by_shard;
  for (const auto& h : held) {
    by_shard[{static_cast<std::int64_t>(h.job_id), static_cast<std::int64_t>(h.shard_id)}]
        .push_back(static_cast<std::int64_t>(h.frame_index));
  }
  const StageSlot& slot = supervisor_->slots()[exit.slot];
  bool poisoned = false;
  for (const auto& [key, frames] : by_shard) {
    if (!jobs_.contains(key.first) && !guest_jobs_.contains(key.first)) continue;  // ended
    auto& crashes = shard_crashes_[key];
    crashes.emplace_back(exit.slot, now);
    if (crashes.size() < config_.shard_crash_limit) {
      send_frames(key.first, key.second, frames);
      continue;
    }
    for (const auto& [s, at] : crashes) supervisor_->forget_crash(s, at);
    const std::string reason = "stage " + slot.role + "/" + std::to_string(slot.worker) +
                               " crashed " + std::to_string(crashes.size()) +
                               " times on this shard (last: " + exit.how + ", holding frame " +
                               std::to_string(frames.front()) + "); its frames are not redone";
    shard_crashes_.erase(key);
    fail_poison_shard(key.first, key.second, reason);
    poisoned = true;
  }
  return poisoned;
}

void Daemon::fail_poison_shard(std::int64_t job_id, std::int64_t shard, const std::string& reason) {
  std::erase_if(source_pending_, [&](const auto& kv) {
    return kv.second.job == job_id && kv.second.shard == shard;
  });
  if (const auto guest = guest_shards_.find({job_id, shard}); guest != guest_shards_.end()) {
    const GuestJob& g = guest_jobs_.at(job_id);
    spdlog::error("guest job {} shard {} (job {} of {}): {}", job_id, shard, g.job, g.coordinator,
                  reason);
    const nlohmann::json key = {{"node", network_->node()}, {"job", g.job}, {"shard", shard}};
    for (const std::int64_t f : guest->second.expected) {
      if (guest->second.sent.contains(f)) continue;
      nlohmann::json row = key;
      row.update({{"type", "row"}, {"frame", f}, {"ok", false}, {"reason", reason}});
      (void)network_->send_to_coordinator(g.coordinator, row);
    }
    nlohmann::json end = key;
    end["type"] = "shard_end";
    (void)network_->send_to_coordinator(g.coordinator, end);
    guest_shards_.erase(guest);
    return;
  }
  const auto it = jobs_.find(job_id);
  if (it == jobs_.end() || !sink_->is_open(job_id, shard)) return;
  const std::vector<std::int64_t> missing = sink_->missing(job_id, shard);
  spdlog::error("job {} shard {}: {}; {} frames failed", job_id, shard, reason, missing.size());
  log_event(it->second, "shard " + std::to_string(shard) + " failed: " + reason + " (" +
                            std::to_string(missing.size()) + " frames)");
  for (const std::int64_t f : missing) {
    sink_->add(OwnedFrameResult{
        job_id, shard, f, false, "frame " + std::to_string(f) + ": " + reason, {}});
  }
}

}  // namespace azflow::daemon
