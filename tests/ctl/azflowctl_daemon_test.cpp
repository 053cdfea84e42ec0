// azflowctl's commands end to end: the real azflowctl binary against a real azflowd (its stage
// processes, rings, sockets and SQLite store) on series made at test time. Sweeps, --after,
// priorities, watch, retry, drain, allowed roots, workers/stats/config and --json output.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <future>
#include <set>
#include <sstream>

#include "daemon/job_store.hpp"
#include "tests/daemon/daemon_test_support.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

using namespace azflow::testing;

const std::string kPoni = (kCliFixtures / "pilatus.poni").string();

/// Exit code, stdout and stderr of one azflowctl run.
struct Ctl {
  int code = -1;
  std::string out, err;
  [[nodiscard]] json parsed() const {
    json j = json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not one JSON document: " << out << err;
    return j;
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class CtlDaemonTest : public ::testing::Test {
 protected:
  TempSpace space_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<ControlClient> client_;

  /// Starts azflowd with 1 worker per stage, `toml` and the integrate delay (ms per frame).
  void start(const std::string& toml = "", int integrate_delay_ms = 0) {
    std::map<std::string, std::string> env;
    if (integrate_delay_ms > 0) {
      env["AZFLOW_TEST_DELAY_MS_INTEGRATE"] = std::to_string(integrate_delay_ms);
    }
    daemon_ = std::make_unique<DaemonProcess>(space_, 1, toml, env);
    client_ = std::make_unique<ControlClient>(daemon_->endpoint());
    ASSERT_TRUE(client_->wait_ready()) << daemon_->log();
  }

  /// Runs azflowctl (in the temp folder) with `args` against the daemon.
  Ctl ctl(const std::string& args) const {
    static std::atomic<int> counter{0};
    const std::string tag = std::to_string(counter.fetch_add(1));
    const fs::path out = space_.path("ctl" + tag + ".out"), err = space_.path("ctl" + tag + ".err");
    const std::string cmd = "cd " + quote(space_.root().string()) + " && " + AZFLOWCTL_BIN +
                            " --timeout 30 --endpoint " + quote(daemon_->endpoint()) + " " + args +
                            " >" + quote(out.string()) + " 2>" + quote(err.string()) +
                            " </dev/null";
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
  }

  /// `enqueue ARGS --json`: the created job ids (asserting exit 0).
  std::vector<std::int64_t> enqueue(const std::string& args) const {
    const Ctl r = ctl("--json enqueue " + args);
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<std::int64_t> ids;
    const json j = r.parsed();
    for (const json& job : j.value("jobs", json::array())) ids.push_back(job.value("job_id", 0));
    return ids;
  }

  /// `--json status ID`: the job object.
  json status(std::int64_t id) const {
    const Ctl r = ctl("--json status " + std::to_string(id));
    EXPECT_EQ(r.code, 0) << r.err;
    return r.parsed().value("job", json::object());
  }

  std::string out(const std::string& name) const { return space_.path(name).string(); }
};

// ---------------------------------------------------------------- enqueue: sweeps, globs

TEST_F(CtlDaemonTest, SweepMakesOneJobPerCombinationWithItsSettings) {
  make_series(space_, "s1", 20);
  make_series(space_, "s2", 20);
  start();
  const Ctl r = ctl("--json enqueue 'data/s*_master.h5' --poni " + quote(kPoni) +
                    " --sweep npt=100,200 --sweep unit=q_nm^-1,2th_deg --output-dir out");
  ASSERT_EQ(r.code, 0) << r.err;
  const json jobs = r.parsed()["jobs"];
  ASSERT_EQ(jobs.size(), 8u) << r.out;  // 2 datasets x 2 x 2
  std::set<std::string> outputs;
  std::set<std::tuple<std::string, std::int64_t, std::string>> seen;
  for (const json& job : jobs) {
    const json stored = status(job["job_id"]);
    const json& settings = stored["spec"]["settings"];
    const std::string npt = job["sweep"]["npt"], unit = job["sweep"]["unit"];
    EXPECT_EQ(settings["npt_rad"], std::stoll(npt)) << stored.dump();
    EXPECT_EQ(settings["unit"], unit) << stored.dump();
    ASSERT_EQ(stored["datasets"].size(), 1u);
    const std::string dataset = stored["datasets"][0];
    seen.emplace(dataset, settings["npt_rad"].get<std::int64_t>(), unit);
    const std::string output = stored["output"];
    outputs.insert(output);
    const std::string stem = fs::path(dataset).filename().string().substr(0, 2);  // s1, s2
    EXPECT_EQ(output, out("out/" + stem + "_npt" + npt + "_unit" +
                          (unit == "2th_deg" ? "2th_deg" : "q_nm-1") + ".h5"));
  }
  EXPECT_EQ(seen.size(), 8u);
  EXPECT_EQ(outputs.size(), 8u);
  std::string ids;
  for (const json& job : jobs) ids += " " + job["job_id"].dump();
  const Ctl w = ctl("wait --interval 0.05 --timeout 120" + ids);
  EXPECT_EQ(w.code, 0) << w.out << w.err << daemon_->log();
  for (const std::string& o : outputs) {
    EXPECT_TRUE(fs::exists(o)) << o;
    H5File f(o);
    const bool is_200 = o.find("npt200") != std::string::npos;
    EXPECT_EQ(f.dims("/entry/integrate/I"), (std::vector<hsize_t>{20, is_200 ? 200u : 100u}));
  }
  // the same sweep again: every output exists, nothing is enqueued
  const Ctl again = ctl("enqueue 'data/s*_master.h5' --poni " + quote(kPoni) +
                        " --sweep npt=100,200 --sweep unit=q_nm^-1,2th_deg --output-dir out");
  EXPECT_EQ(again.code, 2);
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  EXPECT_EQ(ctl("--json list --all").parsed()["jobs"].size(), 8u);
}

TEST_F(CtlDaemonTest, EnqueueErrorsExitTwoAndNameTheCause) {
  make_series(space_, "e", 10);
  start();
  Ctl r = ctl("enqueue 'data/nothing*.h5' --poni " + quote(kPoni));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'data/nothing*.h5' matches no file"), std::string::npos) << r.err;
  r = ctl("enqueue data/e_master.h5 --poni " + quote(kPoni) + " --sweep bins=1,2");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown key 'bins'"), std::string::npos) << r.err;
  r = ctl("enqueue data/e_master.h5 --poni " + quote(kPoni) + " --sweep unit=furlongs");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unit=furlongs"), std::string::npos) << r.err;
  r = ctl("enqueue data/e_master.h5 --poni " + quote(kPoni) + " --sweep npt=1,2 -o x.h5");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--output-dir"), std::string::npos) << r.err;
  r = ctl("enqueue data/e_master.h5 --poni " + quote(kPoni) + " --after 99");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("after[0]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no job 99"), std::string::npos) << r.err;
  r = ctl("enqueue data/e_master.h5 --config settings.json --npt 300");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--config settings.json and --npt"), std::string::npos) << r.err;
  r = ctl("enqueue data/e_master.h5");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--poni"), std::string::npos) << r.err;
  EXPECT_EQ(ctl("--json list --all").parsed()["jobs"].size(), 0u);  // nothing was enqueued
}

// --frames A:B (issue 15 item 5): the job integrates input frames A..B-1 in two shards (50 + 30
// frames), row k is input frame A + k, exactly as `azflow integrate --frames A:B`; failed frames
// are named by their input frame; ranges beyond the dataset and malformed ones exit 2.
TEST_F(CtlDaemonTest, FramesRangeIntegratesThoseInputFrames) {
  const std::string master = make_series(space_, "f", 120, {37, 90});
  start();
  const std::string settings = " --npt 200 --unit q_nm^-1 --error-model poisson";
  const auto id =
      enqueue("data/f_master.h5 --frames 30:110 --poni " + quote(kPoni) + settings + " -o part.h5");
  ASSERT_EQ(id.size(), 1u);
  EXPECT_EQ(ctl("wait --timeout 60 " + std::to_string(id[0])).code, 3) << daemon_->log();
  const json j = status(id[0]);
  EXPECT_EQ(j["frames_total"], 80) << j;
  EXPECT_EQ(j["shards"]["total"], 2) << j;
  EXPECT_EQ(j["spec"]["frames"], json::parse(R"({"first": 30, "last": 110})"));
  EXPECT_EQ(j["frames_failed"], 2);
  ASSERT_EQ(j["frame_errors"].size(), 2u) << j;
  EXPECT_EQ(j["frame_errors"][0]["frame"], 37);
  EXPECT_EQ(j["frame_errors"][1]["frame"], 90);
  const std::string reason = j["frame_errors"][0]["reason"];
  EXPECT_EQ(reason.rfind("frame 37 of ", 0), 0u) << reason;  // not the job frame (7)
  EXPECT_NE(reason.find("f_master.h5"), std::string::npos) << reason;

  const CommandResult ref = run_command(std::string(AZFLOW_BIN) + " integrate " + quote(master) +
                                        " --frames 30:110 --poni " + quote(kPoni) + settings +
                                        " --quiet -o " + quote(out("ref.h5")));
  ASSERT_EQ(ref.code, 3) << ref.output;  // frames 37 and 90 fail there too
  expect_same_as_reference(out("part.h5"), out("ref.h5"));
  H5File f(out("part.h5"));
  std::vector<double> expected_index;
  for (int k = 30; k < 110; ++k) expected_index.push_back(k);
  EXPECT_EQ(f.doubles("/entry/integrate/frame_index"), expected_index);
  EXPECT_EQ(f.dims("/entry/integrate/I"), (std::vector<hsize_t>{80, 200}));

  Ctl r = ctl("enqueue data/f_master.h5 --frames 100:130 --poni " + quote(kPoni));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("spec.frames"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("range 100:130 is empty or beyond the dataset's 120 frames"),
            std::string::npos)
      << r.err;
  r = ctl("enqueue data/f_master.h5 --frames 5:x --poni " + quote(kPoni));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--frames: malformed range '5:x'"), std::string::npos) << r.err;
  EXPECT_EQ(ctl("--json list --all").parsed()["jobs"].size(), 1u);  // nothing more enqueued

  // retry redoes job frames 7 and 60, read as input frames 37 and 90 of the mended series
  for (const auto& file : fs::directory_iterator(space_.path("data"))) fs::remove(file.path());
  make_series(space_, "f", 120);
  const CommandResult clean = run_command(std::string(AZFLOW_BIN) + " integrate " + quote(master) +
                                          " --frames 30:110 --poni " + quote(kPoni) + settings +
                                          " --quiet -o " + quote(out("clean.h5")));
  ASSERT_EQ(clean.code, 0) << clean.output;
  ASSERT_EQ(ctl("retry " + std::to_string(id[0])).code, 0);
  EXPECT_EQ(ctl("wait --timeout 60 " + std::to_string(id[0])).code, 0) << daemon_->log();
  expect_same_as_reference(out("part.h5"), out("clean.h5"));
}

TEST_F(CtlDaemonTest, ConfigImportsPyFaiSettingsAndSweepsOverThem) {
  const fs::path fixtures = fs::path(AZFLOW_SOURCE_DIR_PATH) / "tests/ctl/fixtures";
  start();
  const std::string master = (kCliFixtures / "pilatus_master.h5").string();
  Ctl r = ctl("--json enqueue " + quote(master) + " --config " +
              quote((fixtures / "gui_1d.json").string()) +
              " --sweep npt=100,200 --output-dir cfg --wait");
  ASSERT_EQ(r.code, 0) << r.out << r.err << daemon_->log();
  const json jobs = r.parsed()["jobs"];
  ASSERT_EQ(jobs.size(), 2u) << r.out;
  for (const json& job : jobs) {
    EXPECT_EQ(job["state"], "succeeded") << job;
    const json stored = status(job["job_id"]);
    const json& settings = stored["spec"]["settings"];
    EXPECT_EQ(settings["npt_rad"], job["job_id"] == jobs[0]["job_id"] ? 100 : 200);
    EXPECT_EQ(settings["unit"], "2th_deg");  // from the pyFAI file
    EXPECT_EQ(settings["polarization_factor"], 0.95);
    EXPECT_EQ(settings["radial_range"], json::array({1.5, 18.0}));
    EXPECT_EQ(settings["split"], "bbox");
    EXPECT_NE(stored["spec"]["dark_path"].get<std::string>().find("pilatus_dark.npy"),
              std::string::npos);
    EXPECT_TRUE(fs::exists(stored["output"].get<std::string>())) << stored;
  }
  r = ctl("enqueue " + quote(master) + " --config " +
          quote((fixtures / "unsupported_monitor.json").string()));
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'monitor_name'"), std::string::npos) << r.err;
  r = ctl("enqueue " + quote(master) + " --config " + quote((fixtures / "gui_1d.json").string()) +
          " --npt 300");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("and --npt"), std::string::npos) << r.err;
}

