#include "stages/decompress/decompress_stage.hpp"

#include <chrono>
#include <string>

#include "base/error.hpp"
#include "stages/decompress/codec.hpp"

namespace azflow::decompress {

namespace {

using Clock = std::chrono::steady_clock;

/// Decodes `in` into `out` (header and payload); a failure marks `out` failed with its reason, a
/// frame of a cancelled job is passed on as kCancelled without decoding, a failed or cancelled
/// input is passed on as it is. Returns false if the frame failed here.
bool decode_slot(const ipc::ReadSlot& in, ipc::WriteSlot& out, bool cancelled) {
  const ipc::SlotHeader& ih = in.header();
  ipc::SlotHeader& oh = out.header();
  oh = ih;
  oh.kind = ipc::PayloadKind::kFrame;
  oh.codec = static_cast<std::uint32_t>(Codec::kNone);
  oh.bytes = 0;
  if (ih.status != ipc::SlotStatus::kOk) return true;
  if (cancelled) {
    oh.status = ipc::SlotStatus::kCancelled;
    oh.set_reason("job cancelled");
    return true;
  }
  try {
    const std::size_t bytes = ih.rows * ih.cols * ih.elem_size;
    if (bytes == 0 || bytes > out.payload().size()) {
      throw Error(ErrorCategory::kResource, "decoded frame of " + std::to_string(bytes) +
                                                " bytes does not fit a frames " + "ring slot of " +
                                                std::to_string(out.payload().size()) + " bytes");
    }
    const CodecParams params{static_cast<Codec>(ih.codec), ih.elem_size, ih.block_size};
    decode(params, in.payload(), out.payload().first(bytes));
    oh.bytes = bytes;
    return true;
  } catch (const Error& e) {
    oh.status = ipc::SlotStatus::kFailed;
    oh.set_reason("frame " + std::to_string(ih.frame_index) + ": " + e.what());
    return false;
  }
}

}  // namespace

int run_decompress_stage(daemon::StageRuntime& rt) {
  ipc::Ring compressed = daemon::open_stage_ring(rt.instance, "compressed");
  ipc::Ring frames = daemon::open_stage_ring(rt.instance, "frames");
  Clock::duration busy{};
  const auto on_message = [&rt](const daemon::DaemonMessage& m) { rt.note_cancel(m); };
  while (!rt.should_stop()) {
    rt.heartbeat();
    while (auto message = rt.link.receive(std::chrono::milliseconds(0))) on_message(*message);
    auto in = compressed.acquire_read(daemon::kStagePollInterval);
    if (!in) continue;
    rt.crash_if_asked(in->header());
    ++rt.counters.frames_in;
    auto out = daemon::wait_write(rt, frames, on_message, [] { return false; });
    if (!out) break;  // stopping: the input slot is reclaimed by the daemon, nothing is lost
    const auto start = Clock::now();
    const auto job = static_cast<std::int64_t>(in->header().job_id);
    if (!decode_slot(*in, *out, rt.job_cancelled(job))) ++rt.counters.failed;
    out->commit();  // commit downstream before releasing upstream (crash recovery)
    in->release();
    ++rt.counters.frames_out;
    busy += Clock::now() - start;
    rt.counters.busy_s = std::chrono::duration<double>(busy).count();
    rt.delay();
  }
  return 0;
}

}  // namespace azflow::decompress
