#include "cli/stream_integrate.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "base/error.hpp"
#include "cli/exit_codes.hpp"
#include "cli/progress.hpp"
#include "stages/integrate/cpu_integrator.hpp"
#include "stages/integrate/geometry.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/reduce/image_file.hpp"
#include "stages/reduce/nexus_writer.hpp"
#include "stages/reduce/result_writer.hpp"
#include "stages/source/raw_spool.hpp"
#include "stages/source/stream2.hpp"
#include "stages/source/stream_series.hpp"

namespace azflow::cli {

namespace {

namespace s2 = source::stream2;

/// One ZeroMQ message: its parts (Stream V2 has one, stream v1 several).
using Parts = std::vector<zmq::message_t>;

/// Parses `parts` as `format` ("stream2" or "v1"). Throws azflow::Error (kInput) when invalid.
s2::Message parse_parts(const std::string& format, const Parts& parts) {
  std::vector<std::span<const std::byte>> views;
  views.reserve(parts.size());
  for (const zmq::message_t& p : parts) {
    views.emplace_back(static_cast<const std::byte*>(p.data()), p.size());
  }
  return source::parse_stream_message(format, views);
}

/// "N s" with the shortest exact text of `seconds`.
std::string seconds_text(double seconds) {
  std::ostringstream text;
  text << seconds << " s";
  return text.str();
}
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxListed = 10;
constexpr int kReceiveQueueMessages = 64;  ///< ZeroMQ receive high-water mark

/// What the series' messages were (source::StreamCounts), and what the raw spool could not hold.
struct StreamCounts : source::StreamCounts {
  std::size_t not_spooled = 0;    ///< accepted images the raw spool could not hold
  std::string first_not_spooled;  ///< reason of the first of them
};

/// A ZeroMQ PULL socket connected to the detector, with an idle timeout.
class Receiver {
 public:
  explicit Receiver(const StreamOptions& s) : endpoint_(s.endpoint), format_(s.format) {
    socket_.set(zmq::sockopt::rcvtimeo, static_cast<int>(s.timeout_s * 1000));
    // Bounded memory: at most this many messages wait here; beyond it the detector's PUSH
    // socket holds them (back-pressure, nothing dropped).
    socket_.set(zmq::sockopt::rcvhwm, kReceiveQueueMessages);
    socket_.set(zmq::sockopt::linger, 0);
    try {
      socket_.connect(s.endpoint);
    } catch (const zmq::error_t& e) {
      throw Error(ErrorCategory::kConfig,
                  "--stream: cannot connect to " + s.endpoint + ": " + e.what());
    }
  }
  /// The next message (all its parts; a put-back one first); false after the idle timeout.
  bool next(Parts& parts) {
    if (pending_) {
      parts = std::move(*pending_);
      pending_.reset();
      return true;
    }
    parts.clear();
    do {
      zmq::message_t part;
      if (!socket_.recv(part)) return false;
      parts.push_back(std::move(part));
    } while (parts.back().more());
    return true;
  }
  /// Makes `parts` the next message next() returns.
  void put_back(Parts parts) { pending_ = std::move(parts); }
  /// Parses `parts`; nullopt (counted, first reason kept) when it is not a valid message.
  std::optional<s2::Message> parse(const Parts& parts, source::StreamCounts& counts) {
    try {
      s2::Message m = parse_parts(format_, parts);
      counts.note_parsed(m);
      return m;
    } catch (const Error& e) {
      counts.note_invalid(e.what());
      return std::nullopt;
    }
  }
  [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }

 private:
  std::string endpoint_;
  std::string format_;
  std::optional<Parts> pending_;
  zmq::context_t context_{1};
  zmq::socket_t socket_{context_, zmq::socket_type::pull};
};

s2::Start wait_for_start(Receiver& rx, StreamCounts& counts, double timeout_s) {
  Parts msg;
  while (rx.next(msg)) {
    std::optional<s2::Message> m = rx.parse(msg, counts);
    if (!m) continue;
    if (m->is_start()) return std::get<s2::Start>(std::move(m->body));
    if (m->is_image() || m->is_end()) ++counts.before_start;
  }
  throw Error(ErrorCategory::kIo,
              "--stream " + rx.endpoint() + ": no start message within " + seconds_text(timeout_s));
}

/// Decodes and integrates image messages into their rows, or fails a row with the reason. One
/// per worker thread; the writer is shared under `writer_mutex`.
class SeriesIntegrator {
 public:
  SeriesIntegrator(std::shared_ptr<const integrate::Plan> plan, std::size_t rows, std::size_t cols,
                   DType dtype, std::string channel)
      : integrator_(std::move(plan)),
        rows_(rows),
        cols_(cols),
        dtype_(dtype),
        channel_(std::move(channel)),
        frame_(rows * cols * dtype_size(dtype)) {}

