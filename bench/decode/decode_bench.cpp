// decode_bench MASTER.h5 [REPS]: single-thread decoding throughput on one dataset, three ways:
//   azflow   Dataset::read_frame: direct chunk read (H5Dread_chunk) + azflow's bitshuffle-LZ4
//   hdf5     Dataset::read_frame with force_hdf5_filter_path: H5Dread through the filter plugin
//   lz4      liblz4 alone: LZ4_decompress_safe over the same LZ4 blocks (chunks held in memory,
//            no bit-unshuffle, no file reads) — the limit for any bitshuffle-LZ4 decoder
// plus azflow's decoder alone on chunks in memory. Prints the median of REPS repetitions
// (default 5) as frames/s and GB/s of decoded output, and the ratios.

#include <lz4.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "stages/decompress/bitshuffle_lz4.hpp"
#include "stages/decompress/codec.hpp"
#include "stages/source/dataset.hpp"

namespace {

using azflow::source::Dataset;
using Clock = std::chrono::steady_clock;

std::uint32_t be32(const std::byte* p) {
  return (std::to_integer<std::uint32_t>(p[0]) << 24) |
         (std::to_integer<std::uint32_t>(p[1]) << 16) |
         (std::to_integer<std::uint32_t>(p[2]) << 8) | std::to_integer<std::uint32_t>(p[3]);
}

// The LZ4 blocks of one bitshuffle-LZ4 chunk: (offset of data, compressed size, decoded size).
struct Block {
  std::size_t offset, stored, decoded;
};

std::vector<Block> lz4_blocks(const std::vector<std::byte>& chunk, std::size_t elem_size) {
  const std::size_t raw = azflow::decompress::bitshuffle_lz4_decoded_size(chunk);
  std::size_t block = be32(chunk.data() + 8) / elem_size;
  if (block == 0) block = 8192 / elem_size;
  const std::size_t n = raw / elem_size;
  std::vector<Block> blocks;
  std::size_t pos = 12;
  auto add = [&](std::size_t elems) {
    const std::size_t stored = be32(chunk.data() + pos);
    blocks.push_back({pos + 4, stored, elems * elem_size});
    pos += 4 + stored;
  };
  for (std::size_t i = 0; i < n / block; ++i) add(block);
  if ((n % block) / 8 * 8 > 0) add((n % block) / 8 * 8);
  return blocks;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class Fn>
double time_median(int reps, Fn&& fn) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return median(t);
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: decode_bench MASTER.h5 [REPS]\n");
    return 2;
  }
  const int reps = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
  Dataset fast = Dataset::open(argv[1]);
  azflow::source::OpenOptions slow_options;
  slow_options.force_hdf5_filter_path = true;
  Dataset slow = Dataset::open(argv[1], slow_options);
  const auto& info = fast.info();
  const std::size_t frames = info.frames, bytes = info.frame_bytes();
  const auto codec = fast.frame_codec(0);
  std::vector<std::byte> frame(bytes), check(bytes);

  std::vector<std::vector<std::byte>> chunks(frames);
  std::size_t stored = 0;
  for (std::size_t i = 0; i < frames; ++i) {
    chunks[i].resize(fast.chunk_bytes(i));
    stored += fast.read_chunk(i, chunks[i]).bytes;
    fast.read_frame(i, frame);  // also checks azflow == HDF5 on every frame
    slow.read_frame(i, check);
    if (frame != check) throw azflow::Error(azflow::ErrorCategory::kInternal, "frames differ");
  }
  std::printf("dataset %s: %zu frames %zu x %zu %s, codec %s, %.1f MB decoded/frame, ratio %.2f\n",
              argv[1], frames, info.rows, info.cols,
              std::string(azflow::dtype_name(info.dtype)).c_str(),
              std::string(azflow::decompress::codec_name(codec.codec)).c_str(),
              static_cast<double>(bytes) / 1e6,
              static_cast<double>(frames * bytes) / static_cast<double>(stored));
  std::printf(
      "simd: %s, single thread, median of %d repetitions\n",
      std::string(azflow::decompress::simd_level_name(azflow::decompress::best_simd_level()))
          .c_str(),
      reps);

  const double t_azflow = time_median(reps, [&] {
    for (std::size_t i = 0; i < frames; ++i) fast.read_frame(i, frame);
  });
  const double t_decode = time_median(reps, [&] {
    for (std::size_t i = 0; i < frames; ++i) azflow::decompress::decode(codec, chunks[i], frame);
  });
  const double t_hdf5 = time_median(reps, [&] {
    for (std::size_t i = 0; i < frames; ++i) slow.read_frame(i, frame);
  });
  double t_lz4 = 0;
  if (codec.codec == azflow::decompress::Codec::kBitshuffleLz4) {
    std::vector<std::vector<Block>> blocks;
    for (const auto& c : chunks) blocks.push_back(lz4_blocks(c, codec.elem_size));
    std::vector<char> scratch(bytes);
    t_lz4 = time_median(reps, [&] {
      for (std::size_t i = 0; i < frames; ++i) {
        for (const Block& b : blocks[i]) {
          const int got = LZ4_decompress_safe(
              reinterpret_cast<const char*>(chunks[i].data() + b.offset), scratch.data(),
              static_cast<int>(b.stored), static_cast<int>(b.decoded));
          if (got != static_cast<int>(b.decoded)) std::abort();
        }
      }
    });
  }
  auto row = [&](const char* name, double t) {
    std::printf("  %-44s %8.1f frames/s  %6.2f GB/s\n", name, static_cast<double>(frames) / t,
                static_cast<double>(frames * bytes) / t / 1e9);
  };
  row("azflow direct read + decode (read_frame)", t_azflow);
  row("azflow decode only (chunks in memory)", t_decode);
  row("HDF5 H5Dread through the filter plugin", t_hdf5);
  if (t_lz4 > 0) row("liblz4 alone (LZ4_decompress_safe, same blocks)", t_lz4);
  std::printf("ratios: azflow/H5Dread %.2fx", t_hdf5 / t_azflow);
  if (t_lz4 > 0) {
    std::printf(
        ", azflow read+decode / liblz4 alone %.0f%%, azflow decode only / liblz4 alone %.0f%%",
        100 * t_lz4 / t_azflow, 100 * t_lz4 / t_decode);
  }
  std::printf("\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "decode_bench: %s\n", e.what());
  return 1;
}
