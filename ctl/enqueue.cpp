// `azflowctl enqueue`: datasets (glob patterns), the pyFAI config import, sweeps (one job per
// combination of values, as Hydra's multirun), output names, dependencies and priority.
#include <glob.h>
#include <algorithm>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "ctl/commands.hpp"
#include "ctl/exit_codes.hpp"
#include "ctl/pyfai_config.hpp"
#include "stages/source/dataset.hpp"

namespace azflow::ctl {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

/// Options of `azflow integrate` that make no sense for a daemon job (or are replaced here).
/// --empty: the job spec has no field for it yet (the daemon's shard files store rows finalized
/// with 0 in empty bins). --integrate-radial: no job spec field yet.
constexpr const char* kLocalOnlyOptions[] = {"input",   "--output", "--threads",
                                             "--quiet", "--empty",  "--integrate-radial"};
/// Options that --config may be combined with (they are not in a pyFAI file).
constexpr const char* kCompatibleWithConfig[] = {"--dataset",       "--no-file-mask", "--format",
                                                 "--overwrite",     "--frames",       "--follow",
                                                 "--follow-timeout"};

/// The sweep keys: integration option names, and where each goes in the JSON job spec.
enum class Kind { kInteger, kString, kNumber, kNumberOrNone, kDummy, kRange, kBool, kImage };
struct SweepKey {
  const char* key;
  const char* field;  ///< under "settings" unless it ends in _path (a spec field)
  Kind kind;
};
constexpr SweepKey kSweepKeys[] = {
    {"npt", "npt_rad", Kind::kInteger},
    {"npt_rad", "npt_rad", Kind::kInteger},
    {"npt_azim", "npt_azim", Kind::kInteger},
    {"unit", "unit", Kind::kString},
    {"split", "split", Kind::kString},
    {"method", "method", Kind::kString},
    {"error_model", "error_model", Kind::kString},
    {"polarization_factor", "polarization_factor", Kind::kNumberOrNone},
    {"dummy", "dummy", Kind::kDummy},
    {"delta_dummy", "delta_dummy", Kind::kNumberOrNone},
    {"normalization_factor", "normalization_factor", Kind::kNumber},
    {"radial_range", "radial_range", Kind::kRange},
    {"azimuth_range", "azimuth_range_deg", Kind::kRange},
    {"correct_solid_angle", "correct_solid_angle", Kind::kBool},
    {"mask", "mask_path", Kind::kImage},
    {"dark", "dark_path", Kind::kImage},
    {"flat", "flat_path", Kind::kImage},
};

/// A sweep key as the option is spelled (npt_rad -> npt-rad): the spelling shown in help and
/// errors; both spellings are accepted.
std::string option_spelling(std::string key) {
  std::replace(key.begin(), key.end(), '_', '-');
  return key;
}

std::string sweep_keys_text() {
  std::string out;
  for (const SweepKey& k : kSweepKeys) out += (out.empty() ? "" : ", ") + option_spelling(k.key);
  return out;
}

std::string absolute(const std::string& path) {
  if (path.empty()) return path;
  return fs::absolute(path).lexically_normal().string();
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

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t next = text.find(sep, pos);
    out.push_back(text.substr(pos, next == std::string::npos ? std::string::npos : next - pos));
    if (next == std::string::npos) return out;
    pos = next + 1;
  }
}

struct Sweep {
  const SweepKey* key;
  std::vector<std::string> values;
};

[[noreturn]] void bad_sweep(const std::string& text, const std::string& why) {
  throw Error(ErrorCategory::kConfig, "--sweep " + text + ": " + why);
}

std::vector<Sweep> parse_sweeps(const std::vector<std::string>& texts) {
  std::vector<Sweep> sweeps;
  for (const std::string& text : texts) {
    const std::size_t eq = text.find('=');
    if (eq == std::string::npos || eq == 0) bad_sweep(text, "expected KEY=V1,V2,...");
    const std::string key = text.substr(0, eq);
    const SweepKey* found = nullptr;
    for (const SweepKey& k : kSweepKeys) {
      if (option_spelling(key) == option_spelling(k.key)) found = &k;
    }
    if (found == nullptr) {
      bad_sweep(text, "unknown key '" + key + "' (sweep keys: " + sweep_keys_text() + ")");
    }
    for (const Sweep& s : sweeps) {
      if (s.key->field == std::string(found->field))
        bad_sweep(text, "key '" + key + "' swept twice");
    }
    Sweep sweep{found, split(text.substr(eq + 1), ',')};
    for (const std::string& v : sweep.values) {
      if (v.empty()) bad_sweep(text, "empty value");
    }
    sweeps.push_back(std::move(sweep));
  }
  return sweeps;
}

