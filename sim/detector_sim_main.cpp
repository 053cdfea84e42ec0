// azflow-detector-sim: serves an EIGER-layout HDF5 series as DECTRIS Stream V2 (or, with
// --format v1, legacy stream v1) on a bound ZeroMQ PUSH socket (see sim/detector_sim.hpp).
// Prints "azflow-detector-sim: bound ENDPOINT" on stdout once the socket is bound, and a summary
// on stderr at the end. SIGINT/SIGTERM stop it.
// With --rest HOST:PORT it waits for SIMPLON commands instead (sim/simplon_rest.hpp), prints
// "azflow-detector-sim: REST on HOST:PORT" once listening, and runs until SIGINT/SIGTERM.
// Exit codes: 0 every series sent (--rest: stopped by a signal), 1 error or stopped early,
// 2 usage.

#include <csignal>
#include <cstdio>
#include <ctime>
#include <stop_token>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "base/error.hpp"
#include "sim/detector_sim.hpp"
#include "sim/simplon_rest.hpp"

namespace {

/// Waits for SIGINT or SIGTERM (blocked in every thread) and requests `source` to stop; ends
/// when its own stop token is requested.
void watch_signals(std::stop_token own, std::stop_source source) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const timespec tick{0, 100'000'000};
  while (!own.stop_requested()) {
    if (sigtimedwait(&set, nullptr, &tick) > 0) {
      source.request_stop();
      return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app(
      "azflow-detector-sim: serve an EIGER-layout HDF5 series as DECTRIS Stream V2 (CBOR) or "
      "legacy stream v1 on a bound ZeroMQ PUSH socket, each frame's stored chunk sent unchanged");
  app.set_version_flag("--version", std::string("azflow-detector-sim ") + AZFLOW_VERSION);
  azflow::sim::SimOptions o;
  std::size_t frames = 0;
  app.add_option("master", o.master, "EIGER master file (or plain HDF5 file) to serve")->required();
  app.add_option("--endpoint", o.endpoint,
                 "ZeroMQ endpoint to bind, e.g. tcp://*:31001 (DECTRIS' port), tcp://127.0.0.1:*, "
                 "ipc:///tmp/sim")
      ->capture_default_str();
  app.add_option("--rate", o.rate_fps, "images per second; 0 = as fast as the socket takes")
      ->capture_default_str();
  app.add_option("--series", o.series, "number of consecutive series to send")
      ->capture_default_str();
  app.add_option("--frames", frames, "send only the first N frames of each series (0 = all)");
  app.add_option("--channel", o.channel, "channel name in the data map")->capture_default_str();
  std::string format = "stream2";
  app.add_option("--format", format, "stream2 (DECTRIS Stream V2, CBOR) or v1 (legacy stream v1)")
      ->check(CLI::IsMember({"stream2", "v1"}))
      ->capture_default_str();
  app.add_option("--first-series-id", o.first_series_id, "series_id of the first series")
      ->capture_default_str();
  std::string rest;
  app.add_option("--rest", rest,
                 "serve the SIMPLON 1.8 REST subset on HOST:PORT (port 0 = any) and send a series "
                 "per command: PUT /detector/api/1.8.0/command/arm (start message), .../trigger "
                 "(the images), .../disarm (end message); GET/PUT /stream/api/1.8.0/config/mode "
                 "(enabled or disabled); runs until SIGINT/SIGTERM (--series is ignored)");
  CLI11_PARSE(app, argc, argv);
  if (frames > 0) o.frames = frames;
  if (format == "v1") o.format = azflow::sim::StreamFormat::kV1;

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::stop_source stop;
  std::jthread signals(watch_signals, stop);
  try {
    const auto bound = [](const std::string& ep) {
      std::printf("azflow-detector-sim: bound %s\n", ep.c_str());
      std::fflush(stdout);
    };
    const auto listening = [](const std::string& address) {
      std::printf("azflow-detector-sim: REST on %s\n", address.c_str());
      std::fflush(stdout);
    };
    const azflow::sim::SimStats s =
        rest.empty() ? azflow::sim::serve(o, stop.get_token(), bound)
                     : azflow::sim::serve_rest(o, rest, stop.get_token(), bound, listening);
    std::fprintf(stderr,
                 "azflow-detector-sim: sent %zu series, %zu images (%zu stored chunks unchanged), "
                 "%.1f MB in %.3f s (%.1f images/s)\n",
                 s.series, s.images, s.compressed_passthrough, static_cast<double>(s.bytes) / 1e6,
                 s.seconds, s.seconds > 0 ? static_cast<double>(s.images) / s.seconds : 0.0);
    return !rest.empty() || s.series == o.series ? 0 : 1;
  } catch (const azflow::Error& e) {
    std::fprintf(stderr, "azflow-detector-sim: %s\n", e.what());
    return e.category() == azflow::ErrorCategory::kConfig ? 2 : 1;
  }
}
