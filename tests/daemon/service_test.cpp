// azflowd as a systemd service: a real daemon given a $NOTIFY_SOCKET datagram socket that the
// test binds (as systemd does for Type=notify) must send READY=1, WATCHDOG=1 at half of
// $WATCHDOG_USEC, STATUS= lines and STOPPING=1; and SIGTERM during a job must lose nothing: the
// daemon exits 0, and after a restart the job completes with every frame exactly once.

#include <sys/socket.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/error.hpp"
#include "daemon/config.hpp"
#include "daemon/job_store.hpp"
#include "daemon/service_notify.hpp"
#include "tests/daemon/daemon_test_support.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

using namespace azflow::testing;
using azflow::testing::H5File;
using std::chrono::milliseconds;

/// An AF_UNIX datagram socket bound at a path: what systemd listens on for sd_notify.
class NotifySocket {
 public:
  explicit NotifySocket(const fs::path& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    EXPECT_LT(path.string().size(), sizeof addr.sun_path);
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
  }
  ~NotifySocket() {
    if (fd_ >= 0) ::close(fd_);
    std::error_code ec;
    fs::remove(path_, ec);
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  /// One message with its arrival time.
  struct Message {
    std::string text;
    Clock::time_point at;
  };

  /// Receives messages until one contains `needle` or `timeout` passes; every message is kept in
  /// messages(). True if found.
  bool wait_for(const std::string& needle, milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      timeval tv{static_cast<time_t>(left.count() / 1000),
                 static_cast<suseconds_t>((left.count() % 1000) * 1000 + 1000)};
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      char buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      messages_.push_back({std::string(buf, static_cast<std::size_t>(n)), Clock::now()});
      if (messages_.back().text.find(needle) != std::string::npos) return true;
    }
    return false;
  }

  [[nodiscard]] const std::vector<Message>& messages() const { return messages_; }

  /// Arrival times of the messages that contain `needle`.
  [[nodiscard]] std::vector<Clock::time_point> times_of(const std::string& needle) const {
    std::vector<Clock::time_point> out;
    for (const auto& m : messages_) {
      if (m.text.find(needle) != std::string::npos) out.push_back(m.at);
    }
    return out;
  }

  [[nodiscard]] std::string dump() const {
    std::string out;
    for (const auto& m : messages_) out += "[" + m.text + "] ";
    return out;
  }

 private:
  fs::path path_;
  int fd_ = -1;
  std::vector<Message> messages_;
};

class ServiceTest : public ::testing::Test {
 protected:
  std::string out(const std::string& name = "out.h5") const { return space_.path(name).string(); }
  TempSpace space_;
};

TEST_F(ServiceTest, NotifiesReadyWatchdogStatusAndStopping) {
  NotifySocket notify(space_.path("notify.sock"));
  constexpr int kWatchdogUsec = 400000;  // WatchdogSec=0.4s: a ping every 0.2 s
  DaemonProcess daemon(space_, 1, "",
                       {{"NOTIFY_SOCKET", space_.path("notify.sock").string()},
                        {"WATCHDOG_USEC", std::to_string(kWatchdogUsec)}});
  ASSERT_TRUE(notify.wait_for("READY=1", std::chrono::seconds(60))) << daemon.log();
  // READY=1 means the control endpoint answers
  ControlClient client(daemon.endpoint());
  EXPECT_FALSE(client.call({{"verb", "status"}}).is_null());
  // a periodic STATUS= line of its own (READY=1 came with the first one)
  const auto ready_at = notify.times_of("READY=1").front();
  bool periodic_status = false;
  while (!periodic_status && notify.wait_for("STATUS=", std::chrono::seconds(30))) {
    const auto& last = notify.messages().back();
    periodic_status = last.at > ready_at && last.text.find("READY=1") == std::string::npos;
  }
  ASSERT_TRUE(periodic_status) << notify.dump() << daemon.log();
  EXPECT_NE(notify.messages().back().text.find("frames/s"), std::string::npos) << notify.dump();
  EXPECT_NE(notify.messages().back().text.find("queued"), std::string::npos) << notify.dump();
  // watchdog pings keep coming at about half of WATCHDOG_USEC
  const auto until = Clock::now() + std::chrono::seconds(2);
  while (Clock::now() < until) (void)notify.wait_for("\x01", milliseconds(100));
  const auto pings = notify.times_of("WATCHDOG=1");
  ASSERT_GE(pings.size(), 6u) << notify.dump();
  std::vector<double> gaps;
  for (std::size_t i = 1; i < pings.size(); ++i) {
    gaps.push_back(std::chrono::duration<double>(pings[i] - pings[i - 1]).count());
  }
  std::sort(gaps.begin(), gaps.end());
  const double median = gaps[gaps.size() / 2];
  EXPECT_GT(median, 0.5 * kWatchdogUsec / 2e6) << notify.dump();
  EXPECT_LT(median, 1.5 * kWatchdogUsec / 2e6) << notify.dump();
  EXPECT_LT(gaps.back(), kWatchdogUsec / 1e6) << "a ping came later than WatchdogSec";

  ASSERT_EQ(::kill(daemon.pid(), SIGTERM), 0);
  EXPECT_TRUE(notify.wait_for("STOPPING=1", std::chrono::seconds(30))) << notify.dump();
  const int status = daemon.wait_exit(std::chrono::seconds(60));
  ASSERT_TRUE(WIFEXITED(status)) << daemon.log();
  EXPECT_EQ(WEXITSTATUS(status), 0) << daemon.log();
}

