// End-to-end tests of `azflow integrate`: the real binary on a small committed Eiger-style
// dataset (tests/cli/fixtures, made by make_fixtures.py), checked against pyFAI 0.21's
// integrate1d of the same frames, plus every bad input the tool must refuse cleanly.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/common/command.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

namespace fs = std::filesystem;
using azflow::testing::H5File;

const fs::path kFixtures = fs::path(AZFLOW_CLI_FIXTURES);
const std::string kMaster = (kFixtures / "pilatus_master.h5").string();
const std::string kPoni = (kFixtures / "pilatus.poni").string();

/// Exit code and combined stdout + stderr of one run.
using azflow::testing::CommandResult;
using azflow::testing::quote;

/// Runs the azflow binary with `args` (already shell-quoted where needed).
CommandResult run_azflow(const std::string& args) {
  return azflow::testing::run_command(std::string(AZFLOW_BIN) + " " + args);
}

class IntegrateCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("azflow_cli_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string out(const std::string& name = "out.h5") const { return (dir_ / name).string(); }

  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }

  /// `azflow integrate` on the fixture with the reference's settings plus `extra`.
  CommandResult integrate(const std::string& extra, const std::string& output) const {
    return run_azflow("integrate " + quote(kMaster) + " --poni " + quote(kPoni) +
                      " --npt 200 --unit q_nm^-1 --error-model poisson --quiet -o " +
                      quote(output) + " " + extra);
  }

  fs::path dir_;
};

/// Fails unless `output` contains `needle`.
void expect_contains(const CommandResult& r, const std::string& needle) {
  EXPECT_NE(r.output.find(needle), std::string::npos) << "expected '" << needle << "' in:\n"
                                                      << r.output;
}

/// Relative errors of candidate vs reference on bins with count > 0.
std::vector<double> relative_errors(const std::vector<double>& ref, const std::vector<double>& cand,
                                    const std::vector<double>& count) {
  std::vector<double> errors;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    if (count[i] <= 0) continue;
    errors.push_back(ref[i] == 0 ? std::abs(cand[i])
                                 : std::abs(cand[i] - ref[i]) / std::abs(ref[i]));
  }
  return errors;
}

void expect_close_to_pyfai(const std::vector<double>& ref, const std::vector<double>& cand,
                           const std::vector<double>& count, const char* what) {
  ASSERT_EQ(ref.size(), cand.size()) << what;
  std::vector<double> errors = relative_errors(ref, cand, count);
  ASSERT_GT(errors.size(), ref.size() / 4) << what;  // a small detector leaves cake bins empty
  std::sort(errors.begin(), errors.end());
  EXPECT_LE(errors.back(), 1e-3) << what << ": max relative error";
  EXPECT_LE(errors[errors.size() / 2], 1e-5) << what << ": median relative error";
}

TEST_F(IntegrateCliTest, MatchesPyFaiOnAnEigerStyleSeries) {
  const CommandResult r = integrate("", out());
  ASSERT_EQ(r.code, 0) << r.output;
  H5File ref((kFixtures / "pilatus_ref.h5").string());
  H5File f(out());
  EXPECT_EQ(f.dims("/entry/integrate/I"), (std::vector<hsize_t>{3, 200}));
  const auto count = ref.doubles("/entry/integrate/count");
  expect_close_to_pyfai(ref.doubles("/entry/integrate/I"), f.doubles("/entry/integrate/I"), count,
                        "I");
  expect_close_to_pyfai(ref.doubles("/entry/integrate/sigma"),
                        f.doubles("/entry/integrate/I_errors"), count, "sigma");
  const auto q_ref = ref.doubles("/entry/integrate/radial");
  const auto q = f.doubles("/entry/integrate/q");
  ASSERT_EQ(q.size(), q_ref.size());
  const double width = q_ref[1] - q_ref[0];
  for (std::size_t i = 0; i < q.size(); ++i) EXPECT_NEAR(q[i], q_ref[i], 1e-3 * width);
}

