#include "daemon/runtime_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "base/error.hpp"

namespace azflow::daemon {

void secure_runtime_dir(const std::filesystem::path& dir) {
  if (dir.empty()) return;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir.parent_path(), ec);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      throw Error(ErrorCategory::kIo,
                  "cannot create runtime folder " + dir.string() + ": " + std::strerror(errno));
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(ErrorCategory::kIo, "runtime folder " + dir.string() + " is not a folder");
  }
  if ((st.st_mode & S_ISVTX) != 0 || st.st_uid != ::geteuid()) {
    spdlog::warn(
        "runtime folder {} is shared (sticky or another user's): its permissions are "
        "left as they are; only the socket files are made 0660",
        dir.string());
    return;
  }
  const mode_t mode = st.st_mode & 07777;
  const mode_t wanted = mode & ~static_cast<mode_t>(S_IRWXO);
  if (wanted != mode && ::chmod(dir.c_str(), wanted) != 0) {
    throw Error(ErrorCategory::kIo, "cannot make runtime folder " + dir.string() +
                                        " private (chmod): " + std::strerror(errno));
  }
}

void restrict_socket(const std::string& endpoint) {
  constexpr std::string_view kIpc = "ipc://";
  if (!endpoint.starts_with(kIpc)) return;
  const std::string path = endpoint.substr(kIpc.size());
  if (::chmod(path.c_str(), 0660) != 0) {
    spdlog::warn("cannot chmod 0660 the socket {}: {}", path, std::strerror(errno));
  }
}

void check_tcp_control(const DaemonConfig& config) {
  if (config.control_tcp_endpoint.empty() || config.federation.enabled() ||
      config.insecure_tcp_control) {
    return;
  }
  throw Error(ErrorCategory::kConfig,
              "control.tcp_endpoint = \"" + config.control_tcp_endpoint +
                  "\" needs CurveZMQ keys, which azflowd has only with [federation] on "
                  "(federation.peer_endpoint; the node key in <state_dir>/curve, clients' keys in "
                  "the trusted-keys folder): set it, or control.insecure_tcp_control = true to "
                  "let anyone who reaches the port control azflowd");
}

}  // namespace azflow::daemon
