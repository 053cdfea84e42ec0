#include "stages/integrate/integrate_stage.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "base/error.hpp"
#include "daemon/job_setup.hpp"
#include "stages/integrate/cpu_integrator.hpp"
#include "stages/integrate/cuda_integrator.hpp"
#include "stages/integrate/plan_cache.hpp"

namespace azflow::integrate {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMaxCachedPlans = 2;
constexpr std::chrono::seconds kJobConfigTimeout{30};
/// GPU batches: at most this many frames per launch, and at most this many bytes of sums per
/// batch (2D results are large: 360 x 1000 bins = 11.5 MB per frame).
constexpr std::size_t kMaxGpuBatch = 8;
constexpr std::size_t kMaxGpuBatchSumBytes = std::size_t{64} << 20;
/// Exit status of a worker whose GPU failed (azflow-stage's documented code).
constexpr int kExitCudaError = 3;

/// A job's plan and integrator (CPU or CUDA, per the stage's device), or why there is none.
struct JobPlan {
  std::int64_t job = 0;
  std::unique_ptr<CpuIntegrator> integrator;
  std::unique_ptr<CudaIntegrator> gpu;
  std::string error;
};

/// A batch of frames on the GPU: the input slots stay held until their results are committed.
struct GpuBatch {
  std::vector<ipc::ReadSlot> slots;
  CudaIntegrator* integrator = nullptr;
  Clock::time_point submitted;
};

/// A CUDA failure: logs it and ends the process at once, without releasing the ring slots it
/// holds, so that the daemon's reclaim returns their frames to be redone by another worker (a
/// normal return would release them through the slots' destructors and lose the frames).
[[noreturn]] void exit_on_cuda_error(const CudaError& e) {
  spdlog::critical("integrate: {}; exiting so that this worker's frames are redone", e.what());
  spdlog::default_logger()->flush();
  std::_Exit(kExitCudaError);
}

class IntegrateStage {
 public:
  explicit IntegrateStage(daemon::StageRuntime& rt)
      : rt_(rt),
        frames_(daemon::open_stage_ring(rt.instance, "frames")),
        results_(daemon::open_stage_ring(rt.instance, "results")) {
    if (!rt.plan_dir.empty()) {
      PlanCacheOptions options{rt.plan_dir, rt.plan_cache_max_bytes};
      options.store_in_background = true;  // integrate while the file is written and fsynced
      options.on_background_note = [](const std::string& note) {
        spdlog::warn("integrate: plan folder: {}", note);
      };
      plan_folder_.emplace(std::move(options));
    }
  }

  int run() {
    if (rt_.gpu_device >= 0) return run_gpu();
    const auto on_message = [this](const daemon::DaemonMessage& m) { rt_.note_cancel(m); };
    while (!rt_.should_stop()) {
      rt_.heartbeat();
      while (auto message = rt_.link.receive(std::chrono::milliseconds(0))) on_message(*message);
      auto in = frames_.acquire_read(daemon::kStagePollInterval);
      if (!in) continue;
      rt_.crash_if_asked(in->header());
      ++rt_.counters.frames_in;
      const auto job = static_cast<std::int64_t>(in->header().job_id);
      JobPlan* plan = rt_.job_cancelled(job) ? nullptr : &plan_for(job);
      auto out = daemon::wait_write(rt_, results_, on_message, [] { return false; });
      if (!out) break;
      const auto start = Clock::now();
      if (!integrate_slot(plan, *in, *out)) ++rt_.counters.failed;
      out->commit();  // commit downstream before releasing upstream (crash recovery)
      in->release();
      ++rt_.counters.frames_out;
      busy_ += Clock::now() - start;
      rt_.counters.busy_s = std::chrono::duration<double>(busy_).count();
      rt_.delay();
    }
    return 0;
  }

 private:
  // ------------------------------------------------------------------ GPU backend
  //
  // Batches of up to max_batch ready frames of one job and dtype are submitted to the job's
  // CudaIntegrator (two buffer sets: while one batch computes the next one's frames are copied,
  // straight from the pinned frames ring). A batch is collected when the integrator has no free
  // buffer set or no more frames are ready; each frame's sums are then written to a results slot,
  // committed, and only then is its input slot released (the crash-recovery order).

