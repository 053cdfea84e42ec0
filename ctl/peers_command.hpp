#pragma once
// `azflowctl peers`: the federation's peers as the daemon sees them (docs/federation.md).

#include "ctl/client.hpp"

namespace azflow::ctl {

/// Sends the `peers` request and prints a table (node, state, endpoint, capacity, shards in
/// flight, guest shards, last heartbeat) or, with `as_json`, the daemon's JSON result. Returns
/// kExitOk; errors as ControlClient::call.
int run_peers(ControlClient& client, bool as_json);

}  // namespace azflow::ctl
