#pragma once
// azflowd's core: the job logic behind the control endpoint (ControlHandler), the scheduler that
// cuts jobs into shards and hands them to the source stage, the supervisor of the stage
// processes, and the result sink (daemon/result_sink.hpp) that turns the results ring into shard
// files and NeXus outputs. The job logic runs on one thread (the main loop in run()); the result
// sink's disk work (rows, shard commits, output assembly) runs on its own threads, so the control
// endpoint answers while a large output is written; stage processes do the heavy work. See
// docs/architecture.md.
//
// Scheduling: jobs whose `after` dependencies have all succeeded, by priority (higher first),
// then submission order; a job that has shards in flight is never preempted. At most
// config.max_running_jobs jobs have shards handed out at once, and at most 2 x (decompress +
// integrate workers) shards are in flight in all. split: any number of a job's shards in flight
// (every worker shares the dataset, since all workers take from the same rings); bulk: one shard of
// the job in flight at a time (the job keeps about one worker busy; several bulk jobs run side by
// side).
//
// Exactly once: the reducer ignores a frame index already in its shard; frames a crashed stage
// held (Ring::reclaim) and whole shard messages the source had not finished are sent to the
// source again; a watchdog re-requests frames of a shard that stalls with every ring empty.
//
// Federation (daemon_federation.cpp, docs/federation.md): with a peer endpoint, split jobs with
// spec.nodes also hand shards to peer daemons that ask for work; their result rows go through
// reduce_frame like local results. Shards of peers' jobs run here as guest shards (job ids >=
// kFirstGuestJob, never in the store), their rows sent back instead of reduced.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "daemon/config.hpp"
#include "daemon/control.hpp"
#include "daemon/federation/peer_network.hpp"
#include "daemon/federation/rate_limited_log.hpp"
#include "daemon/gpu_placement.hpp"
#include "daemon/http_server.hpp"
#include "daemon/instance_lock.hpp"
#include "daemon/job_output.hpp"
#include "daemon/job_store.hpp"
#include "daemon/result_sink.hpp"
#include "daemon/service_notify.hpp"
#include "daemon/stage_messages.hpp"
#include "daemon/supervisor.hpp"
#include "ipc/ring.hpp"
#include "stages/reduce/reducer.hpp"

