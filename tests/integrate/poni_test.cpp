// PONI parsing and the detector table (pyFAI 0.21 file formats and values).

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "base/error.hpp"
#include "stages/integrate/detector.hpp"
#include "stages/integrate/poni.hpp"

namespace azflow::integrate {
namespace {

// Expects parse_poni to throw a kConfig error whose message contains every fragment.
void expect_poni_error(const std::string& text, std::initializer_list<std::string> fragments) {
  try {
    parse_poni(text, "test.poni");
    FAIL() << "no error for:\n" << text;
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kConfig);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("test.poni"), std::string::npos) << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg;
  }
}

// Written by pyFAI 0.21 (AzimuthalIntegrator.write) for an Eiger 4M.
constexpr const char* kVersion2Named = R"(# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis
# Calibration done at Sat Nov 21 10:54:10 2026
poni_version: 2
Detector: Eiger4M
Detector_config: {}
Distance: 0.1
Poni1: 0.08
Poni2: 0.07
Rot1: 0.01
Rot2: 0
Rot3: 0
Wavelength: 1e-10
)";

TEST(Poni, Version2NamedDetector) {
  const Poni p = parse_poni(kVersion2Named, "eiger.poni");
  EXPECT_EQ(p.version, 2);
  EXPECT_EQ(p.detector.name, "Eiger4M");
  EXPECT_EQ(p.detector.rows, 2167u);
  EXPECT_EQ(p.detector.cols, 2070u);
  EXPECT_DOUBLE_EQ(p.detector.pixel1_m, 75e-6);
  EXPECT_DOUBLE_EQ(p.dist_m, 0.1);
  EXPECT_DOUBLE_EQ(p.poni1_m, 0.08);
  EXPECT_DOUBLE_EQ(p.poni2_m, 0.07);
  EXPECT_DOUBLE_EQ(p.rot1_rad, 0.01);
  ASSERT_TRUE(p.wavelength_m.has_value());
  EXPECT_DOUBLE_EQ(*p.wavelength_m, 1e-10);
}

TEST(Poni, Version2GenericDetectorConfig) {
  const Poni p = parse_poni(R"(poni_version: 2
Detector: Detector
Detector_config: {"pixel1": 7.5e-05, "pixel2": 7.6e-05, "max_shape": [150, 170]}
Distance: 0.1
Poni1: 0.08
Poni2: 0.07
Rot1: 0
Rot2: 0
Rot3: 0
)",
                            "g.poni");
  EXPECT_DOUBLE_EQ(p.detector.pixel1_m, 75e-6);
  EXPECT_DOUBLE_EQ(p.detector.pixel2_m, 76e-6);
  EXPECT_EQ(p.detector.rows, 150u);
  EXPECT_EQ(p.detector.cols, 170u);
  EXPECT_FALSE(p.wavelength_m.has_value());
}

TEST(Poni, Version1PixelSizes) {
  const Poni p = parse_poni(R"(# version 1 file
PixelSize1: 0.000172
PixelSize2: 0.000172
Distance: 0.2
Poni1: 0.01
Poni2: 0.02
Rot1: 0.1
Rot2: 0.2
Rot3: 0.3
SplineFile: None
Wavelength: 1.0e-10
)",
                            "v1.poni");
  EXPECT_EQ(p.version, 1);
  EXPECT_DOUBLE_EQ(p.detector.pixel1_m, 172e-6);
  EXPECT_EQ(p.detector.rows, 0u) << "version 1 files carry no shape";
  EXPECT_DOUBLE_EQ(p.rot3_rad, 0.3);
}

TEST(Poni, RoundTripThroughFormat) {
  Poni p = parse_poni(kVersion2Named, "a.poni");
  p.rot2_rad = -0.123456789012345;
  const Poni q = parse_poni(format_poni(p), "b.poni");
  EXPECT_EQ(q.detector.name, p.detector.name);
  EXPECT_DOUBLE_EQ(q.rot2_rad, p.rot2_rad);
  EXPECT_DOUBLE_EQ(*q.wavelength_m, *p.wavelength_m);
}

