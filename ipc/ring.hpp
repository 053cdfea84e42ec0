#pragma once
// Fixed-capacity, multi-producer / multi-consumer rings of large slots in named POSIX shared
// memory: the data path between azflow's stage processes (source -> decompress -> integrate ->
// reducer). Frames never travel over a socket inside a node; they are written and read in place
// in a slot of a ring.
//
// Layout of one segment "/azflow.<instance>.<ring>" (Boost.Interprocess shared_memory_object +
// mapped_region; fixed at create()):
//   SegmentHeader   magic "AZFRING\0", layout version, slot count, slot size, the mutex, the
//                   wake-up words, the counters and the intent record (below)
//   SlotControl[n]  per slot: state word (free | writing by pid | ready | reading by pid),
//                   commit sequence number, the SlotHeader
//   payload[n]      n x slot_stride bytes, each slot page-aligned (4096), slot_bytes usable
// Memory is reserved with posix_fallocate at create(), so a ring never grows and a full
// /dev/shm is an Error at create() rather than a SIGBUS later.
//
// Synchronisation (why not Boost's interprocess_mutex/condition): Boost's mutex is not robust;
// a process killed while holding it deadlocks every other process. All shared state is changed
// under one POSIX robust, process-shared mutex (pthread_mutexattr_setrobust +
// PTHREAD_PROCESS_SHARED). Wake-ups do not use process-shared condition variables: glibc keeps
// per-waiter bookkeeping and an internal lock inside pthread_cond_t, which a process killed while
// waiting or signalling can leave inconsistent, and which no robust mechanism repairs. Instead
// each direction ("a slot became free", "a slot became ready or the ring closed") has a 32-bit
// sequence word in the segment: a waker bumps it under the mutex and calls futex(FUTEX_WAKE);
// a waiter reads it under the mutex, unlocks and calls futex(FUTEX_WAIT) with its remaining
// timeout. A killed waiter leaves nothing behind. A single futex sleep lasts at most 50 ms
// before the state is checked again, so a waker killed between its change and its wake-up
// delays waiters by at most that, never by their whole timeout. Acquire/commit/release cost a
// few microseconds (bench/ipc/ring_bench: 8-16 us per two-way round trip between processes on
// a shared 2-core VM).
// Owners are recorded by pid, so all processes of a ring must share a pid namespace.
// (Linux only; azflow targets Linux.)
//
// Crash safety: every change of shared state is made under the mutex as an *intent*: the new
// absolute values (slot state word, sequence number, counters) are written to an intent record,
// the record is armed, the values are stored, the record is disarmed. If a process dies inside
// that window, the next locker gets EOWNERDEAD, re-applies the armed intent (idempotent: absolute
// values), and marks the mutex consistent. So at every instant a process can be killed the ring
// is either before or after a whole operation. Payloads are never touched by the ring: a slot
// being written is invisible to readers until commit() flips its state to ready in one step, so
// a producer killed mid-write never exposes half-written data; reclaim() frees such a slot.
//
// Protocol for lossless crash recovery (the daemon's supervisor relies on it): a stage that reads
// slot A from its input ring and writes slot B to its output ring must commit B *before*
// releasing A. Then a frame a dead stage was working on is always in a slot it held for reading,
// and reclaim(pid) on its input ring returns that frame's header to be redone. (A frame may then
// arrive twice downstream; the reducer ignores duplicates by frame index.)
//
// Use:
//   Ring out = Ring::open(ring_name(instance, "frames"));
//   if (auto slot = out.acquire_write(100ms)) {      // nullopt: full for 100 ms, or closed
//     slot->header().frame_index = i;  ...           // fill header and payload() in place
//     slot->header().bytes = n;
//     slot->commit();                                // readers see it now, FIFO
//   }
//   while (auto in = ring.acquire_read(100ms)) { use(in->header(), in->payload()); }
//
// Handles: Ring, WriteSlot and ReadSlot are move-only. A WriteSlot/ReadSlot points into the
// mapping of the Ring it came from, so the Ring must outlive it. One Ring handle may be used from
// several threads of a process at once; the slots of one process are told apart from other
// processes' by pid only.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace azflow::ipc {

/// What a slot's payload holds.
enum class PayloadKind : std::uint32_t {
  kCompressedChunk = 0,  ///< one compressed chunk (one frame) as stored in the file: codec bytes
  kFrame = 1,            ///< one decoded frame: rows x cols elements of dtype, row-major
  kBinSums = 2,          ///< integrate result: 4 x bins float64 (signal, variance, norm, count)
};

/// Whether the slot carries a good payload or a counted failure (reason set, no payload).
/// A slot's outcome. kFailed: the frame failed (reason says why; counted, reported). kCancelled:
/// its job was cancelled while the frame was in the pipeline (passed on unprocessed; the reducer
/// ignores it, never counted as a failure).
enum class SlotStatus : std::uint32_t { kOk = 0, kFailed = 1, kCancelled = 2 };

