#include "daemon/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <sstream>
#include <string_view>
#include <thread>

#include <toml++/toml.h>

#include "base/error.hpp"
#include "daemon/federation/federation_toml.hpp"

namespace azflow::daemon {

namespace {

constexpr std::array<std::string_view, 7> kLogLevels = {"trace", "debug",    "info", "warn",
                                                        "error", "critical", "off"};
constexpr std::size_t kMaxWorkers = 1024;

/// Where a value came from, for error messages: "FILE: key 'rings.frames_slots'" or "--workers".
struct Origin {
  std::string text;
  [[noreturn]] void fail(const std::string& message) const {
    throw Error(ErrorCategory::kConfig, text + ": " + message);
  }
};

Origin file_key(const std::filesystem::path& file, std::string_view key) {
  return {file.string() + ": key '" + std::string(key) + "'"};
}

std::optional<std::string> env_var(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

void check_instance(const std::string& name, const Origin& origin) {
  const bool ok =
      !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_';
      });
  if (!ok) origin.fail("'" + name + "' is not 1-64 characters of [A-Za-z0-9_-]");
}

void check_endpoint(const std::string& endpoint, const Origin& origin, bool allow_empty) {
  if (endpoint.empty() && allow_empty) return;
  const bool ok = (endpoint.starts_with("ipc://") && endpoint.size() > 6) ||
                  (endpoint.starts_with("tcp://") && endpoint.size() > 6);
  if (!ok) origin.fail("'" + endpoint + "' is not an ipc://PATH or tcp://HOST:PORT endpoint");
}

/// "" (off) or HOST:PORT / [V6]:PORT with a port in 0..65535 (daemon/http_server.hpp).
void check_http_listen(const std::string& listen, const Origin& origin) {
  if (listen.empty()) return;
  (void)parse_listen(listen, origin.text);
}

void check_log_level(const std::string& level, const Origin& origin) {
  if (std::find(kLogLevels.begin(), kLogLevels.end(), level) == kLogLevels.end()) {
    origin.fail("'" + level + "' is not one of trace, debug, info, warn, error, critical, off");
  }
}

void check_range(std::size_t value, std::size_t lo, std::size_t hi, const Origin& origin) {
  if (value < lo || value > hi) {
    origin.fail(std::to_string(value) + " is outside [" + std::to_string(lo) + ", " +
                std::to_string(hi) + "]");
  }
}

void check_dir(const std::filesystem::path& dir, const Origin& origin) {
  if (!dir.empty() && !dir.is_absolute())
    origin.fail("'" + dir.string() + "' is not an absolute path");
}

/// Typed access to one TOML table, rejecting unknown keys.
class TableReader {
 public:
  TableReader(const toml::table& table, std::filesystem::path file, std::string prefix)
      : table_(table), file_(std::move(file)), prefix_(std::move(prefix)) {}

  /// Throws for any key of the table not in `known`.
  void reject_unknown(std::initializer_list<std::string_view> known) const {
    for (const auto& [key, node] : table_) {
      if (std::find(known.begin(), known.end(), key.str()) == known.end()) {
        origin(key.str()).fail("unknown key");
      }
    }
  }

  void read(std::string_view key, std::string& out) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return;
    if (!node->is_string()) origin(key).fail("expected a string, got " + type_name(*node));
    out = node->as_string()->get();
  }

