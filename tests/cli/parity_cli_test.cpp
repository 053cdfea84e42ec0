// `azflow integrate` against pyFAI 0.21.3 on the parity cases of issue 17
// (tests/cli/fixtures/parity/parity_ref.json, made by make_parity_fixtures.py there): named
// detectors' own masks on real DECTRIS files, pyFAI's validity rules for flat and dark, PONI v1
// generic detectors, int16/int64/float64 frames, sectors across +-180 deg and chi_rad. Each case
// runs the real binary and compares frame 0 with pyFAI: radial (and azimuthal) bin centres within
// 1e-3 of a bin, I within 1e-3 relative on every bin pyFAI counts (count > 0.5), and a bin pyFAI
// leaves empty must be empty (0) in azflow too.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "stages/integrate/detector.hpp"
#include "tests/common/command.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

namespace fs = std::filesystem;
using azflow::testing::H5File;
using azflow::testing::quote;

const fs::path kFixtures = fs::path(AZFLOW_CLI_FIXTURES);
const fs::path kRealData = fs::path(AZFLOW_REAL_DATA);

nlohmann::json load_fixture() {
  std::ifstream in(kFixtures / "parity" / "parity_ref.json");
  return nlohmann::json::parse(in);
}

nlohmann::json load_cases() { return load_fixture().at("cases"); }

// CRC-32 (IEEE 802.3, zlib's crc32) of `bytes`.
std::uint32_t crc32(const std::vector<std::uint8_t>& bytes) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (std::uint8_t b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// "real:<path>" lies under ../shared/real-data, "fixture:<path>" under tests/cli/fixtures.
fs::path resolve_input(const std::string& input) {
  const auto colon = input.find(':');
  const std::string where = input.substr(0, colon), rest = input.substr(colon + 1);
  return where == "real" ? kRealData / rest : kFixtures / rest;
}

// Options, each word shell-quoted (unit names hold parentheses); values naming "parity/..."
// files are relative to tests/cli/fixtures.
std::string resolve_options(const std::string& options) {
  std::string out;
  std::istringstream words(options);
  for (std::string w; words >> w;) {
    if (w.starts_with("parity/")) w = kFixtures.string() + "/" + w;
    out += " " + quote(w);
  }
  return out;
}

void expect_axis(const std::vector<double>& ref, const std::vector<double>& got, const char* what) {
  ASSERT_EQ(ref.size(), got.size()) << what;
  const double width = ref.size() > 1 ? ref[1] - ref[0] : 1.0;
  for (std::size_t i = 0; i < ref.size(); ++i)
    EXPECT_NEAR(got[i], ref[i], 1e-3 * std::fabs(width)) << what << " bin " << i;
}

void expect_intensity(const std::vector<double>& ref, const std::vector<double>& count,
                      const std::vector<double>& got) {
  ASSERT_LE(ref.size(), got.size());
  std::size_t compared = 0, bad = 0;
  for (std::size_t b = 0; b < ref.size(); ++b) {
    if (count[b] <= 0.5) {
      if (count[b] == 0 && got[b] != 0) ++bad;
      continue;
    }
    ++compared;
    const double err = std::fabs(got[b] - ref[b]) / std::max(std::fabs(ref[b]), 1e-30);
    if (err > 1e-3) {
      if (bad < 5) ADD_FAILURE() << "bin " << b << ": azflow " << got[b] << ", pyFAI " << ref[b];
      ++bad;
    }
  }
  EXPECT_GT(compared, ref.size() / 4);
  EXPECT_EQ(bad, 0u) << "bins differing from pyFAI, of " << ref.size();
}

// Every built-in detector's own mask equals pyFAI's detector class mask pixel for pixel.
TEST(ParityCliTest, DetectorMasksMatchPyFai) {
  for (const auto& d : load_fixture().at("detector_masks")) {
    const std::string name = d.at("name");
    SCOPED_TRACE(name);
    const auto spec = azflow::integrate::find_detector(name);
    ASSERT_TRUE(spec.has_value());
    EXPECT_EQ(spec->rows, d.at("shape")[0].get<std::size_t>());
    EXPECT_EQ(spec->cols, d.at("shape")[1].get<std::size_t>());
    std::vector<std::uint8_t> mask = azflow::integrate::detector_mask(*spec);
    if (mask.empty()) mask.assign(spec->pixels(), 0);
    std::size_t masked = 0;
    for (std::uint8_t m : mask) masked += m;
    EXPECT_EQ(masked, d.at("masked").get<std::size_t>());
    EXPECT_EQ(crc32(mask), d.at("crc32").get<std::uint32_t>());
  }
}

TEST(ParityCliTest, MatchesPyFaiOnEveryCase) {
  const fs::path dir = fs::temp_directory_path() / ("azflow_parity_" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (const auto& c : load_cases()) {
    const std::string name = c.at("name");
    SCOPED_TRACE(name);
    const fs::path input = resolve_input(c.at("input"));
    if (!fs::exists(input)) {
      std::cout << "[  SKIPPED ] " << name << ": " << input << " absent\n";
      continue;
    }
    const std::string output = (dir / (name + ".h5")).string();
    std::string args = "integrate " + quote(input.string()) + " --poni " +
                       quote((kFixtures / "parity" / c.at("poni").get<std::string>()).string()) +
                       resolve_options(c.at("options")) + " --quiet --overwrite -o " +
                       quote(output);
    if (c.contains("dataset")) args += " --dataset " + c.at("dataset").get<std::string>();
    const auto r = azflow::testing::run_command(std::string(AZFLOW_BIN) + " " + args);
    EXPECT_EQ(r.code, 0) << args << "\n" << r.output;
    if (r.code != 0) continue;
    H5File f(output);
    const auto axes = f.string_attr("/entry/integrate", "axes");
    ASSERT_FALSE(axes.empty());
    expect_axis(c.at("radial").get<std::vector<double>>(),
                f.doubles("/entry/integrate/" + axes.back()), "radial");
    if (c.contains("azimuthal")) {
      ASSERT_EQ(axes.size(), 3u);
      expect_axis(c.at("azimuthal").get<std::vector<double>>(),
                  f.doubles("/entry/integrate/" + axes[1]), "azimuthal");
    }
    expect_intensity(c.at("I").get<std::vector<double>>(), c.at("count").get<std::vector<double>>(),
                     f.doubles("/entry/integrate/I"));
  }
  fs::remove_all(dir);
}

}  // namespace

namespace {

// A sector across +-180 deg (lo > hi) is integrated (parity cases sector_wrap_*); its bounds must
// lie in [-180, 180] deg, and an unknown azimuthal unit is refused, each with exit 2.
TEST(ParityCliTest, AzimuthSectorBoundsOutsidePlusMinus180AndUnknownUnitsAreRefused) {
  const std::string out =
      (fs::temp_directory_path() / ("azflow_parity_wrap_" + std::to_string(getpid()) + ".h5"))
          .string();
  const std::string base =
      std::string(AZFLOW_BIN) + " integrate " + quote((kFixtures / "pilatus_master.h5").string()) +
      " --poni " + quote((kFixtures / "pilatus.poni").string()) + " --quiet -o " + quote(out);
  auto r = azflow::testing::run_command(base + " --azimuth-range 200 -150");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("must lie in [-180, 180]"), std::string::npos) << r.output;
  r = azflow::testing::run_command(base + " --azimuth-unit chi_grad");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("chi_deg or chi_rad"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
