// A daemon job with sigma clipping (job field sigma_clip, `azflowctl enqueue --sigma-clip`) gives
// the same file as `azflow integrate --sigma-clip` on the same frames: I, I_errors, the per-frame
// std and count, and the dataset-wide sums (azflow integrate's sigma clipping is checked against
// pyFAI 0.21.3 in tests/integrate/sigma_clip_reference_test.cpp and tests/cli).

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "tests/daemon/daemon_test_support.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

using namespace azflow::testing;

constexpr const char* kClip = "--sigma-clip --thres 3 --max-iter 4";

TEST(DaemonSigmaClipTest, JobEqualsAzflowIntegrate) {
  TempSpace space;
  const std::string master = (kCliFixtures / "pilatus_master.h5").string();
  const std::string ref = space.path("ref.h5").string(), out = space.path("job.h5").string();
  const CommandResult r = run_command(
      std::string(AZFLOW_BIN) + " integrate " + quote(master) + " --poni " +
      quote((kCliFixtures / "pilatus.poni").string()) +
      " --npt 200 --unit q_nm^-1 --error-model poisson --quiet -o " + quote(ref) + " " + kClip);
  ASSERT_EQ(r.code, 0) << r.output;

  DaemonProcess daemon(space, 2);
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready()) << daemon.log();
  const std::int64_t id =
      ctl_enqueue(daemon.endpoint(), master, out, std::string("split ") + kClip);
  ASSERT_GT(id, 0);
  ASSERT_EQ(ctl_wait(daemon.endpoint(), id), 0) << daemon.log();

  expect_same_as_reference(out, ref);
  H5File f(out), g(ref);
  for (const char* name : {"I_errors", "std", "count"}) {
    const std::string path = std::string("/entry/integrate/") + name;
    ASSERT_TRUE(f.exists(path)) << path;
    const auto a = f.doubles(path), b = g.doubles(path);
    ASSERT_EQ(a.size(), b.size()) << path;
    std::size_t differ = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) ++differ;
    }
    EXPECT_EQ(differ, 0u) << path;
  }
  // The clipping really dropped pixels: fewer counted than pyFAI's plain integration of the same
  // frames and settings (pilatus_ref.h5) in some bin.
  const auto clipped = f.doubles("/entry/integrate/count");
  const auto plain =
      H5File((kCliFixtures / "pilatus_ref.h5").string()).doubles("/entry/integrate/count");
  ASSERT_EQ(clipped.size(), plain.size());
  std::size_t fewer = 0;
  for (std::size_t i = 0; i < plain.size(); ++i) fewer += clipped[i] < plain[i] - 0.5 ? 1 : 0;
  EXPECT_GT(fewer, 0u);
}

}  // namespace