/// Every case of pilatus_ref.h5 (make_fixtures.py REFERENCE_CASES), run with its own options:
/// dark (.npy), flat (HDF5 ::path), polarization, bbox splitting, other units, a 2D cake.
TEST_F(IntegrateCliTest, MatchesPyFaiForEveryReferenceCase) {
  H5File ref((kFixtures / "pilatus_ref.h5").string());
  for (const std::string name : {"integrate", "bbox_dark_flat_pol", "cake"}) {
    SCOPED_TRACE(name);
    const std::string group = "/entry/" + name;
    const auto attr = ref.string_attr(group, "azflow_options");
    ASSERT_EQ(attr.size(), 1u);
    std::string options = " " + attr[0];
    for (std::size_t pos = 0; (pos = options.find(" pilatus_", pos)) != std::string::npos;) {
      options.insert(pos + 1, kFixtures.string() + "/");
      pos += kFixtures.string().size() + 2;
    }
    const std::string output = out(name + ".h5");
    const CommandResult r = run_azflow("integrate " + quote(kMaster) + " --poni " + quote(kPoni) +
                                       options + " --quiet -o " + quote(output));
    ASSERT_EQ(r.code, 0) << options << "\n" << r.output;
    H5File f(output);
    const auto count = ref.doubles(group + "/count");
    expect_close_to_pyfai(ref.doubles(group + "/I"), f.doubles("/entry/integrate/I"), count, "I");
    if (ref.exists(group + "/sigma")) {
      expect_close_to_pyfai(ref.doubles(group + "/sigma"), f.doubles("/entry/integrate/I_errors"),
                            count, "sigma");
    }
    const auto axes = f.string_attr("/entry/integrate", "axes");
    ASSERT_FALSE(axes.empty());
    const auto radial = f.doubles("/entry/integrate/" + axes.back());
    const auto radial_ref = ref.doubles(group + "/radial");
    ASSERT_EQ(radial.size(), radial_ref.size());
    const double width = radial_ref[1] - radial_ref[0];
    for (std::size_t i = 0; i < radial.size(); ++i) {
      EXPECT_NEAR(radial[i], radial_ref[i], 1e-3 * width) << i;
    }
  }
}

TEST_F(IntegrateCliTest, WritesNexusMetadataAndSums) {
  const CommandResult r = integrate("", out());
  ASSERT_EQ(r.code, 0) << r.output;
  H5File f(out());
  EXPECT_EQ(f.string_attr("/", "default"), std::vector<std::string>{"entry"});
  EXPECT_EQ(f.string_attr("/entry", "default"), std::vector<std::string>{"integrate"});
  EXPECT_EQ(f.string_attr("/entry/integrate", "axes"),
            (std::vector<std::string>{"frame_index", "q"}));
  EXPECT_EQ(f.string_attr("/entry/integrate/q", "units"), std::vector<std::string>{"nm^-1"});
  EXPECT_EQ(f.doubles("/entry/integrate/q_edges").size(), 201u);
  EXPECT_EQ(f.strings("/entry/process/program"), std::vector<std::string>{"azflow"});
  const auto poni = f.strings("/entry/process/parameters/poni");
  ASSERT_EQ(poni.size(), 1u);
  EXPECT_NE(poni[0].find("Pilatus100k"), std::string::npos);
  const auto input = f.strings("/entry/process/parameters/input");
  ASSERT_EQ(input.size(), 1u);
  EXPECT_NE(input[0].find("pilatus_master.h5"), std::string::npos);
  EXPECT_EQ(f.strings("/entry/process/parameters/error_model"),
            std::vector<std::string>{"poisson"});
  // the dataset-wide sum: I = sum_signal / sum_normalization
  const auto signal = f.doubles("/entry/sum/sum_signal");
  const auto norm = f.doubles("/entry/sum/sum_normalization");
  const auto intensity = f.doubles("/entry/sum/I");
  const auto count = f.doubles("/entry/sum/sum_count");
  ASSERT_EQ(signal.size(), 200u);
  for (std::size_t i = 0; i < 200; ++i) {
    if (count[i] > 0) {
      EXPECT_NEAR(intensity[i], signal[i] / norm[i], 1e-4 * intensity[i]);
    }
  }
  EXPECT_FALSE(fs::exists(out() + ".partial"));
}

TEST_F(IntegrateCliTest, ThreadCountDoesNotChangeTheResult) {
  ASSERT_EQ(integrate("--threads 1", out("one.h5")).code, 0);
  ASSERT_EQ(integrate("--threads 3", out("three.h5")).code, 0);
  H5File a(out("one.h5"));
  H5File b(out("three.h5"));
  EXPECT_EQ(a.doubles("/entry/integrate/I"), b.doubles("/entry/integrate/I"));
  EXPECT_EQ(a.doubles("/entry/sum/sum_signal"), b.doubles("/entry/sum/sum_signal"));
}