/// Header of one slot, in shared memory (trivially copyable, fixed layout, 328 bytes).
/// Filled by the producer through WriteSlot::header(); read through ReadSlot::header().
/// WriteSlot starts with an all-zero header (kind kCompressedChunk, status kOk, bytes 0).
struct SlotHeader {
  std::uint64_t job_id = 0;       ///< daemon job id
  std::uint64_t shard_id = 0;     ///< shard of the job
  std::uint64_t frame_index = 0;  ///< frame index within the dataset (0-based)
  PayloadKind kind = PayloadKind::kCompressedChunk;
  SlotStatus status = SlotStatus::kOk;
  std::uint32_t dtype = 0;       ///< azflow::DType value
  std::uint32_t elem_size = 0;   ///< bytes per element (decoders)
  std::uint32_t codec = 0;       ///< azflow::decompress::Codec value
  std::uint32_t block_size = 0;  ///< codec block size, 0 = default
  std::uint64_t rows = 0;        ///< frame shape: slow axis
  std::uint64_t cols = 0;        ///< frame shape: fast axis
  std::uint64_t bytes = 0;       ///< payload bytes used (<= slot_bytes; checked at commit)
  char reason[256] = {};         ///< NUL-terminated failure reason when status == kFailed

  /// Copies `text` into reason, truncated to 255 bytes, NUL-terminated.
  void set_reason(std::string_view text) noexcept;
  /// The reason up to its NUL (never reads past the array).
  [[nodiscard]] std::string_view reason_view() const noexcept;
};

/// Shape of a ring, fixed at create().
struct RingConfig {
  std::string name;            ///< POSIX shm name, "/azflow.<instance>.<ring>" (see ring_name)
  std::size_t slots = 0;       ///< number of slots, >= 1
  std::size_t slot_bytes = 0;  ///< usable payload bytes per slot, >= 1 (largest payload)
};

/// A snapshot of a ring's state and counters, for the daemon's status.
struct RingStats {
  std::size_t capacity = 0;     ///< number of slots
  std::size_t ready = 0;        ///< committed, not yet taken by a reader
  std::size_t in_use = 0;       ///< held by a writer or a reader right now
  std::uint64_t pushed = 0;     ///< commits since create()
  std::uint64_t popped = 0;     ///< slots taken by readers since create()
  std::uint64_t reclaimed = 0;  ///< slots freed by reclaim() since create() (read or write held)
};

class Ring;
struct RingTestAccess;

/// A slot held for writing (move-only). Fill header() and payload() in place, then commit().
/// Destroyed without commit() (exception, early return): the slot goes back to free and readers
/// never see it.
class WriteSlot {
 public:
  WriteSlot(WriteSlot&& other) noexcept;
  WriteSlot& operator=(WriteSlot&& other) noexcept;
  WriteSlot(const WriteSlot&) = delete;
  WriteSlot& operator=(const WriteSlot&) = delete;
  ~WriteSlot();

  /// The slot's header in shared memory; valid until commit() or destruction.
  [[nodiscard]] SlotHeader& header() const noexcept;
  /// The whole payload area, slot_bytes long, in shared memory (page-aligned).
  [[nodiscard]] std::span<std::byte> payload() const noexcept;
  /// Publishes the slot to readers (FIFO in commit order) and gives up this handle.
  /// Throws Error(kInternal) naming ring and frame if header().bytes > slot_bytes (the slot is
  /// then still held and freed by the destructor), or if the handle is empty.
  void commit();
  /// True while the handle holds a slot (false after commit() or a move).
  [[nodiscard]] explicit operator bool() const noexcept { return ring_ != nullptr; }
  /// Index of the slot in its ring (0..slots-1); for logs and tests.
  [[nodiscard]] std::size_t index() const noexcept { return index_; }

 private:
  friend class Ring;
  friend struct RingTestAccess;
  WriteSlot(Ring* ring, std::size_t index) noexcept : ring_(ring), index_(index) {}
  void abort() noexcept;
  Ring* ring_ = nullptr;
  std::size_t index_ = 0;
};

/// A slot held for reading (move-only). Read header() and payload() in place; the destructor
/// (or release()) frees the slot for producers.
class ReadSlot {
 public:
  ReadSlot(ReadSlot&& other) noexcept;
  ReadSlot& operator=(ReadSlot&& other) noexcept;
  ReadSlot(const ReadSlot&) = delete;
  ReadSlot& operator=(const ReadSlot&) = delete;
  ~ReadSlot();

  /// The slot's header in shared memory.
  [[nodiscard]] const SlotHeader& header() const noexcept;
  /// The payload, header().bytes long (clamped to slot_bytes), in shared memory.
  [[nodiscard]] std::span<const std::byte> payload() const noexcept;
  /// Frees the slot now (the handle becomes empty); no-op on an empty handle.
  void release() noexcept;
  /// True while the handle holds a slot.
  [[nodiscard]] explicit operator bool() const noexcept { return ring_ != nullptr; }
  /// Index of the slot in its ring (0..slots-1); for logs and tests.
  [[nodiscard]] std::size_t index() const noexcept { return index_; }

