// The result sink (daemon/result_sink.hpp) on its own, with real shard files, a real results ring
// and a real ZeroMQ PUB socket: rows in any order, duplicates ignored, a shard committed (.done)
// before its event is reported and open until that event is taken, cancelled frames dropped.

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <variant>
#include <vector>

#include "daemon/result_sink.hpp"
#include "ipc/ring.hpp"
#include "stages/reduce/shard_file.hpp"

namespace {

using namespace azflow::daemon;
namespace fs = std::filesystem;
using std::chrono::milliseconds;

constexpr std::size_t kBins = 3;

/// Sums of a frame whose intensity is `value` in every bin (signal = value, normalization 1).
std::vector<double> sums_of(double value) {
  std::vector<double> sums(4 * kBins, 0.0);
  for (std::size_t b = 0; b < kBins; ++b) {
    sums[b] = value;            // signal
    sums[kBins + b] = value;    // variance
    sums[2 * kBins + b] = 1.0;  // normalization
    sums[3 * kBins + b] = 1.0;  // count
  }
  return sums;
}

class ResultSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    sink_.reset();
    fs::remove_all(dir_);
  }
  void open(std::int64_t job, std::int64_t shard, std::int64_t first, std::int64_t count) {
    sink_->open_shard(dir_, {job, shard, first, count, kBins, true});
  }
  void add_ok(std::int64_t job, std::int64_t shard, std::int64_t frame) {
    sink_->add(OwnedFrameResult{job, shard, frame, true, {}, sums_of(static_cast<double>(frame))});
  }
  /// Every event after the sink has run everything handed to it.
  std::vector<SinkEvent> settle() {
    sink_->wait_idle();
    return sink_->take_events();
  }

  std::string id_ = std::to_string(::getpid());
  fs::path dir_ = fs::temp_directory_path() / ("azflow-sink-test-" + id_);
  zmq::context_t context_{1};
  std::unique_ptr<ResultSink> sink_ = std::make_unique<ResultSink>(
      context_, "ipc:///tmp/azflow-sink-test-" + id_ + ".live", 100, milliseconds(0));
};

TEST_F(ResultSinkTest, RowsInAnyOrderDuplicatesIgnoredCommittedOnce) {
  open(1, 0, 10, 5);
  for (const std::int64_t f : {14, 10, 12, 12, 11}) add_ok(1, 0, f);  // 12 twice
  EXPECT_TRUE(settle().empty());                                      // 4 of 5 frames: not complete
  EXPECT_EQ(sink_->missing(1, 0), std::vector<std::int64_t>{13});
  EXPECT_EQ(sink_->counters().duplicates, 1u);
  add_ok(1, 0, 13);
  add_ok(1, 0, 13);  // after completion: the shard is no longer open
  const auto events = settle();
  ASSERT_EQ(events.size(), 1u);
  const auto& done = std::get<ShardCommittedEvent>(events[0]);
  EXPECT_EQ(done.job, 1);
  EXPECT_EQ(done.shard, 0);
  EXPECT_EQ(done.frames, 5u);
  EXPECT_EQ(done.failed, 0u);
  EXPECT_TRUE(done.error.empty()) << done.error;
  EXPECT_EQ(sink_->counters().written, 5u);
  EXPECT_EQ(sink_->counters().not_open, 1u);
  EXPECT_TRUE(fs::exists(azflow::reduce::shard_done_path(dir_, 0)));
  EXPECT_FALSE(fs::exists(azflow::reduce::shard_partial_path(dir_, 0)));
  azflow::reduce::ShardFileReader reader(azflow::reduce::shard_done_path(dir_, 0));
  azflow::reduce::ShardFrame row;
  for (std::size_t k = 0; k < 5; ++k) {  // each row at its frame's place, whatever the order
    reader.read(k, row);
    EXPECT_EQ(row.frame, 10 + static_cast<std::int64_t>(k));
    ASSERT_TRUE(row.ok);
    EXPECT_FLOAT_EQ(row.intensity.at(1), static_cast<float>(10 + k));
  }
}

