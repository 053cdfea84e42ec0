// The daemon's operator verbs (retry, workers, stats, config, drain), admission checks on
// enqueue (draining, allowed roots, `after` ids) and job dependencies (SLURM afterok).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "base/error.hpp"
#include "daemon/daemon.hpp"
#include "daemon/path_policy.hpp"
#include "stages/reduce/shard_file.hpp"
#include "stages/source/input_policy.hpp"

namespace azflow::daemon {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::chrono::seconds kRecentWindow{10};
constexpr std::size_t kMaxRetryShardFrames = 50;

/// Why a dependency that ended in `state` fails its dependents ("" = it succeeded).
std::string dependency_failure(std::int64_t dep, const std::optional<JobRecord>& record) {
  const std::string name = "dependency job " + std::to_string(dep);
  if (!record) return name + " does not exist";
  switch (record->state) {
    case JobState::kSucceeded:
      return "";
    case JobState::kCancelled:
      return name + " was cancelled";
    case JobState::kWarning:
      return name + " ended with a warning (after needs succeeded): " + record->error;
    default:
      return name + " " + std::string(job_state_name(record->state)) +
             (record->error.empty() ? "" : ": " + record->error);
  }
}

/// Contiguous runs of `frames` (sorted), each at most kMaxRetryShardFrames long.
std::vector<std::pair<std::int64_t, std::int64_t>> runs(const std::vector<std::int64_t>& frames) {
  std::vector<std::pair<std::int64_t, std::int64_t>> out;  // (first, count)
  for (const std::int64_t f : frames) {
    if (!out.empty() && out.back().first + out.back().second == f &&
        out.back().second < static_cast<std::int64_t>(kMaxRetryShardFrames)) {
      ++out.back().second;
    } else {
      out.emplace_back(f, 1);
    }
  }
  return out;
}

/// The file an output path names once its folder is canonical (the file itself not resolved:
/// the job replaces that name, never writes through it).
std::filesystem::path output_key(const std::string& output) {
  std::error_code ec;
  const std::filesystem::path p(output);
  const auto folder = std::filesystem::weakly_canonical(p.parent_path(), ec);
  return (ec ? p.parent_path().lexically_normal() : folder) / p.filename();
}

/// Refuses a dataset, mask, dark or flat that is a FIFO, a device or a folder, with stat(2) only
/// (opening a FIFO would block the main loop until a writer came). Throws FieldError.
void check_input_kinds(const JobSpec& spec) {
  const auto check = [](const std::string& path, const std::string& field) {
    try {
      (void)source::check_input_file(path, "");
    } catch (const Error& e) {
      throw FieldError(field, e.what());
    }
  };
  for (std::size_t i = 0; i < spec.datasets.size(); ++i) {
    check(spec.datasets[i], "spec.datasets[" + std::to_string(i) + "]");
  }
  for (const auto& [field, image] :
       {std::pair{"spec.mask_path", &spec.mask_path}, std::pair{"spec.dark_path", &spec.dark_path},
        std::pair{"spec.flat_path", &spec.flat_path}}) {
    if (!image->empty()) check(image->substr(0, image->find("::")), field);
  }
}

}  // namespace

std::optional<OutputBinding> Daemon::claim_output(const JobSpec& spec) const {
  if (spec.output_path.empty()) return std::nullopt;
  OutputBinding binding = bind_output_folder(spec.output_path);
  const std::filesystem::path name = std::filesystem::path(spec.output_path).filename();
  const std::filesystem::path key = binding.folder / name;
  const std::filesystem::path default_dir = config_.state_dir / "outputs";
  if (!path_within(key, {default_dir}) && !path_within(key, config_.allowed_output_roots)) {
    throw FieldError("spec.output_path", "'" + key.string() +
                                             "' is outside the allowed_output_roots of this "
                                             "daemon (its folder made canonical)");
  }
  struct stat st {};
  if (::lstat(key.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      throw FieldError("spec.output_path", "output " + spec.output_path + " is a folder");
    }
    if (!spec.overwrite) {
      throw FieldError("spec.output_path",
                       "output " + spec.output_path +
                           " already exists (use --overwrite, JSON \"overwrite\": true, to "
                           "replace it)");
    }
  }
  const auto refuse = [&](std::int64_t id, const char* what) {
    throw FieldError("spec.output_path",
                     "output " + spec.output_path + " is already the output of job " +
                         std::to_string(id) + " (" + what +
                         "); give another output path or wait for job " + std::to_string(id));
  };
  for (const auto& [id, job] : jobs_) {
    if (output_key(job.output) == key) refuse(id, job.started ? "running" : "queued");
  }
  for (const std::int64_t id : finishing_) {
    const auto record = store_->job(id);
    if (record && output_key(record->output_path) == key) refuse(id, "writing its output");
  }
  return binding;
}

