// The host build of the GPU decoders (gpu_decode_math.hpp, lanes emulated by
// decode_chunk_gpu_host) against the CPU decoders and HDF5's own H5Dread: bit-exact frames on
// chunks written through Debian's filter plugins (the codec_test cases), on real DECTRIS files
// (../shared/real-data, skipped where absent), on the fuzz corpora, and the same accept/reject on
// corrupted chunks (flipped bytes, truncations, lying size fields) and on small LZ4 blocks made
// by liblz4 at test time.

#include "stages/decompress/gpu_decode.hpp"

#include <gtest/gtest.h>
#include <lz4.h>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "stages/decompress/bitshuffle_lz4.hpp"
#include "stages/decompress/lz4.hpp"
#include "tests/decompress/h5_test_util.hpp"

namespace azflow::decompress {
namespace {

namespace fs = std::filesystem;
using gpu::DecodeStatus;
using gpu::GpuCodec;

fs::path temp_file(const std::string& stem) {
  const auto dir =
      fs::temp_directory_path() / ("azflow_gpu_decode_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir / (stem + ".h5");
}

/// The CPU decoder's verdict on `in` into `out`; its message in `message` when it rejects.
bool cpu_decode(GpuCodec codec, std::span<const std::byte> in, std::span<std::byte> out,
                std::size_t elem, std::string* message = nullptr) {
  try {
    if (codec == GpuCodec::kBitshuffleLz4) {
      decode_bitshuffle_lz4(in, out, elem);
    } else if (codec == GpuCodec::kLz4H5) {
      decode_lz4_h5(in, out);
    } else {
      decode_lz4_raw(in, out);
    }
    return true;
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInput) << e.what();
    if (message != nullptr) *message = e.what();
    return false;
  }
}

/// Both decoders on one chunk: the same verdict, and the same frame when they accept. Returns
/// true if they accepted.
bool expect_same(GpuCodec codec, std::span<const std::byte> chunk, std::size_t frame_bytes,
                 std::size_t elem, const std::string& what, unsigned lanes = 32) {
  std::vector<std::byte> cpu(frame_bytes), host(frame_bytes, std::byte{0x5A});
  const bool cpu_ok = cpu_decode(codec, chunk, cpu, elem);
  const gpu::DecodeResult r = decode_chunk_gpu_host(codec, chunk, host, elem, lanes);
  const bool gpu_ok = r.status == DecodeStatus::kOk;
  EXPECT_EQ(cpu_ok, gpu_ok) << what << ": GPU host build says " << describe_decode_result(codec, r);
  if (cpu_ok && gpu_ok) {
    EXPECT_TRUE(cpu == host) << what << ": frames differ";
  }
  return cpu_ok && gpu_ok;
}

struct Case {
  std::string label;
  hid_t type;
  std::size_t rows, cols;
  unsigned filter;
  std::vector<unsigned> cd_values;
  bool noise = false;
};

// Writes 3 frames through the plugin, then decodes each stored chunk with the GPU host build (1,
// 7 and 32 lanes) and compares with H5Dread's frame.
void check_case(const Case& c) {
  SCOPED_TRACE(c.label);
  const std::size_t es = H5Tget_size(c.type);
  test::DatasetSpec spec{"/data", c.type, 3, c.rows, c.cols, {}, c.filter, c.cd_values};
  const std::size_t frame_bytes = c.rows * c.cols * es;
  const auto data = test::make_frames(3 * frame_bytes, es, 17, c.noise);
  const fs::path file = temp_file(c.label);
  fs::remove(file);
  test::write_dataset(file, spec, data.data());
  const auto reference = test::h5_read_all(file, "/data");
  const GpuCodec codec = c.filter == test::kLz4Filter ? GpuCodec::kLz4H5 : GpuCodec::kBitshuffleLz4;
  for (std::size_t f = 0; f < 3; ++f) {
    const auto chunk = test::read_raw_chunk(file, "/data", f);
    const std::vector<std::byte> expected(
        reference.begin() + static_cast<std::ptrdiff_t>(f * frame_bytes),
        reference.begin() + static_cast<std::ptrdiff_t>((f + 1) * frame_bytes));
    for (unsigned lanes : {1u, 7u, 32u}) {
      std::vector<std::byte> out(frame_bytes, std::byte{0xA5});
      const auto r = decode_chunk_gpu_host(codec, chunk, out, es, lanes);
      ASSERT_EQ(r.status, DecodeStatus::kOk) << describe_decode_result(codec, r);
      ASSERT_TRUE(out == expected) << "frame " << f << " lanes " << lanes;
    }
  }
}

TEST(GpuDecodeHost, BitshuffleLz4PluginChunks) {
  const unsigned bs = test::kBitshuffleFilter;
  check_case({"bslz4_u8", H5T_NATIVE_UINT8, 37, 53, bs, {0, 2}});
  check_case({"bslz4_u16", H5T_NATIVE_UINT16, 37, 53, bs, {0, 2}});
  check_case({"bslz4_u32", H5T_NATIVE_UINT32, 37, 53, bs, {0, 2}});
  check_case({"bslz4_i32", H5T_NATIVE_INT32, 64, 64, bs, {0, 2}});
  check_case({"bslz4_f32", H5T_NATIVE_FLOAT, 61, 67, bs, {0, 2}});
  check_case({"bslz4_u8_big", H5T_NATIVE_UINT8, 131, 157, bs, {0, 2}});
  check_case({"bslz4_u32_big", H5T_NATIVE_UINT32, 131, 157, bs, {0, 2}});
  check_case({"bslz4_u8_b64", H5T_NATIVE_UINT8, 37, 53, bs, {64, 2}});
  check_case({"bslz4_u16_b24", H5T_NATIVE_UINT16, 37, 53, bs, {24, 2}});
  check_case({"bslz4_u32_b256", H5T_NATIVE_UINT32, 37, 53, bs, {256, 2}});
  check_case({"bslz4_u32_b8", H5T_NATIVE_UINT32, 5, 7, bs, {8, 2}});
  check_case({"bslz4_u16_b4096", H5T_NATIVE_UINT16, 37, 53, bs, {4096, 2}});
  check_case({"bslz4_u32_noise", H5T_NATIVE_UINT32, 37, 53, bs, {64, 2}, true});
}

TEST(GpuDecodeHost, Lz4PluginChunks) {
  check_case({"lz4_u32", H5T_NATIVE_UINT32, 37, 53, test::kLz4Filter, {}});
  check_case({"lz4_u16_b1000", H5T_NATIVE_UINT16, 37, 53, test::kLz4Filter, {1000}});
  check_case({"lz4_noise_b1000", H5T_NATIVE_UINT32, 37, 53, test::kLz4Filter, {1000}, true});
  check_case({"lz4_noise", H5T_NATIVE_UINT8, 37, 53, test::kLz4Filter, {}, true});
}

// An EIGER-sized frame (4.2 MB): many default blocks, the fast LZ4 loop over long blocks.
TEST(GpuDecodeHost, LargeFrame) {
  check_case({"bslz4_u32_large", H5T_NATIVE_UINT32, 1030, 1031, test::kBitshuffleFilter, {0, 2}});
}

// Real DECTRIS files (EIGER2 500K bitshuffle-LZ4 uint8/16/32 and LZ4, EIGER 1M bitshuffle-LZ4 and
// LZ4), every frame, against the CPU decoder and H5Dread.
TEST(GpuDecodeHost, RealDectrisFiles) {
  const fs::path root = fs::path(AZFLOW_REAL_DATA) / "dectris-h5-testfiles";
  if (!fs::exists(root)) GTEST_SKIP() << "no real data at " << root;
  struct File {
    std::string path;
    GpuCodec codec;
    std::size_t elem;
  };
  const std::vector<File> files = {
      {"datasets_eiger2/eiger2_simread7_2datafiles_4images_bslz4_data_000001.h5",
       GpuCodec::kBitshuffleLz4, 2},
      {"datasets_eiger2/eiger2_simread7_2datafiles_4images_bslz4_uint8_data_000002.h5",
       GpuCodec::kBitshuffleLz4, 1},
      {"datasets_eiger2/eiger2_simread7_2datafiles_4images_bslz4_uint32_data_000001.h5",
       GpuCodec::kBitshuffleLz4, 4},
      {"datasets_eiger2/eiger2_simread7_2datafiles_4images_lz4_data_000001.h5", GpuCodec::kLz4H5,
       2},
      {"datasets_eiger1/eiger1_testmode10_2datafiles_4images_bslz4_data_000001.h5",
       GpuCodec::kBitshuffleLz4, 2},
      {"datasets_eiger1/eiger1_testmode10_2datafiles_4images_lz4_data_000002.h5", GpuCodec::kLz4H5,
       2},
  };
  for (const File& f : files) {
    const fs::path path = root / f.path;
    SCOPED_TRACE(path.string());
    ASSERT_TRUE(fs::exists(path));
    const auto reference = test::h5_read_all(path, "/entry/data/data");
    const std::size_t frame_bytes = reference.size() / 2;
    for (std::size_t frame = 0; frame < 2; ++frame) {
      const auto chunk = test::read_raw_chunk(path, "/entry/data/data", frame);
      std::vector<std::byte> out(frame_bytes, std::byte{0xA5});
      const auto r = decode_chunk_gpu_host(f.codec, chunk, out, f.elem);
      ASSERT_EQ(r.status, DecodeStatus::kOk) << describe_decode_result(f.codec, r);
      EXPECT_TRUE(std::equal(out.begin(), out.end(),
                             reference.begin() + static_cast<std::ptrdiff_t>(frame * frame_bytes)))
          << "frame " << frame;
      EXPECT_TRUE(
          expect_same(f.codec, chunk, frame_bytes, f.elem, "frame " + std::to_string(frame)));
    }
  }
}

std::vector<std::byte> read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> c{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::vector<std::byte> out(c.size());
  std::memcpy(out.data(), c.data(), c.size());
  return out;
}

/// One fuzz corpus input decoded as its fuzzer reads it: codec, element size, chunk, frame size.
struct CorpusInput {
  GpuCodec codec;
  std::size_t elem;
  std::vector<std::byte> chunk;
  std::size_t frame_bytes;
};

std::size_t declared(const std::vector<std::byte>& chunk) {
  if (chunk.size() < 8) return 0;
  return static_cast<std::size_t>(
      gpu::read_be(reinterpret_cast<const std::uint8_t*>(chunk.data()), 8));
}

CorpusInput corpus_input(const std::string& target, const std::vector<std::byte>& bytes) {
  const auto b0 = std::to_integer<unsigned>(bytes.at(0));
  std::vector<std::byte> rest(bytes.begin() + 1, bytes.end());
  if (target == "fuzz_bitshuffle_lz4") {
    static constexpr std::size_t kElem[] = {1, 2, 4, 3};
    return {GpuCodec::kBitshuffleLz4, kElem[b0 & 3], rest, declared(rest)};
  }
  if (target == "fuzz_lz4_h5") return {GpuCodec::kLz4H5, 1, rest, declared(rest)};
  if (target == "fuzz_lz4_raw") {
    const std::size_t n = std::to_integer<std::size_t>(bytes.at(0)) |
                          (std::to_integer<std::size_t>(bytes.at(1)) << 8);
    return {GpuCodec::kLz4Raw, 1, std::vector<std::byte>(bytes.begin() + 2, bytes.end()), n};
  }
  static constexpr GpuCodec kCodec[] = {GpuCodec::kBitshuffleLz4, GpuCodec::kLz4H5,
                                        GpuCodec::kLz4Raw, GpuCodec::kBitshuffleLz4};
  static constexpr std::size_t kElem[] = {1, 2, 4, 4};
  const GpuCodec codec = kCodec[b0 & 3];
  if (codec == GpuCodec::kLz4Raw) {
    const std::size_t n =
        std::to_integer<std::size_t>(rest.at(0)) | (std::to_integer<std::size_t>(rest.at(1)) << 8);
    return {codec, 4, std::vector<std::byte>(rest.begin() + 2, rest.end()), n};
  }
  return {codec, kElem[(b0 >> 2) & 3], rest, declared(rest)};
}

// Every seed of every decoder fuzzer, then 300 single-byte corruptions of each: the same verdict
// as the CPU decoder and the same frame when accepted.
TEST(GpuDecodeHost, FuzzCorporaAndTheirCorruptions) {
  const fs::path corpus = fs::path(AZFLOW_SOURCE_DIR) / "fuzz" / "corpus";
  std::size_t inputs = 0, accepted = 0, rejected = 0;
  std::mt19937 rng(11);
  for (const auto& dir : fs::directory_iterator(corpus)) {
    if (!dir.is_directory()) continue;
    const std::string target = dir.path().filename().string();
    for (const auto& file : fs::directory_iterator(dir.path())) {
      const CorpusInput in = corpus_input(target, read_bytes(file.path()));
      if (in.elem == 3 || in.frame_bytes > (1u << 20)) continue;  // the GPU takes 1, 2, 4
      SCOPED_TRACE(file.path().string());
      if (expect_same(in.codec, in.chunk, in.frame_bytes, in.elem, "seed")) ++accepted;
      ++inputs;
      for (int trial = 0; trial < 300; ++trial) {
        auto bad = in.chunk;
        bad[rng() % bad.size()] ^= static_cast<std::byte>(1 + rng() % 255);
        if (!expect_same(in.codec, bad, in.frame_bytes, in.elem, "trial " + std::to_string(trial),
                         trial % 2 == 0 ? 32 : 1)) {
          ++rejected;
        }
      }
    }
  }
  EXPECT_GE(inputs, 15u);
  EXPECT_GE(accepted, 12u);   // some seeds are cut short on purpose
  EXPECT_GT(rejected, 100u);  // the corruptions do reach the error paths
}

// Truncations at every length and lying size fields: the same verdict, and for the framing
// errors the CPU decoder's own message.
TEST(GpuDecodeHost, TruncationsAndLyingSizesMatchTheCpuVerdictAndMessage) {
  for (const auto& [filter, cd, codec] :
       {std::tuple{test::kBitshuffleFilter, std::vector<unsigned>{64, 2}, GpuCodec::kBitshuffleLz4},
        std::tuple{test::kLz4Filter, std::vector<unsigned>{1000}, GpuCodec::kLz4H5}}) {
    test::DatasetSpec spec{"/data", H5T_NATIVE_UINT32, 1, 37, 53, {}, filter, cd};
    const std::size_t n = 37 * 53 * 4;
    const auto data = test::make_frames(n, 4, 5);
    const fs::path file = temp_file("lies_" + std::to_string(filter));
    fs::remove(file);
    test::write_dataset(file, spec, data.data());
    const auto chunk = test::read_raw_chunk(file, "/data", 0);
    for (std::size_t keep = 0; keep < chunk.size(); ++keep) {
      const std::vector<std::byte> t(chunk.begin(),
                                     chunk.begin() + static_cast<std::ptrdiff_t>(keep));
      EXPECT_FALSE(expect_same(codec, t, n, 4, "truncated to " + std::to_string(keep)));
    }
    for (std::size_t pos = 4; pos < 16; ++pos) {  // declared size, block size, first block size
      for (unsigned delta : {1u, 4u, 0x80u}) {
        auto b = chunk;
        b[pos] = static_cast<std::byte>(std::to_integer<unsigned>(b[pos]) ^ delta);
        std::vector<std::byte> cpu(n), host(n);
        std::string message;
        const bool cpu_ok = cpu_decode(codec, b, cpu, 4, &message);
        const auto r = decode_chunk_gpu_host(codec, b, host, 4);
        EXPECT_EQ(cpu_ok, r.status == DecodeStatus::kOk) << "byte " << pos << " ^ " << delta;
        // The GPU path walks the framing of every block before decoding any, so where the CPU
        // met corrupt LZ4 data first the GPU may name a later framing error; otherwise both
        // stop at the same first error.
        const bool lz4_data = message.find("LZ4 error") != std::string::npos ||
                              message.find("decodes to") != std::string::npos;
        if (!cpu_ok && !lz4_data) {
          EXPECT_EQ(message, "input: " + describe_decode_result(codec, r));
        }
      }
    }
  }
}

// liblz4 blocks of every size 0..300 and some larger ones, compressible and not, as Dectris
// "lz4<" frames; then each truncated by one byte, decoded into a frame one byte too large, and
// with one byte flipped, removed or inserted (LZ4's limits near both ends of a block).
TEST(GpuDecodeHost, SmallLz4BlocksFromLiblz4) {
  std::mt19937 rng(5);
  for (std::size_t size = 0; size < 1200; size += size < 300 ? 1 : 97) {
    for (bool noise : {false, true}) {
      std::vector<char> raw(size);
      for (auto& c : raw) c = static_cast<char>(noise ? rng() : rng() % 3);
      std::vector<char> packed(static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(size))) +
                               1);
      const int got = LZ4_compress_default(raw.data(), packed.data(), static_cast<int>(size),
                                           static_cast<int>(packed.size()));
      ASSERT_GT(got, 0);
      std::vector<std::byte> block(static_cast<std::size_t>(got));
      std::memcpy(block.data(), packed.data(), block.size());
      const std::string what = "size " + std::to_string(size) + (noise ? " noise" : "");
      EXPECT_TRUE(expect_same(GpuCodec::kLz4Raw, block, size, 1, what, 7));
      auto cut = block;
      cut.pop_back();
      expect_same(GpuCodec::kLz4Raw, cut, size, 1, what + " truncated");
      expect_same(GpuCodec::kLz4Raw, block, size + 1, 1, what + " frame too large");
      for (int trial = 0; trial < 30; ++trial) {  // a byte flipped, removed or inserted
        auto bad = block;
        const auto pos = static_cast<std::ptrdiff_t>(rng() % bad.size());
        if (trial % 3 == 0) {
          bad[static_cast<std::size_t>(pos)] ^= static_cast<std::byte>(1 + rng() % 255);
        } else if (trial % 3 == 1) {
          bad.erase(bad.begin() + pos);
        } else {
          bad.insert(bad.begin() + pos, static_cast<std::byte>(rng()));
        }
        expect_same(GpuCodec::kLz4Raw, bad, size, 1, what + " mutated",
                    static_cast<unsigned>(1 + rng() % 40));
      }
    }
  }
}

