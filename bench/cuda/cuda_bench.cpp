// CUDA backend benchmark (issue 6), on one GPU, in one run:
//   - device memory bandwidth: a device-to-device cudaMemcpy of 1 GiB (bytes read + written / s);
//   - host-to-device copy rate from pinned (cudaMallocHost) memory, 256 MiB copies;
//   - per mode (1D no split, 1D bbox, 2D bbox 360 x 1000; 1000 radial bins, q_nm^-1, Poisson,
//     dummy 0xFFFFFFFF, as bench/integrate): integration-only frames/s (kernel launches over a
//     batch already on the device, timed with CUDA events), the bytes each frame's kernel reads
//     and writes (gpu::kernel_bytes_per_frame) and their rate as a fraction of the copy
//     bandwidth; and frames/s through CudaIntegrator::submit/collect from pinned host frames
//     (copies to and from the device included, double-buffered);
//   - a check of the first frame's sums against the CPU integrator (largest relative difference);
//   - decode kernel GB/s of decoded output (CudaDecoder::time_kernel, no copies) for the frames
//     encoded here as bitshuffle-LZ4 uint32 and uint16 (filter 32008, default 8192-byte blocks)
//     and LZ4 uint16 (filter 32004, 8192-byte blocks, as the EIGER2 writes them), one launch over
//     a batch of --batch frames, each decoded frame checked bit-exact against the original.
// Prints a table; --json writes the figures for bench/cuda/run.sh. Not a test: see bench/README.md.
//   azflow_cuda_bench [--poni P] [--data MASTER.h5] [--frames 16] [--batch 8] [--repeats 20]
//                     [--device 0] [--json out.json]

#include <cuda_runtime.h>
#include <lz4.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/integrate/bench_inputs.hpp"
#include "stages/decompress/cuda_decode.hpp"
#include "stages/decompress/gpu_decode_math.hpp"
#include "stages/integrate/cuda_integrator.hpp"
#include "stages/integrate/gpu_plan.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/source/dataset.hpp"

namespace {

using namespace azflow;
using namespace azflow::integrate;
using Clock = std::chrono::steady_clock;

struct Options {
  std::size_t frames = 16;
  std::size_t batch = 8;
  std::size_t repeats = 20;
  int device = 0;
  std::string poni, data, json;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("missing value after " + a);
      return argv[++i];
    };
    if (a == "--frames") {
      o.frames = std::stoul(next());
    } else if (a == "--batch") {
      o.batch = std::stoul(next());
    } else if (a == "--repeats") {
      o.repeats = std::stoul(next());
    } else if (a == "--device") {
      o.device = std::stoi(next());
    } else if (a == "--poni") {
      o.poni = next();
    } else if (a == "--data") {
      o.data = next();
    } else if (a == "--json") {
      o.json = next();
    } else {
      throw std::runtime_error("unknown option " + a +
                               " (--frames --batch --repeats --device --poni --data --json)");
    }
  }
  return o;
}

void cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
  }
}

/// Seconds of `repeats` calls of `work` on `stream`, timed with CUDA events, per call.
template <class Work>
double time_on_stream(cudaStream_t stream, std::size_t repeats, Work&& work) {
  cudaEvent_t start, stop;
  cuda(cudaEventCreate(&start), "cudaEventCreate");
  cuda(cudaEventCreate(&stop), "cudaEventCreate");
  work();  // warm-up
  cuda(cudaEventRecord(start, stream), "cudaEventRecord");
  for (std::size_t r = 0; r < repeats; ++r) work();
  cuda(cudaEventRecord(stop, stream), "cudaEventRecord");
  cuda(cudaEventSynchronize(stop), "cudaEventSynchronize");
  float ms = 0;
  cuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
  cuda(cudaEventDestroy(start), "cudaEventDestroy");
  cuda(cudaEventDestroy(stop), "cudaEventDestroy");
  return ms / 1e3 / static_cast<double>(repeats);
}

