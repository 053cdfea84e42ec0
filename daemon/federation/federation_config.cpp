#include "daemon/federation/federation_config.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <sstream>

#include "base/error.hpp"
#include "daemon/federation/federation_toml.hpp"

namespace azflow::daemon {

namespace {

[[noreturn]] void fail(const std::string& origin, const std::string& message) {
  throw Error(ErrorCategory::kConfig, origin + ": " + message);
}

void check_tcp_endpoint(const std::string& endpoint, const std::string& origin) {
  if (!endpoint.starts_with("tcp://") || endpoint.find(':', 6) == std::string::npos) {
    fail(origin, "'" + endpoint + "' is not a tcp://HOST:PORT endpoint");
  }
}

std::string key_origin(const std::filesystem::path& file, const std::string& key) {
  return file.string() + ": key 'federation." + key + "'";
}

std::string string_value(const toml::node& node, const std::string& origin) {
  if (!node.is_string()) fail(origin, "expected a string");
  return node.as_string()->get();
}

std::size_t ms_value(const toml::node& node, const std::string& origin) {
  if (!node.is_integer()) fail(origin, "expected an integer (milliseconds)");
  const std::int64_t v = node.as_integer()->get();
  if (v < 10 || v > 3600000) fail(origin, std::to_string(v) + " is outside [10, 3600000] ms");
  return static_cast<std::size_t>(v);
}

void read_peers(const toml::node& node, const std::string& origin, FederationConfig& out) {
  if (const toml::array* list = node.as_array()) {
    for (const toml::node& item : *list) {
      out.peers.push_back(parse_peer_address(string_value(item, origin), origin));
    }
    return;
  }
  if (const toml::table* table = node.as_table()) {
    for (const auto& [name, endpoint] : *table) {
      const std::string n(name.str());
      out.peers.push_back(
          parse_peer_address(n + "@" + string_value(endpoint, origin + "." + n), origin + "." + n));
    }
    return;
  }
  fail(origin, "expected a list of \"NODE@tcp://HOST:PORT\" or a table NODE = \"tcp://...\"");
}

}  // namespace

void check_node_name(const std::string& node, const std::string& origin) {
  const bool ok = !node.empty() && node.size() <= 64 && node != "." && node != ".." &&
                  std::all_of(node.begin(), node.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
                  });
  if (!ok) fail(origin, "node name '" + node + "' is not 1-64 characters of [A-Za-z0-9._-]");
}

PeerAddress parse_peer_address(const std::string& text, const std::string& origin) {
  const std::size_t tcp = text.find("tcp://");
  if (tcp == std::string::npos || tcp < 2 || (text[tcp - 1] != '@' && text[tcp - 1] != '=')) {
    fail(origin, "'" + text + "' is not NODE@tcp://HOST:PORT (or NODE=tcp://HOST:PORT)");
  }
  PeerAddress a{text.substr(0, tcp - 1), text.substr(tcp)};
  check_node_name(a.node, origin);
  check_tcp_endpoint(a.endpoint, origin);
  return a;
}

void read_federation_table(const toml::table& table, const std::filesystem::path& file,
                           FederationConfig& out) {
  constexpr std::array<std::string_view, 7> kKnown = {
      "node",         "peer_endpoint", "peers", "join", "trusted_keys_dir",
      "heartbeat_ms", "lost_after_ms"};
  for (const auto& [key, node] : table) {
    const std::string k(key.str());
    const std::string origin = key_origin(file, k);
    if (std::find(kKnown.begin(), kKnown.end(), k) == kKnown.end()) fail(origin, "unknown key");
    if (k == "node") {
      out.node = string_value(node, origin);
      if (!out.node.empty()) check_node_name(out.node, origin);
    } else if (k == "peer_endpoint") {
      out.peer_endpoint = string_value(node, origin);
      if (!out.peer_endpoint.empty()) check_tcp_endpoint(out.peer_endpoint, origin);
    } else if (k == "peers") {
      read_peers(node, origin, out);
    } else if (k == "join") {
      const std::string join = string_value(node, origin);
      if (!join.empty()) out.join = parse_peer_address(join, origin);
    } else if (k == "trusted_keys_dir") {
      out.trusted_keys_dir = string_value(node, origin);
      if (!out.trusted_keys_dir.empty() && !out.trusted_keys_dir.is_absolute()) {
        fail(origin, "expected an absolute path");
      }
    } else if (k == "heartbeat_ms") {
      out.heartbeat_ms = ms_value(node, origin);
    } else {
      out.lost_after_ms = ms_value(node, origin);
    }
  }
}