  int run_gpu() {
    try {
      pin_frames_ring();
      while (!rt_.should_stop()) {
        rt_.heartbeat();
        while (auto message = rt_.link.receive(std::chrono::milliseconds(0))) note(*message);
        const bool submitted = fill_and_submit();
        if (!in_flight_.empty() && (!submitted || !can_submit_next())) collect_oldest();
      }
      while (!in_flight_.empty() && collect_oldest()) {
      }
      abandon_in_flight();
    } catch (const CudaError& e) {
      exit_on_cuda_error(e);
    }
    return 0;
  }

  void note(const daemon::DaemonMessage& message) { rt_.note_cancel(message); }

  /// Registers the frames ring's payloads as pinned memory, so that frame copies are DMA from the
  /// ring itself. Without it (e.g. RLIMIT_MEMLOCK too low) copies still work, staged by the driver.
  void pin_frames_ring() {
    const auto area = frames_.payload_area();
    try {
      pinned_ = std::make_unique<PinnedHostRegion>(rt_.gpu_device, area.data(), area.size());
      spdlog::info("integrate: CUDA device {}, frames ring pinned ({} MiB)", rt_.gpu_device,
                   area.size() >> 20);
    } catch (const CudaError& e) {
      spdlog::warn("integrate: frames ring not pinned, copies will be staged: {}", e.what());
    }
  }

  /// True if the integrator of the held slot's job (or, with none held, of the last batch) has
  /// a free buffer set.
  [[nodiscard]] bool can_submit_next() const {
    return last_gpu_ == nullptr || last_gpu_->can_submit();
  }

  /// The next input slot: the one set aside by the last batch, or a new one from the ring.
  std::optional<ipc::ReadSlot> next_input(std::chrono::milliseconds timeout) {
    if (held_) {
      std::optional<ipc::ReadSlot> slot = std::move(held_);
      held_.reset();
      return slot;
    }
    auto slot = frames_.acquire_read(timeout);
    if (!slot) return slot;
    rt_.crash_if_asked(slot->header());
    ++rt_.counters.frames_in;
    return slot;
  }

  /// Why a frame cannot go to the GPU ("" if it can): cancelled job, no plan, bad slot.
  std::string gpu_refusal(JobPlan* plan, const ipc::ReadSlot& in) const {
    if (plan == nullptr) return "job cancelled";
    if (!plan->gpu) return plan->error;
    const ipc::SlotHeader& h = in.header();
    if (h.dtype > static_cast<std::uint32_t>(kLastDType)) {
      return "frame slot has an unknown dtype " + std::to_string(h.dtype);
    }
    const FrameView view{in.payload().data(), static_cast<DType>(h.dtype), h.rows, h.cols};
    if (view.rows != plan->gpu->plan().rows() || view.cols != plan->gpu->plan().cols()) {
      return "frame shape " + std::to_string(h.rows) + " x " + std::to_string(h.cols) +
             " does not match the detector " + std::to_string(plan->gpu->plan().rows()) + " x " +
             std::to_string(plan->gpu->plan().cols());
    }
    if (view.bytes() > in.payload().size()) return "frame slot holds fewer bytes than its shape";
    return "";
  }

  /// Gathers up to max_batch ready frames of one job and dtype and submits them; frames that
  /// cannot be integrated are answered at once. False if nothing was submitted.
  bool fill_and_submit() {
    std::vector<ipc::ReadSlot> batch;
    JobPlan* batch_plan = nullptr;
    std::size_t limit = kMaxGpuBatch;
    const auto first_wait = in_flight_.empty() ? daemon::kStagePollInterval : kNoWait;
    while (batch.size() < limit) {
      auto in = next_input(batch.empty() ? first_wait : kNoWait);
      if (!in) break;
      const ipc::SlotHeader& h = in->header();
      const auto job = static_cast<std::int64_t>(h.job_id);
      if (h.status != ipc::SlotStatus::kOk) {  // failed or cancelled upstream: passed on
        if (!answer_now(*in, "")) return !batch.empty() && submit(batch, *batch_plan);
        continue;
      }
      if (!batch.empty() && (job != batch_plan->job || h.dtype != batch.front().header().dtype)) {
        held_ = std::move(in);
        break;
      }
      JobPlan* plan = nullptr;
      if (!rt_.job_cancelled(job)) {
        if (batch.empty()) drain_unless_cached(job);
        plan = &plan_for(job);
      }
      const std::string refusal = gpu_refusal(plan, *in);
      if (!refusal.empty()) {
        const auto status =
            plan == nullptr ? ipc::SlotStatus::kCancelled : ipc::SlotStatus::kFailed;
        if (!answer_now(*in, refusal, status)) {
          return !batch.empty() && submit(batch, *batch_plan);
        }
        continue;
      }
      if (batch.empty()) {
        batch_plan = plan;
        limit = plan->gpu->max_frames(static_cast<DType>(h.dtype));
        last_gpu_ = plan->gpu.get();
        if (!plan->gpu->can_submit()) {  // its buffer sets are busy: make room first
          held_ = std::move(in);
          return false;
        }
      }
      batch.push_back(std::move(*in));
    }
    return !batch.empty() && submit(batch, *batch_plan);
  }