TEST_F(IntegrateCliTest, FrameSubrangeKeepsInputIndexes) {
  ASSERT_EQ(integrate("", out("all.h5")).code, 0);
  const CommandResult r = integrate("--frames 1:3", out());
  ASSERT_EQ(r.code, 0) << r.output;
  H5File all(out("all.h5"));
  H5File part(out());
  EXPECT_EQ(part.doubles("/entry/integrate/frame_index"), (std::vector<double>{1, 2}));
  const auto full = all.doubles("/entry/integrate/I");
  EXPECT_EQ(part.doubles("/entry/integrate/I"),
            std::vector<double>(full.begin() + 200, full.end()));
}

TEST_F(IntegrateCliTest, CakeHasChiAxis) {
  const CommandResult r = run_azflow("integrate " + quote(kMaster) + " --poni " + quote(kPoni) +
                                     " --npt-rad 100 --npt-azim 36 --unit 2th_deg --split bbox "
                                     "--quiet -o " +
                                     quote(out()));
  ASSERT_EQ(r.code, 0) << r.output;
  H5File f(out());
  EXPECT_EQ(f.dims("/entry/integrate/I"), (std::vector<hsize_t>{3, 36, 100}));
  EXPECT_EQ(f.string_attr("/entry/integrate", "axes"),
            (std::vector<std::string>{"frame_index", "chi", "2th"}));
  EXPECT_EQ(f.string_attr("/entry/integrate/2th", "units"), std::vector<std::string>{"deg"});
  EXPECT_EQ(f.string_attr("/entry/integrate/chi", "units"), std::vector<std::string>{"deg"});
  EXPECT_FALSE(f.exists("/entry/integrate/I_errors"));
}

TEST_F(IntegrateCliTest, CorruptFrameIsRecordedAndExitCodeIs3) {
  const std::string corrupt = (kFixtures / "corrupt.h5").string();
  const CommandResult r = run_azflow("integrate " + quote(corrupt) + " --poni " + quote(kPoni) +
                                     " --npt 200 -o " + quote(out()));
  EXPECT_EQ(r.code, 3) << r.output;
  expect_contains(r, "1 of 3 frames failed");
  expect_contains(r, "corrupt.h5");
  H5File f(out());
  EXPECT_EQ(f.doubles("/entry/process/failed_frames/frame"), std::vector<double>{1});
  const auto reason = f.strings("/entry/process/failed_frames/reason");
  ASSERT_EQ(reason.size(), 1u);
  EXPECT_NE(reason[0].find("frame 1"), std::string::npos) << reason[0];
  const auto intensity = f.doubles("/entry/integrate/I");
  EXPECT_TRUE(std::isnan(intensity[200 + 50]));
  EXPECT_FALSE(std::isnan(intensity[50]));
  EXPECT_FALSE(std::isnan(intensity[400 + 50]));
}

TEST_F(IntegrateCliTest, MaskFileIsCombinedWithPixelMask) {
  // a mask of the right shape that masks nothing leaves the result unchanged
  std::string npy = "\x93NUMPY\x01";
  npy += '\0';
  std::string header = "{'descr': '|u1', 'fortran_order': False, 'shape': (195, 487), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  npy += static_cast<char>(header.size());
  npy += '\0';
  const std::string mask = write("mask.npy", npy + header + std::string(195 * 487, '\0'));
  ASSERT_EQ(integrate("", out("plain.h5")).code, 0);
  const CommandResult r = integrate("--mask " + quote(mask), out());
  ASSERT_EQ(r.code, 0) << r.output;
  H5File a(out("plain.h5"));
  H5File b(out());
  EXPECT_EQ(a.doubles("/entry/integrate/I"), b.doubles("/entry/integrate/I"));
  // without the detector's pixel_mask, the gap pixels are still dropped by the dummy value but
  // dead pixels count: the result changes
  ASSERT_EQ(integrate("--no-file-mask", out("nomask.h5")).code, 0);
  H5File c(out("nomask.h5"));
  EXPECT_NE(a.doubles("/entry/sum/sum_count"), c.doubles("/entry/sum/sum_count"));
}

// ---------------------------------------------------------------- bad inputs

TEST_F(IntegrateCliTest, MalformedPoni) {
  const std::string poni = write("bad.poni",
                                 "poni_version: 2\nDetector: Pilatus100k\n"
                                 "Distance: not-a-number\nPoni1: 0.01\nPoni2: 0.01\n");
  const CommandResult r =
      run_azflow("integrate " + quote(kMaster) + " --poni " + quote(poni) + " -o " + quote(out()));
  EXPECT_EQ(r.code, 2) << r.output;
  expect_contains(r, "azflow: ");
  expect_contains(r, "bad.poni");
  EXPECT_FALSE(fs::exists(out()));
}