/// A random LZ4 length: mostly short, often at the 15 / 255 boundaries of the length encoding.
std::size_t random_length(std::mt19937& rng) {
  static constexpr std::size_t kEdges[] = {0,  1,  4,  11, 12, 13, 14,  15,  16,
                                           17, 18, 19, 32, 60, 64, 269, 270, 271};
  return rng() % 3 == 0 ? kEdges[rng() % std::size(kEdges)] : rng() % 24;
}

void put_length(std::vector<std::byte>& out, std::size_t extra) {
  for (; extra >= 255; extra -= 255) out.push_back(std::byte{255});
  out.push_back(static_cast<std::byte>(extra));
}

/// A random sequence of LZ4 tokens (lib-free, so not limited to what an encoder emits: literal
/// runs and matches ending anywhere, offsets 0 or past the start) and the size it would decode
/// to if every rule were ignored.
std::vector<std::byte> random_lz4_stream(std::mt19937& rng, std::size_t& decoded) {
  std::vector<std::byte> out;
  decoded = 0;
  const std::size_t sequences = rng() % 7;
  const bool long_matches = rng() % 3 == 0;  // much output from little input: lz4's fast loop
  for (std::size_t i = 0; i <= sequences; ++i) {
    const bool last = i == sequences;
    const std::size_t lit = long_matches ? rng() % 20 : random_length(rng);
    const std::size_t match = last ? 0 : long_matches ? 40 + rng() % 90 : 4 + random_length(rng);
    const std::size_t ml = last ? 0 : match - 4;
    out.push_back(static_cast<std::byte>((std::min<std::size_t>(lit, 15) << 4) |
                                         std::min<std::size_t>(ml, 15)));
    if (lit >= 15) put_length(out, lit - 15);
    for (std::size_t k = 0; k < lit; ++k) out.push_back(static_cast<std::byte>(rng() % 4));
    decoded += lit;
    if (last) break;
    const std::size_t offset =
        rng() % 8 == 0 ? rng() % (decoded + 3) : 1 + rng() % std::max<std::size_t>(decoded, 1);
    out.push_back(static_cast<std::byte>(offset & 0xFF));
    out.push_back(static_cast<std::byte>(offset >> 8));
    if (ml >= 15) put_length(out, ml - 15);
    decoded += match;
  }
  return out;
}

