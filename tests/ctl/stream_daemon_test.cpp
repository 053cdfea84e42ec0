// `azflowctl enqueue --stream` end to end (issue 16, items 3 and 4): a real azflowd whose source
// stage receives one series over real ZeroMQ sockets. A series served by azflow-detector-sim (the
// Pilatus fixture's bitshuffle-LZ4 chunks, unchanged) must give the output of the file job on the
// same series, in Stream V2 and stream v1; a pyzmq + cbor2 sender that skips an image, repeats
// one, sends an id beyond the series and a message that is not CBOR must leave that image a
// failed row ("missing"), the rest integrated, the faults counted in `status`, and the daemon
// serving the next job; a stream job still waiting for its start message must cancel cleanly.
// With --save-raw the series' raw spool must integrate, as a file job, to the stream job's result,
// and a SIGKILL of azflowd or of the source stage, or an abort of the decompress or integrate
// stage, mid-series must lose no image the spool holds (docs/streams.md, "Restarts").

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <regex>
#include <thread>

#include "stages/source/raw_spool.hpp"
#include "tests/daemon/daemon_test_support.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

using namespace azflow::testing;

const std::string kMaster = (kCliFixtures / "pilatus_master.h5").string();
const std::string kPoni = (kCliFixtures / "pilatus.poni").string();
const std::string kSettings = " --npt 200 --unit q_nm^-1 --error-model poisson";
const std::string kStreamRings = " --stream-max-frame-mib 1";  // the fixture's 380 kB frames

class StreamDaemonTest : public ::testing::Test {
 protected:
  TempSpace space_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<ControlClient> client_;

  void SetUp() override {
    daemon_ = std::make_unique<DaemonProcess>(space_, 1);
    client_ = std::make_unique<ControlClient>(daemon_->endpoint());
    ASSERT_TRUE(client_->wait_ready()) << daemon_->log();
  }

  /// The detector's endpoint (a short ipc:// path in the test's folder).
  std::string detector() const { return "ipc://" + space_.path("det.sock").string(); }

  /// azflowctl with `args`; exit code and stdout (+ stderr unless `stdout_only`).
  CommandResult ctl(const std::string& args, bool stdout_only = false) const {
    return run_command("cd " + quote(space_.root().string()) + " && " + AZFLOWCTL_BIN +
                       " --timeout 30 --endpoint " + quote(daemon_->endpoint()) + " " + args +
                       " </dev/null" + (stdout_only ? " 2>/dev/null" : ""));
  }

  /// Enqueues and returns the job id, which azflowctl must print alone on stdout.
  std::int64_t enqueue(const std::string& args) const {
    const CommandResult r = ctl("enqueue " + args, true);
    EXPECT_EQ(r.code, 0) << r.output << ctl("enqueue " + args).output;
    EXPECT_TRUE(std::regex_match(r.output, std::regex("[0-9]+\n"))) << "[" << r.output << "]";
    return std::atoll(r.output.c_str());
  }

  /// Waits for `id`; azflowctl wait's exit code.
  int wait(std::int64_t id) const {
    const CommandResult w = ctl("wait --timeout 90 " + std::to_string(id));
    return w.code;
  }

  json status(std::int64_t id) const {
    const CommandResult r = ctl("--json status " + std::to_string(id));
    EXPECT_EQ(r.code, 0) << r.output;
    return json::parse(r.output, nullptr, false).value("job", json::object());
  }

