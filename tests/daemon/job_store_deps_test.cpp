// The job store's version-2 additions: dependencies (job_deps) and priorities that survive a
// reopen, the in-place migration of a version-1 database, totals for `stats`, and the retry
// transaction.
#include <sqlite3.h>

#include <gtest/gtest.h>

#include "daemon/job_store.hpp"
#include "tests/daemon/control_test_support.hpp"

namespace azflow::daemon {
namespace {

using test::TempDir;

JobSpec spec() {
  JobSpec s;
  s.datasets = {"/data/a_master.h5"};
  s.poni_text = test::kPoniText;
  return s;
}

/// The version-1 schema exactly as azflowd 1 created it (before job_deps).
constexpr const char* kVersion1 = R"sql(
CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, state TEXT NOT NULL, spec TEXT NOT NULL,
  output_path TEXT NOT NULL DEFAULT '', frames_total INTEGER NOT NULL,
  frames_done INTEGER NOT NULL DEFAULT 0, frames_failed INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL, started_ms INTEGER,
  finished_ms INTEGER, priority INTEGER NOT NULL DEFAULT 0);
CREATE INDEX jobs_by_state ON jobs(state);
CREATE TABLE shards (job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  shard_id INTEGER NOT NULL, first_frame INTEGER NOT NULL, frame_count INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'queued', frames_done INTEGER NOT NULL DEFAULT 0,
  frames_failed INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, shard_id));
CREATE TABLE frame_errors (job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  frame_index INTEGER NOT NULL, reason TEXT NOT NULL, PRIMARY KEY (job_id, frame_index));
PRAGMA user_version = 1;
)sql";

std::int64_t user_version(const std::filesystem::path& db) {
  sqlite3* h = nullptr;
  sqlite3_open(db.c_str(), &h);
  sqlite3_stmt* s = nullptr;
  sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &s, nullptr);
  sqlite3_step(s);
  const std::int64_t v = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(h);
  return v;
}

TEST(JobStoreDeps, PriorityAndDependenciesSurviveAReopen) {
  TempDir dir;
  const auto db = dir.path() / "jobs.sqlite";
  std::int64_t a = 0, b = 0, c = 0;
  {
    JobStore store(db);
    a = store.add_job(spec(), 10, std::vector<ShardPlan>{{0, 0, 10}});
    b = store.add_job(spec(), 10, std::vector<ShardPlan>{{0, 0, 10}}, 7);
    const std::vector<std::int64_t> after{b, a};
    c = store.add_job(spec(), 10, std::vector<ShardPlan>{{0, 0, 10}}, -2, after);
  }
  JobStore store(db);
  EXPECT_EQ(store.job(a)->after, std::vector<std::int64_t>{});
  EXPECT_EQ(store.job(b)->priority, 7);
  EXPECT_EQ(store.job(c)->priority, -2);
  EXPECT_EQ(store.job(c)->after, (std::vector<std::int64_t>{a, b}));
  EXPECT_EQ(store.jobs_in_state(JobState::kQueued).back().after, (std::vector<std::int64_t>{a, b}));
  EXPECT_EQ(user_version(db), 2);
}

TEST(JobStoreDeps, AVersionOneDatabaseIsMigratedInPlace) {
  TempDir dir;
  const auto db = dir.path() / "jobs.sqlite";
  {
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(h, kVersion1, nullptr, nullptr, nullptr), SQLITE_OK);
    const std::string insert =
        "INSERT INTO jobs (state, spec, frames_total, created_ms, priority) VALUES ('queued', '" +
        to_json(spec()).dump() + "', 10, 1000, 3)";
    ASSERT_EQ(sqlite3_exec(h, insert.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(h);
  }
  ASSERT_EQ(user_version(db), 1);
  JobStore store(db);
  EXPECT_EQ(user_version(db), 2);
  const auto old = store.job(1);
  ASSERT_TRUE(old);
  EXPECT_EQ(old->priority, 3);
  EXPECT_TRUE(old->after.empty());
  const std::vector<std::int64_t> after{1};
  const std::int64_t id = store.add_job(spec(), 5, {}, 0, after);
  EXPECT_EQ(store.job(id)->after, after);
}

TEST(JobStoreDeps, TotalsCountJobsByStateAndFrames) {
  TempDir dir;
  JobStore store(dir.path() / "jobs.sqlite");
  const auto a = store.add_job(spec(), 10, std::vector<ShardPlan>{{0, 0, 10}});
  store.add_job(spec(), 10, std::vector<ShardPlan>{{0, 0, 10}});
  store.set_job_state(a, JobState::kRunning);
  store.mark_shard_running(a, 0);
  store.mark_shard_done(a, 0, 10, 2);
  store.set_job_state(a, JobState::kWarning, "2 of 10 frames failed");
  const StoreTotals t = store.totals();
  EXPECT_EQ(t.jobs_by_state.at(JobState::kWarning), 1);
  EXPECT_EQ(t.jobs_by_state.at(JobState::kQueued), 1);
  EXPECT_FALSE(t.jobs_by_state.contains(JobState::kRunning));
  EXPECT_EQ(t.frames_done, 10);
  EXPECT_EQ(t.frames_failed, 2);
}

TEST(JobStoreDeps, RequeueForRetryMovesTheFailedFramesIntoNewShards) {
  TempDir dir;
  JobStore store(dir.path() / "jobs.sqlite");
  const auto id = store.add_job(spec(), 20, std::vector<ShardPlan>{{0, 0, 10}, {1, 10, 10}});
  store.set_job_state(id, JobState::kRunning);
  store.mark_shard_running(id, 0);
  store.mark_shard_done(id, 0, 10, 2);
  store.record_frame_error(id, 3, "bad chunk");
  store.record_frame_error(id, 4, "bad chunk");
  store.mark_shard_running(id, 1);  // running when the job was cancelled
  store.record_frame_error(id, 12, "partial shard");
  store.set_job_state(id, JobState::kCancelled, "cancelled by request");

  RetryPlan plan;
  plan.new_shards = {{2, 3, 2}};
  plan.frames_from_done_shards = 2;
  store.requeue_for_retry(id, plan);
  const auto job = store.job(id);
  EXPECT_EQ(job->state, JobState::kQueued);
  EXPECT_EQ(job->error, "");
  EXPECT_FALSE(job->started_unix_ms);
  EXPECT_FALSE(job->finished_unix_ms);
  EXPECT_EQ(job->frames_done, 8);
  EXPECT_EQ(job->frames_failed, 0);
  const auto shards = store.shards(id);
  ASSERT_EQ(shards.size(), 3u);
  EXPECT_EQ(shards[0].state, ShardState::kDone);
  EXPECT_EQ(shards[1].state, ShardState::kQueued);  // was running
  EXPECT_EQ(shards[2].first_frame, 3);
  EXPECT_EQ(shards[2].frame_count, 2);
  EXPECT_TRUE(store.frame_errors(id).empty());  // frames 3, 4 and 12 run again
  EXPECT_THROW(store.requeue_for_retry(99, plan), Error);
}

}  // namespace
}  // namespace azflow::daemon
