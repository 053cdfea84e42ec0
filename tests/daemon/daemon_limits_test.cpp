// azflowd under requests that cannot be served (issue 14, finding 1): rings that cannot be
// reserved are refused at enqueue or fail only their job at start, a job whose start ended the
// daemon is failed at the next start instead of ending it again, and file names with bytes that
// are not UTF-8 are escaped in every answer. Real daemon, stages, SQLite store and HDF5 files;
// each test checks the daemon keeps answering and another job in the same daemon completes.

#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/daemon/daemon_test_support.hpp"

namespace azflow::testing {
namespace {

/// Small rings: 2 + 2 slots of 1 MiB (Pilatus 100k frames) and 4 result slots: about 8 MiB.
constexpr const char* kSmallRings =
    "[rings]\ncompressed_slots = 2\nframes_slots = 2\nresults_slots = 4\n";

json spec_with_bins(const std::string& master, const std::string& out, int npt_rad,
                    int npt_azim = 0) {
  json spec = job_spec({master}, out);
  spec["settings"]["npt_rad"] = npt_rad;
  if (npt_azim > 0) {
    spec["settings"]["npt_azim"] = npt_azim;
    spec["settings"]["unit"] = "2th_deg";
  }
  return spec;
}

/// The daemon still answers, and a plain job of `master` succeeds.
void expect_serving(ControlClient& client, const TempSpace& space, const std::string& master,
                    const std::string& name) {
  ASSERT_FALSE(client.call({{"verb", "status"}}).is_null()) << "daemon stopped answering";
  const std::int64_t id = enqueue(client, job_spec({master}, space.path(name).string()));
  ASSERT_GT(id, 0);
  EXPECT_EQ(wait_job(client, id).value("state", ""), "succeeded");
}

TEST(DaemonLimits, RingsTooBigForDevShmAreRefusedAtEnqueue) {
  TempSpace space;
  const std::string master = make_series(space, "s", 20);
  DaemonProcess daemon(space, 1);
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready());
  // the allowed maximum of npt_rad: 64 result slots of 8 GiB, more than any /dev/shm
  const json r = client.call(
      {{"verb", "enqueue"}, {"spec", spec_with_bins(master, space.path("a.h5"), 268435456)}});
  ASSERT_TRUE(r.is_object()) << "no answer";
  EXPECT_FALSE(r.value("ok", true)) << r.dump();
  EXPECT_EQ(r["error"].value("field", ""), "settings.npt_rad") << r.dump();
  EXPECT_NE(r["error"].value("message", "").find("/dev/shm can give"), std::string::npos)
      << r.dump();
  EXPECT_TRUE(client.result({{"verb", "list"}, {"all", true}})["jobs"].empty());
  expect_serving(client, space, master, "ok.h5");
  EXPECT_EQ(daemon.wait_exit(std::chrono::milliseconds(0)), -1) << "daemon exited";
}

TEST(DaemonLimits, ConfiguredRingLimitRefusesABigCake) {
  TempSpace space;
  const std::string master = make_series(space, "s", 20);
  DaemonProcess daemon(space, 1, "[rings]\nmax_total_mib = 400\n");
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready());
  // a 2D cake of 4000 x 3600 bins: 14.4 M bins, 440 MiB per result slot
  const json r = client.call(
      {{"verb", "enqueue"}, {"spec", spec_with_bins(master, space.path("c.h5"), 4000, 3600)}});
  ASSERT_TRUE(r.is_object()) << "no answer";
  EXPECT_FALSE(r.value("ok", true)) << r.dump();
  EXPECT_EQ(r["error"].value("field", ""), "settings.npt_azim") << r.dump();
  EXPECT_NE(r["error"].value("message", "").find("rings.max_total_mib is 400 MiB"),
            std::string::npos)
      << r.dump();
  expect_serving(client, space, master, "ok.h5");
}

/// azflowd in its own mount namespace with a tmpfs of `mib` MiB on /dev/shm (needs root).
pid_t spawn_small_shm_daemon(const TempSpace& space, int mib, const fs::path& log,
                             const std::map<std::string, std::string>& env) {
  std::ofstream(space.path("azflowd.toml")) << "shard_frames = 50\n" << kSmallRings;
  const std::string script =
      "mount -t tmpfs -o size=" + std::to_string(mib) + "m tmpfs /dev/shm && exec \"$0\" \"$@\"";
  return spawn({"/usr/bin/unshare", "-m", "/bin/sh", "-c", script, AZFLOWD_BIN, "--config",
                space.path("azflowd.toml").string(), "--instance", space.instance(), "--state-dir",
                space.path("state").string(), "--runtime-dir", space.path("run").string(),
                "--workers", "1", "--integrate-workers", "1"},
               log, env);
}

