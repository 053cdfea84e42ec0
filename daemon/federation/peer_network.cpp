#include "daemon/federation/peer_network.hpp"
#include "daemon/json_text.hpp"

#include <unistd.h>

#include <array>

#include <spdlog/spdlog.h>

#include "base/error.hpp"

namespace azflow::daemon {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
// Messages queued per peer before sends fail (bounded memory: a 1D row of 1000 bins is 32 KB; a
// row that cannot be queued is counted and redone by the coordinator after shard_end).
constexpr int kLinkSendHighWaterMark = 1000;
constexpr std::size_t kMaxPeerMessageBytes = std::size_t{256} << 20;
constexpr auto kKeyRescanInterval = std::chrono::seconds(1);

std::int64_t unix_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// The endpoint peers can connect to: a wildcard address replaced by this host's name.
std::string advertised(const std::string& bound) {
  for (const std::string wildcard : {"tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"}) {
    if (bound.starts_with(wildcard)) {
      std::array<char, 256> host{};
      ::gethostname(host.data(), host.size() - 1);
      return "tcp://" + std::string(host.data()) + ":" + bound.substr(wildcard.size());
    }
  }
  return bound;
}

}  // namespace

std::string_view peer_state_name(PeerInfo::State state) noexcept {
  switch (state) {
    case PeerInfo::State::kConnecting:
      return "connecting";
    case PeerInfo::State::kConnected:
      return "connected";
    case PeerInfo::State::kLost:
      return "lost";
    case PeerInfo::State::kUntrusted:
      return "untrusted";
  }
  return "?";
}

PeerNetwork::PeerNetwork(zmq::context_t& context, FederationConfig config,
                         const std::filesystem::path& state_dir, nlohmann::json capacity,
                         std::filesystem::path client_keys_dir)
    : config_(std::move(config)),
      context_(&context),
      capacity_(std::move(capacity)),
      zap_(context, zmq::socket_type::rep),
      router_(context, zmq::socket_type::router),
      client_keys_dir_(std::move(client_keys_dir)) {
  bool created = false;
  keys_ = ensure_key_pair(state_dir, config_.node, &created);
  spdlog::info("federation: node {} key {} ({})", config_.node, keys_.public_z85,
               created ? "created " + public_key_path(state_dir, config_.node).string()
                       : public_key_path(state_dir, config_.node).string());
  std::error_code ec;
  std::filesystem::create_directories(config_.trusted_keys_dir, ec);
  if (!client_keys_dir_.empty()) std::filesystem::create_directories(client_keys_dir_, ec);
  zap_.set(zmq::sockopt::linger, 0);
  zap_.bind(kZapEndpoint);
  router_.set(zmq::sockopt::linger, 0);
  router_.set(zmq::sockopt::router_handover, true);
  router_.set(zmq::sockopt::router_mandatory, true);
  router_.set(zmq::sockopt::sndhwm, kLinkSendHighWaterMark);
  router_.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(kMaxPeerMessageBytes));
  router_.set(zmq::sockopt::curve_server, true);
  router_.set(zmq::sockopt::curve_secretkey, keys_.secret_z85);
  router_.set(zmq::sockopt::zap_domain, std::string("azflow-peers"));
  try {
    router_.bind(config_.peer_endpoint);
  } catch (const zmq::error_t& e) {
    throw Error(ErrorCategory::kIo,
                "peer endpoint " + config_.peer_endpoint + ": cannot bind: " + e.what());
  }
  bound_endpoint_ = advertised(router_.get(zmq::sockopt::last_endpoint));
  spdlog::info(
      "federation: node {} serving peers on {} (peers' keys in {}, control clients' in {})",
      config_.node, bound_endpoint_, config_.trusted_keys_dir.string(), client_keys_dir_.string());
  for (const PeerAddress& p : config_.peers) add_peer(p.node, p.endpoint);
  if (config_.join) add_peer(config_.join->node, config_.join->endpoint);
}

PeerNetwork::~PeerNetwork() = default;

PeerInfo& PeerNetwork::add_peer(const std::string& node, const std::string& endpoint) {
  auto [it, added] = peers_.try_emplace(node);
  PeerInfo& peer = it->second;
  if (added) {
    peer.node = node;
    spdlog::info("federation: peer {} at {}", node, endpoint);
  }
  if (peer.endpoint != endpoint || !peer.link) {
    peer.endpoint = endpoint;
    connect_link(peer);
  }
  return peer;
}