  void read(std::string_view key, bool& out) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return;
    if (!node->is_boolean()) origin(key).fail("expected true or false, got " + type_name(*node));
    out = node->as_boolean()->get();
  }

  void read(std::string_view key, std::filesystem::path& out) const {
    std::string text = out.string();
    read(key, text);
    out = text;
  }

  void read(std::string_view key, std::size_t& out) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return;
    if (!node->is_integer()) origin(key).fail("expected an integer, got " + type_name(*node));
    const std::int64_t value = node->as_integer()->get();
    if (value < 0) origin(key).fail(std::to_string(value) + " is negative");
    out = static_cast<std::size_t>(value);
  }

  /// A list of absolute directories (lexically normalised); an empty list is an error.
  void read_dirs(std::string_view key, std::vector<std::filesystem::path>& out) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return;
    const toml::array* array = node->as_array();
    if (array == nullptr) origin(key).fail("expected a list of absolute directories");
    if (array->empty()) origin(key).fail("empty list (use [\"/\"] to allow every path)");
    out.clear();
    for (const toml::node& item : *array) {
      if (!item.is_string()) origin(key).fail("expected strings, got " + type_name(item));
      const std::filesystem::path dir(item.as_string()->get());
      if (!dir.is_absolute()) origin(key).fail("'" + dir.string() + "' is not an absolute path");
      out.push_back(dir.lexically_normal());
    }
  }

  /// A slot size: a positive integer (MiB) or "auto".
  void read_slot_mib(std::string_view key, std::optional<std::size_t>& out) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return;
    if (node->is_string() && node->as_string()->get() == "auto") {
      out.reset();
      return;
    }
    if (!node->is_integer()) origin(key).fail("expected an integer (MiB) or \"auto\"");
    const std::int64_t value = node->as_integer()->get();
    if (value < 1 || value > 4096)
      origin(key).fail(std::to_string(value) + " is outside [1, 4096] MiB");
    out = static_cast<std::size_t>(value);
  }

  /// A sub-table (empty reader if absent).
  [[nodiscard]] const toml::table* sub(std::string_view key) const {
    const toml::node* node = table_.get(key);
    if (node == nullptr) return nullptr;
    if (!node->is_table()) origin(key).fail("expected a table [" + std::string(key) + "]");
    return node->as_table();
  }

  [[nodiscard]] Origin origin(std::string_view key) const {
    return file_key(file_, prefix_ + std::string(key));
  }

 private:
  static std::string type_name(const toml::node& node) {
    std::ostringstream out;
    out << node.type();
    return out.str();
  }

  const toml::table& table_;
  std::filesystem::path file_;
  std::string prefix_;
};

/// Values as read from the file; "" and 0 mean "derive".
struct RawConfig {
  DaemonConfig config;
  std::size_t workers_key = 0;
  std::size_t integrate_workers_key = 0;
};

void read_rings(const TableReader& root, const std::filesystem::path& file, RingsConfig& rings) {
  const toml::table* table = root.sub("rings");
  if (table == nullptr) return;
  const TableReader r(*table, file, "rings.");
  r.reject_unknown({"compressed_slots", "frames_slots", "results_slots", "compressed_slot_mib",
                    "frames_slot_mib", "results_slot_mib", "max_total_mib"});
  r.read("compressed_slots", rings.compressed_slots);
  r.read("frames_slots", rings.frames_slots);
  r.read("results_slots", rings.results_slots);
  check_range(rings.compressed_slots, 2, 65536, r.origin("compressed_slots"));
  check_range(rings.frames_slots, 2, 65536, r.origin("frames_slots"));
  check_range(rings.results_slots, 2, 65536, r.origin("results_slots"));
  r.read_slot_mib("compressed_slot_mib", rings.compressed_slot_mib);
  r.read_slot_mib("frames_slot_mib", rings.frames_slot_mib);
  r.read_slot_mib("results_slot_mib", rings.results_slot_mib);
  r.read("max_total_mib", rings.max_total_mib);
}

void read_plans(const TableReader& root, const std::filesystem::path& file, PlansConfig& plans) {
  const toml::table* table = root.sub("plans");
  if (table == nullptr) return;
  const TableReader r(*table, file, "plans.");
  r.reject_unknown({"cache_max_mb"});
  r.read("cache_max_mb", plans.cache_max_mb);
  check_range(plans.cache_max_mb, 1, 1048576, r.origin("cache_max_mb"));
}

void read_gpu(const TableReader& root, const std::filesystem::path& file, GpuConfig& gpu) {
  const toml::table* table = root.sub("gpu");
  if (table == nullptr) return;
  const TableReader r(*table, file, "gpu.");
  r.reject_unknown({"gpus", "workers_per_gpu"});
  r.read("workers_per_gpu", gpu.workers_per_gpu);
  check_range(gpu.workers_per_gpu, 1, 64, r.origin("workers_per_gpu"));
  const toml::node* node = table->get("gpus");
  if (node == nullptr) return;
  if (node->is_string() && node->as_string()->get() == "all") {
    gpu.devices.reset();
    return;
  }
  if (!node->is_array()) r.origin("gpus").fail("expected \"all\" or a list of device ordinals");
  std::vector<int> devices;
  for (const toml::node& item : *node->as_array()) {
    if (!item.is_integer()) r.origin("gpus").fail("expected integer device ordinals");
    const std::int64_t ordinal = item.as_integer()->get();
    if (ordinal < 0 || ordinal > 1023) {
      r.origin("gpus").fail("device ordinal " + std::to_string(ordinal) + " is outside [0, 1023]");
    }
    if (std::find(devices.begin(), devices.end(), ordinal) != devices.end()) {
      r.origin("gpus").fail("device " + std::to_string(ordinal) + " is listed twice");
    }
    devices.push_back(static_cast<int>(ordinal));
  }
  gpu.devices = std::move(devices);
}