/// Device-to-device copy bandwidth, bytes read + written per second.
double d2d_bandwidth(std::size_t repeats) {
  const std::size_t bytes = std::size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  cuda(cudaMalloc(&a, bytes), "cudaMalloc");
  cuda(cudaMalloc(&b, bytes), "cudaMalloc");
  cuda(cudaMemset(a, 1, bytes), "cudaMemset");
  const double s = time_on_stream(nullptr, repeats, [&] {
    cuda(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, nullptr), "cudaMemcpyAsync");
  });
  cuda(cudaFree(a), "cudaFree");
  cuda(cudaFree(b), "cudaFree");
  return 2.0 * static_cast<double>(bytes) / s;
}

/// Host-to-device copy rate from pinned memory, bytes per second.
double h2d_pinned_rate(std::size_t repeats) {
  const std::size_t bytes = std::size_t{256} << 20;
  void *host = nullptr, *dev = nullptr;
  cuda(cudaMallocHost(&host, bytes), "cudaMallocHost");
  cuda(cudaMalloc(&dev, bytes), "cudaMalloc");
  std::memset(host, 1, bytes);
  const double s = time_on_stream(nullptr, repeats, [&] {
    cuda(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, nullptr), "cudaMemcpyAsync");
  });
  cuda(cudaFree(dev), "cudaFree");
  cuda(cudaFreeHost(host), "cudaFreeHost");
  return static_cast<double>(bytes) / s;
}

double max_relative_difference(const BinSums& a, const BinSums& b) {
  double worst = 0;
  for (const auto field :
       {&BinSums::signal, &BinSums::variance, &BinSums::normalization, &BinSums::count}) {
    const auto &x = a.*field, &y = b.*field;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double scale = std::max(std::fabs(x[i]), std::fabs(y[i]));
      if (scale > 0) worst = std::max(worst, std::fabs(x[i] - y[i]) / scale);
    }
  }
  return worst;
}

/// frames/s through submit/collect from pinned host frames (copies included).
double pipelined_fps(CudaIntegrator& gpu, const std::vector<FrameView>& views,
                     std::size_t repeats) {
  const std::size_t batch = gpu.options().max_batch;
  const std::size_t total = views.size() * repeats;
  std::size_t submitted = 0, collected = 0;
  const auto t0 = Clock::now();
  while (collected < total) {
    while (submitted < total && gpu.can_submit()) {
      const std::size_t n = std::min(batch, total - submitted);
      std::vector<FrameView> b;
      for (std::size_t i = 0; i < n; ++i) b.push_back(views[(submitted + i) % views.size()]);
      gpu.submit(b);
      submitted += n;
    }
    collected += gpu.collect().frames;
  }
  return static_cast<double>(total) / std::chrono::duration<double>(Clock::now() - t0).count();
}

// ------------------------------------------------------------------------------ decode

void put_be(std::vector<std::byte>& out, std::uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}

/// Appends one LZ4 block of `n` bytes at `p`, or the bytes themselves when `raw_if_larger` and
/// LZ4 does not make them smaller (the 32004 filter's rule), with its big-endian size first.
void put_lz4_block(std::vector<std::byte>& out, const std::byte* p, std::size_t n,
                   bool raw_if_larger) {
  std::vector<char> packed(static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(n))));
  const int got = LZ4_compress_default(reinterpret_cast<const char*>(p), packed.data(),
                                       static_cast<int>(n), static_cast<int>(packed.size()));
  if (got <= 0) throw std::runtime_error("LZ4_compress_default failed");
  if (raw_if_larger && static_cast<std::size_t>(got) >= n) {
    put_be(out, n, 4);
    out.insert(out.end(), p, p + n);
    return;
  }
  put_be(out, static_cast<std::uint64_t>(got), 4);
  const auto* b = reinterpret_cast<const std::byte*>(packed.data());
  out.insert(out.end(), b, b + got);
}

