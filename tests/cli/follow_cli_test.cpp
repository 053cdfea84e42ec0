// `azflow integrate --follow` on a series still being written: a separate writer process (h5py)
// publishes an EIGER-layout master, then appends frames to the first data file and adds the
// second one while azflow runs. The result must equal `azflow integrate` on the finished series
// (the committed fixture holding the same frames); an idle timeout must end the run with the
// frames seen, the missing ones as failed rows and exit code 4.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/common/command.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

namespace fs = std::filesystem;
using azflow::testing::CommandResult;
using azflow::testing::H5File;
using azflow::testing::quote;

const fs::path kFixtures = fs::path(AZFLOW_CLI_FIXTURES);
const std::string kMaster = (kFixtures / "pilatus_master.h5").string();
const std::string kPoni = (kFixtures / "pilatus.poni").string();

class FollowCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("azflow_follow_cli_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "series");
  }
  void TearDown() override { fs::remove_all(dir_); }

  /// Starts the writer in the background; the series appears in dir_/series.
  void start_writer(int nimages) const {
    const std::string cmd = "/usr/bin/python3 " + quote(std::string(AZFLOW_GROW_SERIES)) + " " +
                            quote(kFixtures.string()) + " " + quote((dir_ / "series").string()) +
                            " " + std::to_string(nimages) + " > " +
                            quote((dir_ / "writer.log").string()) + " 2>&1 &";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  void wait_writer() const {
    for (int i = 0; i < 300 && !fs::exists(dir_ / "series" / "done"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(fs::exists(dir_ / "series" / "done"))
        << "writer did not finish; see " << dir_ / "writer.log";
  }

  /// `azflow integrate` of `input` into `output` with fixed settings plus `extra`.
  static CommandResult integrate(const std::string& input, const std::string& output,
                                 const std::string& extra) {
    return azflow::testing::run_command(
        std::string(AZFLOW_BIN) + " integrate " + quote(input) + " --poni " + quote(kPoni) +
        " --npt 200 --error-model poisson --threads 2 --quiet -o " + quote(output) + " " + extra);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

TEST_F(FollowCliTest, GrowingSeriesEqualsTheFinishedFile) {
  start_writer(3);
  const auto t0 = std::chrono::steady_clock::now();
  const CommandResult r = integrate((dir_ / "series" / "pilatus_master.h5").string(),
                                    path("follow.h5"), "--follow --follow-timeout 10");
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(r.code, 0) << r.output;
  wait_writer();
  // the writer takes 1.5 s from the master to the last frame: azflow waited for it
  EXPECT_GE(took, std::chrono::milliseconds(1200));
  const CommandResult ref = integrate(kMaster, path("ref.h5"), "");
  ASSERT_EQ(ref.code, 0) << ref.output;
  H5File f(path("follow.h5"));
  H5File g(path("ref.h5"));
  EXPECT_EQ(f.dims("/entry/integrate/I"), (std::vector<hsize_t>{3, 200}));
  EXPECT_EQ(f.doubles("/entry/integrate/I"), g.doubles("/entry/integrate/I"));
  EXPECT_EQ(f.doubles("/entry/integrate/I_errors"), g.doubles("/entry/integrate/I_errors"));
  EXPECT_EQ(f.doubles("/entry/process/frames_failed"), std::vector<double>{0});
}

TEST_F(FollowCliTest, IdleTimeoutKeepsTheFramesSeenAndExitsWith4) {
  start_writer(5);  // promises 5 frames, writes 3
  const CommandResult r = integrate((dir_ / "series" / "pilatus_master.h5").string(),
                                    path("follow.h5"), "--follow --follow-timeout 1.5");
  EXPECT_EQ(r.code, 4) << r.output;
  EXPECT_NE(r.output.find("no new frame for 1.5 s"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("3:5 never written"), std::string::npos) << r.output;
  wait_writer();
  const CommandResult ref = integrate(kMaster, path("ref.h5"), "");
  ASSERT_EQ(ref.code, 0) << ref.output;
  H5File f(path("follow.h5"));
  H5File g(path("ref.h5"));
  ASSERT_EQ(f.dims("/entry/integrate/I"), (std::vector<hsize_t>{5, 200}));
  const auto intensity = f.doubles("/entry/integrate/I");
  const auto reference = g.doubles("/entry/integrate/I");
  EXPECT_EQ(std::vector<double>(intensity.begin(), intensity.begin() + 600), reference);
  EXPECT_TRUE(std::isnan(intensity[3 * 200 + 50]));
  EXPECT_TRUE(std::isnan(intensity[4 * 200 + 50]));
  EXPECT_EQ(f.doubles("/entry/process/failed_frames/frame"), (std::vector<double>{3, 4}));
  const auto reason = f.strings("/entry/process/failed_frames/reason");
  ASSERT_EQ(reason.size(), 2u);
  EXPECT_NE(reason[0].find("not written within --follow-timeout"), std::string::npos) << reason[0];
}

TEST_F(FollowCliTest, FollowTimeoutNeedsFollowAndFollowRefusesStreams) {
  const CommandResult a = integrate(kMaster, path("a.h5"), "--follow-timeout 3");
  EXPECT_EQ(a.code, 2) << a.output;
  const CommandResult b = azflow::testing::run_command(
      std::string(AZFLOW_BIN) + " integrate --stream tcp://127.0.0.1:1 --follow -o " +
      quote(path("b.h5")));
  EXPECT_EQ(b.code, 2) << b.output;
  EXPECT_NE(b.output.find("does not apply to --stream"), std::string::npos) << b.output;
}

}  // namespace
