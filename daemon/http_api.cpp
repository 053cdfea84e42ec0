#include "daemon/http_api.hpp"

#include <hdf5.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include <httplib.h>

#include "base/error.hpp"
#include "daemon/json_text.hpp"
#include "stages/reduce/hdf5_handle.hpp"
#include "stages/reduce/shard_file.hpp"

namespace azflow::daemon {

namespace {

using httplib::Request;
using httplib::Response;
using nlohmann::json;
namespace h5 = reduce::h5;

constexpr std::chrono::milliseconds kEventWait{500};
constexpr std::chrono::milliseconds kJobPoll{1000};

#if !defined(H5_HAVE_THREADSAFE)
#warning "libhdf5 is not thread-safe: the HTTP threads' reads of job outputs may race the writer"
#endif

// ---------------------------------------------------------------- responses

void send_json(Response& res, int status, const json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(dump_escaped(body), "application/json");
}

void send_error(Response& res, int status, const std::string& field, const std::string& message) {
  send_json(res, status, {{"error", {{"field", field}, {"message", message}}}});
}

/// The HTTP status for a control-protocol error.
int status_of(const json& error) {
  const std::string field = error.value("field", "");
  const std::string message = error.value("message", "");
  if (message.starts_with("no job") || message.starts_with("no such job")) return 404;
  if (message.find("shutting down") != std::string::npos ||
      message.find("draining") != std::string::npos)
    return 503;
  if (field.empty() && message.starts_with("internal error")) return 500;
  return 400;
}

/// Runs a control-protocol verb on the main loop; its result, or nullopt with `res` answered
/// (503 when the main loop does not answer in time, 4xx with the error's field otherwise).
std::optional<json> run_verb(HttpApiContext& ctx, Response& res, json request) {
  request["v"] = 1;
  const auto response = ctx.bridge->call(request, ctx.bridge_timeout);
  if (!response) {
    send_error(res, 503, "",
               "azflowd did not answer within " + std::to_string(ctx.bridge_timeout.count()) +
                   " ms (busy or stopping); try again");
    return std::nullopt;
  }
  if (!response->value("ok", false)) {
    const json error = response->value("error", json::object());
    send_error(res, status_of(error), error.value("field", ""), error.value("message", ""));
    return std::nullopt;
  }
  return response->value("result", json::object());
}

std::optional<std::int64_t> job_id_of(const Request& req, Response& res) {
  try {
    const std::int64_t id = std::stoll(req.matches[1].str());
    if (id > 0) return id;
  } catch (const std::exception&) {
  }
  send_error(res, 400, "job_id",
             "expected a job id (an integer > 0), got '" + req.matches[1].str() + "'");
  return std::nullopt;
}

/// Whether the client connects from this host (127.0.0.0/8, ::1, or either mapped into IPv6).
bool from_loopback(const Request& req) {
  const std::string& a = req.remote_addr;
  return a.starts_with("127.") || a == "::1" || a.starts_with("::ffff:127.");
}

bool authorized(const HttpApiContext& ctx, const Request& req, Response& res) {
  const std::string header = req.get_header_value("Authorization");
  const std::string expected = "Bearer " + ctx.token;
  unsigned diff = header.size() == expected.size() ? 0u : 1u;
  for (std::size_t i = 0; i < std::min(header.size(), expected.size()); ++i) {
    diff |= static_cast<unsigned>(header[i] ^ expected[i]);  // constant time for equal lengths
  }
  if (diff == 0) return true;
  res.set_header("WWW-Authenticate", "Bearer");
  send_error(res, 401, "Authorization",
             header.empty() ? "required: 'Bearer TOKEN' with the token in <state_dir>/http.token"
                            : "wrong token (see <state_dir>/http.token)");
  return false;
}

// ---------------------------------------------------------------- job objects and axes

/// The protocol's job object with the HTTP API's additions: "id", "dataset" (the first),
/// "frames_published" (frames the reducer published since azflowd started: counts frames, not
/// shards) and "axes_url".
json http_job(const HttpApiContext& ctx, json job) {
  const std::int64_t id = job.value("job_id", std::int64_t{0});
  job["id"] = id;
  const json datasets = job.value("datasets", json::array());
  job["dataset"] = datasets.empty() ? json(nullptr) : datasets.front();
  job["frames_published"] = ctx.live->frames_seen(id);
  job["axes_url"] = "/api/v1/jobs/" + std::to_string(id) + "/axes";
  return job;
}

/// The job's plan axes (<state_dir>/jobs/<id>/layout.json); nullopt before its first frame.
std::optional<json> read_axes(const HttpApiContext& ctx, std::int64_t id) {
  std::ifstream in(ctx.state_dir / "jobs" / std::to_string(id) / "layout.json");
  if (!in) return std::nullopt;
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("radial_centers")) return std::nullopt;
  return j;
}

bool two_d(const json& axes) { return !axes.value("azimuthal_centers", json::array()).empty(); }

/// `values` (npt_azim x npt_rad, row-major) as rows of npt_rad for a 2D job, flat for 1D.
template <typename T>
json shaped(const std::vector<T>& values, const json& axes) {
  if (!two_d(axes)) return values;
  const std::size_t nrad = std::max<std::size_t>(1, axes.at("radial_centers").size());
  json rows = json::array();
  for (std::size_t first = 0; first < values.size(); first += nrad) {
    const auto end =
        values.begin() + static_cast<std::ptrdiff_t>(std::min(values.size(), first + nrad));
    rows.push_back(std::vector<T>(values.begin() + static_cast<std::ptrdiff_t>(first), end));
  }
  return rows;
}

json shaped_json(const json& values, const json& axes) {
  if (values.is_null()) return nullptr;
  return shaped(values.get<std::vector<double>>(), axes);
}

/// Axes fields of a frame or sum answer: unit, radial, and azimuthal (2D).
void add_axes(json& out, const json& axes) {
  out["unit"] = axes.value("unit", "");
  out["radial"] = axes.at("radial_centers");
  if (two_d(axes)) out["azimuthal"] = axes.at("azimuthal_centers");
}

bool is_final_state(const std::string& s) {
  return s == "succeeded" || s == "warning" || s == "failed" || s == "cancelled";
}

/// The job's output file to read frames from: its output, or "<output>.partial" for a job that
/// ended unfinished; nullopt for xy outputs or when neither exists.
std::optional<std::filesystem::path> output_file(const json& job) {
  const std::string format = job.value("spec", json::object()).value("format", "nexus");
  if (format != "nexus" && format != "nxazint") return std::nullopt;
  const std::filesystem::path out = job.value("output", "");
  std::error_code ec;
  if (!out.empty() && std::filesystem::is_regular_file(out, ec)) return out;
  const std::filesystem::path partial = out.string() + ".partial";
  if (!out.empty() && std::filesystem::is_regular_file(partial, ec)) return partial;
  return std::nullopt;
}

/// Frame `frame` of a running job from its committed shard files (<state_dir>/jobs/<id>/
/// shard-<n>.done; the highest shard holding it wins, as in the output). nullopt if none holds it
/// (not committed yet, or the files were removed meanwhile).
std::optional<LiveFrame> committed_frame(const HttpApiContext& ctx, std::int64_t id,
                                         std::int64_t frame) {
  const std::filesystem::path dir = ctx.state_dir / "jobs" / std::to_string(id);
  std::optional<LiveFrame> found;
  std::int64_t found_shard = -1;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".done") continue;
    try {
      reduce::ShardFileReader reader(entry.path());
      const reduce::ShardFileHeader& h = reader.header();
      if (frame < h.first_frame || frame >= h.first_frame + h.frame_count) continue;
      if (h.shard_id < found_shard) continue;
      reduce::ShardFrame record;
      reader.read(static_cast<std::size_t>(frame - h.first_frame), record);
      found = LiveFrame{record.frame, record.ok, record.reason, std::move(record.intensity),
                        std::move(record.sigma)};
      found_shard = h.shard_id;
    } catch (const Error&) {  // removed or rewritten meanwhile: not served from this file
    }
  }
  return found;
}