TEST_F(IntegrateCliTest, UnknownDetectorInPoni) {
  const std::string poni = write("unknown.poni",
                                 "poni_version: 2\nDetector: FooBar9000\n"
                                 "Detector_config: {}\nDistance: 0.1\n"
                                 "Poni1: 0.01\nPoni2: 0.01\nRot1: 0\nRot2: 0\n"
                                 "Rot3: 0\nWavelength: 1e-10\n");
  const CommandResult r =
      run_azflow("integrate " + quote(kMaster) + " --poni " + quote(poni) + " -o " + quote(out()));
  EXPECT_NE(r.code, 0);
  expect_contains(r, "FooBar9000");
}

TEST_F(IntegrateCliTest, FrameShapeDiffersFromDetector) {
  const std::string poni = write("p1m.poni",
                                 "poni_version: 2\nDetector: Pilatus1M\n"
                                 "Detector_config: {}\nDistance: 0.1\n"
                                 "Poni1: 0.01\nPoni2: 0.01\nRot1: 0\nRot2: 0\n"
                                 "Rot3: 0\nWavelength: 1e-10\n");
  const CommandResult r =
      run_azflow("integrate " + quote(kMaster) + " --poni " + quote(poni) + " -o " + quote(out()));
  EXPECT_EQ(r.code, 1) << r.output;
  expect_contains(r, "(195, 487)");
  expect_contains(r, "Pilatus1M");
  expect_contains(r, "pilatus_master.h5");
}

TEST_F(IntegrateCliTest, MissingDataset) {
  const CommandResult r = integrate("--dataset /nope", out());
  EXPECT_NE(r.code, 0);
  EXPECT_LT(r.code, 128) << "crashed: " << r.output;
  expect_contains(r, "/nope");
}

TEST_F(IntegrateCliTest, MissingInputFile) {
  const std::string missing = (dir_ / "missing_master.h5").string();
  const CommandResult r =
      run_azflow("integrate " + quote(missing) + " --poni " + quote(kPoni) + " -o " + quote(out()));
  EXPECT_EQ(r.code, 1) << r.output;
  expect_contains(r, "missing_master.h5");
}

TEST_F(IntegrateCliTest, ZeroBins) {
  const CommandResult r = run_azflow("integrate " + quote(kMaster) + " --poni " + quote(kPoni) +
                                     " --npt 0 -o " + quote(out()));
  EXPECT_EQ(r.code, 2) << r.output;
  expect_contains(r, "--npt");
}

TEST_F(IntegrateCliTest, ExistingOutputNeedsOverwrite) {
  const std::string existing = write("out.h5", "precious");
  const CommandResult r = integrate("", existing);
  EXPECT_EQ(r.code, 2) << r.output;
  expect_contains(r, existing);
  expect_contains(r, "--overwrite");
  EXPECT_EQ(fs::file_size(existing), 8u);
  EXPECT_EQ(integrate("--overwrite", existing).code, 0);
  EXPECT_GT(fs::file_size(existing), 8u);
}

TEST_F(IntegrateCliTest, MaskOfWrongShape) {
  const std::string mask = (kFixtures / "mask_wrong_shape.npy").string();
  const CommandResult r = integrate("--mask " + quote(mask), out());
  EXPECT_NE(r.code, 0);
  EXPECT_LT(r.code, 128) << "crashed: " << r.output;
  expect_contains(r, "mask_wrong_shape.npy");
  expect_contains(r, "(10, 10)");
  expect_contains(r, "(195, 487)");
}

TEST_F(IntegrateCliTest, BadOptionValues) {
  EXPECT_EQ(integrate("--unit furlongs", out()).code, 2);
  expect_contains(integrate("--split pseudo", out()), "--split");
  EXPECT_EQ(integrate("--frames 5:9", out()).code, 2);
  EXPECT_EQ(integrate("--polarization-factor 3", out()).code, 2);
  EXPECT_EQ(run_azflow("integrate --poni " + quote(kPoni)).code, 2);  // no input, no output
  EXPECT_FALSE(fs::exists(out()));
}

TEST_F(IntegrateCliTest, VersionAndHelp) {
  const CommandResult version = run_azflow("--version");
  EXPECT_EQ(version.code, 0);
  expect_contains(version, "azflow 0.");
  const CommandResult help = run_azflow("integrate --help");
  EXPECT_EQ(help.code, 0);
  expect_contains(help, "Exit codes");
  expect_contains(help, "--npt-azim");
}

}  // namespace
