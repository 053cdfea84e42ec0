// azflowctl, the real binary, against a ControlServer in this process (a StoreHandler over a
// real JobStore) on an ipc endpoint in a temp directory.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <future>

#include "tests/daemon/control_test_support.hpp"

namespace azflow::daemon {
namespace {

using nlohmann::json;
using test::TempDir;

struct Result {
  int rc = -1;
  std::string out, err;
  double seconds = 0;
};

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

class AzflowctlTest : public ::testing::Test {
 protected:
  TempDir dir_;
  test::StoreHandler handler_{dir_.path() / "state/jobs.sqlite"};
  test::ServerThread server_{"ipc://" + (dir_.path() / "run/test.control").string(), handler_};

  /// Runs azflowctl with `args` in the temp dir, endpoint from AZFLOW_ENDPOINT unless given.
  Result run(const std::string& args, const std::string& env = "") const {
    static std::atomic<int> counter{0};
    const std::string tag = std::to_string(counter.fetch_add(1));
    const auto out = dir_.path() / ("out" + tag), err = dir_.path() / ("err" + tag);
    const std::string endpoint_env =
        env.empty() ? "AZFLOW_ENDPOINT=" + quote(server_.endpoint()) : env;
    const std::string cmd = "cd " + quote(dir_.path().string()) + " && env " + endpoint_env + " " +
                            AZFLOWCTL_BIN + " " + args + " >" + out.string() + " 2>" +
                            err.string() + " </dev/null";
    const auto start = std::chrono::steady_clock::now();
    const int status = std::system(cmd.c_str());
    Result r;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = read_all(out);
    r.err = read_all(err);
    return r;
  }

  std::int64_t enqueue() {
    test::write_file(dir_.path() / "geometry.poni", test::kPoniText);
    const Result r = run("enqueue a_master.h5 --poni geometry.poni");
    EXPECT_EQ(r.rc, 0) << r.err;
    return std::stoll(r.out);
  }

  /// Finishes every shard of `job` with `failed` failed frames in the first, then sets `state`.
  void finish(std::int64_t job, JobState state, std::int64_t failed = 0) {
    JobStore& store = handler_.store();
    store.set_job_state(job, JobState::kRunning);
    for (const ShardRecord& s : store.shards(job)) {
      store.mark_shard_running(job, s.shard_id);
      store.mark_shard_done(job, s.shard_id, s.frame_count, s.shard_id == 0 ? failed : 0);
    }
    store.set_job_state(job, state, state == JobState::kFailed ? "integrate: plan failed" : "");
  }
};

TEST_F(AzflowctlTest, EnqueuePrintsIdAndSendsAbsoluteSpec) {
  test::write_file(dir_.path() / "geometry.poni", test::kPoniText);
  std::filesystem::create_directory(dir_.path() / "sub");
  const Result r =
      run("enqueue a_master.h5 sub/b.h5 --poni geometry.poni --npt-rad 300 --npt-azim 36 "
          "--unit 2th_deg --split bbox --no-file-mask --dark dark.h5::/entry/dark --dummy -2 "
          "--delta-dummy 0.5 --polarization-factor 0.9 --error-model poisson --radial-range 1 40 "
          "--join "
          "--dataset /entry/data/data -o out/r.nxs --mode bulk");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "1\n");
  const JobSpec& spec = handler_.last_spec;
  const std::string d = dir_.path().string();
  EXPECT_EQ(spec.datasets, (std::vector<std::string>{d + "/a_master.h5", d + "/sub/b.h5"}));
  EXPECT_EQ(spec.poni_text, test::kPoniText);
  EXPECT_EQ(spec.poni_path, d + "/geometry.poni");
  EXPECT_EQ(spec.dataset_path, "/entry/data/data");
  EXPECT_EQ(spec.settings.npt_rad, 300u);
  EXPECT_EQ(spec.settings.npt_azim, 36u);
  EXPECT_EQ(spec.settings.unit, integrate::RadialUnit::k2Th_deg);
  EXPECT_EQ(spec.settings.split, integrate::PixelSplit::kBBox);
  EXPECT_EQ(spec.settings.error_model, integrate::ErrorModel::kPoisson);
  EXPECT_EQ(spec.settings.polarization_factor, 0.9);
  EXPECT_EQ(spec.settings.radial_range, std::pair(1.0, 40.0));
  EXPECT_FALSE(spec.dummy_auto);
  EXPECT_EQ(spec.settings.dummy, -2.0);
  EXPECT_EQ(spec.settings.delta_dummy, 0.5);
  EXPECT_FALSE(spec.use_file_mask);
  EXPECT_EQ(spec.dark_path, d + "/dark.h5::/entry/dark");
  EXPECT_EQ(spec.output_path, d + "/out/r.nxs");
  EXPECT_EQ(spec.mode, JobSpec::Mode::kBulk);

  const Result again = run("enqueue a_master.h5 --poni geometry.poni");
  EXPECT_EQ(again.out, "2\n");
  EXPECT_TRUE(handler_.last_spec.dummy_auto);  // default dummy: the daemon applies the dtype's
  EXPECT_EQ(handler_.last_spec.output_path, "");
}

TEST_F(AzflowctlTest, EnqueueBadOptionsExitTwo) {
  test::write_file(dir_.path() / "geometry.poni", test::kPoniText);
  Result r = run("enqueue a.h5 --poni geometry.poni --unit furlongs");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--unit"), std::string::npos) << r.err;
  r = run("enqueue a.h5 --poni missing.poni");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("missing.poni"), std::string::npos) << r.err;
  r = run("enqueue a.h5");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("--poni"), std::string::npos) << r.err;
  test::write_file(dir_.path() / "bad.poni", "Distance: abc\n");
  r = run("enqueue a.h5 --poni bad.poni");  // refused by the daemon, naming the field
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("spec.poni_text"), std::string::npos) << r.err;
}

