// The CUDA integrator against the CPU integrator, frame by frame on the same plans, for every mode
// of gpu_test_cases.hpp (1D/2D x no/bbox x none/Poisson/azimuthal x plain/full corrections x
// uint8/uint16/uint32/int32/float32/int16/int64/float64), in batches, with every kernel shape, from
// pinned ring slots. Built in every configuration: without a GPU (or without CUDA) the device tests
// skip with the reason, and the stub's behaviour is checked instead.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "ipc/ring.hpp"
#include "stages/integrate/cuda_integrator.hpp"
#include "stages/integrate/gpu_plan.hpp"
#include "tests/integrate/gpu_test_cases.hpp"

namespace azflow::integrate {
namespace {

using namespace testing;

class CudaIntegratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const CudaProbe probe = probe_cuda_devices();
    if (probe.devices.empty()) {
      GTEST_SKIP() << "no GPU: " << probe.reason << " (CUDA backend tests need a CUDA device)";
    }
  }
};

template <class T>
void compare_batches(const PlanCase& c, DType dtype, const CudaOptions& options) {
  const auto frames = make_frames<T>(7, 3 + static_cast<unsigned>(dtype));
  std::vector<FrameView> views;
  for (const auto& f : frames) views.push_back({f.data(), dtype, kRows, kCols});
  CpuIntegrator cpu(c.plan);
  CudaIntegrator gpu(c.plan, options);
  std::vector<BinSums> got(views.size());
  gpu.integrate_batch(views, got);
  for (std::size_t i = 0; i < views.size(); ++i) {
    BinSums want;
    cpu.integrate(views[i], want);
    expect_close(want, got[i],
                 c.name + " " + std::string(dtype_name(dtype)) + " row group " +
                     std::to_string(options.row_group) + " batch " +
                     std::to_string(options.max_batch) + " frame " + std::to_string(i));
  }
}

TEST_F(CudaIntegratorTest, MatchesTheCpuIntegratorInEveryModeAndDtype) {
  for (const PlanCase& c : plan_cases()) {
    const CudaOptions options{0, 3, 2, 0};  // 7 frames: batches of 3, 3 and 1, double-buffered
    compare_batches<std::uint8_t>(c, DType::kUint8, options);
    compare_batches<std::uint16_t>(c, DType::kUint16, options);
    compare_batches<std::uint32_t>(c, DType::kUint32, options);
    compare_batches<std::int32_t>(c, DType::kInt32, options);
    compare_batches<float>(c, DType::kFloat32, options);
    compare_batches<std::int16_t>(c, DType::kInt16, options);
    compare_batches<std::int64_t>(c, DType::kInt64, options);  // batches of 1 (3 / 2)
    compare_batches<double>(c, DType::kFloat64, options);
    compare_batches<double>(c, DType::kFloat64, CudaOptions{0, 8, 2, 0});  // batches of 4
  }
}

TEST(CudaBatchSize, EightByteDtypesTakeHalfABatchAndAtLeastOneFrame) {
  EXPECT_EQ(max_frames_of(8, DType::kUint16), 8u);
  EXPECT_EQ(max_frames_of(8, DType::kInt16), 8u);
  EXPECT_EQ(max_frames_of(8, DType::kFloat32), 8u);
  EXPECT_EQ(max_frames_of(8, DType::kInt64), 4u);
  EXPECT_EQ(max_frames_of(3, DType::kFloat64), 1u);
  EXPECT_EQ(max_frames_of(1, DType::kFloat64), 1u);
  for (const std::size_t batch : {1u, 2u, 3u, 8u, 64u}) {
    for (const DType t : kAllDTypes) {
      EXPECT_LE(max_frames_of(batch, t) * dtype_size(t) * 100, frame_buffer_bytes(batch, 100))
          << dtype_name(t) << " batch " << batch;
    }
  }
}

TEST_F(CudaIntegratorTest, EveryKernelShapeAndBatchSizeGivesTheSameSums) {
  for (const PlanCase& c : plan_cases()) {
    for (const int group : gpu::kRowGroupSizes) {
      for (const std::size_t batch : {std::size_t{1}, std::size_t{8}}) {
        compare_batches<std::uint32_t>(c, DType::kUint32, CudaOptions{0, batch, 2, group});
        compare_batches<float>(c, DType::kFloat32, CudaOptions{0, batch, 1, group});
      }
    }
  }
}

TEST_F(CudaIntegratorTest, SubmitAndCollectKeepOrderAndBound) {
  const auto cases = plan_cases();
  const PlanCase& c = cases[3];
  const auto frames = make_frames<std::uint16_t>(4, 5);
  std::vector<FrameView> views;
  for (const auto& f : frames) views.push_back({f.data(), DType::kUint16, kRows, kCols});
  CudaIntegrator gpu(c.plan, CudaOptions{0, 2, 2, 0});
  EXPECT_TRUE(gpu.can_submit());
  const std::vector<std::uint64_t> ids_a{10, 11}, ids_b{12, 13};
  const auto ta = gpu.submit(std::span(views).subspan(0, 2), ids_a);
  const auto tb = gpu.submit(std::span(views).subspan(2, 2), ids_b);
  EXPECT_LT(ta, tb);
  EXPECT_FALSE(gpu.can_submit());
  EXPECT_EQ(gpu.in_flight(), 2u);
  EXPECT_THROW(gpu.submit(std::span(views).subspan(0, 1)), Error);
  CpuIntegrator cpu(c.plan);
  for (const auto ticket : {ta, tb}) {
    const CudaIntegrator::Batch batch = gpu.collect();
    EXPECT_EQ(batch.ticket, ticket);
    ASSERT_EQ(batch.frames, 2u);
    for (std::size_t i = 0; i < 2; ++i) {
      BinSums want, got;
      cpu.integrate(views[(ticket == ta ? 0 : 2) + i], want);
      batch.unpack(i, got);
      expect_close(want, got, c.name + " submitted frame");
    }
  }
  EXPECT_EQ(gpu.in_flight(), 0u);
  EXPECT_THROW((void)gpu.collect(), Error);
}