// ---------------------------------------------------------------- routes

void get_jobs(HttpApiContext& ctx, const Request& req, Response& res) {
  json request{{"verb", "list"}, {"all", true}};
  if (req.has_param("state")) request["state"] = req.get_param_value("state");
  if (req.has_param("all")) {
    const std::string all = req.get_param_value("all");
    if (all != "true" && all != "false" && all != "1" && all != "0") {
      return send_error(res, 400, "all", "expected true or false, got '" + all + "'");
    }
    request["all"] = all == "true" || all == "1";
  }
  const auto result = run_verb(ctx, res, request);
  if (!result) return;
  json jobs = json::array();
  for (const json& job : result->value("jobs", json::array())) jobs.push_back(http_job(ctx, job));
  send_json(res, 200, {{"jobs", jobs}});
}

void get_job(HttpApiContext& ctx, const Request& req, Response& res) {
  const auto id = job_id_of(req, res);
  if (!id) return;
  const auto result = run_verb(ctx, res, {{"verb", "status"}, {"job_id", *id}});
  if (result) send_json(res, 200, {{"job", http_job(ctx, result->value("job", json::object()))}});
}

void get_axes(HttpApiContext& ctx, const Request& req, Response& res) {
  const auto id = job_id_of(req, res);
  if (!id) return;
  if (!run_verb(ctx, res, {{"verb", "status"}, {"job_id", *id}})) return;
  const auto axes = read_axes(ctx, *id);
  if (!axes) {
    return send_error(res, 404, "job_id",
                      "job " + std::to_string(*id) + " has no axes yet (no frame integrated)");
  }
  json out{{"job", *id}};
  add_axes(out, *axes);
  out["radial_edges"] = axes->value("radial_edges", json::array());
  if (two_d(*axes)) out["azimuthal_edges"] = axes->value("azimuthal_edges", json::array());
  send_json(res, 200, out);
}