TEST(DaemonLimits, RingsThatCannotBeReservedFailOnlyTheirJob) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for unshare -m and a tmpfs on /dev/shm";
  TempSpace space;
  const std::string master = make_series(space, "s", 60);
  const fs::path log = space.path("azflowd.log");
  pid_t pid = spawn_small_shm_daemon(space, 32, log, {{"AZFLOW_TEST_DELAY_MS_REDUCER", "40"}});
  ControlClient client("ipc://" + space.path("run").string() + "/" + space.instance() + ".control");
  ASSERT_TRUE(client.wait_ready());
  const std::int64_t a = enqueue(client, job_spec({master}, space.path("a.h5").string()));
  ASSERT_TRUE(
      wait_until(client, a, [](const json& j) { return j.value("state", "") == "running"; }));
  // B (160000 bins: 24 MiB of rings) fits in /dev/shm at enqueue, after A and once A's rings go
  json spec_b = spec_with_bins(master, space.path("b.h5"), 160000);
  const json rb = client.result({{"verb", "enqueue"}, {"spec", spec_b}, {"after", {a}}});
  const std::int64_t b = rb.value("job_id", std::int64_t{0});
  ASSERT_GT(b, 0) << rb.dump();
  // ... then another process takes 12 of those 32 MiB of /dev/shm
  const fs::path filler = "/proc/" + std::to_string(pid) + "/root/dev/shm/filler";
  std::ofstream(filler) << std::string(std::size_t{12} << 20, 'x');
  ASSERT_EQ(fs::file_size(filler), std::size_t{12} << 20);
  EXPECT_EQ(wait_job(client, a).value("state", ""), "succeeded");
  const json job_b = wait_job(client, b);
  EXPECT_EQ(job_b.value("state", ""), "failed");
  EXPECT_NE(job_b.value("error", "").find("could not start the job"), std::string::npos)
      << job_b.dump();
  EXPECT_NE(job_b.value("error", "").find("results"), std::string::npos) << job_b.dump();
  expect_serving(client, space, master, "c.h5");
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
}

TEST(DaemonLimits, AJobWhoseStartEndedTheDaemonFailsAtTheNextStart) {
  TempSpace space;
  const std::string master = make_series(space, "s", 60);
  std::int64_t a = 0;
  {
    DaemonProcess first(space, 1, "", {{"AZFLOW_TEST_DELAY_MS_REDUCER", "50"}});
    ControlClient client(first.endpoint());
    ASSERT_TRUE(client.wait_ready());
    a = enqueue(client, job_spec({master}, space.path("a.h5").string()));
    ASSERT_TRUE(
        wait_until(client, a, [](const json& j) { return j.value("state", "") == "running"; }));
    first.stop(SIGKILL);
  }
  // what a daemon that died inside the job's start leaves: the marker it writes before starting
  const fs::path job_dir = space.path("state") / "jobs" / std::to_string(a);
  ASSERT_TRUE(fs::is_directory(job_dir));
  std::ofstream(job_dir / "starting") << "0\n";
  DaemonProcess second(space, 1);
  ControlClient client(second.endpoint());
  ASSERT_TRUE(client.wait_ready());
  const json job = wait_job(client, a);
  EXPECT_EQ(job.value("state", ""), "failed");
  EXPECT_NE(job.value("error", "").find("ended while starting this job"), std::string::npos)
      << job.dump();
  EXPECT_FALSE(fs::exists(job_dir / "starting"));
  expect_serving(client, space, master, "ok.h5");
}

TEST(DaemonLimits, AJobFolderThatCannotBeMadeFailsOnlyThatJob) {
  TempSpace space;
  const std::string master = make_series(space, "s", 20);
  DaemonProcess daemon(space, 1);
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready());
  std::ofstream(space.path("state") / "jobs" / "1") << "in the way\n";  // job 1's folder
  const json r =
      client.result({{"verb", "enqueue"}, {"spec", job_spec({master}, space.path("a.h5"))}});
  EXPECT_EQ(r.value("job_id", 0), 1) << r.dump();
  EXPECT_EQ(r.value("state", ""), "failed") << r.dump();
  const json job = job_status(client, 1);
  EXPECT_EQ(job.value("state", ""), "failed") << job.dump();
  EXPECT_NE(job.value("error", "").find("cannot queue the job"), std::string::npos) << job.dump();
  expect_serving(client, space, master, "ok.h5");
}

