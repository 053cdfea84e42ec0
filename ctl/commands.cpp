#include "ctl/commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <set>
#include <thread>

#include "cli/progress.hpp"
#include "ctl/exit_codes.hpp"

namespace azflow::ctl {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

/// A job's frames integrated so far, exact to the frame ("frames_integrated"; a daemon without
/// it counts only done shards in "frames_done").
std::int64_t frames_integrated(const json& job) {
  return job.value("frames_integrated", job.value("frames_done", std::int64_t{0}));
}

std::string text_or_dash(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  return v.dump();
}

std::string ids_text(const json& ids) {
  std::string out;
  for (const json& id : ids) out += (out.empty() ? "" : ",") + id.dump();
  return out.empty() ? "-" : out;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  return cli::format_clock(seconds);
}

std::string number_or_dash(const json& v, const char* format) {
  if (!v.is_number()) return "-";
  char text[32];
  std::snprintf(text, sizeof text, format, v.get<double>());
  return text;
}

void print_settings(const json& spec) {
  if (!spec.is_object()) return;
  std::string line;
  const json settings = spec.value("settings", json::object());
  for (const auto& [key, value] : settings.items()) {
    line += key + "=" + (value.is_string() ? value.get<std::string>() : value.dump()) + " ";
  }
  std::cout << "  settings: " << line << "\n";
  for (const char* key : {"mask_path", "dark_path", "flat_path", "poni_path"}) {
    const std::string v = spec.value(key, "");
    if (!v.empty()) std::cout << "  " << key << ": " << v << "\n";
  }
}

/// A stream job's input and receive counters (status "stream"; null before the source sent any).
void print_stream(const json& job) {
  const json stream = job.value("spec", json::object()).value("stream", json());
  if (!stream.is_object()) return;
  std::cout << "  stream:   " << stream.value("endpoint", "?") << " ("
            << stream.value("format", "?") << ")";
  const json series = stream.value("series", json());
  if (series.is_object()) {
    std::cout << ", series " << series.value("series_id", 0) << " '"
              << series.value("series_unique_id", "") << "', " << series.value("images", 0)
              << " images";
  } else {
    std::cout << ", waiting for a start message";
  }
  std::cout << "\n";
  const json c = job.value("stream", json());
  if (!c.is_object()) return;
  std::cout << "  received: " << c.value("received", 0) << " images, " << c.value("missing", 0)
            << " missing, " << c.value("duplicate", 0) << " duplicate, "
            << c.value("out_of_range", 0) << " out of range, " << c.value("invalid", 0)
            << " invalid messages, "
            << number_or_dash(c.value("receive_rate_per_s", json()), "%.1f") << " images/s"
            << (c.value("ended", false) ? ", ended" : "") << "\n";
  if (!c.value("first_invalid", std::string()).empty()) {
    std::cout << "  first invalid message: " << c["first_invalid"].get<std::string>() << "\n";
  }
}

void print_job(const json& job) {
  std::cout << "job " << job.value("job_id", 0) << ": " << job.value("state", "?") << "\n";
  std::cout << "  datasets: ";
  for (const auto& d : job.value("datasets", json::array()))
    std::cout << d.get<std::string>() << " ";
  if (job.value("datasets", json::array()).empty()) std::cout << "- (a stream job)";
  std::cout << "\n  output:   " << text_or_dash(job.value("output", json())) << "\n";
  std::cout << "  mode:     " << job.value("mode", "?")
            << "   priority: " << job.value("priority", 0)
            << "   after: " << ids_text(job.value("after", json::array()));
  if (!job.value("waiting_for", json::array()).empty()) {
    std::cout << " (waiting for " << ids_text(job["waiting_for"]) << ")";
  }
  std::cout << "\n  frames:   " << frames_integrated(job) << "/" << job.value("frames_total", 0)
            << " done, " << job.value("frames_failed", 0) << " failed\n";
  std::cout << "  rate:     " << number_or_dash(job.value("frames_per_s", json()), "%.1f")
            << " frames/s, elapsed "
            << format_duration(job.value("elapsed_s", json()).is_number()
                                   ? job["elapsed_s"].get<double>()
                                   : -1.0)
            << ", ETA "
            << format_duration(job.value("eta_s", json()).is_number() ? job["eta_s"].get<double>()
                                                                      : -1.0)
            << "\n";
  if (job.contains("shards")) {
    const json& s = job["shards"];
    std::cout << "  shards:   " << s.value("done", 0) << "/" << s.value("total", 0) << " done, "
              << s.value("running", 0) << " running, " << s.value("queued", 0) << " queued\n";
  }
  print_stream(job);
  print_settings(job.value("spec", json()));
  std::cout << "  created:  " << text_or_dash(job.value("created", json())) << "\n";
  std::cout << "  started:  " << text_or_dash(job.value("started", json())) << "\n";
  std::cout << "  finished: " << text_or_dash(job.value("finished", json())) << "\n";
  if (!job.value("error", std::string()).empty()) {
    std::cout << "  error:    " << job["error"].get<std::string>() << "\n";
  }
  const json errors = job.value("frame_errors", json::array());
  if (!errors.empty()) {
    std::cout << "  frame errors (first " << errors.size() << "):\n";
    for (const json& e : errors) {
      std::cout << "    frame " << e.value("frame", 0) << ": " << e.value("reason", "") << "\n";
    }
  }
}

/// Bytes as "18.0 MiB" (binary units).
std::string bytes_text(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char text[32];
  std::snprintf(text, sizeof text, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return text;
}

/// `status` without a job: a header (version, instance, pid, uptime, endpoints, active jobs),
/// then one table row per stage process and per ring, and the reducer's counters; no JSON.
void print_daemon_status(const std::string& endpoint, const json& d) {
  std::cout << "azflowd " << d.value("version", "?") << " at " << endpoint << "\n"
            << "  instance " << d.value("instance", "?") << ", pid " << d.value("pid", 0) << ", up "
            << format_duration(d.value("uptime_s", json()).is_number() ? d["uptime_s"].get<double>()
                                                                       : -1.0)
            << (d.value("draining", false) ? ", draining (no new jobs)" : "") << "\n"
            << "  active jobs: " << ids_text(d.value("active_jobs", json::array())) << "\n"
            << "  live:        " << text_or_dash(d.value("live_endpoint", json())) << "\n"
            << "  outputs:     " << text_or_dash(d.value("output_dir", json())) << "\n";
  // keys this version does not lay out (a newer daemon's): one "key: value" line each
  static const std::set<std::string> shown = {
      "version",       "instance",   "pid",    "uptime_s", "draining", "active_jobs",
      "live_endpoint", "output_dir", "stages", "rings",    "reducer"};
  for (const auto& [key, value] : d.items()) {
    if (shown.count(key) == 0 && !value.is_structured()) {
      std::cout << "  " << key << ": " << text_or_dash(value) << "\n";
    }
  }
  const json stages = d.value("stages", json::array());
  if (!stages.empty()) {
    std::printf("\n%-11s %6s %8s %-8s %-5s %8s %9s %s\n", "STAGE", "WORKER", "PID", "DEVICE",
                "STATE", "RESTARTS", "LAST EXIT", "HEARTBEAT");
    for (const json& s : stages) {
      const json exit = s.value("last_exit", json());
      std::printf(
          "%-11s %6lld %8lld %-8s %-5s %8lld %9s %s\n", s.value("role", "?").c_str(),
          static_cast<long long>(s.value("worker", 0)), static_cast<long long>(s.value("pid", 0)),
          s.value("device", "-").c_str(), s.value("alive", false) ? "up" : "down",
          static_cast<long long>(s.value("restarts", 0)),
          exit.is_null() ? "-" : text_or_dash(exit).c_str(),
          (number_or_dash(s.value("seconds_since_heartbeat", json()), "%.1f") + " s ago").c_str());
    }
  }
  const json rings = d.value("rings", json::object());
  if (!rings.empty()) {
    std::printf("\n%-28s %6s %10s %6s %7s %12s %12s %9s\n", "RING", "SLOTS", "SLOT SIZE", "READY",
                "IN USE", "PUSHED", "POPPED", "RECLAIMED");
    for (const auto& [name, r] : rings.items()) {
      std::printf("%-28s %6lld %10s %6lld %7lld %12lld %12lld %9lld\n", name.c_str(),
                  static_cast<long long>(r.value("capacity", 0)),
                  bytes_text(r.value("slot_bytes", 0.0)).c_str(),
                  static_cast<long long>(r.value("ready", 0)),
                  static_cast<long long>(r.value("in_use", 0)),
                  static_cast<long long>(r.value("pushed", 0)),
                  static_cast<long long>(r.value("popped", 0)),
                  static_cast<long long>(r.value("reclaimed", 0)));
    }
  }
  const json reducer = d.value("reducer", json::object());
  if (!reducer.empty()) {
    std::cout << "\nreducer: " << reducer.value("frames_written", 0) << " frames written, "
              << reducer.value("frames_failed", 0) << " failed, "
              << reducer.value("shards_committed", 0) << " shards committed, "
              << reducer.value("open_shards", 0) << " open; ignored "
              << reducer.value("duplicates_ignored", 0) << " duplicates, "
              << reducer.value("not_open_ignored", 0) << " rows of closed shards\n";
  }
  std::fflush(stdout);
}

int severity(const std::string& state) {
  if (state == "succeeded") return 0;
  if (state == "warning") return 1;
  if (state == "cancelled") return 2;
  return 3;
}

/// Progress of waited-for jobs: rate measured from the first observation of each.
class WaitProgress {
 public:
  WaitProgress(std::vector<std::int64_t> jobs, bool terminal)
      : jobs_(std::move(jobs)), terminal_(terminal), seen_(jobs_.size()) {}

  void update(const std::vector<json>& states) {
    if (terminal_ && drawn_) std::fprintf(stderr, "\033[%zuA", jobs_.size());
    for (std::size_t i = 0; i < jobs_.size(); ++i) update_one(i, states[i]);
    drawn_ = true;
    std::fflush(stderr);
  }

 private:
  struct Seen {
    std::optional<std::pair<Clock::time_point, std::int64_t>> first;
    Clock::time_point last_line{};
    std::int64_t last_done = -1;
    std::string last_state;
    std::string final_bar;  ///< the bar drawn when the job became final, redrawn unchanged
  };

  void update_one(std::size_t i, const json& j) {
    const auto now = Clock::now();
    const std::int64_t done = frames_integrated(j);
    const std::int64_t total = j.value("frames_total", 0);
    const std::int64_t failed = j.value("frames_failed", 0);
    const std::string state = j.value("state", "?");
    Seen& seen = seen_[i];
    if (!seen.first) seen.first = std::pair(now, done);
    const double dt = std::chrono::duration<double>(now - seen.first->first).count();
    double rate = dt > 0.5 ? static_cast<double>(done - seen.first->second) / dt : 0.0;
    // Nothing measured here yet (first look, or a job already final): the daemon's own rate.
    if (rate == 0.0 && j.contains("frames_per_s") && j["frames_per_s"].is_number()) {
      rate = j["frames_per_s"].get<double>();
    }
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : -1.0;
    if (terminal_ && !seen.final_bar.empty()) {
      std::fputs(seen.final_bar.c_str(), stderr);
      return;
    }
    if (terminal_) {
      constexpr int kWidth = 30;
      const double fraction =
          total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 0;
      std::string bar(static_cast<std::size_t>(fraction * kWidth), '#');
      bar.resize(kWidth, '.');
      char line[256];
      std::snprintf(line, sizeof line,
                    "\r\033[Kjob %lld [%s] %lld/%lld frames (%lld failed)  %.1f frames/s  ETA %s  "
                    "%s\n",
                    static_cast<long long>(jobs_[i]), bar.c_str(), static_cast<long long>(done),
                    static_cast<long long>(total), static_cast<long long>(failed), rate,
                    format_duration(eta).c_str(), state.c_str());
      std::fputs(line, stderr);
      if (is_final_state(state)) seen.final_bar = line;
      return;
    }
    if (done == seen.last_done && state == seen.last_state) return;
    if (now - seen.last_line < std::chrono::seconds(1) && state == seen.last_state) return;
    std::fprintf(stderr, "job %lld %s: %lld/%lld frames, %lld failed, %.1f frames/s, ETA %s\n",
                 static_cast<long long>(jobs_[i]), state.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total), static_cast<long long>(failed), rate,
                 format_duration(eta).c_str());
    seen.last_line = now;
    seen.last_done = done;
    seen.last_state = state;
  }

  std::vector<std::int64_t> jobs_;
  bool terminal_;
  std::vector<Seen> seen_;
  bool drawn_ = false;
};

json job_of(ControlClient& client, std::int64_t id) {
  return client.call({{"verb", "status"}, {"job_id", id}}).at("job");
}

}  // namespace