  bool submit(std::vector<ipc::ReadSlot>& batch, JobPlan& plan) {
    std::vector<FrameView> views;
    std::vector<std::uint64_t> ids;
    for (const auto& in : batch) {
      const ipc::SlotHeader& h = in.header();
      views.push_back({in.payload().data(), static_cast<DType>(h.dtype), h.rows, h.cols});
      ids.push_back(h.frame_index);
    }
    GpuBatch b{std::move(batch), plan.gpu.get(), Clock::now()};
    try {
      b.integrator->submit(views, ids);
    } catch (const CudaError&) {
      throw;
    } catch (const Error& e) {  // checked above; a bug if reached: fail the frames, keep serving
      for (auto& in : b.slots) answer_now(in, e.what());
      return true;
    }
    in_flight_.push_back(std::move(b));
    return true;
  }

  /// Collects the oldest batch and writes its results; false if the stage stopped meanwhile.
  bool collect_oldest() {
    GpuBatch b = std::move(in_flight_.front());
    in_flight_.pop_front();
    const CudaIntegrator::Batch sums = b.integrator->collect();
    const auto on_message = [this](const daemon::DaemonMessage& m) { note(m); };
    for (std::size_t i = 0; i < b.slots.size(); ++i) {
      auto out = daemon::wait_write(rt_, results_, on_message, [] { return false; });
      if (!out) return false;
      ipc::ReadSlot& in = b.slots[i];
      ipc::SlotHeader& oh = out->header();
      oh = in.header();
      oh.kind = ipc::PayloadKind::kBinSums;
      try {
        write_sums(*out, sums.frame(i), sums.bins);
      } catch (const Error& e) {
        fail_slot(oh, e.what());
        ++rt_.counters.failed;
      }
      out->commit();  // commit downstream before releasing upstream (crash recovery)
      in.release();
      ++rt_.counters.frames_out;
      rt_.delay();
    }
    const auto now = Clock::now();  // union of the batches' [submitted, collected] intervals
    busy_ += now - std::max(b.submitted, busy_until_);
    busy_until_ = now;
    rt_.counters.busy_s = std::chrono::duration<double>(busy_).count();
    return true;
  }

  /// Answers one input slot without the GPU: passes a failed or cancelled slot on, or marks it
  /// `status` (failed, or cancelled: not counted) with `reason`. False if the stage stopped while
  /// waiting for a results slot.
  bool answer_now(ipc::ReadSlot& in, const std::string& reason,
                  ipc::SlotStatus status = ipc::SlotStatus::kFailed) {
    const auto on_message = [this](const daemon::DaemonMessage& m) { note(m); };
    auto out = daemon::wait_write(rt_, results_, on_message, [] { return false; });
    if (!out) return false;
    ipc::SlotHeader& oh = out->header();
    oh = in.header();
    oh.kind = ipc::PayloadKind::kBinSums;
    oh.bytes = 0;
    if (in.header().status == ipc::SlotStatus::kOk) {
      fail_slot(oh, reason, status);
      if (status == ipc::SlotStatus::kFailed) ++rt_.counters.failed;
    }
    out->commit();
    in.release();
    ++rt_.counters.frames_out;
    return true;
  }

  static void fail_slot(ipc::SlotHeader& oh, const std::string& reason,
                        ipc::SlotStatus status = ipc::SlotStatus::kFailed) {
    oh.status = status;
    oh.bytes = 0;
    oh.set_reason("frame " + std::to_string(oh.frame_index) + ": " + reason);
  }

  /// Before a job's plan is built (which may evict another job's integrator from the cache),
  /// collects every batch in flight, so that none refers to an evicted integrator.
  void drain_unless_cached(std::int64_t job) {
    for (const JobPlan& p : plans_) {
      if (p.job == job) return;
    }
    while (!in_flight_.empty()) {
      if (!collect_oldest()) break;
    }
    abandon_in_flight();
  }

