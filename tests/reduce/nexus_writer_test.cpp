// NexusWriter: rows by index in any order, the NeXus @default chain and axes, refusal to
// overwrite, the ".partial" name until finish(), failed frames and dataset-wide sums; everything
// read back with the HDF5 C API.

#include "stages/reduce/nexus_writer.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "base/error.hpp"
#include "tests/reduce/h5_read.hpp"

namespace azflow::reduce {
namespace {

namespace fs = std::filesystem;
using azflow::testing::H5File;

/// A fresh temporary folder per test, removed afterwards.
class NexusWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("azflow_nexus_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// A 1D layout: `frames` rows of `bins` bins in q_nm^-1, radial centres 0.5, 1.5, ...
  NexusLayout layout_1d(std::size_t frames, std::size_t bins, bool errors = true) const {
    NexusLayout layout;
    layout.path = dir_ / "out.h5";
    layout.frames = frames;
    layout.unit = integrate::RadialUnit::kQ_nm;
    for (std::size_t i = 0; i < bins; ++i) layout.radial_centers.push_back(0.5 + double(i));
    for (std::size_t i = 0; i <= bins; ++i) layout.radial_edges.push_back(double(i));
    layout.with_errors = errors;
    return layout;
  }

  static std::vector<float> row_values(std::size_t row, std::size_t bins) {
    std::vector<float> v(bins);
    for (std::size_t b = 0; b < bins; ++b) v[b] = static_cast<float>(row * 100 + b);
    return v;
  }

  fs::path dir_;
};

TEST_F(NexusWriterTest, RowsWrittenOutOfOrderLandAtTheirIndex) {
  NexusWriter writer(layout_1d(4, 5));
  for (std::size_t row : {3u, 0u, 2u, 1u}) {
    const auto v = row_values(row, 5);
    std::vector<float> sigma(v.size(), static_cast<float>(row));
    writer.write_frame(row, v, sigma);
  }
  const WriterSummary summary = writer.finish();
  EXPECT_EQ(summary.frames_written, 4u);
  EXPECT_TRUE(summary.failed.empty());

  H5File f((dir_ / "out.h5").string());
  EXPECT_EQ(f.dims("/entry/integrate/I"), (std::vector<hsize_t>{4, 5}));
  const auto intensity = f.doubles("/entry/integrate/I");
  const auto sigma = f.doubles("/entry/integrate/I_errors");
  for (std::size_t row = 0; row < 4; ++row) {
    for (std::size_t b = 0; b < 5; ++b) {
      EXPECT_EQ(intensity[row * 5 + b], double(row * 100 + b)) << row << "," << b;
      EXPECT_EQ(sigma[row * 5 + b], double(row));
    }
  }
}

TEST_F(NexusWriterTest, ConcurrentWorkersEachRowOnceAndSumsExact) {
  constexpr std::size_t kRows = 64, kBins = 7, kThreads = 4;
  NexusWriter writer(layout_1d(kRows, kBins));
  {
    std::vector<std::jthread> pool;
    for (std::size_t t = 0; t < kThreads; ++t) {
      pool.emplace_back([&writer, t] {
        for (std::size_t row = kRows - 1 - t; row < kRows; row -= kThreads) {
          integrate::BinSums sums;
          sums.reset(kBins);
          for (std::size_t b = 0; b < kBins; ++b) {
            sums.signal[b] = double(row * 100 + b);
            sums.variance[b] = 1.0;
            sums.normalization[b] = 1.0;
            sums.count[b] = 1.0;
          }
          writer.write_frame(row, sums);
          if (row < kThreads) break;
        }
      });
    }
  }
  EXPECT_TRUE(writer.finish().failed.empty());
  H5File f((dir_ / "out.h5").string());
  const auto intensity = f.doubles("/entry/integrate/I");
  for (std::size_t row = 0; row < kRows; ++row) {
    EXPECT_EQ(intensity[row * kBins + 3], double(row * 100 + 3)) << row;
  }
  const auto total = f.doubles("/entry/sum/sum_signal");
  EXPECT_EQ(total[0], 100.0 * (kRows * (kRows - 1) / 2));
  EXPECT_EQ(f.doubles("/entry/sum/sum_count")[0], double(kRows));
}

TEST_F(NexusWriterTest, DefaultChainSignalAxesAndUnits) {
  NexusWriter writer(layout_1d(2, 3));
  writer.write_frame(0, row_values(0, 3), std::vector<float>(3, 1.0f));
  writer.write_frame(1, row_values(1, 3), std::vector<float>(3, 1.0f));
  writer.finish();

  H5File f((dir_ / "out.h5").string());
  EXPECT_EQ(f.string_attr("/", "default"), std::vector<std::string>{"entry"});
  EXPECT_EQ(f.string_attr("/entry", "NX_class"), std::vector<std::string>{"NXentry"});
  EXPECT_EQ(f.string_attr("/entry", "default"), std::vector<std::string>{"integrate"});
  EXPECT_EQ(f.string_attr("/entry/integrate", "NX_class"), std::vector<std::string>{"NXdata"});
  EXPECT_EQ(f.string_attr("/entry/integrate", "signal"), std::vector<std::string>{"I"});
  EXPECT_EQ(f.string_attr("/entry/integrate", "axes"),
            (std::vector<std::string>{"frame_index", "q"}));
  EXPECT_EQ(f.int_attr("/entry/integrate", "q_indices"), 1);
  EXPECT_EQ(f.int_attr("/entry/integrate", "frame_index_indices"), 0);
  EXPECT_EQ(f.string_attr("/entry/integrate/q", "units"), std::vector<std::string>{"nm^-1"});
  EXPECT_EQ(f.doubles("/entry/integrate/q"), (std::vector<double>{0.5, 1.5, 2.5}));
  EXPECT_EQ(f.doubles("/entry/integrate/q_edges"), (std::vector<double>{0, 1, 2, 3}));
  EXPECT_EQ(f.string_attr("/entry/process", "NX_class"), std::vector<std::string>{"NXprocess"});
  EXPECT_EQ(f.strings("/entry/process/program"), std::vector<std::string>{"azflow"});
  EXPECT_EQ(f.strings("/entry/process/version"),
            std::vector<std::string>{std::string(program_version())});
  const auto date = f.strings("/entry/process/date");
  ASSERT_EQ(date.size(), 1u);
  EXPECT_EQ(date[0].size(), 20u) << date[0];  // 2026-11-21T10:53:13Z
  EXPECT_EQ(date[0][10], 'T');
  EXPECT_EQ(f.string_attr("/entry/sum", "signal"), std::vector<std::string>{"I"});
  EXPECT_EQ(f.string_attr("/entry/sum", "axes"), std::vector<std::string>{"q"});
  EXPECT_EQ(f.doubles("/entry/sum/q"), (std::vector<double>{0.5, 1.5, 2.5}));
}

TEST_F(NexusWriterTest, TwoDimensionalLayoutNamesChiAndUnitFamily) {
  NexusLayout layout = layout_1d(2, 4, false);
  layout.unit = integrate::RadialUnit::k2Th_deg;
  layout.azimuthal_centers = {-90.0, 90.0};
  layout.azimuthal_edges = {-180.0, 0.0, 180.0};
  NexusWriter writer(layout);
  writer.write_frame(1, row_values(1, 8), {});
  writer.write_frame(0, row_values(0, 8), {});
  writer.finish();

  H5File f((dir_ / "out.h5").string());
  EXPECT_EQ(f.dims("/entry/integrate/I"), (std::vector<hsize_t>{2, 2, 4}));
  EXPECT_FALSE(f.exists("/entry/integrate/I_errors"));
  EXPECT_EQ(f.string_attr("/entry/integrate", "axes"),
            (std::vector<std::string>{"frame_index", "chi", "2th"}));
  EXPECT_EQ(f.int_attr("/entry/integrate", "chi_indices"), 1);
  EXPECT_EQ(f.int_attr("/entry/integrate", "2th_indices"), 2);
  EXPECT_EQ(f.string_attr("/entry/integrate/2th", "units"), std::vector<std::string>{"deg"});
  EXPECT_EQ(f.string_attr("/entry/integrate/chi", "units"), std::vector<std::string>{"deg"});
  EXPECT_EQ(f.doubles("/entry/integrate/chi_edges").size(), 3u);
  EXPECT_EQ(f.string_attr("/entry/sum", "axes"), (std::vector<std::string>{"chi", "2th"}));
  EXPECT_EQ(f.doubles("/entry/integrate/I")[8 + 5], 105.0);
}

TEST_F(NexusWriterTest, RefusesToOverwriteUnlessAsked) {
  const fs::path out = dir_ / "out.h5";
  std::ofstream(out) << "precious";
  try {
    NexusWriter writer(layout_1d(1, 2));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kConfig);
    EXPECT_NE(std::string(e.what()).find(out.string()), std::string::npos) << e.what();
  }
  EXPECT_EQ(fs::file_size(out), 8u);