void read_endpoints(const TableReader& root, const std::filesystem::path& file, DaemonConfig& c) {
  if (const toml::table* table = root.sub("control")) {
    const TableReader r(*table, file, "control.");
    r.reject_unknown(
        {"endpoint", "tcp_endpoint", "insecure_tcp_control", "trusted_client_keys_dir"});
    r.read("endpoint", c.control_endpoint);
    r.read("tcp_endpoint", c.control_tcp_endpoint);
    r.read("insecure_tcp_control", c.insecure_tcp_control);
    r.read("trusted_client_keys_dir", c.control_trusted_keys_dir);
    if (!c.control_trusted_keys_dir.empty()) {
      check_dir(c.control_trusted_keys_dir, r.origin("trusted_client_keys_dir"));
    }
    check_endpoint(c.control_endpoint, r.origin("endpoint"), true);
    check_endpoint(c.control_tcp_endpoint, r.origin("tcp_endpoint"), true);
  }
  if (const toml::table* table = root.sub("live")) {
    const TableReader r(*table, file, "live.");
    r.reject_unknown({"endpoint"});
    r.read("endpoint", c.live_endpoint);
    check_endpoint(c.live_endpoint, r.origin("endpoint"), true);
  }
  if (const toml::table* table = root.sub("http")) {
    const TableReader r(*table, file, "http.");
    r.reject_unknown({"listen"});
    r.read("listen", c.http_listen);
    check_http_listen(c.http_listen, r.origin("listen"));
  }
}

void read_top_level(const TableReader& r, RawConfig& raw) {
  DaemonConfig& c = raw.config;
  r.reject_unknown({"instance",
                    "state_dir",
                    "runtime_dir",
                    "workers",
                    "integrate_workers",
                    "shard_frames",
                    "max_running_jobs",
                    "log_level",
                    "heartbeat_interval_ms",
                    "stage_restart_limit",
                    "stage_restart_window_s",
                    "shard_crash_limit",
                    "stop_timeout_s",
                    "allowed_input_roots",
                    "allowed_output_roots",
                    "control",
                    "live",
                    "rings",
                    "plans",
                    "gpu",
                    "federation",
                    "http"});
  r.read("instance", c.instance);
  check_instance(c.instance, r.origin("instance"));
  r.read("state_dir", c.state_dir);
  check_dir(c.state_dir, r.origin("state_dir"));
  r.read("runtime_dir", c.runtime_dir);
  check_dir(c.runtime_dir, r.origin("runtime_dir"));
  r.read("workers", raw.workers_key);
  check_range(raw.workers_key, 0, kMaxWorkers, r.origin("workers"));
  r.read("integrate_workers", raw.integrate_workers_key);
  check_range(raw.integrate_workers_key, 0, kMaxWorkers, r.origin("integrate_workers"));
  r.read("shard_frames", c.shard_frames);
  check_range(c.shard_frames, 1, 1000000, r.origin("shard_frames"));
  r.read("max_running_jobs", c.max_running_jobs);
  check_range(c.max_running_jobs, 1, 1024, r.origin("max_running_jobs"));
  r.read("log_level", c.log_level);
  check_log_level(c.log_level, r.origin("log_level"));
  r.read("heartbeat_interval_ms", c.heartbeat_interval_ms);
  check_range(c.heartbeat_interval_ms, 10, 600000, r.origin("heartbeat_interval_ms"));
  r.read("stage_restart_limit", c.stage_restart_limit);
  check_range(c.stage_restart_limit, 0, 1000, r.origin("stage_restart_limit"));
  r.read("stage_restart_window_s", c.stage_restart_window_s);
  check_range(c.stage_restart_window_s, 1, 86400, r.origin("stage_restart_window_s"));
  r.read("shard_crash_limit", c.shard_crash_limit);
  check_range(c.shard_crash_limit, 1, 1000, r.origin("shard_crash_limit"));
  r.read("stop_timeout_s", c.stop_timeout_s);
  check_range(c.stop_timeout_s, 0, 3600, r.origin("stop_timeout_s"));
  r.read_dirs("allowed_input_roots", c.allowed_input_roots);
  r.read_dirs("allowed_output_roots", c.allowed_output_roots);
}

