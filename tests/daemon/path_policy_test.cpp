// allowed_input_roots / allowed_output_roots: canonical paths (symlinks resolved, ".." removed)
// checked against the roots, errors naming the request field.
#include "daemon/path_policy.hpp"

#include <gtest/gtest.h>

#include "tests/daemon/control_test_support.hpp"

namespace azflow::daemon {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

TEST(PathPolicy, PathWithinRoots) {
  TempDir dir;
  const fs::path root = dir.path() / "data";
  fs::create_directories(root / "sub");
  fs::create_directories(dir.path() / "other");
  fs::create_symlink(dir.path() / "other", root / "link");
  EXPECT_TRUE(path_within(root / "sub/a.h5", {root}));
  EXPECT_TRUE(path_within(root / "not/yet/there.h5", {root}));
  EXPECT_TRUE(path_within(root, {root}));
  EXPECT_TRUE(path_within(dir.path() / "other/x.h5", {"/"}));
  EXPECT_FALSE(path_within(root / "../other/x.h5", {root}));
  EXPECT_FALSE(path_within(root / "link/x.h5", {root}));         // the symlink leaves the root
  EXPECT_FALSE(path_within(dir.path() / "data2/x.h5", {root}));  // a prefix is not a parent
  EXPECT_FALSE(path_within("relative.h5", {"/"}));
  EXPECT_TRUE(path_within(dir.path() / "other/x.h5", {root, dir.path() / "other"}));
  EXPECT_TRUE(path_within(root / "sub/a.h5", {fs::path(root.string() + "/")}));
}

TEST(PathPolicy, CheckNamesTheField) {
  TempDir dir;
  const fs::path in = dir.path() / "in", out = dir.path() / "out", state = dir.path() / "state";
  JobSpec spec;
  spec.datasets = {(in / "a.h5").string(), (dir.path() / "b.h5").string()};
  try {
    check_allowed_paths(spec, {in}, {out}, state);
    FAIL() << "not refused";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "spec.datasets[1]");
    EXPECT_NE(e.message().find((dir.path() / "b.h5").string()), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("allowed_input_roots"), std::string::npos) << e.what();
  }
  spec.datasets.pop_back();
  spec.flat_path = (dir.path() / "flat.h5").string() + "::/entry/flat";
  try {
    check_allowed_paths(spec, {in}, {out}, state);
    FAIL() << "not refused";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "spec.flat_path");
  }
  spec.flat_path = (in / "flat.h5").string() + "::/entry/flat";
  spec.output_path = (in / "r.h5").string();
  try {
    check_allowed_paths(spec, {in}, {out}, state);
    FAIL() << "not refused";
  } catch (const FieldError& e) {
    EXPECT_EQ(e.field(), "spec.output_path");
    EXPECT_NE(e.message().find("allowed_output_roots"), std::string::npos) << e.what();
  }
  spec.output_path = (out / "r.h5").string();
  EXPECT_NO_THROW(check_allowed_paths(spec, {in}, {out}, state));
  spec.output_path = (state / "outputs/x.h5").string();  // the daemon's own folder
  EXPECT_NO_THROW(check_allowed_paths(spec, {in}, {out}, state / "outputs"));
}

}  // namespace
}  // namespace azflow::daemon