  NexusLayout layout = layout_1d(1, 2);
  layout.overwrite = true;
  NexusWriter writer(layout);
  writer.write_frame(0, row_values(0, 2), std::vector<float>(2, 0.0f));
  writer.finish();
  H5File f(out.string());
  EXPECT_EQ(f.doubles("/entry/integrate/I"), (std::vector<double>{0, 1}));
}

TEST_F(NexusWriterTest, OnlyAStalePartialOfItsOwnIsReplaced) {
  const fs::path partial = dir_ / "out.h5.partial";
  const fs::path victim = dir_ / "victim.txt";
  const auto refused = [&](const std::string& what) {
    try {
      NexusWriter writer(layout_1d(1, 2));
      ADD_FAILURE() << "expected an error for " << what;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kIo) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
    std::ifstream in(victim);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "precious") << what;
  };
  std::ofstream(victim) << "precious";
  fs::create_symlink(victim, partial);  // a symbolic link: never written through
  refused("exists and is a symbolic link");
  fs::remove(partial);
  fs::create_hard_link(victim, partial);  // another name of someone's file: left alone
  refused("a file with 2 hard links");
  fs::remove(partial);
  std::ofstream(partial) << "an earlier run";  // azflow's own leftover: replaced
  NexusWriter writer(layout_1d(1, 2));
  writer.write_frame(0, row_values(0, 2), std::vector<float>(2, 0.0f));
  writer.finish();
  EXPECT_FALSE(fs::exists(partial));
  H5File f((dir_ / "out.h5").string());
  EXPECT_EQ(f.doubles("/entry/integrate/I"), (std::vector<double>{0, 1}));
}