void Daemon::check_admission(const EnqueueRequest& request) const {
  if (draining_) {
    throw Error(ErrorCategory::kConfig,
                "azflowd is draining: it accepts no new jobs (queued and running jobs still run; "
                "restart azflowd to accept jobs again)");
  }
  check_allowed_paths(request.spec, config_.allowed_input_roots, config_.allowed_output_roots,
                      config_.state_dir / "outputs");
  check_input_kinds(request.spec);
  if (!request.spec.output_path.empty()) {
    const auto folder = std::filesystem::path(request.spec.output_path).parent_path();
    std::error_code ec;
    if (!std::filesystem::is_directory(folder, ec)) {
      throw FieldError("spec.output_path", "folder " + folder.string() + " does not exist");
    }
  }
  for (std::size_t i = 0; i < request.after.size(); ++i) {
    if (!store_->job(request.after[i])) {
      throw FieldError("after[" + std::to_string(i) + "]",
                       "no job " + std::to_string(request.after[i]));
    }
  }
}

/// Drops the succeeded jobs from every held job's waiting list and fails a held job whose
/// dependency failed, was cancelled, ended with a warning or does not exist (its own dependents
/// fail in turn at the next call).
void Daemon::settle_dependencies() {
  std::vector<std::pair<std::int64_t, std::string>> failures;
  for (auto& [id, job] : jobs_) {
    std::string failure;
    std::erase_if(job.waiting_for, [&](std::int64_t dep) {
      // still queued, running or writing its output
      if (!failure.empty() || jobs_.contains(dep) || finishing_.contains(dep)) return false;
      failure = dependency_failure(dep, store_->job(dep));
      return failure.empty();
    });
    if (!failure.empty()) failures.emplace_back(id, failure);
  }
  for (const auto& [id, reason] : failures) {
    ActiveJob& job = jobs_.at(id);
    store_->set_job_state(id, JobState::kFailed, reason);
    log_event(job, "job failed: " + reason);
    spdlog::warn("job {} failed: {}", id, reason);
    jobs_.erase(id);
  }
}

void Daemon::observe_stage(const std::string& role, std::size_t worker, int pid,
                           const StageCounters* counters) {
  StageObservation& o = observed_[role + "/" + std::to_string(worker)];
  if (o.pid != pid) o = StageObservation{pid};
  if (counters == nullptr) return;
  const auto now = Clock::now();
  const std::uint64_t out = counters->frames_out;
  const double busy = counters->busy_s;
  if (o.at != Clock::time_point{}) {
    const double dt = std::chrono::duration<double>(now - o.at).count();
    if (dt > 0) {
      o.frames_per_s = static_cast<double>(out - std::min(out, o.frames_out)) / dt;
      o.busy_fraction = std::clamp((busy - o.busy_s) / dt, 0.0, 1.0);
    }
  }
  o.frames_out = out;
  o.busy_s = busy;
  o.at = now;
}

void Daemon::sample_throughput() {
  const auto c = sink_->counters();
  const auto now = Clock::now();
  throughput_.emplace_back(now, c.written + c.failed);
  while (throughput_.size() > 2 && now - throughput_.front().first > kRecentWindow) {
    throughput_.pop_front();
  }
}

nlohmann::json Daemon::rings_json() const {
  nlohmann::json rings = nlohmann::json::array();
  for (const auto* ring : {&compressed_, &frames_, &results_}) {
    if (!*ring) continue;
    const ipc::RingStats s = (*ring)->stats();
    rings.push_back({{"name", (*ring)->name()},
                     {"capacity", s.capacity},
                     {"slot_bytes", (*ring)->slot_bytes()},
                     {"ready", s.ready},
                     {"in_use", s.in_use},
                     {"fill", s.capacity == 0 ? 0.0
                                              : static_cast<double>(s.ready + s.in_use) /
                                                    static_cast<double>(s.capacity)}});
  }
  return rings;
}