RawConfig read_file(const std::filesystem::path& file) {
  toml::table root;
  try {
    root = toml::parse_file(file.string());
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    throw Error(ErrorCategory::kConfig, file.string() + ":" + std::to_string(where.line) + ":" +
                                            std::to_string(where.column) + ": " +
                                            std::string(e.description()));
  }
  RawConfig raw;
  raw.config.config_file = file;
  const TableReader r(root, file, "");
  read_top_level(r, raw);
  read_endpoints(r, file, raw.config);
  read_rings(r, file, raw.config.rings);
  read_plans(r, file, raw.config.plans);
  read_gpu(r, file, raw.config.gpu);
  if (const toml::table* federation = r.sub("federation"))
    read_federation_table(*federation, file, raw.config.federation);
  return raw;
}

std::filesystem::path absolute_path(const std::filesystem::path& p) {
  return std::filesystem::absolute(p).lexically_normal();
}

void apply_overrides(const ConfigOverrides& o, RawConfig& raw) {
  DaemonConfig& c = raw.config;
  if (o.instance) {
    check_instance(*o.instance, {"--instance"});
    c.instance = *o.instance;
  }
  if (o.state_dir) c.state_dir = absolute_path(*o.state_dir);
  if (o.runtime_dir) c.runtime_dir = absolute_path(*o.runtime_dir);
  if (o.control_endpoint) {
    check_endpoint(*o.control_endpoint, {"--control"}, false);
    c.control_endpoint = *o.control_endpoint;
  }
  if (o.workers) {
    check_range(*o.workers, 0, kMaxWorkers, {"--workers"});
    raw.workers_key = *o.workers;
  }
  if (o.integrate_workers) {
    check_range(*o.integrate_workers, 0, kMaxWorkers, {"--integrate-workers"});
    raw.integrate_workers_key = *o.integrate_workers;
  }
  if (o.log_level) {
    check_log_level(*o.log_level, {"--log-level"});
    c.log_level = *o.log_level;
  }
  if (o.http_listen) {
    check_http_listen(*o.http_listen, {"--http"});
    c.http_listen = *o.http_listen;
  }
  if (o.control_trusted_keys_dir) c.control_trusted_keys_dir = *o.control_trusted_keys_dir;
}

/// The control clients' key folder: default <state_dir>/curve/clients, never the peers' folder
/// (a control key accepted as a peer's could forge results; docs/security.md).
void resolve_client_keys(DaemonConfig& c) {
  if (c.control_trusted_keys_dir.empty())
    c.control_trusted_keys_dir = c.state_dir / "curve/clients";
  c.control_trusted_keys_dir = absolute_path(c.control_trusted_keys_dir);
  const auto folder = [](const std::filesystem::path& p) {  // resolved, no trailing separator
    std::error_code ec;
    std::filesystem::path f = std::filesystem::weakly_canonical(p, ec).lexically_normal();
    if (ec) f = p.lexically_normal();
    return f.has_filename() || !f.has_parent_path() ? f : f.parent_path();
  };
  const auto same = [&](const std::filesystem::path& a, const std::filesystem::path& b) {
    return folder(a) == folder(b);
  };
  if (same(c.control_trusted_keys_dir, c.federation.trusted_keys_dir)) {
    throw Error(
        ErrorCategory::kConfig,
        "control.trusted_client_keys_dir and federation.trusted_keys_dir are the same folder " +
            c.control_trusted_keys_dir.string() +
            ": control clients' keys and peers' keys must lie in two folders (a control "
            "key accepted as a peer's could forge results); move the clients' .pub files "
            "to their own folder (default <state_dir>/curve/clients)");
  }
}

std::string ipc_endpoint(const std::filesystem::path& dir, const std::string& instance,
                         std::string_view suffix) {
  return "ipc://" + (dir / (instance + "." + std::string(suffix))).string();
}

