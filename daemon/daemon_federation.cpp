// The daemon's federation logic (docs/federation.md): sharing split jobs with peer daemons.
//
// Coordinator side (this node received the job): the job's queued shards are a pool that this
// node's own dispatch() and every eligible peer draw from; a peer asks ("want") when it has free
// workers, so faster nodes take more. A peer's rows are reduced exactly as local results
// (reduce_frame); the reducer ignores a frame already in its shard or a shard already committed,
// so a late or repeated row never counts twice. A shard a peer gives back (cannot read, lost,
// rows missing at its end) returns to the front of the pool; whoever takes it next integrates
// only the frames still missing.
//
// Worker side (this node helps a peer): a pulled shard becomes a guest shard of a guest job
// (local id >= kFirstGuestJob) in this node's own pipeline; each frame's sums go back to the
// coordinator as a "row" message, then "shard_end". Heartbeats list the guest shards held, so
// the coordinator can tell a node that comes back (SIGCONT, restart) to drop stale ones.

#include <algorithm>
#include <chrono>
#include <limits>

#include <spdlog/spdlog.h>

#include "base/error.hpp"
#include "daemon/daemon.hpp"
#include "daemon/job_setup.hpp"
#include "daemon/json_text.hpp"
#include "daemon/path_policy.hpp"

namespace azflow::daemon {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr std::size_t kMaxPeerMessagesPerPoll = 512;

}  // namespace

// ---------------------------------------------------------------- set-up and loop

void Daemon::start_federation() {
  if (!config_.federation.enabled()) return;
  json devices = json::array();  // "cpu" or "cuda:N", once each
  for (const std::string& d : integrate_placement_.devices) {
    const std::string name = device_label(d);
    if (std::find(devices.begin(), devices.end(), name) == devices.end()) devices.push_back(name);
  }
  const json capacity = {{"workers", config_.workers},
                         {"integrate_workers", integrate_placement_.devices.size()},
                         {"devices", devices},
                         {"slots", pipeline_slots()}};
  network_ = std::make_unique<PeerNetwork>(context_, config_.federation, config_.state_dir,
                                           capacity, config_.control_trusted_keys_dir);
  warn_client_keys_moved();
}

/// Control clients' keys used to lie in the peers' folder (one folder for both): a TCP control
/// endpoint with no key in its own folder most likely still has them there; say where they go.
void Daemon::warn_client_keys_moved() const {
  if (config_.control_tcp_endpoint.empty()) return;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator(config_.control_trusted_keys_dir, ec)) {
    if (entry.path().extension() == ".pub") return;
  }
  spdlog::warn(
      "control.tcp_endpoint {}: no client key in {} (control.trusted_client_keys_dir), so no "
      "client can connect; control clients' keys no longer go in the peers' folder {}: a key "
      "there is a peer's (refused for control). Move the clients' <name>.pub files (not the "
      "peers') to {}",
      config_.control_tcp_endpoint, config_.control_trusted_keys_dir.string(),
      config_.federation.trusted_keys_dir.string(), config_.control_trusted_keys_dir.string());
}

void Daemon::poll_peers() {
  if (!network_) return;
  peer_refusals_.flush();
  for (PeerMessage& m : network_->receive(kMaxPeerMessagesPerPoll)) {
    try {
      handle_peer_message(m);
    } catch (const json::exception& e) {
      spdlog::warn("federation: ignoring a message from {} with a bad field: {}", m.node, e.what());
    }
  }
  const auto lost =
      network_->tick([this](const std::string& node) { return heartbeat_extras(node); });
  for (const std::string& node : lost) peer_lost(node);
  announce_offers();
  request_work();
}