nlohmann::json Daemon::retry(const RetryRequest& request) {
  if (shutdown_) throw Error(ErrorCategory::kConfig, "the daemon is shutting down");
  if (draining_) throw Error(ErrorCategory::kConfig, "azflowd is draining: it accepts no retries");
  if (finishing_.contains(request.job_id)) settle_sink();  // cancelled: its .partial output first
  const auto record = store_->job(request.job_id);
  const std::string name = "job " + std::to_string(request.job_id);
  if (!record) throw FieldError("job_id", "no " + name);
  if (!is_final(record->state)) {
    throw FieldError("job_id", name + " is " + std::string(job_state_name(record->state)) +
                                   ": only a finished job can be retried");
  }
  if (record->state == JobState::kSucceeded) {
    throw FieldError("job_id", name + " succeeded: nothing to retry");
  }
  if (record->spec.stream) {
    throw FieldError("job_id", name +
                                   " is a stream job: its images cannot be received again; "
                                   "enqueue it again for another series");
  }
  const std::vector<ShardRecord> shards = store_->shards(record->id);
  if (shards.empty()) {
    throw FieldError("job_id", name +
                                   " has no frames to retry (it failed before it was cut "
                                   "into shards: " +
                                   record->error + "); enqueue it again");
  }
  const std::filesystem::path dir = config_.state_dir / "jobs" / std::to_string(record->id);
  std::vector<std::int64_t> failed;
  for (const FrameErrorRecord& e :
       store_->frame_errors(record->id, static_cast<std::size_t>(record->frames_total))) {
    failed.push_back(e.frame_index);
  }
  RetryPlan plan;
  std::int64_t next_shard = shards.back().shard_id + 1, pending_shards = 0;
  for (const ShardRecord& s : shards) {
    if (s.state != ShardState::kDone) {
      ++pending_shards;
      continue;
    }
    if (!std::filesystem::exists(reduce::shard_done_path(dir, s.shard_id))) {
      throw FieldError("job_id", name + ": the results of shard " + std::to_string(s.shard_id) +
                                     " are gone; enqueue the job again");
    }
  }
  std::vector<std::int64_t> in_done;  // failed frames that lie in done shards
  for (const std::int64_t f : failed) {
    const bool done = std::any_of(shards.begin(), shards.end(), [&](const ShardRecord& s) {
      return s.state == ShardState::kDone && f >= s.first_frame &&
             f < s.first_frame + s.frame_count;
    });
    if (done) in_done.push_back(f);
  }
  for (const auto& [first, count] : runs(in_done)) {
    plan.new_shards.push_back({next_shard++, first, count});
  }
  plan.frames_from_done_shards = static_cast<std::int64_t>(in_done.size());
  // Every shard done and every frame fine, yet failed: its output could not be written (a
  // folder gone or full). The retry assembles the output again from the shard files, with the
  // output folder checked again as at enqueue (it may have been made anew).
  const bool reassemble =
      plan.new_shards.empty() && pending_shards == 0 && record->state == JobState::kFailed;
  if (plan.new_shards.empty() && pending_shards == 0 && !reassemble) {
    throw FieldError("job_id", name + " has no failed frames and no unfinished shards to retry");
  }
  if (reassemble) {
    if (const auto binding = claim_output(record->spec)) save_output_binding(dir, *binding);
  }
  store_->requeue_for_retry(record->id, plan);
  // A cancelled job is remembered as such by the stages: make it live again before its frames.
  broadcast(RetryJob{record->id});
  activate(*store_->job(record->id));
  if (const auto it = jobs_.find(record->id); it != jobs_.end()) {
    it->second.waiting_for.clear();  // its dependencies held it once already
    log_event(it->second, reassemble
                              ? std::string("retry: output assembled again from the "
                                            "shard files")
                              : "retry: " + std::to_string(in_done.size()) + " failed frames, " +
                                    std::to_string(pending_shards) + " unfinished shards");
    if (reassemble) finish_job(it->second);  // `it` dangles from here
  }
  spdlog::info("job {} retried: {} failed frames in {} new shards, {} unfinished shards{}",
               record->id, in_done.size(), plan.new_shards.size(), pending_shards,
               reassemble ? ", output assembled again" : "");
  return {{"job_id", record->id},
          {"state", "queued"},
          {"frames_retried", static_cast<std::int64_t>(in_done.size())},
          {"shards_queued", static_cast<std::int64_t>(plan.new_shards.size()) + pending_shards},
          {"reassembled", reassemble}};
}

