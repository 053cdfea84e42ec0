// A daemon job with full pixel splitting (azflowctl enqueue --method full) gives the same
// result as `azflow integrate --method full,csr,cython` on the same series.

#include <gtest/gtest.h>

#include <string>

#include "tests/daemon/daemon_test_support.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

using namespace azflow::testing;

TEST(DaemonFullSplitTest, JobWithMethodFullEqualsAzflowIntegrate) {
  TempSpace space;
  const std::string master = make_series(space, "fs", 24);
  const std::string poni = (kCliFixtures / "pilatus.poni").string();
  const std::string ref = space.path("ref.h5").string(), out = space.path("out.h5").string();
  const CommandResult cli = run_command(std::string(AZFLOW_BIN) + " integrate " + quote(master) +
                                        " --poni " + quote(poni) +
                                        " --npt 200 --unit 2th_deg --error-model poisson --method "
                                        "'(\"full\", \"csr\", \"cython\")' --quiet -o " +
                                        quote(ref));
  ASSERT_EQ(cli.code, 0) << cli.output;

  DaemonProcess daemon(space, 2);
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready()) << daemon.log();
  const CommandResult r =
      run_command(std::string(AZFLOWCTL_BIN) + " --endpoint " + quote(daemon.endpoint()) +
                  " enqueue " + quote(master) + " --poni " + quote(poni) +
                  " --npt 200 --unit 2th_deg --error-model poisson --method full -o " + quote(out));
  ASSERT_EQ(r.code, 0) << r.output;
  const std::int64_t id = std::stoll(r.output.substr(r.output.find_first_of("0123456789")));
  EXPECT_EQ(wait_job(client, id).value("state", ""), "succeeded") << daemon.log();
  expect_same_as_reference(out, ref);

  // Both record full splitting in the settings they store.
  for (const std::string& file : {ref, out}) {
    H5File f(file);
    const std::vector<std::string> note = f.strings("/entry/process/configuration/data");
    ASSERT_EQ(note.size(), 1u) << file;
    EXPECT_NE(note[0].find("\"full\""), std::string::npos) << file << ": " << note[0];
  }
}

}  // namespace
