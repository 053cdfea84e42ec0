// `azflow integrate --sigma-clip` and `--integrate-radial` against pyFAI 0.21.3's sigma_clip_ng
// and integrate_radial
// (tests/integrate/fixtures/sigma_clip_reference.h5, group /cli, made by
// make_sigma_clip_fixtures.py): for sigma clipping every frame's I, I_errors (pyFAI's sigma) and
// std within 1e-3 relative on the bins pyFAI counts, and count exactly (pyFAI's max(3, count) quirk
// aside, stages/integrate/sigma_clip.hpp).

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/common/command.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

namespace fs = std::filesystem;
using azflow::testing::H5File;
using azflow::testing::quote;

const fs::path kFixture = fs::path(AZFLOW_SIGMA_CLIP_FIXTURE);

class SigmaClipCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("azflow_sigma_clip_cli_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const H5File ref(kFixture.string());
    std::ofstream(dir_ / "geometry.poni") << ref.string_attr("/geometry", "poni").at(0);
  }
  void TearDown() override { fs::remove_all(dir_); }

  azflow::testing::CommandResult integrate(const std::string& options, const fs::path& out) {
    return azflow::testing::run_command(
        std::string(AZFLOW_BIN) + " integrate " + quote(kFixture.string()) +
        " --dataset /inputs/stack_u32 --poni " + quote((dir_ / "geometry.poni").string()) +
        " --quiet -o " + quote(out.string()) + " " + options);
  }

  fs::path dir_;
};

/// Row `row` of a (frames, bins) dataset.
std::vector<double> row_of(const H5File& f, const std::string& path, std::size_t row) {
  const std::vector<double> all = f.doubles(path);
  const std::size_t bins = f.dims(path).back();
  return {all.begin() + static_cast<std::ptrdiff_t>(row * bins),
          all.begin() + static_cast<std::ptrdiff_t>((row + 1) * bins)};
}

void expect_close(const std::vector<double>& ours, const std::vector<double>& ref,
                  const std::vector<double>& count, const std::string& what) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  std::size_t compared = 0;
  for (std::size_t b = 0; b < ref.size(); ++b) {
    if (count[b] <= 0) continue;
    ++compared;
    EXPECT_LE(std::fabs(ours[b] - ref[b]), 1e-3 * std::max(std::fabs(ref[b]), 1e-6))
        << what << " bin " << b << ": azflow " << ours[b] << ", pyFAI " << ref[b];
  }
  EXPECT_GE(compared, 10u) << what;
}

TEST_F(SigmaClipCliTest, MatchesPyfaiSigmaClipNgFrameByFrame) {
  const H5File ref(kFixture.string());
  for (const std::string name : {"poisson_default", "azimuthal_t3_i4_2th_pol"}) {
    const std::string g = "/cli/" + name;
    const fs::path out = dir_ / (name + ".h5");
    const auto r = integrate(ref.string_attr(g, "options").at(0), out);
    ASSERT_EQ(r.code, 0) << r.output;
    const H5File f(out.string());
    for (std::size_t k = 0; k < 2; ++k) {
      const std::string fr = g + "/frame_" + std::to_string(k);
      const std::vector<double> count = ref.doubles(fr + "/count");
      const std::string what = name + " frame " + std::to_string(k);
      expect_close(row_of(f, "/entry/integrate/I", k), ref.doubles(fr + "/I"), count, what + " I");
      expect_close(row_of(f, "/entry/integrate/I_errors", k), ref.doubles(fr + "/sigma"), count,
                   what + " sigma");
      expect_close(row_of(f, "/entry/integrate/std", k), ref.doubles(fr + "/std"), count,
                   what + " std");
      const std::vector<double> ours = row_of(f, "/entry/integrate/count", k);
      for (std::size_t b = 0; b < count.size(); ++b) {
        if (count[b] > 3 || count[b] == 0) {
          EXPECT_EQ(ours[b], count[b]) << what << " count bin " << b;
        } else {
          EXPECT_LE(ours[b], count[b]) << what << " count bin " << b;
        }
      }
    }
    EXPECT_TRUE(f.exists("/entry/process/pyfai_config"));
  }
}

// `azflow integrate --integrate-radial` against pyFAI 0.21.3's integrate_radial (chi_rad, bbox, a
// radial range): the chi axis within 1e-3 of a bin, I within 1e-3 relative where pyFAI counts.
TEST_F(SigmaClipCliTest, IntegrateRadialMatchesPyfai) {
  const H5File ref(kFixture.string());
  const std::string g = "/cli_radial/radial_chi_rad_2th";
  const fs::path out = dir_ / "radial.h5";
  const auto r = integrate(ref.string_attr(g, "options").at(0), out);
  ASSERT_EQ(r.code, 0) << r.output;
  const H5File f(out.string());
  const std::vector<double> chi = f.doubles("/entry/integrate/chi");
  const std::vector<double> ref_chi = ref.doubles(g + "/frame_0/chi");
  ASSERT_EQ(chi.size(), ref_chi.size());
  const double bin = ref_chi[1] - ref_chi[0];
  for (std::size_t b = 0; b < chi.size(); ++b) EXPECT_NEAR(chi[b], ref_chi[b], 1e-3 * bin);
  EXPECT_EQ(f.string_attr("/entry/integrate/chi", "units").at(0), "rad");
  EXPECT_EQ(f.dims("/entry/integrate/I"), (std::vector<hsize_t>{2, chi.size()}));
  for (std::size_t k = 0; k < 2; ++k) {
    const std::string fr = g + "/frame_" + std::to_string(k);
    expect_close(row_of(f, "/entry/integrate/I", k), ref.doubles(fr + "/I"),
                 ref.doubles(fr + "/count"), "integrate_radial frame " + std::to_string(k));
  }
  const auto bad = integrate("--integrate-radial --npt 30", dir_ / "bad.h5");
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--npt-azim"), std::string::npos) << bad.output;
}

TEST_F(SigmaClipCliTest, RefusesTwoDimensionsAndClippingOptionsAlone) {
  auto r = integrate("--sigma-clip --npt-rad 50 --npt-azim 8", dir_ / "a.h5");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("1D only"), std::string::npos) << r.output;
  r = integrate("--thres 3", dir_ / "b.h5");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--sigma-clip"), std::string::npos) << r.output;
  r = integrate("--sigma-clip --thres 0", dir_ / "c.h5");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--thres"), std::string::npos) << r.output;
}

}  // namespace