json live_frame_json(std::int64_t id, const LiveFrame& f, const json& axes,
                     const char* source = "live") {
  json out{{"job", id}, {"frame", f.frame}, {"row", f.frame}, {"status", f.ok ? "ok" : "failed"}};
  add_axes(out, axes);
  out["I"] = shaped(f.I, axes);
  out["sigma"] = f.sigma.empty() ? json(nullptr) : shaped(f.sigma, axes);
  if (!f.ok) out["reason"] = f.reason;
  out["source"] = source;
  return out;
}

void get_frame(HttpApiContext& ctx, const Request& req, Response& res) {
  const auto id = job_id_of(req, res);
  if (!id) return;
  std::optional<std::int64_t> k;
  if (req.matches[2].str() != "latest") {
    try {
      k = std::stoll(req.matches[2].str());
    } catch (const std::exception&) {
      return send_error(res, 400, "frame", "expected a frame index or 'latest'");
    }
  }
  const auto status = run_verb(ctx, res, {{"verb", "status"}, {"job_id", *id}});
  if (!status) return;
  const json job = status->value("job", json::object());
  const std::string name = "job " + std::to_string(*id);
  const auto axes = read_axes(ctx, *id);
  if (!axes) return send_error(res, 404, "frame", name + " has no integrated frame yet");
  const std::int64_t total = job.value("frames_total", std::int64_t{0});
  if (k && (*k < 0 || *k >= total)) {
    return send_error(res, 404, "frame",
                      "frame " + std::to_string(*k) + " is out of range (" + name + " has " +
                          std::to_string(total) + " frames)");
  }
  const bool final = is_final_state(job.value("state", ""));
  const auto file = final ? output_file(job) : std::nullopt;
  if (file) {
    try {
      json row = read_output_row(*file, k.value_or(total - 1));
      json out{{"job", *id}, {"frame", row.at("frame")}, {"status", "ok"}};
      add_axes(out, *axes);
      out["I"] = shaped_json(row.at("I"), *axes);
      out["sigma"] = shaped_json(row.at("sigma"), *axes);
      out["source"] = "output";
      out["row"] = k.value_or(total - 1);
      return send_json(res, 200, out);
    } catch (const Error& e) {
      return send_error(res, 500, "frame", e.what());
    }
  }
  if (const auto cached = ctx.live->frame(*id, k)) {
    return send_json(res, 200, live_frame_json(*id, *cached, *axes));
  }
  if (k && !final) {
    if (const auto committed = committed_frame(ctx, *id, *k)) {
      return send_json(res, 200, live_frame_json(*id, *committed, *axes, "shard"));
    }
  }
  const std::string which = k ? "frame " + std::to_string(*k) : std::string("no frame");
  send_error(res, 404, "frame",
             which + " of " + name +
                 (final ? " is not available (no NeXus output file to read it from)"
                        : " is neither among the newest " + std::to_string(kLiveFramesPerJob) +
                              " frames published nor in a committed shard yet"));
}