  void process(const s2::Image& img, reduce::ResultWriter& writer, std::mutex& writer_mutex) {
    const std::size_t row = img.image_id;
    try {
      const s2::Array& a = img.channel(channel_).array;
      if (a.rows != rows_ || a.cols != cols_ || a.dtype != dtype_) {
        throw Error(ErrorCategory::kInput,
                    "array [" + std::to_string(a.rows) + ", " + std::to_string(a.cols) + "] of " +
                        std::string(dtype_name(a.dtype)) + ", the start message declared [" +
                        std::to_string(rows_) + ", " + std::to_string(cols_) + "] of " +
                        std::string(dtype_name(dtype_)));
      }
      s2::decode(a, frame_);
      integrator_.integrate(FrameView{frame_.data(), dtype_, rows_, cols_}, sums_);
    } catch (const Error& e) {
      if (e.category() != ErrorCategory::kInput) throw;
      std::lock_guard lock(writer_mutex);
      writer.fail_frame(row, "image " + std::to_string(row) + ": " + e.what());
      return;
    }
    std::lock_guard lock(writer_mutex);
    writer.write_frame(row, sums_);  // also adds them to the dataset-wide sums
  }

 private:
  integrate::CpuIntegrator integrator_;
  std::size_t rows_, cols_;
  DType dtype_;
  std::string channel_;
  std::vector<std::byte> frame_;
  integrate::BinSums sums_;
};

/// Accepted image messages on their way from the receiving thread to the workers. Bounded
/// (push blocks while full, so a slow pool pushes back to the socket and the sender); close()
/// lets the workers drain what is queued and end.
class ImageQueue {
 public:
  explicit ImageQueue(std::size_t capacity) : capacity_(capacity) {}

  /// Queues `msg`, waiting while the queue is full; false (msg dropped) once closed.
  bool push(Parts msg) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(msg));
    not_empty_.notify_one();
    return true;
  }
  /// The next message; nullopt once closed and empty.
  std::optional<Parts> pop() {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return std::nullopt;
    Parts msg = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return msg;
  }
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_full_.notify_all();
    not_empty_.notify_all();
  }

 private:
  std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
  std::deque<Parts> items_;
  bool closed_ = false;
};

/// Worker threads that take image messages from an ImageQueue and integrate them. A worker
/// error other than a bad image (kInput, a failed row) stops the pool; finish() rethrows it.
class WorkerPool {
 public:
  WorkerPool(const std::shared_ptr<const integrate::Plan>& plan, reduce::ResultWriter& writer,
             std::size_t rows, std::size_t cols, DType dtype, const std::string& channel,
             std::size_t threads, const std::string& format, ProgressBar& progress)
      : queue_(2 * threads), writer_(writer), progress_(progress), format_(format) {
    for (std::size_t i = 0; i < threads; ++i) {
      workers_.emplace_back([=, this] { work(plan, rows, cols, dtype, channel); });
    }
  }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  ~WorkerPool() { queue_.close(); }  // then the jthreads join

  /// The lock every HDF5 call of the run takes (the writer's; the raw spool's too).
  std::mutex& hdf5_mutex() noexcept { return writer_mutex_; }

  /// Hands an accepted image message to the workers (blocks while they are all busy).
  void submit(Parts msg) { queue_.push(std::move(msg)); }