int exit_code_for(const std::string& state) {
  if (state == "succeeded") return kExitOk;
  if (state == "warning") return kExitWarning;
  if (state == "cancelled") return kExitCancelled;
  return kExitFailed;
}

bool is_final_state(const std::string& state) {
  return state == "succeeded" || state == "warning" || state == "failed" || state == "cancelled";
}

int run_enqueue_jobs(ControlClient& client, const EnqueueArgs& args, bool as_json,
                     const std::vector<PlannedJob>& jobs) {
  json created = json::array();
  std::string failure;
  for (const PlannedJob& job : jobs) {
    json request = {{"verb", "enqueue"}, {"spec", daemon::to_json(job.spec)}};
    if (args.priority != 0) request["priority"] = args.priority;
    if (!args.after.empty()) request["after"] = args.after;
    json result;
    try {
      result = client.call(request);
    } catch (const RequestRefused& e) {
      failure = e.what();
      break;
    }
    json sweep = json::object();
    for (const auto& [key, value] : job.sweep) sweep[key] = value;
    created.push_back({{"job_id", result.at("job_id")},
                       {"state", result.value("state", "queued")},
                       {"frames_total", result.value("frames_total", 0)},
                       {"datasets", job.spec.datasets},
                       {"output", job.spec.output_path},
                       {"sweep", sweep}});
    if (result.contains("error")) created.back()["error"] = result["error"];
  }
  const bool plain = jobs.size() == 1 && args.sweeps.empty();
  if (as_json) {
    json out = {{"jobs", created}};
    if (!failure.empty()) out["error"] = failure;
    if (!(args.wait && failure.empty())) std::cout << out.dump(2) << "\n";
  } else if (plain && created.size() == 1) {
    std::cout << created[0]["job_id"].get<std::int64_t>() << std::endl;
  } else if (!created.empty()) {
    std::printf("%6s  %-9s  %-40s  %-30s  %s\n", "ID", "STATE", "OUTPUT", "DATASET", "SWEEP");
    for (const json& c : created) {
      std::string sweep;
      const json& values = c["sweep"];
      for (const auto& [key, value] : values.items()) {
        sweep += key + "=" + value.get<std::string>() + " ";
      }
      const json& datasets = c["datasets"];
      std::string dataset = datasets.empty() ? "-" : datasets[0].get<std::string>();
      if (datasets.size() > 1) dataset += " (+" + std::to_string(datasets.size() - 1) + ")";
      std::printf("%6lld  %-9s  %-40s  %-30s  %s\n",
                  static_cast<long long>(c["job_id"].get<std::int64_t>()),
                  c["state"].get<std::string>().c_str(), text_or_dash(c["output"]).c_str(),
                  dataset.c_str(), sweep.empty() ? "-" : sweep.c_str());
    }
    std::fflush(stdout);
  }
  if (!failure.empty()) {
    std::cerr << "azflowctl: " << failure;
    if (jobs.size() > 1) {
      std::cerr << " (" << created.size() << " of " << jobs.size() << " jobs were enqueued before)";
    }
    std::cerr << "\n";
    return kExitRefused;
  }
  if (!args.wait) return kExitOk;
  std::vector<std::int64_t> ids;
  for (const json& c : created) ids.push_back(c["job_id"].get<std::int64_t>());
  return run_wait(client, ids, std::chrono::milliseconds(250), std::chrono::milliseconds(0),
                  as_json);
}

