#pragma once
// SIGTERM / SIGINT handling shared by azflowd and the stage processes.

#include <atomic>

namespace azflow::daemon {

/// Installs SIGTERM and SIGINT handlers that set the returned flag (and ignores SIGPIPE, so a
/// closed socket is an error return, not a death). Call once, at the start of main; the flag
/// lives for the whole process and is lock-free, safe to set from a signal handler.
std::atomic<bool>& install_stop_signals();

}  // namespace azflow::daemon