  /// Waits for every queued image; rethrows the first worker error.
  void finish() {
    queue_.close();
    for (std::jthread& t : workers_) t.join();
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work(const std::shared_ptr<const integrate::Plan>& plan, std::size_t rows, std::size_t cols,
            DType dtype, const std::string& channel) {
    try {
      SeriesIntegrator integrator(plan, rows, cols, dtype, channel);
      while (std::optional<Parts> msg = queue_.pop()) {
        // parsed once already by the receiving thread, which only keeps valid images
        const s2::Message m = parse_parts(format_, *msg);
        integrator.process(std::get<s2::Image>(m.body), writer_, writer_mutex_);
        progress_.tick();
      }
    } catch (...) {
      std::lock_guard lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
      queue_.close();
    }
  }

  ImageQueue queue_;
  reduce::ResultWriter& writer_;
  ProgressBar& progress_;
  std::string format_;
  std::mutex writer_mutex_;  // every writer call: HDF5 is not thread-safe here
  std::mutex error_mutex_;
  std::exception_ptr error_;
  std::vector<std::jthread> workers_;  // last: joined before the members they use go
};

/// The raw spool of the run (--save-raw) and the channel it keeps.
struct Spool {
  std::optional<source::RawSpool> spool;
  std::string channel;

  /// Writes `img`'s channel, stored bytes unchanged, under `hdf5`. An image the spool cannot hold
  /// (kInput: no such channel, wrong shape or codec) is counted; other errors end the run.
  void add(const s2::Image& img, std::mutex& hdf5, StreamCounts& counts) {
    if (!spool) return;
    try {
      const s2::Array& a = img.channel(channel).array;
      std::lock_guard lock(hdf5);
      (void)spool->append(img.image_id, a);  // never a duplicate: receive_series filters them
    } catch (const Error& e) {
      if (e.category() != ErrorCategory::kInput) throw;
      if (counts.not_spooled++ == 0) counts.first_not_spooled = e.what();
    }
  }
};

/// Receives the series' images until its end message or the idle timeout, spools each new image
/// of the series and hands it to the pool; `counts` gets what the tracker counted.
void receive_series(Receiver& rx, source::SeriesTracker& tracker, WorkerPool& pool,
                    StreamCounts& counts, Spool& spool) {
  Parts msg;
  while (rx.next(msg)) {
    std::optional<s2::Message> m = rx.parse(msg, tracker.counts());
    if (!m) continue;
    const auto verdict = tracker.classify(*m);
    if (verdict == source::SeriesTracker::Verdict::kEnd) return;
    if (verdict != source::SeriesTracker::Verdict::kAccept) continue;
    spool.add(std::get<s2::Image>(m->body), pool.hdf5_mutex(), counts);
    m.reset();  // it views msg, which moves to the pool
    pool.submit(std::move(msg));
  }
}

/// Receives the series (receive_series), then copies the tracker's counts into `counts`.
void receive_and_count(Receiver& rx, source::SeriesTracker& tracker, WorkerPool& pool,
                       StreamCounts& counts, Spool& spool) {
  receive_series(rx, tracker, pool, counts, spool);
  static_cast<source::StreamCounts&>(counts) = tracker.counts();
}

nlohmann::json stream_settings(const IntegrateOptions& o, const StreamOptions& s,
                               const integrate::IntegrationSettings& settings,
                               const s2::Start& start, std::size_t images) {
  nlohmann::json j = settings_json(o, settings);
  j["input_stream"] = s.endpoint;
  j["stream_format"] = s.format;
  j["stream_channel"] = s.channel;
  j["series_id"] = start.series_id;
  j["series_unique_id"] = start.series_unique_id;
  j["poni"] = o.poni.empty() ? "(from the start message)" : options_poni_text(o);
  j["input_frames"] = images;
  j["input_shape"] = nlohmann::json::array({*start.image_size_y, *start.image_size_x});
  j["input_dtype"] = std::string(dtype_name(*start.image_dtype));
  j["detector_pixel_mask_present"] = start.pixel_mask(s.channel) != nullptr;
  return j;
}

void report(const IntegrateOptions& o, const StreamOptions& s, const s2::Start& start,
            std::size_t images, const StreamCounts& c, const reduce::WriterSummary& summary,
            double plan_s, double seconds) {
  if (!o.quiet) {
    std::printf("input:   %s (%s series %llu '%s', %zu images, %zu x %zu %s)\n", s.endpoint.c_str(),
                s.format == "v1" ? "stream v1" : "Stream V2",
                static_cast<unsigned long long>(start.series_id), start.series_unique_id.c_str(),
                images, *start.image_size_y, *start.image_size_x,
                std::string(dtype_name(*start.image_dtype)).c_str());
    std::printf("output:  %s\n", o.output.c_str());
    std::printf("frames:  %zu written, %zu failed (%zu received, %zu missing)\n",
                summary.frames_written, summary.failed.size(), c.received, images - c.received);
    const double images_s = seconds - plan_s;
    std::printf("time:    %.2f s from the start message: plan %.2f s, then %.1f images/s\n",
                seconds, plan_s, images_s > 0 ? static_cast<double>(c.received) / images_s : 0.0);
  }
  if (c.before_start + c.duplicate + c.out_of_range + c.foreign + c.invalid + c.unknown > 0) {
    std::fprintf(stderr,
                 "azflow: warning: stream messages ignored: %zu before start, %zu duplicate, %zu "
                 "out of range, %zu of another series, %zu invalid, %zu of unknown type\n",
                 c.before_start, c.duplicate, c.out_of_range, c.foreign, c.invalid, c.unknown);
    if (c.invalid > 0) std::fprintf(stderr, "  first invalid: %s\n", c.first_invalid.c_str());
  }
  if (c.not_spooled > 0) {
    std::fprintf(stderr, "azflow: warning: %zu images not in the raw spool; first: %s\n",
                 c.not_spooled, c.first_not_spooled.c_str());
  }
  if (summary.failed.empty()) return;
  std::fprintf(stderr, "azflow: warning: %zu of %zu images failed or missing (rows left NaN):\n",
               summary.failed.size(), images);
  for (std::size_t i = 0; i < summary.failed.size() && i < kMaxListed; ++i) {
    std::fprintf(stderr, "  row %zu: %s\n", summary.failed[i].row,
                 summary.failed[i].reason.c_str());
  }
  if (summary.failed.size() > kMaxListed) {
    std::fprintf(stderr, "  ... and %zu more (see /entry/process/failed_frames)\n",
                 summary.failed.size() - kMaxListed);
  }
}

void check_stream_options(const IntegrateOptions& o, const StreamOptions& s) {
  if (!o.frames.empty()) throw Error(ErrorCategory::kConfig, "--frames does not apply to --stream");
  if (!o.dataset.empty()) {
    throw Error(ErrorCategory::kConfig, "--dataset does not apply to --stream");
  }
  if (!(s.timeout_s > 0)) throw Error(ErrorCategory::kConfig, "--stream-timeout must be > 0");
  std::error_code ec;
  if (!o.overwrite && std::filesystem::exists(o.output, ec)) {
    throw Error(ErrorCategory::kConfig,
                "output " + o.output + " already exists (use --overwrite to replace it)");
  }
}

/// Stream v1 headers before SIMPLON 1.8 carry no image type: the next message, when it is a
/// valid image, tells it (and is put back to be integrated). nullopt otherwise.
std::optional<DType> first_image_dtype(Receiver& rx, const StreamOptions& s) {
  if (s.format != "v1") return std::nullopt;
  Parts msg;
  if (!rx.next(msg)) return std::nullopt;
  std::optional<DType> dtype;
  try {
    const s2::Message m = parse_parts(s.format, msg);
    if (m.is_image()) dtype = std::get<s2::Image>(m.body).channel(s.channel).array.dtype;
  } catch (const Error&) {
    // counted when receive_series parses it again
  }
  rx.put_back(std::move(msg));
  return dtype;
}

}  // namespace