void expect_same_rows(const std::string& one, const std::string& two);

/// A daemon job's output carries its integration as a pyFAI WorkerConfig v5
/// (/entry/process/pyfai_config), as `azflow integrate`'s does: enqueued again with --config it
/// makes the same job settings and the same rows.
TEST_F(CtlDaemonTest, OutputConfigEnqueuesTheSameJobAgain) {
  const fs::path fixtures = fs::path(AZFLOW_SOURCE_DIR_PATH) / "tests/ctl/fixtures";
  start();
  const std::string master = (kCliFixtures / "pilatus_master.h5").string();
  Ctl r = ctl("--json enqueue " + quote(master) + " --config " +
              quote((fixtures / "gui_1d.json").string()) + " -o first.h5 --wait");
  ASSERT_EQ(r.code, 0) << r.out << r.err << daemon_->log();
  const json first = status(r.parsed()["jobs"][0]["job_id"]);
  const std::vector<std::string> text =
      H5File(out("first.h5")).strings("/entry/process/pyfai_config/data");
  ASSERT_EQ(text.size(), 1u);
  const json written = json::parse(text[0]);
  EXPECT_EQ(written.value("version", 0), 5) << text[0];
  EXPECT_EQ(written.value("application", ""), "worker") << text[0];
  std::ofstream(out("written.json")) << text[0];
  r = ctl("--json enqueue " + quote(master) + " --config written.json -o second.h5 --wait");
  ASSERT_EQ(r.code, 0) << r.out << r.err << daemon_->log();
  const json second = status(r.parsed()["jobs"][0]["job_id"]);
  EXPECT_EQ(second["state"], "succeeded") << second;
  const json& a = first["spec"]["settings"];
  const json& b = second["spec"]["settings"];
  EXPECT_EQ(a, b);
  EXPECT_EQ(first["spec"]["dark_path"], second["spec"]["dark_path"]);
  EXPECT_EQ(first["spec"]["flat_path"], second["spec"]["flat_path"]);
  EXPECT_EQ(first["spec"]["mask_path"], second["spec"]["mask_path"]);
  expect_same_rows(out("first.h5"), out("second.h5"));
  // without a dummy option the dtype's maximum is the dummy (uint32 here): written explicitly
  r = ctl("--json enqueue " + quote(master) + " --poni " + quote(kPoni) +
          " --npt 150 -o third.h5 --wait");
  ASSERT_EQ(r.code, 0) << r.out << r.err << daemon_->log();
  const json third =
      json::parse(H5File(out("third.h5")).strings("/entry/process/pyfai_config/data").at(0));
  EXPECT_EQ(third.value("val_dummy", 0.0), 4294967295.0) << third;
  std::ofstream(out("third.json")) << third.dump();
  r = ctl("--json enqueue " + quote(master) + " --config third.json -o fourth.h5 --wait");
  ASSERT_EQ(r.code, 0) << r.out << r.err << daemon_->log();
  expect_same_rows(out("third.h5"), out("fourth.h5"));
}