TEST_F(ResultSinkTest, AShardIsOpenUntilItsCommitEventIsTakenAndFailuresComeFirst) {
  open(2, 0, 0, 2);
  sink_->add(OwnedFrameResult{2, 0, 0, false, "frame 0: LZ4 error", {}});
  add_ok(2, 0, 1);
  sink_->wait_idle();
  // committed on disk, event not yet taken: still "open", so the daemon cannot reopen (truncate)
  // its file or count it twice
  EXPECT_TRUE(fs::exists(azflow::reduce::shard_done_path(dir_, 0)));
  EXPECT_TRUE(sink_->is_open(2, 0));
  EXPECT_TRUE(sink_->missing(2, 0).empty());
  open(2, 0, 0, 2);  // a no-op while committing
  EXPECT_TRUE(fs::exists(azflow::reduce::shard_done_path(dir_, 0)));
  EXPECT_FALSE(fs::exists(azflow::reduce::shard_partial_path(dir_, 0)));
  const auto events = sink_->take_events();
  ASSERT_EQ(events.size(), 2u);
  const auto& failed = std::get<FrameFailedEvent>(events[0]);  // before its shard's commit
  EXPECT_EQ(failed.frame, 0);
  EXPECT_EQ(failed.reason, "frame 0: LZ4 error");
  EXPECT_EQ(std::get<ShardCommittedEvent>(events[1]).failed, 1u);
  EXPECT_FALSE(sink_->is_open(2, 0));
}

TEST_F(ResultSinkTest, DroppedJobsAndCancelledSlotsAreIgnored) {
  open(3, 0, 0, 2);
  add_ok(3, 0, 0);
  sink_->wait_idle();
  sink_->drop_job(3);  // cancel: the .partial file goes, later frames are not open
  add_ok(3, 0, 1);
  EXPECT_TRUE(settle().empty());
  EXPECT_FALSE(fs::exists(azflow::reduce::shard_partial_path(dir_, 0)));
  EXPECT_FALSE(sink_->is_open(3, 0));

  const std::string ring_name = azflow::ipc::ring_name("sinktest" + id_, "results");
  auto ring = azflow::ipc::Ring::create({ring_name, 4, 4 * kBins * sizeof(double)});
  open(4, 0, 0, 1);
  {
    auto slot = ring.acquire_write(milliseconds(100));
    ASSERT_TRUE(slot.has_value());
    slot->header().job_id = 4;
    slot->header().status = azflow::ipc::SlotStatus::kCancelled;
    slot->header().set_reason("job cancelled");
    slot->commit();
  }
  auto read = ring.acquire_read(milliseconds(100));
  ASSERT_TRUE(read.has_value());
  sink_->add(std::move(*read));
  EXPECT_TRUE(settle().empty());  // neither written nor failed: the frame is still missing
  EXPECT_EQ(sink_->missing(4, 0), std::vector<std::int64_t>{0});
  EXPECT_EQ(sink_->counters().failed, 0u);
  EXPECT_EQ(ring.stats().in_use, 0u);  // the slot was released
  azflow::ipc::Ring::remove(ring_name);
}

TEST_F(ResultSinkTest, OutputErrorsEndTheJobFailedNamingTheOutput) {
  OutputTask task;
  task.job_id = 5;
  task.frames_total = 1;
  task.dir = dir_;
  task.axes = nlohmann::json::object();  // no plan axes: the output cannot be laid out
  task.output = (dir_ / "out.h5").string();
  task.finish = true;
  task.state = JobState::kSucceeded;
  sink_->assemble(task);
  const auto events = settle();
  ASSERT_EQ(events.size(), 1u);
  const auto& written = std::get<OutputWrittenEvent>(events[0]);
  EXPECT_EQ(written.job, 5);
  EXPECT_EQ(written.state, JobState::kFailed);
  EXPECT_NE(written.reason.find("output: "), std::string::npos) << written.reason;
}

}  // namespace
