// Shared-memory rings between real processes (fork) over real POSIX shared memory: FIFO order
// and payload integrity, MPMC exactly-once, back-pressure, SIGKILL of readers, writers and a
// mutex holder, stale segments, close(). Every test removes its segments.

#include "ipc/ring.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <numeric>
#include <set>
#include <thread>

#include "base/error.hpp"
#include "ipc/ring_test_hooks.hpp"
#include "tests/ipc/child_process.hpp"

namespace azflow::ipc {
namespace {

using namespace std::chrono_literals;
using test::Child;
using test::ChildPipe;

constexpr std::uint64_t kReadyMark = 0xFEEDu;

/// Byte j of the test pattern for frame i.
std::byte pattern(std::uint64_t i, std::size_t j) {
  return static_cast<std::byte>((i * 131 + j * 7 + (j >> 9)) & 0xFF);
}

/// Writes frame i (bytes long, pattern) into a slot and commits it.
bool push_frame(Ring& ring, std::uint64_t i, std::size_t bytes, std::chrono::milliseconds t = 5s) {
  auto slot = ring.acquire_write(t);
  if (!slot) return false;
  SlotHeader& h = slot->header();
  h.job_id = 7;
  h.shard_id = i / 10;
  h.frame_index = i;
  h.kind = PayloadKind::kFrame;
  h.rows = 1;
  h.cols = bytes;
  h.bytes = bytes;
  auto p = slot->payload();
  for (std::size_t j = 0; j < bytes; ++j) p[j] = pattern(i, j);
  slot->commit();
  return true;
}

/// True if the slot holds frame i's pattern with the header push_frame writes.
bool check_frame(const ReadSlot& slot, std::uint64_t i) {
  const SlotHeader& h = slot.header();
  if (h.frame_index != i || h.job_id != 7 || h.kind != PayloadKind::kFrame) return false;
  auto p = slot.payload();
  if (p.size() != h.bytes) return false;
  for (std::size_t j = 0; j < p.size(); ++j) {
    if (p[j] != pattern(i, j)) return false;
  }
  return true;
}

/// Bytes of frame i in the tests that vary the payload size.
std::size_t frame_bytes(std::uint64_t i, std::size_t slot_bytes) {
  return 1 + (i * 977) % slot_bytes;
}

class RingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    instance_ = std::string("test") + std::to_string(::getpid()) + "_" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : instance_) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') c = '_';
    }
    remove_instance_segments(instance_);
  }
  void TearDown() override { remove_instance_segments(instance_); }

  std::string name(std::string_view ring) const { return ring_name(instance_, ring); }
  Ring make(std::size_t slots, std::size_t slot_bytes, std::string_view ring = "r") {
    return Ring::create({name(ring), slots, slot_bytes});
  }

  std::string instance_;
};

TEST(SlotHeaderTest, FixedLayoutAndReason) {
  static_assert(std::is_trivially_copyable_v<SlotHeader>);
  EXPECT_EQ(sizeof(SlotHeader), 328u);
  SlotHeader h;
  EXPECT_EQ(h.reason_view(), "");
  h.set_reason("chunk 3 of /data/x.h5: LZ4 error");
  EXPECT_EQ(h.reason_view(), "chunk 3 of /data/x.h5: LZ4 error");
  h.set_reason(std::string(400, 'x'));
  EXPECT_EQ(h.reason_view().size(), 255u);
  h.set_reason("short");
  EXPECT_EQ(h.reason_view(), "short");
}

TEST(RingNameTest, FormatAndValidation) {
  EXPECT_EQ(ring_name("beamline1", "frames"), "/azflow.beamline1.frames");
  EXPECT_THROW((void)ring_name("", "frames"), Error);
  EXPECT_THROW((void)ring_name("a/b", "frames"), Error);
  EXPECT_THROW((void)ring_name("a", "fr.ames"), Error);
  EXPECT_THROW((void)remove_instance_segments("../x"), Error);
  try {
    (void)ring_name("bad name", "frames");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kConfig);
    EXPECT_NE(std::string(e.what()).find("bad name"), std::string::npos);
  }
}