TEST_F(NexusWriterTest, PartialNameUntilFinished) {
  const fs::path out = dir_ / "out.h5";
  {
    NexusWriter writer(layout_1d(1, 2));
    EXPECT_EQ(writer.partial_path(), dir_ / "out.h5.partial");
    EXPECT_TRUE(fs::exists(writer.partial_path()));
    EXPECT_FALSE(fs::exists(out));
    writer.write_frame(0, row_values(0, 2), std::vector<float>(2, 0.0f));
    writer.finish();
    EXPECT_TRUE(fs::exists(out));
    EXPECT_FALSE(fs::exists(writer.partial_path()));
  }
  fs::remove(out);
  {
    NexusWriter abandoned(layout_1d(1, 2));  // destroyed without finish(): no final file
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(fs::exists(dir_ / "out.h5.partial"));
}

TEST_F(NexusWriterTest, FailedAndMissingFramesAreListedWithNaNRows) {
  NexusLayout layout = layout_1d(4, 3);
  layout.first_frame = 10;
  NexusWriter writer(layout);
  writer.write_frame(0, row_values(0, 3), std::vector<float>(3, 1.0f));
  writer.fail_frame(1, "corrupt chunk");
  writer.write_frame(3, row_values(3, 3), std::vector<float>(3, 1.0f));
  const WriterSummary summary = writer.finish();  // row 2 never written
  ASSERT_EQ(summary.failed.size(), 2u);
  EXPECT_EQ(summary.frames_written, 2u);
  EXPECT_EQ(summary.failed[0].row, 1u);
  EXPECT_EQ(summary.failed[0].frame, 11);
  EXPECT_EQ(summary.failed[1].reason, "never written");

  H5File f((dir_ / "out.h5").string());
  EXPECT_EQ(f.doubles("/entry/process/failed_frames/row"), (std::vector<double>{1, 2}));
  EXPECT_EQ(f.doubles("/entry/process/failed_frames/frame"), (std::vector<double>{11, 12}));
  EXPECT_EQ(f.strings("/entry/process/failed_frames/reason"),
            (std::vector<std::string>{"corrupt chunk", "never written"}));
  EXPECT_EQ(f.doubles("/entry/process/frames_failed"), std::vector<double>{2});
  EXPECT_EQ(f.doubles("/entry/integrate/frame_index"), (std::vector<double>{10, 11, 12, 13}));
  const auto intensity = f.doubles("/entry/integrate/I");
  for (std::size_t b = 0; b < 3; ++b) {
    EXPECT_TRUE(std::isnan(intensity[3 + b]));
    EXPECT_TRUE(std::isnan(intensity[6 + b]));
    EXPECT_FALSE(std::isnan(intensity[9 + b]));
  }
}

TEST_F(NexusWriterTest, WritingARowTwiceIsABug) {
  NexusWriter writer(layout_1d(2, 2));
  writer.write_frame(0, row_values(0, 2), std::vector<float>(2, 0.0f));
  EXPECT_THROW(writer.write_frame(0, row_values(0, 2), std::vector<float>(2, 0.0f)), Error);
  EXPECT_THROW(writer.fail_frame(0, "late"), Error);
  EXPECT_THROW(writer.write_frame(2, row_values(0, 2), std::vector<float>(2, 0.0f)), Error);
  EXPECT_THROW(writer.write_frame(1, row_values(0, 3), std::vector<float>(3, 0.0f)), Error);
}

TEST_F(NexusWriterTest, DatasetWideSumsAddEveryFrame) {
  NexusWriter writer(layout_1d(2, 2));
  integrate::BinSums a, b;
  a.reset(2);
  b.reset(2);
  a.signal = {10, 0};
  a.variance = {10, 0};
  a.normalization = {2, 0};
  a.count = {4, 0};
  b.signal = {30, 5};
  b.variance = {30, 5};
  b.normalization = {2, 1};
  b.count = {4, 2};
  writer.write_frame(0, a);
  writer.write_frame(1, b);
  writer.finish();

  H5File f((dir_ / "out.h5").string());
  EXPECT_EQ(f.doubles("/entry/sum/sum_signal"), (std::vector<double>{40, 5}));
  EXPECT_EQ(f.doubles("/entry/sum/sum_normalization"), (std::vector<double>{4, 1}));
  EXPECT_EQ(f.doubles("/entry/sum/sum_count"), (std::vector<double>{8, 2}));
  EXPECT_EQ(f.doubles("/entry/sum/I"), (std::vector<double>{10, 5}));
  const auto sigma = f.doubles("/entry/sum/I_errors");
  EXPECT_NEAR(sigma[0], std::sqrt(40.0) / 4.0, 1e-6);
  const auto rows = f.doubles("/entry/integrate/I");
  EXPECT_EQ(rows, (std::vector<double>{5, 0, 15, 5}));  // empty bin -> 0
}

TEST_F(NexusWriterTest, SettingsAsJsonAndParameters) {
  NexusWriter writer(layout_1d(1, 2));
  writer.write_settings({{"unit", "q_nm^-1"},
                         {"npt_rad", 2},
                         {"dummy", 4294967295.0},
                         {"radial_range", {1.5, 2.5}},
                         {"shape", {195, 487}},
                         {"correct_solid_angle", true},
                         {"delta_dummy", nullptr},
                         {"a/b", "slash"}});
  EXPECT_THROW(writer.write_settings({}), Error);
  writer.write_frame(0, row_values(0, 2), std::vector<float>(2, 0.0f));
  writer.finish();

  H5File f((dir_ / "out.h5").string());
  const std::string p = "/entry/process/parameters/";
  EXPECT_EQ(f.strings(p + "unit"), std::vector<std::string>{"q_nm^-1"});
  EXPECT_EQ(f.doubles(p + "npt_rad"), std::vector<double>{2});
  EXPECT_EQ(f.doubles(p + "dummy"), std::vector<double>{4294967295.0});
  EXPECT_EQ(f.doubles(p + "radial_range"), (std::vector<double>{1.5, 2.5}));
  EXPECT_EQ(f.doubles(p + "shape"), (std::vector<double>{195, 487}));
  EXPECT_EQ(f.strings(p + "correct_solid_angle"), std::vector<std::string>{"true"});
  EXPECT_FALSE(f.exists(p + "delta_dummy"));
  EXPECT_EQ(f.strings(p + "a_b"), std::vector<std::string>{"slash"});
  const auto json = f.strings("/entry/process/configuration/data");
  ASSERT_EQ(json.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(json[0])["npt_rad"], 2);
}

TEST_F(NexusWriterTest, EmptyLayoutIsAConfigError) {
  NexusLayout layout = layout_1d(0, 2);
  EXPECT_THROW(NexusWriter{layout}, Error);
}

}  // namespace
}  // namespace azflow::reduce