/// bitshuffle's transpose of one block of `bytes` bytes of `es`-byte elements (row 8b+k, byte m,
/// bit j = bit k of byte b of element 8m+j): the 8x8 bit transpose is its own inverse.
std::vector<std::byte> bitshuffle_block(const std::byte* in, std::size_t bytes, std::size_t es) {
  const std::size_t row = bytes / (8 * es);
  std::vector<std::byte> out(bytes);
  for (std::size_t m = 0; m < row; ++m) {
    for (std::size_t b = 0; b < es; ++b) {
      std::uint64_t x = 0;
      for (std::size_t j = 0; j < 8; ++j) {
        x |= std::to_integer<std::uint64_t>(in[(8 * m + j) * es + b]) << (8 * j);
      }
      x = decompress::gpu::transpose8x8(x);
      for (std::size_t k = 0; k < 8; ++k) out[(8 * b + k) * row + m] = std::byte(x >> (8 * k));
    }
  }
  return out;
}

/// One frame as an HDF5 filter 32008 (bitshuffle + LZ4) chunk with the default block.
std::vector<std::byte> encode_bitshuffle_lz4(const std::vector<std::byte>& frame, std::size_t es) {
  const std::size_t block_elems = decompress::gpu::default_block_elems(es);
  const std::size_t n = frame.size() / es, block = block_elems * es;
  std::vector<std::byte> out;
  put_be(out, frame.size(), 8);
  put_be(out, block, 4);
  std::size_t done = 0;
  for (; done + block <= frame.size(); done += block) {
    put_lz4_block(out, bitshuffle_block(frame.data() + done, block, es).data(), block, false);
  }
  const std::size_t last = (n % block_elems) / 8 * 8 * es;
  if (last > 0) {
    put_lz4_block(out, bitshuffle_block(frame.data() + done, last, es).data(), last, false);
    done += last;
  }
  out.insert(out.end(), frame.begin() + static_cast<std::ptrdiff_t>(done), frame.end());
  return out;
}

/// One frame as an HDF5 filter 32004 (LZ4) chunk with `block`-byte blocks.
std::vector<std::byte> encode_lz4_h5(const std::vector<std::byte>& frame, std::size_t block) {
  std::vector<std::byte> out;
  put_be(out, frame.size(), 8);
  put_be(out, block, 4);
  for (std::size_t done = 0; done < frame.size(); done += block) {
    put_lz4_block(out, frame.data() + done, std::min(block, frame.size() - done), true);
  }
  return out;
}

/// The frames as `es`-byte little-endian pixels (values clamped to the type's range).
std::vector<std::vector<std::byte>> as_bytes(const std::vector<std::vector<std::uint32_t>>& frames,
                                             std::size_t es) {
  std::vector<std::vector<std::byte>> out;
  for (const auto& f : frames) {
    auto& b = out.emplace_back(f.size() * es);
    for (std::size_t i = 0; i < f.size(); ++i) {
      const std::uint32_t v = es == 4 ? f[i] : std::min<std::uint32_t>(f[i], 0xFFFF);
      for (std::size_t k = 0; k < es; ++k) b[i * es + k] = std::byte(v >> (8 * k));
    }
  }
  return out;
}