TEST_F(RingTest, CreateRejectsBadConfig) {
  EXPECT_THROW((void)Ring::create({name("a"), 0, 10}), Error);
  EXPECT_THROW((void)Ring::create({name("a"), 4, 0}), Error);
  EXPECT_THROW((void)Ring::create({"no-slash", 4, 10}), Error);
  EXPECT_THROW((void)Ring::create({"/a/b", 4, 10}), Error);
}

TEST_F(RingTest, FifoAndPayloadAcrossProcesses) {
  constexpr std::size_t kSlotBytes = 64 * 1024;
  constexpr std::uint64_t kFrames = 300;
  Ring ring = make(4, kSlotBytes);
  EXPECT_EQ(ring.slots(), 4u);
  EXPECT_EQ(ring.slot_bytes(), kSlotBytes);
  Child producer = Child::spawn([&](const ChildPipe&) {
    Ring r = Ring::open(name("r"));
    for (std::uint64_t i = 0; i < kFrames; ++i) {
      if (!push_frame(r, i, frame_bytes(i, kSlotBytes))) return 1;
    }
    return 0;
  });
  for (std::uint64_t i = 0; i < kFrames; ++i) {
    auto slot = ring.acquire_read(5s);
    ASSERT_TRUE(slot) << "frame " << i;
    ASSERT_EQ(slot->header().frame_index, i);
    ASSERT_EQ(slot->payload().size(), frame_bytes(i, kSlotBytes));
    ASSERT_TRUE(check_frame(*slot, i)) << "frame " << i;
  }
  EXPECT_EQ(producer.wait(5s), 0);
  const RingStats st = ring.stats();
  EXPECT_EQ(st.capacity, 4u);
  EXPECT_EQ(st.pushed, kFrames);
  EXPECT_EQ(st.popped, kFrames);
  EXPECT_EQ(st.ready, 0u);
  EXPECT_EQ(st.in_use, 0u);
  EXPECT_FALSE(ring.acquire_read(10ms));
}

TEST_F(RingTest, Eiger4MSizedSlotsInPlace) {
  constexpr std::size_t kFrameBytes = 2162ull * 2068ull * 4ull;  // EIGER 4M, uint32: 17.9 MB
  Ring ring = make(2, kFrameBytes);
  Child producer = Child::spawn([&](const ChildPipe&) {
    Ring r = Ring::open(name("r"));
    for (std::uint64_t i = 0; i < 6; ++i) {
      if (!push_frame(r, i, kFrameBytes - i)) return 1;
    }
    return 0;
  });
  for (std::uint64_t i = 0; i < 6; ++i) {
    auto slot = ring.acquire_read(10s);
    ASSERT_TRUE(slot);
    EXPECT_EQ(slot->payload().size(), kFrameBytes - i);
    EXPECT_TRUE(check_frame(*slot, i));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(slot->payload().data()) % 4096, 0u);
  }
  EXPECT_EQ(producer.wait(10s), 0);
}