/// Rows of two outputs equal (NaN where either has NaN).
void expect_same_rows(const std::string& one, const std::string& two) {
  const std::vector<double> I1 = H5File(one).doubles("/entry/integrate/I");
  const std::vector<double> I2 = H5File(two).doubles("/entry/integrate/I");
  ASSERT_FALSE(I1.empty());
  ASSERT_EQ(I1.size(), I2.size());
  for (std::size_t i = 0; i < I1.size(); ++i) {
    if (std::isnan(I1[i])) {
      EXPECT_TRUE(std::isnan(I2[i])) << i;
    } else {
      EXPECT_EQ(I1[i], I2[i]) << i;
    }
  }
}

// ---------------------------------------------------------------- --after and priorities

TEST_F(CtlDaemonTest, AfterHoldsTheJobUntilItsDependencySucceeded) {
  make_series(space_, "a", 150);
  make_series(space_, "b", 20);
  start("", 10);
  const auto a = enqueue("data/a_master.h5 --poni " + quote(kPoni));
  ASSERT_EQ(a.size(), 1u);
  const auto b = enqueue("data/b_master.h5 --poni " + quote(kPoni) + " --after " +
                         std::to_string(a[0]) + " --priority 9");
  ASSERT_EQ(b.size(), 1u);
  const json held = status(b[0]);
  EXPECT_EQ(held["state"], "queued");
  EXPECT_EQ(held["after"], json::array({a[0]}));
  EXPECT_EQ(held["waiting_for"], json::array({a[0]}));
  EXPECT_EQ(held["priority"], 9);
  const Ctl w = ctl("wait --interval 0.05 --timeout 120 " + std::to_string(b[0]));
  EXPECT_EQ(w.code, 0) << w.out << w.err << daemon_->log();
  const json ja = status(a[0]), jb = status(b[0]);
  EXPECT_EQ(ja["state"], "succeeded");
  ASSERT_TRUE(ja["finished"].is_string() && jb["started"].is_string()) << ja << jb;
  // ISO 8601 UTC with milliseconds: text order is time order
  EXPECT_LE(ja["finished"].get<std::string>(), jb["started"].get<std::string>()) << ja << jb;
}

