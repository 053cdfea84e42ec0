// Option handling of `azflow integrate` without running it: CLI11 declarations, --frames ranges,
// the default dummy per dtype, and settings validation.

#include "cli/integrate_options.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "base/error.hpp"

namespace azflow::cli {
namespace {

/// Parses `args` (after "integrate") into options; throws CLI::ParseError on bad input.
IntegrateOptions parse(std::vector<std::string> args) {
  CLI::App app;
  IntegrateOptions options;
  add_integrate_options(app, options);
  args.insert(args.begin(), {"in.h5", "--poni", "g.poni", "-o", "out.h5"});
  std::vector<const char*> argv{"integrate"};
  for (const auto& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  return options;
}

TEST(IntegrateOptionsTest, DefaultsArePyFaiLike) {
  const IntegrateOptions o = parse({});
  const integrate::IntegrationSettings s = make_settings(o, DType::kUint32);
  EXPECT_EQ(s.npt_rad, 1000u);
  EXPECT_EQ(s.npt_azim, 0u);
  EXPECT_EQ(s.unit, integrate::RadialUnit::kQ_nm);
  EXPECT_EQ(s.split, integrate::PixelSplit::kNo);
  EXPECT_EQ(s.error_model, integrate::ErrorModel::kNone);
  EXPECT_TRUE(s.correct_solid_angle);
  EXPECT_FALSE(s.polarization_factor.has_value());
  EXPECT_EQ(s.dummy, 4294967295.0);
  EXPECT_FALSE(s.delta_dummy.has_value());
  EXPECT_EQ(s.normalization_factor, 1.0);
}

TEST(IntegrateOptionsTest, DefaultDummyFollowsTheDtype) {
  const IntegrateOptions o = parse({});
  EXPECT_EQ(make_settings(o, DType::kUint16).dummy, 65535.0);
  EXPECT_EQ(make_settings(o, DType::kUint8).dummy, 255.0);
  EXPECT_FALSE(make_settings(o, DType::kInt32).dummy.has_value());
  EXPECT_FALSE(make_settings(o, DType::kFloat32).dummy.has_value());
  EXPECT_FALSE(make_settings(parse({"--no-dummy"}), DType::kUint32).dummy.has_value());
  const auto s = make_settings(parse({"--dummy", "-1", "--delta-dummy", "0.5"}), DType::kFloat32);
  EXPECT_EQ(s.dummy, -1.0);
  EXPECT_EQ(s.delta_dummy, 0.5);
  EXPECT_THROW(parse({"--dummy", "1", "--no-dummy"}), CLI::ParseError);
}

TEST(IntegrateOptionsTest, EveryOptionReachesTheSettings) {
  const IntegrateOptions o = parse({"--npt-rad",
                                    "300",
                                    "--npt-azim",
                                    "72",
                                    "--unit",
                                    "2th_deg",
                                    "--split",
                                    "bbox",
                                    "--radial-range",
                                    "1",
                                    "30",
                                    "--azimuth-range",
                                    "-90",
                                    "90",
                                    "--error-model",
                                    "azimuthal",
                                    "--no-solid-angle",
                                    "--polarization-factor",
                                    "0.99",
                                    "--normalization-factor",
                                    "2.5",
                                    "--threads",
                                    "3",
                                    "--frames",
                                    "2:9"});
  const integrate::IntegrationSettings s = make_settings(o, DType::kUint16);
  EXPECT_EQ(s.npt_rad, 300u);
  EXPECT_EQ(s.npt_azim, 72u);
  EXPECT_EQ(s.unit, integrate::RadialUnit::k2Th_deg);
  EXPECT_EQ(s.split, integrate::PixelSplit::kBBox);
  EXPECT_EQ(s.radial_range, std::make_pair(1.0, 30.0));
  EXPECT_EQ(s.azimuth_range_deg, std::make_pair(-90.0, 90.0));
  EXPECT_EQ(s.error_model, integrate::ErrorModel::kAzimuthal);
  EXPECT_FALSE(s.correct_solid_angle);
  EXPECT_EQ(s.polarization_factor, 0.99);
  EXPECT_EQ(s.normalization_factor, 2.5);
  EXPECT_EQ(o.threads, 3u);
  const nlohmann::json j = settings_json(o, s);
  EXPECT_EQ(j["unit"], "2th_deg");
  EXPECT_EQ(j["method"][0], "bbox");
  EXPECT_EQ(j["radial_range"][1], 30.0);
  EXPECT_EQ(j["frames"], "2:9");
}

TEST(IntegrateOptionsTest, MethodSetsTheSplittingAsPyfaiNamesIt) {
  using integrate::PixelSplit;
  EXPECT_EQ(make_settings(parse({"--split", "full"}), DType::kUint32).split, PixelSplit::kFull);
  EXPECT_EQ(make_settings(parse({"--method", "full"}), DType::kUint32).split, PixelSplit::kFull);
  EXPECT_EQ(make_settings(parse({"--method", "full,csr,cython"}), DType::kUint32).split,
            PixelSplit::kFull);
  EXPECT_EQ(
      make_settings(parse({"--method", "(\"full\", \"csr\", \"cython\")"}), DType::kUint32).split,
      PixelSplit::kFull);
  EXPECT_EQ(make_settings(parse({"--method", "csr"}), DType::kUint32).split, PixelSplit::kBBox);
  EXPECT_EQ(make_settings(parse({"--method", "nosplit"}), DType::kUint32).split, PixelSplit::kNo);
}

TEST(IntegrateOptionsTest, InvalidValuesAreConfigErrorsNamingTheOption) {
  auto message = [](const std::vector<std::string>& args) -> std::string {
    try {
      make_settings(parse(args), DType::kUint32);
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kConfig);
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(message({"--unit", "q_furlong"}).find("--unit"), std::string::npos);
  EXPECT_NE(message({"--split", "pseudo"}).find("--split"), std::string::npos);
  EXPECT_NE(message({"--method", "pseudo"}).find("--method"), std::string::npos);
  EXPECT_THROW(parse({"--split", "bbox", "--method", "full"}), CLI::ParseError);
  EXPECT_NE(message({"--error-model", "gauss"}).find("--error-model"), std::string::npos);
  EXPECT_NE(message({"--npt", "0"}).find("--npt"), std::string::npos);
  EXPECT_NE(message({"--npt-rad", "10", "--npt-azim", "0"}).find("--npt-azim"), std::string::npos);
  EXPECT_NE(message({"--radial-range", "5", "1"}).find("radial"), std::string::npos);
  EXPECT_THROW(parse({"--npt", "10", "--npt-rad", "10"}), CLI::ParseError);
  EXPECT_THROW(parse({"--npt-azim", "10"}), CLI::ParseError);
  EXPECT_THROW(parse({"--radial-range", "1"}), CLI::ParseError);
}

TEST(IntegrateOptionsTest, FrameRanges) {
  auto range = [](const std::string& text) {
    const FrameRange r = parse_frame_range(text, 10);
    return std::make_pair(r.first, r.last);
  };
  EXPECT_EQ(range(""), std::make_pair(std::size_t{0}, std::size_t{10}));
  EXPECT_EQ(range("2:5"), std::make_pair(std::size_t{2}, std::size_t{5}));
  EXPECT_EQ(range("7:"), std::make_pair(std::size_t{7}, std::size_t{10}));
  EXPECT_EQ(range(":3"), std::make_pair(std::size_t{0}, std::size_t{3}));
  EXPECT_EQ(range("4"), std::make_pair(std::size_t{4}, std::size_t{5}));
  for (const char* bad : {"5:5", "6:2", "0:11", "10", "a:b", "1:2:3", "-1:4", " 1:2"}) {
    EXPECT_THROW(parse_frame_range(bad, 10), Error) << bad;
  }
}

}  // namespace
}  // namespace azflow::cli
