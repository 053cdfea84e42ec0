// ring_bench: acquire/commit/read/release rates of ipc::Ring between two processes.
//
//   ring_bench [--seconds S] [--instance NAME]
//
// For slot sizes of 64 KiB and 17,884,064 B (one EIGER 4M uint32 frame), and a payload either
// untouched (the ring's own cost: what a stage that decodes straight into the slot pays) or
// memcpy'd in by the producer and out by the consumer (a stage that copies), two cases:
//   pingpong  one item in flight: the parent writes a slot on ring "ping", the child reads and
//             releases it and answers on ring "pong", the parent reads and releases that.
//             Reported: round trips/s and microseconds per round trip (2 x acquire_write+commit,
//             2 x acquire_read+release, 2 cross-process wake-ups).
//   stream    the child pushes into a 4-slot ring as fast as it can, the parent pops.
//             Reported: items/s and GB/s delivered.
// "payload GB/s" = slot bytes delivered through the ring(s) per second (pingpong: 2 items per
// round trip); only meaningful when the payload is memcpy'd ("-" when untouched).
// Prints one table row per case. Not part of ctest.

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "ipc/ring.hpp"

namespace {

using azflow::ipc::Ring;
using Clock = std::chrono::steady_clock;
constexpr auto kWait = std::chrono::milliseconds(5000);

struct Case {
  const char* mode;
  std::size_t slot_bytes;
  bool copy;
};

struct Result {
  double ops_per_s;
  double us_per_op;
  double gb_per_s;
};

/// Child of pingpong: echoes every ping as a pong until the ping ring closes.
int pong_loop(const std::string& ping_name, const std::string& pong_name, bool copy) {
  Ring ping = Ring::open(ping_name);
  Ring pong = Ring::open(pong_name);
  std::vector<std::byte> buf(ping.slot_bytes());
  while (auto in = ping.acquire_read(kWait)) {
    if (copy) std::memcpy(buf.data(), in->payload().data(), in->payload().size());
    const std::uint64_t frame = in->header().frame_index;
    in->release();
    auto out = pong.acquire_write(kWait);
    if (!out) return 1;
    out->header().frame_index = frame;
    out->header().bytes = pong.slot_bytes();
    if (copy) std::memcpy(out->payload().data(), buf.data(), buf.size());
    out->commit();
  }
  return 0;
}

/// Child of stream: pushes until the ring closes.
int produce_loop(const std::string& name, bool copy) {
  Ring ring = Ring::open(name);
  std::vector<std::byte> buf(ring.slot_bytes(), std::byte{1});
  for (std::uint64_t i = 0;; ++i) {
    auto slot = ring.acquire_write(kWait);
    if (!slot) return 0;
    slot->header().frame_index = i;
    slot->header().bytes = ring.slot_bytes();
    if (copy) std::memcpy(slot->payload().data(), buf.data(), buf.size());
    slot->commit();
  }
}

template <class Body>
pid_t fork_child(Body body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  return pid;
}

/// Runs `step` (one operation; false = failure) for about `seconds` after a short warm-up.
template <class Step>
std::pair<std::uint64_t, double> timed(double seconds, Step step) {
  for (int i = 0; i < 20; ++i) step();
  const auto t0 = Clock::now();
  const auto stop = t0 + std::chrono::duration<double>(seconds);
  std::uint64_t n = 0;
  while (Clock::now() < stop) {
    if (!step()) break;
    ++n;
  }
  return {n, std::chrono::duration<double>(Clock::now() - t0).count()};
}

Result run_pingpong(const std::string& instance, const Case& c, double seconds) {
  const std::string ping_name = azflow::ipc::ring_name(instance, "ping");
  const std::string pong_name = azflow::ipc::ring_name(instance, "pong");
  Ring ping = Ring::create({ping_name, 2, c.slot_bytes});
  Ring pong = Ring::create({pong_name, 2, c.slot_bytes});
  const pid_t child = fork_child([&] { return pong_loop(ping_name, pong_name, c.copy); });
  std::vector<std::byte> buf(c.slot_bytes, std::byte{2});
  std::uint64_t frame = 0;
  auto [n, secs] = timed(seconds, [&] {
    auto out = ping.acquire_write(kWait);
    if (!out) return false;
    out->header().frame_index = frame++;
    out->header().bytes = c.slot_bytes;
    if (c.copy) std::memcpy(out->payload().data(), buf.data(), buf.size());
    out->commit();
    auto in = pong.acquire_read(kWait);
    if (!in) return false;
    if (c.copy) std::memcpy(buf.data(), in->payload().data(), in->payload().size());
    return true;
  });
  ping.close();
  ::waitpid(child, nullptr, 0);
  Ring::remove(ping_name);
  Ring::remove(pong_name);
  const double rate = static_cast<double>(n) / secs;
  return {rate, 1e6 / rate, rate * 2.0 * static_cast<double>(c.slot_bytes) / 1e9};
}

Result run_stream(const std::string& instance, const Case& c, double seconds) {
  const std::string name = azflow::ipc::ring_name(instance, "stream");
  Ring ring = Ring::create({name, 4, c.slot_bytes});
  const pid_t child = fork_child([&] { return produce_loop(name, c.copy); });
  std::vector<std::byte> buf(c.slot_bytes);
  auto [n, secs] = timed(seconds, [&] {
    auto in = ring.acquire_read(kWait);
    if (!in) return false;
    if (c.copy) std::memcpy(buf.data(), in->payload().data(), in->payload().size());
    return true;
  });
  ring.close();
  while (auto rest = ring.acquire_read(std::chrono::milliseconds(100))) {
  }
  ::waitpid(child, nullptr, 0);
  Ring::remove(name);
  const double rate = static_cast<double>(n) / secs;
  return {rate, 1e6 / rate, rate * static_cast<double>(c.slot_bytes) / 1e9};
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 1.0;
  std::string instance = "bench" + std::to_string(::getpid());
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--seconds") seconds = std::stod(argv[i + 1]);
    if (arg == "--instance") instance = argv[i + 1];
  }
  const std::size_t kEiger4M = 2162ull * 2068ull * 4ull;
  const Case cases[] = {
      {"pingpong", 64 * 1024, false}, {"pingpong", 64 * 1024, true}, {"pingpong", kEiger4M, false},
      {"pingpong", kEiger4M, true},   {"stream", 64 * 1024, false},  {"stream", 64 * 1024, true},
      {"stream", kEiger4M, false},    {"stream", kEiger4M, true},
  };
  std::printf("| mode     | slot bytes | payload   | ops/s      | us/op    | payload GB/s |\n");
  std::printf("|----------|-----------:|-----------|-----------:|---------:|-------------:|\n");
  try {
    for (const Case& c : cases) {
      const std::string mode = c.mode;
      const Result r = mode == "pingpong" ? run_pingpong(instance, c, seconds)
                                          : run_stream(instance, c, seconds);
      const std::string gbs = c.copy ? std::to_string(r.gb_per_s).substr(0, 5) : "-";
      std::printf("| %-8s | %10zu | %-9s | %10.0f | %8.2f | %12s |\n", c.mode, c.slot_bytes,
                  c.copy ? "memcpy" : "untouched", r.ops_per_s, r.us_per_op, gbs.c_str());
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    azflow::ipc::remove_instance_segments(instance);
    std::fprintf(stderr, "ring_bench: %s\n", e.what());
    return 1;
  }
  azflow::ipc::remove_instance_segments(instance);
  return 0;
}