TEST_F(CudaIntegratorTest, BadFramesAreInputErrorsBeforeAnyDeviceWork) {
  const auto cases = plan_cases();
  CudaIntegrator gpu(cases[0].plan);
  std::vector<std::uint32_t> small(10 * 10);
  BinSums out;
  try {
    gpu.integrate(FrameView{small.data(), DType::kUint32, 10, 10}, out);
    FAIL() << "no error for a 10 x 10 frame";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInput);
    EXPECT_NE(std::string(e.what()).find("10 x 10"), std::string::npos) << e.what();
  }
  EXPECT_EQ(gpu.in_flight(), 0u);
  const auto frames = make_frames<std::uint32_t>(1, 1);
  gpu.integrate(FrameView{frames[0].data(), DType::kUint32, kRows, kCols}, out);  // still usable
  EXPECT_EQ(out.bins(), cases[0].plan->bins());
}

TEST_F(CudaIntegratorTest, IntegratorsOfOneDeviceShareTheUploadedPlan) {
  const auto cases = plan_cases();
  CudaIntegrator a(cases[0].plan), b(cases[0].plan), other(cases[1].plan);
  EXPECT_EQ(a.device_plan_id(), b.device_plan_id());
  EXPECT_NE(a.device_plan_id(), other.device_plan_id());
}

TEST_F(CudaIntegratorTest, FramesFromAPinnedRingMatchTheCpu) {
  const auto cases = plan_cases();
  const PlanCase& c = cases[8];  // 1d bbox poisson plain
  const std::string name = ipc::ring_name("cudatest" + std::to_string(::getpid()), "frames");
  ipc::Ring ring = ipc::Ring::create({name, 4, kRows * kCols * sizeof(float)});
  const auto area = ring.payload_area();
  PinnedHostRegion pinned(0, area.data(), area.size());
  const auto frames = make_frames<float>(3, 9);
  for (const auto& f : frames) {
    auto slot = ring.acquire_write(std::chrono::milliseconds(100));
    ASSERT_TRUE(slot);
    std::memcpy(slot->payload().data(), f.data(), f.size() * sizeof(float));
    slot->header().bytes = f.size() * sizeof(float);
    slot->commit();
  }
  std::vector<ipc::ReadSlot> held;
  std::vector<FrameView> views;
  for (std::size_t i = 0; i < frames.size(); ++i) {
    auto slot = ring.acquire_read(std::chrono::milliseconds(100));
    ASSERT_TRUE(slot);
    views.push_back({slot->payload().data(), DType::kFloat32, kRows, kCols});
    held.push_back(std::move(*slot));
  }
  CudaIntegrator gpu(c.plan, CudaOptions{0, 4, 2, 0});
  gpu.submit(views);
  const auto batch = gpu.collect();
  CpuIntegrator cpu(c.plan);
  for (std::size_t i = 0; i < views.size(); ++i) {
    BinSums want, got;
    cpu.integrate(views[i], want);
    batch.unpack(i, got);
    expect_close(want, got, c.name + " ring frame " + std::to_string(i));
  }
  held.clear();
  ipc::Ring::remove(name);
}

TEST(CudaProbe, SaysWhyThereIsNoDevice) {
  const CudaProbe probe = probe_cuda_devices();
  if (probe.devices.empty()) {
    EXPECT_FALSE(probe.reason.empty());
  } else {
    EXPECT_TRUE(probe.cuda_build);
    for (const auto& d : probe.devices) EXPECT_GT(d.memory_bytes, 0u) << d.name;
  }
  if (!probe.cuda_build) {
    // The stub: every constructor refuses with a configuration error saying why.
    const auto cases = plan_cases();
    try {
      CudaIntegrator gpu(cases[0].plan);
      FAIL() << "the stub constructed an integrator";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kConfig);
      EXPECT_NE(std::string(e.what()).find("without CUDA"), std::string::npos) << e.what();
    }
  }
}

TEST(CudaOptionsCheck, OutOfRangeOptionsAreConfigErrorsWhenCudaIsBuilt) {
  const CudaProbe probe = probe_cuda_devices();
  if (!probe.cuda_build) GTEST_SKIP() << "built without CUDA";
  const auto cases = plan_cases();
  for (const CudaOptions& o : {CudaOptions{0, 0, 2, 0}, CudaOptions{0, 65, 2, 0},
                               CudaOptions{0, 8, 0, 0}, CudaOptions{0, 8, 2, 3}}) {
    try {
      CudaIntegrator gpu(cases[0].plan, o);
      FAIL() << "accepted max_batch " << o.max_batch << " buffers " << o.buffers;
    } catch (const Error& e) {  // checked before the device is touched
      EXPECT_EQ(e.category(), ErrorCategory::kConfig) << e.what();
    }
  }
}

}  // namespace
}  // namespace azflow::integrate