void get_sum(HttpApiContext& ctx, const Request& req, Response& res) {
  const auto id = job_id_of(req, res);
  if (!id) return;
  const auto status = run_verb(ctx, res, {{"verb", "status"}, {"job_id", *id}});
  if (!status) return;
  const json job = status->value("job", json::object());
  const auto axes = read_axes(ctx, *id);
  const std::string name = "job " + std::to_string(*id);
  if (!axes) return send_error(res, 404, "job_id", name + " has no integrated frame yet");
  json out{{"job", *id}};
  add_axes(out, *axes);
  const auto file = is_final_state(job.value("state", "")) ? output_file(job) : std::nullopt;
  json sum;
  if (file) {
    try {
      sum = read_output_sum(*file);
      out["source"] = "output";
    } catch (const Error& e) {
      return send_error(res, 500, "job_id", e.what());
    }
  } else if (const auto mean = ctx.live->mean(*id)) {
    sum = *mean;
    out["source"] = "live";
  } else {
    return send_error(res, 404, "job_id", name + ": no frame published since azflowd started");
  }
  out["I"] = shaped_json(sum.at("I"), *axes);
  out["sigma"] = shaped_json(sum.at("sigma"), *axes);
  out["frames"] = sum.at("frames");
  send_json(res, 200, out);
}

void get_plain(HttpApiContext& ctx, Response& res, const std::string& verb) {
  if (const auto result = run_verb(ctx, res, {{"verb", verb}})) send_json(res, 200, *result);
}

void post_enqueue(HttpApiContext& ctx, const Request& req, Response& res) {
  if (!authorized(ctx, req, res)) return;
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) return send_error(res, 400, "", "request body is not valid JSON");
  if (!body.is_object()) {
    return send_error(res, 400, "", std::string("expected a JSON object, got ") + body.type_name());
  }
  for (const char* reserved : {"v", "verb"}) {
    if (body.contains(reserved)) {
      return send_error(res, 400, reserved,
                        "not part of an HTTP enqueue body (the URL is the verb)");
    }
  }
  body["verb"] = "enqueue";
  if (const auto result = run_verb(ctx, res, body)) send_json(res, 200, *result);
}

void post_cancel(HttpApiContext& ctx, const Request& req, Response& res) {
  if (!authorized(ctx, req, res)) return;
  const auto id = job_id_of(req, res);
  if (!id) return;
  const auto result = run_verb(ctx, res, {{"verb", "cancel"}, {"job_ids", {*id}}});
  if (!result) return;
  const json refused = result->value("not_cancelled", json::array());
  if (refused.empty()) return send_json(res, 200, *result);
  const std::string reason = refused.front().value("reason", "");
  send_json(res, reason == "no such job" ? 404 : 409,
            {{"error", {{"field", "job_id"}, {"message", reason}}}, {"result", *result}});
}

void post_retry(HttpApiContext& ctx, const Request& req, Response& res) {
  if (!authorized(ctx, req, res)) return;
  const auto id = job_id_of(req, res);
  if (!id) return;
  if (const auto result = run_verb(ctx, res, {{"verb", "retry"}, {"job_id", *id}})) {
    send_json(res, 200, *result);
  }
}

std::string sse(std::uint64_t seq, const std::string& name, const json& data) {
  return "id: " + std::to_string(seq) + "\nevent: " + name + "\ndata: " + dump_escaped(data) +
         "\n\n";
}

