// Integration benchmark: azflow's CPU integrator on EIGER 4M frames (2167 x 2070 uint32) for
// 1D no-split, 1D bbox and 2D bbox (360 x 1000), per thread count, beside the machine's memory
// bandwidth measured by a multi-threaded copy in the same run. Prints a table and, with --json,
// writes the figures for bench/integrate/run.sh. Not a test: see bench/README.md.
//
// Throughput with T threads is measured two ways: "frames" — T independent integrators, each
// on its own frames (how `azflow integrate` and the daemon's workers run), and "pixels" — one
// integrator splitting each frame over T threads (lowest latency per frame).

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/integrate/bench_inputs.hpp"
#include "stages/integrate/cpu_integrator.hpp"
#include "stages/source/dataset.hpp"

namespace {

using namespace azflow;
using namespace azflow::integrate;
using Clock = std::chrono::steady_clock;

struct Options {
  std::size_t frames = 8;   // distinct frames held in memory
  std::size_t repeats = 5;  // timed repetitions (median reported)
  std::size_t max_threads = std::max(1u, std::thread::hardware_concurrency());
  std::string poni;  // default: an EIGER 4M at 0.15 m, beam near the centre
  std::string data;  // Eiger master file to take the frames from (default: synthesize)
  std::string json;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + a);
      return argv[++i];
    };
    if (a == "--frames")
      o.frames = std::stoul(next());
    else if (a == "--repeats")
      o.repeats = std::stoul(next());
    else if (a == "--threads")
      o.max_threads = std::stoul(next());
    else if (a == "--poni")
      o.poni = next();
    else if (a == "--data")
      o.data = next();
    else if (a == "--json")
      o.json = next();
    else
      throw std::runtime_error("unknown option " + a +
                               " (--frames --repeats --threads --poni --data --json)");
  }
  return o;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// STREAM-style copy bandwidth (bytes read + written per second) with `threads` threads over a
// buffer much larger than the caches.
double copy_bandwidth(std::size_t threads, std::size_t repeats) {
  const std::size_t bytes = 512ull << 20;
  std::vector<char> src(bytes, 1), dst(bytes, 0);
  std::vector<double> rates;
  for (std::size_t r = 0; r < repeats + 1; ++r) {
    const auto t0 = Clock::now();
    std::vector<std::jthread> pool;
    for (std::size_t t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const std::size_t b = bytes * t / threads, e = bytes * (t + 1) / threads;
        std::memcpy(dst.data() + b, src.data() + b, e - b);
      });
    pool.clear();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r > 0) rates.push_back(2.0 * static_cast<double>(bytes) / s);  // first run warms pages
  }
  return median(rates);
}

// Bytes that must come from memory per frame with the fast path (error model none / Poisson):
// the frame and the plan's per-pixel entries — the bin index without splitting; pointer, bins and
// weights with splitting. Per-bin accumulators stay in cache and are not counted.
double bytes_per_frame(const Plan& plan) {
  const double px = static_cast<double>(plan.pixels());
  const double frame = px * 4.0;
  if (plan.settings().split == PixelSplit::kNo) return frame + px * 4.0;
  return frame + px * 4.0 + static_cast<double>(plan.pixel_bins().size()) * 8.0;
}

// Frames/s with `threads` independent integrators, each integrating frames round-robin.
double frames_parallel(const std::shared_ptr<const Plan>& plan,
                       const std::vector<std::vector<std::uint32_t>>& frames, std::size_t threads,
                       std::size_t repeats) {
  std::vector<double> rates;
  const std::size_t per_thread = frames.size();
  for (std::size_t r = 0; r < repeats + 1; ++r) {
    const auto t0 = Clock::now();
    std::vector<std::jthread> pool;
    for (std::size_t t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        CpuIntegrator integ(plan, 1);
        BinSums sums;
        for (std::size_t k = 0; k < per_thread; ++k) {
          const auto& f = frames[(k + t) % frames.size()];
          integ.integrate(FrameView{f.data(), DType::kUint32, plan->rows(), plan->cols()}, sums);
        }
      });
    pool.clear();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r > 0) rates.push_back(static_cast<double>(per_thread * threads) / s);
  }
  return median(rates);
}

// Frames/s of one integrator splitting each frame over `threads` threads.
double pixels_parallel(const std::shared_ptr<const Plan>& plan,
                       const std::vector<std::vector<std::uint32_t>>& frames, std::size_t threads,
                       std::size_t repeats) {
  CpuIntegrator integ(plan, threads);
  BinSums sums;
  std::vector<double> rates;
  for (std::size_t r = 0; r < repeats + 1; ++r) {
    const auto t0 = Clock::now();
    for (const auto& f : frames)
      integ.integrate(FrameView{f.data(), DType::kUint32, plan->rows(), plan->cols()}, sums);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r > 0) rates.push_back(static_cast<double>(frames.size()) / s);
  }
  return median(rates);
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  const Geometry geometry(opt.poni.empty() ? bench::default_poni() : read_poni(opt.poni));
  std::printf(
      "azflow integrate_bench: %zu x %zu uint32 frames, %zu frames x %zu repeats (median)\n",
      geometry.rows(), geometry.cols(), opt.frames, opt.repeats);
  const auto frames =
      opt.data.empty() ? bench::make_frames(opt.frames, geometry.rows(), geometry.cols())
                       : bench::read_frames(opt.data, opt.frames, geometry.rows(), geometry.cols());
  nlohmann::json out = {
      {"rows", geometry.rows()}, {"cols", geometry.cols()}, {"results", nlohmann::json::array()}};
  std::vector<double> bandwidth(opt.max_threads + 1);
  for (std::size_t t = 1; t <= opt.max_threads; ++t) {
    bandwidth[t] = copy_bandwidth(t, opt.repeats);
    out["copy_bandwidth_GBps"][std::to_string(t)] = bandwidth[t] / 1e9;
    std::printf("memory copy bandwidth, %zu thread(s): %.2f GB/s (read + write)\n", t,
                bandwidth[t] / 1e9);
  }
  std::printf("%-18s %7s %12s %12s %10s %10s\n", "mode", "threads", "frames/s", "pix-par f/s",
              "GB/s read", "% of copy");
  for (const bench::Mode& mode : bench::modes()) {
    const auto t0 = Clock::now();
    const auto plan = Plan::build(geometry, mode.settings);
    const double build_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double bytes = bytes_per_frame(*plan);
    for (std::size_t t = 1; t <= opt.max_threads; ++t) {
      const double fps = frames_parallel(plan, frames, t, opt.repeats);
      const double pfps = pixels_parallel(plan, frames, t, opt.repeats);
      const double gbps = fps * bytes / 1e9;
      std::printf("%-18s %7zu %12.1f %12.1f %10.2f %9.0f%%\n", mode.name.c_str(), t, fps, pfps,
                  gbps, 100.0 * fps * bytes / bandwidth[t]);
      out["results"].push_back({{"mode", mode.name},
                                {"threads", t},
                                {"frames_per_s", fps},
                                {"pixel_parallel_frames_per_s", pfps},
                                {"bytes_per_frame", bytes},
                                {"plan_build_s", build_s},
                                {"nnz", plan->csr_indices().size()}});
    }
  }
  if (!opt.json.empty()) std::ofstream(opt.json) << out.dump(2) << "\n";
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "integrate_bench: %s\n", e.what());
  return 1;
}