  /// Stopping with batches still in flight: waits for the device to finish with their frames,
  /// then drops them (their input slots are released without results, as a stopping CPU worker
  /// drops the frame it holds; the daemon redoes unfinished shards at its next start).
  void abandon_in_flight() {
    for (GpuBatch& b : in_flight_) (void)b.integrator->collect();
    in_flight_.clear();
    last_gpu_ = nullptr;
  }

  // ------------------------------------------------------------------ plans

  JobPlan& plan_for(std::int64_t job) {
    for (auto it = plans_.begin(); it != plans_.end(); ++it) {
      if (it->job == job) {
        plans_.splice(plans_.begin(), plans_, it);
        return plans_.front();
      }
    }
    plans_.push_front(build(job));
    if (plans_.size() > kMaxCachedPlans) plans_.pop_back();
    return plans_.front();
  }

  JobPlan build(std::int64_t job) {
    JobPlan p;
    p.job = job;
    const auto reply = rt_.link.request_job_config(job, kJobConfigTimeout);
    if (!reply || !reply->spec) {
      p.error = "job " + std::to_string(job) + ": no configuration from the daemon" +
                (reply ? ": " + reply->error : std::string(" (timeout)"));
      return p;
    }
    try {
      const daemon::JobSpec& spec = *reply->spec;
      auto plan = cached_plan(spec, daemon::job_input_info(spec));  // a stream's: its series
      rt_.link.send(daemon::PlanAxes{job, daemon::plan_axes_json(*plan)});
      if (rt_.gpu_device >= 0) {
        p.gpu = make_gpu_integrator(std::move(plan));
      } else {
        p.integrator = std::make_unique<CpuIntegrator>(std::move(plan));
      }
    } catch (const CudaError& e) {
      exit_on_cuda_error(e);
    } catch (const std::exception& e) {
      p.error = "job " + std::to_string(job) + ": cannot build the integration plan: " + e.what();
      spdlog::error("integrate: {}", p.error);
    }
    return p;
  }

  /// A CUDA integrator on the stage's device with batches capped at kMaxGpuBatchSumBytes of sums.
  std::unique_ptr<CudaIntegrator> make_gpu_integrator(std::shared_ptr<const Plan> plan) const {
    const std::size_t sum_bytes = 4 * plan->bins() * sizeof(double);
    const std::size_t batch = std::clamp<std::size_t>(
        kMaxGpuBatchSumBytes / std::max<std::size_t>(sum_bytes, 1), 1, kMaxGpuBatch);
    return std::make_unique<CudaIntegrator>(std::move(plan),
                                            CudaOptions{rt_.gpu_device, batch, 2, 0});
  }

  /// The plan for `spec` on `info`: from the cache when an earlier job had the same inputs, else
  /// built and cached (LRU, kMaxCachedPlans).
  std::shared_ptr<const Plan> cached_plan(const daemon::JobSpec& spec,
                                          const source::DatasetInfo& info) {
    const std::string key = daemon::plan_cache_key(spec, info);
    for (auto it = plan_cache_.begin(); it != plan_cache_.end(); ++it) {
      if (it->first == key) {
        plan_cache_.splice(plan_cache_.begin(), plan_cache_, it);
        return plan_cache_.front().second;
      }
    }
    plan_cache_.emplace_front(key, node_plan(spec, info));
    if (plan_cache_.size() > kMaxCachedPlans) plan_cache_.pop_back();
    return plan_cache_.front().second;
  }

  /// The plan for `spec` on `info` from the node's plan folder (rt_.plan_dir): read if another
  /// worker or an earlier daemon built it, else built here (while the node's other workers wait
  /// for it) and stored. Without a folder, built in memory. Logs which, at info level.
  std::shared_ptr<const Plan> node_plan(const daemon::JobSpec& spec,
                                        const source::DatasetInfo& info) {
    reduce::PlanResult r =
        daemon::make_job_plan(spec, info, plan_folder_ ? &*plan_folder_ : nullptr);
    if (!r.note.empty()) spdlog::warn("integrate: plan folder: {}", r.note);
    if (!plan_folder_) {
      spdlog::info("integrate: plan built in {:.3f} s (no plan folder)", r.seconds);
    } else if (r.built) {
      spdlog::info("integrate: plan {} built in {:.3f} s, stored in {}", r.key_hash, r.seconds,
                   rt_.plan_dir.string());
    } else {
      spdlog::info("integrate: plan {} loaded from {} in {:.3f} s", r.key_hash,
                   rt_.plan_dir.string(), r.seconds);
    }
    return std::move(r.plan);
  }