void resolve(const Environment& env, RawConfig& raw) {
  DaemonConfig& c = raw.config;
  if (c.state_dir.empty()) c.state_dir = default_state_dir(env);
  if (c.runtime_dir.empty()) c.runtime_dir = default_runtime_dir(env);
  if (c.control_endpoint.empty())
    c.control_endpoint = ipc_endpoint(c.runtime_dir, c.instance, "control");
  if (c.live_endpoint.empty()) c.live_endpoint = ipc_endpoint(c.runtime_dir, c.instance, "live");
  c.stages_endpoint = ipc_endpoint(c.runtime_dir, c.instance, "stages");
  c.workers =
      raw.workers_key == 0 ? std::max<std::size_t>(1, env.hardware_threads) : raw.workers_key;
  c.integrate_workers = raw.integrate_workers_key == 0 ? c.workers : raw.integrate_workers_key;
}

std::string quoted(const std::string& s) {
  std::ostringstream out;
  out << toml::value<std::string>(s);
  return out.str();
}

std::string dirs_text(const std::vector<std::filesystem::path>& dirs) {
  std::string out = "[";
  for (const auto& d : dirs) out += (out.size() > 1 ? ", " : "") + quoted(d.string());
  return out + "]";
}

std::string slot_text(const std::optional<std::size_t>& mib) {
  return mib ? std::to_string(*mib) : std::string("\"auto\"");
}

std::string gpus_text(const std::optional<std::vector<int>>& devices) {
  if (!devices) return "\"all\"";
  std::string text = "[";
  for (std::size_t i = 0; i < devices->size(); ++i) {
    text += (i > 0 ? ", " : "") + std::to_string((*devices)[i]);
  }
  return text + "]";
}

}  // namespace

Environment Environment::current() {
  Environment env;
  env.xdg_runtime_dir = env_var("XDG_RUNTIME_DIR");
  env.xdg_state_home = env_var("XDG_STATE_HOME");
  env.home = env_var("HOME");
  env.is_root = ::geteuid() == 0;
  env.hardware_threads = std::max(1u, std::thread::hardware_concurrency());
  return env;
}

std::filesystem::path default_runtime_dir(const Environment& env) {
  if (env.xdg_runtime_dir) return std::filesystem::path(*env.xdg_runtime_dir) / "azflow";
  if (env.is_root) return "/run/azflow";
  return "/tmp/azflow-" + std::to_string(::geteuid());
}

std::filesystem::path default_state_dir(const Environment& env) {
  if (env.xdg_state_home) return std::filesystem::path(*env.xdg_state_home) / "azflow";
  if (env.is_root) return "/var/lib/azflow";
  if (env.home) return std::filesystem::path(*env.home) / ".local/state/azflow";
  return "/tmp/azflow-" + std::to_string(::geteuid()) + "/state";
}

std::string default_control_endpoint(const Environment& env, const std::string& instance) {
  return ipc_endpoint(default_runtime_dir(env), instance, "control");
}

DaemonConfig load_config(const std::optional<std::filesystem::path>& path,
                         const ConfigOverrides& overrides, const Environment& env) {
  RawConfig raw;
  if (path) raw = read_file(*path);
  apply_overrides(overrides, raw);
  resolve(env, raw);
  resolve_federation(overrides.federation, raw.config.state_dir, raw.config.federation);
  resolve_client_keys(raw.config);
  return raw.config;
}

