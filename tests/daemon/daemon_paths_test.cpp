// azflowd against users who plant links and files around a job's paths (issue 14, findings 2 and
// 3): outputs are made without following links in the folder checked at enqueue, a file the job
// did not make is replaced only with "overwrite", two live jobs cannot share an output, and every
// file HDF5 opens for a job stays inside the allowed input folders. Real daemon, stages, store and
// HDF5 files; each test checks the daemon keeps answering and another job then succeeds.

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "tests/daemon/daemon_test_support.hpp"

namespace azflow::testing {
namespace {

/// Slow enough (40 ms a frame in the reducer, 20 frames) to plant something while the job runs.
const std::map<std::string, std::string> kSlowReducer = {{"AZFLOW_TEST_DELAY_MS_REDUCER", "40"}};

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The daemon still answers, and a plain job of `master` into `name` succeeds.
void expect_serving(ControlClient& client, const TempSpace& space, const std::string& master,
                    const std::string& name) {
  ASSERT_FALSE(client.call({{"verb", "status"}}).is_null()) << "daemon stopped answering";
  const std::int64_t id = enqueue(client, job_spec({master}, space.path(name).string()));
  ASSERT_GT(id, 0);
  EXPECT_EQ(wait_job(client, id).value("state", ""), "succeeded");
}

bool running(const json& job) { return job.value("state", "") == "running"; }

/// A daemon on `space` with `space/out` made, the slow reducer and a 20-frame series.
struct Fixture {
  TempSpace space;
  std::string master = make_series(space, "s", 20);
  bool made = fs::create_directories(space.path("out"));
  DaemonProcess daemon{space, 1, "", kSlowReducer};
  ControlClient client{daemon.endpoint()};
};

TEST(DaemonPaths, ASymlinkPlantedAtThePartialIsNotWrittenThrough) {
  Fixture f;
  ASSERT_TRUE(f.client.wait_ready());
  const fs::path victim = f.space.path("victim.txt");
  std::ofstream(victim) << "root's file\n";
  const fs::path out = f.space.path("out/x.h5");
  const std::int64_t id = enqueue(f.client, job_spec({f.master}, out.string()));
  ASSERT_GT(id, 0);
  ASSERT_TRUE(wait_until(f.client, id, running));
  fs::create_symlink(victim, out.string() + ".partial");
  const json job = wait_job(f.client, id);
  EXPECT_EQ(job.value("state", ""), "failed") << job.dump();
  EXPECT_NE(job.value("error", "").find("x.h5.partial exists and is a symbolic link"),
            std::string::npos)
      << job.dump();
  EXPECT_EQ(read_text(victim), "root's file\n");
  EXPECT_FALSE(fs::exists(fs::symlink_status(out)));
  expect_serving(f.client, f.space, f.master, "ok.h5");
}

TEST(DaemonPaths, AFileOrLinkMadeAtTheOutputAfterEnqueueIsKept) {
  Fixture f;
  ASSERT_TRUE(f.client.wait_ready());
  const fs::path victim = f.space.path("victim.txt");
  std::ofstream(victim) << "root's file\n";
  const fs::path out = f.space.path("out/x.h5");
  const std::int64_t id = enqueue(f.client, job_spec({f.master}, out.string()));
  ASSERT_GT(id, 0);
  ASSERT_TRUE(wait_until(f.client, id, running));
  fs::create_symlink(victim, out);
  const json job = wait_job(f.client, id);
  EXPECT_EQ(job.value("state", ""), "failed") << job.dump();
  EXPECT_NE(job.value("error", "").find("already exists (use --overwrite"), std::string::npos)
      << job.dump();
  EXPECT_TRUE(fs::is_symlink(out));
  EXPECT_EQ(read_text(victim), "root's file\n");
  expect_serving(f.client, f.space, f.master, "ok.h5");
}

TEST(DaemonPaths, AnOutputFolderSwappedForASymlinkAfterEnqueueIsNotWrittenThrough) {
  Fixture f;
  ASSERT_TRUE(f.client.wait_ready());
  fs::create_directories(f.space.path("elsewhere"));
  const fs::path out = f.space.path("out/x.h5");
  const std::int64_t a = enqueue(f.client, job_spec({f.master}, out.string()));
  const std::int64_t b = enqueue(f.client, job_spec({f.master}, f.space.path("out/y.h5").string()));
  ASSERT_GT(a, 0);
  ASSERT_GT(b, 0);
  ASSERT_TRUE(wait_until(f.client, a, running));
  fs::rename(f.space.path("out"), f.space.path("out_moved"));
  fs::create_directory_symlink(f.space.path("elsewhere"), f.space.path("out"));
  const json job_a = wait_job(f.client, a);
  EXPECT_EQ(job_a.value("state", ""), "failed") << job_a.dump();
  EXPECT_NE(job_a.value("error", "").find("is now a symbolic link or not a folder"),
            std::string::npos)
      << job_a.dump();
  // a real folder in its place instead: not the folder checked at enqueue either
  fs::remove(f.space.path("out"));
  fs::create_directories(f.space.path("out"));
  const json job_b = wait_job(f.client, b);
  EXPECT_EQ(job_b.value("state", ""), "failed") << job_b.dump();
  EXPECT_NE(job_b.value("error", "").find("is not the folder checked when the job was queued"),
            std::string::npos)
      << job_b.dump();
  EXPECT_TRUE(fs::is_empty(f.space.path("elsewhere")));
  EXPECT_TRUE(fs::is_empty(f.space.path("out")));
  expect_serving(f.client, f.space, f.master, "ok.h5");
}

TEST(DaemonPaths, TwoLiveJobsCannotClaimTheSameOutput) {
  Fixture f;
  ASSERT_TRUE(f.client.wait_ready());
  fs::create_directory_symlink(f.space.path("out"), f.space.path("alias"));
  const std::string out = f.space.path("out/x.h5").string();
  const std::int64_t a = enqueue(f.client, job_spec({f.master}, out));
  ASSERT_GT(a, 0);
  // the same file, spelled directly and through a link to its folder
  for (const std::string& same : {out, f.space.path("alias/x.h5").string()}) {
    const json r = f.client.call({{"verb", "enqueue"}, {"spec", job_spec({f.master}, same)}});
    ASSERT_TRUE(r.is_object()) << "no answer";
    EXPECT_FALSE(r.value("ok", true)) << r.dump();
    EXPECT_EQ(r["error"].value("field", ""), "spec.output_path") << r.dump();
    const std::string message = r["error"].value("message", "");
    EXPECT_NE(message.find(same), std::string::npos) << r.dump();
    EXPECT_NE(message.find("already the output of job " + std::to_string(a)), std::string::npos)
        << r.dump();
  }
  EXPECT_EQ(wait_job(f.client, a).value("state", ""), "succeeded");
  EXPECT_EQ(f.client.result({{"verb", "list"}, {"all", true}})["jobs"].size(), 1u);
  expect_serving(f.client, f.space, f.master, "ok.h5");
}

TEST(DaemonPaths, AnExistingOutputIsReplacedOnlyWithOverwrite) {
  Fixture f;
  ASSERT_TRUE(f.client.wait_ready());
  const fs::path out = f.space.path("out/x.h5");
  std::ofstream(out) << "an earlier result\n";
  json spec = job_spec({f.master}, out.string());
  const json refused = f.client.call({{"verb", "enqueue"}, {"spec", spec}});
  ASSERT_TRUE(refused.is_object()) << "no answer";
  EXPECT_FALSE(refused.value("ok", true)) << refused.dump();
  EXPECT_NE(refused["error"].value("message", "").find("already exists"), std::string::npos)
      << refused.dump();
  EXPECT_EQ(read_text(out), "an earlier result\n");
  // azflowctl refuses it too, then replaces it with --overwrite
  const std::string ctl =
      std::string(AZFLOWCTL_BIN) + " --endpoint " + quote(f.daemon.endpoint()) + " enqueue " +
      quote(f.master) + " --poni " + quote((kCliFixtures / "pilatus.poni").string()) +
      " --npt 200 --unit q_nm^-1 --error-model poisson -o " + quote(out.string());
  const CommandResult no = run_command(ctl);
  EXPECT_NE(no.code, 0) << no.output;
  EXPECT_NE(no.output.find("already exists"), std::string::npos) << no.output;
  const CommandResult yes = run_command(ctl + " --overwrite");
  ASSERT_EQ(yes.code, 0) << yes.output;
  const std::int64_t id = std::stoll(yes.output.substr(yes.output.find_first_of("0123456789")));
  EXPECT_EQ(ctl_wait(f.daemon.endpoint(), id), 0);
  EXPECT_TRUE(job_status(f.client, id)["spec"].value("overwrite", false));
  H5File h5(out.string());
  EXPECT_EQ(h5.dims("/entry/integrate/I"), (std::vector<hsize_t>{20, 200}));
  expect_serving(f.client, f.space, f.master, "ok.h5");
}

}  // namespace
}  // namespace azflow::testing