double number(const std::string& text, const std::string& where) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0') bad_sweep(where, "'" + text + "' is not a number");
  return v;
}

json sweep_value(const SweepKey& key, const std::string& v, const std::string& where) {
  const bool none = v == "none" || v == "null";
  switch (key.kind) {
    case Kind::kInteger: {
      char* end = nullptr;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || n < 0) {
        bad_sweep(where, "'" + v + "' is not an integer >= 0");
      }
      return static_cast<std::uint64_t>(n);
    }
    case Kind::kString:
      return v;
    case Kind::kNumber:
      return number(v, where);
    case Kind::kNumberOrNone:
      return none ? json(nullptr) : json(number(v, where));
    case Kind::kDummy:
      return none ? json(nullptr) : v == "auto" ? json("auto") : json(number(v, where));
    case Kind::kRange: {
      if (none) return nullptr;
      const auto parts = split(v, ':');
      if (parts.size() != 2) bad_sweep(where, "'" + v + "' is not a range LOW:HIGH (or none)");
      return json::array({number(parts[0], where), number(parts[1], where)});
    }
    case Kind::kBool:
      if (v == "true" || v == "yes" || v == "1") return true;
      if (v == "false" || v == "no" || v == "0") return false;
      bad_sweep(where, "'" + v + "' is not true or false");
    case Kind::kImage:
      return none ? std::string() : absolute_image(v);
  }
  return nullptr;
}

/// The spec with `key` = `value` applied and validated as the daemon will.
daemon::JobSpec apply_sweep(const daemon::JobSpec& base,
                            const std::vector<std::pair<const SweepKey*, std::string>>& combo) {
  json j = daemon::to_json(base);
  std::string where;
  for (const auto& [key, value] : combo) {
    const std::string text = std::string(key->key) + "=" + value;
    where += (where.empty() ? "" : " ") + text;
    const json v = sweep_value(*key, value, text);
    if (std::string_view(key->field).ends_with("_path")) {
      j[key->field] = v;
    } else {
      j["settings"][key->field] = v;
    }
  }
  try {
    return daemon::job_spec_from_json(j);
  } catch (const daemon::FieldError& e) {
    bad_sweep(where, e.what());
  }
}

/// Cartesian product of the sweeps, the first sweep varying slowest (one empty combination
/// without sweeps).
std::vector<std::vector<std::pair<const SweepKey*, std::string>>> combinations(
    const std::vector<Sweep>& sweeps) {
  std::vector<std::vector<std::pair<const SweepKey*, std::string>>> out{{}};
  for (const Sweep& s : sweeps) {
    std::vector<std::vector<std::pair<const SweepKey*, std::string>>> next;
    for (const auto& partial : out) {
      for (const std::string& v : s.values) {
        auto c = partial;
        c.emplace_back(s.key, v);
        next.push_back(std::move(c));
      }
    }
    out = std::move(next);
  }
  return out;
}

/// Keeps [A-Za-z0-9._+-]; drops '^'; anything else becomes '_'.
std::string safe(const std::string& text) {
  std::string out;
  for (const char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' ||
        c == '-') {
      out += c;
    } else if (c != '^') {
      out += '_';
    }
  }
  return out;
}

/// "sample" for /data/sample_master.h5 or /data/sample.nxs.
std::string stem_of(const std::string& dataset) {
  std::string stem = fs::path(dataset).stem().string();
  if (stem.ends_with("_master")) stem.resize(stem.size() - 7);
  return safe(stem.empty() ? "job" : stem);
}