TEST_F(CtlDaemonTest, AfterFailsTheDependentsWhenADependencyIsCancelledOrFails) {
  make_series(space_, "a", 300);
  make_series(space_, "b", 10);
  start("", 10);
  const auto a = enqueue("data/a_master.h5 --poni " + quote(kPoni));
  const auto b =
      enqueue("data/b_master.h5 --poni " + quote(kPoni) + " --after " + std::to_string(a[0]));
  const auto c =
      enqueue("data/b_master.h5 --poni " + quote(kPoni) + " --after " + std::to_string(b[0]));
  ASSERT_TRUE(a.size() == 1 && b.size() == 1 && c.size() == 1);
  EXPECT_EQ(ctl("cancel " + std::to_string(a[0])).code, 0);
  EXPECT_EQ(ctl("wait --timeout 60 " + std::to_string(b[0])).code, 4);
  const json jb = status(b[0]);
  EXPECT_EQ(jb["state"], "failed");
  EXPECT_EQ(jb["error"], "dependency job " + std::to_string(a[0]) + " was cancelled");
  EXPECT_TRUE(jb["started"].is_null());
  EXPECT_EQ(ctl("wait --timeout 60 " + std::to_string(c[0])).code, 4);
  const std::string ec = status(c[0])["error"];
  EXPECT_EQ(ec.rfind("dependency job " + std::to_string(b[0]) + " failed: dependency job " +
                         std::to_string(a[0]) + " was cancelled",
                     0),
            0u)
      << ec;

  // an input that does not exist is refused at enqueue (issue 17 item 7): exit 2, the request
  // field and the file named, no job created
  const Ctl bad = ctl("--json enqueue missing_master.h5 --poni " + quote(kPoni));
  EXPECT_EQ(bad.code, 2) << bad.err;
  EXPECT_NE(bad.err.find("spec.datasets"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("missing_master.h5"), std::string::npos) << bad.err;
  EXPECT_TRUE(bad.parsed().value("jobs", json::array()).empty()) << bad.out;
}

/// A dependency that ends badly at run time (an input that passed the enqueue checks): with a
/// warning (one corrupt frame), or with every frame failed (its data file gone while queued).
TEST_F(CtlDaemonTest, AfterFailsTheDependentsOfAJobThatFailedAtRunTime) {
  make_series(space_, "slow", 60);
  make_series(space_, "w", 10, {3});
  make_series(space_, "gone", 10);
  make_series(space_, "b", 10);
  start("", 10);
  const auto slow = enqueue("data/slow_master.h5 --poni " + quote(kPoni));
  const auto w = enqueue("data/w_master.h5 --poni " + quote(kPoni));
  const auto gone =
      enqueue("data/gone_master.h5 --poni " + quote(kPoni) + " --after " + std::to_string(slow[0]));
  const auto b1 =
      enqueue("data/b_master.h5 --poni " + quote(kPoni) + " --after " + std::to_string(w[0]));
  const auto b2 = enqueue("data/b_master.h5 --poni " + quote(kPoni) + " --after " +
                          std::to_string(gone[0]) + " -o b2.h5");
  ASSERT_TRUE(slow.size() == 1 && w.size() == 1 && gone.size() == 1 && b1.size() == 1 &&
              b2.size() == 1);
  // enqueue checked gone's input; it disappears while the job waits for `slow`
  fs::remove(space_.path("data/gone_data_000001.h5"));
  EXPECT_EQ(ctl("wait --timeout 60 " + std::to_string(b1[0])).code, 4);
  const json j1 = status(b1[0]);
  EXPECT_EQ(j1["state"], "failed") << j1;
  EXPECT_EQ(j1["error"].get<std::string>().rfind(
                "dependency job " + std::to_string(w[0]) + " ended with a warning", 0),
            0u)
      << j1;
  EXPECT_TRUE(j1["started"].is_null()) << j1;
  EXPECT_EQ(ctl("wait --timeout 60 " + std::to_string(b2[0])).code, 4);
  const json jg = status(gone[0]);
  const json j2 = status(b2[0]);
  EXPECT_NE(jg["state"], "succeeded") << jg;
  EXPECT_EQ(j2["state"], "failed") << j2;
  EXPECT_EQ(j2["error"].get<std::string>().rfind("dependency job " + std::to_string(gone[0]), 0),
            0u)
      << j2;
  EXPECT_NE(j2["error"].get<std::string>().find("gone_data_000001.h5"), std::string::npos) << j2;
  EXPECT_TRUE(j2["started"].is_null()) << j2;
  EXPECT_EQ(status(slow[0])["state"], "succeeded");
}

TEST_F(CtlDaemonTest, HigherPriorityQueuedLastStartsFirst) {
  make_series(space_, "busy", 400);
  make_series(space_, "q", 20);
  start("max_running_jobs = 1\n", 10);
  const auto busy = enqueue("data/busy_master.h5 --poni " + quote(kPoni));
  ASSERT_EQ(busy.size(), 1u);
  ASSERT_TRUE(wait_until(*client_, busy[0],
                         [](const json& j) { return j.value("state", "") == "running"; }));
  const auto low1 = enqueue("data/q_master.h5 --poni " + quote(kPoni));
  const auto low2 = enqueue("data/q_master.h5 --poni " + quote(kPoni) + " --priority 0");
  const auto high = enqueue("data/q_master.h5 --poni " + quote(kPoni) + " --priority 5");
  ASSERT_TRUE(low1.size() == 1 && low2.size() == 1 && high.size() == 1);
  EXPECT_EQ(status(high[0])["state"], "queued");  // the busy job still runs
  const Ctl w = ctl("wait --interval 0.05 --timeout 120 " + std::to_string(low1[0]) + " " +
                    std::to_string(low2[0]) + " " + std::to_string(high[0]));
  ASSERT_EQ(w.code, 0) << w.out << w.err;
  const std::string t_busy = status(busy[0])["finished"], t_high = status(high[0])["started"],
                    t_low1 = status(low1[0])["started"], t_low2 = status(low2[0])["started"];
  EXPECT_LE(t_busy, t_high);
  EXPECT_LT(t_high, t_low1);  // priority 5 first, then submission order among priority 0
  EXPECT_LT(t_low1, t_low2);
  // one at a time: each started after the previous one finished
  EXPECT_LE(status(high[0])["finished"].get<std::string>(), t_low1);
}

TEST_F(CtlDaemonTest, DependenciesAndPrioritySurviveADaemonCrash) {
  make_series(space_, "a", 200);
  make_series(space_, "b", 10);
  start("", 10);
  const auto a = enqueue("data/a_master.h5 --poni " + quote(kPoni));
  const auto b = enqueue("data/b_master.h5 --poni " + quote(kPoni) + " --priority 4 --after " +
                         std::to_string(a[0]));
  ASSERT_TRUE(a.size() == 1 && b.size() == 1);
  ASSERT_TRUE(wait_until(*client_, a[0], [](const json& j) {
    return j.value("state", "") == "running";
  })) << daemon_->log();
  daemon_->stop(SIGKILL);
  start("", 10);
  const json held = status(b[0]);
  EXPECT_EQ(held["state"], "queued") << held;
  EXPECT_EQ(held["priority"], 4);
  EXPECT_EQ(held["waiting_for"], json::array({a[0]})) << held;
  EXPECT_EQ(ctl("wait --timeout 120 " + std::to_string(b[0])).code, 0) << daemon_->log();
  EXPECT_LE(status(a[0])["finished"].get<std::string>(),
            status(b[0])["started"].get<std::string>());
}

TEST_F(CtlDaemonTest, WaitDrawsProgressBarsOnATerminal) {
  if (run_command("command -v script").code != 0) GTEST_SKIP() << "no script(1) for a pty";
  make_series(space_, "t", 60);
  start("", 10);
  const auto ids = enqueue("data/t_master.h5 data/t_master.h5 --poni " + quote(kPoni));
  ASSERT_EQ(ids.size(), 2u);
  // script(1) gives azflowctl a pseudo-terminal; -e passes its exit code on
  const std::string inner = std::string(AZFLOWCTL_BIN) + " --timeout 30 --endpoint " +
                            daemon_->endpoint() + " wait --interval 0.05 " +
                            std::to_string(ids[0]) + " " + std::to_string(ids[1]);
  const CommandResult r = run_command("script -qec " + quote(inner) + " /dev/null </dev/null");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("\r\033[Kjob " + std::to_string(ids[1]) + " ["), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("\033[2A"), std::string::npos) << r.output;  // two bars redrawn
  EXPECT_NE(r.output.find("[##############################] 60/60 frames"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("frames/s  ETA "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("job " + std::to_string(ids[1]) + " succeeded: 60/60 frames"),
            std::string::npos)
      << r.output;
}

// ---------------------------------------------------------------- watch

TEST_F(CtlDaemonTest, WatchPrintsALineForEveryFrame) {
  make_series(space_, "hold", 300);
  make_series(space_, "w", 40);
  start("", 10);
  const auto hold = enqueue("data/hold_master.h5 --poni " + quote(kPoni));
  const auto w = enqueue("data/w_master.h5 --poni " + quote(kPoni) + " --npt 200 --after " +
                         std::to_string(hold[0]));
  ASSERT_TRUE(hold.size() == 1 && w.size() == 1);
  auto human = std::async(std::launch::async, [&] { return ctl("watch " + std::to_string(w[0])); });
  const Ctl r = ctl("--json watch " + std::to_string(w[0]));  // subscribed before w starts
  const Ctl h = human.get();
  EXPECT_EQ(r.code, 0) << r.err;
  std::set<std::int64_t> frames;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const json j = json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    EXPECT_EQ(j["job"], w[0]);
    EXPECT_EQ(j["status"], "ok") << line;
    EXPECT_EQ(j["bins"], 200);
    EXPECT_GT(j["sum"].get<double>(), 0) << line;
    EXPECT_GE(j["max"].get<double>(), j["sum"].get<double>() / 200) << line;
    frames.insert(j["frame"].get<std::int64_t>());
  }
  EXPECT_EQ(frames.size(), 40u) << r.out;
  EXPECT_EQ(*frames.begin(), 0);
  EXPECT_EQ(*frames.rbegin(), 39);
  EXPECT_NE(r.err.find("succeeded"), std::string::npos) << r.err;
  EXPECT_EQ(h.code, 0) << h.err;
  EXPECT_NE(h.out.find("frame 39 ok  sum "), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("(q_nm^-1 = "), std::string::npos) << h.out;
}

// ---------------------------------------------------------------- retry

TEST_F(CtlDaemonTest, RetryRedoesOnlyTheFailedFramesAndRewritesTheOutput) {
  const std::string master = make_series(space_, "r", 120, {37, 90});
  start();
  const auto id = enqueue("data/r_master.h5 --poni " + quote(kPoni) +
                          " --npt 200 --unit q_nm^-1 --error-model poisson -o out.h5");
  ASSERT_EQ(id.size(), 1u);
  const std::string job = std::to_string(id[0]);
  EXPECT_EQ(ctl("wait --timeout 60 " + job).code, 3);
  json j = status(id[0]);
  EXPECT_EQ(j["frames_failed"], 2);
  ASSERT_EQ(j["frame_errors"].size(), 2u) << j;
  EXPECT_EQ(j["frame_errors"][0]["frame"], 37);
  const std::int64_t shards_before = j["shards"]["total"];

  for (const auto& f : fs::directory_iterator(space_.path("data"))) fs::remove(f.path());
  make_series(space_, "r", 120);  // the same series without the corrupt chunks
  reference_integrate(master, out("ref.h5"));
  const Ctl r = ctl("--json retry " + job);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.parsed()["frames_retried"], 2);
  EXPECT_EQ(ctl("wait --timeout 60 " + job).code, 0);
  j = status(id[0]);
  EXPECT_EQ(j["state"], "succeeded") << j;
  EXPECT_EQ(j["frames_done"], 120);
  EXPECT_EQ(j["frames_failed"], 0);
  EXPECT_EQ(j["frame_errors"].size(), 0u);
  EXPECT_EQ(j["shards"]["total"].get<std::int64_t>(), shards_before + 2);  // frames 37 and 90

  H5File f(out("out.h5"));
  H5File ref(out("ref.h5"));
  EXPECT_EQ(f.doubles("/entry/integrate/I"), ref.doubles("/entry/integrate/I"));
  EXPECT_EQ(f.doubles("/entry/process/frames_failed"), std::vector<double>{0});
  const auto a = f.doubles("/entry/sum/sum_signal"), b = ref.doubles("/entry/sum/sum_signal");
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-9 * std::max(1.0, b[i]));

  const Ctl again = ctl("retry " + job);  // succeeded: nothing to retry
  EXPECT_EQ(again.code, 2);
  EXPECT_NE(again.err.find("nothing to retry"), std::string::npos) << again.err;
  EXPECT_EQ(ctl("retry 99").code, 2);
}

