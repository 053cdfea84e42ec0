// End-to-end tests of azflowd: a real daemon process with its real stage processes, shared-memory
// rings, ZeroMQ sockets and SQLite store, on the committed Eiger-style fixture (checked against
// pyFAI 0.21) and on longer series generated at test time (checked against `azflow integrate` on
// the same data, itself checked against pyFAI by tests/cli).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "daemon/job_store.hpp"
#include "tests/daemon/daemon_test_support.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

using namespace azflow::testing;
using azflow::testing::H5File;

constexpr std::size_t kBins = 200;

/// Relative errors of `cand` vs `ref` on bins with count > 0.5.
std::vector<double> relative_errors(const std::vector<double>& ref, const std::vector<double>& cand,
                                    const std::vector<double>& count) {
  std::vector<double> errors;
  for (std::size_t i = 0; i < ref.size() && i < cand.size(); ++i) {
    if (count[i] <= 0.5) continue;
    errors.push_back(ref[i] == 0 ? std::abs(cand[i])
                                 : std::abs(cand[i] - ref[i]) / std::abs(ref[i]));
  }
  return errors;
}

/// ARCHITECTURE invariant 4: max relative error <= 1e-3, median <= 1e-5.
void expect_matches_pyfai(const std::vector<double>& ref, const std::vector<double>& cand,
                          const std::vector<double>& count, const char* what) {
  ASSERT_EQ(ref.size(), cand.size()) << what;
  auto errors = relative_errors(ref, cand, count);
  ASSERT_GT(errors.size(), ref.size() / 2) << what;
  std::sort(errors.begin(), errors.end());
  EXPECT_LE(errors.back(), 1e-3) << what;
  EXPECT_LE(errors[errors.size() / 2], 1e-5) << what;
}

/// The frames named in failed_frames; every other row must be finite somewhere.
std::vector<double> failed_frames(const std::string& out) {
  H5File f(out);
  if (!f.exists("/entry/process/failed_frames/frame")) return {};
  return f.doubles("/entry/process/failed_frames/frame");
}

class DaemonTest : public ::testing::Test {
 protected:
  TempSpace space_;
  std::string out(const std::string& name = "out.h5") const { return space_.path(name).string(); }
};

// ---------------------------------------------------------------- results

