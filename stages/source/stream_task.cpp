#include "stages/source/stream_task.hpp"

#include <algorithm>
#include <cstring>
#include <deque>
#include <filesystem>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "base/error.hpp"
#include "daemon/job_setup.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/reduce/output_dir.hpp"
#include "stages/source/raw_spool.hpp"
#include "stages/source/stream_series.hpp"

namespace azflow::source {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace s2 = stream2;

constexpr int kReceiveQueueMessages = 64;  ///< ZeroMQ receive high-water mark
constexpr int kMessagesPerStep = 8;        ///< then the stage looks at its link and other jobs
constexpr auto kProgressInterval = std::chrono::seconds(1);

using Parts = std::vector<zmq::message_t>;

}  // namespace

struct StreamTask::State {
  enum class Phase { kWaitStart, kReceiving, kDone };

  daemon::StageRuntime& rt;
  ipc::Ring& compressed;
  WaitSlot wait_slot;
  std::int64_t job, shard, msg;
  daemon::StreamWork work;
  zmq::context_t context{1};
  zmq::socket_t socket{context, zmq::socket_type::pull};
  Phase phase = Phase::kWaitStart;
  StreamCounts before;                   ///< counted while waiting for the start message
  std::optional<s2::Start> held_start;   ///< v1 start without an image type: next image tells
  std::optional<SeriesTracker> tracker;  ///< from the start message on
  daemon::StreamSeries series;
  std::optional<RawSpool> spool;     ///< work.save_raw: the series' raw spool
  std::deque<std::uint64_t> replay;  ///< image ids to give again from the spool
  bool spool_ended = false;          ///< resumed from a closed spool: the series had ended
  std::size_t not_spooled = 0;       ///< accepted images the spool could not hold
  std::string first_not_spooled;
  Clock::time_point last_message{}, first_image{}, last_progress{};
  std::size_t pushed = 0;
  double slot_wait_s = 0;  ///< of the message being handled: time waiting for a ring slot

  State(daemon::StageRuntime& r, ipc::Ring& c, WaitSlot w, const daemon::ShardWork& sw)
      : rt(r),
        compressed(c),
        wait_slot(std::move(w)),
        job(sw.job),
        shard(sw.shard),
        msg(sw.msg),
        work(*sw.stream) {
    socket.set(zmq::sockopt::rcvhwm, kReceiveQueueMessages);
    socket.set(zmq::sockopt::linger, 0);
    try {
      socket.connect(work.endpoint);
    } catch (const zmq::error_t& e) {
      throw Error(ErrorCategory::kConfig, "stream job " + std::to_string(job) +
                                              ": cannot connect to " + work.endpoint + ": " +
                                              e.what());
    }
    if (work.resume) {
      resume(*work.resume);
      return;
    }
    spdlog::info("source: job {} waiting for a start message from {} ({})", job, work.endpoint,
                 work.format);
  }

  /// The spool's options: every append HDF5-flushed before the image goes on (a killed stage
  /// or daemon leaves a readable spool to resume from; docs/streams.md, "Restarts").
  RawSpoolOptions spool_options() const {
    RawSpoolOptions options;
    options.channel = work.channel;
    options.flush_each = true;
    return options;
  }

  /// A series the daemon knew already: no start message is awaited; the spool (if any) is
  /// reopened, its images count as received and are given to the pipeline again, and the rest
  /// of the series is received. Throws azflow::Error (the spool cannot be reopened).
  void resume(const daemon::StreamSeries& known) {
    s2::Start start;
    start.series_id = known.series_id;
    start.series_unique_id = known.series_unique_id;
    start.image_size_x = known.cols;
    start.image_size_y = known.rows;
    start.image_dtype = known.dtype;
    start.number_of_images = known.images;
    series = known;
    tracker.emplace(start, before);
    if (!work.save_raw.empty()) {
      spool.emplace(
          RawSpool::reopen(reduce::OutputDir::open(work.save_raw), start, spool_options()));
      std::vector<bool> missing(known.images, false);
      for (const std::uint64_t id : spool->missing_ids()) missing[id] = true;
      for (std::uint64_t id = 0; id < known.images; ++id) {
        if (!missing[id] && tracker->accept(id)) replay.push_back(id);
      }
      spool_ended = spool->complete();
    }
    phase = Phase::kReceiving;
    last_message = last_progress = first_image = Clock::now();
    spdlog::info("source: job {}: resuming series {} '{}' from {}: {} images in its raw spool{}",
                 job, series.series_id, series.series_unique_id, work.endpoint, replay.size(),
                 spool_ended ? " (closed: the series had ended)" : "");
  }