TEST(Poni, MalformedLineNamesLine) {
  expect_poni_error("poni_version: 2\nDetector: Eiger4M\nthis line has no colon\n",
                    {"line 3", "key: value"});
}

TEST(Poni, BadNumberNamesLineAndKey) {
  expect_poni_error("Detector: Eiger4M\nDistance: 0.1\nPoni1: abc\nPoni2: 0\n",
                    {"line 3", "Poni1", "abc"});
}

TEST(Poni, MissingKeyIsNamed) {
  expect_poni_error("Detector: Eiger4M\nDistance: 0.1\nPoni1: 0.01\n", {"poni2", "missing"});
}

TEST(Poni, UnknownDetectorIsNamed) {
  expect_poni_error("Detector: Eiger99M\nDistance: 0.1\nPoni1: 0\nPoni2: 0\n",
                    {"line 1", "Eiger99M", "unknown detector"});
}

TEST(Poni, BadDetectorConfigJson) {
  expect_poni_error("Detector: Detector\nDetector_config: {pixel1: 1}\nDistance: 0.1\n",
                    {"line 2", "Detector_config", "JSON"});
}

TEST(Poni, NonPositiveDistance) {
  expect_poni_error("Detector: Eiger4M\nDistance: -1\nPoni1: 0\nPoni2: 0\n",
                    {"line 2", "Distance", "positive"});
}

TEST(Poni, NoPixelSize) { expect_poni_error("Distance: 0.1\nPoni1: 0\nPoni2: 0\n", {"pixel"}); }

TEST(Poni, UnreadableFileIsIoError) {
  try {
    read_poni("/nonexistent/dir/x.poni");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIo);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.poni"), std::string::npos);
  }
}

TEST(Poni, ReadsFileFromDisk) {
  const auto path = std::filesystem::temp_directory_path() / "azflow_poni_test.poni";
  std::ofstream(path) << kVersion2Named;
  EXPECT_EQ(read_poni(path).detector.name, "Eiger4M");
  std::filesystem::remove(path);
}

TEST(Detector, PyfaiSpellingsResolve) {
  for (const char* name : {"Eiger4M", "eiger_4m", "Eiger 4M", "EIGER4M"}) {
    auto d = find_detector(name);
    ASSERT_TRUE(d) << name;
    EXPECT_EQ(d->rows, 2167u);
  }
  auto cdte = find_detector("Pilatus 1M CdTe");
  ASSERT_TRUE(cdte);
  EXPECT_EQ(cdte->name, "PilatusCdTe1M");
  EXPECT_FALSE(find_detector("NoSuchDetector"));
}

TEST(Detector, TableHasTheIssueDetectors) {
  // Shapes and pixel sizes as pyFAI 0.21's detector classes report them (MAX_SHAPE, pixel1).
  struct Expect {
    const char* name;
    std::size_t rows, cols;
    double pixel_m;
  };
  const Expect expected[] = {
      {"Eiger500k", 514, 1030, 75e-6},   {"Eiger1M", 1065, 1030, 75e-6},
      {"Eiger9M", 3269, 3110, 75e-6},    {"Eiger16M", 4371, 4150, 75e-6},
      {"Eiger2_4M", 2162, 2068, 75e-6},  {"Eiger2_9M", 3262, 3108, 75e-6},
      {"Eiger2_16M", 4362, 4148, 75e-6}, {"Pilatus100k", 195, 487, 172e-6},
      {"Pilatus300k", 619, 487, 172e-6}, {"Pilatus1M", 1043, 981, 172e-6},
      {"Pilatus2M", 1679, 1475, 172e-6}, {"Pilatus6M", 2527, 2463, 172e-6},
  };
  for (const auto& e : expected) {
    auto d = find_detector(e.name);
    ASSERT_TRUE(d) << e.name;
    EXPECT_EQ(d->rows, e.rows) << e.name;
    EXPECT_EQ(d->cols, e.cols) << e.name;
    EXPECT_DOUBLE_EQ(d->pixel1_m, e.pixel_m) << e.name;
    EXPECT_DOUBLE_EQ(d->pixel2_m, e.pixel_m) << e.name;
  }
}

}  // namespace
}  // namespace azflow::integrate
