// End-to-end tests of federation (docs/federation.md): three real azflowd processes on loopback
// TCP with CurveZMQ keys, sharing one split job on one generated Eiger-style series. The
// reference is the same job run by a single daemon (bit-identical rows expected: same plan, same
// integrator, partial sums reduced by the coordinator exactly as local results).

#include <gtest/gtest.h>

#include "tests/federation/federation_test_support.hpp"

namespace {

using namespace azflow::testing;

constexpr int kFrames = 150;
constexpr int kCorruptFrame = 37;

/// A federation of a coordinator "a" and peers "b" and "c" (joined to a), a dataset and the
/// single-daemon reference output of the job.
class FederationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    trusted_ = data_.path("trusted");
    master_ = make_series(data_, "fed", kFrames, {kCorruptFrame});
  }

  /// Starts a, b, c; b and c join a; `env` for every node, `c_top_toml` top-level lines of c's
  /// configuration. Waits until all see each other.
  void start_three(const std::map<std::string, std::string>& env,
                   const std::string& c_top_toml = "") {
    for (const char* name : {"a", "b", "c"}) {
      nodes_.push_back(std::make_unique<Node>(name, trusted_));
    }
    a().start(trusted_, "", env);
    b().start(trusted_, "join = \"" + a().address() + "\"", env);
    c().start(trusted_, "join = \"" + a().address() + "\"", env, true, c_top_toml);
    ASSERT_TRUE(eventually([&] {
      return a().peer_state("b") == "connected" && a().peer_state("c") == "connected" &&
             b().peer_state("c") == "connected" && c().peer_state("b") == "connected";
    })) << a().log();
  }

  /// Runs the job on a single daemon (federation off) into `out`.
  void single_daemon_reference(const std::string& out) {
    Node solo("solo", "");
    solo.start("", "", {}, false);
    const std::int64_t id = enqueue(solo.client(), job_spec({master_}, out));
    const json job = wait_job(solo.client(), id);
    EXPECT_EQ(job.value("state", ""), "warning") << job.dump();
  }

  /// Enqueues the split job on a with nodes "all".
  std::int64_t enqueue_split(const std::string& out) {
    json spec = job_spec({master_}, out);
    spec["nodes"] = "all";
    return enqueue(a().client(), spec);
  }

  /// Every frame exactly once: frames_done == frames_total, one failed frame (the corrupt one).
  static void expect_every_frame_once(const json& job) {
    EXPECT_EQ(job.value("state", ""), "warning") << job.dump();
    EXPECT_EQ(job.value("frames_total", 0), kFrames);
    EXPECT_EQ(job.value("frames_done", 0), kFrames) << job.dump();
    EXPECT_EQ(job.value("frames_failed", 0), 1) << job.dump();
  }

  Node& a() { return *nodes_[0]; }
  Node& b() { return *nodes_[1]; }
  Node& c() { return *nodes_[2]; }

  TempSpace data_;
  fs::path trusted_;
  std::string master_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

TEST_F(FederationTest, SplitJobOnThreeDaemonsEqualsSingleDaemonOutput) {
  const std::string ref = data_.path("single.h5").string();
  single_daemon_reference(ref);
  start_three({{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "10"}});

  const json peers = a().peers();
  EXPECT_EQ(peers.value("node", ""), "a");
  for (const json& p : peers["peers"]) {
    EXPECT_EQ(p.value("state", ""), "connected") << p.dump();
    EXPECT_EQ(p["capacity"].value("workers", 0), 1) << p.dump();
    EXPECT_TRUE(p["last_heartbeat"].is_string()) << p.dump();
  }
  const CommandResult table =
      run_command(std::string(AZFLOWCTL_BIN) + " --endpoint " + quote(a().control()) + " peers");
  EXPECT_EQ(table.code, 0) << table.output;
  EXPECT_NE(table.output.find("LAST HEARTBEAT"), std::string::npos) << table.output;
  for (const char* node : {"b ", "c "}) {
    EXPECT_NE(table.output.find(std::string("\n") + node), std::string::npos) << table.output;
  }
  const CommandResult as_json = run_command(std::string(AZFLOWCTL_BIN) + " --endpoint " +
                                            quote(a().control()) + " --json peers");
  EXPECT_EQ(json::parse(as_json.output).value("node", ""), "a") << as_json.output;

  // enqueued with the real azflowctl: --mode split --nodes all
  const std::string out = data_.path("split.h5").string();
  const CommandResult enq = run_command(
      std::string(AZFLOWCTL_BIN) + " --endpoint " + quote(a().control()) + " enqueue " +
      quote(master_) + " --poni " + quote((kCliFixtures / "pilatus.poni").string()) +
      " --npt 200 --unit q_nm^-1 --error-model poisson --mode split --nodes all -o " + quote(out));
  ASSERT_EQ(enq.code, 0) << enq.output;
  const std::int64_t id = std::stoll(enq.output);
  const json job = wait_job(a().client(), id);
  expect_every_frame_once(job);
  EXPECT_EQ(job["shards"].value("done", 0), job["shards"].value("total", -1));
  const std::string events = a().events(id);
  EXPECT_NE(events.find(" to b"), std::string::npos) << events;
  EXPECT_NE(events.find(" to c"), std::string::npos) << events;
  expect_same_output(out, ref, true);
  const json status = a().client().result({{"verb", "status"}});
  EXPECT_EQ(status["daemon"]["reducer"].value("frames_written", 0) +
                status["daemon"]["reducer"].value("frames_failed", 0),
            kFrames);
}