/// (Re)creates the DEALER link to a peer, if its public key is trusted.
void PeerNetwork::connect_link(PeerInfo& peer) {
  std::optional<std::string> key;
  try {
    key = trusted_public_key(config_.trusted_keys_dir, peer.node);
  } catch (const Error& e) {
    spdlog::error("federation: peer {}: {}", peer.node, e.what());
  }
  if (!key) {
    if (peer.state != PeerInfo::State::kUntrusted) {
      spdlog::warn("federation: no trusted key {}/{}.pub: not connecting to peer {}",
                   config_.trusted_keys_dir.string(), peer.node, peer.node);
    }
    peer.state = PeerInfo::State::kUntrusted;
    peer.link.reset();
    return;
  }
  auto link = std::make_unique<zmq::socket_t>(*context_, zmq::socket_type::dealer);
  link->set(zmq::sockopt::linger, 200);  // at shutdown: the last give_back messages get out
  link->set(zmq::sockopt::routing_id, config_.node);
  link->set(zmq::sockopt::sndhwm, kLinkSendHighWaterMark);
  link->set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(kMaxPeerMessageBytes));
  link->set(zmq::sockopt::curve_serverkey, *key);
  link->set(zmq::sockopt::curve_publickey, keys_.public_z85);
  link->set(zmq::sockopt::curve_secretkey, keys_.secret_z85);
  link->set(zmq::sockopt::reconnect_ivl, 100);
  link->set(zmq::sockopt::reconnect_ivl_max, 1000);
  link->connect(peer.endpoint);
  peer.link = std::move(link);
  if (peer.state == PeerInfo::State::kUntrusted) peer.state = PeerInfo::State::kConnecting;
  send(*peer.link, nullptr,
       {{"type", "hello"},
        {"node", config_.node},
        {"endpoint", bound_endpoint_},
        {"capacity", capacity_}},
       {});
}

void PeerNetwork::heard_from(PeerInfo& peer) {
  peer.last_heard = Clock::now();
  peer.last_heard_unix_ms = unix_ms();
  if (peer.state == PeerInfo::State::kConnected) return;
  spdlog::info("federation: peer {} {}", peer.node,
               peer.state == PeerInfo::State::kLost ? "is back" : "connected");
  peer.state = PeerInfo::State::kConnected;
}

const PeerInfo* PeerNetwork::find(const std::string& node) const {
  const auto it = peers_.find(node);
  return it == peers_.end() ? nullptr : &it->second;
}

void PeerNetwork::set_offers(const std::string& node, bool offers) {
  const auto it = peers_.find(node);
  if (it != peers_.end()) it->second.offers = offers;
}

// ---------------------------------------------------------------- ZAP (RFC 27)

PeerNetwork::KeyOwner PeerNetwork::owner_of_key(const std::string& key_z85) {
  if (const auto it = trusted_.find(key_z85); it != trusted_.end()) return it->second;
  if (Clock::now() - scanned_ < kKeyRescanInterval) return {};
  scanned_ = Clock::now();
  trusted_.clear();  // rescan: keys may have been added or removed since
  const auto scan = [this](const std::filesystem::path& dir, std::string KeyOwner::*role) {
    std::error_code ec;
    if (dir.empty()) return;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
      if (entry.path().extension() != ".pub") continue;
      try {
        if (auto key = read_public_key(entry.path())) {
          trusted_[*key].*role = entry.path().stem().string();
        }
      } catch (const Error& e) {
        spdlog::warn("federation: ignoring {}", e.what());
      }
    }
  };
  scan(config_.trusted_keys_dir, &KeyOwner::peer);
  scan(client_keys_dir_, &KeyOwner::client);
  const auto it = trusted_.find(key_z85);
  return it == trusted_.end() ? KeyOwner{} : it->second;
}

std::string PeerNetwork::check_key(const std::string& key, bool control, std::string& user) {
  const KeyOwner owner = owner_of_key(key);
  const std::string peers = "the peers' trusted-keys folder " + config_.trusted_keys_dir.string();
  const std::string clients = "the control clients' folder " + client_keys_dir_.string();
  if (!owner.peer.empty() && !owner.client.empty()) {
    return "public key " + key + " is in both " + peers + " and " + clients +
           ": a key is a peer's or a client's, never both";
  }
  const std::string& name = control ? owner.client : owner.peer;
  if (!name.empty()) {
    user = name;
    return "";
  }
  if (control && !owner.peer.empty()) {
    return "public key " + key + " is a peer's key (" + owner.peer + ".pub in " + peers +
           "), not a control client's: control clients' keys go in " + clients;
  }
  if (!control && !owner.client.empty()) {
    return "public key " + key + " is a control client's key (" + owner.client + ".pub in " +
           clients + "), not a peer's";
  }
  return "public key " + key + " is not in " + (control ? clients : peers);
}

