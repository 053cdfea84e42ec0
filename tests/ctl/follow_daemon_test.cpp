// `azflowctl enqueue --follow` end to end: a real azflowd integrates a series that an h5py writer
// (tests/cli/grow_series.py) is still writing, frame by frame and file by file. The output must
// equal `azflow integrate` on the finished series (the committed fixture, same frames); when the
// writer stops short of nimages, the idle timeout ends the job with the frames seen and the
// missing ones as failed frames naming the timeout.

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "tests/daemon/daemon_test_support.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

using namespace azflow::testing;

const std::string kPoni = (kCliFixtures / "pilatus.poni").string();
const std::string kSettings = " --npt 200 --unit q_nm^-1 --error-model poisson";

class FollowDaemonTest : public ::testing::Test {
 protected:
  TempSpace space_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<ControlClient> client_;

  void SetUp() override {
    daemon_ = std::make_unique<DaemonProcess>(space_, 1);
    client_ = std::make_unique<ControlClient>(daemon_->endpoint());
    ASSERT_TRUE(client_->wait_ready()) << daemon_->log();
    fs::create_directories(space_.path("series"));
  }

  /// Starts the writer in the background (the series appears in series/).
  void start_writer(int nimages) const {
    const std::string cmd = "/usr/bin/python3 " + quote(std::string(AZFLOW_GROW_SERIES)) + " " +
                            quote(kCliFixtures.string()) + " " +
                            quote(space_.path("series").string()) + " " + std::to_string(nimages) +
                            " > " + quote(space_.path("writer.log").string()) + " 2>&1 &";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  void wait_writer() const {
    for (int i = 0; i < 300 && !fs::exists(space_.path("series/done")); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(fs::exists(space_.path("series/done"))) << "writer did not finish";
  }

  /// azflowctl with `args`; exit code and stdout + stderr.
  CommandResult ctl(const std::string& args) const {
    return run_command("cd " + quote(space_.root().string()) + " && " + AZFLOWCTL_BIN +
                       " --timeout 30 --endpoint " + quote(daemon_->endpoint()) + " " + args +
                       " </dev/null");
  }

  /// Enqueues the growing series with --follow and returns the job id.
  std::int64_t enqueue_follow(const std::string& extra) const {
    const CommandResult r = ctl("enqueue series/pilatus_master.h5 --follow --poni " + quote(kPoni) +
                                kSettings + " " + extra);
    EXPECT_EQ(r.code, 0) << r.output;
    return std::atoll(r.output.c_str());
  }

  json status(std::int64_t id) const {
    const CommandResult r = ctl("--json status " + std::to_string(id));
    EXPECT_EQ(r.code, 0) << r.output;
    return json::parse(r.output, nullptr, false).value("job", json::object());
  }

  /// `azflow integrate` of the finished fixture series into `name`.
  std::string reference(const std::string& name) const {
    const std::string out = space_.path(name).string();
    const CommandResult r =
        run_command(std::string(AZFLOW_BIN) + " integrate " +
                    quote((kCliFixtures / "pilatus_master.h5").string()) + " --poni " +
                    quote(kPoni) + kSettings + " --quiet -o " + quote(out));
    EXPECT_EQ(r.code, 0) << r.output;
    return out;
  }
};

TEST_F(FollowDaemonTest, GrowingSeriesEqualsTheFinishedFile) {
  start_writer(3);
  const std::int64_t id = enqueue_follow("--follow-timeout 10 -o " + quote(space_.path("f.h5")));
  ASSERT_GT(id, 0);
  const CommandResult w = ctl("wait --timeout 60 " + std::to_string(id));
  EXPECT_EQ(w.code, 0) << w.output << daemon_->log();
  wait_writer();
  const json j = status(id);
  EXPECT_EQ(j["frames_total"], 3) << j;
  EXPECT_EQ(j["frames_failed"], 0) << j;
  EXPECT_EQ(j["spec"]["follow"], json::parse(R"({"idle_timeout_s": 10.0})")) << j;
  expect_same_as_reference(space_.path("f.h5").string(), reference("ref.h5"));
}

TEST_F(FollowDaemonTest, IdleTimeoutFailsTheFramesNeverWritten) {
  start_writer(5);  // promises 5 frames, writes 3
  const std::int64_t id = enqueue_follow("--follow-timeout 1.5 -o " + quote(space_.path("f.h5")));
  ASSERT_GT(id, 0);
  const CommandResult w = ctl("wait --timeout 60 " + std::to_string(id));
  EXPECT_EQ(w.code, 3) << w.output << daemon_->log();  // succeeded with failed frames
  wait_writer();
  const json j = status(id);
  EXPECT_EQ(j["frames_total"], 5) << j;
  EXPECT_EQ(j["frames_failed"], 2) << j;
  ASSERT_EQ(j["frame_errors"].size(), 2u) << j;
  EXPECT_EQ(j["frame_errors"][0]["frame"], 3);
  const std::string reason = j["frame_errors"][0]["reason"];
  EXPECT_NE(reason.find("not written within the follow idle timeout"), std::string::npos) << reason;
  H5File f(space_.path("f.h5").string());
  H5File ref(reference("ref.h5"));
  const auto I = f.doubles("/entry/integrate/I");
  const auto I_ref = ref.doubles("/entry/integrate/I");
  ASSERT_EQ(I.size(), 5u * 200u);
  for (std::size_t i = 0; i < I_ref.size(); ++i) {
    if (!(std::isnan(I[i]) && std::isnan(I_ref[i]))) {
      EXPECT_EQ(I[i], I_ref[i]) << i;
    }
  }
  EXPECT_TRUE(std::isnan(I[3 * 200 + 50]));
}

TEST_F(FollowDaemonTest, FollowJobsStayOnThisNode) {
  const CommandResult r = ctl("enqueue " + quote((kCliFixtures / "pilatus_master.h5").string()) +
                              " --follow --nodes all --poni " + quote(kPoni));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("follow job runs on this node only"), std::string::npos) << r.output;
}

}  // namespace
