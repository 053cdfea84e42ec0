// The SQLite job store: jobs, shards, counts, durability across reopen, crash recovery, WAL
// readers while a writer commits.
#include "daemon/job_store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "tests/daemon/control_test_support.hpp"

namespace azflow::daemon {
namespace {

using test::TempDir;

JobSpec spec(const std::string& output = "/out/a.nxs") {
  JobSpec s;
  s.datasets = {"/data/a_master.h5"};
  s.poni_text = test::kPoniText;
  s.output_path = output;
  return s;
}

std::vector<ShardPlan> cut(std::int64_t frames, std::int64_t per_shard) {
  std::vector<ShardPlan> shards;
  for (std::int64_t first = 0, k = 0; first < frames; first += per_shard, ++k) {
    shards.push_back({k, first, std::min(per_shard, frames - first)});
  }
  return shards;
}

TEST(JobStore, StateNames) {
  for (JobState s : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                     JobState::kWarning, JobState::kFailed, JobState::kCancelled}) {
    EXPECT_EQ(parse_job_state(job_state_name(s)), s);
  }
  EXPECT_FALSE(parse_job_state("done").has_value());
  EXPECT_FALSE(is_final(JobState::kRunning));
  EXPECT_TRUE(is_final(JobState::kWarning));
}

TEST(JobStore, AddAndReadBack) {
  TempDir dir;
  JobStore store(JobStore::path_in(dir.path() / "state"));
  const auto shards = cut(120, 50);
  const std::int64_t id = store.add_job(spec(), 120, shards);
  EXPECT_GT(id, 0);
  const auto job = store.job(id);
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_EQ(job->frames_total, 120);
  EXPECT_EQ(job->output_path, "/out/a.nxs");
  EXPECT_EQ(job->spec.datasets, spec().datasets);
  EXPECT_GT(job->created_unix_ms, 0);
  EXPECT_FALSE(job->started_unix_ms.has_value());
  const auto rows = store.shards(id);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[2].first_frame, 100);
  EXPECT_EQ(rows[2].frame_count, 20);
  EXPECT_EQ(rows[2].state, ShardState::kQueued);
  EXPECT_FALSE(store.job(id + 1).has_value());
  EXPECT_GT(store.add_job(spec(), 10, cut(10, 50)), id);
}

TEST(JobStore, TransitionsAndTimestamps) {
  TempDir dir;
  JobStore store(dir.path() / "jobs.sqlite");
  const std::int64_t a = store.add_job(spec(), 100, cut(100, 50));
  const std::int64_t b = store.add_job(spec(), 100, cut(100, 50));
  store.set_job_state(a, JobState::kRunning);
  EXPECT_TRUE(store.job(a)->started_unix_ms.has_value());
  EXPECT_FALSE(store.job(a)->finished_unix_ms.has_value());
  store.set_job_state(a, JobState::kFailed, "source: cannot open /data/a_master.h5");
  const auto job = store.job(a);
  EXPECT_EQ(job->state, JobState::kFailed);
  EXPECT_EQ(job->error, "source: cannot open /data/a_master.h5");
  EXPECT_TRUE(job->finished_unix_ms.has_value());
  EXPECT_EQ(store.jobs_in_state(JobState::kQueued).size(), 1u);
  EXPECT_EQ(store.jobs_in_state(JobState::kQueued)[0].id, b);
  EXPECT_EQ(store.list(std::nullopt, false).size(), 1u);  // unfinished only
  const auto all = store.list(std::nullopt, true);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, b);  // newest first
  EXPECT_EQ(store.list(JobState::kFailed, false).size(), 1u);
  EXPECT_THROW(store.set_job_state(999, JobState::kRunning), Error);
  store.set_output_path(b, "/state/results/job-2.nxs");
  EXPECT_EQ(store.job(b)->output_path, "/state/results/job-2.nxs");
}

TEST(JobStore, ShardCountsAddUpOnce) {
  TempDir dir;
  JobStore store(dir.path() / "jobs.sqlite");
  const std::int64_t id = store.add_job(spec(), 100, cut(100, 50));
  store.mark_shard_running(id, 0);
  store.mark_shard_running(id, 1);
  EXPECT_TRUE(store.mark_shard_done(id, 0, 50, 2));
  EXPECT_FALSE(store.mark_shard_done(id, 0, 50, 2));  // a second report does not count
  auto job = store.job(id);
  EXPECT_EQ(job->frames_done, 50);
  EXPECT_EQ(job->frames_failed, 2);
  const auto unfinished = store.unfinished_shards(id);
  ASSERT_EQ(unfinished.size(), 1u);
  EXPECT_EQ(unfinished[0].shard_id, 1);
  EXPECT_EQ(unfinished[0].state, ShardState::kRunning);
  EXPECT_EQ(unfinished[0].attempts, 1);
  store.requeue_shard(id, 1);
  store.mark_shard_running(id, 1);
  EXPECT_EQ(store.unfinished_shards(id)[0].attempts, 2);
  EXPECT_TRUE(store.mark_shard_done(id, 1, 50, 0));
  job = store.job(id);
  EXPECT_EQ(job->frames_done, 100);
  EXPECT_EQ(job->frames_failed, 2);
  EXPECT_TRUE(store.unfinished_shards(id).empty());
  EXPECT_THROW(store.mark_shard_done(id, 7, 1, 0), Error);
  EXPECT_THROW(store.mark_shard_running(id + 1, 0), Error);
}

