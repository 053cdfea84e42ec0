#include "daemon/job_store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <system_error>

namespace azflow::daemon {

namespace {

constexpr std::array<std::string_view, 6> kJobStateNames = {"queued",  "running", "succeeded",
                                                            "warning", "failed",  "cancelled"};

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  state TEXT NOT NULL,
  spec TEXT NOT NULL,
  output_path TEXT NOT NULL DEFAULT '',
  frames_total INTEGER NOT NULL,
  frames_done INTEGER NOT NULL DEFAULT 0,
  frames_failed INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  created_ms INTEGER NOT NULL,
  started_ms INTEGER,
  finished_ms INTEGER,
  priority INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);
CREATE TABLE IF NOT EXISTS shards (
  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  shard_id INTEGER NOT NULL,
  first_frame INTEGER NOT NULL,
  frame_count INTEGER NOT NULL,
  state TEXT NOT NULL DEFAULT 'queued',
  frames_done INTEGER NOT NULL DEFAULT 0,
  frames_failed INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, shard_id)
);
CREATE INDEX IF NOT EXISTS shards_by_state ON shards(state);
CREATE TABLE IF NOT EXISTS frame_errors (
  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  frame_index INTEGER NOT NULL,
  reason TEXT NOT NULL,
  PRIMARY KEY (job_id, frame_index)
);
)sql";
/// Version 2 adds job_deps (the `after` dependencies of a job; `retry` also needs no schema).
constexpr const char* kSchemaV2 = R"sql(
CREATE TABLE IF NOT EXISTS job_deps (
  job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  depends_on INTEGER NOT NULL,
  PRIMARY KEY (job_id, depends_on)
);
)sql";
constexpr int kSchemaVersion = 2;

constexpr const char* kJobColumns =
    "id, state, spec, output_path, frames_total, frames_done, frames_failed, error, created_ms, "
    "started_ms, finished_ms, priority,"
    " (SELECT group_concat(depends_on) FROM job_deps WHERE job_deps.job_id = jobs.id)";
constexpr const char* kShardColumns =
    "job_id, shard_id, first_frame, frame_count, state, frames_done, frames_failed, attempts";

std::int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ShardState parse_shard_state(std::string_view name) {
  if (name == "running") return ShardState::kRunning;
  if (name == "done") return ShardState::kDone;
  return ShardState::kQueued;
}

}  // namespace