  /// Starts the simulator on detector() in the background; it ends after its series.
  void start_sim(const std::string& args, const std::string& master = kMaster) const {
    const std::string cmd = std::string(AZFLOW_SIM_BIN) + " " + quote(master) + " --endpoint " +
                            quote(detector()) + " " + args + " > " +
                            quote(space_.path("sim.log").string()) + " 2>&1 &";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  /// A file job on the fixture series, waited for: its output.
  std::string file_job(const std::string& name) const {
    const std::string out = space_.path(name).string();
    const std::int64_t id =
        enqueue(quote(kMaster) + " --poni " + quote(kPoni) + kSettings + " -o " + quote(out));
    EXPECT_EQ(wait(id), 0) << daemon_->log();
    return out;
  }

  /// Every row of `a` equal to `b`'s but the rows in `failed`, which are NaN.
  static void expect_rows(const std::string& a, const std::string& b,
                          const std::vector<std::size_t>& failed) {
    const H5File f(a), ref(b);
    const auto I = f.doubles("/entry/integrate/I"), I_ref = ref.doubles("/entry/integrate/I");
    ASSERT_EQ(I.size(), I_ref.size());
    const std::size_t bins = ref.dims("/entry/integrate/I").back();
    std::size_t differ = 0, nan_rows_ok = 0;
    for (std::size_t i = 0; i < I.size(); ++i) {
      const std::size_t row = i / bins;
      if (std::find(failed.begin(), failed.end(), row) != failed.end()) {
        nan_rows_ok += std::isnan(I[i]) ? 1 : 0;
        continue;
      }
      if (!((std::isnan(I[i]) && std::isnan(I_ref[i])) || I[i] == I_ref[i])) ++differ;
    }
    EXPECT_EQ(differ, 0u);
    EXPECT_EQ(nan_rows_ok, failed.size() * bins);
    EXPECT_EQ(f.doubles("/entry/integrate/frame_index"),
              ref.doubles("/entry/integrate/frame_index"));
  }
};

TEST_F(StreamDaemonTest, SimulatorSeriesEqualsTheFileJob) {
  const std::string ref = file_job("file.h5");
  start_sim("--rate 50");
  const std::string out = space_.path("stream.h5").string();
  const std::int64_t id = enqueue("--stream " + quote(detector()) + " --poni " + quote(kPoni) +
                                  kSettings + kStreamRings + " -o " + quote(out));
  ASSERT_GT(id, 0);
  EXPECT_EQ(wait(id), 0) << daemon_->log();
  const json j = status(id);
  EXPECT_EQ(j["state"], "succeeded") << j;
  EXPECT_EQ(j["frames_total"], 3) << j;
  EXPECT_EQ(j["frames_failed"], 0) << j;
  EXPECT_EQ(j["stream"]["received"], 3) << j;
  EXPECT_EQ(j["stream"]["missing"], 0) << j;
  EXPECT_EQ(j["stream"]["invalid"], 0) << j;
  EXPECT_EQ(j["stream"]["ended"], true) << j;
  EXPECT_EQ(j["spec"]["stream"]["series"]["images"], 3) << j;
  EXPECT_EQ(j["spec"]["stream"]["series"]["rows"], 195) << j;
  expect_same_as_reference(out, ref);  // I bit for bit, frame_index, sums
}

TEST_F(StreamDaemonTest, SimulatorV1SeriesEqualsTheFileJob) {
  const std::string ref = file_job("file.h5");
  start_sim("--format v1");
  const std::string out = space_.path("stream.h5").string();
  const std::int64_t id = enqueue("--stream " + quote(detector()) + " --stream-format v1 --poni " +
                                  quote(kPoni) + kSettings + kStreamRings + " -o " + quote(out));
  EXPECT_EQ(wait(id), 0) << daemon_->log();
  EXPECT_EQ(status(id)["stream"]["received"], 3);
  expect_same_as_reference(out, ref);
}

TEST_F(StreamDaemonTest, LostImageIsAMissingRowAndFaultsAreCounted) {
  const std::string ref = file_job("file.h5");
  const std::string out = space_.path("lossy.h5").string();
  const std::int64_t id = enqueue("--stream " + quote(detector()) + " --poni " + quote(kPoni) +
                                  kSettings + kStreamRings + " -o " + quote(out));
  const CommandResult sent = run_command("/usr/bin/python3 " + quote(AZFLOW_LOSSY_SENDER) + " " +
                                         quote(detector()) + " " + quote(kMaster));
  ASSERT_EQ(sent.code, 0) << sent.output;
  EXPECT_EQ(wait(id), 3) << daemon_->log();  // ended, with a failed frame (warning)
  const json j = status(id);
  EXPECT_EQ(j["state"], "warning") << j;
  EXPECT_EQ(j["frames_total"], 3) << j;
  EXPECT_EQ(j["frames_failed"], 1) << j;
  ASSERT_EQ(j["frame_errors"].size(), 1u) << j;
  EXPECT_EQ(j["frame_errors"][0]["frame"], 1) << j;
  const std::string reason = j["frame_errors"][0]["reason"];
  EXPECT_NE(reason.find("missing: image never received"), std::string::npos) << reason;
  const json& c = j["stream"];
  EXPECT_EQ(c["received"], 2) << c;
  EXPECT_EQ(c["missing"], 1) << c;
  EXPECT_EQ(c["duplicate"], 1) << c;
  EXPECT_EQ(c["out_of_range"], 1) << c;
  EXPECT_EQ(c["invalid"], 1) << c;
  EXPECT_NE(c["first_invalid"].get<std::string>().find("stream2: "), std::string::npos) << c;
  expect_rows(out, ref, {1});  // the pixel mask came in the start message, as the file's
  // the daemon still serves: a file job after it succeeds
  const std::string again = file_job("again.h5");
  expect_same_as_reference(again, ref);
}

TEST_F(StreamDaemonTest, WithoutPoniTheStartMessageGivesTheGeometry) {
  // the master's metadata as a PONI: distance 0.1 m, beam centre (267.85, 87.75) px of 172 um,
  // 1 angstrom, no rotations (what the simulator's start message carries)
  const std::string meta = space_.path("meta.poni").string();
  std::ofstream(meta) << "poni_version: 2\nDetector: Detector\nDetector_config: {\"pixel1\": "
                         "0.000172, \"pixel2\": 0.000172, \"max_shape\": [195, 487]}\n"
                         "Distance: 0.1\nPoni1: "
                      << 87.75 * 0.000172 << "\nPoni2: " << 267.85 * 0.000172
                      << "\nRot1: 0\nRot2: 0\nRot3: 0\nWavelength: 1e-10\n";
  const std::string ref = space_.path("file.h5").string();
  const std::int64_t file =
      enqueue(quote(kMaster) + " --poni " + quote(meta) + kSettings + " -o " + quote(ref));
  ASSERT_EQ(wait(file), 0) << daemon_->log();
  start_sim("");
  const std::string out = space_.path("stream.h5").string();
  const std::int64_t id =
      enqueue("--stream " + quote(detector()) + kSettings + kStreamRings + " -o " + quote(out));
  ASSERT_EQ(wait(id), 0) << daemon_->log();
  const json series = status(id)["spec"]["stream"]["series"];
  EXPECT_EQ(series["geometry_from_start"], true) << series;
  EXPECT_NE(status(id)["spec"]["poni_text"].get<std::string>().find("Distance: 0.1"),
            std::string::npos);
  // the master stores float32 metadata: the geometry agrees to float32 rounding
  const H5File a(out), b(ref);
  for (const auto& [dataset, rtol] :
       {std::pair{"/entry/integrate/q", 1e-5}, std::pair{"/entry/integrate/I", 1e-3}}) {
    const auto x = a.doubles(dataset), y = b.doubles(dataset);
    ASSERT_EQ(x.size(), y.size()) << dataset;
    std::size_t differ = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (!(std::isnan(x[i]) && std::isnan(y[i])) &&
          !(std::abs(x[i] - y[i]) <= rtol * std::abs(y[i])))
        ++differ;
    }
    EXPECT_EQ(differ, 0u) << dataset;
  }
}