namespace azflow::daemon {

/// Federation: a shard of this node's job that a peer holds.
struct RemoteShard {
  std::string node;  ///< the holder: only its authenticated messages count for the shard
  std::chrono::steady_clock::time_point since;    ///< when it was handed out
  std::int64_t first_frame = 0, frame_count = 0;  ///< the shard's job frames
};

/// A job the daemon is working on (queued or running), in memory.
struct ActiveJob {
  std::int64_t id = 0;
  JobSpec spec;
  std::int64_t frames_total = 0;
  std::filesystem::path dir;  ///< <state>/jobs/<id>: shard files, layout.json, events.log
  std::string output;
  std::size_t frame_bytes = 0;  ///< decoded frame size (ring sizing)
  std::size_t bins = 0;
  std::optional<nlohmann::json> axes;  ///< plan axes (from an integrate worker or layout.json)
  std::deque<ShardRecord> queued;      ///< not yet handed out, by shard id
  std::map<std::int64_t, ShardRecord> running;
  std::size_t shards_total = 0;
  std::size_t shards_done = 0;
  bool started = false;
  std::int64_t priority = 0;              ///< higher first among queued jobs (ties: lower id)
  std::vector<std::int64_t> waiting_for;  ///< `after` jobs not yet succeeded (held while any)
  // federation (split jobs with spec.nodes): docs/federation.md
  std::map<std::int64_t, RemoteShard> remote;  ///< shards held by peers, by shard id
  std::set<std::string> participants;          ///< peers that were handed shards
  std::set<std::string> excluded;              ///< peers that cannot read the dataset
  // stream jobs (spec.stream): docs/streams.md, "Stream jobs in the daemon"
  std::vector<std::string> config_waiters;  ///< integrate stages asking before the start arrived
  nlohmann::json stream_counts;             ///< the source's receive counters (null until sent)
};

/// What the daemon derives from one stage slot's heartbeats: its recent rates (the slot itself,
/// with pid, device and counters, is the supervisor's StageSlot).
struct StageObservation {
  int pid = 0;
  std::uint64_t frames_out = 0;
  double busy_s = 0;
  std::chrono::steady_clock::time_point at{};
  double frames_per_s = 0;   ///< over the last heartbeat interval
  double busy_fraction = 0;  ///< busy seconds per second over the last heartbeat interval
};

/// Federation, worker side: another node's job whose shards this node integrates. Its local id
/// (>= kFirstGuestJob) names it in the rings and to the stages.
struct GuestJob {
  std::string coordinator;  ///< node that coordinates the job
  std::int64_t job = 0;     ///< the job's id at the coordinator
  JobSpec spec;
  std::size_t frame_bytes = 0, bins = 0;
  std::string error;  ///< non-empty: this node cannot read the dataset (reported back)
};

/// Federation, worker side: one shard of a guest job in this node's pipeline.
struct GuestShard {
  std::set<std::int64_t> expected;  ///< frame indexes asked for
  std::set<std::int64_t> sent;      ///< frames whose rows went back to the coordinator
};

/// Writes `text` to `path` through a temporary file renamed over it. Throws azflow::Error (kIo).
void write_file_atomically(const std::filesystem::path& path, const std::string& text);

/// Bytes a stream job's frames take in the rings: the series' image size once the start message
/// arrived, else stream.max_frame_mib. `running`: the job was running when the daemon stopped;
/// one whose series had started resumes from its raw spool, and without one cannot be resumed
/// (its images are gone): throws azflow::Error.
std::size_t stream_frame_bytes(const JobSpec& spec, bool running);

/// The datasets from which a stream job's frames are read again (a crashed stage held them):
/// its raw spool's master once the series started with `save_raw`, else none (such frames
/// fail: nothing holds them).
std::vector<std::string> stream_redo_datasets(const JobSpec& spec);

/// First local id of guest jobs (far above any job-store id).
inline constexpr std::int64_t kFirstGuestJob = std::int64_t{1} << 40;

/// Ring shapes currently created.
struct PipelineShape {
  std::size_t compressed_bytes = 0, frames_bytes = 0, results_bytes = 0;
};

class Daemon : public ControlHandler {
 public:
  /// Starts the daemon's state: removes stale shared memory of the instance, opens the store,
  /// requeues shards left running by a crash, loads unfinished jobs, binds the control, stage and
  /// live endpoints. Stage processes and rings start with the first job. Throws azflow::Error on
  /// any failure (nothing is left running).
  explicit Daemon(DaemonConfig config);
  ~Daemon() override;
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Serves until `stop` turns true or a client asks to shut down, notifying a service manager
  /// ($NOTIFY_SOCKET: READY=1, STATUS=, WATCHDOG=1, STOPPING=1). Stopping: no new shards are
  /// handed out and enqueue is refused; the shards in flight get config.stop_timeout_s seconds
  /// to finish; those still running are recorded as queued; then the stages stop and the rings
  /// are removed. Returns the exit code (0).
  int run(const std::atomic<bool>& stop);

  nlohmann::json enqueue(const EnqueueRequest& request) override;
  nlohmann::json status(const StatusRequest& request) override;
  nlohmann::json list(const ListRequest& request) override;
  nlohmann::json cancel(const CancelRequest& request) override;
  nlohmann::json shutdown(const ShutdownRequest& request) override;
  nlohmann::json retry(const RetryRequest& request) override;
  nlohmann::json workers(const WorkersRequest& request) override;
  nlohmann::json stats(const StatsRequest& request) override;
  nlohmann::json config(const ConfigRequest& request) override;
  nlohmann::json drain(const DrainRequest& request) override;
  nlohmann::json peers(const PeersRequest& request) override;

