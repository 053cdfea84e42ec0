// decode_bench MASTER.h5 [REPS]: single-thread decoding throughput on one dataset:
//   mapped   Dataset::read_frame (default options): the chunk decoded straight from the
//            read-only mapping of the data file (zero-copy chunk path) + azflow's decoder
//   fresh    the same with a new Dataset (so a new mapping: page faults included) each pass
//   copy     Dataset::read_frame with map_files off: H5Dread_chunk copies the chunk, then decode
//   decode   azflow's decoder alone on chunks held in memory, at the best SIMD level
//   hdf5     Dataset::read_frame with force_hdf5_filter_path: H5Dread through the filter plugin
//   lz4      liblz4 alone: LZ4_decompress_safe over the same LZ4 blocks into one L1-sized buffer
//            (chunks in memory, no bit-unshuffle, the frame never written) — the goal's yardstick
//   read     the chunk read alone (read_chunk into a buffer, no decoding): memcpy from the
//            mapping, or H5Dread_chunk
// and, for bitshuffle-LZ4, a breakdown built from the same blocks: streaming stores alone filling
// the frame (write bandwidth), liblz4 + copying each decoded block into the frame (ordinary and
// streaming stores; the bound for any decoder that writes the frame), and liblz4 +
// BlockUnshuffler at each vector level with either store mode.
//
// All but the hdf5 path run round-robin, one pass over every frame each per repetition, so that
// they share the machine's load (other processes, frequency) as evenly as possible; each row is
// the median of REPS repetitions (default 5; the hdf5 path, ~30x slower, runs min(REPS, 5)).
// A path's untimed `setup` (opening the fresh Dataset) runs before each of its passes.
// Prints frames/s and GB/s of decoded output, and the ratios.

#include <emmintrin.h>
#include <lz4.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "stages/decompress/bitshuffle_lz4.hpp"
#include "stages/decompress/codec.hpp"
#include "stages/source/dataset.hpp"

namespace {

using azflow::decompress::BlockUnshuffler;
using azflow::decompress::SimdLevel;
using azflow::decompress::StoreMode;
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
  if (block == 0) block = azflow::decompress::default_block_elements(elem_size);
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

// Decodes block `b` of `chunk` into `dst` (b.decoded bytes) with LZ4_decompress_safe.
void lz4_block(const std::vector<std::byte>& chunk, const Block& b, std::byte* dst) {
  const int got = LZ4_decompress_safe(reinterpret_cast<const char*>(chunk.data() + b.offset),
                                      reinterpret_cast<char*>(dst), static_cast<int>(b.stored),
                                      static_cast<int>(b.decoded));
  if (got != static_cast<int>(b.decoded)) std::abort();
}

// Copies n bytes with SSE2 non-temporal stores where `dst` is 16-byte aligned.
void stream_copy(std::byte* dst, const std::byte* src, std::size_t n) {
  std::size_t k = 0;
  if (reinterpret_cast<std::uintptr_t>(dst) % 16 == 0) {
    for (; k + 16 <= n; k += 16) {
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + k),
                       _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + k)));
    }
  }
  std::memcpy(dst + k, src + k, n - k);
}

