// The stage control protocol (daemon/stage_messages.hpp) and its DEALER side
// (daemon/stage_link.hpp): every message survives its JSON mapping, bad messages are refused naming
// the type and field, and a StageLink talks to a real ZeroMQ ROUTER in this process, standing in
// for azflowd.

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "base/error.hpp"
#include "daemon/stage_link.hpp"
#include "daemon/stage_messages.hpp"

namespace {

using namespace azflow::daemon;
using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

/// A valid job spec (the CLI fixture's PONI).
JobSpec fixture_spec() {
  const char* source_dir = std::getenv("AZFLOW_SOURCE_DIR");  // set by ctest (tests/CMakeLists.txt)
  if (source_dir == nullptr)
    throw std::runtime_error("AZFLOW_SOURCE_DIR is not set: run through ctest");
  const std::filesystem::path poni =
      std::filesystem::path(source_dir) / "tests/cli/fixtures/pilatus.poni";
  std::ifstream in(poni);
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const json spec = {{"datasets", {"/data/a_master.h5"}},
                     {"poni_path", poni.string()},
                     {"poni_text", text},
                     {"settings", {{"npt_rad", 100}}}};
  return job_spec_from_json(json::parse(spec.dump()));  // as from the wire: unsigned integers
}

template <typename T>
T round_trip_stage(const T& message) {
  const json j = to_json(StageMessage{message});
  EXPECT_EQ(j.at("type"), std::string(T::kType));
  return std::get<T>(parse_stage_message(json::parse(j.dump())));
}

template <typename T>
T round_trip_daemon(const T& message) {
  const json j = to_json(DaemonMessage{message});
  EXPECT_EQ(j.at("type"), std::string(T::kType));
  return std::get<T>(parse_daemon_message(json::parse(j.dump())));
}

/// The message of the azflow::Error that parsing `j` (as a stage message) throws.
std::string stage_error(const json& j) {
  try {
    (void)parse_stage_message(j);
  } catch (const azflow::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "parsed: " << j.dump();
  return "";
}

TEST(StageMessages, StageToDaemonMessagesRoundTrip) {
  const auto hello = round_trip_stage(StageHello{"integrate", 2, 4242, "cuda:1"});
  EXPECT_EQ(hello.role, "integrate");
  EXPECT_EQ(hello.worker, 2u);
  EXPECT_EQ(hello.pid, 4242);
  EXPECT_EQ(hello.device, "cuda:1");
  const auto beat =
      round_trip_stage(StageHeartbeat{"decompress", 1, 77, "cpu", StageCounters{10, 9, 1, 0.5}});
  EXPECT_EQ(beat.counters.frames_in, 10u);
  EXPECT_EQ(beat.counters.frames_out, 9u);
  EXPECT_EQ(beat.counters.failed, 1u);
  EXPECT_DOUBLE_EQ(beat.counters.busy_s, 0.5);
  EXPECT_EQ(round_trip_stage(JobConfigRequest{17}).job, 17);
  const auto axes = round_trip_stage(PlanAxes{5, json{{"radial_centers", {1.0, 2.0}}}});
  EXPECT_EQ(axes.job, 5);
  EXPECT_EQ(axes.axes["radial_centers"][1], 2.0);
  const auto read = round_trip_stage(ShardRead{3, 4, 99});
  EXPECT_EQ(read.job, 3);
  EXPECT_EQ(read.shard, 4);
  EXPECT_EQ(read.msg, 99);
  const StreamSeries series{5, "uid-5", 195, 487, azflow::DType::kUint32, 3, "/s/mask.u32", false};
  const auto started = round_trip_stage(StreamStarted{9, 0, series, "poni_version: 2\n", ""});
  EXPECT_EQ(started.job, 9);
  EXPECT_EQ(started.series, std::optional<StreamSeries>(series));
  EXPECT_EQ(started.poni_text, "poni_version: 2\n");
  const auto refused = round_trip_stage(StreamStarted{9, 0, std::nullopt, "", "no image size"});
  EXPECT_FALSE(refused.series.has_value());
  EXPECT_EQ(refused.error, "no image size");
  const auto counts = round_trip_stage(StreamProgress{9, json{{"received", 2}, {"invalid", 1}}});
  EXPECT_EQ(counts.counts["invalid"], 1);
  EXPECT_NE(stage_error(json{{"type", "stream_start"}, {"job", 9}}).find("neither"),
            std::string::npos);
}

TEST(StageMessages, DaemonToStageMessagesRoundTrip) {
  auto range = round_trip_daemon(ShardWork::range(1, 2, {"/a.h5", "/b.h5"}, "/entry/x", 50, 25));
  range.msg = 0;
  EXPECT_EQ(range.datasets, (std::vector<std::string>{"/a.h5", "/b.h5"}));
  EXPECT_EQ(range.dataset_path, "/entry/x");
  EXPECT_EQ(range.first, 50);
  EXPECT_EQ(range.count, 25);
  EXPECT_TRUE(range.frames.empty());
  EXPECT_EQ(range.offset, 0);
  EXPECT_FALSE(range.follow_timeout_s.has_value());
  ShardWork follow = ShardWork::range(1, 2, {"/a.h5"}, "", 0, 10);
  follow.follow_timeout_s = 4.5;
  EXPECT_EQ(round_trip_daemon(follow).follow_timeout_s, std::optional<double>(4.5));
  ShardWork listed = ShardWork::list(1, 3, {"/a.h5"}, "", {7, 9});
  listed.msg = 12;
  listed.offset = 30;  // a job of input frames 30..
  const auto back = round_trip_daemon(listed);
  EXPECT_EQ(back.frames, (std::vector<std::int64_t>{7, 9}));
  EXPECT_EQ(back.msg, 12);
  EXPECT_EQ(back.offset, 30);
  ShardWork stream = ShardWork::range(1, 0, {}, "", 0, 0);
  stream.stream = StreamWork{"tcp://dcu:31001", "v1",   "threshold_1", 2.5,
                             "/state/jobs/1",   "/raw", std::nullopt};
  const auto stream_back = round_trip_daemon(stream);
  ASSERT_TRUE(stream_back.stream.has_value());
  EXPECT_EQ(stream_back.stream->endpoint, "tcp://dcu:31001");
  EXPECT_EQ(stream_back.stream->format, "v1");
  EXPECT_EQ(stream_back.stream->channel, "threshold_1");
  EXPECT_EQ(stream_back.stream->idle_timeout_s, 2.5);
  EXPECT_EQ(stream_back.stream->job_dir, "/state/jobs/1");
  EXPECT_EQ(stream_back.stream->save_raw, "/raw");
  EXPECT_FALSE(stream_back.stream->resume.has_value());
  StreamSeries series;  // a resumed series comes back whole
  series.series_id = 7;
  series.series_unique_id = "scan-7";
  series.rows = 195;
  series.cols = 487;
  series.dtype = azflow::DType::kUint16;
  series.images = 1000;
  series.pixel_mask_path = "/state/jobs/1/stream_7_pixel_mask.u32";
  series.geometry_from_start = true;
  stream.stream->resume = series;
  EXPECT_EQ(round_trip_daemon(stream).stream->resume, std::optional<StreamSeries>(series));
  EXPECT_FALSE(range.stream.has_value());
  const auto reply = round_trip_daemon(JobConfigReply{8, fixture_spec(), {}});
  ASSERT_TRUE(reply.spec.has_value());
  EXPECT_EQ(reply.spec->datasets.front(), "/data/a_master.h5");
  EXPECT_EQ(reply.spec->settings.npt_rad, 100u);
  const auto refused = round_trip_daemon(JobConfigReply{8, std::nullopt, "no active job"});
  EXPECT_FALSE(refused.spec.has_value());
  EXPECT_EQ(refused.error, "no active job");
  EXPECT_EQ(round_trip_daemon(CancelJob{4}).job, 4);
  EXPECT_EQ(round_trip_daemon(RetryJob{5}).job, 5);
  EXPECT_EQ(round_trip_daemon(JobEnd{6}).job, 6);
  EXPECT_EQ(job_of(DaemonMessage{CancelJob{4}}), 4);
  EXPECT_EQ(job_of(DaemonMessage{StopStage{}}), 0);
  (void)round_trip_daemon(StopStage{});
}

TEST(StageMessages, BadMessagesAreRefusedNamingTypeAndField) {
  EXPECT_NE(stage_error(json::array()).find("not a JSON object"), std::string::npos);
  EXPECT_NE(stage_error({{"job", 1}}).find("missing field 'type'"), std::string::npos);
  const std::string unknown = stage_error({{"type", "shard"}, {"job", 1}});  // a daemon message
  EXPECT_NE(unknown.find("unknown message type 'shard'"), std::string::npos) << unknown;
  const std::string missing = stage_error({{"type", "plan_axes"}, {"job", 1}});
  EXPECT_NE(missing.find("'plan_axes' message: missing field 'axes'"), std::string::npos)
      << missing;
  const std::string wrong = stage_error({{"type", "job_config"}, {"job", "seven"}});
  EXPECT_NE(wrong.find("'job_config' message: field 'job' has the wrong type"), std::string::npos)
      << wrong;
  // a reply whose spec does not parse carries that as its error (the stage reports it)
  const auto reply = std::get<JobConfigReply>(
      parse_daemon_message({{"type", "job_config"}, {"job", 2}, {"spec", {{"datasets", 3}}}}));
  EXPECT_FALSE(reply.spec.has_value());
  EXPECT_NE(reply.error.find("spec."), std::string::npos) << reply.error;
}

/// A ROUTER standing in for azflowd's stage endpoint.
class FakeDaemon {
 public:
  explicit FakeDaemon(const std::string& endpoint) : socket_(context_, zmq::socket_type::router) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind(endpoint);
  }
  /// The next message and its sender, parsed (fails the test after 5 s).
  StageMessage receive() {
    zmq::message_t identity, payload;
    socket_.set(zmq::sockopt::rcvtimeo, 5000);
    EXPECT_TRUE(socket_.recv(identity));
    EXPECT_TRUE(socket_.recv(payload));
    identity_ = identity.to_string();
    return parse_stage_message(json::parse(payload.to_string_view()));
  }
  void send(const DaemonMessage& message) {
    const std::string text = to_json(message).dump();
    (void)socket_.send(zmq::buffer(identity_), zmq::send_flags::sndmore);
    (void)socket_.send(zmq::buffer(text), zmq::send_flags::none);
  }
  void send_raw(const std::string& text) {
    (void)socket_.send(zmq::buffer(identity_), zmq::send_flags::sndmore);
    (void)socket_.send(zmq::buffer(text), zmq::send_flags::none);
  }

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
  std::string identity_;
};

TEST(StageLinkTest, HelloRequestAndMessagesSetAsideAgainstARealRouter) {
  const std::string endpoint = "ipc:///tmp/azflow-link-test-" + std::to_string(::getpid());
  FakeDaemon daemon(endpoint);
  StageLink link(endpoint, {"integrate", 1, "cpu"}, milliseconds(0));
  const auto hello = std::get<StageHello>(daemon.receive());
  EXPECT_EQ(hello.role, "integrate");
  EXPECT_EQ(hello.worker, 1u);
  EXPECT_EQ(hello.pid, static_cast<std::int64_t>(::getpid()));
  link.heartbeat_if_due(StageCounters{3, 2, 1, 0.25});  // interval 0: due at once
  EXPECT_EQ(std::get<StageHeartbeat>(daemon.receive()).counters.frames_out, 2u);
  // the daemon answers a config request after a cancel and a reply for another job
  std::thread answer([&] {
    const auto request = std::get<JobConfigRequest>(daemon.receive());
    daemon.send(CancelJob{9});
    daemon.send_raw("not json");  // skipped by the link
    daemon.send(JobConfigReply{request.job + 1, std::nullopt, "other job"});
    daemon.send(JobConfigReply{request.job, std::nullopt, "no active job"});
  });
  const auto reply = link.request_job_config(42, std::chrono::seconds(5));
  answer.join();
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->job, 42);
  EXPECT_EQ(reply->error, "no active job");
  // what arrived meanwhile comes next, in order
  const auto first = link.receive(milliseconds(0));
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(std::get<CancelJob>(*first).job, 9);
  const auto second = link.receive(milliseconds(0));
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(std::get<JobConfigReply>(*second).job, 43);
  EXPECT_FALSE(link.receive(milliseconds(50)).has_value());
  EXPECT_FALSE(link.stop_requested());
  daemon.send(StopStage{});
  EXPECT_TRUE(link.receive(std::chrono::seconds(5)).has_value());
  EXPECT_TRUE(link.stop_requested());
  std::filesystem::remove(endpoint.substr(6));
}

TEST(StageLinkTest, TheKeeperThreadBeatsForABusyStage) {
  const std::string endpoint = "ipc:///tmp/azflow-link-keeper-" + std::to_string(::getpid());
  FakeDaemon daemon(endpoint);
  StageLink link(endpoint, {"integrate", 0, "cpu"}, milliseconds(100));
  (void)std::get<StageHello>(daemon.receive());
  link.heartbeat_if_due(StageCounters{7, 6, 0, 0.5});  // the last counters the stage saw
  // The processing thread now does nothing (a long plan build): heartbeats keep coming, about
  // one per interval, repeating its last counters.
  const auto start = Clock::now();
  for (int k = 0; k < 3; ++k) {
    const auto beat = std::get<StageHeartbeat>(daemon.receive());
    EXPECT_EQ(beat.counters.frames_out, 6u);
    EXPECT_EQ(beat.pid, static_cast<std::int64_t>(::getpid()));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_GT(seconds, 0.15);
  EXPECT_LT(seconds, 2.0);
  std::filesystem::remove(endpoint.substr(6));
}

}  // namespace