TEST_F(CtlDaemonTest, RetryOfACancelledJobRunsItsUnfinishedShards) {
  const std::string master = make_series(space_, "c", 300);
  reference_integrate(master, out("ref.h5"));
  start("", 10);
  const auto id = enqueue("data/c_master.h5 --poni " + quote(kPoni) +
                          " --npt 200 --unit q_nm^-1 --error-model poisson -o out.h5");
  ASSERT_EQ(id.size(), 1u);
  ASSERT_TRUE(wait_until(*client_, id[0], [](const json& j) {
    return j.value("frames_done", 0) >= 50;
  })) << daemon_->log();
  EXPECT_EQ(ctl("cancel " + std::to_string(id[0])).code, 0);
  EXPECT_EQ(ctl("wait --timeout 60 " + std::to_string(id[0])).code, 5);
  const std::int64_t done_before = status(id[0])["frames_done"];
  EXPECT_LT(done_before, 300);
  const Ctl r = ctl("--json retry " + std::to_string(id[0]));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.parsed()["frames_retried"], 0);
  EXPECT_GT(r.parsed()["shards_queued"].get<std::int64_t>(), 0);
  EXPECT_EQ(ctl("wait --timeout 120 " + std::to_string(id[0])).code, 0) << daemon_->log();
  const json j = status(id[0]);
  EXPECT_EQ(j["frames_done"], 300);
  EXPECT_EQ(j["frames_failed"], 0);
  H5File f(out("out.h5"));
  H5File ref(out("ref.h5"));
  EXPECT_EQ(f.doubles("/entry/integrate/I"), ref.doubles("/entry/integrate/I"));
  EXPECT_EQ(f.doubles("/entry/integrate/I_errors"), ref.doubles("/entry/integrate/I_errors"));
}

