#include "stages/integrate/integrate_stage.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <list>
#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "base/error.hpp"
#include "daemon/job_setup.hpp"
#include "stages/integrate/cpu_integrator.hpp"

namespace azflow::integrate {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMaxCachedPlans = 2;
constexpr std::chrono::seconds kJobConfigTimeout{30};

/// A job's plan and integrator, or why there is none.
struct JobPlan {
  std::int64_t job = 0;
  std::unique_ptr<CpuIntegrator> integrator;
  std::string error;
};

class IntegrateStage {
 public:
  explicit IntegrateStage(daemon::StageRuntime& rt)
      : rt_(rt),
        frames_(daemon::open_stage_ring(rt.instance, "frames")),
        results_(daemon::open_stage_ring(rt.instance, "results")) {}

  int run() {
    const auto on_message = [this](const nlohmann::json& m) { rt_.note_cancel(m); };
    while (!rt_.should_stop()) {
      rt_.heartbeat();
      while (auto message = rt_.link.receive(std::chrono::milliseconds(0))) on_message(*message);
      auto in = frames_.acquire_read(daemon::kStagePollInterval);
      if (!in) continue;
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
    const auto reply = rt_.link.request({{"type", "job_config"}, {"job", job}}, kJobConfigTimeout);
    if (!reply || !reply->contains("spec")) {
      p.error = "job " + std::to_string(job) + ": no configuration from the daemon" +
                (reply ? ": " + reply->value("error", std::string()) : std::string(" (timeout)"));
      return p;
    }
    try {
      const daemon::JobSpec spec = daemon::job_spec_from_json(reply->at("spec"));
      source::Dataset dataset = daemon::open_job_dataset(spec);
      auto plan = cached_plan(spec, dataset.info());
      rt_.link.send({{"type", "plan_axes"}, {"job", job}, {"axes", daemon::plan_axes_json(*plan)}});
      p.integrator = std::make_unique<CpuIntegrator>(std::move(plan));
    } catch (const std::exception& e) {
      p.error = "job " + std::to_string(job) + ": cannot build the integration plan: " + e.what();
      spdlog::error("integrate: {}", p.error);
    }
    return p;
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
    plan_cache_.emplace_front(key, daemon::build_job_plan(spec, info));
    if (plan_cache_.size() > kMaxCachedPlans) plan_cache_.pop_back();
    return plan_cache_.front().second;
  }

  /// Fills `out` from `in`; false if the frame failed here.
  bool integrate_slot(JobPlan* plan, const ipc::ReadSlot& in, ipc::WriteSlot& out) {
    const ipc::SlotHeader& ih = in.header();
    ipc::SlotHeader& oh = out.header();
    oh = ih;
    oh.kind = ipc::PayloadKind::kBinSums;
    oh.bytes = 0;
    if (ih.status == ipc::SlotStatus::kFailed) return true;
    try {
      if (plan == nullptr) throw Error(ErrorCategory::kInput, "job cancelled");
      if (!plan->integrator) throw Error(ErrorCategory::kInput, plan->error);
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
    const std::size_t bytes = 4 * bins * sizeof(double);
    if (bytes > out.payload().size()) {
      throw Error(ErrorCategory::kResource, "result of " + std::to_string(bytes) +
                                                " bytes does not fit a results ring " + "slot of " +
                                                std::to_string(out.payload().size()) + " bytes");
    }
    std::byte* p = out.payload().data();
    for (const auto* v : {&sums_.signal, &sums_.variance, &sums_.normalization, &sums_.count}) {
      std::memcpy(p, v->data(), bins * sizeof(double));
      p += bins * sizeof(double);
    }
    out.header().rows = 4;
    out.header().cols = bins;
    out.header().bytes = bytes;
  }

  daemon::StageRuntime& rt_;
  ipc::Ring frames_;
  ipc::Ring results_;
  std::list<JobPlan> plans_;
  std::list<std::pair<std::string, std::shared_ptr<const Plan>>> plan_cache_;
  BinSums sums_;
  Clock::duration busy_{};
};

}  // namespace

int run_integrate_stage(daemon::StageRuntime& rt) {
  IntegrateStage stage(rt);
  return stage.run();
}

}  // namespace azflow::integrate