/// The watchdog is fed from LoopWatchdog's thread while the loop beats, not at all while the loop
/// is frozen (so systemd restarts a frozen daemon), and again once it turns; the stall is counted.
TEST_F(ServiceTest, LoopWatchdogPingsOnlyWhileTheLoopTurns) {
  NotifySocket notify(space_.path("notify.sock"));
  ::setenv("NOTIFY_SOCKET", space_.path("notify.sock").c_str(), 1);
  std::atomic<bool> beating{true}, done{false};
  std::vector<std::pair<std::string, std::size_t>> phases;  // name, pings
  {
    azflow::daemon::LoopWatchdog watchdog(std::chrono::microseconds(50000), milliseconds(150),
                                          milliseconds(100));
    std::thread loop([&] {
      while (!done) {
        if (beating) watchdog.beat();
        std::this_thread::sleep_for(milliseconds(10));
      }
    });
    const auto pings_during = [&](milliseconds span) {
      const std::size_t before = notify.times_of("WATCHDOG=1").size();
      const auto until = Clock::now() + span;
      while (Clock::now() < until) (void)notify.wait_for("\x01", milliseconds(20));
      return notify.times_of("WATCHDOG=1").size() - before;
    };
    phases.emplace_back("turning", pings_during(milliseconds(600)));
    EXPECT_EQ(watchdog.stalls(), 0u);
    beating = false;
    (void)pings_during(milliseconds(250));  // past the stall limit (a ping may still be on its way)
    phases.emplace_back("frozen", pings_during(milliseconds(600)));
    EXPECT_EQ(watchdog.stalls(), 1u);
    beating = true;
    (void)pings_during(milliseconds(100));
    phases.emplace_back("turning again", pings_during(milliseconds(600)));
    EXPECT_EQ(watchdog.stalls(), 1u);  // one stall, over
    done = true;
    loop.join();
  }
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_GE(phases[0].second, 6u) << notify.dump();  // about 12 at one per 50 ms
  EXPECT_EQ(phases[1].second, 0u) << notify.dump();
  EXPECT_GE(phases[2].second, 6u) << notify.dump();
}

TEST_F(ServiceTest, WithoutNotifySocketNothingIsSent) {
  ::unsetenv("NOTIFY_SOCKET");
  const azflow::daemon::ServiceNotifier notifier;
  EXPECT_FALSE(notifier.enabled());
  EXPECT_FALSE(notifier.watchdog_period().has_value());
  azflow::daemon::ServiceCounters c;
  c.jobs_running = 1;
  c.jobs_queued = 2;
  c.shards_in_flight = 3;
  EXPECT_EQ(azflow::daemon::ServiceNotifier::describe(c, 12.25),
            "1 jobs running, 2 queued, 3 shards in flight, 12.2 frames/s");
}

