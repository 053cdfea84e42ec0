#pragma once
// Reading the [federation] table of azflowd's TOML configuration (used by daemon/config.cpp;
// kept apart so that toml++ stays out of the public configuration header).

#include <filesystem>

#include <toml++/toml.h>

#include "daemon/federation/federation_config.hpp"

namespace azflow::daemon {

/// Reads the [federation] table of `file` into `out`: node, peer_endpoint, peers (a list of
/// "NODE@tcp://..." strings, or a table NODE = "tcp://..."), join, trusted_keys_dir,
/// heartbeat_ms, lost_after_ms. Throws azflow::Error (kConfig) naming the file and the key for an
/// unknown key, a wrong type or an invalid value.
void read_federation_table(const toml::table& table, const std::filesystem::path& file,
                           FederationConfig& out);

}  // namespace azflow::daemon
