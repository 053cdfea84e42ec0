// azflow's decoders against HDF5's own H5Dread through Debian's filter plugins (bitshuffle 32008,
// LZ4 32004), on data written at run time through those plugins; and bad-input behaviour.

#include "stages/decompress/codec.hpp"

#include <gtest/gtest.h>
#include <lz4.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "stages/decompress/bitshuffle_lz4.hpp"
#include "stages/decompress/lz4.hpp"
#include "tests/decompress/h5_test_util.hpp"

namespace azflow::decompress {
namespace {

namespace fs = std::filesystem;
using test::DatasetSpec;

struct Case {
  std::string label;
  hid_t type;
  std::size_t rows, cols;
  unsigned filter;
  std::vector<unsigned> cd_values;
  bool noise = false;
};

fs::path temp_file(const std::string& stem) {
  const auto dir =
      fs::temp_directory_path() / ("azflow_decompress_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir / (stem + ".h5");
}

CodecParams params_for(const Case& c) {
  const std::size_t es = H5Tget_size(c.type);
  if (c.filter == test::kLz4Filter) return {Codec::kLz4, es, 0};
  if (c.filter == test::kBitshuffleFilter) {
    const unsigned block = c.cd_values.empty() ? 0 : c.cd_values[0];
    const bool lz4 = c.cd_values.size() > 1 && c.cd_values[1] == 2;
    return {lz4 ? Codec::kBitshuffleLz4 : Codec::kBitshuffle, es, block};
  }
  return {Codec::kNone, es, 0};
}

// Writes 3 frames through HDF5, then decodes each stored chunk with azflow and compares it
// with H5Dread's frame, for every SIMD level.
void check_case(const Case& c) {
  SCOPED_TRACE(c.label);
  const std::size_t es = H5Tget_size(c.type);
  DatasetSpec spec{"/data", c.type, 3, c.rows, c.cols, {}, c.filter, c.cd_values};
  const std::size_t frame_bytes = c.rows * c.cols * es;
  const auto data = test::make_frames(3 * frame_bytes, es, 17, c.noise);
  const fs::path file = temp_file(c.label);
  fs::remove(file);
  test::write_dataset(file, spec, data.data());
  const auto reference = test::h5_read_all(file, "/data");
  ASSERT_EQ(reference, data);  // HDF5 round trip sanity
  for (std::size_t f = 0; f < 3; ++f) {
    const auto chunk = test::read_raw_chunk(file, "/data", f);
    for (SimdLevel level :
         {SimdLevel::kScalar, SimdLevel::kSse2, SimdLevel::kAvx2, SimdLevel::kAvx2Gfni}) {
      if (!simd_level_supported(level)) continue;
      std::vector<std::byte> out(frame_bytes);
      decode(params_for(c), chunk, out, level);
      ASSERT_TRUE(std::equal(out.begin(), out.end(),
                             reference.begin() + static_cast<std::ptrdiff_t>(f * frame_bytes)))
          << "frame " << f << " level " << simd_level_name(level);
    }
  }
}

TEST(DecodeVsH5Dread, BitshuffleLz4DefaultBlock) {
  check_case({"bslz4_u8", H5T_NATIVE_UINT8, 37, 53, test::kBitshuffleFilter, {0, 2}});
  check_case({"bslz4_u16", H5T_NATIVE_UINT16, 37, 53, test::kBitshuffleFilter, {0, 2}});
  check_case({"bslz4_u32", H5T_NATIVE_UINT32, 37, 53, test::kBitshuffleFilter, {0, 2}});
  check_case({"bslz4_i32", H5T_NATIVE_INT32, 64, 64, test::kBitshuffleFilter, {0, 2}});
  check_case({"bslz4_f32", H5T_NATIVE_FLOAT, 61, 67, test::kBitshuffleFilter, {0, 2}});
  // Several full default blocks plus a partial one and a raw tail.
  check_case({"bslz4_u8_big", H5T_NATIVE_UINT8, 131, 157, test::kBitshuffleFilter, {0, 2}});
  check_case({"bslz4_u32_big", H5T_NATIVE_UINT32, 131, 157, test::kBitshuffleFilter, {0, 2}});
}

TEST(DecodeVsH5Dread, BitshuffleLz4ExplicitBlock) {
  check_case({"bslz4_u8_b64", H5T_NATIVE_UINT8, 37, 53, test::kBitshuffleFilter, {64, 2}});
  check_case({"bslz4_u16_b24", H5T_NATIVE_UINT16, 37, 53, test::kBitshuffleFilter, {24, 2}});
  check_case({"bslz4_u32_b256", H5T_NATIVE_UINT32, 37, 53, test::kBitshuffleFilter, {256, 2}});
  check_case({"bslz4_u32_b8", H5T_NATIVE_UINT32, 5, 7, test::kBitshuffleFilter, {8, 2}});
  check_case({"bslz4_u16_b4096", H5T_NATIVE_UINT16, 37, 53, test::kBitshuffleFilter, {4096, 2}});
  check_case(
      {"bslz4_u32_noise", H5T_NATIVE_UINT32, 37, 53, test::kBitshuffleFilter, {64, 2}, true});
}

// Frames of at least kStreamingMinBytes are written with streaming stores; decode one into
// outputs of every alignment the kernels distinguish (32, 16, other) for every level.
TEST(DecodeVsH5Dread, BitshuffleLz4LargeFrameStreamingStores) {
  for (auto [type, cols] : {std::pair{H5T_NATIVE_UINT32, std::size_t{1031}},
                            std::pair{H5T_NATIVE_UINT16, std::size_t{2063}}}) {
    const std::size_t es = H5Tget_size(type), rows = 1030;
    const std::size_t frame_bytes = rows * cols * es;
    ASSERT_EQ(store_mode_for(frame_bytes), StoreMode::kStreaming);
    DatasetSpec spec{"/data", type, 1, rows, cols, {}, test::kBitshuffleFilter, {0, 2}};
    const auto data = test::make_frames(frame_bytes, es, 23);
    const fs::path file = temp_file("bslz4_large_" + std::to_string(es));
    fs::remove(file);
    test::write_dataset(file, spec, data.data());
    const auto reference = test::h5_read_all(file, "/data");
    const auto chunk = test::read_raw_chunk(file, "/data", 0);
    std::vector<std::byte> buffer(frame_bytes + 64);
    const auto base = reinterpret_cast<std::uintptr_t>(buffer.data());
    for (std::size_t offset : {0, 16, 4}) {
      const std::span<std::byte> out(buffer.data() + (32 - base % 32) % 32 + offset, frame_bytes);
      for (SimdLevel level :
           {SimdLevel::kScalar, SimdLevel::kSse2, SimdLevel::kAvx2, SimdLevel::kAvx2Gfni}) {
        if (!simd_level_supported(level)) continue;
        std::fill(out.begin(), out.end(), std::byte{0});
        decode({Codec::kBitshuffleLz4, es, 0}, chunk, out, level);
        ASSERT_TRUE(std::equal(out.begin(), out.end(), reference.begin()))
            << "es " << es << " offset " << offset << " level " << simd_level_name(level);
      }
    }
  }
}

TEST(DecodeVsH5Dread, BitshuffleWithoutCompression) {
  check_case({"bs_u32", H5T_NATIVE_UINT32, 37, 53, test::kBitshuffleFilter, {0, 0}});
  check_case({"bs_u16_b64", H5T_NATIVE_UINT16, 37, 53, test::kBitshuffleFilter, {64, 0}});
}

TEST(DecodeVsH5Dread, Lz4) {
  check_case({"lz4_u32", H5T_NATIVE_UINT32, 37, 53, test::kLz4Filter, {}});
  check_case({"lz4_u16_b1000", H5T_NATIVE_UINT16, 37, 53, test::kLz4Filter, {1000}});
  // Incompressible data: the filter stores the blocks raw.
  check_case({"lz4_noise_b1000", H5T_NATIVE_UINT32, 37, 53, test::kLz4Filter, {1000}, true});
  check_case({"lz4_noise", H5T_NATIVE_UINT8, 37, 53, test::kLz4Filter, {}, true});
}

TEST(DecodeVsH5Dread, Uncompressed) { check_case({"none_u32", H5T_NATIVE_UINT32, 37, 53, 0, {}}); }

// A valid chunk of 3 frames' first frame, uint32 37x53, written through the plugin.
struct Chunk {
  std::vector<std::byte> bytes;
  std::vector<std::byte> frame;  // H5Dread's decoding
};

Chunk make_chunk(unsigned filter, std::vector<unsigned> cd, const std::string& label) {
  DatasetSpec spec{"/data", H5T_NATIVE_UINT32, 1, 37, 53, {}, filter, std::move(cd)};
  const auto data = test::make_frames(37 * 53 * 4, 4, 5);
  const fs::path file = temp_file(label);
  fs::remove(file);
  test::write_dataset(file, spec, data.data());
  return {test::read_raw_chunk(file, "/data", 0), test::h5_read_all(file, "/data")};
}

void put_be32(std::vector<std::byte>& v, std::size_t pos, std::uint32_t x) {
  for (std::size_t i = 0; i < 4; ++i) v[pos + i] = static_cast<std::byte>(x >> (24 - 8 * i));
}

std::uint32_t get_be32(const std::vector<std::byte>& v, std::size_t pos) {
  std::uint32_t x = 0;
  for (std::size_t i = 0; i < 4; ++i) x = (x << 8) | std::to_integer<std::uint32_t>(v[pos + i]);
  return x;
}

void expect_input_error(const CodecParams& p, const std::vector<std::byte>& in,
                        std::size_t out_bytes, const std::string& what) {
  std::vector<std::byte> out(out_bytes);
  try {
    decode(p, in, out);
    ADD_FAILURE() << what << ": decoded without error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInput) << what << ": " << e.what();
  }
}

class BadBitshuffleLz4 : public ::testing::Test {
 protected:
  Chunk c = make_chunk(test::kBitshuffleFilter, {64, 2}, "bad_bslz4");
  CodecParams p{Codec::kBitshuffleLz4, 4, 0};
  std::size_t n = 37 * 53 * 4;
};

TEST_F(BadBitshuffleLz4, ValidChunkDecodes) {
  std::vector<std::byte> out(n);
  decode(p, c.bytes, out);
  EXPECT_EQ(out, c.frame);
}

TEST_F(BadBitshuffleLz4, Truncated) {
  for (std::size_t keep :
       {std::size_t{0}, std::size_t{5}, std::size_t{11}, std::size_t{12}, std::size_t{14},
        std::size_t{40}, c.bytes.size() / 2, c.bytes.size() - 1}) {
    std::vector<std::byte> t(c.bytes.begin(), c.bytes.begin() + static_cast<std::ptrdiff_t>(keep));
    expect_input_error(p, t, n, "truncated to " + std::to_string(keep));
  }
}

TEST_F(BadBitshuffleLz4, LyingSizes) {
  auto raw = c.bytes;
  put_be32(raw, 4, static_cast<std::uint32_t>(n + 4));
  expect_input_error(p, raw, n, "raw size too large");
  put_be32(raw, 4, static_cast<std::uint32_t>(n - 4));
  expect_input_error(p, raw, n, "raw size too small");
  for (std::uint32_t block : {63u * 4, 128u * 4, 32u * 4, 6u, 4u * 1000000u}) {
    auto b = c.bytes;
    put_be32(b, 8, block);
    expect_input_error(p, b, n, "block size " + std::to_string(block));
  }
  const std::uint32_t first = get_be32(c.bytes, 12);
  for (std::uint32_t lie :
       {first + 1, first - 1, 0u, 0xFFFFFFF0u, static_cast<std::uint32_t>(c.bytes.size())}) {
    auto b = c.bytes;
    put_be32(b, 12, lie);
    expect_input_error(p, b, n, "first block size " + std::to_string(lie));
  }
  auto trailing = c.bytes;
  trailing.push_back(std::byte{0});
  expect_input_error(p, trailing, n, "trailing byte");
  expect_input_error(p, c.bytes, n + 4, "frame larger than chunk");
}

TEST_F(BadBitshuffleLz4, FlippedBytesNeverCrash) {
  std::mt19937 rng(3);
  std::size_t errors = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    auto b = c.bytes;
    const std::size_t pos = 16 + rng() % (b.size() - 16);  // inside block data
    b[pos] ^= static_cast<std::byte>(1 + rng() % 255);
    std::vector<std::byte> out(n);
    try {
      decode(p, b, out);
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInput);
      ++errors;
    }
  }
  EXPECT_GT(errors, 0u);
}

class BadLz4 : public ::testing::Test {
 protected:
  Chunk c = make_chunk(test::kLz4Filter, {1000}, "bad_lz4");
  CodecParams p{Codec::kLz4, 4, 0};
  std::size_t n = 37 * 53 * 4;
};

TEST_F(BadLz4, ValidChunkDecodes) {
  std::vector<std::byte> out(n);
  decode(p, c.bytes, out);
  EXPECT_EQ(out, c.frame);
}

TEST_F(BadLz4, TruncatedAndLyingSizes) {
  for (std::size_t keep : {std::size_t{3}, std::size_t{12}, std::size_t{15}, c.bytes.size() - 1}) {
    std::vector<std::byte> t(c.bytes.begin(), c.bytes.begin() + static_cast<std::ptrdiff_t>(keep));
    expect_input_error(p, t, n, "truncated to " + std::to_string(keep));
  }
  auto raw = c.bytes;
  put_be32(raw, 4, static_cast<std::uint32_t>(n + 1));
  expect_input_error(p, raw, n, "raw size");
  for (std::uint32_t block : {0u, 999u, 2000u}) {
    auto b = c.bytes;
    put_be32(b, 8, block);
    expect_input_error(p, b, n, "block size " + std::to_string(block));
  }
  const std::uint32_t first = get_be32(c.bytes, 12);
  for (std::uint32_t lie : {first + 1, first - 1, 1000u, 0xFFFFFFF0u}) {
    auto b = c.bytes;
    put_be32(b, 12, lie);
    expect_input_error(p, b, n, "first block size " + std::to_string(lie));
  }
}

TEST_F(BadLz4, FlippedBytesNeverCrash) {
  std::mt19937 rng(4);
  for (int trial = 0; trial < 2000; ++trial) {
    auto b = c.bytes;
    const std::size_t pos = 16 + rng() % (b.size() - 16);
    b[pos] ^= static_cast<std::byte>(1 + rng() % 255);
    std::vector<std::byte> out(n);
    try {
      decode(p, b, out);
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInput);
    }
  }
}

