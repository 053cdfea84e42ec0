// Shared-memory rings: see ring.hpp for the layout, the synchronisation and the crash-safety
// design. Linux only (futex(2), robust process-shared pthread mutex).

#include "ipc/ring.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <limits>
#include <new>
#include <system_error>
#include <type_traits>
#include <utility>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include "base/error.hpp"
#include "ipc/ring_test_hooks.hpp"

namespace azflow::ipc {

namespace bip = boost::interprocess;

namespace {

constexpr std::uint64_t kMagic = 0x00474E4952465A41ULL;  // "AZFRING\0" in memory order
constexpr std::uint32_t kLayoutVersion = 1;
constexpr std::size_t kPage = 4096;
constexpr std::size_t kMaxSlots = std::size_t{1} << 20;
// Longest single futex wait: a waker killed between its state change and its FUTEX_WAKE costs a
// waiter at most this long, never its whole timeout.
constexpr std::chrono::milliseconds kWaitSlice{50};

static_assert(std::is_trivially_copyable_v<SlotHeader>);
static_assert(std::is_standard_layout_v<SlotHeader>);
static_assert(sizeof(SlotHeader) == 328);
static_assert(offsetof(SlotHeader, kind) == 24 && offsetof(SlotHeader, rows) == 48 &&
              offsetof(SlotHeader, reason) == 72);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

/// Slot states; stored with the owner pid in one 64-bit word (state << 32 | pid), so that a
/// slot's state and owner change in a single store.
enum class State : std::uint32_t { kFree = 0, kWriting = 1, kReady = 2, kReading = 3 };

constexpr std::uint64_t make_ctl(State s, std::uint32_t pid) noexcept {
  return (static_cast<std::uint64_t>(s) << 32) | pid;
}
constexpr State state_of(std::uint64_t ctl) noexcept { return static_cast<State>(ctl >> 32); }
constexpr std::uint32_t owner_of(std::uint64_t ctl) noexcept {
  return static_cast<std::uint32_t>(ctl & 0xFFFFFFFFu);
}

/// Per-slot control block in the segment.
struct alignas(64) SlotControl {
  std::atomic<std::uint64_t> ctl{0};  ///< state << 32 | owner pid
  std::atomic<std::uint64_t> seq{0};  ///< commit sequence number (meaningful when ready/reading)
  SlotHeader header;
};

/// The one pending change of shared state, as absolute new values (re-applying is harmless).
struct Intent {
  std::atomic<std::uint64_t> armed{0};
  std::atomic<std::uint64_t> slot{0};
  std::atomic<std::uint64_t> ctl{0};
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint64_t> pushed{0};
  std::atomic<std::uint64_t> popped{0};
  std::atomic<std::uint64_t> reclaimed{0};
};
constexpr int kIntentStores = 5;  // seq, ctl, pushed, popped, reclaimed

/// A futex word and the number of processes that may be sleeping on it.
struct alignas(64) WaitWord {
  std::atomic<std::uint32_t> seq{0};
  std::atomic<std::uint32_t> waiters{0};  ///< may stay too high if a waiter was killed: harmless
};

/// Start of the segment.
struct SegmentHeader {
  std::atomic<std::uint64_t> magic{0};  ///< written last at create()
  std::uint32_t version = 0;
  std::uint32_t header_bytes = 0;
  std::uint64_t slots = 0;
  std::uint64_t slot_bytes = 0;
  std::uint64_t slot_stride = 0;
  std::uint64_t controls_offset = 0;
  std::uint64_t payload_offset = 0;
  std::uint64_t total_bytes = 0;
  alignas(64) pthread_mutex_t mutex;
  alignas(64) Intent intent;
  std::atomic<std::uint64_t> pushed{0};  ///< also the next commit sequence number
  std::atomic<std::uint64_t> popped{0};
  std::atomic<std::uint64_t> reclaimed{0};
  std::atomic<std::uint32_t> closed{0};
  WaitWord slot_freed;  ///< bumped when a slot becomes free, or on close
  WaitWord slot_ready;  ///< bumped when a slot becomes ready, a writer gives up, or on close
};

/// Offsets and sizes of a ring with a given shape.
struct Layout {
  std::size_t controls_offset, payload_offset, slot_stride, total_bytes;
};

constexpr std::size_t round_up(std::size_t v, std::size_t to) noexcept {
  return (v + to - 1) / to * to;
}

Layout layout_for(std::size_t slots, std::size_t slot_bytes) {
  Layout l{};
  l.controls_offset = round_up(sizeof(SegmentHeader), 64);
  l.payload_offset = round_up(l.controls_offset + slots * sizeof(SlotControl), kPage);
  l.slot_stride = round_up(slot_bytes, kPage);
  l.total_bytes = l.payload_offset + slots * l.slot_stride;
  return l;
}

std::uint32_t self_pid() noexcept { return static_cast<std::uint32_t>(::getpid()); }

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t seen,
                std::chrono::nanoseconds rel) noexcept {
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(rel.count() / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(rel.count() % 1'000'000'000);
  // Shared (not FUTEX_PRIVATE) futex: waiters and wakers are different processes.
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT, seen, &ts, nullptr, 0);
}

void futex_wake(std::atomic<std::uint32_t>& word, int count) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE, count, nullptr, nullptr,
            0);
}