void add_stream_options(CLI::App& cmd, StreamOptions& s) {
  CLI::Option* input = cmd.get_option("input");
  input->required(false);
  cmd.get_option("--poni")->required(false);
  cmd.add_option("--stream", s.endpoint,
                 "integrate one DECTRIS Stream V2 (or v1) series from this ZeroMQ endpoint (the "
                 "detector's PUSH socket, e.g. tcp://dcu:31001) instead of a file; without "
                 "--poni the geometry comes from the start message")
      ->excludes(input);
  cmd.add_option("--stream-format", s.format,
                 "--stream: the detector's protocol, stream2 (DECTRIS Stream V2, CBOR) or v1 "
                 "(legacy stream v1, multipart JSON + blobs)")
      ->check(CLI::IsMember({"stream2", "v1"}))
      ->capture_default_str();
  cmd.add_option("--channel", s.channel,
                 "--stream: channel of the image data map (default: the first one)");
  cmd.add_option("--stream-timeout", s.timeout_s,
                 "--stream: seconds without a message before giving up")
      ->capture_default_str();
  cmd.add_option("--save-raw", s.save_raw,
                 "--stream: also write every received image, compressed bytes unchanged, into an "
                 "EIGER-layout raw spool in this folder (series_<id>_master.h5 + data files; an "
                 "existing spool is never overwritten)")
      ->needs(cmd.get_option("--stream"));
}