void Daemon::handle_peer_message(PeerMessage& m) {
  const std::string type = m.body.value("type", "");
  if (m.from_worker) {  // the sender works for this node's jobs
    if (type == "heartbeat") {
      peer_heartbeat(m.node, m.body);
    } else if (type == "want") {
      peer_wants(m.node, m.body.value("n", std::size_t{1}));
    } else if (type == "row") {
      peer_row(m);
    } else if (type == "shard_end") {
      peer_shard_back(m.node, m.body, "");
    } else if (type == "cannot_read") {
      peer_shard_back(m.node, m.body, m.body.value("reason", std::string("cannot read")));
    } else if (type == "give_back") {
      peer_shard_back(m.node, m.body, "");
    } else if (type == "axes") {
      const auto it = jobs_.find(m.body.at("job").get<std::int64_t>());
      if (it == jobs_.end()) return;
      if (it->second.participants.contains(m.node)) return save_axes(it->second, m.body.at("axes"));
      peer_refusals_.warn("federation: refused axes of job " + std::to_string(it->first) +
                          " from " + m.node + ": it was handed no shard of that job");
    }
    return;
  }
  // the sender coordinates jobs this node works for
  if (type == "heartbeat_ack") {
    network_->set_offers(m.node, m.body.value("offers", false));
  } else if (type == "shards") {
    wants_.erase(m.node);
    const json& items = m.body.at("items");
    if (items.empty()) network_->set_offers(m.node, false);
    for (const json& item : items) guest_shard(m.node, item);
  } else if (type == "cancel") {
    guest_cancel(m.node, m.body.at("job").get<std::int64_t>());
  } else if (type == "drop") {
    const auto it = guest_ids_.find({m.node, m.body.at("job").get<std::int64_t>()});
    if (it != guest_ids_.end()) guest_drop(it->second, m.body.at("shard").get<std::int64_t>());
  }
}

nlohmann::json Daemon::peers(const PeersRequest&) {
  if (!network_) return ControlHandler::peers({});
  json list = json::array();
  for (const auto& [node, peer] : network_->peers()) {
    std::size_t held = 0, guests = 0;
    for (const auto& [id, job] : jobs_) {
      held += static_cast<std::size_t>(
          std::count_if(job.remote.begin(), job.remote.end(),
                        [&](const auto& kv) { return kv.second.node == node; }));
    }
    for (const auto& [key, shard] : guest_shards_) {
      guests += guest_jobs_.at(key.first).coordinator == node;
    }
    const bool heard = peer.last_heard_unix_ms > 0;
    list.push_back(
        {{"node", node},
         {"endpoint", peer.endpoint},
         {"state", std::string(peer_state_name(peer.state))},
         {"capacity", peer.capacity},
         {"shards_in_flight", held},
         {"guest_shards", guests},
         {"last_heartbeat", heard ? json(iso_utc(peer.last_heard_unix_ms)) : json(nullptr)},
         {"last_heartbeat_age_s",
          heard ? json(std::chrono::duration<double>(Clock::now() - peer.last_heard).count())
                : json(nullptr)}});
  }
  return {{"node", network_->node()},
          {"peer_endpoint", network_->endpoint()},
          {"public_key", network_->public_key()},
          {"refused_connections", network_->refused()},
          {"rows_unsent", rows_unsent_},
          {"messages_refused", peer_refusals_.total()},
          {"peers", list}};
}

// ---------------------------------------------------------------- coordinator side

bool Daemon::eligible(const ActiveJob& job, const std::string& node) const {
  const NodeSelection& sel = job.spec.nodes;
  if (sel.kind == NodeSelection::Kind::kLocal || job.excluded.contains(node)) return false;
  const PeerInfo* peer = network_->find(node);
  if (peer == nullptr || peer->state != PeerInfo::State::kConnected) return false;
  switch (sel.kind) {
    case NodeSelection::Kind::kAll:
      return true;
    case NodeSelection::Kind::kNames:
      return std::find(sel.names.begin(), sel.names.end(), node) != sel.names.end();
    case NodeSelection::Kind::kCount:
      return job.participants.contains(node) || job.participants.size() + 1 < sel.count;
    case NodeSelection::Kind::kLocal:
      break;
  }
  return false;
}

