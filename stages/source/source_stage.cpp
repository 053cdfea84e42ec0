#include "stages/source/source_stage.hpp"

#include <chrono>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "base/error.hpp"
#include "daemon/job_setup.hpp"
#include "daemon/job_spec.hpp"
#include "stages/source/dataset.hpp"
#include "stages/source/stream_task.hpp"

namespace azflow::source {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMaxOpenDatasets = 4;
constexpr auto kFollowPoll = std::chrono::milliseconds(50);  // follow mode: looks for new frames

/// One shard message being worked through.
struct Task {
  std::int64_t job = 0;
  std::int64_t shard = 0;
  std::vector<std::string> datasets;
  std::string dataset_path;
  std::vector<std::int64_t> frames;  ///< explicit list, or empty: first..first+count
  std::int64_t first = 0;
  std::int64_t count = 0;
  std::int64_t offset = 0;                 ///< input frame of job frame 0 (ShardWork::offset)
  std::size_t next = 0;                    ///< position in the task
  std::int64_t msg = 0;                    ///< the daemon's message id, echoed in shard_read
  std::optional<double> follow_timeout_s;  ///< follow mode (ShardWork::follow_timeout_s)

  [[nodiscard]] std::size_t size() const {
    return frames.empty() ? static_cast<std::size_t>(count) : frames.size();
  }
  [[nodiscard]] std::int64_t frame_at(std::size_t k) const {
    return frames.empty() ? first + static_cast<std::int64_t>(k) : frames[k];
  }
};

/// An open dataset (or why it could not be opened), cached by job.
struct OpenDataset {
  std::int64_t job = 0;
  std::unique_ptr<Dataset> dataset;
  std::string error;
  std::string file;
  /// Follow mode: the idle timeout, the frames seen and when their count last grew.
  std::optional<double> follow_timeout_s;
  std::size_t frames_seen = 0;
  Clock::time_point last_growth{};
};

class SourceStage {
 public:
  explicit SourceStage(daemon::StageRuntime& rt)
      : rt_(rt),
        compressed_(daemon::open_stage_ring(rt.instance, "compressed")),
        frames_(daemon::open_stage_ring(rt.instance, "frames")) {}

  int run() {
    while (!rt_.should_stop()) {
      rt_.heartbeat();
      if (tasks_.empty() && streams_.empty()) {
        if (auto message = rt_.link.receive(daemon::kStagePollInterval)) handle(*message);
        continue;
      }
      while (auto message = rt_.link.receive(std::chrono::milliseconds(0))) handle(*message);
      step_streams();
      if (!tasks_.empty()) step();
    }
    return 0;
  }

 private:
  void handle(const daemon::DaemonMessage& message) {
    if (rt_.note_cancel(message)) return;  // dropped in step(): no task is erased under us
    if (const auto* end = std::get_if<daemon::JobEnd>(&message)) {
      // files may change before a retry: reopen
      std::erase_if(open_, [job = end->job](const OpenDataset& d) { return d.job == job; });
      if (!streams_.empty()) ended_streams_.push_back(end->job);  // dropped in step_streams()
      return;
    }
    const auto* work = std::get_if<daemon::ShardWork>(&message);
    if (work == nullptr) return;
    if (work->stream) return add_stream(*work);
    if (redo_stream(*work)) return;
    Task t;
    t.job = work->job;
    t.shard = work->shard;
    t.datasets = work->datasets;
    t.dataset_path = work->dataset_path;
    t.msg = work->msg;
    t.frames = work->frames;
    t.first = work->first;
    t.offset = work->offset;
    t.count = work->frames.empty() ? work->count : 0;
    t.follow_timeout_s = work->follow_timeout_s;
    tasks_.push_back(std::move(t));
  }

  /// Pushes the next frame of the front task; finishes the task after its last frame.
  void step() {
    while (!tasks_.empty() && cancelled(tasks_.front().job)) {
      const std::int64_t job = tasks_.front().job;
      std::erase_if(open_, [job](const OpenDataset& d) { return d.job == job; });
      tasks_.pop_front();
    }
    if (tasks_.empty()) return;
    if (!follow_ready(tasks_.front())) {  // its next frame is not written yet: others go first
      tasks_.push_back(std::move(tasks_.front()));
      tasks_.pop_front();
      if (++waiting_ >= tasks_.size()) {  // every task waits for a frame
        waiting_ = 0;
        std::this_thread::sleep_for(kFollowPoll);
      }
      return;
    }
    waiting_ = 0;
    Task& t = tasks_.front();
    if (t.next < t.size()) {
      if (!push_frame(t, t.frame_at(t.next))) return;  // stopped or cancelled meanwhile
      ++t.next;
    }
    if (!tasks_.empty() && &tasks_.front() == &t && t.next >= t.size()) {
      rt_.link.send(daemon::ShardRead{t.job, t.shard, t.msg});
      tasks_.pop_front();
    }
  }

