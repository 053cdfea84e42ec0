// The zero-copy chunk path (Dataset::chunk_view, read_frame from the data file's mapping): the
// same bytes as H5Dread_chunk and H5Dread on every fixture, the H5Dread_chunk fallback when
// OpenOptions::map_files is off, a user block, and clean errors for a chunk index that points
// past the end of the file and for a file truncated after it was mapped.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "stages/source/dataset.hpp"
#include "tests/decompress/h5_test_util.hpp"

namespace azflow::source {
namespace {

namespace fs = std::filesystem;
using decompress::Codec;

fs::path fixtures() {
  const char* root = std::getenv("AZFLOW_SOURCE_DIR");
  return fs::path(root != nullptr ? root : ".") / "tests/source/fixtures";
}

template <class Fn>
void expect_error(Fn&& fn, ErrorCategory category, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), category) << e.what();
    for (const auto& p : parts) {
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
}

std::vector<std::byte> read_all_frames(Dataset& d) {
  const std::size_t n = d.info().frame_bytes();
  std::vector<std::byte> out(d.info().frames * n);
  for (std::size_t i = 0; i < d.info().frames; ++i) {
    d.read_frame(i, std::span<std::byte>(out).subspan(i * n, n));
  }
  return out;
}

// Checks, frame by frame, that the mapped and the copy (map_files off) Datasets agree: chunk
// views exist exactly for direct frames, hold the bytes H5Dread_chunk copies, with the same codec.
void expect_views_match_copies(Dataset& mapped, Dataset& copied) {
  ASSERT_EQ(mapped.info().frames, copied.info().frames);
  for (std::size_t i = 0; i < mapped.info().frames; ++i) {
    SCOPED_TRACE("frame " + std::to_string(i));
    EXPECT_FALSE(copied.chunk_view(i).has_value());
    const auto codec = copied.frame_codec(i);
    const auto view = mapped.chunk_view(i);
    if (codec.codec == Codec::kOther) {
      EXPECT_FALSE(view.has_value());
      continue;
    }
    ASSERT_TRUE(view.has_value());
    std::vector<std::byte> chunk(copied.chunk_bytes(i));
    const RawChunk raw = copied.read_chunk(i, chunk);
    EXPECT_EQ(view->codec.codec, raw.codec.codec);
    EXPECT_EQ(view->codec.elem_size, raw.codec.elem_size);
    EXPECT_TRUE(std::equal(view->bytes.begin(), view->bytes.end(), chunk.begin(), chunk.end()));
    std::vector<std::byte> via_map(chunk.size());  // read_chunk copies from the mapping
    EXPECT_EQ(mapped.read_chunk(i, via_map).bytes, chunk.size());
    EXPECT_EQ(via_map, chunk);
  }
}

TEST(DatasetMapped, EveryFixtureMatchesH5DreadAndTheCopyPath) {
  for (const char* name :
       {"bslz4_u8", "bslz4_u16", "bslz4_u32", "bslz4_i32", "bslz4_f32", "bslz4_u32_block64",
        "bslz4_u16_block24", "bitshuffle_u32", "lz4_u16", "lz4_u32_raw_blocks", "none_u32",
        "gzip_u32", "two_frame_chunks_u32", "contiguous_u16"}) {
    SCOPED_TRACE(name);
    OpenOptions o;
    o.dataset_path = std::string("/") + name;
    Dataset mapped = Dataset::open(fixtures() / "plain.h5", o);
    o.map_files = false;
    Dataset copied = Dataset::open(fixtures() / "plain.h5", o);
    const auto ref = test::h5_read_all(fixtures() / "plain.h5", o.dataset_path);
    EXPECT_EQ(read_all_frames(mapped), ref);
    EXPECT_EQ(read_all_frames(copied), ref);
    expect_views_match_copies(mapped, copied);
  }
  Dataset mapped = Dataset::open(fixtures() / "eiger_master.h5");
  OpenOptions off;
  off.map_files = false;
  Dataset copied = Dataset::open(fixtures() / "eiger_master.h5", off);
  auto ref = test::h5_read_all(fixtures() / "eiger_data_000001.h5", "/entry/data/data");
  const auto ref2 = test::h5_read_all(fixtures() / "eiger_data_000002.h5", "/entry/data/data");
  ref.insert(ref.end(), ref2.begin(), ref2.end());
  EXPECT_EQ(read_all_frames(mapped), ref);
  EXPECT_EQ(read_all_frames(copied), ref);
  expect_views_match_copies(mapped, copied);
  const auto view = mapped.chunk_view(4);  // in the second data file
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->codec.codec, Codec::kBitshuffleLz4);
}