TEST_F(AzflowctlTest, StatusAndList) {
  const std::int64_t id = enqueue();
  Result r = run("status " + std::to_string(id));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("job 1: queued"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0/100 done"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("a_master.h5"), std::string::npos) << r.out;

  r = run("--json status " + std::to_string(id));
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["job"]["frames_total"], 100);

  r = run("status");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("queued: 1"), std::string::npos) << r.out;

  r = run("status 77");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("job_id"), std::string::npos) << r.err;

  r = run("list");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("STATE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("queued"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0/100"), std::string::npos) << r.out;

  finish(id, JobState::kSucceeded);
  EXPECT_EQ(run("list").out.find("succeeded"), std::string::npos);
  EXPECT_NE(run("list --all").out.find("succeeded"), std::string::npos);
  EXPECT_NE(run("list --state succeeded").out.find("100/100"), std::string::npos);
}

TEST_F(AzflowctlTest, WaitExitCodes) {
  const std::int64_t ok = enqueue(), warn = enqueue(), failed = enqueue(), cancelled = enqueue();
  finish(ok, JobState::kSucceeded);
  finish(warn, JobState::kWarning, 3);
  finish(failed, JobState::kFailed);
  EXPECT_EQ(run("cancel " + std::to_string(cancelled)).rc, 0);
  Result r = run("wait " + std::to_string(ok));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("succeeded: 100/100 frames, 0 failed"), std::string::npos) << r.out;
  r = run("wait " + std::to_string(warn));
  EXPECT_EQ(r.rc, 3);
  EXPECT_NE(r.out.find("3 failed"), std::string::npos) << r.out;
  r = run("wait " + std::to_string(failed));
  EXPECT_EQ(r.rc, 4);
  EXPECT_NE(r.out.find("integrate: plan failed"), std::string::npos) << r.out;
  EXPECT_EQ(run("wait " + std::to_string(cancelled)).rc, 5);
  EXPECT_EQ(run("wait 99").rc, 2);
}

TEST_F(AzflowctlTest, WaitFollowsProgress) {
  const std::int64_t id = enqueue();
  auto waiter = std::async(std::launch::async,
                           [&] { return run("wait --interval 0.05 " + std::to_string(id)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  JobStore& store = handler_.store();
  store.set_job_state(id, JobState::kRunning);
  store.mark_shard_running(id, 0);
  store.mark_shard_done(id, 0, 50, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  store.mark_shard_running(id, 1);
  store.mark_shard_done(id, 1, 50, 0);
  store.set_job_state(id, JobState::kSucceeded);
  ASSERT_EQ(waiter.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  const Result r = waiter.get();
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.err.find("queued: 0/100 frames"), std::string::npos) << r.err;  // plain lines
  EXPECT_NE(r.err.find("running: 50/100 frames"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("succeeded: 100/100"), std::string::npos) << r.out;
}

TEST_F(AzflowctlTest, WaitTimeout) {
  const std::int64_t id = enqueue();
  const Result r = run("wait --interval 0.05 --timeout 0.3 " + std::to_string(id));
  EXPECT_EQ(r.rc, 6);
  EXPECT_LT(r.seconds, 5);
}

TEST_F(AzflowctlTest, CancelAndShutdown) {
  const std::int64_t id = enqueue();
  Result r = run("cancel " + std::to_string(id));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("cancelled job 1"), std::string::npos) << r.out;
  r = run("cancel " + std::to_string(id));  // already finished
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("already finished"), std::string::npos) << r.err;
  r = run("shutdown");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(handler_.shutdowns.load(), 1);
}

TEST_F(AzflowctlTest, EndpointOptionWinsOverEnvironment) {
  const Result r =
      run("--endpoint " + quote(server_.endpoint()) + " status", "AZFLOW_ENDPOINT=ipc:///nowhere");
  EXPECT_EQ(r.rc, 0) << r.err;
}

TEST_F(AzflowctlTest, NoDaemonSocket) {
  const std::string endpoint = "ipc://" + (dir_.path() / "run/absent.control").string();
  const Result r = run("status", "AZFLOW_ENDPOINT=" + quote(endpoint));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find(endpoint), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is azflowd running"), std::string::npos) << r.err;
  EXPECT_LT(r.seconds, 2);
}

TEST_F(AzflowctlTest, NoAnswerWithinTimeout) {
  // A socket file nobody serves: the daemon died without removing it.
  const auto stale = dir_.path() / "run/stale.control";
  test::write_file(stale, "");
  const std::string endpoint = "ipc://" + stale.string();
  const Result r = run("--timeout 1 list", "AZFLOW_ENDPOINT=" + quote(endpoint));
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find(endpoint), std::string::npos) << r.err;
  EXPECT_LT(r.seconds, 4);
  // tcp, nobody listening, default 3 s timeout
  const Result t = run("status", "AZFLOW_ENDPOINT=tcp://127.0.0.1:9");
  EXPECT_EQ(t.rc, 1);
  EXPECT_NE(t.err.find("tcp://127.0.0.1:9"), std::string::npos) << t.err;
  EXPECT_GE(t.seconds, 2.5);
  EXPECT_LT(t.seconds, 6);
}

}  // namespace
}  // namespace azflow::daemon
