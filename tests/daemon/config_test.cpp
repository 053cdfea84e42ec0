// azflowd configuration: defaults, TOML file, command-line overrides, errors naming key and file.
#include "daemon/config.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

#include "base/error.hpp"
#include "tests/daemon/control_test_support.hpp"

namespace azflow::daemon {
namespace {

using test::TempDir;
using test::write_file;

Environment user_env() {
  Environment env;
  env.xdg_runtime_dir = "/run/user/1234";
  env.xdg_state_home = "/home/u/.state";
  env.home = "/home/u";
  env.hardware_threads = 8;
  return env;
}

std::string load_error(const std::string& toml, const std::string& expected_key) {
  TempDir dir;
  const auto file = dir.path() / "azflowd.toml";
  write_file(file, toml);
  try {
    (void)load_config(file, {}, user_env());
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.category(), ErrorCategory::kConfig);
    EXPECT_NE(what.find(file.string()), std::string::npos) << what;
    EXPECT_NE(what.find(expected_key), std::string::npos) << what;
    return what;
  }
  ADD_FAILURE() << "no error for: " << toml;
  return {};
}

TEST(DaemonConfig, DefaultsWithoutFile) {
  const DaemonConfig c = load_config(std::nullopt, {}, user_env());
  EXPECT_EQ(c.instance, "default");
  EXPECT_EQ(c.runtime_dir, "/run/user/1234/azflow");
  EXPECT_EQ(c.state_dir, "/home/u/.state/azflow");
  EXPECT_EQ(c.control_endpoint, "ipc:///run/user/1234/azflow/default.control");
  EXPECT_EQ(c.live_endpoint, "ipc:///run/user/1234/azflow/default.live");
  EXPECT_EQ(c.stages_endpoint, "ipc:///run/user/1234/azflow/default.stages");
  EXPECT_EQ(c.control_tcp_endpoint, "");
  EXPECT_EQ(c.workers, 8u);
  EXPECT_EQ(c.integrate_workers, 8u);
  EXPECT_EQ(c.shard_frames, 50u);
  EXPECT_EQ(c.max_running_jobs, 2u);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.heartbeat_interval_ms, 1000u);
  EXPECT_EQ(c.stage_restart_limit, 5u);
  EXPECT_EQ(c.stage_restart_window_s, 60u);
  EXPECT_EQ(c.rings.compressed_slots, 16u);
  EXPECT_FALSE(c.rings.frames_slot_mib.has_value());
  EXPECT_EQ(default_control_endpoint(user_env()), c.control_endpoint);
}

TEST(DaemonConfig, DefaultDirectoriesForRootAndPlainUsers) {
  Environment root;
  root.is_root = true;
  EXPECT_EQ(default_runtime_dir(root), "/run/azflow");
  EXPECT_EQ(default_state_dir(root), "/var/lib/azflow");
  Environment user;
  user.home = "/home/u";
  EXPECT_EQ(default_state_dir(user), "/home/u/.local/state/azflow");
  EXPECT_TRUE(default_runtime_dir(user).string().starts_with("/tmp/azflow-"));
}

TEST(DaemonConfig, FileOverridesDefaults) {
  TempDir dir;
  const auto file = dir.path() / "azflowd.toml";
  write_file(file, R"(
instance = "beamline7"
workers = 3
integrate_workers = 2
state_dir = "/data/azflow"
log_level = "debug"
[control]
tcp_endpoint = "tcp://*:5555"
[rings]
frames_slots = 12
frames_slot_mib = 20
)");
  const DaemonConfig c = load_config(file, {}, user_env());
  EXPECT_EQ(c.config_file, file);
  EXPECT_EQ(c.instance, "beamline7");
  EXPECT_EQ(c.workers, 3u);
  EXPECT_EQ(c.integrate_workers, 2u);
  EXPECT_EQ(c.state_dir, "/data/azflow");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.control_tcp_endpoint, "tcp://*:5555");
  EXPECT_EQ(c.control_endpoint, "ipc:///run/user/1234/azflow/beamline7.control");
  EXPECT_EQ(c.rings.frames_slots, 12u);
  EXPECT_EQ(c.rings.frames_slot_mib, 20u);
  EXPECT_EQ(c.rings.results_slots, 64u);
}

