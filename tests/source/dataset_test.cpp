// Dataset discovery and frame reads against HDF5's own H5Dread (with Debian's filter plugins),
// on the fixtures of tests/source/fixtures (made by make_fixtures.py with h5py).

#include "stages/source/dataset.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "tests/decompress/h5_test_util.hpp"

namespace azflow::source {
namespace {

namespace fs = std::filesystem;
using decompress::Codec;

fs::path fixtures() {
  const char* root = std::getenv("AZFLOW_SOURCE_DIR");
  return fs::path(root != nullptr ? root : ".") / "tests/source/fixtures";
}

std::vector<std::byte> read_all_frames(Dataset& d) {
  const std::size_t n = d.info().frame_bytes();
  std::vector<std::byte> out(d.info().frames * n);
  for (std::size_t i = 0; i < d.info().frames; ++i) {
    d.read_frame(i, std::span<std::byte>(out).subspan(i * n, n));
  }
  return out;
}

// Expects `fn` to throw azflow::Error of `category` whose message contains every `parts`.
template <class Fn>
void expect_error(Fn&& fn, ErrorCategory category, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), category) << e.what();
    for (const auto& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

TEST(DatasetEiger, FindsLinkedFilesAndMetadata) {
  Dataset d = Dataset::open(fixtures() / "eiger_master.h5");
  const DatasetInfo& info = d.info();
  EXPECT_EQ(info.frames, 5u);
  EXPECT_EQ(info.rows, 37u);
  EXPECT_EQ(info.cols, 53u);
  EXPECT_EQ(info.dtype, DType::kUint32);
  EXPECT_EQ(info.frame_bytes(), 37u * 53u * 4u);
  ASSERT_TRUE(info.pixel_mask.has_value());
  EXPECT_EQ(info.pixel_mask->size(), 37u * 53u);
  EXPECT_EQ((*info.pixel_mask)[5 * 53 + 3], 1u);
  EXPECT_EQ((*info.pixel_mask)[10 * 53 + 7], 16u);
  EXPECT_EQ((*info.pixel_mask)[0], 0u);
  const DetectorMetadata& m = info.detector;
  EXPECT_NEAR(*m.beam_center_x_px, 20.5, 1e-6);
  EXPECT_NEAR(*m.beam_center_y_px, 17.25, 1e-6);
  EXPECT_NEAR(*m.detector_distance_m, 0.155, 1e-7);
  EXPECT_NEAR(*m.incident_wavelength_m, 1.033e-10, 1e-16);
  EXPECT_NEAR(*m.x_pixel_size_m, 75e-6, 1e-11);
  EXPECT_NEAR(*m.y_pixel_size_m, 75e-6, 1e-11);  // stored in mm
  EXPECT_EQ(*m.description, "Fixture EIGER 37x53");
  EXPECT_EQ(*m.nimages, 5u);
  EXPECT_EQ(*m.ntrigger, 1u);
  EXPECT_EQ(d.expected_frames(), 5u);
}

TEST(DatasetEiger, FramesMatchH5Dread) {
  Dataset d = Dataset::open(fixtures() / "eiger_master.h5");
  auto ref = test::h5_read_all(fixtures() / "eiger_data_000001.h5", "/entry/data/data");
  const auto ref2 = test::h5_read_all(fixtures() / "eiger_data_000002.h5", "/entry/data/data");
  ref.insert(ref.end(), ref2.begin(), ref2.end());
  EXPECT_EQ(read_all_frames(d), ref);
  EXPECT_EQ(d.frame_codec(4).codec, Codec::kBitshuffleLz4);
  EXPECT_EQ(d.frame_codec(4).elem_size, 4u);

  // Raw chunk of frame 3 (first frame of the second file) decodes to the same frame.
  std::vector<std::byte> chunk(d.chunk_bytes(3));
  const RawChunk raw = d.read_chunk(3, chunk);
  EXPECT_EQ(raw.bytes, chunk.size());
  std::vector<std::byte> frame(d.info().frame_bytes());
  decompress::decode(raw.codec, std::span<const std::byte>(chunk).first(raw.bytes), frame);
  EXPECT_TRUE(
      std::equal(frame.begin(), frame.end(), ref.begin() + 3 * static_cast<long>(frame.size())));

  OpenOptions slow;
  slow.force_hdf5_filter_path = true;
  Dataset h = Dataset::open(fixtures() / "eiger_master.h5", slow);
  EXPECT_EQ(read_all_frames(h), ref);
  EXPECT_EQ(h.frame_codec(0).codec, Codec::kOther);
}

TEST(DatasetPlain, EveryCodecAndDtypeMatchesH5Dread) {
  const std::vector<std::pair<std::string, Codec>> cases = {
      {"bslz4_u8", Codec::kBitshuffleLz4},
      {"bslz4_u16", Codec::kBitshuffleLz4},
      {"bslz4_u32", Codec::kBitshuffleLz4},
      {"bslz4_i32", Codec::kBitshuffleLz4},
      {"bslz4_f32", Codec::kBitshuffleLz4},
      {"bslz4_u32_block64", Codec::kBitshuffleLz4},
      {"bslz4_u16_block24", Codec::kBitshuffleLz4},
      {"bitshuffle_u32", Codec::kBitshuffle},
      {"lz4_u16", Codec::kLz4},
      {"lz4_u32_raw_blocks", Codec::kLz4},
      {"none_u32", Codec::kNone},
      {"gzip_u32", Codec::kOther},
      {"two_frame_chunks_u32", Codec::kOther},
      {"contiguous_u16", Codec::kOther},
      {"bslz4_i16", Codec::kBitshuffleLz4},
      {"bslz4_i64", Codec::kBitshuffleLz4},
      {"bslz4_f64", Codec::kBitshuffleLz4},
      {"bitshuffle_f64", Codec::kBitshuffle},
      {"lz4_i64", Codec::kLz4},
      {"none_i16", Codec::kNone},
  };
  for (const auto& [name, codec] : cases) {
    SCOPED_TRACE(name);
    OpenOptions o;
    o.dataset_path = "/" + name;
    Dataset d = Dataset::open(fixtures() / "plain.h5", o);
    EXPECT_EQ(d.info().frames, 3u);
    EXPECT_EQ(d.frame_codec(0).codec, codec);
    EXPECT_EQ(read_all_frames(d), test::h5_read_all(fixtures() / "plain.h5", o.dataset_path));
  }
  Dataset def = Dataset::open(fixtures() / "plain.h5");  // /entry/data/data by default
  EXPECT_EQ(def.info().dtype, DType::kUint16);
  EXPECT_EQ(read_all_frames(def), test::h5_read_all(fixtures() / "plain.h5", "/entry/data/data"));
  EXPECT_FALSE(def.info().pixel_mask.has_value());
  EXPECT_FALSE(def.info().detector.nimages.has_value());
}

TEST(DatasetFiles, ListOfFilesIsOneSeries) {
  Dataset d = Dataset::open_files(
      {fixtures() / "eiger_data_000002.h5", fixtures() / "eiger_data_000001.h5"});
  EXPECT_EQ(d.info().frames, 5u);
  auto ref = test::h5_read_all(fixtures() / "eiger_data_000002.h5", "/entry/data/data");
  const auto ref1 = test::h5_read_all(fixtures() / "eiger_data_000001.h5", "/entry/data/data");
  ref.insert(ref.end(), ref1.begin(), ref1.end());
  EXPECT_EQ(read_all_frames(d), ref);
}

TEST(DatasetErrors, MissingLinkedFile) {
  expect_error([] { (void)Dataset::open(fixtures() / "broken_master.h5"); }, ErrorCategory::kIo,
               {"missing_data_000002.h5", "does not exist", "data_000002"});
}

TEST(DatasetErrors, MissingFileNoDataWrongDtype) {
  expect_error([] { (void)Dataset::open(fixtures() / "nope.h5"); }, ErrorCategory::kIo,
               {"nope.h5", "does not exist"});
  expect_error([] { (void)Dataset::open(fixtures() / "nodata.h5"); }, ErrorCategory::kInput,
               {"nodata.h5", "no frames"});
  expect_error([] { (void)Dataset::open(fixtures() / "float16.h5"); }, ErrorCategory::kInput,
               {"float16.h5", "/entry/data/data", "unsupported element type float16"});
  OpenOptions o;
  o.dataset_path = "/no/such/dataset";
  expect_error([&] { (void)Dataset::open(fixtures() / "plain.h5", o); }, ErrorCategory::kInput,
               {"plain.h5", "/no/such/dataset"});
  Dataset d = Dataset::open(fixtures() / "eiger_master.h5");
  std::vector<std::byte> frame(d.info().frame_bytes());
  expect_error([&] { d.read_frame(5, frame); }, ErrorCategory::kInput, {"frame 5", "out of range"});
  expect_error(
      [] {
        (void)Dataset::open_files({fixtures() / "eiger_data_000001.h5", fixtures() / "plain.h5"});
      },
      ErrorCategory::kInput, {"plain.h5", "37 x 53 uint16", "uint32"});
}

// A chunk overwritten (H5Dwrite_chunk, filters marked applied) with damaged bytes.
TEST(DatasetErrors, CorruptChunkNamesFileDatasetAndFrame) {
  const fs::path dir =
      fs::temp_directory_path() / ("azflow_source_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "corrupt.h5";
  fs::remove(file);
  const auto data = test::make_frames(3 * 37 * 53 * 4, 4, 21);
  test::DatasetSpec spec{"/data", H5T_NATIVE_UINT32,       3,     37, 53,
                         {},      test::kBitshuffleFilter, {0, 2}};
  test::write_dataset(file, spec, data.data());
  auto chunk = test::read_raw_chunk(file, "/data", 1);
  {
    test::H5Id f(H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    test::H5Id ds(H5Dopen2(f, "/data", H5P_DEFAULT));
    const hsize_t offset[3] = {1, 0, 0};
    chunk.resize(chunk.size() - 7);  // truncated
    ASSERT_GE(H5Dwrite_chunk(ds, H5P_DEFAULT, 0, offset, chunk.size(), chunk.data()), 0);
    const hsize_t offset2[3] = {2, 0, 0};
    auto lying = test::read_raw_chunk(file, "/data", 2);
    lying[12] = std::byte{0x7F};  // first block's compressed size overruns the chunk
    ASSERT_GE(H5Dwrite_chunk(ds, H5P_DEFAULT, 0, offset2, lying.size(), lying.data()), 0);
  }
  OpenOptions o;
  o.dataset_path = "/data";
  Dataset d = Dataset::open(file, o);
  std::vector<std::byte> frame(d.info().frame_bytes());
  d.read_frame(0, frame);  // intact
  EXPECT_TRUE(std::equal(frame.begin(), frame.end(), data.begin()));
  expect_error([&] { d.read_frame(1, frame); }, ErrorCategory::kInput,
               {"corrupt.h5", "/data", "frame 1", "bitshuffle-lz4"});
  expect_error([&] { d.read_frame(2, frame); }, ErrorCategory::kInput,
               {"corrupt.h5", "/data", "frame 2", "overruns"});
  fs::remove_all(dir);
}

}  // namespace
}  // namespace azflow::source