 private:
  // jobs
  void resume_jobs();
  void resume_job(const JobRecord& record);
  std::string activate_new(std::int64_t id, JobSpec& spec, std::optional<OutputBinding> binding);
  void activate(const JobRecord& record);
  /// `node_slots` > 0 (a split job shared with peers: federation_slots): shards are also cut
  /// to about one per pipeline slot of every node taking part, ceil(frames / node_slots) frames
  /// each, so that every node gets work; shard_frames stays the upper bound.
  std::vector<ShardPlan> cut_shards(std::int64_t frames, std::size_t bins,
                                    std::size_t node_slots = 0) const;
  void finish_job(ActiveJob& job);
  /// Ends a job: hands its output to the result sink (final or .partial) and forgets it; the
  /// store records its final state once that output file is on disk (OutputWrittenEvent).
  void end_job(ActiveJob& job, JobState state, const std::string& reason, bool finish_output);
  bool ensure_axes(ActiveJob& job);
  void save_axes(ActiveJob& job, const nlohmann::json& axes);
  void log_event(const ActiveJob& job, const std::string& line) const;

  // dependencies, admission (daemon_verbs.cpp)
  void check_admission(const EnqueueRequest& request) const;
  /// Checks a new job's output_path ("" = the default, bound later): its folder bound
  /// (bind_output_folder) and inside the allowed output roots once canonical, nothing there
  /// unless spec.overwrite (then no folder), and no live job (queued, running or writing its
  /// output) claiming the same file. Throws FieldError ("spec.output_path") naming the path and
  /// the other job's id.
  std::optional<OutputBinding> claim_output(const JobSpec& spec) const;
  void settle_dependencies();
  void observe_stage(const std::string& role, std::size_t worker, int pid,
                     const StageCounters* counters);
  void sample_throughput();
  nlohmann::json rings_json() const;

  // scheduler
  void dispatch();
  /// Shards this node keeps in flight at most (its own and guest shards): twice its decompress
  /// plus integrate workers.
  [[nodiscard]] std::size_t pipeline_slots() const;
  bool ensure_pipeline(std::size_t frame_bytes, std::size_t bins);
  /// Whether the rings exist and are big enough for frames of `frame_bytes` and `bins` bins.
  [[nodiscard]] bool pipeline_fits(std::size_t frame_bytes, std::size_t bins) const;
  /// Whether shards (own or guest) are in flight, so the rings cannot be re-created now.
  [[nodiscard]] bool pipeline_busy() const;
  /// Bytes of /dev/shm this daemon's rings hold now (ring_total_bytes of the current shape).
  [[nodiscard]] std::size_t ring_bytes_held() const;
  bool start_shards(ActiveJob& job, std::size_t& in_flight, std::size_t limit);
  void fail_start(ActiveJob& job, const std::string& what, bool pipeline_broken);
  void start_pipeline(const PipelineShape& shape);
  void stop_pipeline();
  /// Decides once, at start, where the integrate workers run (GPU or CPU) and logs it.
  void place_integrate_workers_once();
  void send_shard(ActiveJob& job, const ShardRecord& shard);
  void send_frames(std::int64_t job, std::int64_t shard, const std::vector<std::int64_t>& frames);
  void send_to_source(ShardWork work);
  void resend_source_pending();
  void broadcast(const DaemonMessage& message);
  void watchdog();

