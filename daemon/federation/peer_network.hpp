#pragma once
// The peer layer of a federated azflowd (docs/federation.md): who the peers are, whether they are
// alive, and the CurveZMQ sockets that carry messages to and from them. Job logic (shards, rows)
// lives in the daemon; this class only moves messages and keeps the membership.
//
// Sockets, all in the daemon's ZeroMQ context and used from its main thread only:
//  - a ROUTER bound at the peer endpoint, CurveZMQ server. Peers that work for this node's jobs
//    connect to it; their routing id is their node name, checked against the node name of the
//    key that ZAP accepted (message property User-Id).
//  - one DEALER "link" per known peer, CurveZMQ client (the peer's public key comes from the
//    trusted folder, <trusted_keys_dir>/<node>.pub), connected to the peer's endpoint; over it
//    this node works for the peer's jobs and sends its heartbeats.
//  - a ZAP handler (RFC 27, REP at inproc://zeromq.zap.01) for the peer endpoint (ZAP domain
//    "azflow-peers") and the CurveZMQ TCP control endpoint ("azflow-control"). Peers and control
//    clients are trusted separately: a peer is accepted only if its public key is one of the
//    peers' folder's <node>.pub files, a control client only if its key is one of the control
//    clients' folder's; a key in the other role's folder (or in both) is refused. Refusals are
//    counted and logged at most once per 10 s per endpoint kind (with the count of the others);
//    nothing is kept per refused connection.
//
// Membership: a peer is "connecting" until a first message arrives from it, "connected" while it
// is heard from (on either socket) within lost_after_ms, then "lost" (until it is heard again);
// "untrusted" while the trusted folder has no key for it. A "hello" on the ROUTER from an unknown
// node adds it (and a link back to its endpoint); the "welcome" answer lists the known peers, so
// a node that joins one coordinator learns every other peer.
//
// Message format: every message is one JSON object {"type": ..., "node": sender, ...}, optionally
// followed by one binary frame (a result row's sums). Messages the layer does not consume itself
// ("hello", "welcome") are handed to the caller by receive().

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "daemon/federation/curve_keys.hpp"
#include "daemon/federation/federation_config.hpp"
#include "daemon/federation/rate_limited_log.hpp"

namespace azflow::daemon {

/// What this node knows about one peer.
struct PeerInfo {
  enum class State { kConnecting, kConnected, kLost, kUntrusted };
  std::string node;
  std::string endpoint;
  State state = State::kConnecting;
  std::unique_ptr<zmq::socket_t> link;  ///< DEALER to the peer's endpoint (null: no key)
  std::chrono::steady_clock::time_point last_heard{};
  std::int64_t last_heard_unix_ms = 0;                 ///< 0 = never
  nlohmann::json capacity = nlohmann::json::object();  ///< from its heartbeats
  bool offers = false;        ///< its last heartbeat answer: it has shards to hand out to this node
  bool works_for_us = false;  ///< it has connected to our ROUTER (it can take our shards)
};

/// "connecting", "connected", "lost" or "untrusted".
std::string_view peer_state_name(PeerInfo::State state) noexcept;

/// One message from a peer, for the daemon's job logic.
struct PeerMessage {
  std::string node;          ///< the sender (authenticated on the ROUTER)
  bool from_worker = false;  ///< true: arrived on our ROUTER (the sender works for our jobs)
  nlohmann::json body;       ///< the JSON object
  zmq::message_t payload;    ///< the binary frame, if any (empty otherwise)
  bool has_payload = false;
};

class PeerNetwork {
 public:
  /// Creates or loads this node's key pair (<state_dir>/curve), starts the ZAP handler, binds the
  /// peer endpoint (CurveZMQ server) and connects to the static peers and the join address.
  /// `capacity` is sent in every heartbeat. `client_keys_dir` holds the <name>.pub keys of the
  /// clients of a CurveZMQ control endpoint (control.trusted_client_keys_dir), apart from the
  /// peers' folder config.trusted_keys_dir. Throws azflow::Error (kIo) naming the endpoint if the
  /// bind fails, and as ensure_key_pair.
  PeerNetwork(zmq::context_t& context, FederationConfig config,
              const std::filesystem::path& state_dir, nlohmann::json capacity,
              std::filesystem::path client_keys_dir);
  ~PeerNetwork();
  PeerNetwork(const PeerNetwork&) = delete;
  PeerNetwork& operator=(const PeerNetwork&) = delete;