// Issue 15, item 3: a series of a few frames per worker is still split over every node. 20
// frames with shard_frames 10 used to make two shards, both kept by the coordinator (it takes up
// to 2 x (workers + integrate workers) = 4 at once); sized from the 3 nodes' 12 slots they are
// 10 shards of 2 frames, and the coordinator runs only its share (4) while b and c are connected.
TEST_F(FederationTest, SmallSplitJobIsSizedForEveryNode) {
  const std::string small = make_series(data_, "small", 20, {});
  start_three({{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "50"}});
  json spec = job_spec({small}, data_.path("small.h5").string());
  spec["nodes"] = "all";
  const std::int64_t id = enqueue(a().client(), spec);
  const json job = wait_job(a().client(), id);
  EXPECT_EQ(job.value("state", ""), "succeeded") << job.dump();
  EXPECT_EQ(job.value("frames_done", 0), 20) << job.dump();
  EXPECT_EQ(job["shards"].value("total", 0), 10) << job.dump();  // ceil(20 / 12) = 2 frames each
  const std::string events = a().events(id);
  EXPECT_NE(events.find(" to b"), std::string::npos) << events;
  EXPECT_NE(events.find(" to c"), std::string::npos) << events;
}

// Issue 15, item 5: a split job of input frames 20..59 ("frames") shared by three daemons: each
// peer reads the same input frames as the coordinator would (job frame k = input frame 20 + k),
// so the output equals a single daemon's, frame_index is 20..59 and the corrupt input frame 37
// is the failed one, named as such.
TEST_F(FederationTest, FrameRangeSplitJobReadsTheSameInputFramesOnEveryNode) {
  const json frames = {{"first", 20}, {"last", 60}};
  const std::string ref = data_.path("single_range.h5").string();
  {
    Node solo("solo", "");
    solo.start("", "", {}, false);
    json spec = job_spec({master_}, ref);
    spec["frames"] = frames;
    const json job = wait_job(solo.client(), enqueue(solo.client(), spec));
    EXPECT_EQ(job.value("state", ""), "warning") << job.dump();
  }
  start_three({{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "20"}});
  const std::string out = data_.path("split_range.h5").string();
  json spec = job_spec({master_}, out);
  spec["nodes"] = "all";
  spec["frames"] = frames;
  const std::int64_t id = enqueue(a().client(), spec);
  const json job = wait_job(a().client(), id);
  EXPECT_EQ(job.value("state", ""), "warning") << job.dump();
  EXPECT_EQ(job.value("frames_total", 0), 40);
  EXPECT_EQ(job.value("frames_done", 0), 40) << job.dump();
  EXPECT_EQ(job.value("frames_failed", 0), 1) << job.dump();
  const std::string events = a().events(id);
  EXPECT_NE(events.find(" to b"), std::string::npos) << events;
  EXPECT_NE(events.find(" to c"), std::string::npos) << events;
  expect_same_output(out, ref, true);
  const JobOutput o = JobOutput::read(out);
  EXPECT_EQ(o.failed_frames, std::vector<double>{kCorruptFrame});
  ASSERT_EQ(o.failed_reasons.size(), 1u);
  EXPECT_EQ(o.failed_reasons[0].rfind("frame 37 of ", 0), 0u) << o.failed_reasons[0];
  std::vector<double> index;
  for (int k = 20; k < 60; ++k) index.push_back(k);
  EXPECT_EQ(H5File(out).doubles("/entry/integrate/frame_index"), index);
}

TEST_F(FederationTest, NodesNeedAFederatedDaemon) {
  Node solo("solo", "");
  solo.start("", "", {}, false);
  json spec = job_spec({master_}, data_.path("x.h5").string());
  spec["nodes"] = "all";
  const json r = solo.client().call({{"verb", "enqueue"}, {"spec", spec}});
  EXPECT_FALSE(r.value("ok", true)) << r.dump();
  EXPECT_EQ(r["error"].value("field", ""), "spec.nodes") << r.dump();
  const json peers = solo.peers();
  EXPECT_TRUE(peers["node"].is_null()) << peers.dump();
}

