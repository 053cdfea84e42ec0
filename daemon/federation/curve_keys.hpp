#pragma once
// CurveZMQ key pairs of azflowd nodes (docs/federation.md, "Keys"). A node's pair lives in
// <state-dir>/curve/: <node>.key holds the secret key (Z85, 40 characters, file mode 0600) and
// <node>.pub the public key (Z85). A trusted-keys folder holds one <node>.pub per accepted peer.
// Keys come from zmq_curve_keypair (libzmq built with libsodium).

#include <filesystem>
#include <optional>
#include <string>

namespace azflow::daemon {

/// A CurveZMQ key pair, both keys Z85-encoded (40 characters).
struct CurveKeyPair {
  std::string public_z85;
  std::string secret_z85;
};

/// Where a node's key files are: <state_dir>/curve/<node>.pub and .key.
std::filesystem::path public_key_path(const std::filesystem::path& state_dir,
                                      const std::string& node);
std::filesystem::path secret_key_path(const std::filesystem::path& state_dir,
                                      const std::string& node);

/// Loads the node's key pair, creating it first if neither file exists (secret key file mode
/// 0600, folder 0700). `created` (optional) tells whether it was made now. Throws azflow::Error
/// (kIo) naming the file if a file cannot be written or read, (kConfig) if a key file is malformed
/// or only one of the two exists, and (kInternal) if libzmq has no CURVE support.
CurveKeyPair ensure_key_pair(const std::filesystem::path& state_dir, const std::string& node,
                             bool* created = nullptr);

/// Reads a Z85 public key file (40 characters, surrounding white space ignored); std::nullopt if
/// the file does not exist. Throws azflow::Error (kConfig) naming the file if it is malformed.
std::optional<std::string> read_public_key(const std::filesystem::path& file);

/// The public key of `node` in the trusted folder (<dir>/<node>.pub), or std::nullopt.
std::optional<std::string> trusted_public_key(const std::filesystem::path& dir,
                                              const std::string& node);

/// A key pair from a secret key file FILE.key and its public key FILE.pub next to it (as made by
/// `azflowd keygen`). Throws azflow::Error (kIo) naming a file that cannot be read, (kConfig) for
/// a malformed one.
CurveKeyPair read_key_pair(const std::filesystem::path& secret_key_file);

/// Z85 encoding of a 32-byte binary key (as ZAP requests carry it). Throws azflow::Error
/// (kInput) for another length.
std::string z85_key(const void* data, std::size_t size);

}  // namespace azflow::daemon