// A scratch folder per test, removed at the end.
class DatasetMappedFile : public ::testing::Test {
 protected:
  fs::path dir =
      fs::temp_directory_path() / ("azflow_chunk_view_test_" + std::to_string(getpid()) + "_" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::path file = dir / "frames.h5";
  std::vector<std::byte> data = test::make_frames(3 * 37 * 53 * 4, 4, 5);

  void SetUp() override {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  // 3 frames of uint32 37 x 53, bitshuffle-LZ4, one chunk per frame; `userblock` bytes before
  // the HDF5 superblock.
  void write(hsize_t userblock = 0) {
    {
      test::H5Id fcpl(H5Pcreate(H5P_FILE_CREATE));
      if (userblock != 0) {
        ASSERT_GE(H5Pset_userblock(fcpl, userblock), 0);
      }
      test::H5Id f(H5Fcreate(file.c_str(), H5F_ACC_TRUNC, fcpl, H5P_DEFAULT));
    }
    const test::DatasetSpec spec{"/data", H5T_NATIVE_UINT32,       3,     37, 53,
                                 {},      test::kBitshuffleFilter, {0, 2}};
    test::write_dataset(file, spec, data.data());
  }

  // Frame `frame`'s chunk address (relative to the base address) and stored size, from HDF5.
  std::pair<std::uint64_t, std::uint64_t> chunk_location(std::size_t frame) const {
    test::H5Id f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    test::H5Id d(H5Dopen2(f, "/data", H5P_DEFAULT));
    const hsize_t offset[3] = {frame, 0, 0};
    unsigned mask = 0;
    haddr_t addr = 0;
    hsize_t size = 0;
    EXPECT_GE(H5Dget_chunk_info_by_coord(d, offset, &mask, &addr, &size), 0);
    return {addr, size};
  }

  OpenOptions options(bool map = true) const {
    OpenOptions o;
    o.dataset_path = "/data";
    o.map_files = map;
    return o;
  }
};

TEST_F(DatasetMappedFile, UserBlockShiftsChunkAddresses) {
  write(512);
  Dataset d = Dataset::open(file, options());
  ASSERT_TRUE(d.chunk_view(1).has_value());
  EXPECT_EQ(read_all_frames(d), data);
  EXPECT_EQ(read_all_frames(d), test::h5_read_all(file, "/data"));
}

// Rewrites, in the raw bytes of the file, the v1 B-tree entry of frame `frame`'s chunk (key:
// size u32, filter mask u32, offsets (frame, 0, 0, 0) u64; then the child address u64) so that
// the chunk's address is `new_address`.
void patch_chunk_address(const fs::path& file, std::size_t frame, std::uint64_t size,
                         std::uint64_t address, std::uint64_t new_address) {
  std::ifstream in(file, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  std::vector<char> key;
  auto put = [&key](std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) key.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  put(size, 4);
  put(0, 4);
  for (const std::uint64_t v :
       {std::uint64_t{frame}, std::uint64_t{0}, std::uint64_t{0}, std::uint64_t{0}, address}) {
    put(v, 8);
  }
  const auto at = std::search(bytes.begin(), bytes.end(), key.begin(), key.end());
  ASSERT_NE(at, bytes.end()) << "B-tree entry of frame " << frame << " not found";
  ASSERT_EQ(std::search(at + 1, bytes.end(), key.begin(), key.end()), bytes.end());
  for (int i = 0; i < 8; ++i) {
    *(at + 40 + i) = static_cast<char>((new_address >> (8 * i)) & 0xFF);
  }
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<long>(bytes.size()));
}

TEST_F(DatasetMappedFile, ChunkIndexPastEndOfFileIsAnInputError) {
  write();
  const auto [addr, size] = chunk_location(1);
  const auto file_size = static_cast<std::uint64_t>(fs::file_size(file));
  patch_chunk_address(file, 1, size, addr, file_size - size / 2);  // straddles the end
  ASSERT_EQ(chunk_location(1).first, file_size - size / 2);
  std::vector<std::byte> frame(37 * 53 * 4);
  {  // closed before the file is patched again: HDF5 shares an open file's metadata cache
    Dataset d = Dataset::open(file, options());
    d.read_frame(0, frame);
    EXPECT_TRUE(std::equal(frame.begin(), frame.end(), data.begin()));
    const std::vector<std::string> parts = {"frames.h5", "/data", "frame 1", "past the end"};
    expect_error([&] { d.read_frame(1, frame); }, ErrorCategory::kInput, parts);
    expect_error([&] { (void)d.chunk_view(1); }, ErrorCategory::kInput, parts);
    std::vector<std::byte> chunk(d.chunk_bytes(1));
    expect_error([&] { d.read_chunk(1, chunk); }, ErrorCategory::kInput, parts);
  }
  patch_chunk_address(file, 1, size, file_size - size / 2, ~std::uint64_t{0} - 8);  // wraps
  Dataset wrapped = Dataset::open(file, options());
  expect_error([&] { wrapped.read_frame(1, frame); }, ErrorCategory::kInput,
               {"frames.h5", "/data", "frame 1", "overflows"});

  // The H5Dread_chunk path fails too (HDF5 refuses to read past its end of allocation).
  Dataset copied = Dataset::open(file, options(false));
  try {
    copied.read_frame(1, frame);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("frame 1"), std::string::npos) << e.what();
  }
}

TEST_F(DatasetMappedFile, FileTruncatedAfterMappingIsAnIoErrorNotSigbus) {
  write();
  std::vector<std::pair<std::uint64_t, std::uint64_t>> chunks;
  for (std::size_t i = 0; i < 3; ++i) chunks.push_back(chunk_location(i));
  const auto last = std::max_element(chunks.begin(), chunks.end()) - chunks.begin();
  Dataset d = Dataset::open(file, options());
  std::vector<std::byte> frame(d.info().frame_bytes());
  d.read_frame(0, frame);  // maps the file
  ASSERT_TRUE(d.chunk_view(static_cast<std::size_t>(last)).has_value());
  const auto [addr, size] = chunks[static_cast<std::size_t>(last)];
  fs::resize_file(file, addr + size / 2);  // the last chunk loses its second half
  const std::vector<std::string> parts = {"frames.h5", "/data", "frame " + std::to_string(last),
                                          "shrank"};
  expect_error([&] { d.read_frame(static_cast<std::size_t>(last), frame); }, ErrorCategory::kIo,
               parts);
  expect_error([&] { (void)d.chunk_view(static_cast<std::size_t>(last)); }, ErrorCategory::kIo,
               parts);
  for (std::size_t i = 0; i < 3; ++i) {  // chunks still inside the file still decode
    if (static_cast<std::ptrdiff_t>(i) == last) continue;
    d.read_frame(i, frame);
    EXPECT_TRUE(std::equal(frame.begin(), frame.end(), data.begin() + i * frame.size()));
  }
}

}  // namespace
}  // namespace azflow::source