TEST(StreamEncodings, BitshuffleLz4IsTheHdf5ChunkFormat) {
  for (auto [encoding, type] :
       {std::pair{"bs32-lz4<", H5T_NATIVE_UINT32}, std::pair{"bs16-lz4<", H5T_NATIVE_UINT16},
        std::pair{"bs8-lz4<", H5T_NATIVE_UINT8}}) {
    const std::size_t es = H5Tget_size(type);
    DatasetSpec spec{"/data", type, 1, 37, 53, {}, test::kBitshuffleFilter, {0, 2}};
    const auto data = test::make_frames(37 * 53 * es, es, 9);
    const fs::path file = temp_file(std::string("stream_") + std::to_string(es));
    fs::remove(file);
    test::write_dataset(file, spec, data.data());
    const auto chunk = test::read_raw_chunk(file, "/data", 0);
    std::vector<std::byte> out(data.size());
    decode(stream_codec(encoding), chunk, out);
    EXPECT_EQ(out, test::h5_read_all(file, "/data")) << encoding;
  }
}

TEST(StreamEncodings, Lz4IsOneRawBlock) {
  const auto data = test::make_frames(37 * 53 * 4, 4, 11);
  std::vector<char> packed(
      static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(data.size()))));
  const int size =
      LZ4_compress_default(reinterpret_cast<const char*>(data.data()), packed.data(),
                           static_cast<int>(data.size()), static_cast<int>(packed.size()));
  ASSERT_GT(size, 0);
  std::vector<std::byte> in(static_cast<std::size_t>(size));
  std::memcpy(in.data(), packed.data(), in.size());
  std::vector<std::byte> out(data.size());
  decode(stream_codec("lz4<"), in, out);
  EXPECT_EQ(out, data);
  std::vector<std::byte> bigger(data.size() + 1);
  EXPECT_THROW(decode(stream_codec("lz4<"), in, bigger), Error);
  in.pop_back();
  EXPECT_THROW(decode(stream_codec("lz4<"), in, out), Error);
  EXPECT_THROW((void)stream_codec("bs32-lz4>"), Error);
  EXPECT_THROW((void)stream_codec("zstd"), Error);
}

}  // namespace
}  // namespace azflow::decompress