std::size_t Daemon::federation_slots(const JobSpec& spec) const {
  if (!network_ || spec.mode != JobSpec::Mode::kSplit) return 0;
  const NodeSelection& sel = spec.nodes;
  if (sel.kind == NodeSelection::Kind::kLocal) return 0;
  std::size_t peers = 0, slots = pipeline_slots();
  for (const auto& [node, peer] : network_->peers()) {
    if (peer.state != PeerInfo::State::kConnected) continue;
    if (sel.kind == NodeSelection::Kind::kNames &&
        std::find(sel.names.begin(), sel.names.end(), node) == sel.names.end()) {
      continue;
    }
    if (sel.kind == NodeSelection::Kind::kCount && peers + 1 >= sel.count) break;
    ++peers;
    slots += peer.capacity.is_object() ? peer.capacity.value("slots", std::size_t{2}) : 2;
  }
  return peers == 0 ? 0 : slots;
}

std::size_t Daemon::local_share(const ActiveJob& job) const {
  if (!network_ || job.spec.nodes.kind == NodeSelection::Kind::kLocal) {
    return std::numeric_limits<std::size_t>::max();
  }
  std::size_t peer_slots = 0;
  for (const auto& [node, peer] : network_->peers()) {
    if (!eligible(job, node)) continue;
    peer_slots += peer.capacity.is_object() ? peer.capacity.value("slots", std::size_t{2}) : 2;
  }
  if (peer_slots == 0) return std::numeric_limits<std::size_t>::max();
  const std::size_t own = pipeline_slots();
  const std::size_t total = std::max<std::size_t>(job.shards_total, 1);
  return std::max<std::size_t>(1, (total * own + own + peer_slots - 1) / (own + peer_slots));
}

bool Daemon::offers_for(const std::string& node) const {
  if (shutdown_) return false;
  return std::any_of(jobs_.begin(), jobs_.end(), [&](const auto& kv) {
    return !kv.second.queued.empty() && eligible(kv.second, node);
  });
}

/// Tells each connected peer at once when this node starts or stops having shards for it (so a
/// new job does not wait for the next heartbeat answer).
void Daemon::announce_offers() {
  for (const auto& [node, peer] : network_->peers()) {
    if (peer.state != PeerInfo::State::kConnected || !peer.works_for_us) continue;
    const bool offers = offers_for(node);
    const auto it = offered_.find(node);
    if (it != offered_.end() && it->second == offers) continue;
    if (network_->send_to_worker(
            node, {{"type", "heartbeat_ack"}, {"node", network_->node()}, {"offers", offers}})) {
      offered_[node] = offers;
    }
  }
}

/// Answers a heartbeat; tells the peer to drop shards it holds that this node no longer gives it,
/// and takes back shards this node thinks it holds but it does not list (a lost "shard" or
/// "shard_end" message).
void Daemon::peer_heartbeat(const std::string& node, const nlohmann::json& body) {
  const bool offers = offers_for(node);
  if (network_->send_to_worker(
          node, {{"type", "heartbeat_ack"}, {"node", network_->node()}, {"offers", offers}})) {
    offered_[node] = offers;
  }
  std::set<std::pair<std::int64_t, std::int64_t>> listed;
  for (const auto& entry : body.value("held", json::array())) {
    const auto key = std::pair{entry.at(0).get<std::int64_t>(), entry.at(1).get<std::int64_t>()};
    listed.insert(key);
    const auto it = jobs_.find(key.first);
    if (it == jobs_.end()) {
      (void)network_->send_to_worker(
          node, {{"type", "cancel"}, {"node", network_->node()}, {"job", key.first}});
      continue;
    }
    const auto remote = it->second.remote.find(key.second);
    if (remote == it->second.remote.end() || remote->second.node != node) {
      (void)network_->send_to_worker(node, {{"type", "drop"},
                                            {"node", network_->node()},
                                            {"job", key.first},
                                            {"shard", key.second}});
    }
  }
  const auto grace = std::chrono::milliseconds(network_->config().lost_after_ms);
  for (auto& [id, job] : jobs_) {
    std::vector<std::int64_t> missing;
    for (const auto& [shard, remote] : job.remote) {
      if (remote.node == node && Clock::now() - remote.since > grace &&
          !listed.contains({id, shard})) {
        missing.push_back(shard);
      }
    }
    for (const std::int64_t shard : missing) requeue_remote(job, shard, node + " does not hold it");
  }
}