  /// A stream job's shard: a StreamTask (a socket that cannot connect fails the job's start).
  void add_stream(const daemon::ShardWork& work) {
    std::erase_if(streams_, [&](const auto& t) { return t->job() == work.job; });  // resent
    try {
      streams_.push_back(std::make_unique<StreamTask>(
          rt_, compressed_,
          [this](ipc::Ring& ring, std::int64_t job) { return wait_slot(ring, job); }, work));
    } catch (const Error& e) {
      spdlog::error("source: {}", e.what());
      rt_.link.send(daemon::StreamStarted{work.job, work.shard, std::nullopt, {}, e.what()});
    }
  }

  /// Frames of a stream job asked for again while its series is being received with a raw
  /// spool: its task reads them back from the spool (true). Otherwise false: the frames are
  /// read as a file job's, from the datasets the daemon names (the closed spool's master).
  bool redo_stream(const daemon::ShardWork& work) {
    for (const auto& t : streams_) {
      if (t->job() != work.job || !t->has_spool()) continue;
      std::vector<std::int64_t> frames = work.frames;
      if (frames.empty()) {
        for (std::int64_t f = work.first; f < work.first + work.count; ++f) frames.push_back(f);
      }
      t->redo(frames);
      rt_.link.send(daemon::ShardRead{work.job, work.shard, work.msg});
      return true;
    }
    return false;
  }