/// Wakes up to `count` sleepers on `w` if any may be sleeping (call after the bump, unlocked).
void wake(WaitWord& w, int count) noexcept {
  if (w.waiters.load() > 0) futex_wake(w.seq, count);
}

void validate_shm_name(const std::string& name) {
  if (name.size() < 2 || name.front() != '/' || name.find('/', 1) != std::string::npos ||
      name.size() > NAME_MAX) {
    throw Error(ErrorCategory::kConfig,
                "ring name '" + name + "': must be '/' then 1 to 254 characters without '/'");
  }
}

void validate_part(std::string_view what, std::string_view part) {
  const bool ok = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
  });
  if (!ok) {
    throw Error(ErrorCategory::kConfig, std::string(what) + " name '" + std::string(part) +
                                            "': must be 1 or more of [A-Za-z0-9_-]");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// SlotHeader

void SlotHeader::set_reason(std::string_view text) noexcept {
  const std::size_t n = std::min(text.size(), sizeof(reason) - 1);
  std::memcpy(reason, text.data(), n);
  std::memset(reason + n, 0, sizeof(reason) - n);
}

std::string_view SlotHeader::reason_view() const noexcept {
  const void* nul = std::memchr(reason, '\0', sizeof(reason));
  const std::size_t n =
      nul ? static_cast<std::size_t>(static_cast<const char*>(nul) - reason) : sizeof(reason);
  return {reason, n};
}

// ---------------------------------------------------------------------------------------------
// Ring::Impl: the mapping and the locked operations on it.

struct Ring::Impl {
  std::string name;
  bip::mapped_region region;
  SegmentHeader* hdr = nullptr;
  SlotControl* controls = nullptr;
  std::byte* payload = nullptr;

  Impl(std::string n, bip::mapped_region r) : name(std::move(n)), region(std::move(r)) {
    auto* base = static_cast<std::byte*>(region.get_address());
    hdr = reinterpret_cast<SegmentHeader*>(base);
    controls = reinterpret_cast<SlotControl*>(base + hdr->controls_offset);
    payload = base + hdr->payload_offset;
  }

  [[nodiscard]] std::size_t slots() const noexcept { return hdr->slots; }

  /// Applies the armed intent's stores (all, or the first `limit` for tests), then disarms it.
  void apply_intent(int limit = kIntentStores, bool disarm = true) noexcept {
    Intent& in = hdr->intent;
    SlotControl& s = controls[in.slot.load()];
    if (limit > 0) s.seq.store(in.seq.load());
    if (limit > 1) s.ctl.store(in.ctl.load());
    if (limit > 2) hdr->pushed.store(in.pushed.load());
    if (limit > 3) hdr->popped.store(in.popped.load());
    if (limit > 4) hdr->reclaimed.store(in.reclaimed.load());
    if (disarm) in.armed.store(0);
  }

  /// Records the change "slot -> ctl (seq), counters += d*" as absolute values and arms it.
  void arm_intent(std::size_t slot, std::uint64_t ctl, std::uint64_t seq, std::uint64_t d_pushed,
                  std::uint64_t d_popped, std::uint64_t d_reclaimed) noexcept {
    Intent& in = hdr->intent;
    in.slot.store(slot);
    in.ctl.store(ctl);
    in.seq.store(seq);
    in.pushed.store(hdr->pushed.load() + d_pushed);
    in.popped.store(hdr->popped.load() + d_popped);
    in.reclaimed.store(hdr->reclaimed.load() + d_reclaimed);
    in.armed.store(1);
  }

  /// One whole change of shared state (caller holds the mutex).
  void change(std::size_t slot, std::uint64_t ctl, std::uint64_t seq, std::uint64_t d_pushed = 0,
              std::uint64_t d_popped = 0, std::uint64_t d_reclaimed = 0) noexcept {
    arm_intent(slot, ctl, seq, d_pushed, d_popped, d_reclaimed);
    apply_intent();
  }

  /// Called with the mutex held after EOWNERDEAD: finishes the dead owner's change.
  void recover() noexcept {
    if (hdr->intent.armed.load() != 0) apply_intent();
    hdr->slot_freed.seq.fetch_add(1);
    hdr->slot_ready.seq.fetch_add(1);
  }

  void lock() {
    const int rc = pthread_mutex_lock(&hdr->mutex);
    if (rc == 0) return;
    if (rc == EOWNERDEAD) {
      recover();
      if (pthread_mutex_consistent(&hdr->mutex) == 0) return;
    }
    throw Error(ErrorCategory::kInternal,
                "ring '" + name + "': cannot lock its mutex: " + std::strerror(rc));
  }
  void unlock() noexcept { pthread_mutex_unlock(&hdr->mutex); }

  /// Wakes everyone after a recovery or close (the owner that died may have owed a wake-up).
  void wake_all() noexcept {
    futex_wake(hdr->slot_freed.seq, INT_MAX);
    futex_wake(hdr->slot_ready.seq, INT_MAX);
  }

  /// Index of a free slot, or slots() if none.
  [[nodiscard]] std::size_t find_free() const noexcept {
    for (std::size_t i = 0; i < slots(); ++i) {
      if (state_of(controls[i].ctl.load()) == State::kFree) return i;
    }
    return slots();
  }

  /// Index of the ready slot with the lowest commit sequence, or slots() if none.
  [[nodiscard]] std::size_t find_oldest_ready() const noexcept {
    std::size_t best = slots();
    std::uint64_t best_seq = std::numeric_limits<std::uint64_t>::max();
    for (std::size_t i = 0; i < slots(); ++i) {
      if (state_of(controls[i].ctl.load()) != State::kReady) continue;
      const std::uint64_t seq = controls[i].seq.load();
      if (seq < best_seq) best = i, best_seq = seq;
    }
    return best;
  }

  [[nodiscard]] bool any_writing() const noexcept {
    for (std::size_t i = 0; i < slots(); ++i) {
      if (state_of(controls[i].ctl.load()) == State::kWriting) return true;
    }
    return false;
  }

  /// Sleeps on `w` (seen = its value read under the mutex) until woken, the slice ends or the
  /// deadline passes. The caller registered as a waiter under the mutex and then unlocked.
  static void sleep_on(WaitWord& w, std::uint32_t seen,
                       std::chrono::steady_clock::time_point deadline) noexcept {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left > std::chrono::nanoseconds::zero()) {
      futex_wait(w.seq, seen, std::min<std::chrono::nanoseconds>(left, kWaitSlice));
    }
    w.waiters.fetch_sub(1);
  }

  /// Holds the ring's mutex for a scope.
  class Guard {
   public:
    explicit Guard(Impl& impl) : impl_(impl) { impl_.lock(); }
    ~Guard() { impl_.unlock(); }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    Impl& impl_;
  };
};

