#pragma once
// azflowd's configuration: a typed struct with a default and a description for every key, read
// from a TOML file (systemd/azflowd.toml documents every key) and overridden from the command
// line. Everything is validated here, before the daemon starts anything.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "daemon/federation/federation_config.hpp"

namespace azflow::daemon {

/// Shared-memory ring geometry. Slot sizes in MiB; std::nullopt means "auto": sized from the first
/// job's frames when the rings are created (see resolve_slot_bytes).
struct RingsConfig {
  std::size_t compressed_slots = 16;  ///< slots of the "compressed" ring (source -> decompress)
  std::size_t frames_slots = 16;      ///< slots of the "frames" ring (decompress -> integrate)
  std::size_t results_slots = 64;     ///< slots of the "results" ring (integrate -> reducer)
  std::optional<std::size_t> compressed_slot_mib;  ///< MiB per compressed slot; nullopt = auto
  std::optional<std::size_t> frames_slot_mib;      ///< MiB per decoded-frame slot; nullopt = auto
  std::optional<std::size_t> results_slot_mib;     ///< MiB per result slot; nullopt = auto
  /// Key `max_total_mib`: MiB the three rings of one job may reserve in /dev/shm together; a job
  /// needing more is refused at enqueue (0 = no limit but what /dev/shm has free).
  std::size_t max_total_mib = 0;
};

/// Placement of the integrate workers on GPUs ([gpu] table). Used only when azflow-stage was
/// built with CUDA and sees a device (daemon/gpu_placement.hpp); otherwise the daemon runs
/// `integrate_workers` CPU integrate workers and says why at start.
struct GpuConfig {
  /// Key `gpus`: CUDA device ordinals to use; nullopt ("all", the default) = every visible GPU;
  /// empty ([]) = none, CPU integrate workers only.
  std::optional<std::vector<int>> devices;
  std::size_t workers_per_gpu = 4;  ///< integrate worker processes per GPU (1 to 64)
};

/// The plan folder <state_dir>/plans ([plans] table, docs/architecture.md "The plan cache"):
/// integration plans built once per node and geometry, shared by every integrate worker and kept
/// across restarts.
struct PlansConfig {
  /// Key `cache_max_mb`: MiB the folder's *.plan files may take; past it the least recently used
  /// are removed (1 to 1048576; the newest plan is always kept).
  std::size_t cache_max_mb = 4096;
};

/// Every setting of azflowd, resolved: no empty paths, no "auto" worker counts (ring slot sizes
/// may stay auto). Field names carry units.
struct DaemonConfig {
  std::filesystem::path config_file;  ///< the TOML file read ("" = built-in defaults only)
  std::string instance = "default";   ///< names the rings (/azflow.<instance>.<ring>) and sockets
  std::string control_endpoint;      ///< ROUTER for clients; default ipc://<runtime>/<inst>.control
  std::string control_tcp_endpoint;  ///< optional second ROUTER, e.g. tcp://*:5555 ("" = none)
  /// [control] insecure_tcp_control: serve tcp_endpoint without CurveZMQ (no [federation] keys):
  /// anyone who reaches the port controls the daemon. false = refuse to start that way.
  bool insecure_tcp_control = false;
  /// [control] trusted_client_keys_dir: <name>.pub files of the clients accepted on a CurveZMQ
  /// tcp_endpoint (default <state_dir>/curve/clients). Must differ from the peers' folder
  /// (federation.trusted_keys_dir): a key is a client's or a peer's, never both.
  std::filesystem::path control_trusted_keys_dir;
  std::string live_endpoint;        ///< PUB of finished frames; default ipc://<runtime>/<inst>.live
  std::string stages_endpoint;      ///< internal ROUTER for stages: ipc://<runtime>/<inst>.stages
  std::filesystem::path state_dir;  ///< SQLite job store, shard files, default outputs
  std::filesystem::path runtime_dir;  ///< sockets (and other per-boot files)
  std::size_t workers = 1;            ///< decompress worker processes (key 0 = hardware threads)
  std::size_t integrate_workers = 1;  ///< integrate worker processes (key 0 = same as workers)
  RingsConfig rings;
  GpuConfig gpu;
  PlansConfig plans;
  std::size_t shard_frames = 50;     ///< frames per shard (the scheduler may cut 2D smaller)
  std::size_t max_running_jobs = 2;  ///< jobs whose shards are handed out at once
  std::string log_level = "info";    ///< trace, debug, info, warn, error, critical, off
  std::size_t heartbeat_interval_ms = 1000;  ///< stage heartbeat period; 3 missed = stage lost
  /// Crashes of one stage slot within stage_restart_window_s that are restarted at once; past it
  /// the slot is restarted after a back-off (1 s, doubling per further crash, at most the window).
  std::size_t stage_restart_limit = 5;
  /// Seconds over which a slot's crashes are counted against stage_restart_limit (older ones
  /// are forgotten).
  std::size_t stage_restart_window_s = 60;
  /// Stage crashes while holding frames of one shard after which that shard's missing frames are
  /// failed ("poison shard": "stage ... crashed N times on this shard") instead of redone again.
  std::size_t shard_crash_limit = 3;
  /// On SIGTERM/SIGINT or a shutdown request: seconds the shards in flight get to finish before
  /// the daemon records them as queued and exits (keep below systemd's TimeoutStopSec).
  std::size_t stop_timeout_s = 20;
  /// Directories (absolute, lexically normal) under which enqueued inputs (datasets, mask, dark,
  /// flat) must lie once symlinks are resolved; {"/"} = anywhere.
  std::vector<std::filesystem::path> allowed_input_roots{"/"};
  /// Directories under which an explicit output path must lie (the daemon's own default output
  /// folder <state_dir>/outputs is always allowed); {"/"} = anywhere.
  std::vector<std::filesystem::path> allowed_output_roots{"/"};
  FederationConfig federation;  ///< [federation]: node, peer endpoint, peers, keys, heartbeats
  /// Key `[http] listen` / --http: HOST:PORT of the HTTP API (docs/http.md); "" = off; port 0 =
  /// any free port (logged and written to <runtime_dir>/<instance>.http).
  std::string http_listen = "127.0.0.1:8770";
};

/// Command-line overrides; each set value wins over the file and the defaults.
struct ConfigOverrides {
  std::optional<std::string> instance;
  std::optional<std::filesystem::path> state_dir;
  std::optional<std::filesystem::path> runtime_dir;
  std::optional<std::string> control_endpoint;
  std::optional<std::size_t> workers;
  std::optional<std::size_t> integrate_workers;
  std::optional<std::string> log_level;
  FederationOverrides federation;  ///< --node, --peer-endpoint, --peer, --join, --trusted-keys
  std::optional<std::filesystem::path> control_trusted_keys_dir;  ///< --trusted-client-keys
  std::optional<std::string> http_listen;                         ///< --http HOST:PORT ("" = off)
};

/// The process environment the defaults derive from (injectable for tests).
struct Environment {
  std::optional<std::string> xdg_runtime_dir;  ///< $XDG_RUNTIME_DIR
  std::optional<std::string> xdg_state_home;   ///< $XDG_STATE_HOME
  std::optional<std::string> home;             ///< $HOME
  bool is_root = false;                        ///< geteuid() == 0
  std::size_t hardware_threads = 1;            ///< std::thread::hardware_concurrency(), at least 1

