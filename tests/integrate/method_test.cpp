// parse_method against pyFAI 0.21.3's own resolution of method names
// (tests/integrate/fixtures/method_names.json, written by make_method_names.py).

#include "stages/integrate/method.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "base/error.hpp"

namespace azflow::integrate {
namespace {

nlohmann::json pyfai_names() {
  std::filesystem::path path = "tests/integrate/fixtures/method_names.json";
  if (const char* root = std::getenv("AZFLOW_SOURCE_DIR"); root != nullptr && *root != '\0')
    path = std::filesystem::path(root) / path;
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot open " << path;
  return in ? nlohmann::json::parse(in) : nlohmann::json::object();
}

TEST(ParseMethod, ResolvesEveryNameAsPyfaiDoes) {
  const nlohmann::json names = pyfai_names();
  ASSERT_TRUE(names.contains("split"));
  ASSERT_GE(names["split"].size(), 20u);
  for (const auto& [name, dims] : names["split"].items()) {
    const MethodChoice m = parse_method(name, "--method");
    // pyFAI resolves the same splitting in 1D and 2D for every name kept in the fixture.
    EXPECT_EQ(dims["1"].get<std::string>(), dims["2"].get<std::string>()) << name;
    EXPECT_EQ(split_name(m.split), dims["1"].get<std::string>()) << name;
  }
}

TEST(ParseMethod, AcceptsPythonTupleAndListSpellings) {
  EXPECT_EQ(parse_method("(\"full\", \"csr\", \"cython\")", "m").split, PixelSplit::kFull);
  EXPECT_EQ(parse_method("['bbox', 'csr', 'cython']", "m").split, PixelSplit::kBBox);
  const MethodChoice m = parse_method(" FULL , CSR , Cython ", "m");
  EXPECT_EQ(m.split, PixelSplit::kFull);
  EXPECT_EQ(m.algo, "csr");
  EXPECT_EQ(m.impl, "cython");
}

TEST(ParseMethod, RefusesWhatAzflowDoesNotDoNamingTheField) {
  for (const char* bad : {"pseudo", "pseudo,csr,cython", "splitpix", "full,csc,cython",
                          "full,csr,cuda", "", "frobnicate", "full,csr,cython,gpu"}) {
    try {
      (void)parse_method(bad, "--method");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("--method"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("no, bbox and full"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace azflow::integrate