// ---------------------------------------------------------------------------------------------
// Ring: create, open, remove

namespace {

bip::mapped_region create_segment(const std::string& name, const Layout& l) {
  bip::shared_memory_object::remove(name.c_str());
  try {
    bip::permissions perm;
    perm.set_permissions(0600);
    bip::shared_memory_object shm(bip::create_only, name.c_str(), bip::read_write, perm);
    shm.truncate(static_cast<bip::offset_t>(l.total_bytes));
    // Reserve the memory now: a full /dev/shm fails here, not with SIGBUS at first touch.
    const int rc =
        ::posix_fallocate(shm.get_mapping_handle().handle, 0, static_cast<off_t>(l.total_bytes));
    if (rc != 0) {
      throw Error(ErrorCategory::kResource, "ring '" + name + "': cannot reserve " +
                                                std::to_string(l.total_bytes) +
                                                " bytes of shared memory: " + std::strerror(rc));
    }
    return bip::mapped_region(shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    bip::shared_memory_object::remove(name.c_str());
    throw Error(ErrorCategory::kResource,
                "ring '" + name + "': cannot create shared memory segment: " + e.what());
  } catch (...) {
    bip::shared_memory_object::remove(name.c_str());
    throw;
  }
}

void init_mutex(pthread_mutex_t* m, const std::string& name) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  int rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (rc == 0) rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (rc == 0) rc = pthread_mutex_init(m, &attr);
  pthread_mutexattr_destroy(&attr);
  if (rc != 0) {
    throw Error(
        ErrorCategory::kResource,
        "ring '" + name + "': cannot make a robust process-shared mutex: " + std::strerror(rc));
  }
}

void init_segment(void* base, const RingConfig& config, const Layout& l) {
  auto* hdr = new (base) SegmentHeader{};
  hdr->version = kLayoutVersion;
  hdr->header_bytes = static_cast<std::uint32_t>(sizeof(SegmentHeader));
  hdr->slots = config.slots;
  hdr->slot_bytes = config.slot_bytes;
  hdr->slot_stride = l.slot_stride;
  hdr->controls_offset = l.controls_offset;
  hdr->payload_offset = l.payload_offset;
  hdr->total_bytes = l.total_bytes;
  init_mutex(&hdr->mutex, config.name);
  auto* controls = static_cast<std::byte*>(base) + l.controls_offset;
  for (std::size_t i = 0; i < config.slots; ++i) {
    new (controls + i * sizeof(SlotControl)) SlotControl{};
  }
  hdr->magic.store(kMagic);  // last: open() accepts the segment from here on
}

/// Why a mapped segment of `size` bytes is not a ring of this layout, or empty if it is one.
std::string layout_problem(const SegmentHeader& h, std::size_t size) {
  if (size < sizeof(SegmentHeader)) return "too small to be an azflow ring";
  if (h.magic.load() != kMagic) return "not an azflow ring (bad magic number)";
  if (h.version != kLayoutVersion || h.header_bytes != sizeof(SegmentHeader)) {
    return "ring layout version " + std::to_string(h.version) + ", this program reads " +
           std::to_string(kLayoutVersion);
  }
  if (h.slots == 0 || h.slots > kMaxSlots || h.slot_bytes == 0) return "corrupt ring header";
  const Layout l = layout_for(h.slots, h.slot_bytes);
  if (l.controls_offset != h.controls_offset || l.payload_offset != h.payload_offset ||
      l.slot_stride != h.slot_stride || l.total_bytes != h.total_bytes || size < l.total_bytes) {
    return "corrupt ring header (sizes do not match the segment)";
  }
  return {};
}

}  // namespace

