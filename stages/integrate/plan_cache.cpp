#include "stages/integrate/plan_cache.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "stages/integrate/plan_file.hpp"

namespace azflow::integrate {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kLockPoll = std::chrono::milliseconds(20);
constexpr auto kStaleTemporary = std::chrono::minutes(10);

/// An exclusive flock(2) on a lock file, released (and the descriptor closed) on destruction.
class FileLock {
 public:
  /// Waits up to `timeout` for the lock; held() says whether it was taken, problem() why not.
  FileLock(const std::filesystem::path& path, std::chrono::milliseconds timeout) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      problem_ = "cannot open " + path.string() + ": " + std::strerror(errno);
      return;
    }
    const auto deadline = Clock::now() + timeout;
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) {
        problem_ = "cannot lock " + path.string() + ": " + std::strerror(errno);
        return;
      }
      if (Clock::now() >= deadline) {
        problem_ = "waited " + std::to_string(timeout.count()) + " ms for the lock " +
                   path.string() + " (another process builds this plan)";
        return;
      }
      std::this_thread::sleep_for(kLockPoll);
    }
    held_ = true;
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  [[nodiscard]] bool held() const noexcept { return held_; }
  [[nodiscard]] const std::string& problem() const noexcept { return problem_; }

 private:
  int fd_ = -1;
  bool held_ = false;
  std::string problem_;
};

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// Marks `file` as used now (its modification time orders the LRU eviction).
void touch(const std::filesystem::path& file) {
  std::error_code ec;
  std::filesystem::last_write_time(file, std::filesystem::file_time_type::clock::now(), ec);
}

void add_note(std::string& note, const std::string& text) {
  note += (note.empty() ? "" : "; ") + text;
}

}  // namespace

PlanCache::PlanCache(PlanCacheOptions options) : options_(std::move(options)) {}

PlanCache::~PlanCache() {
  for (std::thread& t : writers_) t.join();
}

std::string PlanCache::store(const std::filesystem::path& file, const Plan& plan,
                             const std::string& key_text) const {
  try {
    write_plan_file(file, plan, key_text);
    evict(file);
    return "";
  } catch (const Error& e) {
    return std::string("plan not stored: ") + e.what();
  }
}

CachedPlan PlanCache::get(const std::string& key_text,
                          const std::function<std::shared_ptr<const Plan>()>& build) {
  CachedPlan out;
  out.key_hash = plan_key_hash(key_text);
  const std::filesystem::path file = options_.dir / (out.key_hash + ".plan");
  const auto start = Clock::now();
  if (load(file, key_text, out)) return out;  // files appear whole (rename): no lock to read
  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  auto lock =
      std::make_unique<FileLock>(options_.dir / (out.key_hash + ".lock"), options_.lock_timeout);
  if (lock->held()) {
    out.note.clear();                 // the first look's problem is looked at again under the lock
    if (load(file, key_text, out)) {  // built by the process we waited for
      out.seconds = since(start);
      return out;
    }
  } else {
    add_note(out.note, "plan cache not used: " + lock->problem());
  }
  const auto build_start = Clock::now();
  out.plan = build();
  out.built = true;
  out.seconds = since(build_start);
  if (!lock->held()) return out;
  if (!options_.store_in_background) {
    const std::string note = store(file, *out.plan, key_text);
    if (!note.empty()) add_note(out.note, note);
    return out;
  }
  writers_.emplace_back([this, file, key_text, plan = out.plan, held = std::move(lock)]() mutable {
    const std::string note = store(file, *plan, key_text);
    held.reset();  // the file is in place: the waiting processes may read it
    if (!note.empty() && options_.on_background_note) options_.on_background_note(note);
  });
  return out;
}

bool PlanCache::load(const std::filesystem::path& file, const std::string& key_text,
                     CachedPlan& out) {
  const auto start = Clock::now();
  PlanFileRead read = read_plan_file(file, key_text);
  if (!read.plan) {
    if (!read.problem.empty()) add_note(out.note, file.string() + " rejected: " + read.problem);
    return false;
  }
  touch(file);
  out.plan = std::move(read.plan);
  out.seconds = since(start);
  return true;
}

void PlanCache::evict(const std::filesystem::path& keep) const {
  struct Entry {
    std::filesystem::path path;
    std::filesystem::file_time_type used;
    std::uintmax_t bytes = 0;
  };
  std::vector<Entry> plans;
  std::uintmax_t total = 0;
  std::error_code ec;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (const auto& item : std::filesystem::directory_iterator(options_.dir, ec)) {
    const std::filesystem::path& p = item.path();
    const auto used = std::filesystem::last_write_time(p, ec);
    if (ec) continue;
    if (p.filename().string().find(".plan.tmp.") != std::string::npos) {
      if (now - used > kStaleTemporary) std::filesystem::remove(p, ec);
      continue;
    }
    if (p.extension() != ".plan") continue;
    const auto bytes = std::filesystem::file_size(p, ec);
    if (ec) continue;
    plans.push_back({p, used, bytes});
    total += bytes;
  }
  std::sort(plans.begin(), plans.end(), [](const Entry& a, const Entry& b) {
    return a.used != b.used ? a.used < b.used : a.path < b.path;
  });
  for (const Entry& e : plans) {
    if (total <= options_.max_bytes) break;
    if (e.path == keep) continue;
    if (std::filesystem::remove(e.path, ec)) total -= e.bytes;
  }
}

}  // namespace azflow::integrate