std::string name_suffix(const std::vector<std::pair<const SweepKey*, std::string>>& combo) {
  std::string out;
  for (const auto& [key, value] : combo) {
    const std::string shown = key->kind == Kind::kImage && value != "none"
                                  ? fs::path(value.substr(0, value.find("::"))).stem().string()
                                  : value;
    out += "_" + std::string(key->key) + safe(shown);
  }
  return out;
}

/// --follow: the daemon takes a follow job once its master file and first frame exist, so wait
/// here (up to --follow-timeout) for them to appear. A file this client cannot see is left to
/// the daemon, which reports it.
void wait_for_first_frame(const daemon::JobSpec& spec) {
  if (!spec.follow_timeout_s || spec.datasets.size() != 1) return;
  source::OpenOptions options;
  options.dataset_path = spec.dataset_path;
  options.follow = true;
  options.idle_timeout_s = *spec.follow_timeout_s;
  try {
    (void)source::Dataset::open(spec.datasets.front(), options);
  } catch (const Error&) {
    // the daemon names the problem in its answer
  }
}

}  // namespace

void add_enqueue_options(CLI::App& command, EnqueueArgs& args) {
  cli::add_integrate_options(command, args.integrate);
  for (const char* name : kLocalOnlyOptions) command.remove_option(command.get_option(name));
  command.get_option("--poni")->required(false);
  for (const CLI::Option* o : command.get_options()) {
    bool compatible = false;
    for (const char* name : kCompatibleWithConfig) compatible |= o->check_lname(name + 2);
    if (!compatible && o->get_name() != "--help" && o->get_name() != "-h,--help") {
      args.integration_options.push_back(o);
    }
  }
  CLI::Option* datasets =
      command.add_option("datasets", args.datasets,
                         "Eiger/NeXus master files or plain HDF5 files, or glob patterns ('*.h5'); "
                         "one job per dataset unless --join");
  command
      .add_option("--stream", args.stream,
                  "a stream job instead: the daemon's source stage connects a ZeroMQ PULL socket "
                  "to this endpoint (the detector's PUSH socket, e.g. tcp://dcu:31001) and "
                  "integrates the next series, start to end message; without --poni the "
                  "geometry comes from the start message")
      ->excludes(datasets);
  command
      .add_option("--stream-format", args.stream_format,
                  "--stream: stream2 (DECTRIS Stream V2, CBOR) or v1 (legacy stream v1)")
      ->check(CLI::IsMember({"stream2", "v1"}))
      ->capture_default_str();
  command.add_option("--channel", args.channel,
                     "--stream: channel of the image data map (default: the first one)");
  command
      .add_option("--stream-timeout", args.stream_timeout_s,
                  "--stream: once the series started, seconds without a message after which the "
                  "images not received fail as missing (the start message is awaited without "
                  "limit)")
      ->capture_default_str();
  command
      .add_option("--stream-max-frame-mib", args.stream_max_frame_mib,
                  "--stream: MiB the rings reserve per frame before the series' image size is "
                  "known (18 fits an EIGER2 4M of 32-bit pixels)")
      ->capture_default_str();
  command
      .add_option("--save-raw", args.save_raw,
                  "--stream: the daemon also writes every received image, stored bytes "
                  "unchanged, into an EIGER-layout raw spool in this existing folder "
                  "(series_<id>_master.h5 + data files; an existing spool is never overwritten)")
      ->needs(command.get_option("--stream"));
  command.add_option("-o,--output", args.integrate.output,
                     "output NeXus file of a single job (default: chosen by the daemon)");
  command.add_option("--output-dir", args.output_dir,
                     "folder for the outputs, named <stem>[_<key><value>...].h5 (.xy for the "
                     "xy formats)");
  command.add_option("--config", args.config_file,
                     "pyFAI integration JSON (pyFAI-integrate / Worker) instead of --poni and "
                     "the integration options");
  command
      .add_option("--mode", args.mode,
                  "split: all workers share the job's frames; bulk: one dataset per worker")
      ->check(CLI::IsMember({"split", "bulk"}))
      ->capture_default_str();
  command.add_option("--nodes", args.nodes,
                     "split jobs: share with peer daemons: all, N (nodes in all) or NAME,NAME,...");
  command.add_option("--priority", args.priority, "higher runs first among queued jobs")
      ->capture_default_str();
  command
      .add_option("--after", args.after,
                  "JOB[,JOB...]: start only once these jobs have succeeded; fail if one fails "
                  "or is cancelled")
      ->delimiter(',')
      ->allow_extra_args(false);
  command
      .add_option("--sweep", args.sweeps,
                  "KEY=V1,V2,...: one job per value (several --sweep: every combination); "
                  "keys: " +
                      sweep_keys_text())
      ->allow_extra_args(false);
  command.add_flag("--join", args.join,
                   "one job over all datasets (frames in order, one output) instead of one "
                   "job per dataset");
  command.add_flag("--wait", args.wait, "wait for the jobs to finish, as `wait` does");
}