TEST(ServiceConfig, StopTimeoutKey) {
  TempSpace space;
  const fs::path file = space.path("c.toml");
  EXPECT_EQ(azflow::daemon::load_config(std::nullopt).stop_timeout_s, 20u);
  std::ofstream(file) << "stop_timeout_s = 5\n";
  EXPECT_EQ(azflow::daemon::load_config(file).stop_timeout_s, 5u);
  std::ofstream(file) << "stop_timeout_s = 4000\n";
  try {
    (void)azflow::daemon::load_config(file);
    FAIL() << "stop_timeout_s = 4000 accepted";
  } catch (const azflow::Error& e) {
    EXPECT_NE(std::string(e.what()).find("stop_timeout_s"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
  EXPECT_NE(azflow::daemon::describe(azflow::daemon::load_config(std::nullopt))
                .find("stop_timeout_s = 20"),
            std::string::npos);
}

/// SIGTERM while a job runs, with `stop_timeout_s`: exit 0, nothing running left in the store,
/// enqueue refused while stopping; after a restart the job succeeds with the reference's result
/// and every shard committed exactly once.
void sigterm_mid_job(TempSpace& space, int stop_timeout_s) {
  // one worker of each kind: at most 2 x (1 + 1) shards of 50 frames are in flight, so most of
  // the 12 shards are still queued at the stop
  constexpr int kFrames = 600;
  const std::string master = make_series(space, "s", kFrames);
  const std::string out = space.path("out.h5").string();
  reference_integrate(master, space.path("ref.h5").string());
  const std::string toml = "stop_timeout_s = " + std::to_string(stop_timeout_s) + "\n";
  std::int64_t id = 0;
  std::size_t done_at_stop = 0;
  {
    DaemonProcess daemon(space, 1, toml, {{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "8"}});
    ControlClient client(daemon.endpoint());
    ASSERT_TRUE(client.wait_ready(std::chrono::seconds(60))) << daemon.log();
    id = enqueue(client, job_spec({master}, out));
    ASSERT_GT(id, 0);
    ASSERT_TRUE(wait_until(
        client, id,
        [](const json& j) {
          return j.value("frames_done", 0) >= 50 || is_final_state(j.value("state", ""));
        },
        std::chrono::seconds(60)))
        << daemon.log();
    ASSERT_EQ(::kill(daemon.pid(), SIGTERM), 0);
    // once it has begun to stop, no new job is accepted (while it stops, or it is gone)
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (daemon.log().find("stopping: no new work") == std::string::npos &&
           Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(5));
    }
    const json refused = client.call(
        {{"verb", "enqueue"},
         {"spec", job_spec({(kCliFixtures / "pilatus_master.h5").string()}, space.path("x.h5"))}});
    if (!refused.is_null()) {
      EXPECT_FALSE(refused.value("ok", true)) << refused.dump();
      EXPECT_NE(refused.dump().find("shutting down"), std::string::npos) << refused.dump();
    }
    const int status = daemon.wait_exit(std::chrono::seconds(stop_timeout_s + 60));
    ASSERT_TRUE(WIFEXITED(status)) << daemon.log();
    EXPECT_EQ(WEXITSTATUS(status), 0) << daemon.log();
    EXPECT_NE(daemon.log().find("stopping"), std::string::npos) << daemon.log();
  }
  {
    azflow::daemon::JobStore store(azflow::daemon::JobStore::path_in(space.path("state")));
    const auto job = store.job(id);
    ASSERT_TRUE(job.has_value());
    ASSERT_EQ(job->state, azflow::daemon::JobState::kRunning) << "the job finished before SIGTERM";
    for (const auto& s : store.shards(id)) {
      EXPECT_NE(s.state, azflow::daemon::ShardState::kRunning) << "shard " << s.shard_id;
      if (s.state == azflow::daemon::ShardState::kDone) ++done_at_stop;
    }
    EXPECT_LT(done_at_stop, static_cast<std::size_t>(kFrames / 50));
    EXPECT_FALSE(fs::exists(space.path("x.h5")));
  }
  DaemonProcess daemon(space, 1, toml);
  ControlClient client(daemon.endpoint());
  const json job = wait_job(client, id, std::chrono::seconds(120));
  EXPECT_EQ(job.value("state", ""), "succeeded") << job.dump() << daemon.log();
  EXPECT_EQ(job.value("frames_done", 0), kFrames);
  EXPECT_EQ(job.value("frames_failed", 0), 0);
  expect_same_as_reference(out, space.path("ref.h5").string());
  // every shard committed exactly once (the job's events.log)
  std::ifstream events(space.path("state") / "jobs" / std::to_string(id) / "events.log");
  std::map<std::string, int> done_lines;
  for (std::string line; std::getline(events, line);) {
    const auto at = line.find("shard ");
    if (at != std::string::npos && line.find(" done") != std::string::npos) {
      ++done_lines[line.substr(at, line.find(" done") - at)];
    }
  }
  EXPECT_EQ(done_lines.size(), static_cast<std::size_t>(kFrames / 50));
  for (const auto& [shard, n] : done_lines) EXPECT_EQ(n, 1) << shard;
}

/// The shards in flight finish within the timeout; the rest stay queued.
TEST_F(ServiceTest, SigtermMidJobFinishesShardsInFlightAndResumes) { sigterm_mid_job(space_, 60); }

/// No time to finish: the shards in flight are recorded as queued and redone after the restart.
TEST_F(ServiceTest, SigtermMidJobWithZeroTimeoutRequeuesShardsInFlight) {
  sigterm_mid_job(space_, 0);
}

}  // namespace