TEST(DaemonConfig, CommandLineWins) {
  TempDir dir;
  const auto file = dir.path() / "azflowd.toml";
  write_file(file, "workers = 3\nstate_dir = \"/data/azflow\"\n");
  std::optional<std::filesystem::path> config_path;
  ConfigOverrides overrides;
  CLI::App app;
  add_config_options(app, config_path, overrides);
  const std::string config_arg = file.string();
  std::vector<const char*> argv = {"azflowd",    "--config",  config_arg.c_str(),
                                   "--workers",  "5",         "--state-dir",
                                   "/srv/state", "--control", "ipc:///tmp/x/ctl.sock"};
  app.parse(static_cast<int>(argv.size()), argv.data());
  const DaemonConfig c = load_config(config_path, overrides, user_env());
  EXPECT_EQ(c.workers, 5u);
  EXPECT_EQ(c.integrate_workers, 5u);
  EXPECT_EQ(c.state_dir, "/srv/state");
  EXPECT_EQ(c.control_endpoint, "ipc:///tmp/x/ctl.sock");
}

TEST(DaemonConfig, BadOverrideNamesOption) {
  ConfigOverrides o;
  o.control_endpoint = "http://x";
  try {
    (void)load_config(std::nullopt, o, user_env());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--control"), std::string::npos) << e.what();
  }
}

TEST(DaemonConfig, UnknownKeyNamesKeyAndFile) {
  load_error("wrokers = 2\n", "'wrokers'");
  load_error("[rings]\nframe_slots = 2\n", "'rings.frame_slots'");
  load_error("[bogus]\nx = 1\n", "'bogus'");
}

TEST(DaemonConfig, WrongTypeNamesKeyAndFile) {
  load_error("workers = \"four\"\n", "'workers'");
  load_error("[control]\nendpoint = 5\n", "'control.endpoint'");
  load_error("rings = 3\n", "'rings'");
  load_error("[rings]\nresults_slot_mib = \"big\"\n", "'rings.results_slot_mib'");
}

TEST(DaemonConfig, BadValueNamesKeyAndFile) {
  load_error("log_level = \"loud\"\n", "'log_level'");
  load_error("workers = -1\n", "'workers'");
  load_error("[rings]\nframes_slots = 1\n", "'rings.frames_slots'");
  load_error("instance = \"a/b\"\n", "'instance'");
  load_error("[live]\nendpoint = \"udp://x\"\n", "'live.endpoint'");
  load_error("state_dir = \"relative/dir\"\n", "'state_dir'");
  load_error("heartbeat_interval_ms = 0\n", "'heartbeat_interval_ms'");
}

TEST(DaemonConfig, SyntaxErrorNamesFileAndLine) {
  const std::string what = load_error("workers = 2\nlog_level = \n", ":2:");
  EXPECT_FALSE(what.empty());
}

TEST(DaemonConfig, ShippedExampleEqualsDefaults) {
  const char* source_env = std::getenv("AZFLOW_SOURCE_DIR");  // set by ctest
  const char* source = source_env != nullptr ? source_env : ".";
  const std::filesystem::path file = std::filesystem::path(source) / "systemd/azflowd.toml";
  const DaemonConfig from_file = load_config(file, {}, user_env());
  DaemonConfig defaults = load_config(std::nullopt, {}, user_env());
  defaults.config_file = file;
  EXPECT_EQ(describe(from_file), describe(defaults));
}

TEST(DaemonConfig, DescribeListsEveryKey) {
  const std::string text = describe(load_config(std::nullopt, {}, user_env()));
  for (const char* key : {"instance",
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
                          "shard_crash_limit = 3",
                          "[control]",
                          "tcp_endpoint",
                          "trusted_client_keys_dir",
                          "[live]",
                          "[rings]",
                          "compressed_slots",
                          "frames_slots",
                          "results_slots",
                          "compressed_slot_mib",
                          "frames_slot_mib = \"auto\"",
                          "results_slot_mib",
                          "max_total_mib",
                          "[plans]",
                          "cache_max_mb"}) {
    EXPECT_NE(text.find(key), std::string::npos) << key;
  }
}

TEST(DaemonConfig, SlotBytes) {
  EXPECT_EQ(resolve_slot_bytes(std::nullopt, 0), std::size_t{1} << 20);
  EXPECT_EQ(resolve_slot_bytes(std::nullopt, (std::size_t{1} << 20) + 1), std::size_t{2} << 20);
  EXPECT_EQ(resolve_slot_bytes(std::size_t{20}, 5), std::size_t{20} << 20);
}

}  // namespace
}  // namespace azflow::daemon