  // stages
  void poll_stages();
  StageSlot* stage_slot(const std::string& role, std::size_t worker, std::int64_t pid,
                        const std::string& device, const StageCounters* counters);
  void on_stage(const std::string& identity, const StageHello& message);
  void on_stage(const std::string& identity, const StageHeartbeat& message);
  void on_stage(const std::string& identity, const JobConfigRequest& message);
  void on_stage(const std::string& identity, const PlanAxes& message);
  void on_stage(const std::string& identity, const ShardRead& message);
  void on_stage(const std::string& identity, const StreamStarted& message);
  void on_stage(const std::string& identity, const StreamProgress& message);
  // stream jobs (daemon_stream.cpp)
  nlohmann::json enqueue_stream(const EnqueueRequest& request, JobSpec& spec,
                                const std::optional<OutputBinding>& binding);
  std::string size_stream_job(ActiveJob& job, const StreamStarted& message);
  void send_stream_shard(ActiveJob& job, const ShardRecord& shard);
  /// Opens shard `shard` (job frames first..first+count-1) of `job` in the result sink, with the
  /// job's bins, error model and sigma clipping.
  void open_sink_shard(const ActiveJob& job, std::int64_t shard, std::int64_t first,
                       std::int64_t count);
  [[nodiscard]] nlohmann::json stream_counts_json(std::int64_t job_id) const;
  void send_stage(const std::string& identity, const DaemonMessage& message);
  void reap_stages();
  void redo_reclaimed(const std::vector<ipc::SlotHeader>& headers);
  // poison shards (daemon_crashes.cpp)
  /// Counts a crash of a stage against each shard whose frames it held (`held`, reclaimed) and
  /// redoes those frames, except for a shard that reached config.shard_crash_limit crashes: its
  /// missing frames are failed ("stage ... crashed N times on this shard") and its crashes are
  /// forgotten by the slots (not held against other jobs). True if the crash made a poison shard.
  bool blame_shards(const StageExit& exit, const std::vector<ipc::SlotHeader>& held,
                    std::chrono::steady_clock::time_point now);
  /// Fails every frame of the shard not yet written (own job: through the sink; guest shard:
  /// failed rows and shard_end to its coordinator) with `reason`; nothing of it is redone.
  void fail_poison_shard(std::int64_t job, std::int64_t shard, const std::string& reason);
  void check_heartbeats();

  // result sink (its threads do the work; these hand it over and apply what it reports)
  std::size_t drain_results(std::chrono::milliseconds timeout);
  void reduce_frame(ActiveJob& job, const reduce::FrameResult& result);
  std::size_t apply_sink_events();
  void apply(const FrameFailedEvent& event);
  void apply(const ShardCommittedEvent& event);
  void apply(const OutputWrittenEvent& event);
  /// Waits for the result sink to finish everything handed over (and what that leads to).
  void settle_sink();

  nlohmann::json daemon_status() const;
  void start_http();

  // service stop and notifications (run())
  std::chrono::steady_clock::time_point begin_stop();
  void end_stop();
  std::size_t shards_in_flight() const;
  ServiceCounters service_counters() const;
  // federation (daemon_federation.cpp)
  void start_federation();
  void warn_client_keys_moved() const;
  void poll_peers();
  void handle_peer_message(PeerMessage& message);
  // ... coordinator side: peers work for this node's jobs
  void peer_heartbeat(const std::string& node, const nlohmann::json& body);
  void peer_wants(const std::string& node, std::size_t count);
  nlohmann::json hand_out(ActiveJob& job, const std::string& node);
  void peer_row(PeerMessage& message);
  /// The shard `shard` of `job` if `node` holds it (and, with `frame`, the frame lies in it);
  /// otherwise nullptr, and for a shard still open (its frames could still be written) the
  /// refused `what` is counted and logged (rate-limited).
  const RemoteShard* held_by(const ActiveJob& job, std::int64_t shard, const std::string& node,
                             const std::string& what, std::optional<std::int64_t> frame = {});
  void peer_shard_back(const std::string& node, const nlohmann::json& body, const std::string& why);
  void peer_lost(const std::string& node);
  void requeue_remote(ActiveJob& job, std::int64_t shard_id, const std::string& why);
  void end_remote_shards(ActiveJob& job);
  [[nodiscard]] bool eligible(const ActiveJob& job, const std::string& node) const;
  /// Pipeline slots of the nodes a new split job with `spec` would be shared with now: this
  /// node's plus each connected peer's that spec.nodes selects (the "slots" of its capacity);
  /// 0 when no peer would take part (federation off, nodes local, none connected).
  [[nodiscard]] std::size_t federation_slots(const JobSpec& spec) const;
  /// Shards of `job` this node runs at once while eligible peers are connected: its share,
  /// ceil(shards_total x own slots / slots of all eligible nodes), at least 1; otherwise no
  /// limit beyond the pipeline's (SIZE_MAX).
  [[nodiscard]] std::size_t local_share(const ActiveJob& job) const;
  [[nodiscard]] bool offers_for(const std::string& node) const;
  void announce_offers();
  // ... worker side: this node works for peers' jobs
  void request_work();
  void guest_shard(const std::string& coordinator, const nlohmann::json& body);
  GuestJob& guest_job(const std::string& coordinator, const nlohmann::json& body);
  void guest_cancel(const std::string& coordinator, std::int64_t job);
  void guest_drop(std::int64_t guest_id, std::int64_t shard);
  void give_back_guest_shards();
  void guest_result(const ipc::ReadSlot& slot);
  void guest_redo(std::int64_t guest_id, std::int64_t shard, std::vector<std::int64_t> frames);
  nlohmann::json heartbeat_extras(const std::string& node) const;
  [[nodiscard]] std::size_t local_in_flight() const;
  [[nodiscard]] bool is_guest(std::int64_t job_id) const { return guest_jobs_.contains(job_id); }

