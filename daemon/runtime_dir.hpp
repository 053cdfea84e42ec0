#pragma once
// Who may reach azflowd's sockets: its runtime folder (sockets <instance>.control, .live, .stages)
// is private to the daemon's user, or shared with one group the administrator chose
// (docs/security.md, "Local access"); TCP control needs CurveZMQ keys unless configured insecure.

#include <filesystem>
#include <string>

#include "daemon/config.hpp"

namespace azflow::daemon {

/// Makes `dir` private before any socket is bound in it: created with mode 0700 if missing; an
/// existing folder of this user loses every permission of "others" (its group's are kept: that
/// is how a group is given the control socket, e.g. systemd RuntimeDirectoryMode=0750 with
/// Group=). A sticky folder (/tmp) or a folder of another user is left as it is, with a warning.
/// Throws azflow::Error (kIo) naming the folder if it cannot be made or changed.
void secure_runtime_dir(const std::filesystem::path& dir);

/// Gives the socket file of an ipc:// endpoint mode 0660 (owner and the folder's group may
/// connect; others never). Other transports: nothing. Errors are logged, not thrown.
void restrict_socket(const std::string& endpoint);

/// Refuses a TCP control endpoint without CurveZMQ keys ([federation] off) unless
/// insecure_tcp_control is set. Throws azflow::Error (kConfig) naming control.tcp_endpoint and
/// control.insecure_tcp_control.
void check_tcp_control(const DaemonConfig& config);

}  // namespace azflow::daemon