/// One event stream: first "jobs" (every job, as GET /api/v1/jobs), then "frame" events as the
/// live feed brings them and "job" events when a job's state or frames_integrated changes.
void get_events(HttpApiContext& ctx, const Request&, Response& res) {
  if (ctx.event_clients.fetch_add(1) >= kMaxEventClients) {
    ctx.event_clients.fetch_sub(1);
    return send_error(
        res, 503, "",
        "too many event streams open (at most " + std::to_string(kMaxEventClients) + ")");
  }
  struct Stream {
    std::uint64_t seq = 0;
    std::map<std::int64_t, std::pair<std::string, std::int64_t>> jobs;  // state, frames_integrated
    std::chrono::steady_clock::time_point polled{};
    bool started = false;
  };
  auto stream = std::make_shared<Stream>();
  stream->seq = ctx.live->latest_seq();
  res.set_header("Cache-Control", "no-store");
  res.set_chunked_content_provider(
      "text/event-stream",
      [&ctx, stream](std::size_t, httplib::DataSink& sink) {
        if (ctx.stopping) {
          sink.done();
          return true;
        }
        std::string out;
        const auto now = std::chrono::steady_clock::now();
        if (now - stream->polled >= kJobPoll) {
          stream->polled = now;
          const auto reply =
              ctx.bridge->call({{"v", 1}, {"verb", "list"}, {"all", true}}, ctx.bridge_timeout);
          if (reply && reply->value("ok", false)) {
            json all = json::array();
            for (const json& job : reply->at("result").value("jobs", json::array())) {
              json j = http_job(ctx, job);
              const auto id = j.value("job_id", std::int64_t{0});
              const std::pair<std::string, std::int64_t> now_state{
                  j.value("state", ""), j.value("frames_integrated", std::int64_t{0})};
              if (stream->started && stream->jobs[id] != now_state) out += sse(0, "job", j);
              stream->jobs[id] = now_state;
              all.push_back(std::move(j));
            }
            if (!stream->started) out += sse(0, "jobs", {{"jobs", all}});
            stream->started = true;
          }
        }
        for (const LiveEvent& e : ctx.live->events_after(stream->seq, kEventWait)) {
          stream->seq = e.seq;
          out += sse(e.seq, e.name, e.data);
        }
        if (out.empty()) out = ": keep-alive\n\n";
        return sink.write(out.data(), out.size());
      },
      [&ctx](bool) { ctx.event_clients.fetch_sub(1); });
}

void get_index(Response& res) {
  send_json(res, 200,
            {{"api", "azflowd HTTP API v1 (docs/http.md)"},
             {"endpoints",
              {"GET /api/v1/jobs", "GET /api/v1/jobs/ID", "GET /api/v1/jobs/ID/axes",
               "GET /api/v1/jobs/ID/frames/K", "GET /api/v1/jobs/ID/frames/latest",
               "GET /api/v1/jobs/ID/sum", "GET /api/v1/workers", "GET /api/v1/peers",
               "GET /api/v1/stats", "GET /api/v1/events", "POST /api/v1/jobs",
               "POST /api/v1/jobs/ID/cancel", "POST /api/v1/jobs/ID/retry"}}});
}

// ---------------------------------------------------------------- HDF5 reads

struct Array {
  std::vector<float> values;
  std::vector<hsize_t> dims;  // of the dataset
};

std::string nxdata_group(hid_t file, const std::filesystem::path& path) {
  for (const char* group : {"/entry/integrate", "/entry/data"}) {
    if (H5Lexists(file, "/entry", H5P_DEFAULT) > 0 && H5Lexists(file, group, H5P_DEFAULT) > 0 &&
        H5Lexists(file, (std::string(group) + "/I").c_str(), H5P_DEFAULT) > 0) {
      return group;
    }
  }
  throw Error(ErrorCategory::kInput,
              path.string() + ": no /entry/integrate/I or /entry/data/I (not an azflow output)");
}

bool has_dataset(hid_t file, const std::string& path) {
  return H5Lexists(file, path.c_str(), H5P_DEFAULT) > 0;
}

