#include "stages/reduce/reducer.hpp"

#include <algorithm>

#include "base/error.hpp"

namespace azflow::reduce {

void Reducer::open_shard(const std::filesystem::path& dir, const ShardFileHeader& header) {
  const Key key{header.job_id, header.shard_id};
  if (shards_.contains(key)) return;
  shards_.emplace(key, std::make_unique<ShardFileWriter>(dir, header));
}

bool Reducer::is_open(std::int64_t job_id, std::int64_t shard_id) const {
  return shards_.contains({job_id, shard_id});
}

AddOutcome Reducer::add(const FrameResult& result) {
  const auto it = shards_.find({result.job_id, result.shard_id});
  if (it == shards_.end()) {
    ++counters_.not_open;
    return AddOutcome::kNotOpen;
  }
  ShardFileWriter& shard = *it->second;
  const std::int64_t first = shard.header().first_frame;
  if (result.frame < first || result.frame >= first + shard.header().frame_count) {
    ++counters_.not_open;
    return AddOutcome::kNotOpen;
  }
  if (shard.has(result.frame)) {
    ++counters_.duplicates;
    return AddOutcome::kDuplicate;
  }
  if (result.ok && result.sums.size() == 4 * shard.header().bins) return add_ok(shard, result);
  const std::string reason =
      result.ok ? "frame " + std::to_string(result.frame) + ": integrate stage delivered " +
                      std::to_string(result.sums.size()) + " sums, expected " +
                      std::to_string(4 * shard.header().bins)
                : std::string(result.reason);
  shard.write_failed(result.frame, reason);
  ++counters_.failed;
  return AddOutcome::kFailed;
}

AddOutcome Reducer::add_ok(ShardFileWriter& shard, const FrameResult& result) {
  const std::size_t bins = shard.header().bins;
  frame_sums_.reset(bins);
  const auto part = [&](std::size_t k) { return result.sums.subspan(k * bins, bins); };
  std::ranges::copy(part(0), frame_sums_.signal.begin());
  std::ranges::copy(part(1), frame_sums_.variance.begin());
  std::ranges::copy(part(2), frame_sums_.normalization.begin());
  std::ranges::copy(part(3), frame_sums_.count.begin());
  intensity_.resize(bins);
  sigma_.resize(shard.header().with_errors ? bins : 0);
  integrate::finalize(frame_sums_, intensity_, sigma_);
  shard.write_ok(result.frame, intensity_, sigma_, frame_sums_);
  ++counters_.written;
  return AddOutcome::kWritten;
}

bool Reducer::complete(std::int64_t job_id, std::int64_t shard_id) const {
  const auto it = shards_.find({job_id, shard_id});
  return it != shards_.end() && it->second->complete();
}

std::vector<std::int64_t> Reducer::missing(std::int64_t job_id, std::int64_t shard_id) const {
  std::vector<std::int64_t> out;
  const auto it = shards_.find({job_id, shard_id});
  if (it == shards_.end()) return out;
  const ShardFileHeader& h = it->second->header();
  for (std::int64_t f = h.first_frame; f < h.first_frame + h.frame_count; ++f) {
    if (!it->second->has(f)) out.push_back(f);
  }
  return out;
}

std::vector<std::pair<std::int64_t, std::int64_t>> Reducer::open_keys() const {
  std::vector<Key> keys;
  for (const auto& [key, shard] : shards_) keys.push_back(key);
  return keys;
}

CommittedShard Reducer::commit_shard(std::int64_t job_id, std::int64_t shard_id) {
  const std::unique_ptr<ShardFileWriter> shard = take_shard(job_id, shard_id);
  return {shard->commit(), shard->frames_in(), shard->frames_failed()};
}

std::unique_ptr<ShardFileWriter> Reducer::take_shard(std::int64_t job_id, std::int64_t shard_id) {
  const auto it = shards_.find({job_id, shard_id});
  if (it == shards_.end()) {
    throw Error(ErrorCategory::kInternal, "reducer: job " + std::to_string(job_id) + " shard " +
                                              std::to_string(shard_id) + " is not open");
  }
  std::unique_ptr<ShardFileWriter> shard = std::move(it->second);
  shards_.erase(it);
  ++counters_.shards_committed;
  return shard;
}

void Reducer::drop_job(std::int64_t job_id) {
  for (auto it = shards_.begin(); it != shards_.end();) {
    if (it->first.first != job_id) {
      ++it;
      continue;
    }
    it->second->discard();
    it = shards_.erase(it);
  }
}

}  // namespace azflow::reduce
