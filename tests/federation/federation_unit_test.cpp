// Unit tests of the federation's configuration ([federation] table and options), node
// selections of job specs, CurveZMQ key files and the allowed-roots check of peer requests.

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <fstream>

#include "base/error.hpp"
#include "daemon/config.hpp"
#include "daemon/federation/curve_keys.hpp"
#include "daemon/job_spec.hpp"
#include "daemon/path_policy.hpp"

namespace {

namespace fs = std::filesystem;
using namespace azflow::daemon;

class TempDir {
 public:
  TempDir() : path_(fs::temp_directory_path() / ("azfed_unit_" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

Environment test_env() {
  Environment env;
  env.home = "/home/u";
  env.hardware_threads = 4;
  return env;
}

DaemonConfig load_text(const TempDir& dir, const std::string& toml,
                       const ConfigOverrides& overrides = {}) {
  const fs::path file = dir.path() / "azflowd.toml";
  std::ofstream(file) << toml;
  return load_config(file, overrides, test_env());
}

TEST(FederationConfig, ReadsTheFederationTable) {
  TempDir dir;
  const DaemonConfig c = load_text(dir,
                                   "[federation]\nnode = \"n1\"\n"
                                   "peer_endpoint = \"tcp://127.0.0.1:7000\"\n"
                                   "peers = [\"n2@tcp://h2:7000\", \"n3=tcp://h3:7000\"]\n"
                                   "trusted_keys_dir = \"/etc/azflow/trusted\"\n"
                                   "heartbeat_ms = 200\nlost_after_ms = 1000\n");
  EXPECT_TRUE(c.federation.enabled());
  EXPECT_EQ(c.federation.node, "n1");
  ASSERT_EQ(c.federation.peers.size(), 2u);
  EXPECT_EQ(c.federation.peers[0], (PeerAddress{"n2", "tcp://h2:7000"}));
  EXPECT_EQ(c.federation.peers[1], (PeerAddress{"n3", "tcp://h3:7000"}));
  EXPECT_EQ(c.federation.trusted_keys_dir, "/etc/azflow/trusted");
  EXPECT_EQ(c.federation.heartbeat_ms, 200u);
  EXPECT_EQ(c.federation.lost_after_ms, 1000u);
}

TEST(FederationConfig, PeersAsATableAndDefaults) {
  TempDir dir;
  const DaemonConfig c = load_text(
      dir, "[federation]\npeer_endpoint = \"tcp://*:7000\"\npeers = { n2 = \"tcp://h2:7000\" }\n");
  ASSERT_EQ(c.federation.peers.size(), 1u);
  EXPECT_EQ(c.federation.peers[0].node, "n2");
  EXPECT_EQ(c.federation.node, host_node_name());
  EXPECT_EQ(c.federation.trusted_keys_dir, c.state_dir / "curve" / "trusted");
  EXPECT_EQ(c.control_trusted_keys_dir, c.state_dir / "curve" / "clients");
  EXPECT_EQ(c.federation.heartbeat_ms, 1000u);
  const DaemonConfig off = load_config(std::nullopt, {}, test_env());
  EXPECT_FALSE(off.federation.enabled());
  EXPECT_EQ(off.allowed_input_roots, std::vector<fs::path>{"/"});
}

TEST(FederationConfig, CommandLineWins) {
  TempDir dir;
  ConfigOverrides o;
  o.federation.node = "cli";
  o.federation.peer_endpoint = "tcp://127.0.0.1:7001";
  o.federation.join = "boss@tcp://10.0.0.1:7000";
  const DaemonConfig c = load_text(dir, "[federation]\nnode = \"file\"\n", o);
  EXPECT_EQ(c.federation.node, "cli");
  ASSERT_TRUE(c.federation.join.has_value());
  EXPECT_EQ(*c.federation.join, (PeerAddress{"boss", "tcp://10.0.0.1:7000"}));
}

TEST(FederationConfig, BadValuesNameTheKey) {
  TempDir dir;
  const auto message = [&](const std::string& toml) {
    try {
      load_text(dir, toml);
    } catch (const azflow::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("[federation]\nbogus = 1\n").find("federation.bogus"), std::string::npos);
  EXPECT_NE(message("[federation]\npeer_endpoint = \"ipc:///x\"\n").find("peer_endpoint"),
            std::string::npos);
  EXPECT_NE(message("[federation]\npeer_endpoint = \"tcp://h:1\"\npeers = [\"tcp://h:2\"]\n")
                .find("NODE@tcp://HOST:PORT"),
            std::string::npos);
  EXPECT_NE(message("[federation]\nnode = \"a/b\"\n").find("node name"), std::string::npos);
  EXPECT_NE(
      message("[federation]\nheartbeat_ms = 1000\nlost_after_ms = 1500\n").find("lost_after_ms"),
      std::string::npos);
  EXPECT_NE(message("[federation]\njoin = \"a@tcp://h:1\"\n").find("peer endpoint"),
            std::string::npos);
  EXPECT_NE(message("allowed_input_roots = [\"data\"]\n").find("allowed_input_roots"),
            std::string::npos);
}

// Issue 14, finding 4: control clients and peers are trusted through two folders; a
// configuration that names one folder for both is refused before anything starts.
TEST(FederationConfig, ClientAndPeerKeysNeedTwoFolders) {
  TempDir dir;
  const DaemonConfig c = load_text(dir,
                                   "[control]\ntrusted_client_keys_dir = \"/etc/azflow/clients\"\n"
                                   "[federation]\ntrusted_keys_dir = \"/etc/azflow/peers\"\n");
  EXPECT_EQ(c.control_trusted_keys_dir, "/etc/azflow/clients");
  ConfigOverrides o;
  o.control_trusted_keys_dir = "/etc/azflow/peers/.";  // the same folder, spelt otherwise
  try {
    load_text(dir, "[federation]\ntrusted_keys_dir = \"/etc/azflow/peers\"\n", o);
    ADD_FAILURE() << "one folder for both accepted";
  } catch (const azflow::Error& e) {
    EXPECT_NE(std::string(e.what()).find("control.trusted_client_keys_dir and "
                                         "federation.trusted_keys_dir are the same folder"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(load_text(dir, "[control]\ntrusted_client_keys_dir = \"rel\"\n"), azflow::Error);
}

TEST(NodeSelection, ParsesAndRoundTrips) {
  EXPECT_EQ(parse_node_selection("all").kind, NodeSelection::Kind::kAll);
  EXPECT_EQ(parse_node_selection("local").kind, NodeSelection::Kind::kLocal);
  const NodeSelection three = parse_node_selection("3");
  EXPECT_EQ(three.kind, NodeSelection::Kind::kCount);
  EXPECT_EQ(three.count, 3u);
  const NodeSelection names = parse_node_selection("gpu1,gpu2");
  EXPECT_EQ(names.names, (std::vector<std::string>{"gpu1", "gpu2"}));
  EXPECT_THROW(parse_node_selection("0"), FieldError);
  EXPECT_THROW(parse_node_selection("a,,b"), FieldError);

  JobSpec spec;
  spec.datasets = {"/data/x.h5"};
  spec.poni_path = "/data/x.poni";
  spec.nodes = names;
  nlohmann::json j = to_json(spec);
  j.erase("poni_text");
  EXPECT_EQ(job_spec_from_json(j).nodes, names);
  j["mode"] = "bulk";
  try {
    job_spec_from_json(j);
    ADD_FAILURE() << "bulk with nodes accepted";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "nodes");
  }
}

TEST(CurveKeys, CreatedOnceWithASecretFileOfMode0600) {
  TempDir dir;
  bool created = false;
  const CurveKeyPair keys = ensure_key_pair(dir.path(), "n1", &created);
  EXPECT_TRUE(created);
  EXPECT_EQ(keys.public_z85.size(), 40u);
  struct stat st {};
  ASSERT_EQ(::stat(secret_key_path(dir.path(), "n1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const CurveKeyPair again = ensure_key_pair(dir.path(), "n1", &created);
  EXPECT_FALSE(created);
  EXPECT_EQ(again.public_z85, keys.public_z85);
  EXPECT_EQ(again.secret_z85, keys.secret_z85);
  EXPECT_EQ(trusted_public_key(dir.path() / "curve", "n1"), keys.public_z85);
  EXPECT_EQ(trusted_public_key(dir.path() / "curve", "n2"), std::nullopt);
  std::ofstream(dir.path() / "curve" / "bad.pub") << "not a key\n";
  EXPECT_THROW(trusted_public_key(dir.path() / "curve", "bad"), azflow::Error);
  fs::remove(secret_key_path(dir.path(), "n1"));
  EXPECT_THROW(ensure_key_pair(dir.path(), "n1"), azflow::Error);
}

TEST(AllowedRoots, PeerShardInputsMustLieUnderARoot) {
  // The check a peer applies to a shard's spec (daemon/path_policy.hpp, as on enqueue).
  EXPECT_TRUE(path_within("/data/beam/x.h5", {"/data"}));
  EXPECT_TRUE(path_within("/data/beam/x.h5", {"/"}));
  EXPECT_FALSE(path_within("/database/x.h5", {"/data"}));
  EXPECT_FALSE(path_within("/data/../etc/passwd", {"/data"}));
  JobSpec spec;
  spec.datasets = {"/data/x.h5", "/other/y.h5"};
  try {
    check_input_paths(spec, {"/data"});
    ADD_FAILURE() << "accepted";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "spec.datasets[1]");
  }
  spec.datasets = {"/data/x.h5"};
  spec.dark_path = "/elsewhere/dark.h5::/entry/data";
  try {
    check_input_paths(spec, {"/data"});
    ADD_FAILURE() << "accepted";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "spec.dark_path");
  }
}

}  // namespace