std::string describe(const DaemonConfig& c) {
  std::ostringstream out;
  out << "# config file: " << (c.config_file.empty() ? "(none)" : c.config_file.string()) << "\n"
      << "instance = " << quoted(c.instance) << "\n"
      << "state_dir = " << quoted(c.state_dir.string()) << "\n"
      << "runtime_dir = " << quoted(c.runtime_dir.string()) << "\n"
      << "workers = " << c.workers << "\n"
      << "integrate_workers = " << c.integrate_workers << "\n"
      << "shard_frames = " << c.shard_frames << "\n"
      << "max_running_jobs = " << c.max_running_jobs << "\n"
      << "log_level = " << quoted(c.log_level) << "\n"
      << "heartbeat_interval_ms = " << c.heartbeat_interval_ms << "\n"
      << "stage_restart_limit = " << c.stage_restart_limit << "\n"
      << "stage_restart_window_s = " << c.stage_restart_window_s << "\n"
      << "shard_crash_limit = " << c.shard_crash_limit << "\n"
      << "stop_timeout_s = " << c.stop_timeout_s << "\n"
      << "allowed_input_roots = " << dirs_text(c.allowed_input_roots) << "\n"
      << "allowed_output_roots = " << dirs_text(c.allowed_output_roots) << "\n"
      << "# stages endpoint (derived): " << c.stages_endpoint << "\n\n"
      << "[control]\nendpoint = " << quoted(c.control_endpoint) << "\n"
      << "tcp_endpoint = " << quoted(c.control_tcp_endpoint) << "\n"
      << "insecure_tcp_control = " << (c.insecure_tcp_control ? "true" : "false") << "\n"
      << "trusted_client_keys_dir = " << quoted(c.control_trusted_keys_dir.string()) << "\n\n"
      << "[live]\nendpoint = " << quoted(c.live_endpoint) << "\n\n"
      << "[http]\nlisten = " << quoted(c.http_listen) << "\n\n"
      << "[rings]\ncompressed_slots = " << c.rings.compressed_slots << "\n"
      << "frames_slots = " << c.rings.frames_slots << "\n"
      << "results_slots = " << c.rings.results_slots << "\n"
      << "compressed_slot_mib = " << slot_text(c.rings.compressed_slot_mib) << "\n"
      << "frames_slot_mib = " << slot_text(c.rings.frames_slot_mib) << "\n"
      << "results_slot_mib = " << slot_text(c.rings.results_slot_mib) << "\n"
      << "max_total_mib = " << c.rings.max_total_mib << "\n\n"
      << "[plans]\ncache_max_mb = " << c.plans.cache_max_mb << "\n\n"
      << "[gpu]\ngpus = " << gpus_text(c.gpu.devices) << "\n"
      << "workers_per_gpu = " << c.gpu.workers_per_gpu << "\n\n"
      << describe_federation(c.federation);
  return out.str();
}

nlohmann::json config_json(const DaemonConfig& config) {
  std::ostringstream json_text;
  json_text << toml::json_formatter(toml::parse(describe(config)));
  nlohmann::json j = nlohmann::json::parse(json_text.str());
  j["config_file"] = config.config_file.string();
  j["stages_endpoint"] = config.stages_endpoint;
  return j;
}

void add_config_options(CLI::App& app, std::optional<std::filesystem::path>& config_path,
                        ConfigOverrides& o) {
  app.add_option("-c,--config", config_path, "TOML configuration file (default: built-in defaults)")
      ->check(CLI::ExistingFile);
  app.add_option("--instance", o.instance, "instance name (rings and socket names)");
  app.add_option("--state-dir", o.state_dir, "state directory (job store, shard files)");
  app.add_option("--runtime-dir", o.runtime_dir, "runtime directory (sockets)");
  app.add_option("--control", o.control_endpoint,
                 "client endpoint (ipc://PATH or tcp://HOST:PORT)");
  app.add_option("--workers", o.workers, "decompress worker processes (0 = hardware threads)");
  app.add_option("--integrate-workers", o.integrate_workers,
                 "integrate worker processes (0 = same as --workers)");
  app.add_option("--log-level", o.log_level, "trace, debug, info, warn, error, critical or off");
  app.add_option("--http", o.http_listen,
                 "HTTP API address HOST:PORT (default 127.0.0.1:8770; \"\" = off; port 0 = any)");
  add_federation_options(app, o.federation);
  app.add_option("--trusted-client-keys", o.control_trusted_keys_dir,
                 "folder of the <name>.pub keys of TCP control clients (default "
                 "<state-dir>/curve/clients; not the peers' folder)");
}

std::pair<std::string, int> parse_listen(const std::string& listen, const std::string& what) {
  const auto fail = [&](const std::string& why) -> std::pair<std::string, int> {
    throw Error(ErrorCategory::kConfig,
                what + ": '" + listen + "' " + why + " (expected HOST:PORT, e.g. 127.0.0.1:8770)");
  };
  const std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return fail("has no port");
  std::string host = listen.substr(0, colon);
  const std::string port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return fail("is an IPv6 address without [brackets]");
  }
  if (host.empty()) return fail("has no host");
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return fail("has no port number");
  const int port = std::stoi(port_text);
  if (port > 65535) return fail("has a port above 65535");
  return {host, port};
}

std::size_t resolve_slot_bytes(const std::optional<std::size_t>& slot_mib,
                               std::size_t needed_bytes) noexcept {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  if (slot_mib) return *slot_mib * kMiB;
  const std::size_t mib = (needed_bytes + kMiB - 1) / kMiB;
  return std::max<std::size_t>(1, mib) * kMiB;
}

}  // namespace azflow::daemon