// Hand-made LZ4 streams that break the format's end rules in every way (literal runs that end
// near the end of the output or input and are not the last, matches into the last 5 bytes,
// offsets 0 and past the start, lengths at the 15 / 255 edges, outputs either side of lz4's
// 64-byte fast-loop limit): liblz4 1.9.4's verdict and bytes are the reference.
TEST(GpuDecodeHost, HandMadeLz4StreamsAtTheFormatsEdges) {
  std::mt19937 rng(21);
  std::size_t accepted = 0, rejected = 0;
  for (int trial = 0; trial < 60000; ++trial) {
    std::size_t decoded = 0;
    const auto stream = random_lz4_stream(rng, decoded);
    std::size_t frame = decoded;  // or one byte more or less
    if (trial % 5 == 0) frame = rng() % 2 == 0 ? decoded + 1 : decoded - (decoded > 0 ? 1 : 0);
    if (expect_same(GpuCodec::kLz4Raw, stream, frame, 1, "trial " + std::to_string(trial),
                    static_cast<unsigned>(1 + rng() % 33))) {
      ++accepted;
    } else {
      ++rejected;
    }
    if (HasFailure()) break;
  }
  EXPECT_GT(accepted, 5000u);
  EXPECT_GT(rejected, 5000u);
}

TEST(GpuDecodeHost, MessagesNameFileDatasetAndFrame) {
  const gpu::DecodeResult r{DecodeStatus::kBlockOverruns, 3, 9000, 120};
  EXPECT_EQ(
      decode_error_message(GpuCodec::kBitshuffleLz4, r, "/data/x_000001.h5", "/entry/data/data",
                           17),
      "/data/x_000001.h5 /entry/data/data frame 17: bitshuffle-lz4 chunk: block 3: compressed "
      "size 9000 bytes overruns the chunk (120 bytes left)");
  EXPECT_EQ(describe_decode_result(GpuCodec::kLz4H5, {DecodeStatus::kBytesAfterLastBlock, 0, 2, 0}),
            "lz4 chunk: 2 bytes after the last block");
}

TEST(GpuDecodeHost, CodecSelection) {
  EXPECT_EQ(gpu_codec({Codec::kBitshuffleLz4, 4, 0}), GpuCodec::kBitshuffleLz4);
  EXPECT_EQ(gpu_codec({Codec::kLz4, 2, 0}), GpuCodec::kLz4H5);
  EXPECT_EQ(gpu_codec({Codec::kLz4Raw, 1, 0}), GpuCodec::kLz4Raw);
  EXPECT_FALSE(gpu_codec({Codec::kBitshuffleLz4, 8, 0}).has_value());
  EXPECT_FALSE(gpu_codec({Codec::kBitshuffle, 4, 0}).has_value());
  EXPECT_FALSE(gpu_codec({Codec::kNone, 4, 0}).has_value());
}

}  // namespace
}  // namespace azflow::decompress