TEST_F(FederationTest, KilledPeerMidJobAndEveryFrameCountsOnce) {
  const std::string ref = data_.path("single.h5").string();
  single_daemon_reference(ref);
  start_three({{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "30"}});
  const std::string out = data_.path("split.h5").string();
  const std::int64_t id = enqueue_split(out);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(eventually([&] { return a().events(id).find(" to b") != std::string::npos; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // b is integrating
  b().stop(SIGKILL);
  const json job = wait_job(a().client(), id, std::chrono::seconds(120));
  expect_every_frame_once(job);
  EXPECT_NE(a().events(id).find("back from b"), std::string::npos) << a().events(id);
  EXPECT_EQ(a().peer_state("b"), "lost");
  expect_same_output(out, ref, true);
}

TEST_F(FederationTest, PeerStoppedWithSigtermGivesItsShardsBack) {
  start_three({{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "30"}});
  const std::int64_t id = enqueue_split(data_.path("split.h5").string());
  ASSERT_GT(id, 0);
  ASSERT_TRUE(eventually([&] {  // b has taken shards into its pipeline
    for (const json& p : b().peers().value("peers", json::array())) {
      if (p.value("node", "") == "a" && p.value("guest_shards", 0) > 0) return true;
    }
    return false;
  }));
  b().stop(SIGTERM);
  // given back at once, not after the lost timeout
  EXPECT_TRUE(
      eventually([&] { return a().events(id).find("from b: given back") != std::string::npos; },
                 std::chrono::seconds(30)))
      << a().events(id) << a().log() << "\n=== b\n"
      << b().log();
  expect_every_frame_once(wait_job(a().client(), id));
}

TEST_F(FederationTest, CancelOnTheCoordinatorDropsThePeersShards) {
  start_three({{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "30"}});
  const std::int64_t id = enqueue_split(data_.path("split.h5").string());
  ASSERT_GT(id, 0);
  const auto guest_shards = [&](Node& node) {
    for (const json& p : node.peers().value("peers", json::array())) {
      if (p.value("node", "") == "a") return p.value("guest_shards", 0);
    }
    return -1;
  };
  ASSERT_TRUE(eventually([&] { return guest_shards(b()) > 0; }));
  const json r = a().client().result({{"verb", "cancel"}, {"job_ids", {id}}});
  EXPECT_EQ(r.value("cancelled", json::array()), json::array({id})) << r.dump();
  EXPECT_EQ(job_status(a().client(), id).value("state", ""), "cancelled");
  EXPECT_TRUE(eventually([&] { return guest_shards(b()) == 0 && guest_shards(c()) <= 0; },
                         std::chrono::seconds(10)));
}

TEST_F(FederationTest, PeerWithUntrustedKeyIsRefused) {
  nodes_.push_back(std::make_unique<Node>("a", trusted_));
  const fs::path rogue_trusted = data_.path("rogue_trusted");
  Node rogue("rogue", rogue_trusted);  // its key is trusted only by itself, not by a
  fs::copy_file(trusted_ / "a.pub", rogue_trusted / "a.pub");
  a().start(trusted_, "");
  rogue.start(rogue_trusted, "join = \"" + a().address() + "\"");
  ASSERT_TRUE(eventually([&] {
    return a().log().find("refused a peer connection") != std::string::npos;
  })) << a().log();
  const std::string rogue_key = [&] {
    std::ifstream in(rogue.state() / "curve" / "rogue.pub");
    std::string key;
    in >> key;
    return key;
  }();
  EXPECT_NE(a().log().find(rogue_key + " is not in the trusted-keys folder"), std::string::npos)
      << a().log();
  EXPECT_GE(a().peers().value("refused_connections", 0), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // several heartbeats
  EXPECT_EQ(a().peer_state("rogue"), "");                       // never admitted
  EXPECT_NE(rogue.peer_state("a"), "connected");
}

TEST_F(FederationTest, TcpControlNeedsATrustedClientKey) {
  nodes_.push_back(std::make_unique<Node>("a", trusted_));
  const fs::path clients = data_.path("clients");
  for (const char* who : {"alice", "mallory"}) {
    const CommandResult r = run_command(std::string(AZFLOWD_BIN) + " keygen --state-dir " +
                                        quote(clients.string()) + " --node " + who);
    ASSERT_EQ(r.code, 0) << r.output;
  }
  fs::copy_file(clients / "curve" / "alice.pub", trusted_ / "alice.pub");
  const std::string tcp = "tcp://127.0.0.1:" + std::to_string(free_port());
  a().start(trusted_, "", {}, true, "[control]\ntcp_endpoint = \"" + tcp + "\"");
  const auto ctl = [&](const std::string& keys) {
    return run_command(std::string(AZFLOWCTL_BIN) + " --endpoint " + tcp + " --timeout 2 " + keys +
                       " --json peers");
  };
  const std::string server = " --server-key " + quote((a().state() / "curve/a.pub").string());
  const CommandResult alice =
      ctl(server + " --client-key " + quote((clients / "curve/alice.key").string()));
  EXPECT_EQ(alice.code, 0) << alice.output;
  EXPECT_NE(alice.output.find("\"node\": \"a\""), std::string::npos) << alice.output;
  const CommandResult mallory =
      ctl(server + " --client-key " + quote((clients / "curve/mallory.key").string()));
  EXPECT_EQ(mallory.code, 1) << mallory.output;  // no answer
  EXPECT_EQ(ctl("").code, 1);                    // a plain client gets no answer either
  EXPECT_TRUE(eventually([&] {
    return a().log().find("refused a control connection") != std::string::npos;
  })) << a().log();
}

TEST_F(FederationTest, StoppedPeerNeitherStallsTheJobNorCountsTwice) {
  const std::string ref = data_.path("single.h5").string();
  single_daemon_reference(ref);
  start_three({{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "30"}});
  const std::string out = data_.path("split.h5").string();
  const std::int64_t id = enqueue_split(out);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(eventually([&] { return a().events(id).find(" to b") != std::string::npos; }));
  b().stop(SIGSTOP);
  const json job = wait_job(a().client(), id, std::chrono::seconds(120));  // while b is stopped
  EXPECT_NE(a().events(id).find("back from b"), std::string::npos) << a().events(id);
  b().stop(SIGCONT);
  EXPECT_TRUE(eventually([&] { return a().peer_state("b") == "connected"; })) << a().log();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // b's stale rows arrive
  expect_every_frame_once(job);
  expect_every_frame_once(job_status(a().client(), id));
  const json status = a().client().result({{"verb", "status"}});
  EXPECT_EQ(status["daemon"]["reducer"].value("frames_written", 0) +
                status["daemon"]["reducer"].value("frames_failed", 0),
            kFrames);
  expect_same_output(out, ref, true);
}

TEST_F(FederationTest, PeerThatCannotReadTheDatasetIsLeftOut) {
  const std::string ref = data_.path("single.h5").string();
  single_daemon_reference(ref);
  // c may read only under a folder that does not hold the dataset: as if it were not mounted
  start_three({{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "10"}},
              "allowed_input_roots = [\"" + data_.path("elsewhere").string() + "\"]");
  const std::string out = data_.path("split.h5").string();
  const std::int64_t id = enqueue_split(out);
  ASSERT_GT(id, 0);
  const json job = wait_job(a().client(), id);
  expect_every_frame_once(job);
  const std::string events = a().events(id);
  EXPECT_NE(events.find("peer c excluded"), std::string::npos) << events;
  EXPECT_NE(events.find("is outside the allowed_input_roots"), std::string::npos) << events;
  EXPECT_NE(events.find(" to b"), std::string::npos) << events;
  expect_same_output(out, ref, true);
}

TEST_F(FederationTest, RestartedCoordinatorResumesAndPeersReattach) {
  const std::string ref = data_.path("single.h5").string();
  single_daemon_reference(ref);
  const std::map<std::string, std::string> env{{"AZFLOW_TEST_DELAY_MS_INTEGRATE", "30"}};
  start_three(env);
  const std::string out = data_.path("split.h5").string();
  const std::int64_t id = enqueue_split(out);
  ASSERT_GT(id, 0);
  ASSERT_TRUE(eventually([&] {
    return job_status(a().client(), id)["shards"].value("done", 0) >= 2 &&
           a().events(id).find(" to b") != std::string::npos;
  }));
  a().stop(SIGKILL);
  const std::size_t before = a().events(id).size();
  a().start(trusted_, "", env);
  EXPECT_TRUE(eventually([&] {
    return a().peer_state("b") == "connected" && a().peer_state("c") == "connected";
  })) << a().log();
  const json job = wait_job(a().client(), id, std::chrono::seconds(120));
  expect_every_frame_once(job);
  const std::string after = a().events(id).substr(before);
  EXPECT_TRUE(after.find(" to b") != std::string::npos || after.find(" to c") != std::string::npos)
      << "no shard handed to a peer after the restart:\n"
      << after;
  expect_same_output(out, ref, true);
}

}  // namespace