void Daemon::peer_wants(const std::string& node, std::size_t count) {
  json items = json::array();
  for (auto& [id, job] : jobs_) {
    while (items.size() < count && !job.queued.empty() && eligible(job, node)) {
      items.push_back(hand_out(job, node));
    }
    if (items.size() == count) break;
  }
  if (!network_->send_to_worker(
          node, {{"type", "shards"}, {"node", network_->node()}, {"items", items}})) {
    for (const json& item : items) {
      requeue_remote(jobs_.at(item.at("job").get<std::int64_t>()),
                     item.at("shard").get<std::int64_t>(), "cannot send to " + node);
    }
    return;
  }
  if (items.empty()) offered_[node] = false;  // the worker now thinks so; announce_offers fixes it
}

/// Hands the job's next queued shard to a peer (only its missing frames if it was begun);
/// returns the shard's item of the "shards" answer.
nlohmann::json Daemon::hand_out(ActiveJob& job, const std::string& node) {
  const ShardRecord shard = job.queued.front();
  json message = {{"job", job.id}, {"shard", shard.shard_id}, {"spec", to_json(job.spec)}};
  const bool begun = sink_->is_open(job.id, shard.shard_id);
  if (begun) {
    message["frames"] = sink_->missing(job.id, shard.shard_id);
  } else {
    message["first"] = shard.first_frame;
    message["count"] = shard.frame_count;
  }
  job.queued.pop_front();
  if (!job.started) {
    store_->set_job_state(job.id, JobState::kRunning);
    job.started = true;
  }
  store_->mark_shard_running(job.id, shard.shard_id);
  if (!begun) open_sink_shard(job, shard.shard_id, shard.first_frame, shard.frame_count);
  job.remote[shard.shard_id] = {node, Clock::now(), shard.first_frame, shard.frame_count};
  job.participants.insert(node);
  log_event(job, "shard " + std::to_string(shard.shard_id) + " to " + node);
  return message;
}

/// A result row from a peer counts only if that peer holds the shard and the frame is one of the
/// shard's; the reducer then takes each frame once. Anything else is refused and does not reach
/// the output (a forged row from another key, a stale row of a shard taken back).
void Daemon::peer_row(PeerMessage& m) {
  const auto it = jobs_.find(m.body.at("job").get<std::int64_t>());
  if (it == jobs_.end()) return;  // finished or cancelled: a late row, ignored
  ActiveJob& job = it->second;
  const std::int64_t shard = m.body.at("shard").get<std::int64_t>();
  const std::int64_t frame = m.body.at("frame").get<std::int64_t>();
  if (held_by(job, shard, m.node, "a row of frame " + std::to_string(frame), frame) == nullptr) {
    return;
  }
  const bool ok = m.body.value("ok", false);
  const std::string reason = m.body.value("reason", std::string());  // the sink names the file
  const reduce::FrameResult result{
      job.id,
      shard,
      frame,
      ok,
      reason,
      std::span<const double>(static_cast<const double*>(m.payload.data()),
                              m.payload.size() / sizeof(double))};
  reduce_frame(job, result);
}

const RemoteShard* Daemon::held_by(const ActiveJob& job, std::int64_t shard,
                                   const std::string& node, const std::string& what,
                                   std::optional<std::int64_t> frame) {
  const auto remote = job.remote.find(shard);
  std::string why;
  if (remote == job.remote.end()) {
    if (!sink_->is_open(job.id, shard)) return nullptr;  // committed (or no such shard): harmless
    why = "no peer holds that shard now";
  } else if (remote->second.node != node) {
    why = "it is held by " + remote->second.node;
  } else if (frame && (*frame < remote->second.first_frame ||
                       *frame >= remote->second.first_frame + remote->second.frame_count)) {
    why = "the shard holds frames " + std::to_string(remote->second.first_frame) + " to " +
          std::to_string(remote->second.first_frame + remote->second.frame_count - 1);
  } else {
    return &remote->second;
  }
  peer_refusals_.warn("federation: refused " + what + " of job " + std::to_string(job.id) +
                      " shard " + std::to_string(shard) + " from " + node + ": " + why);
  return nullptr;
}

