// Integrate worker placement (daemon/gpu_placement.hpp) and the [gpu] configuration keys: which
// backend the daemon picks for each inventory and configuration, the probe through the real
// azflow-stage, and the keys' errors.

#include "daemon/gpu_placement.hpp"

#include <gtest/gtest.h>

#include <string>

#include "base/error.hpp"
#include "daemon/config.hpp"
#include "tests/daemon/control_test_support.hpp"

namespace azflow::daemon {
namespace {

GpuInventory two_gpus() {
  return parse_gpu_probe(R"({"cuda_build":true,"devices":[{"ordinal":0,"name":"NVIDIA H100"},)"
                         R"({"ordinal":1,"name":"NVIDIA H100"}],"reason":""})");
}

TEST(GpuPlacement, ProbeOutputIsParsed) {
  const GpuInventory inv = two_gpus();
  EXPECT_TRUE(inv.cuda_build);
  EXPECT_EQ(inv.ordinals, (std::vector<int>{0, 1}));
  EXPECT_EQ(inv.names[1], "NVIDIA H100");
  EXPECT_TRUE(inv.reason.empty());
  const GpuInventory none = parse_gpu_probe(
      R"({"cuda_build":true,"devices":[],"reason":"no CUDA device visible: driver too old"})");
  EXPECT_TRUE(none.ordinals.empty());
  EXPECT_EQ(none.reason, "no CUDA device visible: driver too old");
  const GpuInventory junk = parse_gpu_probe("Segmentation fault");
  EXPECT_FALSE(junk.cuda_build);
  EXPECT_NE(junk.reason.find("no JSON"), std::string::npos);
}

TEST(GpuPlacement, EveryVisibleGpuGetsWorkersPerGpuWorkers) {
  GpuConfig config;  // gpus = "all", 4 workers per GPU
  const IntegratePlacement p = place_integrate_workers(config, two_gpus(), 3);
  EXPECT_TRUE(p.on_gpu);
  EXPECT_EQ(p.devices, (std::vector<std::string>{"0", "0", "0", "0", "1", "1", "1", "1"}));
  EXPECT_EQ(p.summary,
            "integrate backend: CUDA, 4 workers on each of cuda:0 (NVIDIA H100), cuda:1 (NVIDIA "
            "H100)");
}

TEST(GpuPlacement, ListedGpusOnly) {
  GpuConfig config;
  config.devices = std::vector<int>{1};
  config.workers_per_gpu = 2;
  const IntegratePlacement p = place_integrate_workers(config, two_gpus(), 3);
  EXPECT_EQ(p.devices, (std::vector<std::string>{"1", "1"}));
  config.devices = std::vector<int>{0, 7};
  try {
    (void)place_integrate_workers(config, two_gpus(), 3);
    FAIL() << "accepted an invisible device";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kConfig);
    EXPECT_NE(std::string(e.what()).find("gpu.gpus"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("7"), std::string::npos) << e.what();
  }
}

TEST(GpuPlacement, WithoutGpusTheCpuWorkersRunAndTheSummarySaysWhy) {
  GpuConfig off;
  off.devices = std::vector<int>{};
  IntegratePlacement p = place_integrate_workers(off, two_gpus(), 3);
  EXPECT_FALSE(p.on_gpu);
  EXPECT_EQ(p.devices, (std::vector<std::string>{"cpu", "cpu", "cpu"}));
  EXPECT_EQ(p.summary, "integrate backend: CPU (gpus = [] in the configuration), 3 workers");

  const GpuInventory none = parse_gpu_probe(R"({"cuda_build":true,"devices":[]})");
  p = place_integrate_workers(GpuConfig{}, none, 1);
  EXPECT_EQ(p.summary, "integrate backend: CPU (no CUDA device visible), 1 worker");

  const GpuInventory no_cuda = parse_gpu_probe(R"({"cuda_build":false,"devices":[]})");
  p = place_integrate_workers(GpuConfig{}, no_cuda, 2);
  EXPECT_EQ(p.summary, "integrate backend: CPU (azflow-stage built without CUDA), 2 workers");
}

TEST(GpuPlacement, ProbeRunsTheRealStageExecutable) {
  const GpuInventory inv = probe_gpus(AZFLOW_STAGE_BIN);
  // Whatever this machine has, the probe answers: devices, or a reason for having none.
  EXPECT_TRUE(!inv.ordinals.empty() || !inv.reason.empty());
  EXPECT_EQ(inv.cuda_build, AZFLOW_TEST_HAVE_CUDA != 0) << inv.reason;
  const GpuInventory missing = probe_gpus("/nonexistent/azflow-stage");
  EXPECT_TRUE(missing.ordinals.empty());
  EXPECT_NE(missing.reason.find("--probe-gpus failed"), std::string::npos) << missing.reason;
}

TEST(GpuPlacement, DeviceLabels) {
  EXPECT_EQ(device_label("cpu"), "cpu");
  EXPECT_EQ(device_label("3"), "cuda:3");
}

// ------------------------------------------------------------------ [gpu] configuration keys

DaemonConfig load_toml(const std::string& toml) {
  test::TempDir dir;
  const auto file = dir.path() / "azflowd.toml";
  test::write_file(file, toml);
  return load_config(file, {}, Environment{});
}

std::string load_error(const std::string& toml) {
  try {
    (void)load_toml(toml);
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kConfig);
    return e.what();
  }
  ADD_FAILURE() << "no error for: " << toml;
  return {};
}

TEST(GpuConfigKeys, DefaultsAndValues) {
  const DaemonConfig d = load_config(std::nullopt, {}, Environment{});
  EXPECT_FALSE(d.gpu.devices.has_value());
  EXPECT_EQ(d.gpu.workers_per_gpu, 4u);
  const DaemonConfig c = load_toml("[gpu]\ngpus = [2, 0]\nworkers_per_gpu = 8\n");
  ASSERT_TRUE(c.gpu.devices.has_value());
  EXPECT_EQ(*c.gpu.devices, (std::vector<int>{2, 0}));
  EXPECT_EQ(c.gpu.workers_per_gpu, 8u);
  EXPECT_TRUE(load_toml("[gpu]\ngpus = []\n").gpu.devices->empty());
  EXPECT_FALSE(load_toml("[gpu]\ngpus = \"all\"\n").gpu.devices.has_value());
  const std::string text = describe(c);
  EXPECT_NE(text.find("[gpu]\ngpus = [2, 0]\nworkers_per_gpu = 8"), std::string::npos) << text;
  EXPECT_NE(describe(d).find("gpus = \"all\""), std::string::npos);
}

TEST(GpuConfigKeys, BadValuesNameTheKey) {
  EXPECT_NE(load_error("[gpu]\nworkers_per_gpu = 0\n").find("'gpu.workers_per_gpu'"),
            std::string::npos);
  EXPECT_NE(load_error("[gpu]\nworkers_per_gpu = 65\n").find("'gpu.workers_per_gpu'"),
            std::string::npos);
  EXPECT_NE(load_error("[gpu]\ngpus = \"some\"\n").find("'gpu.gpus'"), std::string::npos);
  EXPECT_NE(load_error("[gpu]\ngpus = [0, 0]\n").find("listed twice"), std::string::npos);
  EXPECT_NE(load_error("[gpu]\ngpus = [-1]\n").find("'gpu.gpus'"), std::string::npos);
  EXPECT_NE(load_error("[gpu]\ngpus = [\"0\"]\n").find("'gpu.gpus'"), std::string::npos);
  EXPECT_NE(load_error("[gpu]\ngpu_count = 1\n").find("'gpu.gpu_count'"), std::string::npos);
}

}  // namespace
}  // namespace azflow::daemon