// ---------------------------------------------------------------- drain, allowed roots

TEST_F(CtlDaemonTest, DrainFinishesAcceptedJobsAndRefusesNewOnes) {
  make_series(space_, "d", 200);
  start("max_running_jobs = 1\n", 10);
  const auto running = enqueue("data/d_master.h5 --poni " + quote(kPoni));
  const auto queued = enqueue("data/d_master.h5 --poni " + quote(kPoni));
  const Ctl d = ctl("--json drain");
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(d.parsed()["draining"], true);
  EXPECT_EQ(d.parsed()["active_jobs"].size(), 2u);
  const Ctl refused = ctl("enqueue data/d_master.h5 --poni " + quote(kPoni));
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.err.find("draining"), std::string::npos) << refused.err;
  EXPECT_EQ(ctl("--json status").parsed()["daemon"]["draining"], true);
  const Ctl done = ctl("drain --wait --shutdown");
  EXPECT_EQ(done.code, 0) << done.err;
  EXPECT_NE(done.out.find("drained"), std::string::npos) << done.out;
  EXPECT_EQ(daemon_->wait_exit(std::chrono::seconds(30)), 0);
  azflow::daemon::JobStore store(space_.path("state/jobs.sqlite"));
  EXPECT_EQ(store.job(running[0])->state, azflow::daemon::JobState::kSucceeded);
  EXPECT_EQ(store.job(queued[0])->state, azflow::daemon::JobState::kSucceeded);
  EXPECT_EQ(store.list(std::nullopt, true).size(), 2u);
}

