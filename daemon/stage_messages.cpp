#include "daemon/stage_messages.hpp"

#include <stdexcept>
#include <type_traits>

#include "base/error.hpp"

namespace azflow::daemon {

namespace {

using nlohmann::json;

/// A field that is missing or of the wrong type (turned into one azflow::Error by parse()).
struct BadMessage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Field `name` of `j` as a T; throws BadMessage naming it if missing or of the wrong type.
template <typename T>
T field(const json& j, const char* name) {
  const auto it = j.find(name);
  if (it == j.end()) throw BadMessage(std::string("missing field '") + name + "'");
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw BadMessage(std::string("field '") + name + "' has the wrong type");
  }
}

/// Field `name` of `j` as a T, or `fallback` when absent.
template <typename T>
T field_or(const json& j, const char* name, T fallback) {
  return j.contains(name) ? field<T>(j, name) : fallback;
}

json encode(const StageHello& m) {
  return {{"role", m.role}, {"worker", m.worker}, {"pid", m.pid}, {"device", m.device}};
}
json encode(const StageHeartbeat& m) {
  return {{"role", m.role},
          {"worker", m.worker},
          {"pid", m.pid},
          {"device", m.device},
          {"counters", to_json(m.counters)}};
}
json encode(const JobConfigRequest& m) { return {{"job", m.job}}; }
json encode(const PlanAxes& m) { return {{"job", m.job}, {"axes", m.axes}}; }
json encode(const ShardRead& m) { return {{"job", m.job}, {"shard", m.shard}, {"msg", m.msg}}; }
json encode(const StreamStarted& m) {
  json j = {{"job", m.job}, {"shard", m.shard}, {"poni_text", m.poni_text}, {"error", m.error}};
  if (m.series) j["series"] = to_json(*m.series);
  return j;
}
json encode(const StreamProgress& m) { return {{"job", m.job}, {"counts", m.counts}}; }
json encode(const ShardWork& m) {
  json j = {{"job", m.job},
            {"shard", m.shard},
            {"datasets", m.datasets},
            {"dataset_path", m.dataset_path},
            {"msg", m.msg}};
  if (m.offset != 0) j["offset"] = m.offset;
  if (m.follow_timeout_s) j["follow_timeout_s"] = *m.follow_timeout_s;
  if (m.stream) {
    j["stream"] = {{"endpoint", m.stream->endpoint}, {"format", m.stream->format},
                   {"channel", m.stream->channel},   {"idle_timeout_s", m.stream->idle_timeout_s},
                   {"job_dir", m.stream->job_dir},   {"save_raw", m.stream->save_raw}};
    if (m.stream->resume) j["stream"]["resume"] = to_json(*m.stream->resume);
  }
  if (m.frames.empty()) {
    j["first"] = m.first;
    j["count"] = m.count;
  } else {
    j["frames"] = m.frames;
  }
  return j;
}
json encode(const JobConfigReply& m) {
  if (m.spec) return {{"job", m.job}, {"spec", to_json(*m.spec)}};
  return {{"job", m.job}, {"error", m.error}};
}
json encode(const CancelJob& m) { return {{"job", m.job}}; }
json encode(const RetryJob& m) { return {{"job", m.job}}; }
json encode(const JobEnd& m) { return {{"job", m.job}}; }
json encode(const StopStage&) { return json::object(); }

void decode(const json& j, StageHello& m) {
  m.role = field<std::string>(j, "role");
  m.worker = field<std::size_t>(j, "worker");
  m.pid = field<std::int64_t>(j, "pid");
  m.device = field_or<std::string>(j, "device", "cpu");
}
void decode(const json& j, StageCounters& c) {
  c.frames_in = field_or<std::uint64_t>(j, "frames_in", 0);
  c.frames_out = field_or<std::uint64_t>(j, "frames_out", 0);
  c.failed = field_or<std::uint64_t>(j, "failed", 0);
  c.busy_s = field_or<double>(j, "busy_s", 0.0);
}
void decode(const json& j, StageHeartbeat& m) {
  m.role = field<std::string>(j, "role");
  m.worker = field<std::size_t>(j, "worker");
  m.pid = field<std::int64_t>(j, "pid");
  m.device = field_or<std::string>(j, "device", "cpu");
  if (j.contains("counters")) decode(field<json>(j, "counters"), m.counters);
}
void decode(const json& j, JobConfigRequest& m) { m.job = field<std::int64_t>(j, "job"); }
void decode(const json& j, PlanAxes& m) {
  m.job = field<std::int64_t>(j, "job");
  m.axes = field<json>(j, "axes");
}
void decode(const json& j, ShardRead& m) {
  m.job = field<std::int64_t>(j, "job");
  m.shard = field_or<std::int64_t>(j, "shard", 0);
  m.msg = field_or<std::int64_t>(j, "msg", 0);
}
void decode(const json& j, StreamStarted& m) {
  m.job = field<std::int64_t>(j, "job");
  m.shard = field_or<std::int64_t>(j, "shard", 0);
  m.poni_text = field_or<std::string>(j, "poni_text", "");
  m.error = field_or<std::string>(j, "error", "");
  if (j.contains("series")) {
    try {
      m.series = stream_series_from_json(field<json>(j, "series"), "series.");
    } catch (const std::exception& e) {
      throw BadMessage(e.what());
    }
  }
  if (!m.series && m.error.empty()) throw BadMessage("neither 'series' nor 'error'");
}
void decode(const json& j, StreamProgress& m) {
  m.job = field<std::int64_t>(j, "job");
  m.counts = field<json>(j, "counts");
  if (!m.counts.is_object()) throw BadMessage("field 'counts' is not an object");
}
void decode(const json& j, ShardWork& m) {
  m.job = field<std::int64_t>(j, "job");
  m.shard = field<std::int64_t>(j, "shard");
  m.datasets = field<std::vector<std::string>>(j, "datasets");
  m.dataset_path = field_or<std::string>(j, "dataset_path", "");
  m.msg = field_or<std::int64_t>(j, "msg", 0);
  m.offset = field_or<std::int64_t>(j, "offset", 0);
  if (j.contains("follow_timeout_s")) m.follow_timeout_s = field<double>(j, "follow_timeout_s");
  if (j.contains("stream")) {
    const json s = field<json>(j, "stream");
    m.stream = StreamWork{field<std::string>(s, "endpoint"),
                          field<std::string>(s, "format"),
                          field_or<std::string>(s, "channel", ""),
                          field_or<double>(s, "idle_timeout_s", 60.0),
                          field<std::string>(s, "job_dir"),
                          field_or<std::string>(s, "save_raw", ""),
                          std::nullopt};
    if (s.contains("resume")) {
      m.stream->resume = stream_series_from_json(field<json>(s, "resume"), "stream.resume.");
    }
  }
  if (j.contains("frames")) {
    m.frames = field<std::vector<std::int64_t>>(j, "frames");
  } else {
    m.first = field<std::int64_t>(j, "first");
    m.count = field<std::int64_t>(j, "count");
  }
}
void decode(const json& j, JobConfigReply& m) {
  m.job = field<std::int64_t>(j, "job");
  if (j.contains("spec")) {
    try {  // a spec that does not parse is the reply's error, for the stage to report
      m.spec = job_spec_from_json(field<json>(j, "spec"), "spec.");
    } catch (const std::exception& e) {
      m.error = std::string("the job's spec does not parse: ") + e.what();
    }
  } else {
    m.error = field_or<std::string>(j, "error", "no spec");
  }
}
void decode(const json& j, CancelJob& m) { m.job = field<std::int64_t>(j, "job"); }
void decode(const json& j, RetryJob& m) { m.job = field<std::int64_t>(j, "job"); }
void decode(const json& j, JobEnd& m) { m.job = field<std::int64_t>(j, "job"); }
void decode(const json&, StopStage&) {}

template <typename Variant>
json encode_variant(const Variant& message) {
  return std::visit(
      [](const auto& m) {
        json j = encode(m);
        j["type"] = std::string(std::decay_t<decltype(m)>::kType);
        return j;
      },
      message);
}

/// The alternative of `Variant` whose kType is `type`, decoded from `j` (a compile-time table of
/// the variant's alternatives: no chain of string comparisons to keep in step with the structs).
template <typename Variant, std::size_t I = 0>
Variant decode_variant(const json& j, const std::string& type) {
  if constexpr (I == std::variant_size_v<Variant>) {
    throw BadMessage("unknown message type '" + type + "'");
  } else {
    using T = std::variant_alternative_t<I, Variant>;
    if (type != T::kType) return decode_variant<Variant, I + 1>(j, type);
    T message;
    try {
      decode(j, message);
    } catch (const std::exception& e) {  // BadMessage, or FieldError from job_spec_from_json
      throw BadMessage("'" + type + "' message: " + e.what());
    }
    return message;
  }
}

template <typename Variant>
Variant parse(const json& j, const char* direction) {
  if (!j.is_object()) {
    throw Error(ErrorCategory::kInput, std::string(direction) + " message is not a JSON object");
  }
  try {
    return decode_variant<Variant>(j, field<std::string>(j, "type"));
  } catch (const BadMessage& e) {
    throw Error(ErrorCategory::kInput, std::string(direction) + " " + e.what());
  }
}

}  // namespace

json to_json(const StageCounters& c) {
  return {{"frames_in", c.frames_in},
          {"frames_out", c.frames_out},
          {"failed", c.failed},
          {"busy_s", c.busy_s}};
}

json to_json(const StageMessage& message) { return encode_variant(message); }
json to_json(const DaemonMessage& message) { return encode_variant(message); }

StageMessage parse_stage_message(const json& j) { return parse<StageMessage>(j, "stage"); }
DaemonMessage parse_daemon_message(const json& j) { return parse<DaemonMessage>(j, "daemon"); }

std::int64_t job_of(const DaemonMessage& message) {
  return std::visit(
      [](const auto& m) -> std::int64_t {
        if constexpr (requires { m.job; }) {
          return m.job;
        } else {
          return 0;
        }
      },
      message);
}

}  // namespace azflow::daemon
