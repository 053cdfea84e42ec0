// The CUDA decoders on a device against the CPU decoders: plugin-written bitshuffle-LZ4 and LZ4
// chunks and real DECTRIS files decoded in one batch, bit-identical; corrupt chunks fail their
// own frame with the host build's status while the other frames of the batch decode. Skips
// without a GPU (with the reason); in builds without CUDA checks the stub.

#include "stages/decompress/cuda_decode.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "stages/decompress/codec.hpp"
#include "stages/decompress/gpu_decode.hpp"
#include "tests/decompress/h5_test_util.hpp"

namespace azflow::decompress {
namespace {

namespace fs = std::filesystem;
using gpu::DecodeStatus;
using gpu::GpuCodec;

/// One chunk to decode and what the CPU decoder makes of it.
struct Sample {
  std::string label;
  GpuCodec codec;
  std::size_t elem;
  std::vector<std::byte> chunk;
  std::size_t frame_bytes;
};

CodecParams params(const Sample& s) {
  const Codec c = s.codec == GpuCodec::kBitshuffleLz4 ? Codec::kBitshuffleLz4
                  : s.codec == GpuCodec::kLz4H5       ? Codec::kLz4
                                                      : Codec::kLz4Raw;
  return {c, s.elem, 0};
}

fs::path temp_file(const std::string& stem) {
  const auto dir =
      fs::temp_directory_path() / ("azflow_cuda_decode_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir / (stem + ".h5");
}

Sample plugin_sample(const std::string& label, hid_t type, std::size_t rows, std::size_t cols,
                     unsigned filter, std::vector<unsigned> cd) {
  const std::size_t es = H5Tget_size(type);
  test::DatasetSpec spec{"/data", type, 1, rows, cols, {}, filter, std::move(cd)};
  const auto data = test::make_frames(rows * cols * es, es, 29);
  const fs::path file = temp_file(label);
  fs::remove(file);
  test::write_dataset(file, spec, data.data());
  const GpuCodec codec = filter == test::kLz4Filter ? GpuCodec::kLz4H5 : GpuCodec::kBitshuffleLz4;
  return {label, codec, es, test::read_raw_chunk(file, "/data", 0), rows * cols * es};
}

std::vector<Sample> samples() {
  const unsigned bs = test::kBitshuffleFilter;
  std::vector<Sample> out = {
      plugin_sample("bslz4_u8", H5T_NATIVE_UINT8, 131, 157, bs, {0, 2}),
      plugin_sample("bslz4_u16", H5T_NATIVE_UINT16, 131, 157, bs, {0, 2}),
      plugin_sample("bslz4_u32", H5T_NATIVE_UINT32, 131, 157, bs, {0, 2}),
      plugin_sample("bslz4_u16_b24", H5T_NATIVE_UINT16, 37, 53, bs, {24, 2}),
      plugin_sample("bslz4_u32_b4096", H5T_NATIVE_UINT32, 37, 53, bs, {4096, 2}),
      plugin_sample("lz4_u32", H5T_NATIVE_UINT32, 131, 157, test::kLz4Filter, {}),
      plugin_sample("lz4_u16_b1000", H5T_NATIVE_UINT16, 37, 53, test::kLz4Filter, {1000}),
  };
  const fs::path root = fs::path(AZFLOW_REAL_DATA) / "dectris-h5-testfiles";
  for (const auto& [path, codec, es] :
       {std::tuple{"datasets_eiger2/eiger2_simread7_2datafiles_4images_bslz4_uint32_data_000001.h5",
                   GpuCodec::kBitshuffleLz4, std::size_t{4}},
        std::tuple{"datasets_eiger1/eiger1_testmode10_2datafiles_4images_bslz4_data_000001.h5",
                   GpuCodec::kBitshuffleLz4, std::size_t{2}},
        std::tuple{"datasets_eiger2/eiger2_simread7_2datafiles_4images_lz4_data_000001.h5",
                   GpuCodec::kLz4H5, std::size_t{2}}}) {
    const fs::path file = root / path;
    if (!fs::exists(file)) continue;
    const auto all = test::h5_read_all(file, "/entry/data/data");
    out.push_back({file.filename().string(), codec, es,
                   test::read_raw_chunk(file, "/entry/data/data", 1), all.size() / 2});
  }
  return out;
}

class CudaDecodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = cuda_decoder_unavailable();
    if (!why.empty()) GTEST_SKIP() << "no GPU: " << why << " (CUDA decoder tests need a device)";
  }