TEST_F(DaemonTest, FixtureJobMatchesPyFaiAndIsPublishedLive) {
  // The axes reach the live feed through the main loop (an integrate worker's plan_axes), the
  // frames through the results ring: with a warm plan a 3-frame job's frames could all be
  // published before the axes were known. 300 ms after each reduced frame lets them arrive.
  DaemonProcess daemon(space_, 2, "", {{"AZFLOW_TEST_DELAY_MS_REDUCER", "300"}});
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready()) << daemon.log();
  zmq::context_t context;
  zmq::socket_t sub(context, zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "job.");
  sub.connect(daemon.live_endpoint());
  const std::string master = (kCliFixtures / "pilatus_master.h5").string();
  // PUB/SUB join: a subscription reaches the publisher some time after connect (long on a
  // loaded machine). A first job runs until one of its frames arrives, so the subscription is
  // known to be live before the job under test starts.
  zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
  bool live = false;
  for (int attempt = 0; attempt < 10 && !live; ++attempt) {
    const std::int64_t warm =
        ctl_enqueue(daemon.endpoint(), master, out("warm" + std::to_string(attempt) + ".h5"));
    ASSERT_GT(warm, 0);
    EXPECT_EQ(ctl_wait(daemon.endpoint(), warm), 0);
    while (zmq::poll(&item, 1, std::chrono::milliseconds(300)) > 0) {
      zmq::message_t part;
      ASSERT_TRUE(sub.recv(part));
      live = true;
    }
  }
  ASSERT_TRUE(live) << "nothing ever arrived on the live feed";

  const std::int64_t id = ctl_enqueue(daemon.endpoint(), master, out());
  ASSERT_GT(id, 0);
  EXPECT_EQ(ctl_wait(daemon.endpoint(), id), 0);
  const json job = wait_job(client, id);
  ASSERT_EQ(job.value("state", ""), "succeeded") << job.dump() << daemon.log();
  EXPECT_EQ(job.value("frames_done", 0), 3);
  EXPECT_FALSE(fs::exists(out() + ".partial"));

  H5File ref((kCliFixtures / "pilatus_ref.h5").string());
  H5File f(out());
  EXPECT_EQ(f.dims("/entry/integrate/I"), (std::vector<hsize_t>{3, kBins}));
  const auto count = ref.doubles("/entry/integrate/count");
  expect_matches_pyfai(ref.doubles("/entry/integrate/I"), f.doubles("/entry/integrate/I"), count,
                       "I");
  expect_matches_pyfai(ref.doubles("/entry/integrate/sigma"),
                       f.doubles("/entry/integrate/I_errors"), count, "sigma");
  EXPECT_EQ(f.doubles("/entry/process/parameters/job_id"), std::vector<double>{double(id)});
  EXPECT_EQ(f.strings("/entry/process/parameters/daemon_version").size(), 1u);
  EXPECT_EQ(f.string_attr("/entry", "default"), std::vector<std::string>{"integrate"});
  EXPECT_EQ(f.doubles("/entry/process/frames_failed"), std::vector<double>{0});

  // live: one multipart message per frame (topic, header, I, sigma); radial axis on frame 0
  std::set<std::int64_t> frames;
  std::size_t radial_sent = 0;
  while (frames.size() < 3 && zmq::poll(&item, 1, std::chrono::milliseconds(2000)) > 0) {
    std::vector<zmq::message_t> parts(4);
    for (auto& p : parts) ASSERT_TRUE(sub.recv(p));
    EXPECT_EQ(parts[0].to_string(), "job." + std::to_string(id));
    const json header = json::parse(parts[1].to_string());
    frames.insert(header.value("frame", -1));
    EXPECT_EQ(parts[2].size(), kBins * sizeof(float));
    EXPECT_EQ(parts[3].size(), kBins * sizeof(float));
    if (header.contains("radial")) {
      EXPECT_EQ(header["radial"].size(), kBins);
      ++radial_sent;
    }
  }
  EXPECT_EQ(frames, (std::set<std::int64_t>{0, 1, 2}));
  EXPECT_GE(radial_sent, 1u);
}

// The job spec's "format": NXazint and pyFAI save1D text come out of the daemon as out of
// `azflow integrate` (whose files tests/reduce/output_formats_test.py compares with pyFAI).
TEST_F(DaemonTest, JobFormatsNxAzintAndXyFrames) {
  DaemonProcess daemon(space_, 2);
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready()) << daemon.log();
  const std::string master = (kCliFixtures / "pilatus_master.h5").string();
  // ctl_enqueue appends its last argument to "--mode ": the format option rides along.
  const std::int64_t azint =
      ctl_enqueue(daemon.endpoint(), master, out("a.h5"), "split --format nxazint");
  const std::int64_t xy =
      ctl_enqueue(daemon.endpoint(), master, out("f.xy"), "bulk --format xy-frames");
  ASSERT_GT(azint, 0);
  ASSERT_GT(xy, 0);
  EXPECT_EQ(ctl_wait(daemon.endpoint(), azint), 0) << daemon.log();
  EXPECT_EQ(ctl_wait(daemon.endpoint(), xy), 0) << daemon.log();

  H5File ref((kCliFixtures / "pilatus_ref.h5").string());
  const auto count = ref.doubles("/entry/integrate/count");
  H5File f(out("a.h5"));
  EXPECT_EQ(f.strings("/entry/definition"), std::vector<std::string>{"NXazint1d"});
  EXPECT_EQ(f.string_attr("/entry/reduction/input", "NX_class"),
            std::vector<std::string>{"NXparameters"});
  EXPECT_EQ(f.doubles("/entry/reduction/input/job_id"), std::vector<double>{double(azint)});
  EXPECT_EQ(f.dims("/entry/data/I"), (std::vector<hsize_t>{3, kBins}));
  expect_matches_pyfai(ref.doubles("/entry/integrate/I"), f.doubles("/entry/data/I"), count, "I");
  EXPECT_EQ(f.dims("/entry/data/norm"), std::vector<hsize_t>{kBins});

  const std::vector<double> ref_i = ref.doubles("/entry/integrate/I");
  for (std::size_t frame = 0; frame < 3; ++frame) {
    const fs::path file = space_.path("f_0000" + std::to_string(frame) + ".xy");
    std::ifstream in(file);
    ASSERT_TRUE(in) << file << daemon.log();
    std::string line;
    std::vector<double> intensity;
    bool header = false;
    while (std::getline(in, line)) {
      if (line.rfind("# == pyFAI calibration ==", 0) == 0) header = true;
      if (line.empty() || line[0] == '#') continue;
      std::istringstream row(line);
      double radial = 0, i = 0, sigma = 0;
      row >> radial >> i >> sigma;
      intensity.push_back(i);
    }
    EXPECT_TRUE(header) << file;
    ASSERT_EQ(intensity.size(), kBins) << file;
    const std::vector<double> ref_frame(ref_i.begin() + frame * kBins,
                                        ref_i.begin() + (frame + 1) * kBins);
    const std::vector<double> count_frame(count.begin() + frame * kBins,
                                          count.begin() + (frame + 1) * kBins);
    expect_matches_pyfai(ref_frame, intensity, count_frame, "xy I");
  }
}