 private:
  friend class Ring;
  friend struct RingTestAccess;
  ReadSlot(Ring* ring, std::size_t index) noexcept : ring_(ring), index_(index) {}
  Ring* ring_ = nullptr;
  std::size_t index_ = 0;
};

/// Move-only handle to a mapped ring. See the file comment for layout, synchronisation and the
/// crash-recovery protocol.
class Ring {
 public:
  /// Creates the segment `config.name` with `config.slots` slots of `config.slot_bytes` bytes and
  /// maps it. An existing segment of that name (stale, from a crash) is removed first.
  /// Throws Error(kConfig) for a bad name or zero slots/bytes, Error(kResource) naming the ring if
  /// the segment cannot be created, sized, reserved (posix_fallocate) or mapped.
  static Ring create(const RingConfig& config);
  /// Attaches to an existing ring. Throws Error(kResource) naming it if it does not exist, or
  /// is not an azflow ring of this layout version (magic, version, sizes checked).
  static Ring open(const std::string& name);
  /// Unlinks the segment `name`; true if it existed. Mappings already made stay valid.
  static bool remove(const std::string& name);

  Ring(Ring&& other) noexcept;
  Ring& operator=(Ring&& other) noexcept;
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring();

  /// The segment's name, as given to create()/open().
  [[nodiscard]] const std::string& name() const noexcept;
  /// Number of slots (capacity).
  [[nodiscard]] std::size_t slots() const noexcept;
  /// Usable payload bytes per slot.
  [[nodiscard]] std::size_t slot_bytes() const noexcept;
  /// This process's mapping of every slot's payload: slots x slot stride bytes (page-aligned
  /// start and length), valid while the Ring lives. For registering the payloads with a device
  /// (cudaHostRegister) so that copies from slots run as pinned DMA; never write through it.
  [[nodiscard]] std::span<std::byte> payload_area() const noexcept;

  /// Takes a free slot for writing, blocking while the ring is full (back-pressure) up to
  /// `timeout`. nullopt on timeout or once the ring is closed.
  [[nodiscard]] std::optional<WriteSlot> acquire_write(std::chrono::milliseconds timeout);
  /// Takes the oldest committed slot (FIFO in commit order over all producers), blocking up to
  /// `timeout` while none is ready. nullopt on timeout, or when the ring is closed and drained
  /// (no slot ready and none being written).
  [[nodiscard]] std::optional<ReadSlot> acquire_read(std::chrono::milliseconds timeout);

  /// Frees every slot that process `dead_pid` holds, for writing or for reading. Call it after the
  /// process has exited and been reaped (before its pid can be reused by a process attached to
  /// this ring). Returns the headers of the slots it held FOR READING, in their commit order:
  /// the frames it took and had not finished, to be redone. Slots it held for writing are freed
  /// and discarded (their content is partial by definition and never reaches a reader); their
  /// headers are not returned. Committed (ready) slots belong to no process and are untouched.
  /// Each freed slot counts once in RingStats::reclaimed. Safe to call again: a second call
  /// returns nothing.
  std::vector<SlotHeader> reclaim(pid_t dead_pid);

  /// Closes the ring for every process: wakes all waiters; later acquire_write returns nullopt;
  /// acquire_read still returns ready slots and returns nullopt once drained. Slots already
  /// held for writing may still be committed. Irreversible.
  void close();
  /// True once close() was called by any process.
  [[nodiscard]] bool closed() const;

  /// Snapshot of fill and counters (takes the mutex briefly).
  [[nodiscard]] RingStats stats() const;

 private:
  friend class WriteSlot;
  friend class ReadSlot;
  friend struct RingTestAccess;
  struct Impl;
  explicit Ring(std::unique_ptr<Impl> impl) noexcept;
  void commit_slot(std::size_t index);
  void abort_write(std::size_t index) noexcept;
  void release_read(std::size_t index) noexcept;
  [[nodiscard]] SlotHeader& slot_header(std::size_t index) const noexcept;
  [[nodiscard]] std::byte* slot_payload(std::size_t index) const noexcept;
  std::unique_ptr<Impl> impl_;
};

/// Names rings per daemon instance: "/azflow.<instance>.<ring>" (a valid POSIX shm name).
/// Throws Error(kConfig) if instance or ring is empty or contains anything but [A-Za-z0-9_-].
[[nodiscard]] std::string ring_name(std::string_view instance, std::string_view ring);

/// Removes every "/dev/shm/azflow.<instance>.*" segment (reclaim after a crash, at daemon start);
/// returns how many were removed. Throws Error(kConfig) for an invalid instance name.
std::size_t remove_instance_segments(std::string_view instance);

}  // namespace azflow::ipc