int run_status(ControlClient& client, std::optional<std::int64_t> job, bool as_json) {
  json request = {{"verb", "status"}};
  if (job) request["job_id"] = *job;
  const json result = client.call(request);
  if (as_json) {
    std::cout << result.dump(2) << "\n";
  } else if (result.contains("job")) {
    print_job(result["job"]);
  } else {
    print_daemon_status(client.endpoint(), result.value("daemon", result));
  }
  return kExitOk;
}

int run_list(ControlClient& client, const std::string& state, bool all, bool as_json) {
  json request = {{"verb", "list"}, {"all", all}};
  if (!state.empty()) request["state"] = state;
  const json result = client.call(request);
  if (as_json) {
    std::cout << result.dump(2) << "\n";
    return kExitOk;
  }
  std::printf("%6s  %-9s  %4s  %17s  %7s  %9s  %-24s  %s\n", "ID", "STATE", "PRIO", "FRAMES",
              "FAILED", "FRAMES/S", "CREATED", "DATASET");
  for (const json& j : result.value("jobs", json::array())) {
    const json datasets = j.value("datasets", json::array());
    std::string first = datasets.empty() ? "-" : datasets[0].get<std::string>();
    if (datasets.size() > 1) first += " (+" + std::to_string(datasets.size() - 1) + ")";
    const std::string frames =
        std::to_string(frames_integrated(j)) + "/" + std::to_string(j.value("frames_total", 0));
    std::printf("%6lld  %-9s  %4lld  %17s  %7lld  %9s  %-24s  %s\n",
                static_cast<long long>(j.value("job_id", 0)), j.value("state", "?").c_str(),
                static_cast<long long>(j.value("priority", 0)), frames.c_str(),
                static_cast<long long>(j.value("frames_failed", 0)),
                number_or_dash(j.value("frames_per_s", json()), "%.1f").c_str(),
                j.value("created", "-").c_str(), first.c_str());
  }
  std::fflush(stdout);
  return kExitOk;
}