/// A prepared statement; errors name the database and the statement's purpose.
class JobStore::Statement {
 public:
  Statement(const JobStore& store, const std::string& sql, std::string_view purpose)
      : store_(store), purpose_(purpose) {
    if (sqlite3_prepare_v2(store.db_, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) {
      store.fail(purpose);
    }
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int index, std::int64_t value) {
    check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Statement& bind(int index, std::string_view text) {
    // An empty view may have a null data(), which SQLite would store as NULL.
    check(sqlite3_bind_text(stmt_, index, text.empty() ? "" : text.data(),
                            static_cast<int>(text.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& bind(int index, const std::string& text) {
    return bind(index, std::string_view(text));
  }
  Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }

  /// Makes the statement ready to be bound and stepped again.
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  /// Steps once: true if a row is available, false when done.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) store_.fail(purpose_);
    return false;
  }

  [[nodiscard]] std::int64_t integer(int column) const {
    return sqlite3_column_int64(stmt_, column);
  }
  [[nodiscard]] std::optional<std::int64_t> optional_integer(int column) const {
    if (sqlite3_column_type(stmt_, column) == SQLITE_NULL) return std::nullopt;
    return integer(column);
  }
  [[nodiscard]] std::string text(int column) const {
    const auto* p = sqlite3_column_text(stmt_, column);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p));
  }

 private:
  void check(int rc) const {
    if (rc != SQLITE_OK) store_.fail(purpose_);
  }

  const JobStore& store_;
  std::string purpose_;
  sqlite3_stmt* stmt_ = nullptr;
};

namespace {

/// BEGIN IMMEDIATE ... COMMIT, rolled back if not committed.
class Transaction {
 public:
  explicit Transaction(const std::function<void(const char*)>& exec) : exec_(exec) {
    exec_("BEGIN IMMEDIATE");
  }
  ~Transaction() {
    if (!committed_) {
      try {
        exec_("ROLLBACK");
      } catch (...) {  // a failed rollback leaves SQLite to roll back on close
      }
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    exec_("COMMIT");
    committed_ = true;
  }

 private:
  std::function<void(const char*)> exec_;
  bool committed_ = false;
};

}  // namespace

std::string_view job_state_name(JobState state) noexcept {
  return kJobStateNames[static_cast<std::size_t>(state)];
}

std::optional<JobState> parse_job_state(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kJobStateNames.size(); ++i) {
    if (kJobStateNames[i] == name) return static_cast<JobState>(i);
  }
  return std::nullopt;
}

bool is_final(JobState state) noexcept {
  return state != JobState::kQueued && state != JobState::kRunning;
}

std::string_view shard_state_name(ShardState state) noexcept {
  switch (state) {
    case ShardState::kQueued:
      return "queued";
    case ShardState::kRunning:
      return "running";
    case ShardState::kDone:
      return "done";
  }
  return "queued";
}

JobStore::JobStore(std::filesystem::path db_path) : path_(std::move(db_path)) {
  std::error_code ec;
  if (path_.has_parent_path()) std::filesystem::create_directories(path_.parent_path(), ec);
  if (ec) {
    throw Error(ErrorCategory::kIo,
                "job store " + path_.string() + ": cannot create its directory: " + ec.message());
  }
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(ErrorCategory::kIo, "job store " + path_.string() + ": cannot open: " + why);
  }
  try {
    sqlite3_busy_timeout(db_, 5000);
    sqlite3_extended_result_codes(db_, 1);
    exec("PRAGMA journal_mode=WAL", "enable the WAL journal");
    exec("PRAGMA synchronous=FULL", "set synchronous=FULL");
    exec("PRAGMA foreign_keys=ON", "enable foreign keys");
    create_schema();
  } catch (...) {
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

JobStore::~JobStore() { sqlite3_close(db_); }

std::filesystem::path JobStore::path_in(const std::filesystem::path& state_dir) {
  return state_dir / "jobs.sqlite";
}

void JobStore::create_schema() {
  // Only a new database is written to here, so that opening a second connection (a reader)
  // does not wait for a busy writer.
  Statement version(*this, "PRAGMA user_version", "read the schema version");
  const std::int64_t found = version.step() ? version.integer(0) : 0;
  if (found == kSchemaVersion) return;
  if (found > 0 && found < kSchemaVersion) {
    migrate(found);
    return;
  }
  if (found != 0) {
    throw Error(ErrorCategory::kIo, "job store " + path_.string() + ": schema version " +
                                        std::to_string(found) + " is not " +
                                        std::to_string(kSchemaVersion) + " (newer azflowd?)");
  }
  Transaction tx([this](const char* sql) { exec(sql, "run a transaction to create the schema"); });
  exec(kSchema, "create the schema");
  exec(kSchemaV2, "create the schema (version 2 tables)");
  exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str(),
       "set the schema version");
  tx.commit();
}

/// Upgrades a database written by an older azflowd in place (1 -> 2: the job_deps table).
void JobStore::migrate(std::int64_t from_version) {
  Transaction tx([this](const char* sql) { exec(sql, "run a transaction to migrate the schema"); });
  if (from_version < 2) exec(kSchemaV2, "migrate the schema to version 2 (job_deps)");
  exec(("PRAGMA user_version = " + std::to_string(kSchemaVersion)).c_str(),
       "set the schema version");
  tx.commit();
}

void JobStore::exec(const char* sql, std::string_view purpose) const {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(purpose);
}

void JobStore::fail(std::string_view purpose) const {
  throw Error(ErrorCategory::kIo, "job store " + path_.string() + ": cannot " +
                                      std::string(purpose) + ": " + sqlite3_errmsg(db_));
}

namespace {

JobRecord read_job(const auto& s) {
  JobRecord job;
  job.id = s.integer(0);
  job.state = parse_job_state(s.text(1)).value_or(JobState::kFailed);
  try {
    job.spec = job_spec_from_json(nlohmann::json::parse(s.text(2)));
  } catch (const std::exception& e) {  // written by add_job: only a damaged database gets here
    throw Error(ErrorCategory::kInternal,
                "job " + std::to_string(job.id) + ": stored spec does not parse: " + e.what());
  }
  job.output_path = s.text(3);
  job.frames_total = s.integer(4);
  job.frames_done = s.integer(5);
  job.frames_failed = s.integer(6);
  job.error = s.text(7);
  job.created_unix_ms = s.integer(8);
  job.started_unix_ms = s.optional_integer(9);
  job.finished_unix_ms = s.optional_integer(10);
  job.priority = s.integer(11);
  const std::string after = s.text(12);  // "3,5" (group_concat), "" without dependencies
  for (std::size_t pos = 0; pos < after.size();) {
    const std::size_t comma = std::min(after.find(',', pos), after.size());
    job.after.push_back(std::stoll(after.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  std::sort(job.after.begin(), job.after.end());
  return job;
}

ShardRecord read_shard(const auto& s) {
  return ShardRecord{
      s.integer(0), s.integer(1), s.integer(2), s.integer(3), parse_shard_state(s.text(4)),
      s.integer(5), s.integer(6), s.integer(7)};
}

}  // namespace

std::int64_t JobStore::add_job(const JobSpec& spec, std::int64_t frames_total,
                               std::span<const ShardPlan> shards, std::int64_t priority,
                               std::span<const std::int64_t> after) {
  const std::lock_guard lock(mutex_);
  Transaction tx([this](const char* sql) { exec(sql, "run a transaction to add a job"); });
  Statement insert(*this,
                   "INSERT INTO jobs (state, spec, output_path, frames_total, created_ms, priority)"
                   " VALUES ('queued', ?, ?, ?, ?, ?)",
                   "add a job");
  insert.bind(1, to_json(spec).dump()).bind(2, spec.output_path).bind(3, frames_total);
  insert.bind(4, now_unix_ms()).bind(5, priority).step();
  const std::int64_t id = sqlite3_last_insert_rowid(db_);
  Statement shard(*this,
                  "INSERT INTO shards (job_id, shard_id, first_frame, frame_count) VALUES "
                  "(?, ?, ?, ?)",
                  "add a job's shards");
  for (const ShardPlan& p : shards) {
    shard.bind(1, id).bind(2, p.shard_id).bind(3, p.first_frame).bind(4, p.frame_count).step();
    shard.reset();
  }
  Statement dep(*this, "INSERT OR IGNORE INTO job_deps (job_id, depends_on) VALUES (?, ?)",
                "add a job's dependencies");
  for (const std::int64_t d : after) {
    dep.bind(1, id).bind(2, d).step();
    dep.reset();
  }
  tx.commit();
  return id;
}

std::optional<JobRecord> JobStore::job(std::int64_t id) const {
  const std::lock_guard lock(mutex_);
  Statement s(*this, std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id = ?",
              "read job " + std::to_string(id));
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_job(s);
}

std::vector<JobRecord> JobStore::jobs_in_state(JobState state) const {
  const std::lock_guard lock(mutex_);
  Statement s(*this,
              std::string("SELECT ") + kJobColumns + " FROM jobs WHERE state = ? ORDER BY id",
              "list jobs by state");
  s.bind(1, job_state_name(state));
  std::vector<JobRecord> jobs;
  while (s.step()) jobs.push_back(read_job(s));
  return jobs;
}

std::vector<JobRecord> JobStore::list(std::optional<JobState> state, bool all,
                                      std::size_t limit) const {
  const std::lock_guard lock(mutex_);
  std::string sql = std::string("SELECT ") + kJobColumns + " FROM jobs";
  if (state) {
    sql += " WHERE state = ?2";
  } else if (!all) {
    sql += " WHERE state IN ('queued', 'running')";
  }
  sql += " ORDER BY id DESC LIMIT ?1";
  Statement s(*this, sql, "list jobs");
  s.bind(1, static_cast<std::int64_t>(limit));
  if (state) s.bind(2, job_state_name(*state));
  std::vector<JobRecord> jobs;
  while (s.step()) jobs.push_back(read_job(s));
  return jobs;
}

void JobStore::set_job_state(std::int64_t id, JobState state, std::string_view error) {
  const std::lock_guard lock(mutex_);
  const std::int64_t now = now_unix_ms();
  Statement s(*this,
              "UPDATE jobs SET state = ?1, error = CASE WHEN ?2 = '' THEN error ELSE ?2 END,"
              " started_ms = CASE WHEN ?1 = 'running' AND started_ms IS NULL THEN ?3"
              " ELSE started_ms END,"
              " finished_ms = CASE WHEN ?4 THEN ?3 ELSE finished_ms END WHERE id = ?5",
              "set the state of job " + std::to_string(id));
  s.bind(1, job_state_name(state)).bind(2, error).bind(3, now);
  s.bind(4, std::int64_t{is_final(state)}).bind(5, id).step();
  if (sqlite3_changes(db_) == 0) {
    throw Error(ErrorCategory::kInput,
                "job store " + path_.string() + ": no job " + std::to_string(id));
  }
}

void JobStore::set_output_path(std::int64_t id, const std::string& output_path) {
  const std::lock_guard lock(mutex_);
  Statement s(*this, "UPDATE jobs SET output_path = ? WHERE id = ?",
              "set the output path of job " + std::to_string(id));
  s.bind(1, output_path).bind(2, id).step();
  if (sqlite3_changes(db_) == 0) {
    throw Error(ErrorCategory::kInput,
                "job store " + path_.string() + ": no job " + std::to_string(id));
  }
}

void JobStore::size_stream_job(std::int64_t id, const JobSpec& spec, std::int64_t frames_total) {
  const std::lock_guard lock(mutex_);
  Transaction tx([this](const char* sql) { exec(sql, "run a transaction to size a stream job"); });
  Statement job(*this, "UPDATE jobs SET spec = ?, frames_total = ? WHERE id = ?",
                "size stream job " + std::to_string(id));
  job.bind(1, to_json(spec).dump()).bind(2, frames_total).bind(3, id).step();
  if (sqlite3_changes(db_) == 0) {
    throw Error(ErrorCategory::kInput,
                "job store " + path_.string() + ": no job " + std::to_string(id));
  }
  Statement shard(*this, "UPDATE shards SET frame_count = ? WHERE job_id = ? AND shard_id = 0",
                  "size the shard of stream job " + std::to_string(id));
  shard.bind(1, frames_total).bind(2, id).step();
  if (sqlite3_changes(db_) == 0) no_shard(id, 0);
  tx.commit();
}

void JobStore::no_shard(std::int64_t job_id, std::int64_t shard_id) const {
  throw Error(ErrorCategory::kInput, "job store " + path_.string() + ": no shard " +
                                         std::to_string(shard_id) + " in job " +
                                         std::to_string(job_id));
}

void JobStore::mark_shard_running(std::int64_t job_id, std::int64_t shard_id) {
  const std::lock_guard lock(mutex_);
  Statement s(*this,
              "UPDATE shards SET state = 'running', attempts = attempts + 1"
              " WHERE job_id = ? AND shard_id = ?",
              "mark a shard running");
  s.bind(1, job_id).bind(2, shard_id).step();
  if (sqlite3_changes(db_) == 0) no_shard(job_id, shard_id);
}

bool JobStore::mark_shard_done(std::int64_t job_id, std::int64_t shard_id, std::int64_t frames_done,
                               std::int64_t frames_failed) {
  const std::lock_guard lock(mutex_);
  Transaction tx([this](const char* sql) { exec(sql, "run a transaction to finish a shard"); });
  Statement shard(*this,
                  "UPDATE shards SET state = 'done', frames_done = ?, frames_failed = ?"
                  " WHERE job_id = ? AND shard_id = ? AND state != 'done'",
                  "mark a shard done");
  shard.bind(1, frames_done).bind(2, frames_failed).bind(3, job_id).bind(4, shard_id).step();
  if (sqlite3_changes(db_) == 0) {
    Statement exists(*this, "SELECT 1 FROM shards WHERE job_id = ? AND shard_id = ?",
                     "look up a shard");
    exists.bind(1, job_id).bind(2, shard_id);
    if (!exists.step()) no_shard(job_id, shard_id);
    return false;  // already done: counted once only
  }
  Statement job(*this,
                "UPDATE jobs SET frames_done = frames_done + ?, frames_failed = frames_failed + ?"
                " WHERE id = ?",
                "add a shard's counts to its job");
  job.bind(1, frames_done).bind(2, frames_failed).bind(3, job_id).step();
  tx.commit();
  return true;
}

void JobStore::requeue_shard(std::int64_t job_id, std::int64_t shard_id) {
  const std::lock_guard lock(mutex_);
  Statement s(*this,
              "UPDATE shards SET state = 'queued' WHERE job_id = ? AND shard_id = ?"
              " AND state = 'running'",
              "requeue a shard");
  s.bind(1, job_id).bind(2, shard_id).step();
}

std::vector<ShardRecord> JobStore::shards(std::int64_t job_id) const {
  const std::lock_guard lock(mutex_);
  Statement s(
      *this,
      std::string("SELECT ") + kShardColumns + " FROM shards WHERE job_id = ? ORDER BY shard_id",
      "read the shards of job " + std::to_string(job_id));
  s.bind(1, job_id);
  std::vector<ShardRecord> out;
  while (s.step()) out.push_back(read_shard(s));
  return out;
}

std::vector<ShardRecord> JobStore::unfinished_shards(std::int64_t job_id) const {
  const std::lock_guard lock(mutex_);
  Statement s(*this,
              std::string("SELECT ") + kShardColumns +
                  " FROM shards WHERE job_id = ? AND state != 'done' ORDER BY shard_id",
              "read the unfinished shards of job " + std::to_string(job_id));
  s.bind(1, job_id);
  std::vector<ShardRecord> out;
  while (s.step()) out.push_back(read_shard(s));
  return out;
}

void JobStore::record_frame_error(std::int64_t job_id, std::int64_t frame_index,
                                  std::string_view reason) {
  const std::lock_guard lock(mutex_);
  Statement s(*this,
              "INSERT OR REPLACE INTO frame_errors (job_id, frame_index, reason) VALUES (?, ?, ?)",
              "record a frame error of job " + std::to_string(job_id));
  s.bind(1, job_id).bind(2, frame_index).bind(3, reason).step();
}

std::vector<FrameErrorRecord> JobStore::frame_errors(std::int64_t job_id, std::size_t limit) const {
  const std::lock_guard lock(mutex_);
  Statement s(*this,
              "SELECT job_id, frame_index, reason FROM frame_errors WHERE job_id = ?"
              " ORDER BY frame_index LIMIT ?",
              "read the frame errors of job " + std::to_string(job_id));
  s.bind(1, job_id).bind(2, static_cast<std::int64_t>(limit));
  std::vector<FrameErrorRecord> out;
  while (s.step()) out.push_back({s.integer(0), s.integer(1), s.text(2)});
  return out;
}

StoreTotals JobStore::totals() const {
  const std::lock_guard lock(mutex_);
  StoreTotals t;
  Statement s(*this,
              "SELECT state, count(*), total(frames_done), total(frames_failed) FROM jobs"
              " GROUP BY state",
              "count jobs by state");
  while (s.step()) {
    const auto state = parse_job_state(s.text(0));
    if (state) t.jobs_by_state[*state] = s.integer(1);
    t.frames_done += s.integer(2);
    t.frames_failed += s.integer(3);
  }
  return t;
}

void JobStore::requeue_for_retry(std::int64_t job_id, const RetryPlan& plan) {
  const std::lock_guard lock(mutex_);
  Transaction tx([this](const char* sql) { exec(sql, "run a transaction to retry a job"); });
  Statement job(*this,
                "UPDATE jobs SET state = 'queued', error = '', started_ms = NULL,"
                " finished_ms = NULL, frames_done = frames_done - ?1,"
                " frames_failed = frames_failed - ?1 WHERE id = ?2",
                "requeue job " + std::to_string(job_id) + " for a retry");
  job.bind(1, plan.frames_from_done_shards).bind(2, job_id).step();
  if (sqlite3_changes(db_) == 0) {
    throw Error(ErrorCategory::kInput,
                "job store " + path_.string() + ": no job " + std::to_string(job_id));
  }
  exec(("UPDATE shards SET state = 'queued' WHERE state = 'running' AND job_id = " +
        std::to_string(job_id))
           .c_str(),
       "requeue the running shards of a retried job");
  Statement clear(*this,
                  "DELETE FROM frame_errors WHERE job_id = ?1 AND frame_index >= ?2"
                  " AND frame_index < ?2 + ?3",
                  "clear the frame errors of a retried job");
  const auto clear_range = [&](std::int64_t first, std::int64_t count) {
    clear.bind(1, job_id).bind(2, first).bind(3, count).step();
    clear.reset();
  };
  {
    Statement pending(*this,
                      "SELECT first_frame, frame_count FROM shards WHERE job_id = ? AND"
                      " state != 'done'",
                      "read the unfinished shards of a retried job");
    pending.bind(1, job_id);
    while (pending.step()) clear_range(pending.integer(0), pending.integer(1));
  }
  Statement shard(*this,
                  "INSERT INTO shards (job_id, shard_id, first_frame, frame_count) VALUES "
                  "(?, ?, ?, ?)",
                  "add the retry shards of a job");
  for (const ShardPlan& p : plan.new_shards) {
    shard.bind(1, job_id).bind(2, p.shard_id).bind(3, p.first_frame).bind(4, p.frame_count).step();
    shard.reset();
    clear_range(p.first_frame, p.frame_count);
  }
  tx.commit();
}

std::size_t JobStore::requeue_running_shards_on_startup() {
  const std::lock_guard lock(mutex_);
  Statement s(*this, "UPDATE shards SET state = 'queued' WHERE state = 'running'",
              "requeue running shards");
  s.step();
  return static_cast<std::size_t>(sqlite3_changes(db_));
}

}  // namespace azflow::daemon
