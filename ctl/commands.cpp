#include "ctl/commands.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "ctl/exit_codes.hpp"

namespace azflow::ctl {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

/// Options of `azflow integrate` that make no sense for a daemon job (or are replaced here).
constexpr const char* kLocalOnlyOptions[] = {"input",     "--output",    "--frames",
                                             "--threads", "--overwrite", "--quiet"};

std::string absolute(const std::string& path) {
  if (path.empty()) return path;
  return std::filesystem::absolute(path).lexically_normal().string();
}

/// An image spec "FILE[::/dataset]" with FILE made absolute.
std::string absolute_image(const std::string& spec) {
  if (spec.empty()) return spec;
  const std::size_t sep = spec.find("::");
  if (sep == std::string::npos) return absolute(spec);
  return absolute(spec.substr(0, sep)) + spec.substr(sep);
}

std::string read_text(const std::string& path, std::string_view option) {
  std::ifstream in(path);
  if (!in) {
    throw Error(ErrorCategory::kConfig, std::string(option) + ": cannot read '" + path + "'");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string text_or_dash(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  return v.dump();
}

void print_job(const json& job) {
  std::cout << "job " << job.value("job_id", 0) << ": " << job.value("state", "?") << "\n";
  std::cout << "  datasets: ";
  for (const auto& d : job.value("datasets", json::array()))
    std::cout << d.get<std::string>() << " ";
  std::cout << "\n  output:   " << text_or_dash(job.value("output", json())) << "\n";
  std::cout << "  mode:     " << job.value("mode", "?") << "\n";
  std::cout << "  frames:   " << job.value("frames_done", 0) << "/" << job.value("frames_total", 0)
            << " done, " << job.value("frames_failed", 0) << " failed\n";
  if (job.contains("shards")) {
    const json& s = job["shards"];
    std::cout << "  shards:   " << s.value("done", 0) << "/" << s.value("total", 0) << " done, "
              << s.value("running", 0) << " running, " << s.value("queued", 0) << " queued\n";
  }
  std::cout << "  created:  " << text_or_dash(job.value("created", json())) << "\n";
  std::cout << "  started:  " << text_or_dash(job.value("started", json())) << "\n";
  std::cout << "  finished: " << text_or_dash(job.value("finished", json())) << "\n";
  if (!job.value("error", std::string()).empty()) {
    std::cout << "  error:    " << job["error"].get<std::string>() << "\n";
  }
}

void print_object(const json& object, const std::string& indent) {
  for (const auto& [key, value] : object.items()) {
    if (value.is_object()) {
      std::cout << indent << key << ":\n";
      print_object(value, indent + "  ");
    } else {
      std::cout << indent << key << ": " << text_or_dash(value) << "\n";
    }
  }
}

int exit_code_for(const std::string& state) {
  if (state == "succeeded") return kExitOk;
  if (state == "warning") return kExitWarning;
  if (state == "cancelled") return kExitCancelled;
  return kExitFailed;
}

bool is_final_state(const std::string& state) {
  return state == "succeeded" || state == "warning" || state == "failed" || state == "cancelled";
}

std::string format_eta(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto s = static_cast<long>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof text, "%ld:%02ld", s / 60, s % 60);
  return text;
}

/// Progress of a waited-for job: rate measured from the first observation.
class WaitProgress {
 public:
  WaitProgress(std::int64_t job, bool terminal) : job_(job), terminal_(terminal) {}

  void update(const json& j) {
    const auto now = Clock::now();
    const std::int64_t done = j.value("frames_done", 0);
    const std::int64_t total = j.value("frames_total", 0);
    const std::string state = j.value("state", "?");
    if (!first_) first_ = std::pair(now, done);
    const double dt = std::chrono::duration<double>(now - first_->first).count();
    const double rate = dt > 0.5 ? static_cast<double>(done - first_->second) / dt : 0.0;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : -1.0;
    if (terminal_) {
      draw_bar(state, done, total, j.value("frames_failed", 0), rate, eta);
    } else if (done != last_done_ || state != last_state_) {
      if (now - last_line_ >= std::chrono::seconds(1) || state != last_state_) {
        std::fprintf(stderr, "job %lld %s: %lld/%lld frames, %lld failed, %.1f frames/s\n",
                     static_cast<long long>(job_), state.c_str(), static_cast<long long>(done),
                     static_cast<long long>(total),
                     static_cast<long long>(j.value("frames_failed", 0)), rate);
        last_line_ = now;
        last_done_ = done;
        last_state_ = state;
      }
    }
  }

  void finish() const {
    if (terminal_) std::fputc('\n', stderr);
  }

 private:
  static void draw_bar(const std::string& state, std::int64_t done, std::int64_t total,
                       std::int64_t failed, double rate, double eta) {
    constexpr int kWidth = 30;
    const double fraction = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 0;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(kWidth, '.');
    std::fprintf(stderr, "\r[%s] %lld/%lld frames (%lld failed)  %.1f frames/s  ETA %s  %-9s",
                 bar.c_str(), static_cast<long long>(done), static_cast<long long>(total),
                 static_cast<long long>(failed), rate, format_eta(eta).c_str(), state.c_str());
    std::fflush(stderr);
  }

  std::int64_t job_;
  bool terminal_;
  std::optional<std::pair<Clock::time_point, std::int64_t>> first_;
  Clock::time_point last_line_{};
  std::int64_t last_done_ = -1;
  std::string last_state_;
};

}  // namespace

void add_enqueue_options(CLI::App& command, EnqueueArgs& args) {
  cli::add_integrate_options(command, args.integrate);
  for (const char* name : kLocalOnlyOptions) command.remove_option(command.get_option(name));
  command.add_option("datasets", args.datasets, "Eiger/NeXus master files or plain HDF5 files")
      ->required();
  command.add_option("-o,--output", args.integrate.output,
                     "output NeXus file (default: chosen by the daemon under its state directory)");
  command
      .add_option("--mode", args.mode,
                  "split: all workers share the job's frames; bulk: one dataset per worker")
      ->check(CLI::IsMember({"split", "bulk"}))
      ->capture_default_str();
  command.add_option("--nodes", args.nodes,
                     "split jobs: share with peer daemons: all, N (nodes in all) or NAME,NAME,...");
}

daemon::JobSpec make_job_spec(const EnqueueArgs& args) {
  const cli::IntegrateOptions& o = args.integrate;
  daemon::JobSpec spec;
  for (const std::string& d : args.datasets) spec.datasets.push_back(absolute(d));
  spec.dataset_path = o.dataset;
  spec.poni_path = absolute(o.poni);
  spec.poni_text = read_text(o.poni, "--poni");
  // The dtype is not known here: validate with one that has no default dummy, and let the daemon
  // apply the dtype's default (dummy_auto) exactly as `azflow integrate` does.
  spec.settings = cli::make_settings(o, DType::kFloat32);
  spec.dummy_auto = !o.no_dummy && !o.dummy;
  if (spec.dummy_auto) spec.settings.delta_dummy = o.delta_dummy;
  spec.mask_path = absolute_image(o.mask);
  spec.dark_path = absolute_image(o.dark);
  spec.flat_path = absolute_image(o.flat);
  spec.use_file_mask = !o.no_file_mask;
  spec.output_path = absolute(o.output);
  spec.mode = args.mode == "bulk" ? daemon::JobSpec::Mode::kBulk : daemon::JobSpec::Mode::kSplit;
  if (!args.nodes.empty()) spec.nodes = daemon::parse_node_selection(args.nodes);
  return spec;
}

int run_enqueue(ControlClient& client, const EnqueueArgs& args) {
  const json result =
      client.call({{"verb", "enqueue"}, {"spec", daemon::to_json(make_job_spec(args))}});
  std::cout << result.at("job_id").get<std::int64_t>() << std::endl;
  return kExitOk;
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
    std::cout << "azflowd at " << client.endpoint() << "\n";
    print_object(result.value("daemon", result), "  ");
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
  std::printf("%6s  %-9s  %17s  %7s  %-24s  %s\n", "ID", "STATE", "FRAMES", "FAILED", "CREATED",
              "DATASET");
  for (const json& j : result.value("jobs", json::array())) {
    const json datasets = j.value("datasets", json::array());
    std::string first = datasets.empty() ? "-" : datasets[0].get<std::string>();
    if (datasets.size() > 1) first += " (+" + std::to_string(datasets.size() - 1) + ")";
    const std::string frames = std::to_string(j.value("frames_done", 0)) + "/" +
                               std::to_string(j.value("frames_total", 0));
    std::printf("%6lld  %-9s  %17s  %7lld  %-24s  %s\n",
                static_cast<long long>(j.value("job_id", 0)), j.value("state", "?").c_str(),
                frames.c_str(), static_cast<long long>(j.value("frames_failed", 0)),
                j.value("created", "-").c_str(), first.c_str());
  }
  std::fflush(stdout);
  return kExitOk;
}

int run_cancel(ControlClient& client, const std::vector<std::int64_t>& jobs) {
  const json result = client.call({{"verb", "cancel"}, {"job_ids", jobs}});
  for (const json& id : result.value("cancelled", json::array())) {
    std::cout << "cancelled job " << id.get<std::int64_t>() << "\n";
  }
  const json refused = result.value("not_cancelled", json::array());
  for (const json& r : refused) {
    std::cerr << "azflowctl: job " << r.value("job_id", 0)
              << " not cancelled: " << r.value("reason", "?") << "\n";
  }
  return refused.empty() ? kExitOk : kExitRefused;
}

int run_shutdown(ControlClient& client) {
  (void)client.call({{"verb", "shutdown"}});
  std::cout << "azflowd at " << client.endpoint() << " is shutting down\n";
  return kExitOk;
}

int run_wait(ControlClient& client, std::int64_t job, std::chrono::milliseconds poll_interval,
             std::chrono::milliseconds timeout) {
  WaitProgress progress(job, ::isatty(STDERR_FILENO) != 0);
  const auto deadline = Clock::now() + timeout;
  while (true) {
    const json j = client.call({{"verb", "status"}, {"job_id", job}}).at("job");
    progress.update(j);
    const std::string state = j.value("state", "?");
    if (is_final_state(state)) {
      progress.finish();
      std::cout << "job " << job << " " << state << ": " << j.value("frames_done", 0) << "/"
                << j.value("frames_total", 0) << " frames, " << j.value("frames_failed", 0)
                << " failed";
      if (!j.value("error", std::string()).empty())
        std::cout << " (" << j["error"].get<std::string>() << ")";
      std::cout << "\n" << std::flush;
      return exit_code_for(state);
    }
    if (timeout.count() > 0 && Clock::now() >= deadline) {
      progress.finish();
      std::cerr << "azflowctl: job " << job << " still " << state << " after --timeout\n";
      return kExitTimeout;
    }
    std::this_thread::sleep_for(poll_interval);
  }
}

}  // namespace azflow::ctl