/// Decode kernel GB/s of decoded output for one codec over a batch of frames; checks every
/// decoded frame against the original.
nlohmann::json bench_decode(const std::string& name, decompress::gpu::GpuCodec codec,
                            std::size_t es, const std::vector<std::vector<std::byte>>& frames,
                            int device, std::size_t repeats) {
  std::vector<std::vector<std::byte>> chunks;
  std::size_t in_bytes = 0, out_bytes = 0;
  for (const auto& f : frames) {
    chunks.push_back(codec == decompress::gpu::GpuCodec::kLz4H5 ? encode_lz4_h5(f, 8192)
                                                                : encode_bitshuffle_lz4(f, es));
    in_bytes += (chunks.back().size() + 255) / 256 * 256;
    out_bytes += (f.size() + 255) / 256 * 256;
  }
  decompress::DeviceBytes in(device, in_bytes), out(device, out_bytes);
  out.fill(0xA5);
  std::vector<decompress::CudaDecodeItem> items;
  std::size_t ip = 0, op = 0, compressed = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    in.upload(chunks[i], ip);
    items.push_back({codec, es, chunks[i], in.data() + ip, out.data() + op, frames[i].size()});
    ip += (chunks[i].size() + 255) / 256 * 256;
    op += (frames[i].size() + 255) / 256 * 256;
    compressed += chunks[i].size();
  }
  decompress::CudaDecoder decoder(device);
  const auto t0 = Clock::now();
  const auto results = decoder.decode(items);
  const double with_setup = std::chrono::duration<double>(Clock::now() - t0).count();
  bool exact = true;
  op = 0;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    std::vector<std::byte> got(frames[i].size());
    out.download(got, op);
    op += (frames[i].size() + 255) / 256 * 256;
    exact = exact && results[i].status == decompress::gpu::DecodeStatus::kOk && got == frames[i];
  }
  std::size_t decoded = 0;
  const double s = decoder.time_kernel(repeats, &decoded);
  const double gbps = static_cast<double>(decoded) / s / 1e9;
  const double ratio = static_cast<double>(decoded) / static_cast<double>(compressed);
  std::printf("%-22s %8zu %10.2f %9.1f %12.1f %s\n", name.c_str(), frames.size(), ratio, gbps,
              static_cast<double>(decoded) / with_setup / 1e9, exact ? "yes" : "NO");
  return {{"codec", name},
          {"frames", frames.size()},
          {"decoded_bytes", decoded},
          {"ratio", ratio},
          {"kernel_GBps", gbps},
          {"first_call_GBps", static_cast<double>(decoded) / with_setup / 1e9},
          {"bit_exact", exact}};
}

}  // namespace