TEST_F(CtlDaemonTest, AllowedRootsRefuseWithTheField) {
  make_series(space_, "in", 10);
  fs::create_directories(space_.path("outside"));
  fs::create_directories(space_.path("out"));
  fs::create_symlink(space_.path("outside"), space_.path("data/escape"));
  fs::copy(kCliFixtures / "pilatus_master.h5", space_.path("outside/p_master.h5"));
  start("allowed_input_roots = [\"" + space_.path("data").string() +
        "\"]\nallowed_output_roots = [\"" + space_.path("out").string() + "\"]\n");
  const std::string poni = " --poni " + quote(kPoni);
  Ctl r = ctl("enqueue outside/p_master.h5" + poni);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("spec.datasets[0]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("allowed_input_roots"), std::string::npos) << r.err;
  r = ctl("enqueue data/escape/p_master.h5" + poni);  // a symlink out of the root
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("spec.datasets[0]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(space_.path("outside/p_master.h5").string()), std::string::npos) << r.err;
  r = ctl("enqueue data/../outside/p_master.h5" + poni);
  EXPECT_EQ(r.code, 2);
  r = ctl("enqueue data/in_master.h5" + poni + " -o elsewhere.h5");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("spec.output_path"), std::string::npos) << r.err;
  r = ctl("enqueue data/in_master.h5" + poni + " --dark outside/d.npy");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("spec.dark_path"), std::string::npos) << r.err;
  const auto ok = enqueue("data/in_master.h5" + poni + " -o out/in.h5");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ctl("wait --timeout 60 " + std::to_string(ok[0])).code, 0);
  const auto dflt = enqueue("data/in_master.h5" + poni);  // the daemon's own output folder
  ASSERT_EQ(dflt.size(), 1u);
  EXPECT_EQ(ctl("wait --timeout 60 " + std::to_string(dflt[0])).code, 0);
}