  /// Decodes `batch` on the device (chunks uploaded, frames poisoned first) and returns the
  /// results and the frames.
  std::vector<gpu::DecodeResult> run(const std::vector<Sample>& batch,
                                     std::vector<std::vector<std::byte>>& frames) {
    std::size_t in_total = 0, out_total = 0;
    for (const Sample& s : batch) {
      in_total += (s.chunk.size() + 255) / 256 * 256;
      out_total += (s.frame_bytes + 255) / 256 * 256;
    }
    DeviceBytes in(0, in_total), out(0, out_total);
    out.fill(0xA5);
    std::vector<CudaDecodeItem> items;
    std::size_t ip = 0, op = 0;
    for (const Sample& s : batch) {
      in.upload(s.chunk, ip);
      items.push_back({s.codec, s.elem, s.chunk, in.data() + ip, out.data() + op, s.frame_bytes});
      ip += (s.chunk.size() + 255) / 256 * 256;
      op += (s.frame_bytes + 255) / 256 * 256;
    }
    CudaDecoder decoder(0);
    const auto results = decoder.decode(items);
    frames.clear();
    op = 0;
    for (const Sample& s : batch) {
      frames.emplace_back(s.frame_bytes);
      out.download(frames.back(), op);
      op += (s.frame_bytes + 255) / 256 * 256;
    }
    return results;
  }
};

TEST_F(CudaDecodeTest, BatchDecodesBitIdenticalToTheCpu) {
  const auto batch = samples();
  std::vector<std::vector<std::byte>> frames;
  const auto results = run(batch, frames);
  ASSERT_EQ(results.size(), batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Sample& s = batch[i];
    ASSERT_EQ(results[i].status, DecodeStatus::kOk)
        << s.label << ": " << describe_decode_result(s.codec, results[i]);
    std::vector<std::byte> cpu(s.frame_bytes);
    decode(params(s), s.chunk, cpu);
    EXPECT_TRUE(frames[i] == cpu) << s.label;
  }
}

TEST_F(CudaDecodeTest, CorruptChunksFailAloneWithTheHostBuildsStatus) {
  const auto good = samples();
  std::mt19937 rng(13);
  std::vector<Sample> batch;
  for (int copy = 0; copy < 40; ++copy) {  // corrupted copies interleaved with good ones
    Sample s = good[static_cast<std::size_t>(copy) % good.size()];
    if (copy % 2 == 1) {
      for (int k = 0; k < 1 + copy % 3; ++k) {
        s.chunk[12 + rng() % (s.chunk.size() - 12)] ^= static_cast<std::byte>(1 + rng() % 255);
      }
      if (copy % 10 == 9) s.chunk.resize(s.chunk.size() / 2);
      s.label += " corrupted " + std::to_string(copy);
    }
    batch.push_back(std::move(s));
  }
  std::vector<std::vector<std::byte>> frames;
  const auto results = run(batch, frames);
  std::size_t failed = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Sample& s = batch[i];
    std::vector<std::byte> host(s.frame_bytes);
    const auto expected = decode_chunk_gpu_host(s.codec, s.chunk, host, s.elem);
    EXPECT_EQ(results[i].status, expected.status) << s.label;
    EXPECT_EQ(results[i].block, expected.block) << s.label;
    if (expected.status == DecodeStatus::kOk) {
      EXPECT_TRUE(frames[i] == host) << s.label;
    } else {
      ++failed;
    }
  }
  EXPECT_GT(failed, 5u);
}

TEST(CudaDecodeAvailability, ReasonWhenUnavailable) {
  const std::string why = cuda_decoder_unavailable();
  if (why.empty()) {
    EXPECT_NO_THROW(CudaDecoder(0));
  } else {
    EXPECT_THROW(CudaDecoder(0), Error) << why;
  }
}

}  // namespace
}  // namespace azflow::decompress
