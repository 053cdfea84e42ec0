// azflowd against users who plant links and files around a job's paths (issue 14, findings 2 and
// 3): outputs are made without following links in the folder checked at enqueue, a file the job
// did not make is replaced only with "overwrite", two live jobs cannot share an output, and every
// file HDF5 opens for a job stays inside the allowed input folders. Real daemon, stages, store and
// HDF5 files; each test checks the daemon keeps answering and another job then succeeds.

#include <sys/stat.h>
#include <sys/wait.h>
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

/// A job whose output could not be written (its folder gone) is retried without recomputing a
/// frame: the output is assembled again from its shard files, into the folder made anew.
TEST(DaemonPaths, RetryAfterAnOutputFailureReassemblesFromTheShardFiles) {
  Fixture f;
  ASSERT_TRUE(f.client.wait_ready());
  const fs::path out = f.space.path("out/x.h5");
  const std::int64_t a = enqueue(f.client, job_spec({f.master}, out.string()));
  ASSERT_GT(a, 0);
  ASSERT_TRUE(wait_until(f.client, a, running));
  fs::remove_all(f.space.path("out"));
  const json failed = wait_job(f.client, a);
  ASSERT_EQ(failed.value("state", ""), "failed") << failed.dump();
  EXPECT_NE(failed.value("error", "").find("output"), std::string::npos) << failed.dump();
  const json frames_before = f.client.result({{"verb", "stats"}});
  // still gone: the retry is refused naming the output, and the job stays failed
  const json refused = f.client.call({{"v", 1}, {"verb", "retry"}, {"job_id", a}});
  EXPECT_FALSE(refused.value("ok", true)) << refused.dump();
  EXPECT_NE(refused.dump().find("spec.output_path"), std::string::npos) << refused.dump();
  fs::create_directories(f.space.path("out"));
  const json retried = f.client.result({{"verb", "retry"}, {"job_id", a}});
  EXPECT_EQ(retried.value("frames_retried", -1), 0) << retried.dump();
  EXPECT_EQ(retried.value("shards_queued", -1), 0) << retried.dump();
  EXPECT_TRUE(retried.value("reassembled", false)) << retried.dump();
  const json done = wait_job(f.client, a);
  EXPECT_EQ(done.value("state", ""), "succeeded") << done.dump() << f.daemon.log();
  EXPECT_EQ(done.value("frames_done", 0), 20) << done.dump();
  ASSERT_TRUE(fs::exists(out));
  reference_integrate(f.master, f.space.path("ref.h5").string());
  expect_same_as_reference(out.string(), f.space.path("ref.h5").string());
  // nothing was integrated again
  const json frames_after = f.client.result({{"verb", "stats"}});
  EXPECT_EQ(frames_after.value("frames_since_start", -1),
            frames_before.value("frames_since_start", -2))
      << frames_before.dump() << frames_after.dump();
  const std::string events =
      read_text(f.space.path("state/jobs") / std::to_string(a) / "events.log");
  EXPECT_NE(events.find("output assembled again from the shard files"), std::string::npos)
      << events;
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

/// Runs a Python snippet with h5py (Debian's python3-h5py, as make_series.py).
void python(const std::string& code) {
  const fs::path script = fs::temp_directory_path() / ("azd_py_" + std::to_string(::getpid()));
  std::ofstream(script) << "import h5py, numpy, sys\n" << code;
  const CommandResult r = run_command("/usr/bin/python3 " + quote(script.string()));
  fs::remove(script);
  ASSERT_EQ(r.code, 0) << r.output;
}

/// A daemon whose allowed_input_roots is `space/data` only.
struct RootedFixture {
  TempSpace space;
  std::string master = make_series(space, "s", 20);
  bool made = fs::create_directories(space.path("secret"));
  DaemonProcess daemon{space, 1,
                       "allowed_input_roots = [\"" + space.path("data").string() + "\"]\n"};
  ControlClient client{daemon.endpoint()};
};

TEST(DaemonPaths, AnExternalLinkOutOfTheAllowedInputFoldersIsNotRead) {
  RootedFixture f;
  ASSERT_TRUE(f.client.wait_ready());
  // a copy of the data file in a folder outside the roots; a master inside linking to it
  const fs::path secret = f.space.path("secret/secret_data.h5");
  fs::copy_file(f.space.path("data/s_data_000001.h5"), secret);
  ::chmod(secret.c_str(), 0600);
  const fs::path evil = f.space.path("data/evil_master.h5");
  fs::copy_file(f.master, evil);
  python("with h5py.File('" + evil.string() +
         "', 'a') as m:\n"
         "    del m['/entry/data/data_000001']\n"
         "    m['/entry/data/data_000001'] = h5py.ExternalLink('" +
         secret.string() + "', '/entry/data/data')\n");
  const json r = f.client.call(
      {{"verb", "enqueue"}, {"spec", job_spec({evil.string()}, f.space.path("a.h5").string())}});
  ASSERT_TRUE(r.is_object()) << "no answer";
  const std::string error =
      r.value("ok", false) ? r["result"].value("error", "") : r["error"].value("message", "");
  if (r.value("ok", false)) {
    EXPECT_EQ(r["result"].value("state", ""), "failed") << r.dump();
  }
  EXPECT_NE(error.find("external link /entry/data/data_000001 of " + evil.string()),
            std::string::npos)
      << r.dump();
  EXPECT_NE(error.find(secret.string() + ", outside the allowed input folders"), std::string::npos)
      << r.dump();
  EXPECT_FALSE(fs::exists(f.space.path("a.h5")));
  // a virtual dataset inside the roots whose source file is outside: the same
  const fs::path vds = f.space.path("data/vds.h5");
  python("with h5py.File('" + secret.string() +
         "', 'r') as s:\n"
         "    shape, dtype = s['/entry/data/data'].shape, s['/entry/data/data'].dtype\n"
         "layout = h5py.VirtualLayout(shape=shape, dtype=dtype)\n"
         "layout[:] = h5py.VirtualSource('" +
         secret.string() +
         "', '/entry/data/data', shape=shape)\n"
         "with h5py.File('" +
         vds.string() +
         "', 'w') as v:\n"
         "    v.create_virtual_dataset('/entry/data/data', layout)\n");
  const json rv = f.client.call(
      {{"verb", "enqueue"}, {"spec", job_spec({vds.string()}, f.space.path("v.h5").string())}});
  ASSERT_TRUE(rv.is_object()) << "no answer";
  EXPECT_NE(rv.dump().find("virtual source of dataset /entry/data/data of " + vds.string()),
            std::string::npos)
      << rv.dump();
  EXPECT_NE(rv.dump().find("outside the allowed input folders"), std::string::npos) << rv.dump();
  expect_serving(f.client, f.space, f.master, "ok.h5");
}

TEST(DaemonPaths, AFifoInputIsRefusedAtEnqueueWithoutBlocking) {
  RootedFixture f;
  ASSERT_TRUE(f.client.wait_ready());
  const fs::path fifo = f.space.path("data/fifo_master.h5");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  json spec = job_spec({fifo.string()}, f.space.path("a.h5").string());
  const auto started = Clock::now();
  const json r = f.client.call({{"verb", "enqueue"}, {"spec", spec}});
  ASSERT_TRUE(r.is_object()) << "no answer: the daemon blocked on the FIFO";
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(5));
  EXPECT_FALSE(r.value("ok", true)) << r.dump();
  EXPECT_EQ(r["error"].value("field", ""), "spec.datasets[0]") << r.dump();
  EXPECT_NE(r["error"].value("message", "").find("is a FIFO, not a regular file"),
            std::string::npos)
      << r.dump();
  // a FIFO as the mask: refused the same way, naming the field
  spec = job_spec({f.master}, f.space.path("b.h5").string());
  spec["mask_path"] = fifo.string();
  const json rm = f.client.call({{"verb", "enqueue"}, {"spec", spec}});
  ASSERT_TRUE(rm.is_object()) << "no answer";
  EXPECT_FALSE(rm.value("ok", true)) << rm.dump();
  EXPECT_EQ(rm["error"].value("field", ""), "spec.mask_path") << rm.dump();
  EXPECT_TRUE(f.client.result({{"verb", "list"}, {"all", true}})["jobs"].empty());
  expect_serving(f.client, f.space, f.master, "ok.h5");
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

TEST(DaemonPaths, TheRuntimeFolderAndSocketsAreNotOpenToOthers) {
  TempSpace space;
  const std::string master = make_series(space, "s", 20);
  {
    DaemonProcess daemon(space, 1);  // `run` does not exist: the daemon makes it
    ControlClient client(daemon.endpoint());
    ASSERT_TRUE(client.wait_ready());
    EXPECT_EQ(mode_of(space.path("run")), 0700u);
    EXPECT_EQ(mode_of(space.path("run") / (space.instance() + ".control")), 0660u);
    EXPECT_EQ(mode_of(space.path("run") / (space.instance() + ".live")), 0660u);
  }
  // an existing folder open to everyone (systemd's old RuntimeDirectoryMode=0755, or 0775 for a
  // group): the daemon takes the others' permissions away and keeps its group's
  ASSERT_EQ(::chmod(space.path("run").c_str(), 0775), 0);
  DaemonProcess daemon(space, 1);
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready());
  EXPECT_EQ(mode_of(space.path("run")), 0770u);
  expect_serving(client, space, master, "ok.h5");
}