TEST_F(RingTest, TwoProducersTwoConsumersExactlyOnce) {
  constexpr std::uint64_t kPerProducer = 1500;
  Ring ring = make(8, 256);
  auto producer = [&](std::uint64_t base) {
    return Child::spawn([&, base](const ChildPipe&) {
      Ring r = Ring::open(name("r"));
      for (std::uint64_t k = 0; k < kPerProducer; ++k) {
        if (!push_frame(r, base + k, 1 + k % 256)) return 1;
      }
      return 0;
    });
  };
  auto consumer = [&] {
    return Child::spawn([&](const ChildPipe& out) {
      Ring r = Ring::open(name("r"));
      while (auto slot = r.acquire_read(10s)) {
        if (!check_frame(*slot, slot->header().frame_index)) return 2;
        out.send(slot->header().frame_index);
      }
      return r.closed() ? 0 : 3;
    });
  };
  Child c1 = consumer();
  Child c2 = consumer();
  Child p1 = producer(0);
  Child p2 = producer(1'000'000);
  // Read the consumers' reports while they run (a pipe holds only 64 KiB).
  std::vector<std::uint64_t> got1, got2;
  std::thread t1([&] { got1 = c1.receive_all(20s); });
  std::thread t2([&] { got2 = c2.receive_all(20s); });
  EXPECT_EQ(p1.wait(20s), 0);
  EXPECT_EQ(p2.wait(20s), 0);
  ring.close();
  t1.join();
  t2.join();
  EXPECT_EQ(c1.wait(5s), 0);
  EXPECT_EQ(c2.wait(5s), 0);

  std::multiset<std::uint64_t> all(got1.begin(), got1.end());
  all.insert(got2.begin(), got2.end());
  std::set<std::uint64_t> expected;
  for (std::uint64_t k = 0; k < kPerProducer; ++k) {
    expected.insert(k);
    expected.insert(1'000'000 + k);
  }
  EXPECT_EQ(all.size(), 2 * kPerProducer);  // nothing duplicated
  EXPECT_TRUE(std::equal(all.begin(), all.end(), expected.begin(), expected.end()));
  // FIFO in commit order: each consumer sees each producer's frames in increasing order.
  for (const auto* got : {&got1, &got2}) {
    std::uint64_t last[2] = {0, 0};
    bool first[2] = {true, true};
    for (std::uint64_t v : *got) {
      const int p = v >= 1'000'000 ? 1 : 0;
      EXPECT_TRUE(first[p] || v > last[p]) << v << " after " << last[p];
      first[p] = false;
      last[p] = v;
    }
  }
  EXPECT_EQ(ring.stats().pushed, 2 * kPerProducer);
  EXPECT_EQ(ring.stats().popped, 2 * kPerProducer);
}

/// Bytes of /dev/shm actually allocated to a segment, and its size.
std::pair<std::size_t, std::size_t> shm_usage(const std::string& name) {
  struct stat st {};
  if (::stat(("/dev/shm" + name).c_str(), &st) != 0) return {0, 0};
  return {static_cast<std::size_t>(st.st_blocks) * 512, static_cast<std::size_t>(st.st_size)};
}

TEST_F(RingTest, FullRingBlocksProducerAndMemoryStaysFixed) {
  constexpr std::size_t kSlots = 3;
  constexpr std::size_t kSlotBytes = 64 * 1024;
  Ring ring = make(kSlots, kSlotBytes);
  const auto [allocated0, size0] = shm_usage(ring.name());
  EXPECT_GE(size0, kSlots * kSlotBytes);
  EXPECT_LE(size0, kSlots * kSlotBytes + 64 * 1024);  // header + controls, page-rounded
  EXPECT_GE(allocated0, size0);                       // reserved up front (posix_fallocate)

  for (std::uint64_t i = 0; i < kSlots; ++i) ASSERT_TRUE(push_frame(ring, i, 100));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(ring.acquire_write(60ms));  // full: times out
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 60ms);

  // A producer process blocks until this process reads one slot.
  Child producer = Child::spawn([&](const ChildPipe& out) {
    Ring r = Ring::open(name("r"));
    out.send(kReadyMark);
    const bool ok = push_frame(r, 100, 100, 10s);
    out.send(ok ? 1 : 0);
    return ok ? 0 : 1;
  });
  ASSERT_EQ(producer.receive(5s), kReadyMark);
  EXPECT_FALSE(producer.receive(150ms)) << "producer must block while the ring is full";
  {
    auto slot = ring.acquire_read(1s);
    ASSERT_TRUE(slot);
    EXPECT_EQ(slot->header().frame_index, 0u);
  }
  EXPECT_EQ(producer.receive(5s), 1u);
  EXPECT_EQ(producer.wait(5s), 0);
  EXPECT_EQ(ring.stats().ready, kSlots);

  // Many more frames through the ring: the segment never grows.
  Child consumer = Child::spawn([&](const ChildPipe&) {
    Ring r = Ring::open(name("r"));
    while (auto slot = r.acquire_read(5s)) {
    }
    return 0;
  });
  for (std::uint64_t i = 0; i < 200; ++i) ASSERT_TRUE(push_frame(ring, 1000 + i, kSlotBytes));
  ring.close();
  EXPECT_EQ(consumer.wait(10s), 0);
  EXPECT_EQ(shm_usage(ring.name()), std::make_pair(allocated0, size0));
}

