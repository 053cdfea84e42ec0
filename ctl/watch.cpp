// `azflowctl watch JOB`: the frames of a job as the daemon publishes them on its live PUB
// endpoint (docs/protocol.md, "Live results"): multipart [topic "job.<id>", header JSON,
// I float32[bins], sigma float32[bins or 0]].
#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <thread>

#include <zmq_addon.hpp>

#include "ctl/commands.hpp"
#include "ctl/exit_codes.hpp"

namespace azflow::ctl {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

/// One frame's line: index, ok/failed, sum and maximum of I (finite bins) and where the maximum
/// lies, or the failure reason.
json summarise(const json& header, const zmq::message_t& intensity, const json& radial) {
  json line = {{"job", header.value("job", 0)},
               {"frame", header.value("frame", 0)},
               {"status", header.value("status", "?")}};
  if (header.value("status", "") != "ok") {
    line["reason"] = header.value("reason", "");
    return line;
  }
  const std::size_t n = intensity.size() / sizeof(float);
  double sum = 0, max = -std::numeric_limits<double>::infinity();
  std::size_t max_bin = 0, finite = 0;
  for (std::size_t i = 0; i < n; ++i) {
    float v = 0;
    std::memcpy(&v, static_cast<const char*>(intensity.data()) + i * sizeof(float), sizeof v);
    if (!std::isfinite(v)) continue;
    ++finite;
    sum += v;
    if (v > max) {
      max = v;
      max_bin = i;
    }
  }
  line["bins"] = n;
  line["sum"] = sum;
  line["max"] = finite > 0 ? json(max) : json(nullptr);
  line["max_bin"] = finite > 0 ? json(max_bin) : json(nullptr);
  if (finite > 0 && radial.is_array() && !radial.empty()) {
    line["max_at"] = radial[max_bin % radial.size()];
    line["unit"] = header.value("unit", "");
  }
  return line;
}

void print_line(const json& line, bool as_json) {
  if (as_json) {
    std::cout << line.dump() << "\n" << std::flush;
    return;
  }
  std::cout << "frame " << line.value("frame", 0) << " " << line.value("status", "?");
  if (line.value("status", "") != "ok") {
    std::cout << ": " << line.value("reason", "") << "\n" << std::flush;
    return;
  }
  char text[160];
  std::snprintf(
      text, sizeof text, "  sum %.6g  max %.6g at bin %lld", line.value("sum", 0.0),
      line["max"].is_number() ? line["max"].get<double>() : std::nan(""),
      static_cast<long long>(line["max_bin"].is_number() ? line["max_bin"].get<long long>() : -1));
  std::cout << text;
  if (line.contains("max_at")) {
    std::snprintf(text, sizeof text, " (%s = %.5g)", line.value("unit", "").c_str(),
                  line["max_at"].get<double>());
    std::cout << text;
  }
  std::cout << "\n" << std::flush;
}

}  // namespace

int run_watch(ControlClient& client, std::int64_t job, const std::string& live_endpoint,
              bool as_json) {
  std::string endpoint = live_endpoint;
  if (endpoint.empty()) {
    endpoint = client.call({{"verb", "status"}})
                   .value("daemon", json::object())
                   .value("live_endpoint", std::string());
    if (endpoint.empty()) {
      throw Error(ErrorCategory::kConfig,
                  "azflowd did not report a live endpoint: give --live-endpoint");
    }
  }
  zmq::context_t context(1);
  zmq::socket_t sub(context, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  const std::string topic = "job." + std::to_string(job);
  sub.set(zmq::sockopt::subscribe, topic);  // a prefix: job.1 also gets job.12, filtered below
  sub.connect(endpoint);
  std::cerr << "watching job " << job << " on " << endpoint << std::endl;
  json radial;
  json state = client.call({{"verb", "status"}, {"job_id", job}}).at("job");
  std::optional<Clock::time_point> final_since;
  auto last_poll = Clock::now();
  while (true) {
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) > 0) {
      std::vector<zmq::message_t> parts;
      if (zmq::recv_multipart(sub, std::back_inserter(parts), zmq::recv_flags::dontwait) &&
          parts.size() >= 3 && parts[0].to_string_view() == topic) {
        const json header = json::parse(parts[1].to_string_view(), nullptr, false);
        if (header.is_object()) {
          if (header.contains("radial")) radial = header["radial"];
          print_line(summarise(header, parts[2], radial), as_json);
          if (final_since) final_since = Clock::now();  // still arriving: keep draining
        }
      }
      continue;
    }
    const auto now = Clock::now();
    if (final_since) {
      if (now - *final_since > std::chrono::milliseconds(500)) break;
      continue;
    }
    if (now - last_poll >= std::chrono::milliseconds(300)) {
      last_poll = now;
      state = client.call({{"verb", "status"}, {"job_id", job}}).at("job");
      if (is_final_state(state.value("state", ""))) final_since = now;
    }
  }
  const std::string final_state = state.value("state", "?");
  std::cerr << "job " << job << " " << final_state << ": " << state.value("frames_done", 0) << "/"
            << state.value("frames_total", 0) << " frames, " << state.value("frames_failed", 0)
            << " failed" << std::endl;
  return exit_code_for(final_state);
}

}  // namespace azflow::ctl