  /// Serves the ZAP handler and receives up to `max` messages (no waiting); membership messages
  /// are handled here, the others returned in arrival order.
  std::vector<PeerMessage> receive(std::size_t max);

  /// Sends heartbeats when due ({"type":"heartbeat", "capacity", ...extras(node)} on every link)
  /// and updates the states; returns the nodes declared lost by this call.
  std::vector<std::string> tick(const std::function<nlohmann::json(const std::string&)>& extras);

  /// Sends to a peer that works for us (over the ROUTER). False if it is not connected or its
  /// queue is full (the message is not sent).
  bool send_to_worker(const std::string& node, const nlohmann::json& body,
                      std::span<const std::byte> payload = {});
  /// Sends to a peer whose jobs we work for (over our link to it). False if there is no link or
  /// its queue is full.
  bool send_to_coordinator(const std::string& node, const nlohmann::json& body,
                           std::span<const std::byte> payload = {});

  /// The peer, or nullptr.
  [[nodiscard]] const PeerInfo* find(const std::string& node) const;
  /// Every known peer, by node name.
  [[nodiscard]] const std::map<std::string, PeerInfo>& peers() const noexcept { return peers_; }
  /// Marks a peer's last answer as offering work or not.
  void set_offers(const std::string& node, bool offers);

  /// This node's name, bound peer endpoint and public key.
  [[nodiscard]] const std::string& node() const noexcept { return config_.node; }
  [[nodiscard]] const std::string& endpoint() const noexcept { return bound_endpoint_; }
  [[nodiscard]] const std::string& public_key() const noexcept { return keys_.public_z85; }
  /// This node's secret key (Z85), for the CurveZMQ TCP control endpoint.
  [[nodiscard]] const std::string& secret_key() const noexcept { return keys_.secret_z85; }
  [[nodiscard]] const FederationConfig& config() const noexcept { return config_; }

  /// Refused CURVE handshakes since the start (ZAP answers other than 200).
  [[nodiscard]] std::uint64_t refused() const noexcept { return refused_; }

 private:
  /// Where a public key lies: its name in the peers' and in the control clients' folder.
  struct KeyOwner {
    std::string peer, client;  ///< <name> of <name>.pub in that folder; "" = not there
  };
  void serve_zap();
  /// The folders' entries for `key_z85`; the folders are scanned again for an unknown key, at
  /// most once a second (a flood of random keys costs no more than that).
  KeyOwner owner_of_key(const std::string& key_z85);
  /// ZAP answer for a CURVE client key: "" (accepted, `user` set) or why it is refused.
  std::string check_key(const std::string& key_z85, bool control, std::string& user);
  PeerInfo& add_peer(const std::string& node, const std::string& endpoint);
  void connect_link(PeerInfo& peer);
  void heard_from(PeerInfo& peer);
  bool send(zmq::socket_t& socket, const std::string* identity, const nlohmann::json& body,
            std::span<const std::byte> payload);
  std::optional<PeerMessage> receive_router();
  std::optional<PeerMessage> receive_link(PeerInfo& peer);
  void handle_membership(PeerMessage& message);
  nlohmann::json peer_list() const;

  FederationConfig config_;
  zmq::context_t* context_;
  CurveKeyPair keys_;
  nlohmann::json capacity_;
  zmq::socket_t zap_;
  zmq::socket_t router_;
  std::string bound_endpoint_;
  std::map<std::string, PeerInfo> peers_;
  std::filesystem::path client_keys_dir_;
  std::map<std::string, KeyOwner> trusted_;  // Z85 key -> names, cached scan of both folders
  std::chrono::steady_clock::time_point scanned_{};
  RateLimitedLog peer_refusals_{"refused peer connections", std::chrono::seconds(10)};
  RateLimitedLog control_refusals_{"refused control connections", std::chrono::seconds(10)};
  std::chrono::steady_clock::time_point last_heartbeat_{};
  std::uint64_t refused_ = 0;
};

}  // namespace azflow::daemon