void resolve_federation(const FederationOverrides& o, const std::filesystem::path& state_dir,
                        FederationConfig& c) {
  if (o.node) {
    check_node_name(*o.node, "--node");
    c.node = *o.node;
  }
  if (o.peer_endpoint) {
    check_tcp_endpoint(*o.peer_endpoint, "--peer-endpoint");
    c.peer_endpoint = *o.peer_endpoint;
  }
  for (const std::string& p : o.peers) c.peers.push_back(parse_peer_address(p, "--peer"));
  if (o.join) c.join = parse_peer_address(*o.join, "--join");
  if (o.trusted_keys_dir) c.trusted_keys_dir = std::filesystem::absolute(*o.trusted_keys_dir);
  if (c.node.empty()) c.node = host_node_name();
  if (c.trusted_keys_dir.empty()) c.trusted_keys_dir = state_dir / "curve" / "trusted";
  if (c.lost_after_ms < 2 * c.heartbeat_ms) {
    fail("federation.lost_after_ms", std::to_string(c.lost_after_ms) +
                                         " ms is shorter than 2 heartbeats (heartbeat_ms = " +
                                         std::to_string(c.heartbeat_ms) + ")");
  }
  if (!c.enabled() && (!c.peers.empty() || c.join)) {
    fail("federation", "peers or join need a peer endpoint (--peer-endpoint tcp://ADDR:PORT)");
  }
  for (const PeerAddress& p : c.peers) {
    if (p.node == c.node) fail("federation.peers", "peer '" + p.node + "' is this node's name");
  }
}

void add_federation_options(CLI::App& app, FederationOverrides& o) {
  app.add_option("--node", o.node, "federation: this daemon's node name (default: host name)");
  app.add_option("--peer-endpoint", o.peer_endpoint,
                 "federation: endpoint for peers, tcp://ADDR:PORT (CurveZMQ; enables federation)");
  app.add_option("--peer", o.peers, "federation: a static peer NODE@tcp://HOST:PORT (repeatable)");
  app.add_option("--join", o.join, "federation: join the coordinator NODE@tcp://HOST:PORT");
  app.add_option(
      "--trusted-keys", o.trusted_keys_dir,
      "federation: folder of trusted <node>.pub keys (default <state-dir>/curve/trusted)");
}

std::string describe_federation(const FederationConfig& c) {
  std::ostringstream out;
  out << "[federation]\nnode = \"" << c.node << "\"\npeer_endpoint = \"" << c.peer_endpoint
      << "\"\npeers = [";
  for (std::size_t i = 0; i < c.peers.size(); ++i) {
    out << (i ? ", " : "") << "\"" << c.peers[i].node << "@" << c.peers[i].endpoint << "\"";
  }
  out << "]\njoin = \"" << (c.join ? c.join->node + "@" + c.join->endpoint : "") << "\"\n"
      << "trusted_keys_dir = \"" << c.trusted_keys_dir.string() << "\"\n"
      << "heartbeat_ms = " << c.heartbeat_ms << "\nlost_after_ms = " << c.lost_after_ms << "\n";
  return out.str();
}

std::string host_node_name() {
  std::array<char, 256> name{};
  if (::gethostname(name.data(), name.size() - 1) != 0 || name[0] == '\0') return "localhost";
  std::string n(name.data());
  n = n.substr(0, n.find('.'));
  return n.empty() ? "localhost" : n;
}

}  // namespace azflow::daemon
