// azflowd's plan folder end to end (docs/architecture.md, "The plan cache"): the integrate
// workers of one daemon build a job's plan once between them, into <state_dir>/plans; a
// restarted daemon reuses the file; `azflow integrate --plan-cache` finds the same plan under the
// same key (one plan builder for both); results equal `azflow integrate`'s without a cache.

#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "tests/daemon/daemon_test_support.hpp"

namespace {

using namespace azflow::testing;

/// Lines of `log` matching `pattern`.
std::size_t count_lines(const std::string& log, const std::string& pattern) {
  const std::regex re(pattern);
  return static_cast<std::size_t>(
      std::distance(std::sregex_iterator(log.begin(), log.end(), re), std::sregex_iterator()));
}

/// *.plan files in `dir`.
std::size_t plan_files(const fs::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) n += e.path().extension() == ".plan";
  return n;
}

/// Integrate workers that integrated at least one frame (each needed the job's plan), once their
/// heartbeats account for `frames` frames in all (waits up to 5 s for them).
std::size_t integrate_workers_used(ControlClient& client, std::int64_t frames) {
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  std::size_t used = 0;
  std::int64_t total = 0;
  while (total < frames && Clock::now() < deadline) {
    used = 0;
    total = 0;
    const json r = client.result({{"verb", "workers"}});
    for (const auto& s : r.value("workers", json::array())) {
      if (s.value("role", "") != "integrate") continue;
      const std::int64_t out = s.value("frames_out", std::int64_t{0});
      used += out > 0 ? 1 : 0;
      total += out;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_GE(total, frames);
  return used;
}

/// Runs the reference job on `daemon`; expects success and the reference's rows.
void run_job(const DaemonProcess& daemon, const std::string& master, const std::string& out,
             const std::string& ref) {
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready()) << daemon.log();
  const std::int64_t id = enqueue(client, job_spec({master}, out));
  ASSERT_GT(id, 0);
  const json job = wait_job(client, id);
  ASSERT_EQ(job.value("state", ""), "succeeded") << job.dump() << daemon.log();
  expect_same_as_reference(out, ref);
}

const char* const kBuilt = "integrate: plan [0-9a-f]{64} built in";
const char* const kLoaded = "integrate: plan [0-9a-f]{64} loaded from";

TEST(DaemonPlanCache, BuiltOncePerNodeReusedAfterRestartAndByTheCli) {
  TempSpace space;
  const std::string master = make_series(space, "series", 90);
  const std::string ref = space.path("ref.h5").string();
  reference_integrate(master, ref);
  const fs::path plans = space.path("state") / "plans";

  {
    DaemonProcess daemon(space, 2);
    run_job(daemon, master, space.path("out1.h5").string(), ref);
    ControlClient client(daemon.endpoint());
    const std::size_t used = integrate_workers_used(client, 90);
    const std::string log = daemon.log();
    EXPECT_EQ(count_lines(log, kBuilt), 1u) << log;
    EXPECT_EQ(count_lines(log, kLoaded), used - 1) << "every other worker read the file\n" << log;
    EXPECT_EQ(plan_files(plans), 1u);
    // a second job of the same geometry in the same daemon: no new build, no new file
    run_job(daemon, master, space.path("out2.h5").string(), ref);
    EXPECT_EQ(count_lines(daemon.log(), kBuilt), 1u) << daemon.log();
    EXPECT_EQ(plan_files(plans), 1u);
  }
  {
    DaemonProcess restarted(space, 2);
    run_job(restarted, master, space.path("out3.h5").string(), ref);
    const std::string log = restarted.log();
    EXPECT_EQ(count_lines(log, kBuilt), 0u) << "the restarted daemon reuses the file\n" << log;
    EXPECT_GE(count_lines(log, kLoaded), 1u) << log;
    EXPECT_EQ(plan_files(plans), 1u);
  }
  // azflow integrate keys and builds the plan the same way: it finds the daemon's file
  const CommandResult cli =
      run_command(std::string(AZFLOW_BIN) + " integrate " + quote(master) + " --poni " +
                  quote((kCliFixtures / "pilatus.poni").string()) +
                  " --npt 200 --unit q_nm^-1 --error-model poisson --overwrite --plan-cache " +
                  quote(plans.string()) + " -o " + quote(space.path("cli.h5").string()));
  EXPECT_EQ(cli.code, 0) << cli.output;
  EXPECT_NE(cli.output.find("loaded from " + plans.string()), std::string::npos) << cli.output;
  EXPECT_EQ(plan_files(plans), 1u);
  expect_same_as_reference(space.path("cli.h5").string(), ref);
}

TEST(DaemonPlanCache, ACorruptPlanFileIsRebuiltAndTheJobSucceeds) {
  TempSpace space;
  const std::string master = make_series(space, "series", 20);
  const std::string ref = space.path("ref.h5").string();
  reference_integrate(master, ref);
  const fs::path plans = space.path("state") / "plans";
  {
    DaemonProcess daemon(space, 1);
    run_job(daemon, master, space.path("out1.h5").string(), ref);
  }
  ASSERT_EQ(plan_files(plans), 1u);
  for (const auto& e : fs::directory_iterator(plans)) {
    if (e.path().extension() == ".plan") fs::resize_file(e.path(), e.file_size() / 2);
  }
  DaemonProcess daemon(space, 1);
  run_job(daemon, master, space.path("out2.h5").string(), ref);
  const std::string log = daemon.log();
  EXPECT_EQ(count_lines(log, kBuilt), 1u) << log;
  EXPECT_NE(log.find("rejected: truncated"), std::string::npos) << log;
  EXPECT_EQ(plan_files(plans), 1u);
}

}  // namespace