TEST(DaemonLimits, NamesThatAreNotUtf8AreEscapedInEveryAnswer) {
  TempSpace space;
  const std::string good = make_series(space, "g", 20);
  const CommandResult made = run_command("/usr/bin/python3 " + quote(kSeriesScript.string()) +
                                         " --out-dir " + quote(space.path("data").string()) +
                                         " --name odd --frames 20 --corrupt-frame 3 --odd-names");
  ASSERT_EQ(made.code, 0) << made.output;
  const std::string odd = space.path("data/odd_master.h5").string();
  const std::string missing = space.path("data/gone_master.h5").string();
  fs::copy_file(odd, missing);  // its link names odd_data\xff_000001.h5 in data/: there
  DaemonProcess daemon(space, 1);
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready());
  // the data file exists: the job runs; frame 3's error names the file, escaped
  const std::int64_t a = enqueue(client, job_spec({odd}, space.path("a.h5").string()));
  ASSERT_GT(a, 0);
  const json job_a = wait_job(client, a);
  EXPECT_EQ(job_a.value("state", ""), "warning") << job_a.dump();
  ASSERT_EQ(job_a["frame_errors"].size(), 1u) << job_a.dump();
  EXPECT_NE(job_a["frame_errors"][0].value("reason", "").find("odd_data\\xff_000001.h5"),
            std::string::npos)
      << job_a.dump();
  // the data file is gone: the enqueue is refused (issue 17 item 7), naming it escaped
  fs::remove(fs::path(space.path("data")) / std::string("odd_data\xff_000001.h5"));
  const json r = client.call({{"verb", "enqueue"}, {"spec", job_spec({odd}, space.path("b.h5"))}});
  ASSERT_TRUE(r.is_object()) << daemon.log();
  EXPECT_FALSE(r.value("ok", true)) << r.dump();
  EXPECT_EQ(r["error"].value("field", ""), "spec.datasets") << r.dump();
  EXPECT_NE(r["error"].value("message", "").find("\\xff"), std::string::npos) << r.dump();
  const json all = client.result({{"verb", "list"}, {"all", true}});
  EXPECT_EQ(all["jobs"].size(), 1u) << all.dump();
  expect_serving(client, space, good, "ok.h5");
  // azflowctl prints them too
  const CommandResult listed = run_command(std::string(AZFLOWCTL_BIN) + " --endpoint " +
                                           quote(daemon.endpoint()) + " list --all");
  EXPECT_EQ(listed.code, 0) << listed.output;
  const CommandResult refused = run_command(
      std::string(AZFLOWCTL_BIN) + " --endpoint " + quote(daemon.endpoint()) + " enqueue " +
      quote(odd) + " --poni " + quote((kCliFixtures / "pilatus.poni").string()) + " -o " +
      quote(space.path("c.h5").string()));
  EXPECT_EQ(refused.code, 2) << refused.output;
  EXPECT_NE(refused.output.find("\\xff"), std::string::npos) << refused.output;
}

TEST(DaemonLimits, ABulkCancelOfQueuedJobsBuildsNoPlanAndWritesNoFile) {
  TempSpace space;
  const std::string master = make_series(space, "s", 20);
  // 20 frames x 150 ms keep the running job busy while the 40 jobs are enqueued and cancelled
  // (with a warm plan cache nothing else slows it down)
  DaemonProcess daemon(space, 1, "max_running_jobs = 1\n",
                       {{"AZFLOW_TEST_DELAY_MS_REDUCER", "150"}});
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready());
  const std::int64_t running = enqueue(client, job_spec({master}, space.path("r.h5").string()));
  ASSERT_GT(running, 0);
  json ids = json::array();
  for (int i = 0; i < 40; ++i) {
    const std::int64_t id =
        enqueue(client, job_spec({master}, space.path("q" + std::to_string(i) + ".h5").string()));
    ASSERT_GT(id, 0);
    ids.push_back(id);
  }
  const auto started = Clock::now();
  const json r = client.result({{"verb", "cancel"}, {"job_ids", ids}});
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(10));
  EXPECT_EQ(r["cancelled"].size(), 40u) << r.dump();
  for (int i = 0; i < 40; ++i) {
    const fs::path out = space.path("q" + std::to_string(i) + ".h5");
    EXPECT_FALSE(fs::exists(out.string() + ".partial")) << out;
    EXPECT_FALSE(fs::exists(out)) << out;
  }
  EXPECT_EQ(job_status(client, ids[0].get<std::int64_t>()).value("state", ""), "cancelled");
  EXPECT_EQ(wait_job(client, running).value("state", ""), "succeeded");
  // one request naming more ids than the limit is refused, naming the field
  json many = json::array();
  for (int i = 0; i < 10001; ++i) many.push_back(i + 1);
  const json big = client.call({{"verb", "cancel"}, {"job_ids", many}});
  ASSERT_TRUE(big.is_object()) << "no answer";
  EXPECT_FALSE(big.value("ok", true));
  EXPECT_EQ(big["error"].value("field", ""), "job_ids") << big.dump().substr(0, 300);
  EXPECT_NE(big["error"].value("message", "").find("exceed the limit of 10000"), std::string::npos);
  expect_serving(client, space, master, "ok.h5");
}

}  // namespace
}  // namespace azflow::testing
