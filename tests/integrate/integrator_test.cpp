// CPU integrator behaviour with analytically known results.

#include <gtest/gtest.h>

#include <limits>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "base/error.hpp"
#include "stages/integrate/cpu_integrator.hpp"

namespace azflow::integrate {
namespace {

constexpr std::size_t kRows = 60, kCols = 80;

Geometry geometry() {
  Poni p;
  p.detector = {"Detector", 100e-6, 100e-6, kRows, kCols};
  p.dist_m = 0.05;
  p.poni1_m = 0.0031;
  p.poni2_m = 0.0042;
  p.rot2_rad = 0.05;
  p.wavelength_m = 1e-10;
  return Geometry(p);
}

template <class T>
BinSums integrate(const std::shared_ptr<const Plan>& plan, const std::vector<T>& frame, DType dtype,
                  std::size_t threads = 1) {
  CpuIntegrator integrator(plan, threads);
  BinSums sums;
  integrator.integrate(FrameView{frame.data(), dtype, kRows, kCols}, sums);
  return sums;
}

TEST(CpuIntegrator, UniformFrameWithoutCorrectionsGivesItsValue) {
  for (PixelSplit split : {PixelSplit::kNo, PixelSplit::kBBox}) {
    IntegrationSettings s;
    s.npt_rad = 40;
    s.split = split;
    s.correct_solid_angle = false;
    const auto plan = Plan::build(geometry(), s);
    const auto sums = integrate(plan, std::vector<std::uint32_t>(kRows * kCols, 7), DType::kUint32);
    std::vector<float> I(plan->bins());
    finalize(sums, I, {});
    for (std::size_t b = 0; b < plan->bins(); ++b) {
      if (sums.count[b] > 0) {
        EXPECT_NEAR(I[b], 7.0f, 1e-5f) << "bin " << b;
      }
    }
  }
}

TEST(CpuIntegrator, DarkFlatAndNormalizationFactorAreUndone) {
  IntegrationSettings s;
  s.npt_rad = 30;
  s.npt_azim = 8;
  s.split = PixelSplit::kBBox;
  s.normalization_factor = 4.0;
  s.polarization_factor = 0.9;
  Corrections c;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.8f, 1.2f);
  for (std::size_t p = 0; p < kRows * kCols; ++p) {
    c.dark.push_back(u(rng) * 3);
    c.flat.push_back(u(rng));
  }
  const auto g = geometry();
  const auto plan = Plan::build(g, s, c);
  // raw = dark + k * nf * flat * solid_angle * polarization  =>  I = k exactly.
  const auto sa = g.solid_angle();
  const auto pol = g.polarization(0.9);
  std::vector<float> frame(kRows * kCols);
  for (std::size_t p = 0; p < frame.size(); ++p)
    frame[p] = c.dark[p] + 250.0f * 4.0f * c.flat[p] * sa[p] * pol[p];
  const auto sums = integrate(plan, frame, DType::kFloat32);
  std::vector<float> I(plan->bins());
  finalize(sums, I, {});
  for (std::size_t b = 0; b < plan->bins(); ++b)
    if (sums.count[b] > 0) {
      EXPECT_NEAR(I[b], 250.0f, 250.0f * 1e-5f) << "bin " << b;
    }
}

TEST(CpuIntegrator, PoissonSigmaOfConstantFrame) {
  IntegrationSettings s;
  s.npt_rad = 25;
  s.correct_solid_angle = false;
  s.error_model = ErrorModel::kPoisson;
  const auto plan = Plan::build(geometry(), s);
  const auto sums = integrate(plan, std::vector<std::uint16_t>(kRows * kCols, 100), DType::kUint16);
  std::vector<float> I(plan->bins()), sigma(plan->bins());
  finalize(sums, I, sigma);
  for (std::size_t b = 0; b < plan->bins(); ++b) {
    if (sums.count[b] == 0) continue;
    // N pixels of value c: sigma = sqrt(N c) / N.
    EXPECT_NEAR(sigma[b], std::sqrt(100.0 / sums.count[b]), 1e-5) << "bin " << b;
  }
}

TEST(CpuIntegrator, AzimuthalVarianceOfConstantFrameIsZero) {
  IntegrationSettings s;
  s.npt_rad = 25;
  s.split = PixelSplit::kBBox;
  s.error_model = ErrorModel::kAzimuthal;
  s.correct_solid_angle = false;
  const auto plan = Plan::build(geometry(), s);
  const auto sums = integrate(plan, std::vector<float>(kRows * kCols, 3.5f), DType::kFloat32, 3);
  for (std::size_t b = 0; b < plan->bins(); ++b) EXPECT_NEAR(sums.variance[b], 0.0, 1e-9);
}

TEST(CpuIntegrator, AllDtypesGiveTheSameSums) {
  IntegrationSettings s;
  s.npt_rad = 50;
  s.error_model = ErrorModel::kPoisson;
  const auto plan = Plan::build(geometry(), s);
  std::mt19937 rng(11);
  std::poisson_distribution<int> poisson(300);
  std::vector<std::uint16_t> u16(kRows * kCols);
  for (auto& v : u16) v = static_cast<std::uint16_t>(poisson(rng));
  const std::vector<std::uint32_t> u32(u16.begin(), u16.end());
  const std::vector<std::int32_t> i32(u16.begin(), u16.end());
  const std::vector<float> f32(u16.begin(), u16.end());
  const auto ref = integrate(plan, u16, DType::kUint16);
  for (const auto& other :
       {integrate(plan, u32, DType::kUint32), integrate(plan, i32, DType::kInt32),
        integrate(plan, f32, DType::kFloat32)}) {
    EXPECT_EQ(other.signal, ref.signal);
    EXPECT_EQ(other.variance, ref.variance);
    EXPECT_EQ(other.count, ref.count);
  }
}

TEST(CpuIntegrator, ThreadsAgreeWithOneThread) {
  for (ErrorModel em : {ErrorModel::kPoisson, ErrorModel::kAzimuthal}) {
    IntegrationSettings s;
    s.npt_rad = 30;
    s.npt_azim = 10;
    s.split = PixelSplit::kBBox;
    s.error_model = em;
    const auto plan = Plan::build(geometry(), s);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(0.0f, 1000.0f);
    std::vector<float> frame(kRows * kCols);
    for (auto& v : frame) v = u(rng);
    const auto one = integrate(plan, frame, DType::kFloat32, 1);
    const auto four = integrate(plan, frame, DType::kFloat32, 4);
    for (std::size_t b = 0; b < plan->bins(); ++b) {
      EXPECT_NEAR(four.signal[b], one.signal[b], 1e-9 * (1 + std::fabs(one.signal[b])));
      EXPECT_NEAR(four.variance[b], one.variance[b], 1e-8 * (1 + std::fabs(one.variance[b])));
      EXPECT_DOUBLE_EQ(four.count[b], one.count[b]);
    }
  }
}

TEST(CpuIntegrator, DummyPixelsAreExcluded) {
  IntegrationSettings s;
  s.npt_rad = 20;
  s.dummy = 4294967295.0;  // Eiger gap value; compared in float32 as pyFAI does
  const auto plan = Plan::build(geometry(), s);
  std::vector<std::uint32_t> frame(kRows * kCols, 10);
  const auto before = integrate(plan, frame, DType::kUint32);
  frame[123] = 0xFFFFFFFFu;
  const auto after = integrate(plan, frame, DType::kUint32);
  const auto bin = static_cast<std::size_t>(plan->pixel_bin()[123]);
  EXPECT_DOUBLE_EQ(after.count[bin], before.count[bin] - 1.0);
  EXPECT_DOUBLE_EQ(after.signal[bin], before.signal[bin] - 10.0);
}

TEST(CpuIntegrator, IntegerDummyFollowsFloat32Rounding) {
  // pyFAI compares float32(raw) with float32(dummy): near 2^32 the float32 spacing is 256, so
  // 0xFFFFFF90 also reads as 4294967296.0f and is flagged; 0xFFFFFE00 (4294966784.0f) is not.
  IntegrationSettings s;
  s.npt_rad = 20;
  s.dummy = 4294967295.0;
  const auto plan = Plan::build(geometry(), s);
  std::vector<std::uint32_t> frame(kRows * kCols, 10);
  frame[200] = 0xFFFFFF90u;
  frame[300] = 0xFFFFFE00u;
  const auto sums = integrate(plan, frame, DType::kUint32);
  double total = 0, signal = 0;
  for (std::size_t b = 0; b < plan->bins(); ++b) {
    total += sums.count[b];
    signal += sums.signal[b];
  }
  EXPECT_DOUBLE_EQ(total, static_cast<double>(kRows * kCols - 1));
  EXPECT_DOUBLE_EQ(signal, 10.0 * (kRows * kCols - 2) + 4294966784.0);
}

TEST(CpuIntegrator, FlatAtTheDummyValueInvalidatesThePixelButDarkDoesNot) {
  // pyFAI 0.21's preproc (checked with pyFAI itself, see tests/cli/fixtures/parity) drops a pixel
  // whose flat equals the dummy, is 0 or NaN, or whose dark is NaN; it never compares the dark with
  // the dummy. Both error-model paths must follow it. (Until issue 17 this test asserted that a
  // dark equal to the dummy drops the pixel, which pyFAI does not do.)
  for (ErrorModel em : {ErrorModel::kPoisson, ErrorModel::kAzimuthal}) {
    IntegrationSettings s;
    s.npt_rad = 20;
    s.dummy = -1.0;
    s.error_model = em;
    Corrections c;
    c.dark.assign(kRows * kCols, 0.0f);
    c.flat.assign(kRows * kCols, 1.0f);
    c.dark[10] = -1.0f;                                    // kept
    c.flat[20] = -1.0f;                                    // dropped
    c.flat[21] = 0.0f;                                     // dropped
    c.flat[22] = std::numeric_limits<float>::quiet_NaN();  // dropped
    c.dark[23] = std::numeric_limits<float>::quiet_NaN();  // dropped
    const auto plan = Plan::build(geometry(), s, c);
    const auto sums = integrate(plan, std::vector<float>(kRows * kCols, 5.0f), DType::kFloat32);
    double total = 0, signal = 0;
    for (double n : sums.count) total += n;
    for (double v : sums.signal) signal += v;
    EXPECT_DOUBLE_EQ(total, static_cast<double>(kRows * kCols - 4)) << error_model_name(em);
    EXPECT_DOUBLE_EQ(signal, 5.0 * static_cast<double>(kRows * kCols - 4) + 1.0)
        << error_model_name(em);
  }
}

TEST(CpuIntegrator, DeltaDummyWidensTheTest) {
  IntegrationSettings s;
  s.npt_rad = 20;
  s.dummy = -1.0;
  s.delta_dummy = 0.5;
  const auto plan = Plan::build(geometry(), s);
  std::vector<float> frame(kRows * kCols, 10.0f);
  frame[7] = -1.3f;  // within delta of the dummy: excluded
  frame[8] = -2.0f;  // outside: kept
  const auto sums = integrate(plan, frame, DType::kFloat32);
  double total = 0;
  for (double c : sums.count) total += c;
  EXPECT_DOUBLE_EQ(total, static_cast<double>(kRows * kCols - 1));
}

TEST(CpuIntegrator, WrongShapeIsAnInputError) {
  const auto plan = Plan::build(geometry(), IntegrationSettings{});
  CpuIntegrator integrator(plan);
  std::vector<std::uint32_t> frame(kRows * (kCols + 1));
  BinSums sums;
  try {
    integrator.integrate(FrameView{frame.data(), DType::kUint32, kRows, kCols + 1}, sums);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInput);
    EXPECT_NE(std::string(e.what()).find("60 x 81"), std::string::npos) << e.what();
  }
}

TEST(BinSums, AddAccumulatesFrames) {
  BinSums a, b;
  a.reset(3);
  b.reset(3);
  b.signal = {1, 2, 3};
  b.count = {1, 1, 0};
  a.add(b);
  a.add(b);
  EXPECT_EQ(a.signal, (std::vector<double>{2, 4, 6}));
  EXPECT_EQ(a.count, (std::vector<double>{2, 2, 0}));
  BinSums c;
  c.reset(4);
  EXPECT_THROW(a.add(c), Error);
}

}  // namespace
}  // namespace azflow::integrate
