#pragma once
// The JSON API of azflowd's HTTP server (docs/http.md): routes /api/v1/... mapped onto the control
// protocol's verbs (docs/protocol.md) through the MainLoopBridge, and the reads that stay on the
// HTTP threads: job outputs (HDF5), layout.json axes, the LiveCache.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "daemon/http_server.hpp"

namespace httplib {
class Server;
}

namespace azflow::daemon {

/// What the routes use; outlives the server's threads.
struct HttpApiContext {
  MainLoopBridge* bridge = nullptr;
  LiveCache* live = nullptr;
  std::string token;  ///< POSTs need "Authorization: Bearer <token>"
  std::filesystem::path state_dir;
  std::chrono::milliseconds bridge_timeout{10000};
  std::atomic<int> event_clients{0};  ///< open /api/v1/events streams
  std::atomic<bool> stopping{false};  ///< set before the server stops: event streams end
};

/// Event streams (/api/v1/events) served at once at most; more are answered 503 (each holds one
/// of the server's threads).
inline constexpr int kMaxEventClients = 8;

/// Registers every /api/v1 route on `server`.
void add_api_routes(httplib::Server& server, HttpApiContext& context);

/// One output row of a finished job's NeXus / NXazint file: {"I", "sigma"} (float values, NaN
/// for a failed frame, "sigma" null without I_errors), 2D as npt_azim rows of npt_rad, plus
/// "frame" (the row's input frame, frame_index). The NXdata group is /entry/integrate (NeXus) or
/// /entry/data (NXazint). Throws azflow::Error naming the file and dataset (kIo: unreadable;
/// kInput: `row` out of range).
nlohmann::json read_output_row(const std::filesystem::path& file, std::int64_t row);

/// The dataset-wide result of a finished job's file: /entry/sum/I and I_errors (NeXus), or for
/// NXazint (no sum group) the mean over its non-NaN rows; {"I", "sigma", "frames"} shaped as in
/// read_output_row. Throws azflow::Error naming the file and dataset.
nlohmann::json read_output_sum(const std::filesystem::path& file);

}  // namespace azflow::daemon