Ring Ring::create(const RingConfig& config) {
  validate_shm_name(config.name);
  if (config.slots == 0 || config.slots > kMaxSlots || config.slot_bytes == 0 ||
      config.slot_bytes > (std::size_t{1} << 40)) {
    throw Error(ErrorCategory::kConfig, "ring '" + config.name + "': slots (" +
                                            std::to_string(config.slots) + ") must be 1.." +
                                            std::to_string(kMaxSlots) + " and slot_bytes (" +
                                            std::to_string(config.slot_bytes) + ") 1..2^40");
  }
  const Layout l = layout_for(config.slots, config.slot_bytes);
  bip::mapped_region region = create_segment(config.name, l);
  try {
    init_segment(region.get_address(), config, l);
  } catch (...) {
    bip::shared_memory_object::remove(config.name.c_str());
    throw;
  }
  return Ring(std::make_unique<Impl>(config.name, std::move(region)));
}

Ring Ring::open(const std::string& name) {
  validate_shm_name(name);
  bip::mapped_region region;
  try {
    bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_write);
    bip::offset_t size = 0;
    if (!shm.get_size(size) || size < static_cast<bip::offset_t>(sizeof(SegmentHeader))) {
      throw Error(ErrorCategory::kResource,
                  "ring '" + name + "': shared memory segment is not an azflow ring (too small)");
    }
    region = bip::mapped_region(shm, bip::read_write);
  } catch (const bip::interprocess_exception& e) {
    throw Error(ErrorCategory::kResource,
                "ring '" + name + "': cannot open shared memory segment: " + e.what());
  }
  const auto* hdr = static_cast<const SegmentHeader*>(region.get_address());
  const std::string problem = layout_problem(*hdr, region.get_size());
  if (!problem.empty()) throw Error(ErrorCategory::kResource, "ring '" + name + "': " + problem);
  return Ring(std::make_unique<Impl>(name, std::move(region)));
}