std::vector<std::string> expand_datasets(const std::vector<std::string>& patterns) {
  std::vector<std::string> out;
  for (const std::string& p : patterns) {
    if (p.find_first_of("*?[") == std::string::npos) {
      out.push_back(absolute(p));
      continue;
    }
    glob_t g{};
    const int rc = ::glob(p.c_str(), 0, nullptr, &g);
    if (rc == 0) {
      for (std::size_t i = 0; i < g.gl_pathc; ++i) out.push_back(absolute(g.gl_pathv[i]));
    }
    ::globfree(&g);
    if (rc == GLOB_NOMATCH) {
      throw Error(ErrorCategory::kConfig, "dataset pattern '" + p + "' matches no file");
    }
    if (rc != 0) throw Error(ErrorCategory::kConfig, "dataset pattern '" + p + "': glob failed");
  }
  return out;
}

/// The stream part of a spec (--stream and its options).
daemon::StreamSpec make_stream_spec(const EnqueueArgs& args) {
  daemon::StreamSpec s;
  s.endpoint = args.stream;
  s.format = args.stream_format;
  s.channel = args.channel;
  s.idle_timeout_s = args.stream_timeout_s;
  s.max_frame_mib = args.stream_max_frame_mib;
  s.save_raw = absolute(args.save_raw);
  return s;
}

daemon::JobSpec make_job_spec(const EnqueueArgs& args, const std::vector<std::string>& datasets) {
  const cli::IntegrateOptions& o = args.integrate;
  daemon::JobSpec spec;
  const bool stream = !args.stream.empty();
  if (!args.config_file.empty()) {
    for (const CLI::Option* opt : args.integration_options) {
      if (opt->count() > 0) {
        throw Error(ErrorCategory::kConfig,
                    "--config " + args.config_file + " and " + opt->get_name() +
                        " given together: give the integration settings either in the pyFAI "
                        "file or as options");
      }
    }
    spec = job_spec_from_pyfai_config(args.config_file);
  } else {
    if (o.poni.empty() && !stream) {
      throw Error(ErrorCategory::kConfig, "--poni is required (or --config FILE)");
    }
    if (!o.poni.empty()) {  // a stream job without one takes the start message's geometry
      spec.poni_path = absolute(o.poni);
      spec.poni_text = read_text(o.poni, "--poni");
    }
    // The dtype is not known here: validate with one that has no default dummy, and let the
    // daemon apply the dtype's default (dummy_auto) exactly as `azflow integrate` does.
    spec.settings = cli::make_settings(o, DType::kFloat32);
    spec.dummy_auto = !o.no_dummy && !o.dummy;
    if (spec.dummy_auto) spec.settings.delta_dummy = o.delta_dummy;
    spec.mask_path = absolute_image(o.mask);
    spec.dark_path = absolute_image(o.dark);
    spec.flat_path = absolute_image(o.flat);
  }
  if (stream) spec.stream = make_stream_spec(args);
  if (!o.dataset.empty()) spec.dataset_path = o.dataset;
  if (o.no_file_mask) spec.use_file_mask = false;
  spec.format = cli::parse_format_option(o.format, spec.settings.npt_azim);
  spec.datasets = datasets;
  spec.output_path.clear();
  spec.overwrite = o.overwrite;
  // Same rules as `azflow integrate --frames`; the daemon checks the range against the dataset.
  if (!o.frames.empty()) spec.frames = parse_frame_slice(o.frames, "--frames");
  if (o.follow) spec.follow_timeout_s = o.follow_timeout_s;
  spec.mode = args.mode == "bulk" ? daemon::JobSpec::Mode::kBulk : daemon::JobSpec::Mode::kSplit;
  if (!args.nodes.empty()) spec.nodes = daemon::parse_node_selection(args.nodes);
  return spec;
}

