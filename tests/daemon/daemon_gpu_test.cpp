// azflowd's integrate backend end to end: a real daemon decides at start where its integrate
// workers run, says so once in its log, starts them with that device, and every stage reports its
// device in `status`. On a machine without a GPU (CI) the CPU backend runs; on a GPU node the
// same test runs the CUDA workers and checks their results against the CPU reference.

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "daemon/gpu_placement.hpp"
#include "tests/daemon/daemon_test_support.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

using namespace azflow::testing;

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

/// The "device" of every integrate stage in the daemon's status.
std::vector<std::string> integrate_devices(ControlClient& client) {
  std::vector<std::string> devices;
  const json r = client.result({{"verb", "status"}});
  for (const auto& s : r["daemon"].value("stages", json::array())) {
    if (s.value("role", "") == "integrate") devices.push_back(s.value("device", "?"));
  }
  return devices;
}

/// I of `out` equals the CPU reference's to float32 rounding of float64 sums in another order.
void expect_close_to_reference(const std::string& out, const std::string& ref_path) {
  H5File f(out), ref(ref_path);
  const auto I = f.doubles("/entry/integrate/I");
  const auto I_ref = ref.doubles("/entry/integrate/I");
  ASSERT_EQ(I.size(), I_ref.size());
  for (std::size_t i = 0; i < I.size(); ++i) {
    if (std::isnan(I_ref[i])) {
      EXPECT_TRUE(std::isnan(I[i])) << i;
    } else {
      EXPECT_NEAR(I[i], I_ref[i], 1e-6 * std::max(1.0, std::abs(I_ref[i]))) << i;
    }
  }
}

TEST(DaemonGpu, TheDaemonPicksTheBackendOnceAndStagesReportTheirDevice) {
  TempSpace space;
  const std::string master = make_series(space, "g", 120);
  reference_integrate(master, space.path("ref.h5").string());
  const azflow::daemon::GpuInventory gpus = azflow::daemon::probe_gpus(AZFLOW_STAGE_BIN);
  DaemonProcess daemon(space, 2, "[gpu]\nworkers_per_gpu = 2\n");
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready()) << daemon.log();
  const std::string out = space.path("out.h5").string();
  const std::int64_t id = ctl_enqueue(daemon.endpoint(), master, out);
  ASSERT_GT(id, 0);
  EXPECT_EQ(wait_job(client, id).value("state", ""), "succeeded") << daemon.log();
  const std::string log = daemon.log();
  EXPECT_EQ(occurrences(log, "integrate backend: "), 1u) << log;
  const auto devices = integrate_devices(client);
  if (gpus.ordinals.empty()) {
    const std::string why = gpus.cuda_build ? "integrate backend: CPU (no CUDA device visible"
                                            : "integrate backend: CPU (azflow-stage built without "
                                              "CUDA), 2 workers";
    EXPECT_NE(log.find(why), std::string::npos) << log;
    EXPECT_EQ(devices, (std::vector<std::string>{"cpu", "cpu"}));
  } else {
    EXPECT_NE(log.find("integrate backend: CUDA, 2 workers on each of cuda:"), std::string::npos)
        << log;
    EXPECT_EQ(devices.size(), 2 * gpus.ordinals.size());
    for (const auto& d : devices) EXPECT_EQ(d.rfind("cuda:", 0), 0u) << d;
  }
  expect_close_to_reference(out, space.path("ref.h5").string());
}

TEST(DaemonGpu, AnEmptyGpuListForcesTheCpuBackend) {
  TempSpace space;
  const std::string master = make_series(space, "c", 60);
  DaemonProcess daemon(space, 2, "[gpu]\ngpus = []\n");
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready()) << daemon.log();
  const std::int64_t id = ctl_enqueue(daemon.endpoint(), master, space.path("o.h5").string());
  ASSERT_GT(id, 0);
  EXPECT_EQ(wait_job(client, id).value("state", ""), "succeeded") << daemon.log();
  EXPECT_NE(daemon.log().find("integrate backend: CPU (gpus = [] in the configuration), 2 workers"),
            std::string::npos)
      << daemon.log();
  EXPECT_EQ(integrate_devices(client), (std::vector<std::string>{"cpu", "cpu"}));
}

TEST(DaemonGpu, AWorkerWhoseGpuFailsExitsAndItsFramesAreRedoneElsewhere) {
  const azflow::daemon::GpuInventory gpus = azflow::daemon::probe_gpus(AZFLOW_STAGE_BIN);
  if (!gpus.cuda_build) GTEST_SKIP() << "built without CUDA: no CUDA worker can start";
  // A worker on a device that cannot be used (none on this machine, or one past the last), next
  // to a CPU worker: every frame the CUDA worker takes must come back and be integrated once.
  const std::string bad_device = std::to_string(gpus.ordinals.size() + 7);
  TempSpace space;
  const std::string master = make_series(space, "f", 120);
  reference_integrate(master, space.path("ref.h5").string());
  DaemonProcess daemon(space, 1, "stage_restart_limit = 1000\n",
                       {{"AZFLOW_TEST_INTEGRATE_DEVICES", bad_device + ",cpu"}});
  ControlClient client(daemon.endpoint());
  ASSERT_TRUE(client.wait_ready()) << daemon.log();
  const std::string out = space.path("out.h5").string();
  const std::int64_t id = ctl_enqueue(daemon.endpoint(), master, out);
  ASSERT_GT(id, 0);
  EXPECT_EQ(wait_job(client, id).value("state", ""), "succeeded") << daemon.log();
  const std::string log = daemon.log();
  EXPECT_NE(log.find("integrate/0 (pid"), std::string::npos) << log;
  EXPECT_NE(log.find("ended: exit status 3"), std::string::npos) << log;
  EXPECT_NE(log.find("cuda:" + bad_device + ": cudaSetDevice failed"), std::string::npos) << log;
  expect_close_to_reference(out, space.path("ref.h5").string());
  EXPECT_TRUE(client.result({{"verb", "status"}}).contains("daemon")) << "daemon still serving";
}

}  // namespace