/// Dataset `name` as float32: whole, or only its first-axis index `row`.
Array read_array(hid_t file, const std::string& name, const std::filesystem::path& path,
                 std::optional<hsize_t> row = std::nullopt) {
  const std::string what = path.string() + " (" + name + ")";
  const h5::Handle ds = h5::check(H5Dopen2(file, name.c_str(), H5P_DEFAULT), "cannot open " + what);
  const h5::Handle space = h5::check(H5Dget_space(ds.get()), "no dataspace: " + what);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank < 0 || rank > 3) throw Error(ErrorCategory::kInput, what + ": unexpected rank");
  Array a;
  a.dims.resize(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), a.dims.data(), nullptr);
  std::vector<hsize_t> count = a.dims;
  if (row) {
    if (rank == 0 || *row >= a.dims[0]) {
      throw Error(ErrorCategory::kInput, what + ": row " + std::to_string(*row) + " out of range");
    }
    std::vector<hsize_t> start(count.size(), 0);
    start[0] = *row;
    count[0] = 1;
    h5::check_status(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr,
                                         count.data(), nullptr),
                     "cannot select a row of " + what);
  }
  hsize_t n = 1;
  for (const hsize_t c : count) n *= c;
  a.values.resize(static_cast<std::size_t>(n));
  const h5::Handle memory =
      h5::check(H5Screate_simple(1, &n, nullptr), "cannot make a memory space for " + what);
  h5::check_status(
      H5Dread(ds.get(), H5T_NATIVE_FLOAT, memory.get(), space.get(), H5P_DEFAULT, a.values.data()),
      "cannot read " + what);
  return a;
}

h5::Handle open_file(const std::filesystem::path& path) {
  h5::silence_errors();
  return h5::check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT),
                   "cannot open " + path.string());
}

json floats_or_null(const std::vector<float>& v) {
  if (v.empty()) return nullptr;
  return std::vector<double>(v.begin(), v.end());
}

}  // namespace

json read_output_row(const std::filesystem::path& path, std::int64_t row) {
  const h5::Handle file = open_file(path);
  const std::string group = nxdata_group(file.get(), path);
  if (row < 0) throw Error(ErrorCategory::kInput, path.string() + ": negative row");
  const Array I = read_array(file.get(), group + "/I", path, static_cast<hsize_t>(row));
  std::vector<float> sigma;
  if (has_dataset(file.get(), group + "/I_errors")) {
    sigma = read_array(file.get(), group + "/I_errors", path, static_cast<hsize_t>(row)).values;
  }
  // frame_index is int64: read through float would lose precision beyond 2^24; read exactly
  std::int64_t frame = row;
  if (has_dataset(file.get(), group + "/frame_index")) {
    const h5::Handle ds = h5::check(
        H5Dopen2(file.get(), (group + "/frame_index").c_str(), H5P_DEFAULT), "frame_index");
    const h5::Handle space = h5::check(H5Dget_space(ds.get()), "frame_index space");
    const hsize_t start = static_cast<hsize_t>(row), one = 1;
    h5::check_status(
        H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &start, nullptr, &one, nullptr),
        "frame_index row");
    const h5::Handle memory = h5::check(H5Screate_simple(1, &one, nullptr), "memory space");
    h5::check_status(
        H5Dread(ds.get(), H5T_NATIVE_INT64, memory.get(), space.get(), H5P_DEFAULT, &frame),
        "cannot read " + path.string() + " (" + group + "/frame_index)");
  }
  return {{"frame", frame}, {"I", floats_or_null(I.values)}, {"sigma", floats_or_null(sigma)}};
}

