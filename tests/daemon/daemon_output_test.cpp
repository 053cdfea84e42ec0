// azflowd's result sink end to end (daemon/result_sink.hpp): a large 2D job's output is assembled
// off the daemon's main loop, so the control endpoint answers throughout and `azflowctl wait`
// (which gives up after 3 s without an answer) sees the job succeed; a failed frame's reason names
// the frame's own file (daemon/frame_origin.hpp).

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>
#include <vector>

#include "tests/daemon/daemon_test_support.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

using namespace azflow::testing;

constexpr int kFrames = 300;
constexpr int kRadial = 500, kAzimuthal = 180;  // 90,000 bins: 720 kB per output row (I, sigma)

/// What one `list` poll saw: its latency, and whether the job had every frame done but was not
/// yet final (its output being assembled).
struct Poll {
  double latency_ms = 0;
  bool assembling = false;
};

/// Polls `list` every 20 ms from its own client until `stop`, recording each answer's latency
/// (a request that gets no answer within 10 s counts as 10 s).
std::vector<Poll> poll_list(const std::string& endpoint, std::int64_t id,
                            const std::atomic<bool>& stop) {
  ControlClient client(endpoint);
  std::vector<Poll> polls;
  while (!stop.load()) {
    const auto t0 = Clock::now();
    const json r = client.call({{"verb", "list"}});
    Poll p{std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), false};
    if (r.is_null()) p.latency_ms = 10000;
    for (const json& job : r.is_object() ? r["result"].value("jobs", json::array()) : json()) {
      if (job.value("job_id", std::int64_t{0}) == id) {
        p.assembling = job.value("state", "") == "running" &&
                       job.value("frames_done", 0) + job.value("frames_failed", 0) == kFrames;
      }
    }
    polls.push_back(p);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return polls;
}

TEST(DaemonOutputTest, WaitSucceedsAndListAnswersWithin200msWhileA2DOutputIsAssembled) {
  TempSpace space;
  const std::string master = make_series(space, "cake", kFrames);
  const std::string warm = make_series(space, "warm", 4);
  const std::string out = space.path("cake.h5").string();
  DaemonProcess daemon(space, 2, "[rings]\nresults_slots = 16\n");
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready());
  const auto cake = [&](const std::string& input, const std::string& output) {
    json spec = job_spec({input}, output);
    spec["settings"]["npt_rad"] = kRadial;
    spec["settings"]["npt_azim"] = kAzimuthal;
    return enqueue(client, spec);
  };
  // a first small job of the same shape brings the pipeline up (rings sized, stages started): the
  // polls below measure a serving daemon, not its start-up
  const std::int64_t first = cake(warm, space.path("warm.h5").string());
  ASSERT_EQ(wait_job(client, first).value("state", ""), "succeeded") << daemon.log();
  const std::int64_t id = cake(master, out);
  ASSERT_GT(id, 0) << daemon.log();
  std::atomic<bool> stop{false};
  std::vector<Poll> polls;
  std::thread poller([&] { polls = poll_list(daemon.endpoint(), id, stop); });
  const CommandResult wait =
      run_command(std::string(AZFLOWCTL_BIN) + " --endpoint " + quote(daemon.endpoint()) +
                  " wait " + std::to_string(id) + " --interval 0.05 --timeout 300");
  stop = true;
  poller.join();
  EXPECT_EQ(wait.code, 0) << wait.output << daemon.log();
  ASSERT_FALSE(polls.empty());
  const auto slowest =
      std::max_element(polls.begin(), polls.end(),
                       [](const Poll& a, const Poll& b) { return a.latency_ms < b.latency_ms; });
  const auto assembling =
      std::count_if(polls.begin(), polls.end(), [](const Poll& p) { return p.assembling; });
  std::printf("%zu list polls, %td while the output was assembled, slowest %.1f ms\n", polls.size(),
              assembling, slowest->latency_ms);
  EXPECT_LE(slowest->latency_ms, 200.0) << polls.size() << " polls";
  // the polls covered the assembly: several answered while every frame was in, not yet final
  EXPECT_GE(assembling, 3) << daemon.log();
  EXPECT_EQ(job_status(client, id).value("state", ""), "succeeded");
  H5File f(out);
  const auto I = f.doubles("/entry/integrate/I");
  ASSERT_EQ(I.size(), static_cast<std::size_t>(kFrames) * kRadial * kAzimuthal);
  for (const std::size_t frame : {std::size_t{0}, std::size_t{kFrames - 1}}) {
    const auto row = I.begin() + static_cast<std::ptrdiff_t>(frame * kRadial * kAzimuthal);
    EXPECT_TRUE(std::any_of(row, row + kRadial * kAzimuthal,
                            [](double v) { return std::isfinite(v) && v > 0; }))
        << "frame " << frame;
  }
}

TEST(DaemonOutputTest, AFailedFrameOfTheSecondFileOfAMultiFileJobNamesThatFile) {
  TempSpace space;
  make_series(space, "m", 150, {130});  // m_data_000001.h5: frames 0-99, m_data_000002.h5: 100-149
  const std::string first = space.path("data/m_data_000001.h5").string();
  const std::string second = space.path("data/m_data_000002.h5").string();
  const std::string out = space.path("multi.h5").string();
  DaemonProcess daemon(space, 2);
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready());
  const std::int64_t id = enqueue(client, job_spec({first, second}, out));
  ASSERT_GT(id, 0) << daemon.log();
  const json job = wait_job(client, id);
  EXPECT_EQ(job.value("state", ""), "warning") << job.dump();
  ASSERT_EQ(job.value("frame_errors", json::array()).size(), 1u) << job.dump();
  const json& error = job["frame_errors"][0];
  EXPECT_EQ(error.value("frame", 0), 130);
  const std::string reason = error.value("reason", "");
  EXPECT_NE(reason.find("frame 130 of " + second), std::string::npos) << reason;
  EXPECT_NE(reason.find("dataset /entry/data/data, frame 30 of it"), std::string::npos) << reason;
  EXPECT_EQ(reason.find(first), std::string::npos) << reason;
  H5File f(out);
  const auto reasons = f.strings("/entry/process/failed_frames/reason");
  ASSERT_EQ(reasons.size(), 1u);
  EXPECT_EQ(reasons[0], reason);
}

}  // namespace
