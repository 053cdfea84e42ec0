#include "daemon/daemon.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/error.hpp"
#include "daemon/job_output.hpp"
#include "daemon/job_setup.hpp"
#include "daemon/json_text.hpp"
#include "daemon/ring_budget.hpp"
#include "daemon/runtime_dir.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/integrate/units.hpp"
#include "stages/reduce/image_file.hpp"
#include "stages/reduce/shard_file.hpp"

namespace azflow::daemon {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kMaxResultsPerDrain = 256;
constexpr std::size_t kMaxShardRowBytes = std::size_t{64} << 20;
constexpr std::size_t kLiveHighWaterMark = 1000;
constexpr milliseconds kPeriodic{500};
constexpr int kStallTicks = 4;  // x kPeriodic with every ring empty before frames are re-requested
constexpr std::chrono::seconds kLoopStallWarning{5};  // a loop quiet this long is logged
// In a job's folder while the daemon starts it (rings, stages, first shards): found at the next
// start, it means that start ended the daemon, and the job is failed instead of started again.
constexpr const char* kStartingMarker = "starting";

std::int64_t unix_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Creates the folder of an ipc:// endpoint.
void prepare_endpoint(const std::string& endpoint) {
  constexpr std::string_view kIpc = "ipc://";
  if (!endpoint.starts_with(kIpc)) return;
  const std::filesystem::path path(endpoint.substr(kIpc.size()));
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
}

std::chrono::milliseconds env_ms(const char* name) {
  const char* value = std::getenv(name);
  return milliseconds(value != nullptr ? std::atoll(value) : 0);
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path, const std::string& text) {
  const auto tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw Error(ErrorCategory::kIo, "cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

// ---------------------------------------------------------------- start and stop

Daemon::Daemon(DaemonConfig config)
    : config_(std::move(config)), stages_socket_(context_, zmq::socket_type::router) {
  check_tcp_control(config_);
  lock_ = std::make_unique<InstanceLock>(
      std::vector{InstanceLock::shm_lock_path(config_.instance),
                  InstanceLock::state_lock_path(config_.state_dir)},
      "instance '" + config_.instance + "' (state directory " + config_.state_dir.string() + ")");
  const std::size_t removed = ipc::remove_instance_segments(config_.instance);
  if (removed > 0) spdlog::warn("removed {} stale shared-memory segments", removed);
  std::filesystem::create_directories(config_.state_dir / "jobs");
  store_ = std::make_unique<JobStore>(JobStore::path_in(config_.state_dir));
  const std::size_t requeued = store_->requeue_running_shards_on_startup();
  if (requeued > 0) spdlog::warn("requeued {} shards left running by a previous run", requeued);
  secure_runtime_dir(config_.runtime_dir);  // 0700 (or its group's): before any socket
  for (const auto* ep : {&config_.stages_endpoint, &config_.live_endpoint}) prepare_endpoint(*ep);
  stages_socket_.set(zmq::sockopt::linger, 0);
  stages_socket_.bind(config_.stages_endpoint);
  sink_ = std::make_unique<ResultSink>(context_, config_.live_endpoint,
                                       static_cast<int>(kLiveHighWaterMark),
                                       env_ms("AZFLOW_TEST_DELAY_MS_REDUCER"));
  std::vector<std::string> endpoints{config_.control_endpoint};
  if (!config_.control_tcp_endpoint.empty()) endpoints.push_back(config_.control_tcp_endpoint);
  place_integrate_workers_once();  // before federation: peers learn this node's devices
  start_federation();  // before the control: its ZAP handler checks CurveZMQ clients of TCP control
  control_ = std::make_unique<ControlServer>(context_, endpoints, *this,
                                             network_ ? network_->secret_key() : std::string());
  for (const auto* ep :
       {&config_.control_endpoint, &config_.live_endpoint, &config_.stages_endpoint})
    restrict_socket(*ep);
  resume_jobs();
  start_http();
}

/// The HTTP API (docs/http.md): a port in use leaves it off with a warning; nothing about it
/// stops the daemon from starting.
void Daemon::start_http() {
  if (config_.http_listen.empty()) return;
  try {
    http_ = std::make_unique<HttpServer>(HttpOptions{config_.http_listen, config_.state_dir,
                                                     config_.runtime_dir, config_.instance,
                                                     config_.live_endpoint});
  } catch (const std::exception& e) {
    spdlog::warn("http: HTTP API off: {}", e.what());
    http_.reset();
  }
}

void Daemon::place_integrate_workers_once() {
  // Test hook: AZFLOW_TEST_INTEGRATE_DEVICES="0,cpu" starts one integrate worker per item with
  // that --device, whatever the probe says (tests of a failing GPU worker on machines without one).
  if (const char* forced = std::getenv("AZFLOW_TEST_INTEGRATE_DEVICES")) {
    std::stringstream items(forced);
    for (std::string item; std::getline(items, item, ',');) {
      if (!item.empty()) integrate_placement_.devices.push_back(item);
    }
    integrate_placement_.on_gpu = true;
    integrate_placement_.summary =
        std::string("integrate backend: test override AZFLOW_TEST_INTEGRATE_DEVICES=") + forced;
    spdlog::warn("{}", integrate_placement_.summary);
    return;
  }
  GpuInventory inventory;
  const bool wants_gpu = !(config_.gpu.devices && config_.gpu.devices->empty());
  if (wants_gpu) {
    try {
      inventory = probe_gpus(Supervisor::stage_executable());
    } catch (const Error& e) {  // azflow-stage missing: reported again when stages start
      inventory.reason = e.what();
    }
  }
  integrate_placement_ = place_integrate_workers(config_.gpu, inventory, config_.integrate_workers);
  spdlog::info("{}", integrate_placement_.summary);
}

Daemon::~Daemon() { stop_pipeline(); }

int Daemon::run(const std::atomic<bool>& stop) {
  spdlog::info("azflowd {} serving on {} (instance {})", reduce::program_version(),
               config_.control_endpoint, config_.instance);
  notifier_.ready(ServiceNotifier::describe(service_counters(), 0.0));
  // pings while the loop turns; a loop frozen for half of WatchdogSec gets none
  const auto ping = notifier_.watchdog_period();
  LoopWatchdog loop_watchdog(
      ping, ping ? std::chrono::duration_cast<milliseconds>(*ping) : milliseconds(0),
      kLoopStallWarning);
  std::optional<Clock::time_point> stop_deadline;
  while (true) {
    try {
      loop_watchdog.beat();
      if (!stop_deadline && (stop.load() || control_->shutdown_requested())) {
        stop_deadline = begin_stop();
      }
      const bool idle = shards_in_flight() == 0 && finishing_.empty();
      if (stop_deadline && (idle || Clock::now() >= *stop_deadline)) break;
      control_->poll(milliseconds(0));
      if (http_) http_->serve_pending([this](std::string_view t) { return control_->handle(t); });
      poll_peers();
      poll_stages();
      reap_stages();
      dispatch();
      std::size_t n = drain_results(results_ ? milliseconds(10) : milliseconds(0));
      n += apply_sink_events();
      if (!results_ && n == 0) control_->poll(milliseconds(10));
      if (Clock::now() - last_periodic_ >= kPeriodic) {
        last_periodic_ = Clock::now();
        check_heartbeats();
        watchdog();
        notifier_.report(service_counters());
        sample_throughput();
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;  // a signal (SIGTERM) interrupted a ZeroMQ call: look at `stop`
    }
  }
  end_stop();
  return 0;
}

Clock::time_point Daemon::begin_stop() {
  shutdown_ = true;  // no more shards handed out, enqueue refused
  const std::size_t in_flight = shards_in_flight();
  spdlog::info("stopping: no new work; {} shards in flight get up to {} s to finish", in_flight,
               config_.stop_timeout_s);
  notifier_.stopping("stopping: finishing " + std::to_string(in_flight) + " shards in flight");
  return Clock::now() + std::chrono::seconds(config_.stop_timeout_s);
}

void Daemon::end_stop() {
  http_.reset();  // HTTP threads waiting for this loop answer 503
  settle_sink();  // rows handed over are written, committed shards recorded, outputs finished
  // Shards still in flight after the timeout go back to the queue: a restart redoes them whole
  // (their frames were not committed), so no frame is written twice.
  std::size_t requeued = 0;
  for (auto& [id, job] : jobs_) {
    for (const auto& [shard_id, shard] : job.running) {
      store_->requeue_shard(id, shard_id);
      ++requeued;
    }
  }
  if (requeued > 0) spdlog::warn("stop timeout: {} unfinished shards recorded as queued", requeued);
  spdlog::info("stopping: {} unfinished jobs resume at the next start", jobs_.size());
  give_back_guest_shards();
  stop_pipeline();
}

std::size_t Daemon::shards_in_flight() const {
  std::size_t n = 0;
  for (const auto& [id, job] : jobs_) n += job.running.size();
  return n;
}

ServiceCounters Daemon::service_counters() const {
  ServiceCounters c;
  for (const auto& [id, job] : jobs_) {
    if (job.started) {
      ++c.jobs_running;
    } else {
      ++c.jobs_queued;
    }
    c.shards_in_flight += job.running.size();
  }
  c.frames_written = sink_->counters().written;
  c.stopping = shutdown_;
  return c;
}

void Daemon::start_pipeline(const PipelineShape& shape) {
  const auto make = [&](const char* ring, std::size_t slots, std::size_t bytes) {
    return ipc::Ring::create({ipc::ring_name(config_.instance, ring), slots, bytes});
  };
  compressed_ = make("compressed", config_.rings.compressed_slots, shape.compressed_bytes);
  frames_ = make("frames", config_.rings.frames_slots, shape.frames_bytes);
  results_ = make("results", config_.rings.results_slots, shape.results_bytes);
  shape_ = shape;
  StageLaunch launch{Supervisor::stage_executable(), config_.instance,  config_.stages_endpoint,
                     config_.heartbeat_interval_ms,  config_.log_level, plan_dir(config_),
                     config_.plans.cache_max_mb};
  supervisor_ = std::make_unique<Supervisor>(launch, config_.workers, integrate_placement_.devices);
  supervisor_->start_all();
  spdlog::info("pipeline up: rings compressed {} x {} B, frames {} x {} B, results {} x {} B",
               config_.rings.compressed_slots, shape.compressed_bytes, config_.rings.frames_slots,
               shape.frames_bytes, config_.rings.results_slots, shape.results_bytes);
}

void Daemon::stop_pipeline() {
  for (auto* ring : {&compressed_, &frames_, &results_}) {
    if (*ring) (*ring)->close();
  }
  if (supervisor_) supervisor_->stop_all(milliseconds(3000));
  supervisor_.reset();
  if (sink_) sink_->wait_reducer_idle();  // every results slot it holds is released
  source_pending_.clear();
  for (auto* ring : {&compressed_, &frames_, &results_}) {
    if (*ring) ipc::Ring::remove((*ring)->name());
    ring->reset();
  }
  ipc::remove_instance_segments(config_.instance);
}

/// Creates the rings and stages, sized for `job`, or re-creates them bigger when idle. False if
/// the job has to wait (rings too small while other shards are in flight).
bool Daemon::ensure_pipeline(std::size_t frame_bytes, std::size_t bins) {
  const RingSlotBytes b = ring_slot_bytes(config_.rings, frame_bytes, bins);
  const PipelineShape need{b.compressed, b.frames, b.results};
  if (pipeline_fits(frame_bytes, bins)) return true;
  if (pipeline_busy()) return false;
  if (results_) stop_pipeline();
  start_pipeline({std::max(need.compressed_bytes, shape_.compressed_bytes),
                  std::max(need.frames_bytes, shape_.frames_bytes),
                  std::max(need.results_bytes, shape_.results_bytes)});
  return true;
}

bool Daemon::pipeline_fits(std::size_t frame_bytes, std::size_t bins) const {
  const RingSlotBytes need = ring_slot_bytes(config_.rings, frame_bytes, bins);
  return results_ && need.compressed <= shape_.compressed_bytes &&
         need.frames <= shape_.frames_bytes && need.results <= shape_.results_bytes;
}

bool Daemon::pipeline_busy() const {
  for (const auto& [id, other] : jobs_) {
    if (!other.running.empty()) return true;
  }
  return !guest_shards_.empty();
}

std::size_t Daemon::ring_bytes_held() const {
  if (!results_) return 0;
  return ring_total_bytes(config_.rings,
                          {shape_.compressed_bytes, shape_.frames_bytes, shape_.results_bytes});
}

// ---------------------------------------------------------------- jobs

void Daemon::resume_jobs() {
  for (JobState state : {JobState::kRunning, JobState::kQueued}) {
    for (const JobRecord& record : store_->jobs_in_state(state)) resume_job(record);
  }
  if (!jobs_.empty()) spdlog::info("resuming {} unfinished jobs", jobs_.size());
}

/// Loads one unfinished job at start; a job whose start ended the previous run (its "starting"
/// marker is still there), or that cannot be loaded, is failed with the reason, never retried.
void Daemon::resume_job(const JobRecord& record) {
  const auto dir = config_.state_dir / "jobs" / std::to_string(record.id);
  std::error_code ec;
  std::string reason;
  if (std::filesystem::exists(dir / kStartingMarker, ec)) {
    reason = "azflowd ended while starting this job (an earlier run); it is not started again";
    std::filesystem::remove(dir / kStartingMarker, ec);
  } else {
    try {
      activate(record);
      return;
    } catch (const std::exception& e) {
      reason = "cannot resume the job: " + escape_bytes(e.what());
    }
  }
  jobs_.erase(record.id);
  store_->set_job_state(record.id, JobState::kFailed, reason);
  spdlog::error("job {} failed: {}", record.id, reason);
}

/// Loads a queued or running job from the store into memory: its dataset's shape, its shards
/// (stale .partial shard files removed) and its plan axes if an earlier run saved them.
void Daemon::activate(const JobRecord& record) {
  ActiveJob job;
  job.id = record.id;
  job.spec = record.spec;
  job.frames_total = record.frames_total;
  job.output = record.output_path;
  job.dir = config_.state_dir / "jobs" / std::to_string(record.id);
  std::filesystem::create_directories(job.dir);
  FrameOrigins origins;
  try {
    if (job.spec.stream) {
      job.frame_bytes = stream_frame_bytes(job.spec, record.state == JobState::kRunning);
    } else {
      source::Dataset dataset = open_job_dataset(job.spec);
      job.frame_bytes = dataset.info().frame_bytes();
      origins = FrameOrigins(job.spec.datasets, dataset.files(), job.spec.frame_offset());
    }
  } catch (const Error& e) {
    store_->set_job_state(record.id, JobState::kFailed, e.what());
    spdlog::error("job {} failed: {}", record.id, escape_bytes(e.what()));
    return;
  }
  job.bins = spec_bins(job.spec);
  for (const auto& entry : std::filesystem::directory_iterator(job.dir)) {
    if (entry.path().extension() == ".partial") std::filesystem::remove(entry.path());
  }
  for (const ShardRecord& shard : store_->shards(record.id)) {
    ++job.shards_total;
    if (shard.state == ShardState::kDone) {
      ++job.shards_done;
    } else {
      job.queued.push_back(shard);
    }
  }
  std::ifstream axes(job.dir / "layout.json");
  if (axes) {
    auto j = nlohmann::json::parse(axes, nullptr, false);
    if (!j.is_discarded()) job.axes = std::move(j);
  }
  job.started = record.state == JobState::kRunning;
  job.priority = record.priority;
  sink_->set_job(job.id, std::string(integrate::unit_name(job.spec.settings.unit)), job.axes,
                 std::move(origins));
  job.waiting_for = record.after;  // settle_dependencies() drops the succeeded ones
  jobs_.emplace(job.id, std::move(job));
}

std::vector<ShardPlan> Daemon::cut_shards(std::int64_t frames, std::size_t bins,
                                          std::size_t node_slots) const {
  const std::size_t row_bytes = std::max<std::size_t>(1, bins * 2 * sizeof(float));
  std::size_t limit = std::min(config_.shard_frames, kMaxShardRowBytes / row_bytes);
  if (node_slots > 0 && frames > 0) {
    const auto n = static_cast<std::size_t>(frames);
    limit = std::min(limit, (n + node_slots - 1) / node_slots);
  }
  const auto per_shard = static_cast<std::int64_t>(std::max<std::size_t>(1, limit));
  std::vector<ShardPlan> shards;
  for (std::int64_t first = 0; first < frames; first += per_shard) {
    shards.push_back(
        {static_cast<std::int64_t>(shards.size()), first, std::min(per_shard, frames - first)});
  }
  return shards;
}

namespace {

/// A follow job's frames: nimages x ntrigger from the master (it may hold fewer yet). Throws
/// FieldError("spec.follow") when the master does not say.
std::size_t follow_frames(const source::Dataset& dataset) {
  if (const auto expected = dataset.expected_frames()) return *expected;
  throw FieldError("spec.follow", dataset.info().path.string() +
                                      " gives no detectorSpecific/nimages: a follow job needs the "
                                      "series' frame count");
}

/// What `azflow integrate` checks before it starts, checked at enqueue so that a job that cannot
/// run is refused (FieldError naming the request field) instead of queued: the input opens and
/// has frames (spec.datasets, or spec.dataset_path for a wrong dataset), the PONI's detector
/// fits the frames (spec.poni_path), a q or d* unit has a wavelength (spec.settings.unit), and
/// the mask, dark and flat images read and have the frames' shape (spec.mask_path, dark_path,
/// flat_path). This opens files on the daemon's main loop: metadata and the correction images
/// only (short; a very large image or a slow file system delays the loop by as much).
source::DatasetInfo check_job_inputs(const JobSpec& spec) {
  std::optional<source::Dataset> dataset;
  try {
    dataset.emplace(open_job_dataset(spec));
  } catch (const Error& e) {
    const bool dataset_field = e.category() == ErrorCategory::kInput && !spec.dataset_path.empty();
    throw FieldError(dataset_field ? "spec.dataset_path" : "spec.datasets",
                     std::string(e.what()) +
                         (spec.follow_timeout_s ? " (a follow job needs its master file and first "
                                                  "frame at enqueue; azflowctl enqueue --follow "
                                                  "waits for them)"
                                                : ""));
  }
  source::DatasetInfo info = dataset->info();
  if (spec.follow_timeout_s) info.frames = follow_frames(*dataset);
  if (info.frames == 0) throw FieldError("spec.datasets", info.path.string() + " has no frames");
  if (spec.frames) {
    if (const std::string problem = frame_slice_problem(*spec.frames, info.frames);
        !problem.empty()) {
      throw FieldError("spec.frames",
                       problem + " (" + info.path.string() + ", dataset " + info.dataset + ")");
    }
  }
  integrate::Poni poni;
  try {
    poni = job_poni(spec, info);
    integrate::check_frame_shape(poni, info.rows, info.cols,
                                 info.path.string() + " (" + info.dataset + ")", spec.poni_path);
  } catch (const Error& e) {
    throw FieldError("spec.poni_path", e.what());
  }
  if (integrate::unit_needs_wavelength(spec.settings.unit) && !poni.wavelength_m) {
    throw FieldError("spec.settings.unit",
                     "unit " + std::string(integrate::unit_name(spec.settings.unit)) +
                         " needs a wavelength, and the PONI " + spec.poni_path + " gives none");
  }
  const std::pair<const char*, const std::string*> images[] = {{"spec.mask_path", &spec.mask_path},
                                                               {"spec.dark_path", &spec.dark_path},
                                                               {"spec.flat_path", &spec.flat_path}};
  for (std::size_t k = 0; k < 3; ++k) {
    if (images[k].second->empty()) continue;
    reduce::CorrectionFiles files;
    (k == 0 ? files.mask : k == 1 ? files.dark : files.flat) = *images[k].second;
    try {
      (void)reduce::load_corrections(info.rows, info.cols, nullptr, files);
    } catch (const Error& e) {
      throw FieldError(images[k].first, e.what());
    }
  }
  return info;
}

}  // namespace

nlohmann::json Daemon::enqueue(const EnqueueRequest& request) {
  if (shutdown_) throw Error(ErrorCategory::kConfig, "the daemon is shutting down");
  check_admission(request);
  JobSpec spec = request.spec;
  if (spec.nodes.kind != NodeSelection::Kind::kLocal && !network_) {
    throw FieldError("spec.nodes", "this daemon has no federation (no peer endpoint)");
  }
  const std::optional<OutputBinding> binding = claim_output(spec);
  if (spec.stream) return enqueue_stream(request, spec, binding);
  const source::DatasetInfo info = check_job_inputs(spec);
  const auto frames = static_cast<std::int64_t>(
      spec.frames ? resolve_frames(*spec.frames, info.frames, "spec.frames").size() : info.frames);
  const std::size_t frame_bytes = info.frame_bytes();
  check_ring_budget(config_.rings, spec, frame_bytes, free_bytes("/dev/shm") + ring_bytes_held());
  const auto shards = cut_shards(frames, spec_bins(spec), federation_slots(spec));
  const std::int64_t id = store_->add_job(spec, frames, shards, request.priority, request.after);
  if (const std::string error = activate_new(id, spec, binding); !error.empty()) {
    return {{"job_id", id}, {"state", "failed"}, {"frames_total", frames}, {"error", error}};
  }
  spdlog::info("job {} queued: {} frames in {} shards from {} (priority {}, after {} jobs)", id,
               frames, shards.size(), spec.datasets.front(), request.priority,
               request.after.size());
  return {{"job_id", id}, {"state", "queued"}, {"frames_total", frames}};
}

/// Gives a new job in the store its default output path and loads it; a failure (the outputs
/// folder, the job folder, I/O) fails the job with its reason, returned ("" = queued).
std::string Daemon::activate_new(std::int64_t id, JobSpec& spec,
                                 std::optional<OutputBinding> binding) {
  try {
    if (spec.output_path.empty()) {
      const bool h5 = reduce::format_supports(spec.format, 1);
      spec.output_path =
          (config_.state_dir / "outputs" / ("job-" + std::to_string(id) + (h5 ? ".h5" : ".xy")))
              .string();
      std::filesystem::create_directories(config_.state_dir / "outputs");
      store_->set_output_path(id, spec.output_path);
      binding = bind_output_folder(spec.output_path);
    }
    activate(*store_->job(id));
    if (binding) save_output_binding(config_.state_dir / "jobs" / std::to_string(id), *binding);
    return "";
  } catch (const std::exception& e) {
    sink_->drop_job(id);
    const std::string reason = "cannot queue the job: " + escape_bytes(e.what());
    store_->set_job_state(id, JobState::kFailed, reason);
    spdlog::error("job {} failed: {}", id, reason);
    return reason;
  }
}

void Daemon::log_event(const ActiveJob& job, const std::string& line) const {
  std::ofstream out(job.dir / "events.log", std::ios::app);
  out << iso_utc(unix_ms()) << " " << line << "\n";
}

void Daemon::save_axes(ActiveJob& job, const nlohmann::json& axes) {
  if (job.axes) return;
  job.axes = axes;
  sink_->set_axes(job.id, axes);
  write_file_atomically(job.dir / "layout.json", axes.dump());
}

/// Makes sure the job's plan axes are known: from a worker, layout.json, or as a last resort a
/// plan built here (every frame failed before reaching an integrate worker).
bool Daemon::ensure_axes(ActiveJob& job) {
  if (job.axes) return true;
  try {
    integrate::PlanCache plans({plan_dir(config_), config_.plans.cache_max_mb << 20});
    save_axes(job, plan_axes_json(*build_job_plan(job.spec, job_input_info(job.spec), &plans)));
    return true;
  } catch (const Error& e) {
    spdlog::error("job {}: no output layout: {}", job.id, e.what());
    return false;
  }
}

void Daemon::finish_job(ActiveJob& job) {
  const auto record = store_->job(job.id);
  const std::int64_t failed = record ? record->frames_failed : 0;
  if (failed >= job.frames_total) {
    const auto errors = store_->frame_errors(job.id, 1);
    end_job(job, JobState::kFailed,
            "every frame failed" + (errors.empty() ? "" : "; first: " + errors.front().reason),
            false);
    return;
  }
  if (failed > 0) {
    end_job(job, JobState::kWarning,
            std::to_string(failed) + " of " + std::to_string(job.frames_total) +
                " frames failed (rows left NaN; see /entry/process/failed_frames)",
            true);
    return;
  }
  end_job(job, JobState::kSucceeded, "", true);
}

void Daemon::end_job(ActiveJob& job, JobState state, const std::string& reason,
                     bool finish_output) {
  // a job cancelled before any shard was handed out or done has nothing to write: no plan is
  // built for it and no empty .partial made (bulk cancels of queued jobs stay quick); nor has a
  // stream job that ends (cancelled or failed) before its start message came
  const bool no_series = job.spec.stream && !job.spec.stream->series;  // no start message yet
  const bool nothing_done = (state == JobState::kCancelled || no_series) && job.shards_done == 0 &&
                            (job.running.empty() || no_series) && job.remote.empty();
  if (nothing_done) {
    store_->set_job_state(job.id, state, reason);
    log_event(job, "job " + std::string(job_state_name(state)) +
                       " before any frame: no output file" + (reason.empty() ? "" : ": " + reason));
  } else if (ensure_axes(job)) {
    sink_->assemble({job.id, job.spec, job.frames_total, job.dir, store_->shards(job.id), *job.axes,
                     job.output, finish_output, state, reason});
    finishing_.insert(job.id);
  } else {
    if (state != JobState::kCancelled) state = JobState::kFailed;
    const std::string why =
        (reason.empty() ? "" : reason + "; ") + "output: no plan axes: output not written";
    store_->set_job_state(job.id, state, why);
    log_event(job, "job " + std::string(job_state_name(state)));
  }
  if (supervisor_) {  // the source closes the job's files (a retry reopens them, maybe fixed)
    const auto source = supervisor_->slot_of("source", 0);
    if (source && !supervisor_->slots()[*source].identity.empty()) {
      send_stage(supervisor_->slots()[*source].identity, JobEnd{job.id});
    }
  }
  end_remote_shards(job);
  sink_->drop_job(job.id);
  std::erase_if(source_pending_, [&](const auto& kv) { return kv.second.job == job.id; });
  const std::int64_t id = job.id;
  jobs_.erase(id);  // `job` dangles from here
}

nlohmann::json Daemon::cancel(const CancelRequest& request) {
  nlohmann::json cancelled = nlohmann::json::array();
  nlohmann::json refused = nlohmann::json::array();
  for (const std::int64_t id : request.ids) {
    const auto it = jobs_.find(id);
    if (it == jobs_.end()) {
      const auto record = store_->job(id);
      const std::string why =
          finishing_.contains(id)
              ? "job is writing its output"
              : (record ? "job is " + std::string(job_state_name(record->state)) : "no such job");
      refused.push_back({{"job_id", id}, {"reason", why}});
      continue;
    }
    broadcast(CancelJob{id});
    end_job(it->second, JobState::kCancelled, "cancelled by request", false);
    cancelled.push_back(id);
  }
  // The answer comes once the cancelled jobs' .partial outputs are written and their state is
  // recorded (a client that reads the state next finds the file): this verb waits for the sink.
  if (!cancelled.empty()) settle_sink();
  return {{"cancelled", cancelled}, {"not_cancelled", refused}};
}

nlohmann::json Daemon::status(const StatusRequest& request) {
  if (!request.job_id) return {{"daemon", daemon_status()}};
  const auto record = store_->job(*request.job_id);
  if (!record) throw FieldError("job_id", "no job " + std::to_string(*request.job_id));
  const auto shards = store_->shards(record->id);
  nlohmann::json job = job_json(*record, &shards, sink_->frames_pending(record->id));
  job["spec"] = to_json(record->spec);
  nlohmann::json errors = nlohmann::json::array();
  for (const FrameErrorRecord& e : store_->frame_errors(record->id, 10)) {
    // the input frame, as the reason and the output's frame_index name it (the store and retry
    // keep the job frame)
    errors.push_back(
        {{"frame", record->spec.frame_offset() + e.frame_index}, {"reason", e.reason}});
  }
  job["frame_errors"] = errors;
  const auto active = jobs_.find(record->id);
  job["waiting_for"] =
      active == jobs_.end() ? std::vector<std::int64_t>{} : active->second.waiting_for;
  if (record->spec.stream) job["stream"] = stream_counts_json(record->id);
  return {{"job", job}};
}

nlohmann::json Daemon::list(const ListRequest& request) {
  nlohmann::json jobs = nlohmann::json::array();
  for (const JobRecord& r : store_->list(request.state, request.all))
    jobs.push_back(job_json(r, nullptr, sink_->frames_pending(r.id)));
  return {{"jobs", jobs}};
}

nlohmann::json Daemon::shutdown(const ShutdownRequest&) {
  shutdown_ = true;
  return nlohmann::json::object();
}

nlohmann::json Daemon::daemon_status() const {
  nlohmann::json rings = nlohmann::json::object();
  for (const auto* ring : {&compressed_, &frames_, &results_}) {
    if (!*ring) continue;
    const ipc::RingStats s = (*ring)->stats();
    rings[(*ring)->name()] = {{"capacity", s.capacity},
                              {"ready", s.ready},
                              {"in_use", s.in_use},
                              {"pushed", s.pushed},
                              {"popped", s.popped},
                              {"reclaimed", s.reclaimed},
                              {"slot_bytes", (*ring)->slot_bytes()}};
  }
  const auto c = sink_->counters();
  nlohmann::json active = nlohmann::json::array();
  for (const auto& [id, job] : jobs_) active.push_back(id);
  return {{"version", std::string(reduce::program_version())},
          {"instance", config_.instance},
          {"pid", static_cast<std::int64_t>(::getpid())},
          {"uptime_s", std::chrono::duration<double>(Clock::now() - started_).count()},
          {"active_jobs", active},
          {"stages", supervisor_ ? supervisor_->status_json() : nlohmann::json::array()},
          {"rings", rings},
          {"reducer",
           {{"frames_written", c.written},
            {"frames_failed", c.failed},
            {"duplicates_ignored", c.duplicates},
            {"not_open_ignored", c.not_open},
            {"shards_committed", c.shards_committed},
            {"open_shards", sink_->open_shards()}}},
          {"live_endpoint", config_.live_endpoint},
          {"output_dir", (config_.state_dir / "outputs").string()},
          {"draining", draining_}};
}

// ---------------------------------------------------------------- scheduler

std::size_t Daemon::pipeline_slots() const {
  return 2 * (config_.workers + integrate_placement_.devices.size());
}

void Daemon::dispatch() {
  if (shutdown_) return;
  settle_dependencies();
  std::size_t in_flight = local_in_flight();
  const std::size_t limit = pipeline_slots();
  std::vector<ActiveJob*> order;         // runnable jobs: priority first, then id (jobs_ is by id)
  std::size_t busy = finishing_.size();  // jobs with shards in flight or writing their output
  for (auto& [id, job] : jobs_) {
    if (job.queued.empty() && job.running.empty() && job.shards_done == job.shards_total) {
      finish_job(job);  // all shards done before this run (restart after the last shard)
      return;           // jobs_ changed
    }
    busy += !job.running.empty();
    if (job.waiting_for.empty() && !job.queued.empty()) order.push_back(&job);
  }
  std::stable_sort(order.begin(), order.end(), [](const ActiveJob* a, const ActiveJob* b) {
    return a->priority > b->priority;
  });
  for (ActiveJob* job : order) {
    if (in_flight >= limit) return;
    if (job->running.empty()) {  // a job not yet in flight needs a free job slot
      if (busy >= config_.max_running_jobs) continue;
      ++busy;
    }
    if (!start_shards(*job, in_flight, limit)) return;  // waits for the rings, or jobs_ changed
  }
}

/// Hands out shards of `job` (creating the rings and stages it needs first). Any failure on the
/// way (rings that cannot be reserved, stages that cannot start, shard files, I/O) fails this job
/// with its reason; the daemon keeps serving. False if the job waits or failed.
bool Daemon::start_shards(ActiveJob& job, std::size_t& in_flight, std::size_t limit) {
  const bool first = job.running.empty();
  if (first && !pipeline_fits(job.frame_bytes, job.bins) && pipeline_busy()) return false;
  const auto marker = job.dir / kStartingMarker;
  bool pipeline_up = false;
  try {
    if (first) std::ofstream(marker) << unix_ms() << "\n";
    if (!ensure_pipeline(job.frame_bytes, job.bins)) {
      std::error_code ec;
      if (first) std::filesystem::remove(marker, ec);
      return false;
    }
    pipeline_up = true;
    const bool bulk = job.spec.mode == JobSpec::Mode::kBulk;
    const std::size_t share = local_share(job);  // leaves peers theirs
    while (!job.queued.empty() && in_flight < limit && (!bulk || job.running.empty()) &&
           job.running.size() < share) {
      ShardRecord shard = job.queued.front();
      job.queued.pop_front();
      send_shard(job, shard);
      ++in_flight;
    }
  } catch (const std::exception& e) {
    fail_start(job, e.what(), !pipeline_up);
    return false;
  }
  std::error_code ec;
  if (first) std::filesystem::remove(marker, ec);
  return true;
}

/// Fails `job`, which could not start: `what` is why (escaped: it may name a file with any
/// bytes). A pipeline left half made (`pipeline_broken`) is taken down, to be made again for the
/// next job. A job with no shard in flight ends without an output file.
void Daemon::fail_start(ActiveJob& job, const std::string& what, bool pipeline_broken) {
  const std::string reason = "could not start the job: " + escape_bytes(what);
  spdlog::error("job {}: {}", job.id, reason);
  if (pipeline_broken) {
    stop_pipeline();
    shape_ = {};
  }
  std::error_code ec;
  std::filesystem::remove(job.dir / kStartingMarker, ec);
  if (!job.running.empty()) return end_job(job, JobState::kFailed, reason, false);
  store_->set_job_state(job.id, JobState::kFailed, reason);
  log_event(job, "job failed: " + reason);
  sink_->drop_job(job.id);
  std::erase_if(source_pending_, [&](const auto& kv) { return kv.second.job == job.id; });
  jobs_.erase(job.id);  // `job` dangles from here
}

void Daemon::send_shard(ActiveJob& job, const ShardRecord& shard) {
  if (!job.started) {
    store_->set_job_state(job.id, JobState::kRunning);
    job.started = true;
  }
  store_->mark_shard_running(job.id, shard.shard_id);
  job.running.emplace(shard.shard_id, shard);
  if (sink_->is_open(job.id, shard.shard_id)) {  // handed back by a peer: only what is missing
    send_frames(job.id, shard.shard_id, sink_->missing(job.id, shard.shard_id));
    return;
  }
  if (job.spec.stream) return send_stream_shard(job, shard);
  open_sink_shard(job, shard.shard_id, shard.first_frame, shard.frame_count);
  ShardWork work = ShardWork::range(job.id, shard.shard_id, job.spec.datasets,
                                    job.spec.dataset_path, shard.first_frame, shard.frame_count);
  work.offset = job.spec.frame_offset();
  work.follow_timeout_s = job.spec.follow_timeout_s;
  send_to_source(std::move(work));
}

void Daemon::open_sink_shard(const ActiveJob& job, std::int64_t shard, std::int64_t first,
                             std::int64_t count) {
  const auto with_errors = job.spec.settings.error_model != integrate::ErrorModel::kNone;
  sink_->open_shard(job.dir, {job.id, shard, first, count, job.bins, with_errors,
                              job.spec.settings.sigma_clip.has_value()});
}

void Daemon::send_frames(std::int64_t job_id, std::int64_t shard,
                         const std::vector<std::int64_t>& frames) {
  if (is_guest(job_id)) return guest_redo(job_id, shard, frames);
  const auto it = jobs_.find(job_id);
  if (it == jobs_.end() || frames.empty() || !sink_->is_open(job_id, shard)) return;
  spdlog::info("job {} shard {}: redoing {} frames", job_id, shard, frames.size());
  const JobSpec& spec = it->second.spec;
  ShardWork work =
      ShardWork::list(job_id, shard, spec.stream ? stream_redo_datasets(spec) : spec.datasets,
                      spec.stream ? std::string() : spec.dataset_path, frames);
  work.offset = it->second.spec.frame_offset();
  work.follow_timeout_s = it->second.spec.follow_timeout_s;
  send_to_source(std::move(work));
}

void Daemon::send_to_source(ShardWork work) {
  work.msg = next_msg_++;
  const auto& pending = source_pending_.emplace(work.msg, std::move(work)).first->second;
  if (!supervisor_) return;
  const auto slot = supervisor_->slot_of("source", 0);
  if (slot && !supervisor_->slots()[*slot].identity.empty()) {
    send_stage(supervisor_->slots()[*slot].identity, pending);
  }  // else: sent when the source says hello
}

void Daemon::resend_source_pending() {
  const auto slot = supervisor_->slot_of("source", 0);
  const std::string identity = supervisor_->slots()[*slot].identity;
  for (const auto& [msg, message] : source_pending_) send_stage(identity, message);
}

void Daemon::broadcast(const DaemonMessage& message) {
  if (!supervisor_) return;
  for (const auto& slot : supervisor_->slots()) {
    if (!slot.identity.empty()) send_stage(slot.identity, message);
  }
}

/// Re-requests the missing frames of shards that stall with every ring empty and nothing pending
/// at the source (a safety net: no known path loses a frame, but a frame must never be lost).
void Daemon::watchdog() {
  if (!results_ || (sink_->open_shards() == 0 && guest_shards_.empty()) ||
      !source_pending_.empty()) {
    stall_ticks_ = 0;
    return;
  }
  for (const auto* ring : {&compressed_, &frames_, &results_}) {
    const auto s = (*ring)->stats();
    if (s.ready > 0 || s.in_use > 0) {
      stall_ticks_ = 0;
      return;
    }
  }
  if (++stall_ticks_ < kStallTicks) return;
  stall_ticks_ = 0;
  for (const auto& [job, shard] : sink_->open_keys()) {
    const auto it = jobs_.find(job);
    if (it != jobs_.end() && !it->second.running.contains(shard)) continue;  // a peer holds it
    spdlog::warn("job {} shard {} stalled with every ring empty", job, shard);
    send_frames(job, shard, sink_->missing(job, shard));
  }
  for (const auto& [key, shard] : guest_shards_) {
    std::vector<std::int64_t> missing;
    std::set_difference(shard.expected.begin(), shard.expected.end(), shard.sent.begin(),
                        shard.sent.end(), std::back_inserter(missing));
    spdlog::warn("guest job {} shard {} stalled with every ring empty", key.first, key.second);
    send_frames(key.first, key.second, missing);
  }
}

// ---------------------------------------------------------------- stages

void Daemon::send_stage(const std::string& identity, const DaemonMessage& message) {
  const std::string text = dump_escaped(to_json(message));
  (void)stages_socket_.send(zmq::buffer(identity), zmq::send_flags::sndmore);
  (void)stages_socket_.send(zmq::buffer(text), zmq::send_flags::dontwait);
}

void Daemon::poll_stages() {
  for (int i = 0; i < 256; ++i) {
    zmq::message_t identity, payload;
    if (!stages_socket_.recv(identity, zmq::recv_flags::dontwait)) return;
    if (!identity.more() || !stages_socket_.recv(payload, zmq::recv_flags::dontwait)) continue;
    while (payload.more()) {  // drop extra frames
      zmq::message_t extra;
      if (!stages_socket_.recv(extra, zmq::recv_flags::dontwait)) break;
    }
    try {
      const StageMessage message =
          parse_stage_message(nlohmann::json::parse(payload.to_string_view(), nullptr, false));
      if (!supervisor_) continue;
      std::visit([&](const auto& m) { on_stage(identity.to_string(), m); }, message);
    } catch (const Error& e) {
      spdlog::warn("ignoring a message on the stage endpoint: {}", e.what());
    }
  }
}

/// The stage slot a hello or heartbeat comes from; nullptr for an unknown slot or a late message
/// of a dead process. Marks the slot seen and notes its device and rates.
StageSlot* Daemon::stage_slot(const std::string& role, std::size_t worker, std::int64_t pid,
                              const std::string& device, const StageCounters* counters) {
  const auto slot = supervisor_->slot_of(role, worker);
  if (!slot) return nullptr;
  StageSlot& s = supervisor_->slots()[*slot];
  if (s.pid != pid) return nullptr;
  s.last_seen = Clock::now();
  s.device = device;
  observe_stage(role, worker, static_cast<int>(pid), counters);
  if (counters != nullptr) s.counters = *counters;
  return &s;
}

void Daemon::on_stage(const std::string& identity, const StageHello& m) {
  StageSlot* s = stage_slot(m.role, m.worker, m.pid, m.device, nullptr);
  if (s == nullptr) return;
  s->identity = identity;
  spdlog::debug("stage {}/{} connected", s->role, s->worker);
  if (s->role == "source") resend_source_pending();
}

void Daemon::on_stage(const std::string&, const StageHeartbeat& m) {
  (void)stage_slot(m.role, m.worker, m.pid, m.device, &m.counters);
}

void Daemon::on_stage(const std::string& identity, const JobConfigRequest& m) {
  JobConfigReply reply{m.job, std::nullopt, {}};
  if (const auto guest = guest_jobs_.find(m.job); guest != guest_jobs_.end()) {
    reply.spec = guest->second.spec;
  } else if (const auto it = jobs_.find(m.job); it != jobs_.end()) {
    if (it->second.spec.stream && !it->second.spec.stream->series) {
      it->second.config_waiters.push_back(identity);  // answered once the start message came
      return;
    }
    reply.spec = it->second.spec;
  } else {
    reply.error = "no active job";
  }
  send_stage(identity, reply);
}

void Daemon::on_stage(const std::string&, const PlanAxes& m) {
  const auto it = jobs_.find(m.job);
  if (it != jobs_.end()) save_axes(it->second, m.axes);
  if (const auto guest = guest_jobs_.find(m.job); guest != guest_jobs_.end() && network_) {
    (void)network_->send_to_coordinator(guest->second.coordinator, {{"type", "axes"},
                                                                    {"node", network_->node()},
                                                                    {"job", guest->second.job},
                                                                    {"axes", m.axes}});
  }
}

void Daemon::on_stage(const std::string&, const ShardRead& m) { source_pending_.erase(m.msg); }

void Daemon::reap_stages() {
  if (!supervisor_) return;
  for (const StageExit& exit : supervisor_->reap()) {
    StageSlot& slot = supervisor_->slots()[exit.slot];
    spdlog::warn("stage {}/{} (pid {}) ended: {}; restarting", slot.role, slot.worker, exit.pid,
                 exit.how);
    std::vector<ipc::SlotHeader> held;
    for (auto* ring : {&compressed_, &frames_, &results_}) {
      auto headers = (*ring)->reclaim(exit.pid);
      held.insert(held.end(), headers.begin(), headers.end());
    }
    const auto now = Clock::now();
    const auto at = supervisor_->note_crash(exit.slot, now,
                                            std::chrono::seconds(config_.stage_restart_window_s),
                                            config_.stage_restart_limit);
    if (blame_shards(exit, held, now)) {  // a poison shard: failed, its crashes forgiven
      supervisor_->restart(exit.slot);
      continue;
    }
    if (at > now) {
      spdlog::error(
          "stage {}/{} crashed {} times within {} s (last: {}); restarting it in {:.0f} s",
          slot.role, slot.worker, slot.crashes.size(), config_.stage_restart_window_s, exit.how,
          std::chrono::duration<double>(at - now).count());
      slot.restart_at = at;
      continue;
    }
    supervisor_->restart(exit.slot);
  }
  for (std::size_t i = 0; i < supervisor_->slots().size(); ++i) {
    StageSlot& slot = supervisor_->slots()[i];
    if (slot.pid == 0 && slot.restart_at && Clock::now() >= *slot.restart_at) {
      slot.restart_at.reset();
      supervisor_->restart(i);
    }
  }
}

void Daemon::redo_reclaimed(const std::vector<ipc::SlotHeader>& headers) {
  std::map<std::pair<std::int64_t, std::int64_t>, std::vector<std::int64_t>> by_shard;
  for (const auto& h : headers) {
    by_shard[{static_cast<std::int64_t>(h.job_id), static_cast<std::int64_t>(h.shard_id)}]
        .push_back(static_cast<std::int64_t>(h.frame_index));
  }
  for (const auto& [key, frames] : by_shard) send_frames(key.first, key.second, frames);
}

void Daemon::check_heartbeats() {
  if (!supervisor_) return;
  const auto limit = milliseconds(3 * config_.heartbeat_interval_ms);
  for (std::size_t i = 0; i < supervisor_->slots().size(); ++i) {
    const StageSlot& s = supervisor_->slots()[i];
    if (s.pid > 0 && Clock::now() - s.last_seen > limit) {
      spdlog::error("stage {}/{} (pid {}) stopped answering; killing it", s.role, s.worker, s.pid);
      supervisor_->kill(i);
    }
  }
}

// ---------------------------------------------------------------- reducer

/// Hands what is ready in the results ring to the result sink (guest jobs' results go back to
/// their coordinator from here).
std::size_t Daemon::drain_results(milliseconds timeout) {
  if (!results_) return 0;
  std::size_t n = 0;
  while (n < kMaxResultsPerDrain) {
    auto slot = results_->acquire_read(n == 0 ? timeout : milliseconds(0));
    if (!slot) break;
    ++n;
    if (slot->header().job_id >= static_cast<std::uint64_t>(kFirstGuestJob)) {
      guest_result(*slot);
    } else {
      sink_->add(std::move(*slot));
    }
  }
  return n;
}

/// Hands a peer's row (federation) to the result sink, which copies it.
void Daemon::reduce_frame(ActiveJob& job, const reduce::FrameResult& result) {
  sink_->add(OwnedFrameResult{job.id, result.shard_id, result.frame, result.ok,
                              std::string(result.reason),
                              std::vector<double>(result.sums.begin(), result.sums.end())});
}

std::size_t Daemon::apply_sink_events() {
  const std::vector<SinkEvent> events = sink_->take_events();
  for (const SinkEvent& event : events) {
    std::visit([this](const auto& e) { apply(e); }, event);
  }
  return events.size();
}

void Daemon::apply(const FrameFailedEvent& event) {
  if (!jobs_.contains(event.job)) return;  // ended meanwhile (cancelled): not counted
  store_->record_frame_error(event.job, event.frame, event.reason);
}

/// A shard file is .done: the store marks the shard done (in this order: crash recovery).
void Daemon::apply(const ShardCommittedEvent& event) {
  const auto it = jobs_.find(event.job);
  if (it == jobs_.end()) return;  // ended meanwhile: its store record does not count the shard
  ActiveJob& job = it->second;
  if (!event.error.empty()) {
    end_job(job, JobState::kFailed,
            "shard " + std::to_string(event.shard) + " not committed: " + event.error, false);
    return;
  }
  const bool counted =
      store_->mark_shard_done(job.id, event.shard, static_cast<std::int64_t>(event.frames),
                              static_cast<std::int64_t>(event.failed));
  log_event(job, "shard " + std::to_string(event.shard) + " done frames=" +
                     std::to_string(event.frames) + " failed=" + std::to_string(event.failed) +
                     (counted ? "" : " (already done: not counted)"));
  job.running.erase(event.shard);
  job.remote.erase(event.shard);
  shard_crashes_.erase({job.id, event.shard});  // a later crash starts its count again
  std::erase_if(job.queued, [&](const ShardRecord& q) { return q.shard_id == event.shard; });
  if (counted) ++job.shards_done;  // not counted: done before (activate counted it)
  if (job.shards_done == job.shards_total) finish_job(job);
}

void Daemon::apply(const OutputWrittenEvent& event) {
  finishing_.erase(event.job);
  store_->set_job_state(event.job, event.state, event.reason);
  std::ofstream out(config_.state_dir / "jobs" / std::to_string(event.job) / "events.log",
                    std::ios::app);
  out << iso_utc(unix_ms()) << " job " << job_state_name(event.state) << "\n";
}

void Daemon::settle_sink() {
  do {
    sink_->wait_idle();
  } while (apply_sink_events() > 0);
}

}  // namespace azflow::daemon