TEST_F(DaemonTest, TwoDatasetsAtOnceSplitAndBulk) {
  const std::string a = make_series(space_, "a", 230);
  const std::string b = make_series(space_, "b", 170);
  reference_integrate(a, out("a_ref.h5"));
  reference_integrate(b, out("b_ref.h5"));
  DaemonProcess daemon(space_, 2);
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready());
  const std::int64_t ja = ctl_enqueue(daemon.endpoint(), a, out("a.h5"), "split");
  const std::int64_t jb = ctl_enqueue(daemon.endpoint(), b, out("b.h5"), "bulk");
  ASSERT_GT(ja, 0);
  ASSERT_GT(jb, 0);
  EXPECT_EQ(wait_job(client, ja).value("state", ""), "succeeded") << daemon.log();
  EXPECT_EQ(wait_job(client, jb).value("state", ""), "succeeded") << daemon.log();
  expect_same_as_reference(out("a.h5"), out("a_ref.h5"));
  expect_same_as_reference(out("b.h5"), out("b_ref.h5"));
}

TEST_F(DaemonTest, CorruptChunkFailsOnlyThatFrame) {
  const std::string master = make_series(space_, "c", 120, {37});
  reference_integrate(master, out("ref.h5"));
  DaemonProcess daemon(space_, 2);
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready());
  const std::int64_t id = ctl_enqueue(daemon.endpoint(), master, out());
  EXPECT_EQ(ctl_wait(daemon.endpoint(), id), 3);  // warning
  const json job = wait_job(client, id);
  EXPECT_EQ(job.value("state", ""), "warning") << job.dump();
  EXPECT_EQ(job.value("frames_failed", 0), 1);
  EXPECT_NE(job.value("error", "").find("1 of 120"), std::string::npos) << job.dump();
  EXPECT_EQ(failed_frames(out()), std::vector<double>{37});
  H5File f(out());
  const auto reasons = f.strings("/entry/process/failed_frames/reason");
  ASSERT_EQ(reasons.size(), 1u);
  EXPECT_NE(reasons[0].find("frame 37"), std::string::npos) << reasons[0];
  EXPECT_NE(reasons[0].find("c_master.h5"), std::string::npos) << reasons[0];
  const auto I = f.doubles("/entry/integrate/I");
  EXPECT_TRUE(std::isnan(I[37 * kBins + 100]));
  EXPECT_FALSE(std::isnan(I[36 * kBins + 100]));
  expect_same_as_reference(out(), out("ref.h5"));  // NaN row in both, all others identical
}