int main(int argc, char** argv) try {
  const Options opt = parse(argc, argv);
  const CudaProbe probe = probe_cuda_devices();
  if (probe.devices.empty()) {
    std::printf("no GPU: %s\n", probe.reason.c_str());
    return 2;
  }
  cuda(cudaSetDevice(opt.device), "cudaSetDevice");
  const auto& dev = probe.devices.at(static_cast<std::size_t>(opt.device));
  const Geometry geometry(opt.poni.empty() ? bench::default_poni() : read_poni(opt.poni));
  std::printf("azflow cuda_bench on cuda:%d %s (sm %d.%d, %.1f GiB): %zu x %zu uint32 frames\n",
              opt.device, dev.name.c_str(), dev.compute_major, dev.compute_minor,
              static_cast<double>(dev.memory_bytes) / (1u << 30), geometry.rows(), geometry.cols());
  const auto frames =
      opt.data.empty() ? bench::make_frames(opt.frames, geometry.rows(), geometry.cols())
                       : bench::read_frames(opt.data, opt.frames, geometry.rows(), geometry.cols());
  // The frames in pinned memory, as the stage's registered ring slots are.
  const std::size_t frame_bytes = geometry.rows() * geometry.cols() * sizeof(std::uint32_t);
  void* pinned = nullptr;
  cuda(cudaMallocHost(&pinned, frames.size() * frame_bytes), "cudaMallocHost");
  std::vector<FrameView> views;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    auto* dst = static_cast<std::byte*>(pinned) + i * frame_bytes;
    std::memcpy(dst, frames[i].data(), frame_bytes);
    views.push_back({dst, DType::kUint32, geometry.rows(), geometry.cols()});
  }

  const double d2d = d2d_bandwidth(opt.repeats);
  const double h2d = h2d_pinned_rate(opt.repeats);
  std::printf(
      "device-to-device copy: %.1f GB/s (read + write); host-to-device from pinned: "
      "%.1f GB/s\n",
      d2d / 1e9, h2d / 1e9);
  nlohmann::json out = {{"device", dev.name},
                        {"compute_capability", std::to_string(dev.compute_major) + "." +
                                                   std::to_string(dev.compute_minor)},
                        {"rows", geometry.rows()},
                        {"cols", geometry.cols()},
                        {"batch", opt.batch},
                        {"d2d_GBps", d2d / 1e9},
                        {"h2d_pinned_GBps", h2d / 1e9},
                        {"results", nlohmann::json::array()}};
  std::printf("%-18s %11s %12s %10s %8s %13s %12s\n", "mode", "kernel f/s", "bytes/frame", "GB/s",
              "% d2d", "with copies", "max rel diff");
  for (const bench::Mode& mode : bench::modes()) {
    const auto plan = Plan::build(geometry, mode.settings);
    const gpu::PackedPlan packed = gpu::pack_plan(*plan);
    const std::size_t bytes = gpu::kernel_bytes_per_frame(packed, DType::kUint32);
    CudaIntegrator integrator(plan, CudaOptions{opt.device, opt.batch, 2, 0});
    const std::size_t b = std::min(opt.batch, views.size());
    std::vector<BinSums> sums(b);
    integrator.integrate_batch(std::span(views).subspan(0, b), sums);  // fills buffer set 0
    const double kernel_s = integrator.time_kernel(b, DType::kUint32, opt.repeats);
    const double kernel_fps = static_cast<double>(b) / kernel_s;
    const double rate = kernel_fps * static_cast<double>(bytes);
    const double copies_fps =
        pipelined_fps(integrator, views, std::max<std::size_t>(1, opt.repeats / 4));
    BinSums cpu_sums;
    CpuIntegrator(plan).integrate(views[0], cpu_sums);
    const double diff = max_relative_difference(cpu_sums, sums[0]);
    std::printf("%-18s %11.1f %12zu %10.1f %7.0f%% %13.1f %12.2e\n", mode.name.c_str(), kernel_fps,
                bytes, rate / 1e9, 100 * rate / d2d, copies_fps, diff);
    out["results"].push_back({{"mode", mode.name},
                              {"row_group", packed.settings.row_group},
                              {"kernel_fps", kernel_fps},
                              {"bytes_per_frame", bytes},
                              {"kernel_GBps", rate / 1e9},
                              {"fraction_of_d2d", rate / d2d},
                              {"with_copies_fps", copies_fps},
                              {"max_rel_diff_vs_cpu", diff}});
  }
  cuda(cudaFreeHost(pinned), "cudaFreeHost");

  // Decoders: a batch of opt.batch frames (the first ones, repeated if fewer were read).
  std::vector<std::vector<std::uint32_t>> batch;
  for (std::size_t i = 0; i < opt.batch; ++i) batch.push_back(frames[i % frames.size()]);
  std::printf("\n%-22s %8s %10s %9s %12s %s\n", "decoder", "frames", "ratio", "GB/s", "first call",
              "bit-exact");
  using decompress::gpu::GpuCodec;
  const auto u32 = as_bytes(batch, 4), u16 = as_bytes(batch, 2);
  // A decoder failure is reported in the table and the JSON, not fatal: the rest of
  // bench/cuda/run.sh (the daemon runs) still runs in the same device session.
  const auto decode_case = [&](const std::string& name, GpuCodec codec, std::size_t es,
                               const std::vector<std::vector<std::byte>>& input) {
    try {
      return bench_decode(name, codec, es, input, opt.device, opt.repeats);
    } catch (const std::exception& e) {
      std::printf("%-22s FAILED: %s\n", name.c_str(), e.what());
      return nlohmann::json{{"codec", name}, {"error", e.what()}};
    }
  };
  out["decode"] = {decode_case("bitshuffle-lz4 uint32", GpuCodec::kBitshuffleLz4, 4, u32),
                   decode_case("bitshuffle-lz4 uint16", GpuCodec::kBitshuffleLz4, 2, u16),
                   decode_case("lz4 uint16", GpuCodec::kLz4H5, 2, u16)};
  if (!opt.json.empty()) std::ofstream(opt.json) << out.dump(2) << "\n";
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "azflow_cuda_bench: %s\n", e.what());
  return 1;
}
