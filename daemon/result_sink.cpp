#include "daemon/result_sink.hpp"
#include "daemon/json_text.hpp"

#include <exception>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "base/error.hpp"
#include "daemon/job_output.hpp"
#include "stages/integrate/units.hpp"

namespace azflow::daemon {

namespace {
/// How often at most a live header repeats the job's axes (docs/protocol.md "Live results").
constexpr std::chrono::seconds kAxesEvery{1};
}  // namespace

ResultSink::ResultSink(zmq::context_t& context, const std::string& live_endpoint, int live_hwm,
                       std::chrono::milliseconds delay_per_frame)
    : live_(context, zmq::socket_type::pub), delay_(delay_per_frame) {
  live_.set(zmq::sockopt::linger, 0);
  live_.set(zmq::sockopt::sndhwm, live_hwm);
  live_.bind(live_endpoint);
}

ResultSink::~ResultSink() {
  reducer_thread_.wait_idle();
  output_thread_.wait_idle();
}

void ResultSink::set_job(std::int64_t job, std::string unit, std::optional<nlohmann::json> axes,
                         FrameOrigins origins) {
  const std::lock_guard lock(mutex_);
  live_jobs_[job] = LiveJob{std::move(unit), std::move(axes), std::move(origins), {}};
}

void ResultSink::set_axes(std::int64_t job, const nlohmann::json& axes) {
  const std::lock_guard lock(mutex_);
  const auto it = live_jobs_.find(job);
  if (it != live_jobs_.end() && !it->second.axes) it->second.axes = axes;
}

void ResultSink::open_shard(const std::filesystem::path& dir,
                            const reduce::ShardFileHeader& header) {
  const std::lock_guard lock(mutex_);
  if (committing_.contains({header.job_id, header.shard_id})) return;
  reducer_.open_shard(dir, header);
}

void ResultSink::drop_job(std::int64_t job) {
  const std::lock_guard lock(mutex_);
  reducer_.drop_job(job);
  live_jobs_.erase(job);
  pending_.erase(job);
}

std::int64_t ResultSink::frames_pending(std::int64_t job) const {
  const std::lock_guard lock(mutex_);
  const auto it = pending_.find(job);
  return it == pending_.end() ? 0 : it->second;
}

bool ResultSink::is_open(std::int64_t job, std::int64_t shard) const {
  const std::lock_guard lock(mutex_);
  return reducer_.is_open(job, shard) || committing_.contains({job, shard});
}

std::vector<std::int64_t> ResultSink::missing(std::int64_t job, std::int64_t shard) const {
  const std::lock_guard lock(mutex_);
  return reducer_.missing(job, shard);
}

std::vector<std::pair<std::int64_t, std::int64_t>> ResultSink::open_keys() const {
  const std::lock_guard lock(mutex_);
  return reducer_.open_keys();
}

std::size_t ResultSink::open_shards() const {
  const std::lock_guard lock(mutex_);
  return reducer_.open_shards();
}

reduce::ReducerCounters ResultSink::counters() const {
  const std::lock_guard lock(mutex_);
  return reducer_.counters();
}

void ResultSink::add(ipc::ReadSlot slot) {
  // std::function needs a copyable task: the move-only slot rides in a shared_ptr
  auto held = std::make_shared<ipc::ReadSlot>(std::move(slot));
  reducer_thread_.post([this, held] {
    const ipc::SlotHeader& h = held->header();
    if (h.status == ipc::SlotStatus::kCancelled) {
      return;  // left in the rings by a cancel of this job, maybe retried since: its shard redoes
               // it
    }
    const auto payload = held->payload();
    reduce({static_cast<std::int64_t>(h.job_id), static_cast<std::int64_t>(h.shard_id),
            static_cast<std::int64_t>(h.frame_index), h.status == ipc::SlotStatus::kOk,
            h.reason_view(),
            std::span<const double>(reinterpret_cast<const double*>(payload.data()),
                                    payload.size() / sizeof(double))});
    held->release();
    if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
  });
}

void ResultSink::add(OwnedFrameResult result) {
  auto held = std::make_shared<OwnedFrameResult>(std::move(result));
  reducer_thread_.post([this, held] {
    reduce({held->job_id, held->shard_id, held->frame, held->ok, held->reason, held->sums});
  });
}

void ResultSink::assemble(OutputTask task) {
  auto held = std::make_shared<OutputTask>(std::move(task));
  output_thread_.post([this, held] { write_output(*held); });
}

std::vector<SinkEvent> ResultSink::take_events() {
  const std::lock_guard lock(mutex_);  // taken events end the shards' "committing" state
  std::vector<SinkEvent> events;
  {
    const std::lock_guard events_lock(events_mutex_);
    events = std::exchange(events_, {});
  }
  for (const SinkEvent& event : events) {
    const auto* c = std::get_if<ShardCommittedEvent>(&event);
    if (c == nullptr) continue;
    committing_.erase({c->job, c->shard});
    // the main loop counts these frames in the store now (or the job ends)
    if (const auto it = pending_.find(c->job); it != pending_.end()) {
      it->second -= static_cast<std::int64_t>(c->frames);
      if (it->second <= 0) pending_.erase(it);
    }
  }
  return events;
}

void ResultSink::wait_reducer_idle() { reducer_thread_.wait_idle(); }

void ResultSink::wait_idle() {
  reducer_thread_.wait_idle();
  output_thread_.wait_idle();
}

void ResultSink::push(SinkEvent event) {
  const std::lock_guard lock(events_mutex_);
  events_.push_back(std::move(event));
}

/// Adds one frame (reducer thread); commits its shard, outside the lock, when it completes it.
void ResultSink::reduce(reduce::FrameResult result) {
  std::unique_ptr<reduce::ShardFileWriter> complete;
  {
    const std::lock_guard lock(mutex_);
    std::string reason;  // a failed frame's reason, naming its own file and dataset
    if (const auto it = live_jobs_.find(result.job_id); !result.ok && it != live_jobs_.end()) {
      reason = it->second.origins.attribute(result.frame, result.reason);
      result.reason = reason;
    }
    const reduce::AddOutcome outcome = reducer_.add(result);
    if (outcome == reduce::AddOutcome::kWritten || outcome == reduce::AddOutcome::kFailed)
      ++pending_[result.job_id];
    if (outcome == reduce::AddOutcome::kFailed) {
      push(FrameFailedEvent{result.job_id, result.shard_id, result.frame,
                            std::string(result.reason)});
      publish(result.job_id, result.frame, false, result.reason);
    } else if (outcome == reduce::AddOutcome::kWritten) {
      publish(result.job_id, result.frame, true, {});
    }
    if (reducer_.complete(result.job_id, result.shard_id)) {
      complete = reducer_.take_shard(result.job_id, result.shard_id);
      committing_.insert({result.job_id, result.shard_id});
    }
  }
  if (complete) commit(std::move(complete));
}

void ResultSink::commit(std::unique_ptr<reduce::ShardFileWriter> shard) {
  const reduce::ShardFileHeader& h = shard->header();
  ShardCommittedEvent event{h.job_id, h.shard_id, shard->frames_in(), shard->frames_failed(), {}};
  try {
    (void)shard->commit();
  } catch (const std::exception& e) {
    event.error = e.what();
    shard->discard();
  }
  push(std::move(event));
}

/// Publishes one frame on the live socket (reducer thread, under mutex_: reads the reducer's last
/// row). PUB never blocks: a subscriber past its high-water mark loses messages, the pipeline not.
void ResultSink::publish(std::int64_t job, std::int64_t frame, bool ok, std::string_view reason) {
  const auto it = live_jobs_.find(job);
  if (it == live_jobs_.end()) return;
  LiveJob& live = it->second;
  nlohmann::json header = {
      {"job", job}, {"frame", frame}, {"status", ok ? "ok" : "failed"}, {"unit", live.unit}};
  if (!ok) header["reason"] = reason;
  // The axes ride on frame 0, the first frame published and then at most once per second, so a
  // subscriber that joins late has them within a second; every header names where to fetch them.
  header["axes_url"] = "/api/v1/jobs/" + std::to_string(job) + "/axes";
  const auto now = std::chrono::steady_clock::now();
  if (live.axes && (frame == 0 || !live.axes_sent || now - *live.axes_sent >= kAxesEvery)) {
    header["radial"] = live.axes->at("radial_centers");
    if (!live.axes->at("azimuthal_centers").empty())
      header["azimuthal"] = live.axes->at("azimuthal_centers");
    live.axes_sent = now;
  }
  const std::string topic = "job." + std::to_string(job);
  const std::string text = dump_escaped(header);
  const auto I = ok ? reducer_.last_intensity() : std::span<const float>();
  const auto sigma = ok ? reducer_.last_sigma() : std::span<const float>();
  const auto more = zmq::send_flags::sndmore | zmq::send_flags::dontwait;
  (void)live_.send(zmq::buffer(topic), more);
  (void)live_.send(zmq::buffer(text), more);
  (void)live_.send(zmq::const_buffer(I.data(), I.size_bytes()), more);
  (void)live_.send(zmq::const_buffer(sigma.data(), sigma.size_bytes()), zmq::send_flags::dontwait);
}

/// Assembles one job's output (output thread) and reports the job's final state: the task's, or
/// failed (cancelled stays cancelled) with the output error appended to the reason.
void ResultSink::write_output(const OutputTask& t) {
  OutputWrittenEvent event{t.job_id, t.state, t.reason};
  try {
    const auto out = assemble_output(t.job_id, t.spec, t.frames_total, t.dir, t.shards, t.axes,
                                     t.output, t.finish);
    spdlog::info("job {}: {} ({} frames written, {} failed) -> {}", t.job_id,
                 job_state_name(t.state), out.frames_written, out.failed.size(), out.path.string());
    if (t.finish && t.state == JobState::kSucceeded) {  // kept otherwise: `retry` needs them
      for (const auto& entry : std::filesystem::directory_iterator(t.dir)) {
        if (entry.path().extension() == ".done") std::filesystem::remove(entry.path());
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("job {}: writing the output failed: {}", t.job_id, e.what());
    if (event.state != JobState::kCancelled) event.state = JobState::kFailed;
    event.reason = (event.reason.empty() ? "" : event.reason + "; ") + "output: " + e.what();
  }
  push(std::move(event));
}

}  // namespace azflow::daemon