// What `azflow integrate` checks before it starts is checked at enqueue: a job that cannot run is
// refused with an error naming the request field, no job is created, and the daemon keeps serving.
TEST_F(DaemonTest, JobsThatCannotRunAreRefusedAtEnqueueNamingTheField) {
  DaemonProcess daemon(space_, 1);
  ControlClient client(daemon.endpoint());
  const std::string master = (kCliFixtures / "pilatus_master.h5").string();
  const auto read_text = [](const fs::path& path) {
    std::ifstream in(path);
    return std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  };
  std::string no_wavelength = read_text(kCliFixtures / "pilatus.poni");
  no_wavelength = no_wavelength.substr(0, no_wavelength.find("Wavelength"));
  struct Case {
    std::string name;
    json spec;
    std::string field, says;
  };
  std::vector<Case> cases;
  const std::string missing = space_.path("nowhere/missing_master.h5").string();
  cases.push_back(
      {"missing input", job_spec({missing}, out("a.h5")), "spec.datasets", "missing_master.h5"});
  json spec = job_spec({master}, out("b.h5"));
  spec["dataset_path"] = "/entry/no/such/data";
  cases.push_back({"wrong dataset", spec, "spec.dataset_path", "/entry/no/such/data"});
  spec = job_spec({master}, out("c.h5"));
  spec["mask_path"] = (kCliFixtures / "mask_wrong_shape.npy").string();
  cases.push_back({"mask shape", spec, "spec.mask_path", "mask_wrong_shape.npy"});
  spec = job_spec({master}, out("d.h5"));
  spec["poni_text"] = read_text(kCliFixtures / "parity" / "eiger1m.poni");
  cases.push_back({"PONI of another detector", spec, "spec.poni_path", "pilatus_master.h5"});
  spec = job_spec({master}, out("e.h5"));
  spec["poni_text"] = no_wavelength;
  cases.push_back({"q without wavelength", spec, "spec.settings.unit", "wavelength"});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const json r = client.call({{"verb", "enqueue"}, {"spec", c.spec}});
    ASSERT_TRUE(r.is_object()) << daemon.log();
    EXPECT_FALSE(r.value("ok", true)) << r.dump();
    EXPECT_EQ(r["error"].value("field", ""), c.field) << r.dump();
    EXPECT_NE(r["error"].value("message", "").find(c.says), std::string::npos) << r.dump();
  }
  const std::int64_t good = enqueue(client, job_spec({master}, out()));
  EXPECT_EQ(good, 1);  // no job was created for the refused requests
  EXPECT_EQ(wait_job(client, good).value("state", ""), "succeeded") << daemon.log();
  for (const char* name : {"a.h5", "b.h5", "c.h5", "d.h5", "e.h5"})
    EXPECT_FALSE(fs::exists(out(name)));
}

TEST_F(DaemonTest, MalformedRequestsWhileAJobRuns) {
  const std::string master = make_series(space_, "m", 300);
  reference_integrate(master, out("ref.h5"));
  DaemonProcess daemon(space_, 2, "", {{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "2"}});
  ControlClient client(daemon.endpoint());
  const std::int64_t id = enqueue(client, job_spec({master}, out()));
  for (const std::string& bad : std::vector<std::string>{
           "not json", "[1,2]", "{}", R"({"v":1,"verb":"explode"})", R"({"v":99,"verb":"status"})",
           R"({"v":1,"verb":"enqueue","spec":{"datasets":"x"}})",
           R"({"v":1,"verb":"status","job_id":-4})", R"({"v":1,"verb":"cancel","ids":"all"})",
           std::string(2 << 20, 'x')}) {
    const auto reply = client.raw(bad);
    ASSERT_TRUE(reply.has_value()) << bad.substr(0, 60);
    const json j = json::parse(*reply, nullptr, false);
    ASSERT_TRUE(j.is_object()) << *reply;
    EXPECT_FALSE(j.value("ok", true)) << *reply;
  }
  // garbage on the internal stage endpoint is ignored too
  zmq::context_t context;
  zmq::socket_t rogue(context, zmq::socket_type::dealer);
  rogue.set(zmq::sockopt::linger, 0);
  rogue.connect(daemon.stages_endpoint());
  for (const std::string junk : {"junk", R"({"type":"hello","role":"source","worker":0,"pid":1})",
                                 R"({"type":"job_config","job":"x"})",
                                 R"({"type":"plan_axes","job":1})", R"({"type":"shard_read"})"}) {
    (void)rogue.send(zmq::buffer(junk), zmq::send_flags::none);
  }
  const json job = wait_job(client, id);
  EXPECT_EQ(job.value("state", ""), "succeeded") << job.dump() << daemon.log();
  expect_same_as_reference(out(), out("ref.h5"));
  EXPECT_FALSE(client.call({{"verb", "status"}}).is_null());
}