TEST_F(RingTest, KilledReaderIsReclaimedWithItsFrame) {
  Ring ring = make(3, 4096);
  for (std::uint64_t i = 10; i < 13; ++i) ASSERT_TRUE(push_frame(ring, i, 500));
  Child reader = Child::spawn([&](const ChildPipe& out) {
    Ring r = Ring::open(name("r"));
    auto slot = r.acquire_read(5s);
    if (!slot) return 1;
    out.send(slot->header().frame_index);
    for (;;) ::pause();  // holds the read slot until killed
  });
  ASSERT_EQ(reader.receive(5s), 10u);
  const pid_t pid = reader.kill_and_reap();
  EXPECT_EQ(ring.stats().in_use, 1u);

  const std::vector<SlotHeader> redo = ring.reclaim(pid);
  ASSERT_EQ(redo.size(), 1u);
  EXPECT_EQ(redo[0].frame_index, 10u);
  EXPECT_EQ(redo[0].job_id, 7u);
  EXPECT_TRUE(ring.reclaim(pid).empty());  // idempotent
  RingStats st = ring.stats();
  EXPECT_EQ(st.in_use, 0u);
  EXPECT_EQ(st.reclaimed, 1u);
  EXPECT_EQ(st.ready, 2u);

  // The reclaimed slot is usable again: the ring takes 3 frames again, and the others are intact.
  ASSERT_TRUE(push_frame(ring, 13, 500, 100ms));
  for (std::uint64_t i = 11; i < 14; ++i) {
    auto slot = ring.acquire_read(1s);
    ASSERT_TRUE(slot);
    EXPECT_TRUE(check_frame(*slot, i));
  }
}

TEST_F(RingTest, ReclaimReturnsAllReadSlotsInCommitOrderAndFreesWriteSlots) {
  Ring ring = make(4, 256);
  for (std::uint64_t i = 20; i < 23; ++i) ASSERT_TRUE(push_frame(ring, i, 50));
  Child stage = Child::spawn([&](const ChildPipe& out) {
    Ring r = Ring::open(name("r"));
    auto a = r.acquire_read(5s);  // 20
    auto b = r.acquire_read(5s);  // 21
    auto w = r.acquire_write(5s);
    if (!a || !b || !w) return 1;
    w->header().frame_index = 500;
    out.send(kReadyMark);
    for (;;) ::pause();
  });
  ASSERT_EQ(stage.receive(5s), kReadyMark);
  const pid_t pid = stage.kill_and_reap();
  EXPECT_EQ(ring.stats().in_use, 3u);
  EXPECT_TRUE(ring.reclaim(pid + 1000000).empty());  // another pid: nothing
  const std::vector<SlotHeader> redo = ring.reclaim(pid);
  ASSERT_EQ(redo.size(), 2u);
  EXPECT_EQ(redo[0].frame_index, 20u);
  EXPECT_EQ(redo[1].frame_index, 21u);
  const RingStats st = ring.stats();
  EXPECT_EQ(st.reclaimed, 3u);
  EXPECT_EQ(st.in_use, 0u);
  EXPECT_EQ(st.ready, 1u);  // frame 22 was committed and untaken: left in the ring
  auto slot = ring.acquire_read(100ms);
  ASSERT_TRUE(slot);
  EXPECT_TRUE(check_frame(*slot, 22));
}