/// A TCP port nothing listens on now.
int free_port() {
  zmq::context_t context;
  zmq::socket_t s(context, zmq::socket_type::rep);
  s.bind("tcp://127.0.0.1:*");
  const std::string ep = s.get(zmq::sockopt::last_endpoint);
  return std::stoi(ep.substr(ep.rfind(':') + 1));
}

TEST(DaemonPaths, TcpControlWithoutCurveKeysNeedsInsecureTcpControl) {
  TempSpace space;
  const std::string tcp = "tcp://127.0.0.1:" + std::to_string(free_port());
  {
    DaemonProcess refused(space, 1, "[control]\ntcp_endpoint = \"" + tcp + "\"\n");
    const int status = refused.wait_exit(std::chrono::seconds(10));
    ASSERT_TRUE(WIFEXITED(status)) << refused.log();
    EXPECT_EQ(WEXITSTATUS(status), 2) << refused.log();
    const std::string log = refused.log();
    EXPECT_NE(log.find("control.tcp_endpoint = \"" + tcp + "\" needs CurveZMQ keys"),
              std::string::npos)
        << log;
    EXPECT_NE(log.find("control.insecure_tcp_control = true"), std::string::npos) << log;
  }
  const std::string master = make_series(space, "s", 20);
  DaemonProcess daemon(space, 1,
                       "[control]\ntcp_endpoint = \"" + tcp + "\"\ninsecure_tcp_control = true\n");
  ControlClient over_tcp(tcp);
  ASSERT_TRUE(over_tcp.wait_ready()) << daemon.log();
  expect_serving(over_tcp, space, master, "ok.h5");
}

}  // namespace
}  // namespace azflow::testing