TEST_F(StreamDaemonTest, SaveRawSpoolsTheSeriesAndIntegratesAsTheStream) {
  fs::create_directories(space_.path("raw"));
  start_sim("");
  const std::string out = space_.path("stream.h5").string();
  const std::string stream_args = "--stream " + quote(detector()) + " --poni " + quote(kPoni) +
                                  kSettings + kStreamRings + " --save-raw raw";
  const std::int64_t id = enqueue(stream_args + " -o " + quote(out));
  EXPECT_EQ(wait(id), 0) << daemon_->log();
  const json c = status(id)["stream"];
  const std::string master = space_.path("raw/series_1_master.h5").string();
  EXPECT_EQ(c["raw_spool"], master) << c;
  EXPECT_EQ(c["spooled"], 3) << c;
  EXPECT_EQ(c["not_spooled"], 0) << c;
  // the spool is an EIGER series: a file job on it gives the stream job's result
  const std::string again = space_.path("spool.h5").string();
  const std::int64_t file =
      enqueue(quote(master) + " --poni " + quote(kPoni) + kSettings + " -o " + quote(again));
  EXPECT_EQ(wait(file), 0) << daemon_->log();
  expect_same_as_reference(again, out);
  // a spool is never overwritten: the same series again fails its job at the start message
  start_sim("");
  const std::int64_t twice =
      enqueue(stream_args + " -o " + quote(space_.path("twice.h5").string()));
  EXPECT_EQ(wait(twice), 4) << daemon_->log();
  const std::string error = status(twice)["error"];
  EXPECT_NE(error.find("already exists"), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(space_.path("twice.h5")));
}

