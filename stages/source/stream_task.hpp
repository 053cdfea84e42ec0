#pragma once
// A stream job in the source stage (docs/streams.md, "Stream jobs in the daemon"): connects a
// ZeroMQ PULL socket to the detector's endpoint, waits for the next start message, reports the
// series to the daemon (StreamStarted: shape, dtype, number_of_images, the pixel mask written
// into the job's folder, the start's geometry), then puts every new image's stored bytes into
// the compressed ring as a file job's chunks (job frame = image_id; the decompress stage decodes
// them), fails as missing the ids that never came before the end message (or the idle timeout),
// and reports its receive counters (StreamProgress) every second and at the end. Bad messages
// are counted, never fatal.
//
// A ShardWork whose stream carries `resume` (the daemon knew the series: the source stage or
// azflowd was restarted during it) takes no start message: the task reopens the series' raw
// spool, gives every image spooled there to the pipeline again (read back unchanged), counts
// them as received, and receives the rest of the series; a spool that was closed (the series
// had ended) is only given again. Frames the daemon asks for again (redo(): a crashed decompress
// or integrate stage held them) are read back from the spool too.
//
// Inputs: one ShardWork with `stream` set. Outputs: compressed-ring slots (one per image id of
// the series, ok or failed), StreamStarted, StreamProgress, ShardRead at the end. Memory: the
// ZeroMQ receive queue holds at most 64 messages (the detector's PUSH socket holds the rest).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "daemon/stage_messages.hpp"
#include "daemon/stage_runtime.hpp"
#include "ipc/ring.hpp"

namespace azflow::source {

/// One stream job being received. Not thread-safe; the stage's thread only.
class StreamTask {
 public:
  /// A write slot of a ring for the job, waiting while it is full (answering the daemon
  /// meanwhile); nullopt once the stage stops or the job is cancelled.
  using WaitSlot = std::function<std::optional<ipc::WriteSlot>(ipc::Ring&, std::int64_t job)>;

  /// Connects to work.stream->endpoint. Throws azflow::Error (kConfig) if ZeroMQ refuses it.
  StreamTask(daemon::StageRuntime& rt, ipc::Ring& compressed, WaitSlot wait_slot,
             const daemon::ShardWork& work);
  StreamTask(const StreamTask&) = delete;
  StreamTask& operator=(const StreamTask&) = delete;
  ~StreamTask();

  /// Takes what arrives within `wait` (at most a few messages) and pushes its images; true once
  /// the series ended, every row was pushed and ShardRead was sent (or the start was unusable).
  bool step(std::chrono::milliseconds wait);

  [[nodiscard]] std::int64_t job() const noexcept;

  /// Whether the task writes a raw spool, from which redo() can read images again.
  [[nodiscard]] bool has_spool() const noexcept;

  /// Gives `frames` (image ids) to the pipeline again from the raw spool, in later steps; a
  /// frame not in the spool (not received yet: it comes from the detector) is left to the
  /// series, one received but not spooled fails with the reason. Needs has_spool().
  void redo(const std::vector<std::int64_t>& frames);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace azflow::source