void PeerNetwork::serve_zap() {
  peer_refusals_.flush();
  control_refusals_.flush();
  for (int n = 0; n < 64; ++n) {
    std::vector<zmq::message_t> request;
    if (!zmq::recv_multipart(zap_, std::back_inserter(request), zmq::recv_flags::dontwait)) return;
    // version, request id, domain, address, identity, mechanism, credentials...
    if (request.size() < 6) continue;  // REP must still answer: malformed requests cannot occur
    const bool control = request[2].to_string_view() == "azflow-control";
    const std::string_view mechanism = request[5].to_string_view();
    std::string user, why;
    if (mechanism != "CURVE" || request.size() < 7) {
      why = "mechanism " + std::string(mechanism) + " is not accepted (CURVE only)";
    } else {
      why = check_key(z85_key(request[6].data(), request[6].size()), control, user);
    }
    if (!why.empty()) {
      ++refused_;
      (control ? control_refusals_ : peer_refusals_)
          .warn("federation: refused a " +
                std::string(control ? "control connection" : "peer connection") + " from " +
                request[3].to_string() + ": " + why);
    }
    std::array<zmq::message_t, 6> reply{zmq::message_t(std::string("1.0")),
                                        std::move(request[1]),
                                        zmq::message_t(std::string(why.empty() ? "200" : "400")),
                                        zmq::message_t(why.empty() ? std::string("OK") : why),
                                        zmq::message_t(user),
                                        zmq::message_t()};
    (void)zmq::send_multipart(zap_, reply);
  }
}

// ---------------------------------------------------------------- messages

bool PeerNetwork::send(zmq::socket_t& socket, const std::string* identity,
                       const nlohmann::json& body, std::span<const std::byte> payload) {
  const std::string text = dump_escaped(body);
  try {
    const auto more = zmq::send_flags::sndmore | zmq::send_flags::dontwait;
    if (identity != nullptr && !socket.send(zmq::buffer(*identity), more)) {
      spdlog::debug("federation: cannot send to {}: queue full", *identity);
      return false;
    }
    if (!socket.send(zmq::buffer(text), payload.empty() ? zmq::send_flags::dontwait : more)) {
      spdlog::debug("federation: cannot send a {}: queue full", body.value("type", "?"));
      return false;  // (a ROUTER frame already sent is dropped with the incomplete message)
    }
    if (!payload.empty()) {
      (void)socket.send(zmq::const_buffer(payload.data(), payload.size()),
                        zmq::send_flags::dontwait);
    }
    return true;
  } catch (const zmq::error_t& e) {
    spdlog::debug("federation: cannot send a {} to {}: {}", body.value("type", "?"),
                  identity != nullptr ? *identity : std::string("coordinator"), e.what());
    return false;  // EHOSTUNREACH: no such peer connected (ROUTER_MANDATORY)
  }
}

bool PeerNetwork::send_to_worker(const std::string& node, const nlohmann::json& body,
                                 std::span<const std::byte> payload) {
  return send(router_, &node, body, payload);
}

bool PeerNetwork::send_to_coordinator(const std::string& node, const nlohmann::json& body,
                                      std::span<const std::byte> payload) {
  const auto it = peers_.find(node);
  if (it == peers_.end() || !it->second.link) return false;
  return send(*it->second.link, nullptr, body, payload);
}

std::optional<PeerMessage> PeerNetwork::receive_router() {
  std::vector<zmq::message_t> frames;
  if (!zmq::recv_multipart(router_, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
    return std::nullopt;
  }
  PeerMessage m;
  m.from_worker = true;
  if (frames.size() < 2 || frames.size() > 3) return m;  // body stays null: ignored
  m.node = frames[0].to_string();
  std::string user;
  try {
    user = frames[1].gets("User-Id");
  } catch (const zmq::error_t&) {
  }
  if (user != m.node) {
    spdlog::warn("federation: dropping a message from '{}' signed by the key of '{}'", m.node,
                 user);
    return m;
  }
  m.body = nlohmann::json::parse(frames[1].to_string_view(), nullptr, false);
  if (frames.size() == 3) {
    m.payload = std::move(frames[2]);
    m.has_payload = true;
  }
  return m;
}

std::optional<PeerMessage> PeerNetwork::receive_link(PeerInfo& peer) {
  std::vector<zmq::message_t> frames;
  if (!zmq::recv_multipart(*peer.link, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
    return std::nullopt;
  }
  PeerMessage m;
  m.node = peer.node;
  if (frames.empty() || frames.size() > 2) return m;
  m.body = nlohmann::json::parse(frames[0].to_string_view(), nullptr, false);
  if (frames.size() == 2) {
    m.payload = std::move(frames[1]);
    m.has_payload = true;
  }
  return m;
}

nlohmann::json PeerNetwork::peer_list() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [node, peer] : peers_) {
    if (peer.state != PeerInfo::State::kUntrusted) {
      list.push_back({{"node", node}, {"endpoint", peer.endpoint}});
    }
  }
  return list;
}

