#pragma once
// A folder of integration plans shared by every process of a node: `<dir>/<key hash>.plan`
// (plan_file.hpp), built once by one process while the others wait, reused by later jobs and after
// restarts, capped in size with least-recently-used eviction (docs/architecture.md, "The plan
// cache").

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "stages/integrate/plan.hpp"

namespace azflow::integrate {

/// Default size cap of a plan folder, MiB (azflowd's `[plans] cache_max_mb`).
inline constexpr std::uint64_t kDefaultPlanCacheMaxMib = 4096;

/// Where and how big a plan cache is.
struct PlanCacheOptions {
  std::filesystem::path dir;                                ///< created if missing
  std::uint64_t max_bytes = kDefaultPlanCacheMaxMib << 20;  ///< cap over every *.plan file
  std::chrono::milliseconds lock_timeout{60000};  ///< longest wait for another process's build
  /// Store built plans from a background thread: get() returns as soon as the plan is built,
  /// while the lock stays held until the file is in place (so other processes still wait for it
  /// and then read it). The write and its fsync (~0.5 s for 130 MiB on a shared disk) are then off
  /// the builder's critical path. A failure to store is passed to on_background_note.
  bool store_in_background = false;
  std::function<void(const std::string&)> on_background_note{};
};

/// What PlanCache::get did.
struct CachedPlan {
  std::shared_ptr<const Plan> plan;
  bool built = false;    ///< true: built here (and stored unless `note` says otherwise)
  std::string key_hash;  ///< SHA-256 of the key text: the file is <dir>/<key_hash>.plan
  double seconds = 0;    ///< time spent building (built) or loading (not built)
  /// Anything the caller should log: a rejected file that was rebuilt ("... checksum mismatch"),
  /// a plan that could not be stored, a lock wait that timed out; "" if none.
  std::string note;
};

/// A plan folder. Thread-compatible; any number of processes may use one folder at once.
///
/// get(key, build): reads <dir>/<hash>.plan if it holds this key (read_plan_file: magic, version,
/// sizes, checksum and the full key text compared; no lock needed, files appear whole). Else it
/// takes an exclusive flock(2) on <dir>/<hash>.lock (waiting while another process builds that
/// plan), looks again, and if there is still none calls `build`, writes the file
/// (write_plan_file: temporary name, fsync, rename) and evicts the least recently used plans
/// (oldest modification time; a hit sets it to now) until the folder's *.plan files fit
/// max_bytes (the plan just written is never evicted, even if it alone exceeds the cap). Files
/// another process still reads are unlinked safely: its mapping stays valid.
///
/// Failures of the folder itself (cannot create, lock, write, disk full) never fail get: the
/// plan is built and returned unstored, with a note. Errors thrown by `build` (bad settings,
/// unreadable mask) propagate unchanged.
class PlanCache {
 public:
  explicit PlanCache(PlanCacheOptions options);
  /// Waits for the background stores still running.
  ~PlanCache();
  PlanCache(const PlanCache&) = delete;
  PlanCache& operator=(const PlanCache&) = delete;

  /// The plan for `key_text` (plan_key_text), from the folder or from `build()`.
  CachedPlan get(const std::string& key_text,
                 const std::function<std::shared_ptr<const Plan>()>& build);

  /// Removes least recently used *.plan files (never `keep`) until the rest fit max_bytes, and
  /// temporary files older than 10 minutes (left by a process killed while writing).
  void evict(const std::filesystem::path& keep = {}) const;

  [[nodiscard]] const PlanCacheOptions& options() const noexcept { return options_; }

 private:
  /// Reads `file` into `out` if it holds key_text's plan (and marks it used); else notes why not.
  static bool load(const std::filesystem::path& file, const std::string& key_text, CachedPlan& out);

  /// Writes the file and evicts; returns a note ("" if stored).
  std::string store(const std::filesystem::path& file, const Plan& plan,
                    const std::string& key_text) const;

  PlanCacheOptions options_;
  std::vector<std::thread> writers_;  // background stores (store_in_background)
};

}  // namespace azflow::integrate
