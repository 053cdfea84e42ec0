// The raw spool (stages/source/raw_spool.hpp): images compressed by HDF5's own filter plugins
// (Debian's bitshuffle and LZ4 plugins, through H5Dwrite), taken out as stored chunks and
// appended, must come back byte-identical as chunks (H5Dread_chunk), decode through HDF5's filter
// pipeline (H5Dread) and through azflow's file source to the original pixels; missing images are
// recorded, what a spool holds is found again without close(), and an existing spool is refused.

#include "stages/source/raw_spool.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "stages/reduce/output_dir.hpp"
#include "stages/source/dataset.hpp"
#include "tests/decompress/h5_test_util.hpp"

namespace azflow::source {
namespace {

namespace fs = std::filesystem;
namespace s2 = stream2;
using decompress::Codec;
using decompress::CodecParams;

constexpr std::size_t kRows = 17, kCols = 23, kImages = 5;

/// One spool case: how the images are compressed, and their dtype.
struct Case {
  const char* name;
  Codec codec;
  DType dtype;
  hid_t type;
};

class RawSpoolTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) c = c == '/' ? '_' : c;
    dir_ =
        fs::temp_directory_path() / ("azflow_raw_spool_" + std::to_string(getpid()) + "_" + name);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// A start message for kImages images of `dtype`, with geometry and a pixel mask.
  static s2::Start start(DType dtype) {
    s2::Start s;
    s.series_id = 7;
    s.series_unique_id = "uid-7";
    s.image_size_x = kCols;
    s.image_size_y = kRows;
    s.image_dtype = dtype;
    s.number_of_images = kImages;
    s.beam_center_x_px = 11.25;
    s.beam_center_y_px = 8.5;
    s.detector_distance_m = 0.125;
    s.incident_wavelength_m = 0.5e-10;
    s.pixel_size_x_m = 75e-6;
    s.pixel_size_y_m = 75e-6;
    s.channels = {"threshold_1"};
    std::vector<std::uint32_t> mask(kRows * kCols, 0);
    mask[3] = 1;
    mask[kCols * 5 + 7] = 4;
    s.pixel_masks.emplace_back("threshold_1", mask);
    return s;
  }

  /// kImages frames of `c`, written by HDF5 with the filter plugin of `c.codec`; fills pixels_
  /// (decoded) and chunks_ (stored bytes, one per image).
  void encode(const Case& c) {
    const std::size_t elem = dtype_size(c.dtype);
    pixels_ = test::make_frames(kImages * kRows * kCols * elem, elem, 11);
    test::DatasetSpec spec;
    spec.type = c.type;
    spec.frames = kImages;
    spec.rows = kRows;
    spec.cols = kCols;
    if (c.codec == Codec::kBitshuffleLz4) {
      spec.filter = test::kBitshuffleFilter;
      spec.cd_values = {0, 2};
    } else if (c.codec == Codec::kLz4) {
      spec.filter = test::kLz4Filter;
    }
    const fs::path file = dir_ / "encoded.h5";
    test::write_dataset(file, spec, pixels_.data());
    chunks_.clear();
    for (std::size_t i = 0; i < kImages; ++i) {
      chunks_.push_back(test::read_raw_chunk(file, "/data", i));
    }
  }

  /// Image `i` as a Stream V2 array viewing chunks_[i].
  [[nodiscard]] s2::Array array(const Case& c, std::size_t i) const {
    s2::Array a;
    a.rows = kRows;
    a.cols = kCols;
    a.dtype = c.dtype;
    a.codec = CodecParams{c.codec, dtype_size(c.dtype), 0};
    a.bytes = chunks_[i];
    return a;
  }

  [[nodiscard]] std::span<const std::byte> frame(std::size_t i, DType dtype) const {
    const std::size_t n = kRows * kCols * dtype_size(dtype);
    return std::span<const std::byte>(pixels_).subspan(i * n, n);
  }

  fs::path dir_;
  std::vector<std::byte> pixels_;
  std::vector<std::vector<std::byte>> chunks_;
};