/// shard_end, cannot_read or give_back: the peer no longer works on the shard. If frames are
/// still missing, the shard goes back to the pool; `why` non-empty (cannot read) also excludes
/// the peer from the job.
void Daemon::peer_shard_back(const std::string& node, const nlohmann::json& body,
                             const std::string& why) {
  sink_->wait_reducer_idle();  // the peer's rows sent before this message are in
  apply_sink_events();
  const auto it = jobs_.find(body.at("job").get<std::int64_t>());
  if (it == jobs_.end()) return;
  ActiveJob& job = it->second;
  const std::int64_t shard = body.at("shard").get<std::int64_t>();
  if (held_by(job, shard, node, "a " + body.value("type", std::string("?"))) == nullptr) return;
  if (!why.empty() && job.excluded.insert(node).second) {
    spdlog::warn("job {}: peer {} cannot read the dataset: {}", job.id, node, why);
    log_event(job, "peer " + node + " excluded: " + why);
  }
  if (!sink_->is_open(job.id, shard)) {  // committed meanwhile
    job.remote.erase(shard);
    return;
  }
  requeue_remote(job, shard,
                 why.empty() ? (body.value("type", "") == "give_back" ? "given back"
                                                                      : "rows missing at its end")
                             : why);
}

void Daemon::requeue_remote(ActiveJob& job, std::int64_t shard_id, const std::string& why) {
  const auto remote = job.remote.find(shard_id);
  if (remote == job.remote.end()) return;
  spdlog::info("job {} shard {}: back from {} to the pool ({})", job.id, shard_id,
               remote->second.node, why);
  log_event(job,
            "shard " + std::to_string(shard_id) + " back from " + remote->second.node + ": " + why);
  job.remote.erase(remote);
  for (const ShardRecord& s : store_->shards(job.id)) {
    if (s.shard_id == shard_id) {
      job.queued.push_front(s);
      break;
    }
  }
}

void Daemon::peer_lost(const std::string& node) {
  for (auto& [id, job] : jobs_) {
    std::vector<std::int64_t> held;
    for (const auto& [shard, remote] : job.remote) {
      if (remote.node == node) held.push_back(shard);
    }
    for (const std::int64_t shard : held) requeue_remote(job, shard, "peer lost");
  }
}

/// The job ended here (done, failed or cancelled): its peers drop whatever they still hold.
void Daemon::end_remote_shards(ActiveJob& job) {
  if (!network_) return;
  for (const std::string& node : job.participants) {
    (void)network_->send_to_worker(
        node, {{"type", "cancel"}, {"node", network_->node()}, {"job", job.id}});
  }
  job.remote.clear();
}

// ---------------------------------------------------------------- worker side

std::size_t Daemon::local_in_flight() const {
  std::size_t n = guest_shards_.size();
  for (const auto& [id, job] : jobs_) n += job.running.size();
  return n;
}

nlohmann::json Daemon::heartbeat_extras(const std::string& node) const {
  json held = json::array();
  for (const auto& [key, shard] : guest_shards_) {
    const GuestJob& g = guest_jobs_.at(key.first);
    if (g.coordinator == node) held.push_back({g.job, key.second});
  }
  return {{"held", held}};
}

/// Asks one coordinator that offers work for as many shards as this node has free slots, unless
/// this node's own jobs have shards waiting.
void Daemon::request_work() {
  if (shutdown_ || !network_) return;
  for (const auto& [id, job] : jobs_) {
    if (!job.queued.empty()) return;
  }
  const std::size_t limit = pipeline_slots();
  const std::size_t busy = local_in_flight();
  if (busy >= limit) return;
  const auto patience = std::chrono::milliseconds(network_->config().lost_after_ms);
  for (const auto& [node, peer] : network_->peers()) {
    const auto asked = wants_.find(node);
    if (asked != wants_.end() && Clock::now() - asked->second < patience) return;
  }
  for (const auto& [node, peer] : network_->peers()) {
    if (!peer.offers || peer.state != PeerInfo::State::kConnected) continue;
    if (network_->send_to_coordinator(
            node, {{"type", "want"}, {"node", network_->node()}, {"n", limit - busy}})) {
      wants_[node] = Clock::now();
      return;
    }
  }
}