  DaemonConfig config_;
  std::unique_ptr<InstanceLock> lock_;  // first: no other azflowd on this instance or state dir
  zmq::context_t context_{1};
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<ControlServer> control_;
  zmq::socket_t stages_socket_;
  std::map<std::int64_t, ActiveJob> jobs_;  // by id = submission order
  std::optional<ipc::Ring> compressed_, frames_, results_;
  PipelineShape shape_;
  std::unique_ptr<Supervisor> supervisor_;
  IntegratePlacement integrate_placement_;  // integrate workers' devices (gpu_placement.hpp)
  std::unique_ptr<ResultSink> sink_;        // reducer, shard files, outputs, live PUB (own threads)
  std::set<std::int64_t> finishing_;        // jobs whose output the sink is writing
  std::map<std::int64_t, ShardWork> source_pending_;  // msg id -> shard message
  std::int64_t next_msg_ = 1;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_periodic_{};
  int stall_ticks_ = 0;
  bool shutdown_ = false;
  ServiceNotifier notifier_;
  bool draining_ = false;  ///< `drain`: no new jobs (enqueue and retry refused)
  std::map<std::string, StageObservation> observed_;  // by "role/worker"
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>> throughput_;
  // federation
  std::unique_ptr<PeerNetwork> network_;
  std::map<std::int64_t, GuestJob> guest_jobs_;                               // by local guest id
  std::map<std::pair<std::string, std::int64_t>, std::int64_t> guest_ids_;    // (coord, job) -> id
  std::map<std::pair<std::int64_t, std::int64_t>, GuestShard> guest_shards_;  // (guest id, shard)
  std::map<std::string, std::chrono::steady_clock::time_point> wants_;  // coordinator -> asked
  std::map<std::string, bool> offered_;  // worker -> the last "offers" it was told
  std::int64_t next_guest_ = kFirstGuestJob;
  std::uint64_t rows_unsent_ = 0;
  /// Stage crashes while holding frames of a shard, by (job, shard): the slots and times.
  std::map<std::pair<std::int64_t, std::int64_t>,
           std::vector<std::pair<std::size_t, std::chrono::steady_clock::time_point>>>
      shard_crashes_;
  RateLimitedLog peer_refusals_{"refused peer messages", std::chrono::seconds(10)};
  // last: destroyed first (its threads hand requests to this object's main loop)
  std::unique_ptr<HttpServer> http_;  // HTTP API (docs/http.md); null when off
};

}  // namespace azflow::daemon