TEST_F(RingTest, KilledWriterNeverExposesHalfWrittenSlot) {
  Ring ring = make(2, 4096);
  Child writer = Child::spawn([&](const ChildPipe& out) {
    Ring r = Ring::open(name("r"));
    auto slot = r.acquire_write(5s);
    if (!slot) return 1;
    slot->header().frame_index = 99;
    slot->header().bytes = 4096;
    std::memset(slot->payload().data(), 0xAB, 2000);  // half written
    out.send(kReadyMark);
    for (;;) ::pause();
  });
  ASSERT_EQ(writer.receive(5s), kReadyMark);
  const pid_t pid = writer.kill_and_reap();
  EXPECT_FALSE(ring.acquire_read(30ms));  // never readable
  EXPECT_EQ(ring.stats().in_use, 1u);
  EXPECT_TRUE(ring.reclaim(pid).empty());  // write-held slots are freed, not returned
  const RingStats st = ring.stats();
  EXPECT_EQ(st.in_use, 0u);
  EXPECT_EQ(st.reclaimed, 1u);
  EXPECT_EQ(st.pushed, 0u);
  EXPECT_FALSE(ring.acquire_read(10ms));
  // Both slots are writable again.
  ASSERT_TRUE(push_frame(ring, 1, 10, 100ms));
  ASSERT_TRUE(push_frame(ring, 2, 10, 100ms));
  EXPECT_FALSE(ring.acquire_write(10ms));
}

TEST_F(RingTest, ProcessKilledHoldingTheMutexDoesNotBlockOthers) {
  Ring ring = make(2, 64);
  ASSERT_TRUE(push_frame(ring, 5, 10));
  Child holder = Child::spawn([&](const ChildPipe& out) {
    Ring r = Ring::open(name("r"));
    RingTestAccess::with_lock_held(r, [&] {
      out.send(kReadyMark);
      for (;;) ::pause();
    });
    return 1;
  });
  ASSERT_EQ(holder.receive(5s), kReadyMark);
  // Another process is blocked on the mutex right now.
  Child reader = Child::spawn([&](const ChildPipe& out) {
    Ring r = Ring::open(name("r"));
    auto slot = r.acquire_read(5s);
    out.send(slot ? slot->header().frame_index : 0);
    return slot ? 0 : 1;
  });
  EXPECT_FALSE(reader.receive(100ms)) << "the mutex is held";
  (void)holder.kill_and_reap();
  EXPECT_EQ(reader.receive(5s), 5u);
  EXPECT_EQ(reader.wait(5s), 0);
  ASSERT_TRUE(push_frame(ring, 6, 10, 1s));
  auto slot = ring.acquire_read(1s);
  ASSERT_TRUE(slot);
  EXPECT_TRUE(check_frame(*slot, 6));
}

class DieDuringCommit : public RingTest, public ::testing::WithParamInterface<int> {};

