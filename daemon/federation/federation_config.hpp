#pragma once
// Federation settings of azflowd (docs/federation.md): the node name, the peer endpoint, static
// peers, the coordinator to join, the trusted-keys folder and the heartbeat timing. Read from the
// [federation] table of the TOML configuration and from the command line (--node,
// --peer-endpoint, --peer, --join, --trusted-keys), validated before the daemon starts anything.
//
// A peer address names the node and its endpoint, "NODE@tcp://HOST:PORT" (or "NODE=tcp://..."):
// the node name selects the peer's public key, <trusted_keys_dir>/<NODE>.pub, which a CurveZMQ
// client needs before it can connect.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace azflow::daemon {

/// One peer: its node name and its peer endpoint (tcp://HOST:PORT).
struct PeerAddress {
  std::string node;
  std::string endpoint;
  bool operator==(const PeerAddress&) const = default;
};

/// The [federation] settings, resolved. Federation is on when peer_endpoint is set.
struct FederationConfig {
  std::string node;                 ///< this daemon's node name (default: the host name)
  std::string peer_endpoint;        ///< ROUTER for peers, tcp://ADDR:PORT ("" = federation off)
  std::vector<PeerAddress> peers;   ///< static peers
  std::optional<PeerAddress> join;  ///< coordinator to join (it tells about the others)
  std::filesystem::path
      trusted_keys_dir;              ///< <node>.pub files accepted (default <state>/curve/trusted)
  std::size_t heartbeat_ms = 1000;   ///< heartbeat period on every peer link
  std::size_t lost_after_ms = 5000;  ///< a peer silent this long is lost (>= 2 heartbeats)

  /// Whether this daemon takes part in a federation.
  [[nodiscard]] bool enabled() const noexcept { return !peer_endpoint.empty(); }
};

/// Command-line federation overrides; each set value wins over the file.
struct FederationOverrides {
  std::optional<std::string> node;
  std::optional<std::string> peer_endpoint;
  std::vector<std::string> peers;  ///< --peer NODE@tcp://HOST:PORT (repeatable, adds)
  std::optional<std::string> join;
  std::optional<std::filesystem::path> trusted_keys_dir;
};

/// Parses "NODE@tcp://HOST:PORT" or "NODE=tcp://HOST:PORT". Throws azflow::Error (kConfig)
/// prefixed by `origin` (e.g. "--join") for anything else, or for a node name that is not 1-64
/// characters of [A-Za-z0-9._-].
PeerAddress parse_peer_address(const std::string& text, const std::string& origin);

/// Throws azflow::Error (kConfig) prefixed by `origin` unless `node` is 1-64 characters of
/// [A-Za-z0-9._-] (it names key files and ZeroMQ routing ids).
void check_node_name(const std::string& node, const std::string& origin);

/// Applies `overrides`, then the defaults: node = host name, trusted_keys_dir =
/// <state_dir>/curve/trusted. Checks that lost_after_ms >= 2 x heartbeat_ms and that peers or a
/// join address come with a peer endpoint. Throws azflow::Error (kConfig).
void resolve_federation(const FederationOverrides& overrides,
                        const std::filesystem::path& state_dir, FederationConfig& config);

/// Declares --node, --peer-endpoint, --peer, --join and --trusted-keys on `app`.
void add_federation_options(CLI::App& app, FederationOverrides& overrides);

/// The [federation] table as TOML text, for describe().
std::string describe_federation(const FederationConfig& config);

/// This machine's host name (gethostname), cut at the first '.', or "localhost".
std::string host_node_name();

}  // namespace azflow::daemon