/// The guest job for a coordinator's job, created at its first shard: the spec is checked
/// against the allowed input roots and the dataset opened (error kept, and reported, if not).
GuestJob& Daemon::guest_job(const std::string& coordinator, const nlohmann::json& body) {
  const std::int64_t job = body.at("job").get<std::int64_t>();
  if (const auto it = guest_ids_.find({coordinator, job}); it != guest_ids_.end()) {
    return guest_jobs_.at(it->second);
  }
  const std::int64_t id = next_guest_++;
  GuestJob& g = guest_jobs_[id];
  guest_ids_[{coordinator, job}] = id;
  g.coordinator = coordinator;
  g.job = job;
  try {
    g.spec = job_spec_from_json(body.at("spec"), "spec.");
    check_input_paths(g.spec, config_.allowed_input_roots);
    source::Dataset dataset = open_job_dataset(g.spec);
    const source::DatasetInfo& info = dataset.info();
    integrate::check_frame_shape(job_poni(g.spec), info.rows, info.cols,
                                 info.path.string() + " (" + info.dataset + ")", g.spec.poni_path);
    g.frame_bytes = info.frame_bytes();
    g.bins = spec_bins(g.spec);
    spdlog::info("federation: guest job {} = job {} of {} ({} frames of {} B)", id, job,
                 coordinator, info.frames, g.frame_bytes);
  } catch (const Error& e) {
    g.error = "node " + network_->node() + ": " + e.what();
    spdlog::warn("federation: cannot work on job {} of {}: {}", job, coordinator, e.what());
  }
  return g;
}

void Daemon::guest_shard(const std::string& coordinator, const nlohmann::json& body) {
  GuestJob& g = guest_job(coordinator, body);
  const std::int64_t shard = body.at("shard").get<std::int64_t>();
  const json reply_key = {{"node", network_->node()}, {"job", g.job}, {"shard", shard}};
  if (!g.error.empty()) {
    json reply = reply_key;
    reply["type"] = "cannot_read";
    reply["reason"] = g.error;
    (void)network_->send_to_coordinator(coordinator, reply);
    return;
  }
  bool ready = false;
  try {
    ready = !shutdown_ && ensure_pipeline(g.frame_bytes, g.bins);
  } catch (const std::exception& e) {  // rings this node cannot reserve: it cannot take the job
    g.error = "node " + network_->node() + ": " + escape_bytes(e.what());
    spdlog::error("federation: cannot start guest job {} of {}: {}", g.job, coordinator, g.error);
    stop_pipeline();
    shape_ = {};
    return guest_shard(coordinator, body);  // answers cannot_read
  }
  if (!ready) {
    json reply = reply_key;
    reply["type"] = "give_back";
    (void)network_->send_to_coordinator(coordinator, reply);
    return;
  }
  const std::int64_t id = guest_ids_.at({coordinator, g.job});
  GuestShard& s = guest_shards_[{id, shard}];
  ShardWork work = ShardWork::list(id, shard, g.spec.datasets, g.spec.dataset_path, {});
  work.offset = g.spec.frame_offset();  // the coordinator's frames are job frames, as here
  if (body.contains("frames")) {
    work.frames = body.at("frames").get<std::vector<std::int64_t>>();
    for (const std::int64_t f : work.frames) {  // asked (again): sent again even if sent before
      s.expected.insert(f);
      s.sent.erase(f);
    }
  } else {
    work.first = body.at("first").get<std::int64_t>();
    work.count = body.at("count").get<std::int64_t>();
    for (std::int64_t f = work.first; f < work.first + work.count; ++f) {
      s.expected.insert(f);
      s.sent.erase(f);
    }
  }
  send_to_source(std::move(work));
}