// A writer killed at every point of its commit: before arming the intent the slot stays
// write-held (reclaim frees it, nothing is read); after arming, the next locker completes the
// commit (EOWNERDEAD recovery) and the frame is read exactly once with consistent counters.
TEST_P(DieDuringCommit, RingStaysConsistent) {
  const int stores_done = GetParam();
  Ring ring = make(2, 256);
  Child writer = Child::spawn([&](const ChildPipe&) {
    Ring r = Ring::open(name("r"));
    auto slot = r.acquire_write(5s);
    if (!slot) return 1;
    slot->header().frame_index = 42;
    slot->header().job_id = 7;
    slot->header().kind = PayloadKind::kFrame;
    slot->header().bytes = 100;
    for (std::size_t j = 0; j < 100; ++j) slot->payload()[j] = pattern(42, j);
    RingTestAccess::die_during_commit(*slot, stores_done);
  });
  EXPECT_EQ(writer.wait(5s), 128 + SIGKILL);
  auto slot = ring.acquire_read(50ms);
  if (stores_done < 0) {
    EXPECT_FALSE(slot);
    EXPECT_EQ(ring.stats().in_use, 1u);
  } else {
    ASSERT_TRUE(slot);
    EXPECT_TRUE(check_frame(*slot, 42));
    slot.reset();
    const RingStats st = ring.stats();
    EXPECT_EQ(st.pushed, 1u);
    EXPECT_EQ(st.popped, 1u);
    EXPECT_EQ(st.in_use, 0u);
    EXPECT_FALSE(ring.acquire_read(10ms));
  }
}
INSTANTIATE_TEST_SUITE_P(AtEveryStore, DieDuringCommit, ::testing::Values(-1, 0, 1, 2, 3, 4, 5));

TEST_F(RingTest, DieDuringCommitBeforeArmingIsReclaimed) {
  Ring ring = make(1, 64);
  Child writer = Child::spawn([&](const ChildPipe& out) {
    Ring r = Ring::open(name("r"));
    auto slot = r.acquire_write(5s);
    if (!slot) return 1;
    out.send(static_cast<std::uint64_t>(::getpid()));
    RingTestAccess::die_during_commit(*slot, -1);
  });
  const auto pid = writer.receive(5s);
  ASSERT_TRUE(pid);
  EXPECT_EQ(writer.wait(5s), 128 + SIGKILL);
  EXPECT_FALSE(ring.acquire_write(10ms));
  EXPECT_TRUE(ring.reclaim(static_cast<pid_t>(*pid)).empty());
  EXPECT_TRUE(ring.acquire_write(10ms));
}

TEST_F(RingTest, KillDuringTightLoopOthersContinue) {
  constexpr std::uint64_t kFrames = 4000;
  Ring ring = make(4, 128);
  auto consumer = [&] {
    return Child::spawn([&](const ChildPipe& out) {
      Ring r = Ring::open(name("r"));
      out.send(kReadyMark);
      std::uint64_t n = 0;
      while (auto slot = r.acquire_read(10s)) {
        if (!check_frame(*slot, slot->header().frame_index)) return 2;
        ++n;
      }
      out.send(n);
      return 0;
    });
  };
  Child victim = consumer();
  Child survivor = consumer();
  ASSERT_EQ(victim.receive(5s), kReadyMark);
  ASSERT_EQ(survivor.receive(5s), kReadyMark);
  Child producer = Child::spawn([&](const ChildPipe&) {
    Ring r = Ring::open(name("r"));
    for (std::uint64_t i = 0; i < kFrames; ++i) {
      if (!push_frame(r, i, 1 + i % 128)) return 1;
    }
    return 0;
  });
  // Kill the victim at several points of its loop (it may hold a slot, the mutex, or nothing),
  // reclaim, and start a fresh consumer; the producer must always finish.
  std::vector<Child> victims;
  victims.push_back(std::move(victim));
  std::size_t redone = 0;
  for (int round = 0; round < 5; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + 7 * round));
    const pid_t pid = victims.back().kill_and_reap();
    redone += ring.reclaim(pid).size();
    victims.push_back(consumer());
    ASSERT_EQ(victims.back().receive(5s), kReadyMark);
  }
  EXPECT_EQ(producer.wait(20s), 0);
  ring.close();
  EXPECT_TRUE(survivor.receive(10s));
  EXPECT_EQ(survivor.wait(10s), 0);
  EXPECT_EQ(victims.back().wait(10s), 0);
  const RingStats st = ring.stats();
  EXPECT_EQ(st.pushed, kFrames);
  EXPECT_EQ(st.popped, kFrames);
  EXPECT_EQ(st.in_use, 0u);
  EXPECT_EQ(st.ready, 0u);
  EXPECT_LE(st.reclaimed, 5u);
  EXPECT_EQ(st.reclaimed, redone);
}