TEST(JobStore, FrameErrors) {
  TempDir dir;
  JobStore store(dir.path() / "jobs.sqlite");
  const std::int64_t id = store.add_job(spec(), 100, cut(100, 50));
  store.record_frame_error(id, 17, "decompress: chunk 17 of /data/a.h5: LZ4 error");
  store.record_frame_error(id, 3, "source: short read");
  store.record_frame_error(id, 17, "decompress: retry failed");
  const auto errors = store.frame_errors(id);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].frame_index, 3);
  EXPECT_EQ(errors[1].reason, "decompress: retry failed");
}

TEST(JobStore, ReopenFindsEverythingAndRequeuesRunningShards) {
  TempDir dir;
  const auto db = dir.path() / "jobs.sqlite";
  std::int64_t id = 0;
  {
    JobStore store(db);
    id = store.add_job(spec(), 150, cut(150, 50));
    store.set_job_state(id, JobState::kRunning);
    store.mark_shard_running(id, 0);
    store.mark_shard_done(id, 0, 50, 1);
    store.mark_shard_running(id, 1);
    store.mark_shard_running(id, 2);
    store.record_frame_error(id, 4, "bad chunk");
  }  // "crash": shards 1 and 2 were running
  JobStore store(db);
  const auto job = store.job(id);
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(job->state, JobState::kRunning);
  EXPECT_EQ(job->frames_done, 50);
  EXPECT_EQ(job->frames_failed, 1);
  EXPECT_EQ(store.frame_errors(id).size(), 1u);
  EXPECT_EQ(store.requeue_running_shards_on_startup(), 2u);
  const auto unfinished = store.unfinished_shards(id);
  ASSERT_EQ(unfinished.size(), 2u);
  for (const auto& s : unfinished) EXPECT_EQ(s.state, ShardState::kQueued);
  EXPECT_EQ(store.requeue_running_shards_on_startup(), 0u);
}

TEST(JobStore, ReaderSeesConsistentCountsWhileWriterCommits) {
  TempDir dir;
  const auto db = dir.path() / "jobs.sqlite";
  JobStore writer(db);
  constexpr std::int64_t kShards = 200;
  const std::int64_t id = writer.add_job(spec(), kShards * 5, cut(kShards * 5, 5));
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    JobStore store(db);  // its own connection, as another thread or process would have
    std::int64_t last = 0;
    while (!done.load()) {
      const auto job = store.job(id);
      ASSERT_TRUE(job.has_value());
      ASSERT_GE(job->frames_done, last);   // never goes back
      ASSERT_EQ(job->frames_done % 5, 0);  // whole shards only: each commit is atomic
      last = job->frames_done;
      reads.fetch_add(1);
    }
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (reads.load() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  for (std::int64_t k = 0; k < kShards; ++k) {
    writer.mark_shard_running(id, k);
    writer.mark_shard_done(id, k, 5, 0);
  }
  done = true;
  reader.join();
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(writer.job(id)->frames_done, kShards * 5);
}

TEST(JobStore, UnopenableDatabaseNamesPath) {
  TempDir dir;
  test::write_file(dir.path() / "file", "x");
  const auto db = dir.path() / "file" / "jobs.sqlite";  // parent is a file
  try {
    JobStore store(db);
    FAIL() << "opened " << db;
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIo);
    EXPECT_NE(std::string(e.what()).find(db.string()), std::string::npos) << e.what();
  }
}

TEST(JobStore, CorruptDatabaseNamesPathAndPurpose) {
  TempDir dir;
  const auto db = dir.path() / "jobs.sqlite";
  test::write_file(db, std::string(4096, 'x'));
  try {
    JobStore store(db);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIo);
    const std::string what = e.what();
    EXPECT_NE(what.find(db.string()), std::string::npos) << what;
    EXPECT_NE(what.find("cannot "), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace azflow::daemon