void Daemon::guest_redo(std::int64_t guest_id, std::int64_t shard,
                        std::vector<std::int64_t> frames) {
  const auto it = guest_shards_.find({guest_id, shard});
  if (it == guest_shards_.end() || frames.empty()) return;
  std::erase_if(frames, [&](std::int64_t f) { return it->second.sent.contains(f); });
  if (frames.empty()) return;
  const GuestJob& g = guest_jobs_.at(guest_id);
  spdlog::info("guest job {} shard {}: redoing {} frames", guest_id, shard, frames.size());
  ShardWork work =
      ShardWork::list(guest_id, shard, g.spec.datasets, g.spec.dataset_path, std::move(frames));
  work.offset = g.spec.frame_offset();
  send_to_source(std::move(work));
}

void Daemon::guest_drop(std::int64_t guest_id, std::int64_t shard) {
  if (guest_shards_.erase({guest_id, shard}) == 0) return;
  spdlog::info("guest job {} shard {}: dropped at the coordinator's request", guest_id, shard);
  std::erase_if(source_pending_, [&](const auto& kv) {
    return kv.second.job == guest_id && kv.second.shard == shard;
  });
}

/// At shutdown: every guest shard goes back to its coordinator at once (instead of after the
/// lost timeout).
void Daemon::give_back_guest_shards() {
  if (!network_) return;
  for (const auto& [key, shard] : guest_shards_) {
    const GuestJob& g = guest_jobs_.at(key.first);
    (void)network_->send_to_coordinator(
        g.coordinator,
        {{"type", "give_back"}, {"node", network_->node()}, {"job", g.job}, {"shard", key.second}});
  }
  guest_shards_.clear();
}

void Daemon::guest_cancel(const std::string& coordinator, std::int64_t job) {
  const auto it = guest_ids_.find({coordinator, job});
  if (it == guest_ids_.end()) return;
  const std::int64_t id = it->second;
  broadcast(CancelJob{id});
  std::erase_if(guest_shards_, [&](const auto& kv) { return kv.first.first == id; });
  std::erase_if(source_pending_, [&](const auto& kv) { return kv.second.job == id; });
  guest_jobs_.erase(id);
  guest_ids_.erase(it);
}

/// A frame of a guest shard: its sums go back to the coordinator (the same row bytes the results
/// ring holds); the shard's end is reported once every asked frame went back.
void Daemon::guest_result(const ipc::ReadSlot& slot) {
  const ipc::SlotHeader& h = slot.header();
  const auto id = static_cast<std::int64_t>(h.job_id);
  const auto shard_id = static_cast<std::int64_t>(h.shard_id);
  const auto frame = static_cast<std::int64_t>(h.frame_index);
  const auto it = guest_shards_.find({id, shard_id});
  if (it == guest_shards_.end()) return;  // dropped or cancelled
  GuestShard& shard = it->second;
  if (!shard.expected.contains(frame) || shard.sent.contains(frame)) return;
  const GuestJob& g = guest_jobs_.at(id);
  const bool ok = h.status == ipc::SlotStatus::kOk;
  json row = {{"type", "row"},     {"node", network_->node()}, {"job", g.job},
              {"shard", shard_id}, {"frame", frame},           {"ok", ok}};
  if (!ok) row["reason"] = std::string(h.reason_view());
  const auto payload = slot.payload();
  if (!network_->send_to_coordinator(g.coordinator, row,
                                     ok ? payload : std::span<const std::byte>())) {
    ++rows_unsent_;  // the coordinator finds the frame missing at shard_end and redoes it
  }
  shard.sent.insert(frame);
  if (shard.sent.size() < shard.expected.size()) return;
  (void)network_->send_to_coordinator(
      g.coordinator,
      {{"type", "shard_end"}, {"node", network_->node()}, {"job", g.job}, {"shard", shard_id}});
  guest_shards_.erase(it);
}

}  // namespace azflow::daemon