  /// Lets each stream job take what arrived (waiting a little when there is nothing else to do),
  /// and drops those done, cancelled or ended by the daemon.
  void step_streams() {
    for (const std::int64_t job : ended_streams_) {
      std::erase_if(streams_, [job](const auto& t) { return t->job() == job; });
    }
    ended_streams_.clear();
    std::erase_if(streams_, [this](const auto& t) { return cancelled(t->job()); });
    if (streams_.empty()) return;
    const auto n = static_cast<std::chrono::milliseconds::rep>(streams_.size());
    const std::chrono::milliseconds wait =
        tasks_.empty() ? daemon::kStagePollInterval / n : std::chrono::milliseconds(0);
    for (std::size_t i = 0; i < streams_.size();) {
      if (streams_[i]->step(wait)) {
        streams_.erase(streams_.begin() + static_cast<std::ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
  }

  OpenDataset& dataset_for(const Task& t) {
    for (auto it = open_.begin(); it != open_.end(); ++it) {
      if (it->job == t.job) {
        open_.splice(open_.begin(), open_, it);
        return open_.front();
      }
    }
    OpenDataset d;
    d.job = t.job;
    d.file = t.datasets.empty() ? "" : t.datasets.front();
    try {
      daemon::JobSpec spec;
      spec.datasets = t.datasets;
      spec.dataset_path = t.dataset_path;
      spec.follow_timeout_s = t.follow_timeout_s;
      d.dataset = std::make_unique<Dataset>(daemon::open_job_dataset(spec, true));
      d.follow_timeout_s = t.follow_timeout_s;
      d.frames_seen = d.dataset->info().frames;
      d.last_growth = Clock::now();
    } catch (const Error& e) {
      d.error = e.what();
    }
    open_.push_front(std::move(d));
    if (open_.size() > kMaxOpenDatasets) open_.pop_back();
    return open_.front();
  }

  /// Follow mode: whether the task's next frame can be read now, or has waited the idle timeout
  /// without the series growing (then push_frame fails it). Looks for new frames without
  /// waiting, so that a series still being written never holds up other jobs' frames.
  bool follow_ready(const Task& t) {
    if (!t.follow_timeout_s || t.next >= t.size()) return true;
    OpenDataset& d = dataset_for(t);
    if (!d.dataset) return true;
    const std::int64_t input = t.offset + t.frame_at(t.next);
    if (input < 0 || static_cast<std::size_t>(input) < d.dataset->info().frames) return true;
    if (d.dataset->refresh() > d.frames_seen) {
      d.frames_seen = d.dataset->info().frames;
      d.last_growth = Clock::now();
    }
    return static_cast<std::size_t>(input) < d.frames_seen ||
           Clock::now() - d.last_growth > std::chrono::duration<double>(*d.follow_timeout_s);
  }

  bool cancelled(std::int64_t job) const { return rt_.cancelled_jobs.contains(job); }

  std::optional<ipc::WriteSlot> wait_slot(ipc::Ring& ring, std::int64_t job) {
    return daemon::wait_write(
        rt_, ring, [this](const daemon::DaemonMessage& m) { handle(m); },
        [this, job] { return cancelled(job); });
  }

  static void fill_identity(ipc::SlotHeader& h, const Task& t, std::int64_t frame) {
    h.job_id = static_cast<std::uint64_t>(t.job);
    h.shard_id = static_cast<std::uint64_t>(t.shard);
    h.frame_index = static_cast<std::uint64_t>(frame);
  }

  /// Reads one frame into a slot; false if the stage stopped or the job was cancelled.
  bool push_frame(const Task& t, std::int64_t frame) {
    const std::int64_t job = t.job;
    OpenDataset& d = dataset_for(t);
    ++rt_.counters.frames_in;
    if (!d.dataset) return push_failed(t, frame, frame_reason(frame, d, d.error));
    const auto start = Clock::now();
    bool direct = false;
    decompress::CodecParams codec;
    std::size_t bytes = 0;
    const std::int64_t input = t.offset + frame;  // the frame of the input series
    try {
      if (input < 0 || static_cast<std::size_t>(input) >= d.dataset->info().frames) {
        throw Error(ErrorCategory::kInput,
                    "input frame " + std::to_string(input) +
                        (d.follow_timeout_s ? " not written within the follow idle timeout of " +
                                                  std::to_string(*d.follow_timeout_s) + " s; "
                                            : " beyond the dataset's ") +
                        std::to_string(d.dataset->info().frames) + " frames" +
                        (d.follow_timeout_s ? " found" : ""));
      }
      codec = d.dataset->frame_codec(static_cast<std::size_t>(input));
      if (codec.codec != decompress::Codec::kOther) {
        bytes = d.dataset->chunk_bytes(static_cast<std::size_t>(input));
        if (bytes == 0) throw Error(ErrorCategory::kInput, "no chunk stored for this frame");
        direct = bytes <= compressed_.slot_bytes();
      }
    } catch (const Error& e) {
      return push_failed(t, frame, frame_reason(frame, d, e.what()));
    }
    rt_.counters.busy_s += std::chrono::duration<double>(Clock::now() - start).count();
    auto slot = wait_slot(direct ? compressed_ : frames_, job);
    if (!slot) return false;
    const auto read_start = Clock::now();
    ipc::SlotHeader& h = slot->header();
    fill_identity(h, t, frame);
    const DatasetInfo& info = d.dataset->info();
    h.dtype = static_cast<std::uint32_t>(info.dtype);
    h.elem_size = static_cast<std::uint32_t>(dtype_size(info.dtype));
    h.rows = info.rows;
    h.cols = info.cols;
    try {
      read_into(*d.dataset, input, direct, *slot);
    } catch (const Error& e) {
      h.status = ipc::SlotStatus::kFailed;
      h.bytes = 0;
      h.set_reason(frame_reason(frame, d, e.what()));
      ++rt_.counters.failed;
    }
    slot->commit();
    ++rt_.counters.frames_out;
    // busy_s: time spent reading, by file tasks and stream tasks alike (stream_task.cpp)
    rt_.counters.busy_s += std::chrono::duration<double>(Clock::now() - read_start).count();
    rt_.delay();
    return true;
  }

  /// Reads input frame `input` (not the job frame) into the slot.
  void read_into(Dataset& ds, std::int64_t input, bool direct, ipc::WriteSlot& slot) {
    ipc::SlotHeader& h = slot.header();
    const auto index = static_cast<std::size_t>(input);
    if (direct) {
      const RawChunk raw = ds.read_chunk(index, slot.payload());
      h.kind = ipc::PayloadKind::kCompressedChunk;
      h.codec = static_cast<std::uint32_t>(raw.codec.codec);
      h.elem_size = static_cast<std::uint32_t>(raw.codec.elem_size);
      h.block_size = static_cast<std::uint32_t>(raw.codec.block_elements);
      h.bytes = raw.bytes;
      return;
    }
    const std::size_t bytes = ds.info().frame_bytes();
    if (bytes > slot.payload().size()) {
      throw Error(ErrorCategory::kResource, "decoded frame of " + std::to_string(bytes) +
                                                " bytes is larger than a frames " + "ring slot (" +
                                                std::to_string(slot.payload().size()) + " bytes)");
    }
    ds.read_frame(index, slot.payload().first(bytes));
    h.kind = ipc::PayloadKind::kFrame;
    h.codec = static_cast<std::uint32_t>(decompress::Codec::kNone);
    h.bytes = bytes;
  }

  bool push_failed(const Task& t, std::int64_t frame, const std::string& reason) {
    auto slot = wait_slot(compressed_, t.job);
    if (!slot) return false;
    fill_identity(slot->header(), t, frame);
    slot->header().status = ipc::SlotStatus::kFailed;
    slot->header().set_reason(reason);
    slot->commit();
    ++rt_.counters.failed;
    ++rt_.counters.frames_out;
    return true;
  }

  /// "frame N: what" with N the job frame, as every stage names it: the daemon turns it into the
  /// input frame and names its own file and dataset (daemon/frame_origin.hpp; d.file is only the
  /// job's first file, wrong for a frame of another).
  static std::string frame_reason(std::int64_t frame, const OpenDataset& /*d*/,
                                  const std::string& what) {
    return daemon::frame_reason(frame, {}, {}, what);
  }

  daemon::StageRuntime& rt_;
  ipc::Ring compressed_;
  ipc::Ring frames_;
  std::deque<Task> tasks_;
  std::vector<std::unique_ptr<StreamTask>> streams_;  ///< stream jobs being received
  std::vector<std::int64_t> ended_streams_;           ///< JobEnd seen: drop their streams
  std::list<OpenDataset> open_;
  std::size_t waiting_ = 0;  ///< tasks passed over in a row, each waiting for a follow frame
};

}  // namespace

int run_source_stage(daemon::StageRuntime& rt) {
  SourceStage stage(rt);
  return stage.run();
}

}  // namespace azflow::source