  /// Fills `out` from `in`; false if the frame failed here.
  bool integrate_slot(JobPlan* plan, const ipc::ReadSlot& in, ipc::WriteSlot& out) {
    const ipc::SlotHeader& ih = in.header();
    ipc::SlotHeader& oh = out.header();
    oh = ih;
    oh.kind = ipc::PayloadKind::kBinSums;
    oh.bytes = 0;
    if (ih.status != ipc::SlotStatus::kOk) return true;  // failed or cancelled upstream
    if (plan == nullptr) {  // its job was cancelled: passed on, not a failure
      fail_slot(oh, "job cancelled", ipc::SlotStatus::kCancelled);
      return true;
    }
    try {
      if (!plan->integrator) throw Error(ErrorCategory::kInput, plan->error);
      if (ih.dtype > static_cast<std::uint32_t>(kLastDType)) {
        throw Error(ErrorCategory::kInternal,
                    "frame slot has an unknown dtype " + std::to_string(ih.dtype));
      }
      const FrameView view{in.payload().data(), static_cast<DType>(ih.dtype), ih.rows, ih.cols};
      if (view.bytes() > in.payload().size()) {
        throw Error(ErrorCategory::kInternal, "frame slot holds fewer bytes than its shape");
      }
      plan->integrator->integrate(view, sums_);
      write_sums(out);
      return true;
    } catch (const Error& e) {
      oh.status = ipc::SlotStatus::kFailed;
      oh.bytes = 0;
      oh.set_reason("frame " + std::to_string(ih.frame_index) + ": " + e.what());
      return false;
    }
  }

  void write_sums(ipc::WriteSlot& out) {
    const std::size_t bins = sums_.bins();
    check_fits(out, 4 * bins * sizeof(double));
    std::byte* p = out.payload().data();
    for (const auto* v : {&sums_.signal, &sums_.variance, &sums_.normalization, &sums_.count}) {
      std::memcpy(p, v->data(), bins * sizeof(double));
      p += bins * sizeof(double);
    }
    out.header().rows = 4;
    out.header().cols = bins;
    out.header().bytes = 4 * bins * sizeof(double);
  }

  /// Writes one frame's 4 x bins sums (already in the slot layout) into `out`.
  static void write_sums(ipc::WriteSlot& out, std::span<const double> sums, std::size_t bins) {
    check_fits(out, sums.size_bytes());
    std::memcpy(out.payload().data(), sums.data(), sums.size_bytes());
    out.header().rows = 4;
    out.header().cols = bins;
    out.header().bytes = sums.size_bytes();
    out.header().status = ipc::SlotStatus::kOk;
  }

  static void check_fits(const ipc::WriteSlot& out, std::size_t bytes) {
    if (bytes > out.payload().size()) {
      throw Error(ErrorCategory::kResource, "result of " + std::to_string(bytes) +
                                                " bytes does not fit a results ring " + "slot of " +
                                                std::to_string(out.payload().size()) + " bytes");
    }
  }

  daemon::StageRuntime& rt_;
  ipc::Ring frames_;
  ipc::Ring results_;
  // Declared after frames_ and before the integrators: unregistered after every integrator has
  // finished its copies, and before the ring is unmapped.
  std::unique_ptr<PinnedHostRegion> pinned_;
  static constexpr std::chrono::milliseconds kNoWait{0};
  std::list<JobPlan> plans_;
  std::deque<GpuBatch> in_flight_;
  std::optional<ipc::ReadSlot> held_;   // taken from the ring, not yet in a batch
  CudaIntegrator* last_gpu_ = nullptr;  // integrator of the newest batch
  std::list<std::pair<std::string, std::shared_ptr<const Plan>>> plan_cache_;
  std::optional<PlanCache> plan_folder_;  // the node's plan folder (rt_.plan_dir), if any
  BinSums sums_;
  Clock::duration busy_{};
  Clock::time_point busy_until_{};  // GPU: end of the last counted busy interval
};

}  // namespace

int run_integrate_stage(daemon::StageRuntime& rt) {
  IntegrateStage stage(rt);
  return stage.run();
}

}  // namespace azflow::integrate