int run_cancel(ControlClient& client, const std::vector<std::int64_t>& jobs, bool as_json) {
  const json result = client.call({{"verb", "cancel"}, {"job_ids", jobs}});
  const json refused = result.value("not_cancelled", json::array());
  if (as_json) {
    std::cout << result.dump(2) << "\n";
  } else {
    for (const json& id : result.value("cancelled", json::array())) {
      std::cout << "cancelled job " << id.get<std::int64_t>() << "\n";
    }
  }
  for (const json& r : refused) {
    std::cerr << "azflowctl: job " << r.value("job_id", 0)
              << " not cancelled: " << r.value("reason", "?") << "\n";
  }
  return refused.empty() ? kExitOk : kExitRefused;
}

int run_retry(ControlClient& client, std::int64_t job, bool as_json) {
  const json result = client.call({{"verb", "retry"}, {"job_id", job}});
  if (as_json) {
    std::cout << result.dump(2) << "\n";
  } else {
    std::cout << "job " << job << " queued again: " << result.value("frames_retried", 0)
              << " failed frames, " << result.value("shards_queued", 0) << " shards to run\n";
  }
  return kExitOk;
}

int run_workers(ControlClient& client, bool as_json) {
  const json result = client.call({{"verb", "workers"}});
  if (as_json) {
    std::cout << result.dump(2) << "\n";
    return kExitOk;
  }
  if (!result.value("pipeline_started", false)) {
    std::cout << "(no stage processes yet: they start with the first job)\n";
  }
  std::printf("%-10s  %6s  %8s  %-8s  %-8s  %9s  %5s  %-26s  %s\n", "ROLE", "WORKER", "PID",
              "DEVICE", "STATE", "FRAMES/S", "BUSY", "RING", "FILL");
  for (const json& w : result.value("workers", json::array())) {
    const std::string busy = w.value("busy_fraction", json()).is_number()
                                 ? std::to_string(static_cast<int>(
                                       std::lround(w["busy_fraction"].get<double>() * 100))) +
                                       "%"
                                 : "-";
    const std::string fill =
        w.value("ring_fill", json()).is_number()
            ? std::to_string(static_cast<int>(std::lround(w["ring_fill"].get<double>() * 100))) +
                  "%"
            : "-";
    std::printf("%-10s  %6lld  %8lld  %-8s  %-8s  %9s  %5s  %-26s  %s\n",
                w.value("role", "?").c_str(), static_cast<long long>(w.value("worker", 0)),
                static_cast<long long>(w.value("pid", 0)), w.value("device", "cpu").c_str(),
                w.value("state", "?").c_str(),
                number_or_dash(w.value("frames_per_s", json()), "%.1f").c_str(), busy.c_str(),
                text_or_dash(w.value("ring", json())).c_str(), fill.c_str());
  }
  std::fflush(stdout);
  return kExitOk;
}