json read_output_sum(const std::filesystem::path& path) {
  const h5::Handle file = open_file(path);
  const std::string group = nxdata_group(file.get(), path);
  if (has_dataset(file.get(), "/entry/sum/I")) {
    const Array I = read_array(file.get(), "/entry/sum/I", path);
    std::vector<float> sigma;
    if (has_dataset(file.get(), "/entry/sum/I_errors")) {
      sigma = read_array(file.get(), "/entry/sum/I_errors", path).values;
    }
    std::int64_t frames = 0;
    const Array all = read_array(file.get(), group + "/I", path);
    const std::size_t per_row = all.dims.empty() || all.dims[0] == 0
                                    ? 0
                                    : all.values.size() / static_cast<std::size_t>(all.dims[0]);
    for (std::size_t r = 0; per_row > 0 && r < all.dims[0]; ++r) {
      const auto begin = all.values.begin() + static_cast<std::ptrdiff_t>(r * per_row);
      frames += std::any_of(begin, begin + static_cast<std::ptrdiff_t>(per_row),
                            [](float v) { return !std::isnan(v); });
    }
    return {{"I", floats_or_null(I.values)}, {"sigma", floats_or_null(sigma)}, {"frames", frames}};
  }
  // NXazint: the mean of the rows that were written (a failed row is all NaN)
  const Array all = read_array(file.get(), group + "/I", path);
  if (all.dims.empty() || all.dims[0] == 0) {
    throw Error(ErrorCategory::kInput, path.string() + " (" + group + "/I): no rows");
  }
  const std::size_t per_row = all.values.size() / static_cast<std::size_t>(all.dims[0]);
  std::vector<double> sum(per_row, 0.0);
  std::vector<std::int64_t> count(per_row, 0);
  std::int64_t frames = 0;
  for (std::size_t r = 0; r < all.dims[0]; ++r) {
    bool any = false;
    for (std::size_t i = 0; i < per_row; ++i) {
      const float v = all.values[r * per_row + i];
      if (std::isnan(v)) continue;
      sum[i] += v;
      ++count[i];
      any = true;
    }
    frames += any;
  }
  for (std::size_t i = 0; i < per_row; ++i)
    sum[i] = count[i] > 0 ? sum[i] / static_cast<double>(count[i]) : NAN;
  return {{"I", sum}, {"sigma", nullptr}, {"frames", frames}};
}

void add_api_routes(httplib::Server& server, HttpApiContext& ctx) {
  HttpApiContext* c = &ctx;
  server.Get("/api/v1", [](const Request&, Response& res) { get_index(res); });
  server.Get("/api/v1/jobs", [c](const Request& q, Response& r) { get_jobs(*c, q, r); });
  server.Get(R"(/api/v1/jobs/([^/]+))", [c](const Request& q, Response& r) { get_job(*c, q, r); });
  server.Get(R"(/api/v1/jobs/([^/]+)/axes)",
             [c](const Request& q, Response& r) { get_axes(*c, q, r); });
  server.Get(R"(/api/v1/jobs/([^/]+)/frames/([^/]+))",
             [c](const Request& q, Response& r) { get_frame(*c, q, r); });
  server.Get(R"(/api/v1/jobs/([^/]+)/sum)",
             [c](const Request& q, Response& r) { get_sum(*c, q, r); });
  server.Get("/api/v1/workers", [c](const Request&, Response& r) { get_plain(*c, r, "workers"); });
  server.Get("/api/v1/peers", [c](const Request&, Response& r) { get_plain(*c, r, "peers"); });
  server.Get("/api/v1/stats", [c](const Request&, Response& r) { get_plain(*c, r, "stats"); });
  server.Get("/api/v1/events", [c](const Request& q, Response& r) { get_events(*c, q, r); });
  server.Post("/api/v1/jobs", [c](const Request& q, Response& r) { post_enqueue(*c, q, r); });
  server.Post(R"(/api/v1/jobs/([^/]+)/cancel)",
              [c](const Request& q, Response& r) { post_cancel(*c, q, r); });
  server.Post(R"(/api/v1/jobs/([^/]+)/retry)",
              [c](const Request& q, Response& r) { post_retry(*c, q, r); });
  // Reads need no token from this host; from any other host every request needs it.
  server.set_pre_routing_handler([c](const Request& q, Response& r) {
    if (from_loopback(q) || authorized(*c, q, r))
      return httplib::Server::HandlerResponse::Unhandled;
    return httplib::Server::HandlerResponse::Handled;
  });
  server.set_error_handler([](const Request& req, Response& res) {
    if (!res.body.empty()) return;
    const std::string message = res.status == 404   ? "no such endpoint: " + req.path
                                : res.status == 413 ? "request body too large (limit 1 MiB)"
                                                    : "request refused";
    send_error(res, res.status, "", message);
  });
  server.set_exception_handler([](const Request&, Response& res, std::exception_ptr ep) {
    std::string message = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      message += std::string(": ") + e.what();
    } catch (...) {
    }
    send_error(res, 500, "", message);
  });
}

}  // namespace azflow::daemon
