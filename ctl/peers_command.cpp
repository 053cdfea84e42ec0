#include "ctl/peers_command.hpp"

#include <cstdio>
#include <iostream>
#include <string>

#include "ctl/exit_codes.hpp"

namespace azflow::ctl {

namespace {

using nlohmann::json;

std::string capacity_text(const json& c) {
  if (!c.is_object() || !c.contains("workers")) return "-";
  return std::to_string(c.value("workers", 0)) + "+" +
         std::to_string(c.value("integrate_workers", 0));
}

std::string age_text(const json& age) {
  if (!age.is_number()) return "never";
  char text[32];
  std::snprintf(text, sizeof text, "%.1fs ago", age.get<double>());
  return text;
}

}  // namespace

int run_peers(ControlClient& client, bool as_json) {
  const json r = client.call({{"verb", "peers"}});
  if (as_json) {
    std::cout << r.dump(2) << "\n";
    return kExitOk;
  }
  if (r.value("node", json()).is_null()) {
    std::cout << "federation is off (no peer endpoint)\n";
    return kExitOk;
  }
  std::cout << "node " << r.value("node", "") << " on " << r.value("peer_endpoint", "")
            << " (refused connections: " << r.value("refused_connections", 0)
            << ", refused messages: " << r.value("messages_refused", 0) << ")\n";
  std::printf("%-16s %-11s %-28s %-9s %-7s %-6s %s\n", "NODE", "STATE", "ENDPOINT", "WORKERS",
              "SHARDS", "GUEST", "LAST HEARTBEAT");
  for (const json& p : r.value("peers", json::array())) {
    std::printf("%-16s %-11s %-28s %-9s %-7lld %-6lld %s\n", p.value("node", "").c_str(),
                p.value("state", "").c_str(), p.value("endpoint", "").c_str(),
                capacity_text(p.value("capacity", json())).c_str(),
                static_cast<long long>(p.value("shards_in_flight", 0)),
                static_cast<long long>(p.value("guest_shards", 0)),
                age_text(p.value("last_heartbeat_age_s", json())).c_str());
  }
  return kExitOk;
}

}  // namespace azflow::ctl