TEST_F(RingTest, CreateReplacesStaleSegments) {
  {
    Ring stale = make(2, 1024);
    ASSERT_TRUE(push_frame(stale, 1, 10));
    auto held = stale.acquire_write(10ms);  // as if a crashed process held it
    ASSERT_TRUE(held);
    Ring fresh = make(3, 2048);  // replaces the segment; the old mapping stays valid
    EXPECT_EQ(fresh.slots(), 3u);
    const RingStats st = Ring::open(name("r")).stats();
    EXPECT_EQ(st.capacity, 3u);
    EXPECT_EQ(st.pushed, 0u);
    EXPECT_EQ(st.ready, 0u);
  }
  // A segment of that name that is not a ring at all.
  const std::string junk = name("junk");
  const int fd = ::shm_open(junk.c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 8192), 0);
  ASSERT_EQ(::write(fd, "not a ring", 10), 10);
  ::close(fd);
  try {
    (void)Ring::open(junk);
    FAIL() << "open of a non-ring segment must throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kResource);
    EXPECT_NE(std::string(e.what()).find(junk), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not an azflow ring"), std::string::npos) << e.what();
  }
  Ring ring = Ring::create({junk, 2, 100});
  EXPECT_EQ(Ring::open(junk).slots(), 2u);
}

TEST_F(RingTest, OpenMissingNamesIt) {
  try {
    (void)Ring::open(name("missing"));
    FAIL() << "open of a missing ring must throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kResource);
    EXPECT_NE(std::string(e.what()).find(name("missing")), std::string::npos) << e.what();
  }
  EXPECT_FALSE(Ring::remove(name("missing")));
}

TEST_F(RingTest, RemoveAndRemoveInstanceSegments) {
  const std::string other = instance_ + "x";
  {
    Ring a = make(1, 10, "a");
    Ring b = make(1, 10, "b");
    Ring c = make(1, 10, "c");
    Ring d = Ring::create({ring_name(other, "a"), 1, 10});
    EXPECT_TRUE(Ring::remove(c.name()));
    EXPECT_THROW((void)Ring::open(c.name()), Error);
  }
  EXPECT_EQ(remove_instance_segments(instance_), 2u);
  EXPECT_THROW((void)Ring::open(name("a")), Error);
  EXPECT_NO_THROW((void)Ring::open(ring_name(other, "a")));  // other instance untouched
  EXPECT_EQ(remove_instance_segments(other), 1u);
  EXPECT_EQ(remove_instance_segments(instance_), 0u);
}

TEST_F(RingTest, CloseWakesBlockedWaitersAndReadersDrain) {
  Ring ring = make(2, 64, "full");
  Ring empty = make(2, 64, "empty");
  for (std::uint64_t i = 0; i < 2; ++i) ASSERT_TRUE(push_frame(ring, i, 10));
  auto waiter = [&](bool write) {
    return Child::spawn([&, write](const ChildPipe& out) {
      Ring r = Ring::open(name(write ? "full" : "empty"));
      out.send(kReadyMark);
      const auto t0 = std::chrono::steady_clock::now();
      const bool got = write ? r.acquire_write(20s).has_value() : r.acquire_read(20s).has_value();
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - t0);
      out.send(static_cast<std::uint64_t>(ms.count()));
      return got ? 1 : 0;
    });
  };
  Child w = waiter(true);
  Child r = waiter(false);
  ASSERT_EQ(w.receive(5s), kReadyMark);
  ASSERT_EQ(r.receive(5s), kReadyMark);
  EXPECT_FALSE(w.receive(100ms));  // both blocked
  ring.close();
  empty.close();
  const auto w_ms = w.receive(5s);
  const auto r_ms = r.receive(5s);
  ASSERT_TRUE(w_ms && r_ms);
  EXPECT_LT(*w_ms, 5000u);
  EXPECT_LT(*r_ms, 5000u);
  EXPECT_EQ(w.wait(5s), 0);  // nullopt: closed
  EXPECT_EQ(r.wait(5s), 0);

  EXPECT_TRUE(ring.closed());
  EXPECT_FALSE(ring.acquire_write(10ms));
  for (std::uint64_t i = 0; i < 2; ++i) {  // ready slots still drain after close
    auto slot = ring.acquire_read(10ms);
    ASSERT_TRUE(slot);
    EXPECT_EQ(slot->header().frame_index, i);
  }
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(ring.acquire_read(5s));  // closed and drained: immediately
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}