class StreamKillTest : public StreamDaemonTest {
 protected:
  /// Kills `victim` ("azflowd", or a stage's role) with SIGKILL while a 60-image series (20
  /// images/s from the simulator) is being received with --save-raw; the job must end with every
  /// image the raw spool holds integrated, equal to the file job's row bit for bit, and each image
  /// the spool lacks a failed row "missing" (at most the few a killed receiver had taken off the
  /// socket but not spooled; none when a decompress or integrate stage is killed, whose frames the
  /// source reads back from the spool).
  void kill_mid_series(const std::string& victim) {
    constexpr int kImages = 60;
    const bool holder = victim == "decompress" || victim == "integrate";
    if (holder) {  // it aborts, once, when it takes image 20: it dies holding that frame
      std::string role = victim;
      for (char& c : role) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      client_.reset();
      daemon_.reset();
      daemon_ = std::make_unique<DaemonProcess>(
          space_, 1, "",
          std::map<std::string, std::string>{
              {"AZFLOW_TEST_CRASH_" + role, "1:20"},
              {"AZFLOW_TEST_CRASH_ONCE_FILE", space_.path("crashed").string()}});
      client_ = std::make_unique<ControlClient>(daemon_->endpoint());
      ASSERT_TRUE(client_->wait_ready()) << daemon_->log();
    }
    const std::string master = make_series(space_, "k", kImages);
    const std::string ref = space_.path("ref.h5").string();
    reference_integrate(master, ref);
    fs::create_directories(space_.path("raw"));
    const std::string out = space_.path("stream.h5").string();
    const std::int64_t id = enqueue("--stream " + quote(detector()) + " --poni " + quote(kPoni) +
                                    kSettings + kStreamRings + " --save-raw raw -o " + quote(out));
    start_sim("--rate 20", master);
    json counts;  // the receive counters (null until the source's first report)
    for (int i = 0; i < 200; ++i) {
      counts = status(id)["stream"];
      if (counts.is_object() && counts.value("received", 0) >= 10) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_TRUE(counts.is_object() && counts.value("received", 0) >= 10)
        << counts << daemon_->log();
    ASSERT_FALSE(counts.value("ended", true)) << "the series ended before the kill";
    const auto stages = stage_pids(*client_);
    if (holder) {
      // killed by its own abort on image 20
    } else if (victim == "azflowd") {
      ASSERT_TRUE(WIFSIGNALED(daemon_->stop(SIGKILL)));
      for (const auto& [name, pid] : stages) ASSERT_TRUE(wait_gone(pid)) << name << " outlived";
      client_.reset();
      daemon_ = std::make_unique<DaemonProcess>(space_, 1);
      client_ = std::make_unique<ControlClient>(daemon_->endpoint());
      ASSERT_TRUE(client_->wait_ready()) << daemon_->log();
    } else {
      ASSERT_EQ(::kill(stages.at(victim + "/0"), SIGKILL), 0);
    }
    const int code = wait(id);
    const json j = status(id);
    const std::string master_spool = space_.path("raw/series_1_master.h5").string();
    const auto spooled = azflow::source::RawSpool::spooled_ids(master_spool);
    std::vector<std::size_t> lost;
    for (std::size_t i = 0; i < kImages; ++i) {
      if (!std::binary_search(spooled.begin(), spooled.end(), i)) lost.push_back(i);
    }
    EXPECT_LE(lost.size(), 3u) << j;
    if (holder) {
      EXPECT_TRUE(lost.empty()) << j;
    }
    EXPECT_EQ(code, lost.empty() ? 0 : 3) << j << daemon_->log();
    EXPECT_EQ(j["frames_total"], kImages) << j;
    EXPECT_EQ(j["frames_done"], kImages - static_cast<int>(lost.size())) << j;
    EXPECT_EQ(j["frames_failed"], lost.size()) << j;
    for (const json& e : j.value("frame_errors", json::array())) {
      EXPECT_NE(e.value("reason", "").find("missing"), std::string::npos) << e;
    }
    expect_rows(out, ref, lost);  // every spooled image's row is the file job's, bit for bit
    if (holder) {                 // its frame, read back from the spool
      EXPECT_TRUE(fs::exists(space_.path("crashed")));
      EXPECT_NE(daemon_->log().find("ended: killed by signal 6"), std::string::npos)
          << daemon_->log();
      EXPECT_NE(daemon_->log().find("redoing 1 frames"), std::string::npos) << daemon_->log();
    } else if (victim == "source") {
      EXPECT_NE(daemon_->log().find("resuming series 1"), std::string::npos) << daemon_->log();
    }
    if (victim == "azflowd") {
      std::ifstream events(space_.path("state") / "jobs" / std::to_string(id) / "events.log");
      const std::string log{std::istreambuf_iterator<char>(events), {}};
      EXPECT_NE(log.find("resumed from its raw spool"), std::string::npos) << log;
    }
  }
};

TEST_F(StreamKillTest, AzflowdKilledMidSeriesResumesFromTheRawSpool) { kill_mid_series("azflowd"); }
TEST_F(StreamKillTest, SourceKilledMidSeriesResumesFromTheRawSpool) { kill_mid_series("source"); }
TEST_F(StreamKillTest, DecompressKilledMidSeriesLosesNoImage) { kill_mid_series("decompress"); }
TEST_F(StreamKillTest, IntegrateKilledMidSeriesLosesNoImage) { kill_mid_series("integrate"); }

TEST_F(StreamDaemonTest, CancelWhileWaitingForTheStartMessage) {
  const std::int64_t id =
      enqueue("--stream " + quote(detector()) + " --poni " + quote(kPoni) + kSettings +
              kStreamRings + " -o " + quote(space_.path("never.h5").string()));
  for (int i = 0; i < 100 && status(id)["state"] != "running"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(status(id)["state"], "running") << daemon_->log();  // its source waits for a start
  const CommandResult c = ctl("cancel " + std::to_string(id));
  EXPECT_EQ(c.code, 0) << c.output;
  EXPECT_EQ(wait(id), 5) << daemon_->log();  // cancelled
  const json j = status(id);
  EXPECT_EQ(j["state"], "cancelled") << j;
  EXPECT_FALSE(fs::exists(space_.path("never.h5")));
  EXPECT_EQ(::kill(daemon_->pid(), 0), 0);  // still up, and serving
  const std::string ref = file_job("after.h5");
  EXPECT_TRUE(fs::exists(ref));
}

TEST_F(StreamDaemonTest, StreamJobsStayOnThisNodeAndTakeNoFiles) {
  const CommandResult nodes = ctl("enqueue --stream " + quote(detector()) + " --nodes all");
  EXPECT_EQ(nodes.code, 2) << nodes.output;
  EXPECT_NE(nodes.output.find("a stream job runs on this node only"), std::string::npos)
      << nodes.output;
  const CommandResult frames = ctl("enqueue --stream " + quote(detector()) + " --frames 0:2");
  EXPECT_EQ(frames.code, 2) << frames.output;
  EXPECT_NE(frames.output.find("does not apply to a stream job"), std::string::npos)
      << frames.output;
  const CommandResult both = ctl("enqueue " + quote(kMaster) + " --stream " + quote(detector()));
  EXPECT_NE(both.code, 0) << both.output;
}

}  // namespace