TEST_F(DaemonTest, FullRingsWithASlowWriterLoseNothing) {
  const std::string master = make_series(space_, "r", 200);
  reference_integrate(master, out("ref.h5"));
  DaemonProcess daemon(space_, 2,
                       "[rings]\ncompressed_slots = 2\nframes_slots = 2\nresults_slots = 2\n",
                       {{"AZFLOW_TEST_DELAY_MS_REDUCER", "3"}});
  ControlClient client(daemon.endpoint());
  const std::int64_t id = enqueue(client, job_spec({master}, out()));
  // back-pressure: the rings fill up and stay within their capacity while the writer is slow
  bool saw_full = false;
  for (int i = 0; i < 200 && !saw_full; ++i) {
    const json full = client.result({{"verb", "status"}});
    ASSERT_TRUE(full.contains("daemon")) << full.dump();
    const json d = full["daemon"];
    const json rings = d.value("rings", json::object());
    for (const auto& [name, ring] : rings.items()) {
      EXPECT_LE(ring.value("ready", 0), ring.value("capacity", 0)) << name;
      // full: every slot committed or held (a producer waiting on it is blocked)
      if (ring.value("capacity", 0) == 2 && ring.value("ready", 0) + ring.value("in_use", 0) == 2) {
        saw_full = true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(saw_full) << "no ring was ever full";
  const json job = wait_job(client, id);
  EXPECT_EQ(job.value("state", ""), "succeeded") << job.dump() << daemon.log();
  EXPECT_EQ(job.value("frames_done", 0), 200);
  expect_same_as_reference(out(), out("ref.h5"));
}

TEST_F(DaemonTest, ProgressCountsFramesNotShards) {
  // One 40-frame shard and a slow writer: frames_done moves only when the shard is done, while
  // frames_integrated (status, list, and the rate and ETA derived from it) moves with every frame.
  const std::string master = make_series(space_, "p", 40);
  DaemonProcess daemon(space_, 1, "", {{"AZFLOW_TEST_DELAY_MS_REDUCER", "40"}});
  ControlClient client(daemon.endpoint());
  const std::int64_t id = enqueue(client, job_spec({master}, out()));
  std::int64_t last = 0;
  bool saw_partial = false, saw_rate = false;
  for (int i = 0; i < 600; ++i) {
    const json job = job_status(client, id);
    const std::int64_t integrated = job.value("frames_integrated", std::int64_t{-1});
    ASSERT_GE(integrated, last) << job.dump();  // never goes back, not even at the shard's commit
    ASSERT_LE(integrated, 40) << job.dump();
    last = integrated;
    if (job.value("frames_done", 0) == 0 && integrated > 0 && integrated < 40) {
      saw_partial = true;
      saw_rate = saw_rate || (job["frames_per_s"].is_number() && job["eta_s"].is_number());
      const json listed = client.result({{"verb", "list"}})["jobs"];
      ASSERT_EQ(listed.size(), 1u) << listed.dump();
      EXPECT_GE(listed[0].value("frames_integrated", 0), integrated) << listed.dump();
    }
    if (is_final_state(job.value("state", ""))) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(saw_partial) << "frames_integrated never showed a shard in progress";
  EXPECT_TRUE(saw_rate) << "no frames_per_s/eta_s while the only shard was running";
  const json job = wait_job(client, id);
  EXPECT_EQ(job.value("state", ""), "succeeded") << job.dump() << daemon.log();
  EXPECT_EQ(job.value("frames_done", 0), 40);
  EXPECT_EQ(job.value("frames_integrated", 0), 40);
}

TEST_F(DaemonTest, CancelMidJobLeavesAPartialFileAndTheNextJobRuns) {
  const std::string master = make_series(space_, "x", 300);
  DaemonProcess daemon(space_, 2, "", {{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "5"}});
  ControlClient client(daemon.endpoint());
  const std::int64_t id = enqueue(client, job_spec({master}, out()));
  ASSERT_TRUE(
      wait_until(client, id, [](const json& j) { return j.value("frames_done", 0) >= 50; }));
  const CommandResult r = run_command(std::string(AZFLOWCTL_BIN) + " --endpoint " +
                                      quote(daemon.endpoint()) + " cancel " + std::to_string(id));
  EXPECT_EQ(r.code, 0) << r.output;
  const json job = wait_job(client, id);
  EXPECT_EQ(job.value("state", ""), "cancelled");
  EXPECT_FALSE(fs::exists(out()));
  ASSERT_TRUE(fs::exists(out() + ".partial"));
  {
    H5File f(out() + ".partial");
    const auto I = f.doubles("/entry/integrate/I");
    ASSERT_EQ(I.size(), 300 * kBins);
    EXPECT_FALSE(std::isnan(I[100]));               // frame 0: its shard was done
    EXPECT_TRUE(std::isnan(I[299 * kBins + 100]));  // the last frame never came
  }
  const std::string fixture = (kCliFixtures / "pilatus_master.h5").string();
  const std::int64_t next = enqueue(client, job_spec({fixture}, out("next.h5")));
  EXPECT_EQ(wait_job(client, next).value("state", ""), "succeeded") << daemon.log();
}

// ---------------------------------------------------------------- crashes

/// Whether the job is running with some but not all of its `total` frames done.
bool mid_job(const json& job, int total) {
  const int done = job.value("frames_done", 0) + job.value("frames_failed", 0);
  return job.value("state", "") == "running" && done > 0 && done < total;
}

/// Kills stage `role/0` with SIGKILL once the job is under way; the job must still complete with
/// every frame exactly once, and the stage must have been restarted. The job is checked to be
/// running, with frames still to do, both before and after the kill (so the kill cannot land
/// after completion): 400 frames at 10 ms each on 2 integrate workers take about 2 s.
void kill_stage_mid_job(TempSpace& space, const std::string& role) {
  constexpr int kFrames = 400;
  const std::string master = make_series(space, "k", kFrames);
  const std::string out = space.path("out.h5").string();
  reference_integrate(master, space.path("ref.h5").string());
  DaemonProcess daemon(space, 2,
                       "[rings]\ncompressed_slots = 8\nframes_slots = 4\nresults_slots = 8\n",
                       {{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "10"}});
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready());
  const std::int64_t id = ctl_enqueue(daemon.endpoint(), master, out);
  ASSERT_TRUE(wait_until(client, id, [](const json& j) {
    return j.value("frames_done", 0) >= 50 || is_final_state(j.value("state", ""));
  })) << daemon.log();
  const pid_t victim = stage_pids(client)[role + "/0"];
  ASSERT_GT(victim, 0);
  const json before = job_status(client, id);
  ASSERT_TRUE(mid_job(before, kFrames)) << "not mid-job before the kill: " << before.dump();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  const json after = job_status(client, id);
  EXPECT_TRUE(mid_job(after, kFrames)) << "not mid-job after the kill: " << after.dump();
  const json job = wait_job(client, id);
  EXPECT_EQ(job.value("state", ""), "succeeded") << job.dump() << daemon.log();
  EXPECT_EQ(job.value("frames_done", 0), kFrames);
  EXPECT_EQ(job.value("frames_failed", 0), 0);
  expect_same_as_reference(out, space.path("ref.h5").string());
  const auto pids = stage_pids(client);
  EXPECT_NE(pids.at(role + "/0"), victim);
  EXPECT_GT(pids.at(role + "/0"), 0);
  EXPECT_NE(daemon.log().find("killed by signal 9"), std::string::npos);
}

TEST_F(DaemonTest, SourceKilledMidJob) { kill_stage_mid_job(space_, "source"); }
TEST_F(DaemonTest, DecompressKilledMidJob) { kill_stage_mid_job(space_, "decompress"); }
TEST_F(DaemonTest, IntegrateKilledMidJob) { kill_stage_mid_job(space_, "integrate"); }

TEST_F(DaemonTest, DaemonKilledMidJobResumesWithoutRedoingShards) {
  const std::string master = make_series(space_, "d", 400);
  reference_integrate(master, out("ref.h5"));
  const std::map<std::string, std::string> slow = {{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "6"}};
  std::set<std::int64_t> done_before;
  std::int64_t id = 0;
  std::map<std::string, pid_t> stages;
  {
    DaemonProcess daemon(space_, 2, "", slow);
    ControlClient client(daemon.endpoint());
    id = enqueue(client, job_spec({master}, out()));
    ASSERT_TRUE(wait_until(client, id, [](const json& j) {
      return j["shards"].value("done", 0) >= 2 || is_final_state(j.value("state", ""));
    })) << daemon.log();
    stages = stage_pids(client);
    const int status = daemon.stop(SIGKILL);
    ASSERT_TRUE(WIFSIGNALED(status));
  }
  {
    azflow::daemon::JobStore store(azflow::daemon::JobStore::path_in(space_.path("state")));
    for (const auto& s : store.shards(id)) {
      if (s.state == azflow::daemon::ShardState::kDone) done_before.insert(s.shard_id);
    }
    const auto job = store.job(id);
    ASSERT_TRUE(job.has_value());
    ASSERT_EQ(job->state, azflow::daemon::JobState::kRunning) << "the job finished before the kill";
  }
  ASSERT_GE(done_before.size(), 2u);
  for (const auto& [name, pid] : stages) EXPECT_TRUE(wait_gone(pid)) << name << " outlived";

  DaemonProcess daemon(space_, 2, "", slow);
  ControlClient client(daemon.endpoint());
  const json job = wait_job(client, id);
  EXPECT_EQ(job.value("state", ""), "succeeded") << job.dump() << daemon.log();
  EXPECT_EQ(job.value("frames_done", 0), 400);
  expect_same_as_reference(out(), out("ref.h5"));

  azflow::daemon::JobStore store(azflow::daemon::JobStore::path_in(space_.path("state")));
  for (const auto& s : store.shards(id)) {
    EXPECT_EQ(s.state, azflow::daemon::ShardState::kDone);
    if (done_before.contains(s.shard_id)) {
      EXPECT_EQ(s.attempts, 1) << "shard " << s.shard_id;
    }
  }
  // every shard was committed exactly once (events.log of the job)
  std::ifstream events(space_.path("state") / "jobs" / std::to_string(id) / "events.log");
  std::map<std::string, int> done_lines;
  // each line starts with an ISO 8601 UTC time with milliseconds (2026-12-04T01:02:03.456Z)
  const std::regex iso_time(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z .+)");
  std::size_t lines = 0;
  for (std::string line; std::getline(events, line); ++lines) {
    EXPECT_TRUE(std::regex_match(line, iso_time)) << line;
    const auto at = line.find("shard ");
    if (at != std::string::npos && line.find(" done") != std::string::npos) {
      ++done_lines[line.substr(at, line.find(" done") - at)];
    }
  }
  EXPECT_GT(lines, 8u);
  EXPECT_EQ(done_lines.size(), 8u);
  for (const auto& [shard, n] : done_lines) EXPECT_EQ(n, 1) << shard;
  // the dataset sum is the sum of the per-frame sums (checked against the reference's)
}

// ---------------------------------------------------------------- daemon life cycle

TEST_F(DaemonTest, WrongConfigExitsNonZeroBeforeStarting) {
  {
    DaemonProcess daemon(space_, 1, "no_such_key = 3\n");
    const int status = daemon.wait_exit(std::chrono::seconds(10));
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_NE(WEXITSTATUS(status), 0);
    EXPECT_NE(daemon.log().find("no_such_key"), std::string::npos) << daemon.log();
  }
  EXPECT_FALSE(fs::exists(space_.path("state") / "jobs.sqlite"));
}

TEST_F(DaemonTest, SigtermStopsStagesRemovesSegmentsExitsZero) {
  DaemonProcess daemon(space_, 1);
  ControlClient client(daemon.endpoint());
  const std::string master = (kCliFixtures / "pilatus_master.h5").string();
  EXPECT_EQ(wait_job(client, enqueue(client, job_spec({master}, out()))).value("state", ""),
            "succeeded");
  const auto stages = stage_pids(client);
  ASSERT_EQ(stages.size(), 3u);
  const int status = daemon.stop(SIGTERM);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (const auto& [name, pid] : stages) EXPECT_TRUE(wait_gone(pid)) << name;
  for (const auto& entry : fs::directory_iterator("/dev/shm")) {
    EXPECT_EQ(entry.path().filename().string().find("azflow." + space_.instance() + "."),
              std::string::npos)
        << entry.path();
  }
}

}  // namespace