TEST_F(RingTest, ClosedRingWaitsForSlotsStillBeingWritten) {
  Ring ring = make(2, 64);
  auto held = ring.acquire_write(10ms);
  ASSERT_TRUE(held);
  held->header().frame_index = 3;
  held->header().bytes = 0;
  ring.close();
  EXPECT_FALSE(ring.acquire_read(20ms));  // timeout: a slot is still being written
  held->commit();                         // in-flight frames are not lost by close()
  auto slot = ring.acquire_read(10ms);
  ASSERT_TRUE(slot);
  EXPECT_EQ(slot->header().frame_index, 3u);
}

TEST_F(RingTest, UncommittedWriteSlotIsReturnedAndOversizedCommitThrows) {
  Ring ring = make(1, 64);
  {
    auto slot = ring.acquire_write(10ms);
    ASSERT_TRUE(slot);
    slot->header().frame_index = 1;
  }  // destroyed without commit
  EXPECT_FALSE(ring.acquire_read(10ms));
  auto slot = ring.acquire_write(10ms);
  ASSERT_TRUE(slot);
  EXPECT_EQ(slot->header().frame_index, 0u);  // header starts zeroed
  slot->header().frame_index = 8;
  slot->header().bytes = 65;
  try {
    slot->commit();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInternal);
    EXPECT_NE(std::string(e.what()).find("frame 8"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(*slot);  // still held
  slot.reset();
  EXPECT_TRUE(ring.acquire_write(10ms));
}

TEST_F(RingTest, FailedFrameTravelsWithReason) {
  Ring ring = make(1, 64);
  Child producer = Child::spawn([&](const ChildPipe&) {
    Ring r = Ring::open(name("r"));
    auto slot = r.acquire_write(5s);
    if (!slot) return 1;
    slot->header().frame_index = 17;
    slot->header().status = SlotStatus::kFailed;
    slot->header().set_reason("frame 17 of /data/x.h5: LZ4 decode error");
    slot->commit();
    return 0;
  });
  auto slot = ring.acquire_read(5s);
  ASSERT_TRUE(slot);
  EXPECT_EQ(slot->header().status, SlotStatus::kFailed);
  EXPECT_EQ(slot->header().reason_view(), "frame 17 of /data/x.h5: LZ4 decode error");
  EXPECT_TRUE(slot->payload().empty());
  EXPECT_EQ(producer.wait(5s), 0);
}

TEST_F(RingTest, MoveOnlyHandles) {
  Ring ring = make(2, 64);
  Ring moved = std::move(ring);
  auto w = moved.acquire_write(10ms);
  ASSERT_TRUE(w);
  WriteSlot w2 = std::move(*w);
  EXPECT_FALSE(*w);
  w2.header().frame_index = 4;
  w2.commit();
  EXPECT_FALSE(w2);
  auto r = moved.acquire_read(10ms);
  ASSERT_TRUE(r);
  ReadSlot r2 = std::move(*r);
  EXPECT_EQ(r2.header().frame_index, 4u);
  r2.release();
  EXPECT_FALSE(r2);
  EXPECT_EQ(moved.stats().in_use, 0u);
}

}  // namespace
}  // namespace azflow::ipc