// Fills `frame` with SSE2 non-temporal stores from its first 16-byte aligned byte, as a write
// bandwidth yardstick (memset may keep a 17.9 MB frame in L3 or pick its own strategy).
void stream_fill(std::vector<std::byte>& frame, std::size_t value) {
  const __m128i v = _mm_set1_epi8(static_cast<char>(value));
  std::byte* p = frame.data();
  std::byte* const end = p + frame.size();
  while (p < end && reinterpret_cast<std::uintptr_t>(p) % 16 != 0) *p++ = std::byte{0};
  for (; p + 16 <= end; p += 16) _mm_stream_si128(reinterpret_cast<__m128i*>(p), v);
  while (p < end) *p++ = std::byte{0};
  _mm_sfence();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// One timed way of decoding every frame.
struct Path {
  Path(std::string n, std::function<void()> r, std::vector<double> s = {},
       std::function<void()> before = {})
      : name(std::move(n)), run(std::move(r)), seconds(std::move(s)), setup(std::move(before)) {}
  std::string name;
  std::function<void()> run;
  std::vector<double> seconds;
  std::function<void()> setup;  // untimed, before each pass; may be empty
};

// Runs every path once per repetition, in turn; fills each one's `seconds`.
void time_round_robin(int reps, std::vector<Path>& paths) {
  for (int r = 0; r < reps; ++r) {
    for (Path& p : paths) {
      if (p.setup) p.setup();
      const auto t0 = Clock::now();
      p.run();
      p.seconds.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: decode_bench MASTER.h5 [REPS]\n");
    return 2;
  }
  const int reps = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
  Dataset fast = Dataset::open(argv[1]);
  azflow::source::OpenOptions copy_options;
  copy_options.map_files = false;
  Dataset copy = Dataset::open(argv[1], copy_options);
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
    fast.read_frame(i, frame);  // also checks azflow (both paths) == HDF5 on every frame
    slow.read_frame(i, check);
    if (frame != check) throw azflow::Error(azflow::ErrorCategory::kInternal, "frames differ");
    copy.read_frame(i, frame);
    if (frame != check) throw azflow::Error(azflow::ErrorCategory::kInternal, "frames differ");
  }
  if (!fast.chunk_view(0) || copy.chunk_view(0)) {
    throw azflow::Error(azflow::ErrorCategory::kInternal, "the mapped path is not in use");
  }
  const SimdLevel best = azflow::decompress::best_simd_level();
  std::printf("dataset %s: %zu frames %zu x %zu %s, codec %s, %.1f MB decoded/frame, ratio %.2f\n",
              argv[1], frames, info.rows, info.cols,
              std::string(azflow::dtype_name(info.dtype)).c_str(),
              std::string(azflow::decompress::codec_name(codec.codec)).c_str(),
              static_cast<double>(bytes) / 1e6,
              static_cast<double>(frames * bytes) / static_cast<double>(stored));
  std::printf(
      "simd: %s, store mode for this frame: %s, single thread, median of %d repetitions\n",
      std::string(azflow::decompress::simd_level_name(best)).c_str(),
      azflow::decompress::store_mode_for(bytes) == StoreMode::kStreaming ? "streaming" : "cached",
      reps);

  std::vector<Path> paths;
  paths.push_back({"azflow mapped read + decode (read_frame)",
                   [&] {
                     for (std::size_t i = 0; i < frames; ++i) fast.read_frame(i, frame);
                   },
                   {}});
  std::optional<Dataset> fresh;
  paths.push_back({"azflow mapped read + decode, new mapping per pass",
                   [&] {
                     for (std::size_t i = 0; i < frames; ++i) fresh->read_frame(i, frame);
                   },
                   {},
                   [&] {
                     fresh.reset();
                     fresh.emplace(Dataset::open(argv[1]));
                   }});
  paths.push_back({"azflow H5Dread_chunk read + decode (read_frame)",
                   [&] {
                     for (std::size_t i = 0; i < frames; ++i) copy.read_frame(i, frame);
                   },
                   {}});
  paths.push_back({"azflow decode only (chunks in memory)",
                   [&] {
                     for (std::size_t i = 0; i < frames; ++i) {
                       azflow::decompress::decode(codec, chunks[i], frame);
                     }
                   },
                   {}});
  std::size_t largest = 0;
  for (const auto& c : chunks) largest = std::max(largest, c.size());
  std::vector<std::byte> chunk_buf(largest);
  paths.push_back({"chunk read alone: memcpy from mapping (read_chunk)",
                   [&] {
                     for (std::size_t i = 0; i < frames; ++i) fast.read_chunk(i, chunk_buf);
                   },
                   {}});
  paths.push_back({"chunk read alone: H5Dread_chunk (read_chunk)",
                   [&] {
                     for (std::size_t i = 0; i < frames; ++i) copy.read_chunk(i, chunk_buf);
                   },
                   {}});
  const std::size_t kLz4Row = paths.size();
  const bool bslz4 = codec.codec == azflow::decompress::Codec::kBitshuffleLz4;
  std::vector<std::vector<Block>> blocks;
  alignas(64) static std::byte scratch[1 << 16];  // one decoded block, stays in L1
  if (bslz4) {
    for (const auto& c : chunks) blocks.push_back(lz4_blocks(c, codec.elem_size));
    for (const auto& bs : blocks) {
      for (const Block& b : bs) {
        if (b.decoded > sizeof scratch) throw azflow::Error(azflow::ErrorCategory::kInput, "block");
      }
    }
    paths.push_back({"liblz4 alone (LZ4_decompress_safe, same blocks)",
                     [&] {
                       for (std::size_t i = 0; i < frames; ++i) {
                         for (const Block& b : blocks[i]) lz4_block(chunks[i], b, scratch);
                       }
                     },
                     {}});
    const auto with_copy = [&](bool streaming) {
      return [&, streaming] {
        for (std::size_t i = 0; i < frames; ++i) {
          std::size_t done = 0;
          for (const Block& b : blocks[i]) {
            lz4_block(chunks[i], b, scratch);
            if (streaming) {
              stream_copy(frame.data() + done, scratch, b.decoded);
            } else {
              std::memcpy(frame.data() + done, scratch, b.decoded);
            }
            done += b.decoded;
          }
        }
        _mm_sfence();
      };
    };
    paths.push_back({"streaming stores alone: fill the frame (no decoding)",
                     [&] {
                       for (std::size_t i = 0; i < frames; ++i) stream_fill(frame, i);
                     },
                     {}});
    paths.push_back({"liblz4 + memcpy into the frame", with_copy(false), {}});
    paths.push_back({"liblz4 + streaming copy into the frame", with_copy(true), {}});
    for (SimdLevel level : {SimdLevel::kAvx2, SimdLevel::kAvx2Gfni}) {
      if (!azflow::decompress::simd_level_supported(level)) continue;
      for (StoreMode mode : {StoreMode::kCached, StoreMode::kStreaming}) {
        paths.push_back({"liblz4 + BlockUnshuffler " +
                             std::string(azflow::decompress::simd_level_name(level)) +
                             (mode == StoreMode::kStreaming ? " streaming" : " cached"),
                         [&, level, mode] {
                           for (std::size_t i = 0; i < frames; ++i) {
                             const BlockUnshuffler unshuffle(codec.elem_size, level, mode);
                             std::size_t done = 0;
                             for (const Block& b : blocks[i]) {
                               lz4_block(chunks[i], b, scratch);
                               unshuffle({scratch, b.decoded}, {frame.data() + done, b.decoded});
                               done += b.decoded;
                             }
                           }
                         },
                         {}});
      }
    }
  }
  time_round_robin(reps, paths);
  std::vector<Path> hdf5{{"HDF5 H5Dread through the filter plugin",
                          [&] {
                            for (std::size_t i = 0; i < frames; ++i) slow.read_frame(i, frame);
                          },
                          {}}};
  time_round_robin(std::min(reps, 5), hdf5);

  const double t_lz4 = bslz4 ? median(paths[kLz4Row].seconds) : 0;
  auto row = [&](const Path& p) {
    const double t = median(p.seconds);
    std::printf("  %-50s %7.1f frames/s  %6.2f GB/s", p.name.c_str(),
                static_cast<double>(frames) / t, static_cast<double>(frames * bytes) / t / 1e9);
    if (t_lz4 > 0) std::printf("  %4.0f%% of liblz4 alone", 100 * t_lz4 / t);
    std::printf("\n");
  };
  for (const Path& p : paths) row(p);
  row(hdf5[0]);
  const double t_mapped = median(paths[0].seconds), t_fresh = median(paths[1].seconds);
  const double t_copy = median(paths[2].seconds), t_decode = median(paths[3].seconds);
  std::printf("ratios: azflow mapped/H5Dread %.2fx, mapped/H5Dread_chunk path %.3fx",
              median(hdf5[0].seconds) / t_mapped, t_copy / t_mapped);
  if (t_lz4 > 0) {
    std::printf(
        "\n  / liblz4 alone: mapped read+decode %.1f%%, new mapping %.1f%%, H5Dread_chunk "
        "read+decode %.1f%%, decode only %.1f%%",
        100 * t_lz4 / t_mapped, 100 * t_lz4 / t_fresh, 100 * t_lz4 / t_copy,
        100 * t_lz4 / t_decode);
  }
  std::printf("\n");
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "decode_bench: %s\n", e.what());
  return 1;
}