/// hello (ROUTER): adds the sender, answers welcome with the peer list; welcome (link): adds the
/// peers it lists; any message: the sender is alive.
void PeerNetwork::handle_membership(PeerMessage& m) {
  const std::string type = m.body.value("type", "");
  const bool unknown_sender = !peers_.contains(m.node);
  if (m.from_worker && (type == "hello" || (type == "heartbeat" && unknown_sender))) {
    const std::string endpoint = m.body.value("endpoint", "");
    try {
      check_node_name(m.node, "hello");
      add_peer(m.node, parse_peer_address(m.node + "@" + endpoint, "hello").endpoint);
    } catch (const Error& e) {
      spdlog::warn("federation: ignoring a hello: {}", e.what());
      return;
    }
    if (type == "hello") {
      send(router_, &m.node, {{"type", "welcome"}, {"node", config_.node}, {"peers", peer_list()}},
           {});
    }
  } else if (!m.from_worker && type == "welcome" && m.body.contains("peers")) {
    for (const auto& p : m.body.at("peers")) {
      const std::string node = p.value("node", "");
      if (node.empty() || node == config_.node || peers_.contains(node)) continue;
      try {
        const PeerAddress a = parse_peer_address(node + "@" + p.value("endpoint", ""), "welcome");
        add_peer(a.node, a.endpoint);
      } catch (const Error& e) {
        spdlog::warn("federation: ignoring a peer in a welcome from {}: {}", m.node, e.what());
      }
    }
  }
  if (auto it = peers_.find(m.node); it != peers_.end()) {
    heard_from(it->second);
    if (m.from_worker) it->second.works_for_us = true;
    if (m.body.contains("capacity")) it->second.capacity = m.body.at("capacity");
  }
}

std::vector<PeerMessage> PeerNetwork::receive(std::size_t max) {
  serve_zap();
  std::vector<PeerMessage> out;
  const auto keep = [&](std::optional<PeerMessage>& m) {
    if (!m->body.is_object()) return;
    handle_membership(*m);
    const std::string type = m->body.value("type", "");
    if (type != "hello" && type != "welcome") out.push_back(std::move(*m));
  };
  for (std::size_t n = 0; n < max; ++n) {
    auto m = receive_router();
    if (!m) break;
    keep(m);
  }
  for (auto& [node, peer] : peers_) {
    if (!peer.link) continue;
    for (std::size_t n = 0; n < max; ++n) {
      auto m = receive_link(peer);
      if (!m) break;
      keep(m);
    }
  }
  return out;
}

std::vector<std::string> PeerNetwork::tick(
    const std::function<nlohmann::json(const std::string&)>& extras) {
  std::vector<std::string> lost;
  const auto now = Clock::now();
  for (auto& [node, peer] : peers_) {
    if (peer.state == PeerInfo::State::kConnected &&
        now - peer.last_heard > milliseconds(config_.lost_after_ms)) {
      peer.state = PeerInfo::State::kLost;
      spdlog::warn("federation: peer {} lost (silent for {} ms)", node, config_.lost_after_ms);
      lost.push_back(node);
    }
  }
  if (now - last_heartbeat_ < milliseconds(config_.heartbeat_ms)) return lost;
  last_heartbeat_ = now;
  for (auto& [node, peer] : peers_) {
    if (!peer.link) {
      connect_link(peer);  // its key may have been added to the trusted folder since
      if (!peer.link) continue;
    }
    nlohmann::json body = extras(node);
    body["type"] = "heartbeat";
    body["node"] = config_.node;
    body["endpoint"] = bound_endpoint_;
    body["capacity"] = capacity_;
    send(*peer.link, nullptr, body, {});
  }
  return lost;
}

}  // namespace azflow::daemon
