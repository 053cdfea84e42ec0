#include "daemon/federation/curve_keys.hpp"

#include <sys/stat.h>

#include <array>
#include <fstream>
#include <sstream>

#include <zmq.h>

#include "base/error.hpp"

namespace azflow::daemon {

namespace {

constexpr std::size_t kZ85KeyChars = 40;

std::string read_text(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw Error(ErrorCategory::kIo, "cannot read key file " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  const auto first = s.find_first_not_of(" \t\r\n");
  const auto last = s.find_last_not_of(" \t\r\n");
  return first == std::string::npos ? std::string() : s.substr(first, last - first + 1);
}

std::string checked_key(const std::filesystem::path& file) {
  std::string key = read_text(file);
  std::array<std::uint8_t, 32> binary{};
  if (key.size() != kZ85KeyChars || zmq_z85_decode(binary.data(), key.c_str()) == nullptr) {
    throw Error(ErrorCategory::kConfig,
                "key file " + file.string() + " does not hold one 40-character Z85 key");
  }
  return key;
}

void write_key(const std::filesystem::path& file, const std::string& key, mode_t mode) {
  const auto tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw Error(ErrorCategory::kIo, "cannot write key file " + tmp);
    ::chmod(tmp.c_str(), mode);  // before the key is in it
    out << key << "\n";
    if (!out) throw Error(ErrorCategory::kIo, "cannot write key file " + tmp);
  }
  std::filesystem::rename(tmp, file);
}

}  // namespace

std::filesystem::path public_key_path(const std::filesystem::path& state_dir,
                                      const std::string& node) {
  return state_dir / "curve" / (node + ".pub");
}

std::filesystem::path secret_key_path(const std::filesystem::path& state_dir,
                                      const std::string& node) {
  return state_dir / "curve" / (node + ".key");
}

CurveKeyPair ensure_key_pair(const std::filesystem::path& state_dir, const std::string& node,
                             bool* created) {
  const auto pub = public_key_path(state_dir, node);
  const auto sec = secret_key_path(state_dir, node);
  const bool has_pub = std::filesystem::exists(pub);
  const bool has_sec = std::filesystem::exists(sec);
  if (created != nullptr) *created = false;
  if (has_pub && has_sec) return {checked_key(pub), checked_key(sec)};
  if (has_pub || has_sec) {
    throw Error(ErrorCategory::kConfig, "only one of " + pub.string() + " and " + sec.string() +
                                            " exists: remove it or restore the other");
  }
  if (zmq_has("curve") == 0)
    throw Error(ErrorCategory::kInternal, "libzmq was built without CURVE support");
  std::array<char, kZ85KeyChars + 1> public_key{}, secret_key{};
  if (zmq_curve_keypair(public_key.data(), secret_key.data()) != 0) {
    throw Error(ErrorCategory::kInternal,
                std::string("zmq_curve_keypair failed: ") + zmq_strerror(zmq_errno()));
  }
  std::error_code ec;
  std::filesystem::create_directories(pub.parent_path(), ec);
  if (ec) throw Error(ErrorCategory::kIo, "cannot create " + pub.parent_path().string());
  std::filesystem::permissions(pub.parent_path(), std::filesystem::perms::owner_all, ec);
  write_key(sec, secret_key.data(), S_IRUSR | S_IWUSR);
  write_key(pub, public_key.data(), S_IRUSR | S_IWUSR | S_IRGRP | S_IROTH);
  if (created != nullptr) *created = true;
  return {public_key.data(), secret_key.data()};
}

CurveKeyPair read_key_pair(const std::filesystem::path& secret_key_file) {
  std::filesystem::path pub = secret_key_file;
  pub.replace_extension(".pub");
  return {checked_key(pub), checked_key(secret_key_file)};
}

std::optional<std::string> read_public_key(const std::filesystem::path& file) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec)) return std::nullopt;
  return checked_key(file);
}

std::optional<std::string> trusted_public_key(const std::filesystem::path& dir,
                                              const std::string& node) {
  return read_public_key(dir / (node + ".pub"));
}

std::string z85_key(const void* data, std::size_t size) {
  if (size != 32) {
    throw Error(ErrorCategory::kInput,
                "CURVE key of " + std::to_string(size) + " bytes (expected 32)");
  }
  std::array<char, kZ85KeyChars + 1> text{};
  zmq_z85_encode(text.data(), static_cast<const std::uint8_t*>(data), size);
  return text.data();
}

}  // namespace azflow::daemon