nlohmann::json Daemon::workers(const WorkersRequest&) {
  nlohmann::json out = nlohmann::json::array();
  const auto ring_of = [&](const std::string& role) -> const std::optional<ipc::Ring>* {
    if (role == "decompress") return &compressed_;
    if (role == "integrate") return &frames_;
    if (role == "reducer") return &results_;
    return nullptr;
  };
  const auto add = [&](nlohmann::json row, const std::string& role) {
    const auto* ring = ring_of(role);
    row["ring"] = nullptr;
    row["ring_fill"] = nullptr;
    if (ring != nullptr && *ring) {
      const ipc::RingStats s = (*ring)->stats();
      row["ring"] = (*ring)->name();
      row["ring_fill"] = s.capacity == 0 ? 0.0
                                         : static_cast<double>(s.ready + s.in_use) /
                                               static_cast<double>(s.capacity);
    }
    out.push_back(std::move(row));
  };
  if (supervisor_) {
    for (const StageSlot& s : supervisor_->slots()) {
      const auto it = observed_.find(s.role + "/" + std::to_string(s.worker));
      const bool seen = it != observed_.end() && it->second.pid == s.pid;
      const StageObservation o = seen ? it->second : StageObservation{};
      const char* state = s.pid <= 0 ? "stopped" : s.identity.empty() ? "starting" : "running";
      add({{"role", s.role},
           {"worker", s.worker},
           {"pid", s.pid},
           {"device", s.device},
           {"state", state},
           {"restarts", s.restarts},
           {"frames_in", s.counters.frames_in},
           {"frames_out", s.counters.frames_out},
           {"failed", s.counters.failed},
           {"frames_per_s", o.frames_per_s},
           {"busy_fraction", o.busy_fraction}},
          s.role);
    }
  }
  const auto c = sink_->counters();
  add({{"role", "reducer"},
       {"worker", 0},
       {"pid", static_cast<std::int64_t>(::getpid())},
       {"device", "cpu"},
       {"state", results_ ? "running" : "idle"},
       {"restarts", 0},
       {"frames_in", c.written + c.failed},
       {"frames_out", c.written},
       {"failed", c.failed},
       {"frames_per_s", nullptr},
       {"busy_fraction", nullptr}},
      "reducer");
  return {{"workers", out}, {"pipeline_started", static_cast<bool>(supervisor_)}};
}

nlohmann::json Daemon::stats(const StatsRequest&) {
  const StoreTotals totals = store_->totals();
  nlohmann::json jobs = nlohmann::json::object();
  for (const JobState s : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                           JobState::kWarning, JobState::kFailed, JobState::kCancelled}) {
    const auto it = totals.jobs_by_state.find(s);
    jobs[std::string(job_state_name(s))] = it == totals.jobs_by_state.end() ? 0 : it->second;
  }
  const auto c = sink_->counters();
  const double uptime = std::chrono::duration<double>(Clock::now() - started_).count();
  const std::uint64_t since_start = c.written + c.failed;
  double recent = 0;
  if (throughput_.size() >= 2) {
    const double dt =
        std::chrono::duration<double>(throughput_.back().first - throughput_.front().first).count();
    if (dt > 0) {
      recent = static_cast<double>(throughput_.back().second - throughput_.front().second) / dt;
    }
  }
  return {{"uptime_s", uptime},
          {"draining", draining_},
          {"jobs", jobs},
          {"active_jobs", jobs_.size()},
          {"frames_done", totals.frames_done},
          {"frames_failed", totals.frames_failed},
          {"frames_since_start", since_start},
          {"frames_failed_since_start", c.failed},
          {"frames_per_s_recent", recent},
          {"frames_per_s_overall", uptime > 0 ? static_cast<double>(since_start) / uptime : 0.0},
          {"rings", rings_json()}};
}

nlohmann::json Daemon::config(const ConfigRequest&) {
  return {{"text", describe(config_)}, {"config", config_json(config_)}};
}

nlohmann::json Daemon::drain(const DrainRequest& request) {
  if (request.draining && !draining_) {
    spdlog::info("draining: no new jobs; {} accepted jobs still run", jobs_.size());
  } else if (!request.draining && draining_) {
    spdlog::info("undrained: accepting jobs again");
  }
  draining_ = request.draining;
  nlohmann::json active = nlohmann::json::array();
  for (const auto& [id, job] : jobs_) active.push_back(id);
  return {{"draining", draining_}, {"active_jobs", active}};
}

}  // namespace azflow::daemon