int run_stats(ControlClient& client, bool as_json) {
  const json r = client.call({{"verb", "stats"}});
  if (as_json) {
    std::cout << r.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << "azflowd at " << client.endpoint() << "\n"
            << "  uptime:          " << format_duration(r.value("uptime_s", 0.0)) << "\n"
            << "  draining:        " << (r.value("draining", false) ? "yes" : "no") << "\n"
            << "  jobs:           ";
  const json jobs = r.value("jobs", json::object());
  for (const auto& [state, count] : jobs.items()) {
    std::cout << " " << state << " " << count.dump();
  }
  std::cout << "\n  frames (all jobs): " << r.value("frames_done", 0) << " done, "
            << r.value("frames_failed", 0) << " failed\n"
            << "  since start:     " << r.value("frames_since_start", 0) << " frames, "
            << r.value("frames_failed_since_start", 0) << " failed\n"
            << "  frames/s:        "
            << number_or_dash(r.value("frames_per_s_recent", json()), "%.1f") << " recent (10 s), "
            << number_or_dash(r.value("frames_per_s_overall", json()), "%.1f") << " overall\n";
  for (const json& ring : r.value("rings", json::array())) {
    std::printf("  ring %-26s %4lld slots x %lld B, %lld ready, %lld in use (%.0f%% full)\n",
                ring.value("name", "?").c_str(), static_cast<long long>(ring.value("capacity", 0)),
                static_cast<long long>(ring.value("slot_bytes", 0)),
                static_cast<long long>(ring.value("ready", 0)),
                static_cast<long long>(ring.value("in_use", 0)), 100 * ring.value("fill", 0.0));
  }
  std::fflush(stdout);
  return kExitOk;
}

int run_config(ControlClient& client, bool as_json) {
  const json r = client.call({{"verb", "config"}});
  if (as_json) {
    std::cout << r.value("config", json::object()).dump(2) << "\n";
  } else {
    std::cout << r.value("text", "");
  }
  return kExitOk;
}

int run_undrain(ControlClient& client, bool as_json) {
  const json r = client.call({{"verb", "undrain"}});
  if (as_json) {
    std::cout << r.dump(2) << "\n";
  } else {
    std::cout << "azflowd at " << client.endpoint() << " accepts jobs again ("
              << r.value("active_jobs", json::array()).size() << " active)\n";
  }
  return kExitOk;
}

int run_drain(ControlClient& client, bool wait, bool then_shutdown, bool as_json) {
  json r = client.call({{"verb", "drain"}});
  if (!as_json) {
    std::cout << "azflowd at " << client.endpoint() << " is draining: no new jobs; "
              << r.value("active_jobs", json::array()).size() << " accepted jobs still run ("
              << ids_text(r.value("active_jobs", json::array())) << ")\n"
              << std::flush;
  }
  if (wait) {
    while (client.call({{"verb", "stats"}}).value("active_jobs", 0) > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    r["active_jobs"] = json::array();
    if (!as_json) std::cout << "drained: no active jobs\n";
  }
  if (then_shutdown) {
    (void)client.call({{"verb", "shutdown"}});
    r["shutdown"] = true;
    if (!as_json) std::cout << "azflowd is shutting down\n";
  }
  if (as_json) std::cout << r.dump(2) << "\n";
  return kExitOk;
}

int run_shutdown(ControlClient& client, bool as_json) {
  const json r = client.call({{"verb", "shutdown"}});
  if (as_json) {
    std::cout << r.dump(2) << "\n";
  } else {
    std::cout << "azflowd at " << client.endpoint() << " is shutting down\n";
  }
  return kExitOk;
}

int run_wait(ControlClient& client, const std::vector<std::int64_t>& jobs,
             std::chrono::milliseconds poll_interval, std::chrono::milliseconds timeout,
             bool as_json) {
  WaitProgress progress(jobs, !as_json && ::isatty(STDERR_FILENO) != 0);
  const auto deadline = Clock::now() + timeout;
  while (true) {
    std::vector<json> states;
    for (const std::int64_t id : jobs) states.push_back(job_of(client, id));
    progress.update(states);
    const bool all_final = std::all_of(states.begin(), states.end(), [](const json& j) {
      return is_final_state(j.value("state", ""));
    });
    const bool timed_out = !all_final && timeout.count() > 0 && Clock::now() >= deadline;
    if (all_final || timed_out) {
      int worst = -1;
      std::string worst_state = "succeeded";
      for (const json& j : states) {
        const std::string state = j.value("state", "?");
        if (is_final_state(state) && severity(state) > worst) {
          worst = severity(state);
          worst_state = state;
        }
        if (as_json) continue;
        std::cout << "job " << j.value("job_id", 0) << " " << state << ": "
                  << j.value("frames_done", 0) << "/" << j.value("frames_total", 0) << " frames, "
                  << j.value("frames_failed", 0) << " failed";
        if (!j.value("error", std::string()).empty())
          std::cout << " (" << j["error"].get<std::string>() << ")";
        std::cout << "\n";
      }
      if (as_json) std::cout << json{{"jobs", states}}.dump(2) << "\n";
      std::cout << std::flush;
      if (timed_out) {
        std::cerr << "azflowctl: jobs still unfinished after --timeout\n";
        return kExitTimeout;
      }
      return exit_code_for(worst_state);
    }
    std::this_thread::sleep_for(poll_interval);
  }
}

}  // namespace azflow::ctl