void check_file_input(const IntegrateOptions& o) {
  if (o.input.empty()) {
    throw Error(ErrorCategory::kConfig, "integrate: an input file (or --stream) is required");
  }
  if (o.poni.empty() && o.config.empty()) {
    throw Error(ErrorCategory::kConfig, "--poni (or --config) is required");
  }
}

int run_stream_integrate(const IntegrateOptions& o, const StreamOptions& s) {
  check_stream_options(o, s);
  Receiver rx(s);
  StreamCounts counts;
  s2::Start start = wait_for_start(rx, counts, s.timeout_s);
  if (!start.image_dtype) start.image_dtype = first_image_dtype(rx, s);
  const auto t0 = Clock::now();
  source::require_start_fields(start);
  Spool spool{.spool = std::nullopt, .channel = s.channel};
  if (!s.save_raw.empty()) {
    source::RawSpoolOptions options;
    options.channel = s.channel;
    spool.spool.emplace(s.save_raw, start, options);
  }
  const std::size_t rows = *start.image_size_y, cols = *start.image_size_x;
  const DType dtype = *start.image_dtype;
  const std::size_t images = static_cast<std::size_t>(*start.number_of_images);
  const integrate::Poni poni =
      o.poni.empty() ? source::poni_from_start(start, rows, cols)
                     : integrate::fit_to_frames(integrate::read_poni(o.poni), rows, cols);
  integrate::check_frame_shape(poni, rows, cols, "--stream " + s.endpoint, o.poni);
  const integrate::IntegrationSettings settings = make_settings(o, dtype);
  const reduce::OutputFormat format = parse_format_option(o.format, settings.npt_azim);
  const std::vector<std::uint32_t>* pixel_mask = start.pixel_mask(s.channel);
  auto plan = cli_plan(o, poni, rows, cols, settings, pixel_mask).plan;
  reduce::NexusLayout layout = reduce::NexusLayout::from_plan(*plan, o.output, images);
  layout.overwrite = o.overwrite;
  layout.format = format;
  layout.empty_value = o.empty;
  layout.provenance.poni = poni;
  layout.provenance.mask_applied = !o.mask.empty() || (!o.no_file_mask && pixel_mask);
  layout.provenance.flat_applied = !o.flat.empty();
  const std::unique_ptr<reduce::ResultWriter> writer =
      reduce::make_result_writer(std::move(layout));
  writer->write_settings(stream_settings(o, s, settings, start, images));

  const double plan_s = std::chrono::duration<double>(Clock::now() - t0).count();
  const std::size_t threads =
      o.threads > 0 ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  source::SeriesTracker tracker(start, counts);
  ProgressBar progress(images, o.quiet);
  {
    WorkerPool pool(plan, *writer, rows, cols, dtype, s.channel, threads, s.format, progress);
    receive_and_count(rx, tracker, pool, counts, spool);
    pool.finish();
  }
  if (spool.spool) spool.spool->close();
  progress.finish();
  const std::string why = counts.ended
                              ? "never arrived before the end message"
                              : "never arrived (no message for " + seconds_text(s.timeout_s) + ")";
  for (const std::uint64_t id : tracker.missing_ids()) {
    writer->fail_frame(id, "image " + std::to_string(id) + " " + why);
  }
  const reduce::WriterSummary summary = writer->finish();
  report(o, s, start, images, counts, summary, plan_s,
         std::chrono::duration<double>(Clock::now() - t0).count());
  if (spool.spool && !o.quiet) {
    std::printf("spool:   %s (%zu images, %zu missing)\n", spool.spool->master_path().c_str(),
                spool.spool->images_spooled(), images - spool.spool->images_spooled());
  }
  return summary.failed.empty() ? kExitOk : kExitFramesFailed;
}

}  // namespace azflow::cli