bool plugins_available() {
  return H5Zfilter_avail(test::kBitshuffleFilter) > 0 && H5Zfilter_avail(test::kLz4Filter) > 0;
}

TEST_P(RawSpoolTest, ChunksComeBackUnchangedAndDecodeToThePixels) {
  if (!plugins_available()) GTEST_SKIP() << "HDF5 bitshuffle/LZ4 filter plugins not installed";
  const Case c = GetParam();
  encode(c);
  RawSpoolOptions options;
  options.images_per_file = 2;  // three data files: 2 + 2 + 1 images
  options.fsync = true;
  fs::path master;
  {
    RawSpool spool(dir_ / "spool", start(c.dtype), options);
    master = spool.master_path();
    EXPECT_EQ(master, dir_ / "spool" / "series_7_master.h5");
    for (std::size_t i : {1u, 0u, 4u, 2u, 3u}) {  // any order of arrival
      EXPECT_EQ(spool.append(i, array(c, i)), RawSpool::Appended::kWritten) << i;
    }
    EXPECT_EQ(spool.append(2, array(c, 2)), RawSpool::Appended::kDuplicate);
    EXPECT_EQ(spool.images_spooled(), kImages);
    spool.close();
  }
  EXPECT_EQ(RawSpool::spooled_ids(master), (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
  for (std::size_t i = 0; i < kImages; ++i) {
    const fs::path data =
        dir_ / "spool" / ("series_7_data_00000" + std::to_string(i / 2 + 1) + ".h5");
    EXPECT_EQ(test::read_raw_chunk(data, "/entry/data/data", i % 2), chunks_[i]) << "image " << i;
    const std::vector<std::byte> decoded = test::h5_read_all(data, "/entry/data/data");
    const std::size_t n = kRows * kCols * dtype_size(c.dtype);
    EXPECT_TRUE(std::equal(decoded.begin() + static_cast<std::ptrdiff_t>((i % 2) * n),
                           decoded.begin() + static_cast<std::ptrdiff_t>((i % 2 + 1) * n),
                           frame(i, c.dtype).begin()))
        << "HDF5 filter path, image " << i;
  }
  Dataset d = Dataset::open(master);
  const DatasetInfo& info = d.info();
  ASSERT_EQ(info.frames, kImages);
  EXPECT_EQ(info.rows, kRows);
  EXPECT_EQ(info.cols, kCols);
  EXPECT_EQ(info.dtype, c.dtype);
  EXPECT_EQ(d.frame_codec(0).codec, c.codec);
  ASSERT_TRUE(info.pixel_mask.has_value());
  EXPECT_EQ(*info.pixel_mask, start(c.dtype).pixel_masks[0].second);
  EXPECT_EQ(info.detector.beam_center_x_px, 11.25);
  EXPECT_EQ(info.detector.beam_center_y_px, 8.5);
  EXPECT_EQ(info.detector.detector_distance_m, 0.125);
  EXPECT_EQ(info.detector.x_pixel_size_m, 75e-6);
  EXPECT_NEAR(*info.detector.incident_wavelength_m, 0.5e-10, 1e-22);
  EXPECT_EQ(info.detector.nimages, kImages);
  std::vector<std::byte> out(info.frame_bytes());
  for (std::size_t i = 0; i < kImages; ++i) {
    d.read_frame(i, out);
    EXPECT_TRUE(std::equal(out.begin(), out.end(), frame(i, c.dtype).begin()))
        << "azflow source, image " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Codecs, RawSpoolTest,
    ::testing::Values(
        Case{"bslz4_uint32", Codec::kBitshuffleLz4, DType::kUint32, H5T_NATIVE_UINT32},
        Case{"bslz4_uint16", Codec::kBitshuffleLz4, DType::kUint16, H5T_NATIVE_UINT16},
        Case{"lz4_uint16", Codec::kLz4, DType::kUint16, H5T_NATIVE_UINT16},
        Case{"raw_uint32", Codec::kNone, DType::kUint32, H5T_NATIVE_UINT32}),
    [](const ::testing::TestParamInfo<Case>& p) { return std::string(p.param.name); });

const Case kBslz4{"bslz4_uint32", Codec::kBitshuffleLz4, DType::kUint32, H5T_NATIVE_UINT32};

class RawSpoolRulesTest : public RawSpoolTest {
 protected:
  /// A child process spools images 0 and 2 of kBslz4 with `options`, then is SIGKILLed with the
  /// files still open.
  void spool_two_and_die(const RawSpoolOptions& options) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      RawSpool spool(dir_, start(DType::kUint32), options);
      const bool ok = spool.append(0, array(kBslz4, 0)) == RawSpool::Appended::kWritten &&
                      spool.append(2, array(kBslz4, 2)) == RawSpool::Appended::kWritten;
      if (ok) ::kill(::getpid(), SIGKILL);
      ::_exit(1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  }
};

std::vector<std::uint64_t> read_u64s(const fs::path& file, const std::string& name) {
  test::H5Id f(H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  test::H5Id d(H5Dopen2(f, name.c_str(), H5P_DEFAULT));
  test::H5Id space(H5Dget_space(d));
  std::vector<std::uint64_t> v(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
  if (!v.empty()) H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  return v;
}

TEST_F(RawSpoolRulesTest, MissingImagesAreRecordedAndReadAsUnwritten) {
  if (!plugins_available()) GTEST_SKIP() << "HDF5 bitshuffle/LZ4 filter plugins not installed";
  encode(kBslz4);
  RawSpoolOptions options;
  options.images_per_file = 2;
  RawSpool spool(dir_, start(DType::kUint32), options);
  for (std::size_t i : {0u, 1u, 3u})
    ASSERT_EQ(spool.append(i, array(kBslz4, i)), RawSpool::Appended::kWritten);
  EXPECT_EQ(spool.missing_ids(), (std::vector<std::uint64_t>{2, 4}));
  spool.close();
  const fs::path master = spool.master_path();
  EXPECT_EQ(read_u64s(master, "/entry/azflow_spool/missing_image_ids"),
            (std::vector<std::uint64_t>{2, 4}));
  EXPECT_EQ(read_u64s(master, "/entry/azflow_spool/images_spooled"), std::vector<std::uint64_t>{3});
  EXPECT_EQ(read_u64s(master, "/entry/azflow_spool/complete"), std::vector<std::uint64_t>{1});
  EXPECT_EQ(RawSpool::spooled_ids(master), (std::vector<std::uint64_t>{0, 1, 3}));
  // the third data file got no image: close() made it, empty, so the link resolves
  EXPECT_TRUE(fs::exists(dir_ / "series_7_data_000003.h5"));
  Dataset d = Dataset::open(master);
  ASSERT_EQ(d.info().frames, kImages);
  std::vector<std::byte> out(d.info().frame_bytes());
  d.read_frame(3, out);
  EXPECT_TRUE(std::equal(out.begin(), out.end(), frame(3, DType::kUint32).begin()));
  try {
    d.read_frame(2, out);
    ADD_FAILURE() << "an unwritten image read";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInput);
    EXPECT_NE(std::string(e.what()).find("never written"), std::string::npos) << e.what();
  }
  // through HDF5's filter pipeline an unwritten chunk is the fill value, 0
  const std::vector<std::byte> all =
      test::h5_read_all(dir_ / "series_7_data_000002.h5", "/entry/data/data");
  const std::size_t n = kRows * kCols * 4;
  EXPECT_TRUE(std::all_of(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n),
                          [](std::byte b) { return b == std::byte{0}; }));
}

TEST_F(RawSpoolRulesTest, AKilledWriterLeavesTheFlushedImagesReadable) {
  if (!plugins_available()) GTEST_SKIP() << "HDF5 bitshuffle/LZ4 filter plugins not installed";
  encode(kBslz4);
  RawSpoolOptions options;
  options.images_per_file = 2;
  options.flush_each = true;  // enough for a killed process (fsync is for a power loss)
  const fs::path master = dir_ / "series_7_master.h5";
  ASSERT_NO_FATAL_FAILURE(spool_two_and_die(options));
  EXPECT_EQ(RawSpool::spooled_ids(master), (std::vector<std::uint64_t>{0, 2}));
  EXPECT_EQ(read_u64s(master, "/entry/azflow_spool/complete"), std::vector<std::uint64_t>{0});
  EXPECT_FALSE(fs::exists(dir_ / "series_7_data_000003.h5"));
  EXPECT_EQ(test::read_raw_chunk(dir_ / "series_7_data_000002.h5", "/entry/data/data", 0),
            chunks_[2]);
}

TEST_F(RawSpoolRulesTest, AKilledWritersSpoolIsReopenedAndCompleted) {
  if (!plugins_available()) GTEST_SKIP() << "HDF5 bitshuffle/LZ4 filter plugins not installed";
  encode(kBslz4);
  RawSpoolOptions options;
  options.images_per_file = 2;
  options.flush_each = true;
  ASSERT_NO_FATAL_FAILURE(spool_two_and_die(options));
  const auto folder = reduce::OutputDir::open(dir_);
  RawSpool spool = RawSpool::reopen(folder, start(DType::kUint32), options);
  EXPECT_FALSE(spool.complete());
  EXPECT_EQ(spool.images_spooled(), 2u);
  EXPECT_EQ(spool.missing_ids(), (std::vector<std::uint64_t>{1, 3, 4}));
  // what the killed writer spooled reads back unchanged, with the spool's codec
  std::vector<std::byte> buffer(chunks_[2].size() + 64);
  const RawSpool::StoredImage two = spool.read_image(2, buffer);
  EXPECT_EQ(two.codec.codec, Codec::kBitshuffleLz4);
  ASSERT_EQ(two.bytes, chunks_[2].size());
  EXPECT_TRUE(std::equal(chunks_[2].begin(), chunks_[2].end(), buffer.begin()));
  EXPECT_THROW((void)spool.read_image(1, buffer), Error);  // not spooled
  std::vector<std::byte> small(8);
  EXPECT_THROW((void)spool.read_image(0, small), Error);  // does not fit
  // the rest goes on where it stopped: a duplicate is kept once, the others written
  EXPECT_EQ(spool.append(0, array(kBslz4, 0)), RawSpool::Appended::kDuplicate);
  for (std::size_t i : {1u, 3u, 4u})
    ASSERT_EQ(spool.append(i, array(kBslz4, i)), RawSpool::Appended::kWritten);
  spool.close();
  const fs::path master = dir_ / "series_7_master.h5";
  EXPECT_EQ(RawSpool::spooled_ids(master), (std::vector<std::uint64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(read_u64s(master, "/entry/azflow_spool/complete"), std::vector<std::uint64_t>{1});
  EXPECT_EQ(read_u64s(master, "/entry/azflow_spool/images_spooled"), std::vector<std::uint64_t>{5});
  {  // closed again before the reopen below: HDF5 opens a file read-write only if no one reads it
    Dataset d = Dataset::open(master);
    std::vector<std::byte> out(d.info().frame_bytes());
    for (std::size_t i = 0; i < kImages; ++i) {
      d.read_frame(i, out);
      EXPECT_TRUE(std::equal(out.begin(), out.end(), frame(i, DType::kUint32).begin())) << i;
    }
  }
  // a closed spool reopens read-only: its images read, nothing appended
  RawSpool closed = RawSpool::reopen(folder, start(DType::kUint32), options);
  EXPECT_TRUE(closed.complete());
  EXPECT_EQ(closed.read_image(4, buffer).bytes, chunks_[4].size());
  EXPECT_THROW((void)closed.append(1, array(kBslz4, 1)), Error);
  // another series, or no spool at all, is refused naming the master
  s2::Start other = start(DType::kUint32);
  other.number_of_images = kImages + 1;
  try {
    (void)RawSpool::reopen(folder, other, options);
    ADD_FAILURE() << "a spool of another series reopened";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kConfig);
    EXPECT_NE(std::string(e.what()).find("series_7_master.h5"), std::string::npos) << e.what();
  }
  other = start(DType::kUint32);
  other.series_id = 8;
  EXPECT_THROW((void)RawSpool::reopen(folder, other, options), Error);
}

TEST_F(RawSpoolRulesTest, AnExistingSpoolIsNeverOverwritten) {
  if (!plugins_available()) GTEST_SKIP() << "HDF5 bitshuffle/LZ4 filter plugins not installed";
  encode(kBslz4);
  RawSpoolOptions options;
  options.images_per_file = 2;
  {
    RawSpool spool(dir_, start(DType::kUint32), options);
    ASSERT_EQ(spool.append(0, array(kBslz4, 0)), RawSpool::Appended::kWritten);
    spool.close();
  }
  const auto size = fs::file_size(dir_ / "series_7_master.h5");
  auto expect_refused = [&](const std::string& name) {
    try {
      RawSpool again(dir_, start(DType::kUint32), options);
      ADD_FAILURE() << "a second spool over " << name;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kConfig);
      EXPECT_NE(std::string(e.what()).find((dir_ / name).string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
    }
  };
  expect_refused("series_7_master.h5");
  EXPECT_EQ(fs::file_size(dir_ / "series_7_master.h5"), size);
  EXPECT_EQ(RawSpool::spooled_ids(dir_ / "series_7_master.h5"), std::vector<std::uint64_t>{0});
  // a planted data file name (here a symbolic link) is refused too, before anything is written
  const fs::path other = dir_ / "other";
  fs::create_directories(other);
  fs::create_symlink("/tmp/elsewhere.h5", other / "series_7_data_000002.h5");
  options.images_per_file = 2;
  try {
    RawSpool planted(other, start(DType::kUint32), options);
    ADD_FAILURE() << "a spool over a planted link";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kConfig);
    EXPECT_NE(std::string(e.what()).find("series_7_data_000002.h5"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(other / "series_7_master.h5"));
}

TEST_F(RawSpoolRulesTest, ImagesTheSpoolCannotHoldAreRefusedNamingThem) {
  if (!plugins_available()) GTEST_SKIP() << "HDF5 bitshuffle/LZ4 filter plugins not installed";
  encode(kBslz4);
  RawSpool spool(dir_, start(DType::kUint32));
  auto expect_input = [&](std::uint64_t id, const s2::Array& a, const std::string& part) {
    try {
      (void)spool.append(id, a);
      ADD_FAILURE() << "appended: " << part;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInput);
      EXPECT_NE(std::string(e.what()).find("image " + std::to_string(id)), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_input(kImages, array(kBslz4, 0), "out of range");
  s2::Array wrong = array(kBslz4, 0);
  wrong.cols = kCols - 1;
  expect_input(1, wrong, "the start message declared");
  ASSERT_EQ(spool.append(0, array(kBslz4, 0)), RawSpool::Appended::kWritten);
  s2::Array lz4 = array(kBslz4, 1);
  lz4.codec.codec = Codec::kLz4;
  expect_input(1, lz4, "a lz4 image in a bslz4 spool");
  // a raw image in a compressed spool: stored with its filter skipped, read back as pixels
  s2::Array raw = array(kBslz4, 1);
  raw.codec = CodecParams{Codec::kNone, 4, 0};
  raw.bytes = frame(1, DType::kUint32);
  ASSERT_EQ(spool.append(1, raw), RawSpool::Appended::kWritten);
  spool.close();
  Dataset d = Dataset::open(spool.master_path());
  std::vector<std::byte> out(d.info().frame_bytes());
  for (std::size_t i : {0u, 1u}) {
    d.read_frame(i, out);
    EXPECT_TRUE(std::equal(out.begin(), out.end(), frame(i, DType::kUint32).begin())) << i;
  }
  EXPECT_EQ(RawSpool::spooled_ids(spool.master_path()), (std::vector<std::uint64_t>{0, 1}));
}

}  // namespace
}  // namespace azflow::source