bool Ring::remove(const std::string& name) {
  validate_shm_name(name);
  return bip::shared_memory_object::remove(name.c_str());
}

Ring::Ring(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Ring::Ring(Ring&& other) noexcept = default;
Ring& Ring::operator=(Ring&& other) noexcept = default;
Ring::~Ring() = default;

const std::string& Ring::name() const noexcept { return impl_->name; }
std::size_t Ring::slots() const noexcept { return impl_->hdr->slots; }
std::size_t Ring::slot_bytes() const noexcept { return impl_->hdr->slot_bytes; }
std::span<std::byte> Ring::payload_area() const noexcept {
  return {impl_->payload, impl_->hdr->slots * impl_->hdr->slot_stride};
}

SlotHeader& Ring::slot_header(std::size_t index) const noexcept {
  return impl_->controls[index].header;
}

std::byte* Ring::slot_payload(std::size_t index) const noexcept {
  return impl_->payload + index * impl_->hdr->slot_stride;
}

// ---------------------------------------------------------------------------------------------
// Ring: acquire, commit, release

std::optional<WriteSlot> Ring::acquire_write(std::chrono::milliseconds timeout) {
  Impl& im = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::uint32_t pid = self_pid();
  for (;;) {
    std::uint32_t seen = 0;
    {
      Impl::Guard lock(im);
      if (im.hdr->closed.load() != 0) return std::nullopt;
      const std::size_t i = im.find_free();
      if (i < im.slots()) {
        im.change(i, make_ctl(State::kWriting, pid), im.controls[i].seq.load());
        im.controls[i].header = SlotHeader{};
        return WriteSlot(this, i);
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      seen = im.hdr->slot_freed.seq.load();
      im.hdr->slot_freed.waiters.fetch_add(1);
    }
    Impl::sleep_on(im.hdr->slot_freed, seen, deadline);
  }
}

std::optional<ReadSlot> Ring::acquire_read(std::chrono::milliseconds timeout) {
  Impl& im = *impl_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::uint32_t pid = self_pid();
  for (;;) {
    std::uint32_t seen = 0;
    {
      Impl::Guard lock(im);
      const std::size_t i = im.find_oldest_ready();
      if (i < im.slots()) {
        im.change(i, make_ctl(State::kReading, pid), im.controls[i].seq.load(), 0, 1);
        return ReadSlot(this, i);
      }
      if (im.hdr->closed.load() != 0 && !im.any_writing()) return std::nullopt;
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      seen = im.hdr->slot_ready.seq.load();
      im.hdr->slot_ready.waiters.fetch_add(1);
    }
    Impl::sleep_on(im.hdr->slot_ready, seen, deadline);
  }
}

void Ring::commit_slot(std::size_t index) {
  Impl& im = *impl_;
  const SlotHeader& h = im.controls[index].header;
  if (h.bytes > slot_bytes()) {
    throw Error(ErrorCategory::kInternal,
                "ring '" + name() + "': job " + std::to_string(h.job_id) + " frame " +
                    std::to_string(h.frame_index) + ": payload of " + std::to_string(h.bytes) +
                    " bytes exceeds the slot size " + std::to_string(slot_bytes()));
  }
  bool closed = false;
  {
    Impl::Guard lock(im);
    const std::uint64_t ctl = im.controls[index].ctl.load();
    if (ctl != make_ctl(State::kWriting, self_pid())) {
      throw Error(ErrorCategory::kInternal,
                  "ring '" + name() + "': frame " + std::to_string(h.frame_index) + ": slot " +
                      std::to_string(index) + " was reclaimed from this process before commit");
    }
    im.change(index, make_ctl(State::kReady, 0), im.hdr->pushed.load(), 1);
    im.hdr->slot_ready.seq.fetch_add(1);
    closed = im.hdr->closed.load() != 0;
  }
  wake(im.hdr->slot_ready, closed ? INT_MAX : 1);
}

void Ring::abort_write(std::size_t index) noexcept {
  Impl& im = *impl_;
  bool closed = false;
  {
    Impl::Guard lock(im);
    if (im.controls[index].ctl.load() != make_ctl(State::kWriting, self_pid())) return;
    im.change(index, make_ctl(State::kFree, 0), im.controls[index].seq.load());
    im.hdr->slot_freed.seq.fetch_add(1);
    im.hdr->slot_ready.seq.fetch_add(1);  // a draining reader may now see "closed and drained"
    closed = im.hdr->closed.load() != 0;
  }
  wake(im.hdr->slot_freed, 1);
  if (closed) wake(im.hdr->slot_ready, INT_MAX);
}

void Ring::release_read(std::size_t index) noexcept {
  Impl& im = *impl_;
  {
    Impl::Guard lock(im);
    if (im.controls[index].ctl.load() != make_ctl(State::kReading, self_pid())) return;
    im.change(index, make_ctl(State::kFree, 0), im.controls[index].seq.load());
    im.hdr->slot_freed.seq.fetch_add(1);
  }
  wake(im.hdr->slot_freed, 1);
}

// ---------------------------------------------------------------------------------------------
// Ring: reclaim, close, stats

std::vector<SlotHeader> Ring::reclaim(pid_t dead_pid) {
  Impl& im = *impl_;
  const auto pid = static_cast<std::uint32_t>(dead_pid);
  std::vector<std::pair<std::uint64_t, SlotHeader>> reading;  // (commit seq, header)
  std::size_t freed = 0;
  {
    Impl::Guard lock(im);
    for (std::size_t i = 0; i < im.slots(); ++i) {
      const std::uint64_t ctl = im.controls[i].ctl.load();
      const State s = state_of(ctl);
      if (owner_of(ctl) != pid || (s != State::kWriting && s != State::kReading)) continue;
      if (s == State::kReading)
        reading.emplace_back(im.controls[i].seq.load(), im.controls[i].header);
      im.change(i, make_ctl(State::kFree, 0), im.controls[i].seq.load(), 0, 0, 1);
      ++freed;
    }
    if (freed > 0) {
      im.hdr->slot_freed.seq.fetch_add(1);
      im.hdr->slot_ready.seq.fetch_add(1);
    }
  }
  if (freed > 0) im.wake_all();
  std::sort(reading.begin(), reading.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<SlotHeader> out;
  out.reserve(reading.size());
  for (const auto& r : reading) out.push_back(r.second);
  return out;
}

void Ring::close() {
  Impl& im = *impl_;
  {
    Impl::Guard lock(im);
    im.hdr->closed.store(1);
    im.hdr->slot_freed.seq.fetch_add(1);
    im.hdr->slot_ready.seq.fetch_add(1);
  }
  im.wake_all();
}

bool Ring::closed() const { return impl_->hdr->closed.load() != 0; }

RingStats Ring::stats() const {
  Impl& im = *impl_;
  RingStats st;
  st.capacity = im.slots();
  Impl::Guard lock(im);
  for (std::size_t i = 0; i < im.slots(); ++i) {
    const State s = state_of(im.controls[i].ctl.load());
    if (s == State::kReady) ++st.ready;
    if (s == State::kWriting || s == State::kReading) ++st.in_use;
  }
  st.pushed = im.hdr->pushed.load();
  st.popped = im.hdr->popped.load();
  st.reclaimed = im.hdr->reclaimed.load();
  return st;
}

// ---------------------------------------------------------------------------------------------
// WriteSlot, ReadSlot

WriteSlot::WriteSlot(WriteSlot&& other) noexcept
    : ring_(std::exchange(other.ring_, nullptr)), index_(other.index_) {}

WriteSlot& WriteSlot::operator=(WriteSlot&& other) noexcept {
  if (this != &other) {
    abort();
    ring_ = std::exchange(other.ring_, nullptr);
    index_ = other.index_;
  }
  return *this;
}

WriteSlot::~WriteSlot() { abort(); }

void WriteSlot::abort() noexcept {
  if (ring_ != nullptr) std::exchange(ring_, nullptr)->abort_write(index_);
}

SlotHeader& WriteSlot::header() const noexcept { return ring_->slot_header(index_); }

std::span<std::byte> WriteSlot::payload() const noexcept {
  return {ring_->slot_payload(index_), ring_->slot_bytes()};
}

void WriteSlot::commit() {
  if (ring_ == nullptr) throw Error(ErrorCategory::kInternal, "commit() on an empty WriteSlot");
  ring_->commit_slot(index_);
  ring_ = nullptr;
}

ReadSlot::ReadSlot(ReadSlot&& other) noexcept
    : ring_(std::exchange(other.ring_, nullptr)), index_(other.index_) {}

ReadSlot& ReadSlot::operator=(ReadSlot&& other) noexcept {
  if (this != &other) {
    release();
    ring_ = std::exchange(other.ring_, nullptr);
    index_ = other.index_;
  }
  return *this;
}

ReadSlot::~ReadSlot() { release(); }

void ReadSlot::release() noexcept {
  if (ring_ != nullptr) std::exchange(ring_, nullptr)->release_read(index_);
}

const SlotHeader& ReadSlot::header() const noexcept { return ring_->slot_header(index_); }

std::span<const std::byte> ReadSlot::payload() const noexcept {
  const std::size_t n =
      static_cast<std::size_t>(std::min<std::uint64_t>(header().bytes, ring_->slot_bytes()));
  return {ring_->slot_payload(index_), n};
}

// ---------------------------------------------------------------------------------------------
// Names

std::string ring_name(std::string_view instance, std::string_view ring) {
  validate_part("instance", instance);
  validate_part("ring", ring);
  std::string name = "/azflow.";
  name.append(instance).append(".").append(ring);
  validate_shm_name(name);
  return name;
}

std::size_t remove_instance_segments(std::string_view instance) {
  validate_part("instance", instance);
  const std::string prefix = "azflow." + std::string(instance) + ".";
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ec)) {
    const std::string file = entry.path().filename().string();
    if (file.starts_with(prefix) && ::shm_unlink(("/" + file).c_str()) == 0) ++removed;
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------
// Test hooks

void RingTestAccess::with_lock_held(Ring& ring, const std::function<void()>& while_locked) {
  Ring::Impl::Guard lock(*ring.impl_);
  while_locked();
}

void RingTestAccess::die_during_commit(WriteSlot& slot, int stores_done) {
  Ring::Impl& im = *slot.ring_->impl_;
  im.lock();
  if (stores_done >= 0) {
    im.arm_intent(slot.index_, make_ctl(State::kReady, 0), im.hdr->pushed.load(), 1, 0, 0);
    im.apply_intent(stores_done, /*disarm=*/false);
  }
  ::kill(::getpid(), SIGKILL);
  for (;;) ::pause();
}

}  // namespace azflow::ipc