  /// Gives up to kMessagesPerStep images of `replay` to the pipeline, read from the spool.
  void replay_some() {
    for (int i = 0; i < kMessagesPerStep && !replay.empty(); ++i) {
      const std::uint64_t id = replay.front();
      ++rt.counters.frames_in;
      auto slot = wait_slot(compressed, job);
      if (!slot) return;
      replay.pop_front();
      ipc::SlotHeader& h = slot->header();
      fill(h, job, shard, id);
      try {
        const RawSpool::StoredImage stored = spool->read_image(id, slot->payload());
        set_chunk(h, stored.codec, series.dtype, series.rows, series.cols, stored.bytes);
      } catch (const Error& e) {
        fail(h, id, "image " + std::to_string(id) + ": " + e.what());
      }
      slot->commit();
      ++rt.counters.frames_out;
    }
  }

  void redo(const std::vector<std::int64_t>& frames) {
    for (const std::int64_t f : frames) {
      const auto id = static_cast<std::uint64_t>(f);
      if (f < 0 || !tracker || !tracker->seen(id)) continue;  // still to come from the detector
      replay.push_back(id);  // read_image fails it if it was received but not spooled
    }
  }

  /// The next message, or false if none arrives within `wait`.
  bool receive(Parts& parts, std::chrono::milliseconds wait) {
    zmq::pollitem_t item{static_cast<void*>(socket), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, wait) <= 0) return false;
    parts.clear();
    do {
      zmq::message_t part;
      if (!socket.recv(part, zmq::recv_flags::dontwait)) break;
      parts.push_back(std::move(part));
    } while (parts.back().more());
    return !parts.empty();
  }

  StreamCounts& counts() { return tracker ? tracker->counts() : before; }

  std::optional<s2::Message> parse(const Parts& parts) {
    std::vector<std::span<const std::byte>> views;
    views.reserve(parts.size());
    for (const zmq::message_t& p : parts) {
      views.emplace_back(static_cast<const std::byte*>(p.data()), p.size());
    }
    try {
      s2::Message m = parse_stream_message(work.format, views);
      counts().note_parsed(m);
      return m;
    } catch (const Error& e) {
      counts().note_invalid(e.what());
      return std::nullopt;
    }
  }

  bool step(std::chrono::milliseconds wait) {
    if (!replay.empty()) {
      replay_some();
      if (rt.should_stop() || rt.cancelled_jobs.contains(job)) return phase == Phase::kDone;
      wait = std::chrono::milliseconds(0);
    }
    if (spool_ended && replay.empty() && phase == Phase::kReceiving) {
      finish("before the end message (the raw spool was closed)");
      return true;
    }
    Parts parts;
    for (int i = 0; i < kMessagesPerStep && phase != Phase::kDone; ++i) {
      if (!receive(parts, i == 0 ? wait : std::chrono::milliseconds(0))) break;
      last_message = Clock::now();
      std::optional<s2::Message> m = parse(parts);
      if (m) handle(*m);
      // busy: parsing, spooling and copying into the ring (not waiting for a message or a slot)
      rt.counters.busy_s +=
          std::chrono::duration<double>(Clock::now() - last_message).count() - slot_wait_s;
      slot_wait_s = 0;
      if (rt.should_stop() || rt.cancelled_jobs.contains(job)) return phase == Phase::kDone;
    }
    if (phase == Phase::kReceiving) {
      if (Clock::now() - last_message > std::chrono::duration<double>(work.idle_timeout_s)) {
        finish("(no message for " + seconds_text(work.idle_timeout_s) + ")");
      }
    }
    if (phase != Phase::kDone && Clock::now() - last_progress >= kProgressInterval) {
      send_progress();
    }
    return phase == Phase::kDone;
  }

  static std::string seconds_text(double s) {
    std::string text = std::to_string(s);
    text.erase(text.find_last_not_of('0') + 1);
    if (text.ends_with('.')) text.pop_back();
    return text + " s";
  }

  void handle(s2::Message& m) {
    if (phase == Phase::kWaitStart) {
      if (held_start) {  // stream v1 header without an image type: this message tells it
        if (m.is_image()) {
          try {
            held_start->image_dtype = std::get<s2::Image>(m.body).channel(work.channel).array.dtype;
          } catch (const Error&) {
            // no such channel: the start stays without a type and is refused
          }
        }
        s2::Start start = std::move(*held_start);
        held_start.reset();
        begin(start);
        if (phase == Phase::kReceiving) receive_message(m);
        return;
      }
      if (m.is_start()) {
        s2::Start& start = std::get<s2::Start>(m.body);
        if (!start.image_dtype && work.format == "v1") {
          held_start = std::move(start);
          return;
        }
        begin(start);
      } else if (m.is_image() || m.is_end()) {
        ++before.before_start;
      }
      return;
    }
    receive_message(m);
  }

  /// The start message: report the series (or why it cannot be used) to the daemon.
  void begin(const s2::Start& start) {
    daemon::StreamStarted started{job, shard, std::nullopt, {}, {}};
    try {
      require_start_fields(start);
      series.series_id = start.series_id;
      series.series_unique_id = start.series_unique_id;
      series.rows = *start.image_size_y;
      series.cols = *start.image_size_x;
      series.dtype = *start.image_dtype;
      series.images = static_cast<std::size_t>(*start.number_of_images);
      if (const std::vector<std::uint32_t>* mask = start.pixel_mask(work.channel)) {
        const auto path = std::filesystem::path(work.job_dir) /
                          ("stream_" + std::to_string(start.series_id) + "_pixel_mask.u32");
        std::error_code ec;
        std::filesystem::remove(path, ec);  // an earlier try of this job's series
        daemon::write_stream_pixel_mask(path.string(), *mask);
        series.pixel_mask_path = path.string();
      }
      if (!work.save_raw.empty()) open_spool(start);
      try {
        started.poni_text =
            integrate::format_poni(poni_from_start(start, series.rows, series.cols));
      } catch (const Error&) {
        // no geometry in the start message: the daemon needs the job's PONI then
      }
      started.series = series;
    } catch (const Error& e) {
      started.error = e.what();
    }
    rt.link.send(started);
    if (!started.series) {
      spdlog::error("source: job {}: {}", job, started.error);
      phase = Phase::kDone;
      return;
    }
    spdlog::info("source: job {}: series {} '{}', {} images of {} x {} {}", job, series.series_id,
                 series.series_unique_id, series.images, series.rows, series.cols,
                 dtype_name(series.dtype));
    tracker.emplace(start, before);
    phase = Phase::kReceiving;
    last_progress = Clock::now();
  }

  /// The raw spool of the series in work.save_raw. Throws azflow::Error (an existing spool, an
  /// unwritable folder), which fails the job.
  void open_spool(const s2::Start& start) {
    spool.emplace(std::filesystem::path(work.save_raw), start, spool_options());
  }

  /// Writes an accepted image into the raw spool, stored bytes unchanged; an image it cannot
  /// hold (another shape or codec, a write error) is counted, never fatal.
  void spool_image(const s2::Image& img) {
    if (!spool) return;
    try {
      (void)spool->append(img.image_id, img.channel(work.channel).array);
    } catch (const Error& e) {
      if (not_spooled++ == 0) first_not_spooled = e.what();
    }
  }

  void close_spool() {
    if (!spool) return;
    try {
      spool->close();
    } catch (const Error& e) {
      spdlog::error("source: job {}: raw spool {}: {}", job, spool->master_path().string(),
                    e.what());
      if (not_spooled++ == 0) first_not_spooled = e.what();
    }
  }

  void receive_message(const s2::Message& m) {
    const auto verdict = tracker->classify(m);
    if (verdict == SeriesTracker::Verdict::kEnd) {
      finish("before the end message");
    } else if (verdict == SeriesTracker::Verdict::kAccept) {
      const s2::Image& img = std::get<s2::Image>(m.body);
      if (tracker->counts().received == 1) first_image = Clock::now();
      spool_image(img);
      push_image(img);
    }
  }

  static void fill(ipc::SlotHeader& h, std::int64_t job, std::int64_t shard, std::uint64_t id) {
    h.job_id = static_cast<std::uint64_t>(job);
    h.shard_id = static_cast<std::uint64_t>(shard);
    h.frame_index = id;
  }

  /// A slot holding one image's stored bytes (`bytes` of them, encoded as `codec`).
  static void set_chunk(ipc::SlotHeader& h, const decompress::CodecParams& codec, DType dtype,
                        std::size_t rows, std::size_t cols, std::size_t bytes) {
    h.kind = ipc::PayloadKind::kCompressedChunk;
    h.codec = static_cast<std::uint32_t>(codec.codec);
    h.elem_size = static_cast<std::uint32_t>(codec.elem_size);
    h.block_size = static_cast<std::uint32_t>(codec.block_elements);
    h.dtype = static_cast<std::uint32_t>(dtype);
    h.rows = rows;
    h.cols = cols;
    h.bytes = bytes;
  }

  /// A failed row for image `id`: `what` is its reason, as every stage names a frame.
  void fail(ipc::SlotHeader& h, std::uint64_t id, const std::string& what) {
    h.status = ipc::SlotStatus::kFailed;
    h.bytes = 0;
    h.set_reason(daemon::frame_reason(static_cast<std::int64_t>(id), {}, {}, what));
    ++rt.counters.failed;
  }

  /// The image's array, or why it cannot be integrated (kInput).
  const s2::Array& checked_array(const s2::Image& img) const {
    const s2::Array& a = img.channel(work.channel).array;
    if (a.rows != series.rows || a.cols != series.cols || a.dtype != series.dtype) {
      throw Error(ErrorCategory::kInput,
                  "array [" + std::to_string(a.rows) + ", " + std::to_string(a.cols) + "] of " +
                      std::string(dtype_name(a.dtype)) + ", the start message declared [" +
                      std::to_string(series.rows) + ", " + std::to_string(series.cols) + "] of " +
                      std::string(dtype_name(series.dtype)));
    }
    if (a.codec.codec == decompress::Codec::kOther) {
      throw Error(ErrorCategory::kInput, "a codec azflow cannot decode");
    }
    if (a.bytes.size() > compressed.slot_bytes()) {
      throw Error(ErrorCategory::kResource,
                  "image of " + std::to_string(a.bytes.size()) +
                      " bytes exceeds the compressed ring's slots of " +
                      std::to_string(compressed.slot_bytes()) +
                      " bytes (give the job a larger stream.max_frame_mib)");
    }
    return a;
  }

  void push_image(const s2::Image& img) {
    ++rt.counters.frames_in;
    const s2::Array* a = nullptr;
    std::string reason;
    try {
      a = &checked_array(img);
    } catch (const Error& e) {
      reason = e.what();
    }
    const auto waiting = Clock::now();
    auto slot = wait_slot(compressed, job);
    slot_wait_s += std::chrono::duration<double>(Clock::now() - waiting).count();
    if (!slot) return;
    ipc::SlotHeader& h = slot->header();
    fill(h, job, shard, img.image_id);
    if (a == nullptr) {
      fail(h, img.image_id, "image " + std::to_string(img.image_id) + ": " + reason);
    } else {
      std::memcpy(slot->payload().data(), a->bytes.data(), a->bytes.size());
      set_chunk(h, a->codec, a->dtype, a->rows, a->cols, a->bytes.size());
    }
    slot->commit();
    ++pushed;
    ++rt.counters.frames_out;
    rt.delay();
  }

  /// The series ended (`why`: "before the end message", or the timeout): fails the ids never
  /// received as missing, reports the counters, acknowledges the shard.
  void finish(const std::string& why) {
    for (const std::uint64_t id : tracker->missing_ids()) {
      auto slot = wait_slot(compressed, job);
      if (!slot) return;  // stopped or cancelled
      fill(slot->header(), job, shard, id);
      fail(slot->header(), id, "missing: image never received " + why);
      slot->commit();
      ++rt.counters.frames_out;
    }
    phase = Phase::kDone;
    close_spool();
    send_progress();
    rt.link.send(daemon::ShardRead{job, shard, msg});
    const StreamCounts& c = tracker->counts();
    spdlog::info(
        "source: job {}: series {} done: {} received, {} missing, {} duplicate, {} "
        "invalid",
        job, series.series_id, c.received, series.images - c.received, c.duplicate, c.invalid);
  }

  void send_progress() {
    last_progress = Clock::now();
    const StreamCounts& c = counts();
    const double seconds =
        c.received > 1 ? std::chrono::duration<double>(last_message - first_image).count() : 0;
    json j = {{"received", c.received},
              {"missing", phase == Phase::kDone ? series.images - c.received : 0},
              {"duplicate", c.duplicate},
              {"out_of_range", c.out_of_range},
              {"foreign", c.foreign},
              {"invalid", c.invalid},
              {"unknown_type", c.unknown},
              {"before_start", c.before_start},
              {"first_invalid", c.first_invalid},
              {"ended", c.ended},
              {"receive_rate_per_s",
               seconds > 0 ? json(static_cast<double>(c.received - 1) / seconds) : json(nullptr)}};
    if (spool) {
      j["raw_spool"] = spool->master_path().string();
      j["spooled"] = spool->images_spooled();
      j["not_spooled"] = not_spooled;
      j["first_not_spooled"] = first_not_spooled;
    }
    rt.link.send(daemon::StreamProgress{job, std::move(j)});
  }
};

StreamTask::StreamTask(daemon::StageRuntime& rt, ipc::Ring& compressed, WaitSlot wait_slot,
                       const daemon::ShardWork& work)
    : s_(std::make_unique<State>(rt, compressed, std::move(wait_slot), work)) {}

StreamTask::~StreamTask() = default;

bool StreamTask::step(std::chrono::milliseconds wait) { return s_->step(wait); }

std::int64_t StreamTask::job() const noexcept { return s_->job; }

bool StreamTask::has_spool() const noexcept { return s_->spool.has_value(); }

void StreamTask::redo(const std::vector<std::int64_t>& frames) { s_->redo(frames); }

}  // namespace azflow::source
