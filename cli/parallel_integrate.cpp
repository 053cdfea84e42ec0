#include "cli/parallel_integrate.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/error.hpp"
#include "stages/decompress/codec.hpp"
#include "stages/integrate/cpu_integrator.hpp"
#include "stages/integrate/radial_profile.hpp"
#include "stages/integrate/sigma_clip.hpp"

namespace azflow::cli {

namespace {

/// State shared by the workers of one run.
struct Shared {
  source::Dataset& dataset;
  FrameRange range;
  std::size_t first_row;  // writer row of input frame range.first
  reduce::ResultWriter& writer;
  ProgressBar& progress;
  std::mutex hdf5_mutex;  // every HDF5 call of the run: reads and row writes
  std::atomic<std::size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex error_mutex;
  std::exception_ptr error;
  IntensityRange range_seen;
  bool radial_profile = false;  // integrate_radial: sum each frame's 2D bins over radial
};

/// Buffers owned by one worker, reused for every frame.
struct WorkerBuffers {
  std::vector<std::byte> chunk;
  std::vector<std::byte> frame;
  integrate::BinSums sums;
  std::vector<float> intensity, sigma;
  std::vector<float> clip_std, clip_count;  // sigma clipping only
  integrate::BinSums sums_2d;               // integrate_radial only
  IntensityRange seen;
};

/// Finalizes buf.sums into buf.intensity / buf.sigma (`empty` in bins without pixels) and
/// updates buf.seen.
void finalize_row(WorkerBuffers& buf, bool with_errors, float empty) {
  buf.intensity.resize(buf.sums.bins());
  buf.sigma.resize(with_errors ? buf.sums.bins() : 0);
  integrate::finalize(buf.sums, buf.intensity, buf.sigma, empty);
  for (std::size_t b = 0; b < buf.intensity.size(); ++b) {
    if (buf.sums.count[b] <= 0) continue;
    buf.seen.min = std::min(buf.seen.min, static_cast<double>(buf.intensity[b]));
    buf.seen.max = std::max(buf.seen.max, static_cast<double>(buf.intensity[b]));
  }
}

/// Reads and decodes input frame `index` into buf.frame: the chunk under the read mutex, the
/// decoding outside it; HDF5's own pipeline (under the mutex) when there is no direct path.
void read_frame(Shared& shared, std::size_t index, WorkerBuffers& buf) {
  source::RawChunk raw;
  {
    std::lock_guard lock(shared.hdf5_mutex);
    const decompress::CodecParams codec = shared.dataset.frame_codec(index);
    if (codec.codec == decompress::Codec::kOther) {
      shared.dataset.read_frame(index, buf.frame);
      return;
    }
    const std::size_t bytes = shared.dataset.chunk_bytes(index);
    if (buf.chunk.size() < bytes) buf.chunk.resize(bytes);
    raw = shared.dataset.read_chunk(index, buf.chunk);
  }
  decompress::decode(raw.codec, std::span<const std::byte>(buf.chunk.data(), raw.bytes), buf.frame);
}

/// "frame N: <what>", naming the file and dataset unless the message already does.
std::string failure_reason(const source::DatasetInfo& info, std::size_t index,
                           const std::string& what) {
  const std::string path = info.path.string();
  if (what.find(path) != std::string::npos) return "frame " + std::to_string(index) + ": " + what;
  return "frame " + std::to_string(index) + " of " + path + " (" + info.dataset + "): " + what;
}

/// Processes one row: read, integrate, write; a bad frame becomes a failed row.
void process_row(Shared& shared, integrate::CpuIntegrator& integrator, std::size_t row,
                 WorkerBuffers& buf) {
  const source::DatasetInfo& info = shared.dataset.info();
  const std::size_t index = shared.range.first + row;
  try {
    read_frame(shared, index, buf);
    const FrameView view{buf.frame.data(), info.dtype, info.rows, info.cols};
    if (shared.radial_profile) {
      integrator.integrate(view, buf.sums_2d);
      integrate::sum_radial_bins(integrator.plan(), buf.sums_2d, buf.sums);
    } else {
      integrator.integrate(view, buf.sums);
    }
  } catch (const Error& e) {
    if (e.category() != ErrorCategory::kInput && e.category() != ErrorCategory::kIo) throw;
    std::lock_guard lock(shared.hdf5_mutex);
    shared.writer.fail_frame(shared.first_row + row, failure_reason(info, index, e.what()));
    return;
  }
  finalize_row(buf, shared.writer.layout().with_errors, shared.writer.layout().empty_value);
  shared.writer.add_sums(buf.sums);
  std::lock_guard lock(shared.hdf5_mutex);
  shared.writer.write_frame(shared.first_row + row, buf.intensity, buf.sigma);
  if (shared.writer.layout().with_clip_stats) {
    integrate::clipped_std(buf.sums, buf.clip_std, shared.writer.layout().empty_value);
    buf.clip_count.assign(buf.sums.count.begin(), buf.sums.count.end());
    shared.writer.write_clip_stats(shared.first_row + row, buf.clip_std, buf.clip_count);
  }
}

void worker(Shared& shared, const std::shared_ptr<const integrate::Plan>& plan) {
  try {
    integrate::CpuIntegrator integrator(plan);
    WorkerBuffers buf;
    buf.frame.resize(shared.dataset.info().frame_bytes());
    while (!shared.stop.load(std::memory_order_relaxed)) {
      const std::size_t row = shared.next.fetch_add(1, std::memory_order_relaxed);
      if (row >= shared.range.size()) break;
      process_row(shared, integrator, row, buf);
      shared.progress.tick();
    }
    std::lock_guard lock(shared.error_mutex);
    shared.range_seen.merge(buf.seen);
  } catch (...) {
    std::lock_guard lock(shared.error_mutex);
    if (!shared.error) shared.error = std::current_exception();
    shared.stop = true;
  }
}

}  // namespace

void IntensityRange::merge(const IntensityRange& other) noexcept {
  min = std::min(min, other.min);
  max = std::max(max, other.max);
}

IntensityRange integrate_frames(source::Dataset& dataset, FrameRange range,
                                std::shared_ptr<const integrate::Plan> plan,
                                reduce::ResultWriter& writer, std::size_t threads,
                                ProgressBar& progress, std::size_t first_row, bool radial_profile) {
  Shared shared{dataset, range, first_row, writer, progress, {}, {}, {}, {}, {}, {}};
  shared.radial_profile = radial_profile;
  {
    std::vector<std::jthread> pool;
    const std::size_t n = std::max<std::size_t>(1, std::min(threads, range.size()));
    for (std::size_t i = 0; i < n; ++i) pool.emplace_back(worker, std::ref(shared), plan);
  }
  if (shared.error) std::rethrow_exception(shared.error);
  return shared.range_seen;
}

}  // namespace azflow::cli