std::vector<PlannedJob> plan_jobs(const EnqueueArgs& args, const std::string& default_dir) {
  if (args.datasets.empty() && args.stream.empty()) {
    throw Error(ErrorCategory::kConfig, "enqueue: give datasets (or --stream ENDPOINT)");
  }
  const std::vector<std::string> datasets = expand_datasets(args.datasets);
  const auto combos = combinations(parse_sweeps(args.sweeps));
  std::vector<std::vector<std::string>> groups;
  if (!args.stream.empty()) {
    if (args.join) throw Error(ErrorCategory::kConfig, "--join does not apply to --stream");
    groups.push_back({});  // one stream job (a sweep: one per combination, each its own series)
  } else if (args.join) {
    groups.push_back(datasets);
  } else {
    for (const std::string& d : datasets) groups.push_back({d});
  }
  const std::size_t count = groups.size() * combos.size();
  if (!args.integrate.output.empty() && count > 1) {
    throw Error(ErrorCategory::kConfig, "--output names one file but this enqueue makes " +
                                            std::to_string(count) +
                                            " jobs: use --output-dir DIR instead");
  }
  std::string dir = args.output_dir.empty() ? std::string() : absolute(args.output_dir);
  if (!dir.empty()) {
    std::error_code ec;  // the daemon reports a folder that still does not exist, by field
    fs::create_directories(dir, ec);
  }
  if (dir.empty() && args.integrate.output.empty() && !args.sweeps.empty()) dir = default_dir;
  std::vector<PlannedJob> jobs;
  std::set<std::string> names;
  for (const auto& group : groups) {
    const daemon::JobSpec base = make_job_spec(args, group);
    for (const auto& combo : combos) {
      PlannedJob job{combo.empty() ? base : apply_sweep(base, combo), {}};
      for (const auto& [key, value] : combo) job.sweep.emplace_back(key->key, value);
      if (!args.integrate.output.empty()) {
        job.spec.output_path = absolute(args.integrate.output);
      } else if (!dir.empty()) {
        const std::string stem =
            (group.empty() ? std::string("stream") : stem_of(group.front())) + name_suffix(combo);
        const bool text = job.spec.format == reduce::OutputFormat::kXy ||
                          job.spec.format == reduce::OutputFormat::kXyFrames;
        const std::string ext = text ? ".xy" : ".h5";
        std::string name = stem + ext;
        for (int n = 2; names.contains(name); ++n) name = stem + "_" + std::to_string(n) + ext;
        names.insert(name);
        job.spec.output_path = (fs::path(dir) / name).string();
      }
      jobs.push_back(std::move(job));
    }
  }
  return jobs;
}

int run_enqueue(ControlClient& client, const EnqueueArgs& args, bool as_json) {
  std::string default_dir;
  if (args.sweeps.size() > 0 && args.output_dir.empty() && args.integrate.output.empty()) {
    default_dir =
        client.call({{"verb", "status"}}).value("daemon", json::object()).value("output_dir", "");
    if (default_dir.empty()) {
      throw Error(ErrorCategory::kConfig,
                  "azflowd did not report its output folder: give --output-dir for a sweep");
    }
  }
  const std::vector<PlannedJob> jobs = plan_jobs(args, default_dir);
  for (const PlannedJob& job : jobs) {
    std::error_code ec;
    if (!job.spec.overwrite && !job.spec.output_path.empty() &&
        fs::exists(fs::symlink_status(job.spec.output_path, ec))) {
      throw Error(ErrorCategory::kConfig,
                  "output " + job.spec.output_path +
                      " already exists (nothing was enqueued; --overwrite replaces it)");
    }
  }
  for (const PlannedJob& job : jobs) wait_for_first_frame(job.spec);
  return run_enqueue_jobs(client, args, as_json, jobs);
}

}  // namespace azflow::ctl
