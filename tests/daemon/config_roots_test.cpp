// The allowed_input_roots / allowed_output_roots keys: default, parsing, errors naming key and
// file, and their place in describe() and config_json() (the `config` verb).
#include <gtest/gtest.h>

#include "base/error.hpp"
#include "daemon/config.hpp"
#include "tests/daemon/control_test_support.hpp"

namespace azflow::daemon {
namespace {

using test::TempDir;
using test::write_file;

DaemonConfig load(const std::string& toml) {
  TempDir dir;
  const auto file = dir.path() / "azflowd.toml";
  write_file(file, toml);
  Environment env;
  env.xdg_runtime_dir = "/run/user/1";
  env.xdg_state_home = "/home/u/.state";
  return load_config(file, {}, env);
}

std::string error_of(const std::string& toml) {
  try {
    (void)load(toml);
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(ConfigRoots, DefaultAllowsEverything) {
  const DaemonConfig c = load("");
  EXPECT_EQ(c.allowed_input_roots, std::vector<std::filesystem::path>{"/"});
  EXPECT_EQ(c.allowed_output_roots, std::vector<std::filesystem::path>{"/"});
}

TEST(ConfigRoots, ListsAreReadAndNormalised) {
  const DaemonConfig c = load(
      "allowed_input_roots = [\"/data/\", \"/beamline/../scratch\"]\n"
      "allowed_output_roots = [\"/data/processed\"]\n");
  EXPECT_EQ(c.allowed_input_roots, (std::vector<std::filesystem::path>{"/data/", "/scratch"}));
  EXPECT_EQ(c.allowed_output_roots, std::vector<std::filesystem::path>{"/data/processed"});
  const std::string text = describe(c);
  EXPECT_NE(text.find("allowed_input_roots = ['/data/', '/scratch']"), std::string::npos) << text;
  const auto j = config_json(c);
  EXPECT_EQ(j["allowed_output_roots"], nlohmann::json::array({"/data/processed"}));
  EXPECT_EQ(j["rings"]["results_slots"], 64);
  EXPECT_EQ(j["live"]["endpoint"], c.live_endpoint);
}

TEST(ConfigRoots, ErrorsNameTheKey) {
  EXPECT_NE(error_of("allowed_input_roots = \"/data\"\n").find("key 'allowed_input_roots'"),
            std::string::npos);
  EXPECT_NE(error_of("allowed_input_roots = [\"data\"]\n").find("not an absolute path"),
            std::string::npos);
  EXPECT_NE(error_of("allowed_output_roots = []\n").find("empty list"), std::string::npos);
  EXPECT_NE(error_of("allowed_output_roots = [1]\n").find("key 'allowed_output_roots'"),
            std::string::npos);
}

}  // namespace
}  // namespace azflow::daemon
