#pragma once
// azflow-detector-sim --rest HOST:PORT: the minimal DECTRIS SIMPLON 1.8 REST subset that drives a
// series, on cpp-httplib's threads, as a DCU's web server does:
//
//   PUT /detector/api/1.8.0/command/arm      start message (v1: global header) of a new series;
//                                            answers {"sequence id": N} (N = the series_id)
//   PUT /detector/api/1.8.0/command/trigger  every image of the armed series (at --rate); the
//                                            answer comes once they are sent, as SIMPLON's
//                                            trigger returns when the exposures are done
//   PUT /detector/api/1.8.0/command/disarm   end message; answers {"sequence id": N}
//   GET /stream/api/1.8.0/config/mode        {"value": "enabled"|"disabled", "value_type":
//                                            "string", "access_mode": "rw", "allowed_values":
//                                            ["enabled", "disabled"]}
//   PUT /stream/api/1.8.0/config/mode        body {"value": "enabled"|"disabled"}; answers the
//                                            list of changed parameters, ["mode"]
//
// Where these come from: DECTRIS' Stream V2 documentation (github.com/dectris/documentation,
// stream_v2/README.md: the start message "is sent once at the start of a series during the arm
// command", images once per exposure, the end message at disarm; the stream `mode` parameter is
// enabled/disabled under /stream/api/1.8.0/config) and the SIMPLON API's JSON conventions (a
// parameter is read as {"value", "value_type", "access_mode", "allowed_values"} and written as
// {"value": ...}; arm and disarm answer the "sequence id"). With the stream disabled, the
// commands do the same but send nothing. The simulator's stream starts enabled (a real DCU's
// default is disabled). Errors: 400 with a text body for a command out of order (trigger or
// arm while not allowed) or a bad mode value; 404 for any other path.
//
// Threading: the HTTP threads never touch the ZeroMQ socket. Each command is queued to the
// thread running serve_rest(), which sends the messages and hands the answer back.

#include <functional>
#include <stop_token>
#include <string>

#include "sim/detector_sim.hpp"

namespace azflow::sim {

/// Serves options.master as serve() does, but series by series as REST commands at `rest`
/// ("HOST:PORT"; port 0 = any free port) arrive, until `stop` is requested. `on_bound` gets the
/// ZeroMQ endpoint bound, `on_rest` the "HOST:PORT" the HTTP server listens on. Returns what
/// was sent. Throws azflow::Error: kConfig for a malformed `rest`, kIo if it cannot listen
/// there or bind the endpoint, kInput/kIo for the dataset, as serve().
SimStats serve_rest(const SimOptions& options, const std::string& rest, std::stop_token stop,
                    const std::function<void(const std::string&)>& on_bound = {},
                    const std::function<void(const std::string&)>& on_rest = {});

}  // namespace azflow::sim