// ---------------------------------------------------------------- inspection commands

TEST_F(CtlDaemonTest, WorkersStatsConfigListStatusInTablesAndJson) {
  make_series(space_, "i", 30);
  start("heartbeat_interval_ms = 100\n[rings]\nframes_slots = 8\n");
  Ctl r = ctl("--json workers");  // no job yet: only the reducer
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.parsed()["pipeline_started"], false);
  const auto id = enqueue("data/i_master.h5 --poni " + quote(kPoni));
  ASSERT_EQ(ctl("wait --timeout 60 " + std::to_string(id[0])).code, 0);

  std::map<std::string, json> by_role;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  do {  // counters come with the stages' heartbeats
    r = ctl("--json workers");
    ASSERT_EQ(r.code, 0) << r.err;
    const json workers = r.parsed();
    for (const json& w : workers["workers"]) by_role[w["role"].get<std::string>()] = w;
  } while (by_role["integrate"].value("frames_out", 0) < 30 && Clock::now() < deadline);
  ASSERT_EQ(by_role.size(), 4u) << r.out;
  const auto pids = stage_pids(*client_);
  for (const char* role : {"source", "decompress", "integrate"}) {
    EXPECT_EQ(by_role[role]["pid"], pids.at(std::string(role) + "/0")) << role;
    EXPECT_EQ(by_role[role]["device"], "cpu") << role;
    EXPECT_EQ(by_role[role]["state"], "running") << role;
  }
  EXPECT_EQ(by_role["integrate"]["frames_out"], 30);
  EXPECT_EQ(by_role["integrate"]["ring"], "/azflow." + space_.instance() + ".frames");
  EXPECT_EQ(by_role["reducer"]["pid"], daemon_->pid());
  r = ctl("workers");
  EXPECT_NE(r.out.find("DEVICE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("integrate"), std::string::npos) << r.out;

  r = ctl("--json stats");
  ASSERT_EQ(r.code, 0) << r.err;
  const json s = r.parsed();
  EXPECT_EQ(s["jobs"]["succeeded"], 1);
  EXPECT_EQ(s["jobs"]["queued"], 0);
  EXPECT_EQ(s["frames_done"], 30);
  EXPECT_EQ(s["frames_since_start"], 30);
  EXPECT_GT(s["frames_per_s_overall"].get<double>(), 0);
  ASSERT_EQ(s["rings"].size(), 3u);
  EXPECT_EQ(s["rings"][1]["capacity"], 8);
  EXPECT_NE(ctl("stats").out.find("succeeded 1"), std::string::npos);

  r = ctl("--json config");
  ASSERT_EQ(r.code, 0) << r.err;
  const json c = r.parsed();
  EXPECT_EQ(c["instance"], space_.instance());
  EXPECT_EQ(c["rings"]["frames_slots"], 8);
  EXPECT_EQ(c["allowed_input_roots"], json::array({"/"}));
  EXPECT_NE(ctl("config").out.find("allowed_output_roots = ['/']"), std::string::npos);

  r = ctl("--json list --all");
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(r.parsed()["jobs"].size(), 1u);
  EXPECT_EQ(r.parsed()["jobs"][0]["frames_done"], 30);
  const json j = status(id[0]);
  EXPECT_EQ(j["frames_total"], 30);
  EXPECT_GT(j["frames_per_s"].get<double>(), 0);
  EXPECT_TRUE(j["eta_s"].is_null());  // final
  r = ctl("status " + std::to_string(id[0]));
  EXPECT_NE(r.out.find("frames/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("npt_rad=1000"), std::string::npos) << r.out;
  EXPECT_EQ(ctl("--json status").parsed()["daemon"]["live_endpoint"], daemon_->live_endpoint());
  EXPECT_EQ(ctl("cancel " + std::to_string(id[0])).code, 2);  // already final
  EXPECT_EQ(ctl("--json shutdown").code, 0);
  EXPECT_EQ(daemon_->wait_exit(std::chrono::seconds(30)), 0);
  const CommandResult gone = run_command(std::string(AZFLOWCTL_BIN) + " --timeout 2 --endpoint " +
                                         quote(daemon_->endpoint()) + " status");
  EXPECT_EQ(gone.code, 1) << gone.output;  // nobody answers now
}

}  // namespace