  /// The environment of this process.
  static Environment current();
};

/// Default runtime directory: $XDG_RUNTIME_DIR/azflow, else /run/azflow for root, else
/// /tmp/azflow-<uid>.
std::filesystem::path default_runtime_dir(const Environment& env);
/// Default state directory: $XDG_STATE_HOME/azflow, else /var/lib/azflow for root, else
/// $HOME/.local/state/azflow.
std::filesystem::path default_state_dir(const Environment& env);

/// The node's plan folder: <state_dir>/plans.
inline std::filesystem::path plan_dir(const DaemonConfig& config) {
  return config.state_dir / "plans";
}
/// The default client endpoint, ipc://<default runtime dir>/<instance>.control: what azflowd
/// binds without --control and what azflowctl connects to without --endpoint.
std::string default_control_endpoint(const Environment& env,
                                     const std::string& instance = "default");

/// Reads `path` (std::nullopt: defaults only), applies `overrides`, resolves derived defaults and
/// validates. Throws azflow::Error (kConfig) naming the key and the file for an unreadable file,
/// a TOML syntax error, an unknown key, a wrong type or an invalid value.
DaemonConfig load_config(const std::optional<std::filesystem::path>& path,
                         const ConfigOverrides& overrides = {},
                         const Environment& env = Environment::current());

/// Every resolved key as TOML text ("key = value" lines with [sections]), for the log and the
/// `config` verb.
std::string describe(const DaemonConfig& config);

/// The resolved configuration as a JSON object with the keys and tables of describe(), for the
/// `config` verb (`azflowctl --json config`).
nlohmann::json config_json(const DaemonConfig& config);

/// Declares --config, --instance, --state-dir, --runtime-dir, --control, --workers,
/// --integrate-workers, --log-level, --http and the federation options on `app`, storing into
/// `config_path` and `overrides`.
void add_config_options(CLI::App& app, std::optional<std::filesystem::path>& config_path,
                        ConfigOverrides& overrides);

/// Splits "HOST:PORT" / "[V6]:PORT" into host and port. Throws azflow::Error (kConfig) naming
/// `what` (the key or option) for anything else (empty host, port not in 0..65535).
std::pair<std::string, int> parse_listen(const std::string& listen, const std::string& what);

/// Slot size in bytes for a ring: the configured MiB, or for auto `needed_bytes` (what one slot
/// of the first job needs: its compressed or decoded frame or result row) rounded up to a whole
/// MiB, at least 1 MiB.
std::size_t resolve_slot_bytes(const std::optional<std::size_t>& slot_mib,
                               std::size_t needed_bytes) noexcept;

}  // namespace azflow::daemon
