// XyWriter (pyFAI save1D text): Python float repr, per-frame file names, 1D-only and existing
// output refusals, row bookkeeping, the mean of the summed frames, the .partial file of an
// unfinished mean. The layout against pyFAI itself is checked by output_formats_test.py.

#include "stages/reduce/xy_writer.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace azflow::reduce {
namespace {

namespace fs = std::filesystem;

class XyWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("azflow_xy_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// `frames` rows of 3 q bins (centres 0.5, 1.5, 2.5), a generic-detector PONI.
  NexusLayout layout(OutputFormat format, std::size_t frames = 2) const {
    NexusLayout l;
    l.path = dir_ / "out.xy";
    l.frames = frames;
    l.first_frame = 10;
    l.radial_centers = {0.5, 1.5, 2.5};
    l.radial_edges = {0, 1, 2, 3};
    l.with_errors = true;
    l.format = format;
    integrate::Poni poni;
    poni.detector = {"Detector", 1e-4, 1e-4, 10, 10};
    poni.dist_m = 0.1;
    poni.wavelength_m = 1e-10;
    l.provenance.poni = poni;
    return l;
  }

  /// One frame's sums: signal `s` in every bin, normalization 2, variance s, count 1.
  static integrate::BinSums sums(double s) {
    integrate::BinSums b;
    b.reset(3);
    for (std::size_t i = 0; i < 3; ++i) {
      b.signal[i] = s;
      b.variance[i] = s;
      b.normalization[i] = 2;
      b.count[i] = 1;
    }
    return b;
  }

  /// The data lines of a file as (radial, I, sigma) rows.
  static std::vector<std::vector<double>> rows(const fs::path& file) {
    std::ifstream in(file);
    std::vector<std::vector<double>> out;
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream s(line);
      std::vector<double> v(3);
      s >> v[0] >> v[1] >> v[2];
      out.push_back(v);
    }
    return out;
  }

  fs::path dir_;
};

TEST(PythonFloatRepr, MatchesPythonRepr) {
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(3.0), "3.0");
  EXPECT_EQ(python_float_repr(100.0), "100.0");
  EXPECT_EQ(python_float_repr(1e-10), "1e-10");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(0.046070200000000006), "0.046070200000000006");
  EXPECT_EQ(python_float_repr(-0.95), "-0.95");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(1.5e-5), "1.5e-05");
}

TEST(XyFramePath, StemFrameExtension) {
  EXPECT_EQ(xy_frame_path("/d/out.xy", 7), fs::path("/d/out_00007.xy"));
  EXPECT_EQ(xy_frame_path("/d/out", 123456), fs::path("/d/out_123456"));
}

TEST_F(XyWriterTest, FramesGetTheirOwnFileNamedByInputFrame) {
  XyWriter writer(layout(OutputFormat::kXyFrames));
  writer.write_frame(1, sums(4));
  writer.fail_frame(0, "corrupt");
  const WriterSummary summary = writer.finish();
  EXPECT_EQ(summary.frames_written, 1u);
  ASSERT_EQ(summary.failed.size(), 1u);
  EXPECT_EQ(summary.failed[0].frame, 10);
  EXPECT_FALSE(fs::exists(dir_ / "out_00010.xy"));
  const auto r = rows(dir_ / "out_00011.xy");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_DOUBLE_EQ(r[1][0], 1.5);
  EXPECT_DOUBLE_EQ(r[1][1], 2.0);  // 4 / 2
  EXPECT_DOUBLE_EQ(r[1][2], 1.0);  // sqrt(4) / 2
  EXPECT_FALSE(fs::exists(dir_ / "out.xy"));
}

TEST_F(XyWriterTest, MeanIsTheRatioOfTheSummedFrames) {
  XyWriter writer(layout(OutputFormat::kXy));
  writer.write_frame(0, sums(4));
  writer.write_frame(1, sums(8));
  EXPECT_FALSE(fs::exists(dir_ / "out.xy"));  // written by finish()
  writer.finish();
  const auto r = rows(dir_ / "out.xy");
  ASSERT_EQ(r.size(), 3u);
  EXPECT_DOUBLE_EQ(r[0][1], 3.0);                   // 12 / 4
  EXPECT_NEAR(r[0][2], std::sqrt(12.0) / 4, 1e-6);  // sqrt(4 + 8) / 4
  std::ifstream in(dir_ / "out.xy");
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first, "# == pyFAI calibration ==");
}

TEST_F(XyWriterTest, UnfinishedMeanLeavesThePartialFile) {
  {
    XyWriter writer(layout(OutputFormat::kXy));
    writer.write_frame(0, sums(4));
  }
  EXPECT_FALSE(fs::exists(dir_ / "out.xy"));
  EXPECT_EQ(rows(dir_ / "out.xy.partial").size(), 3u);
}

TEST_F(XyWriterTest, RefusesCakesExistingOutputsAndRowsTwice) {
  NexusLayout cake = layout(OutputFormat::kXy);
  cake.azimuthal_centers = {0, 90};
  cake.azimuthal_edges = {-45, 45, 135};
  try {
    XyWriter writer(cake);
    FAIL() << "accepted a 2D layout";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kConfig);
    EXPECT_NE(std::string(e.what()).find("1D"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_result_writer(cake), Error);
  std::ofstream(dir_ / "out_00011.xy") << "x";
  EXPECT_THROW(XyWriter writer(layout(OutputFormat::kXyFrames)), Error);
  NexusLayout again = layout(OutputFormat::kXyFrames);
  again.overwrite = true;
  XyWriter writer(again);
  writer.write_frame(0, sums(1));
  EXPECT_THROW(writer.write_frame(0, sums(1)), Error);
  EXPECT_THROW(writer.fail_frame(0, "late"), Error);
}

TEST(OutputFormat, NamesRoundTripAndTextFormatsAre1D) {
  for (auto f :
       {OutputFormat::kNexus, OutputFormat::kNxAzint, OutputFormat::kXy, OutputFormat::kXyFrames}) {
    EXPECT_EQ(parse_output_format(output_format_name(f)), f);
  }
  EXPECT_FALSE(parse_output_format("h5").has_value());
  EXPECT_TRUE(format_supports(OutputFormat::kNxAzint, 36));
  EXPECT_FALSE(format_supports(OutputFormat::kXy, 36));
  EXPECT_TRUE(format_supports(OutputFormat::kXyFrames, 0));
}

}  // namespace
}  // namespace azflow::reduce
