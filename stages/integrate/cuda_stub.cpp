// The CUDA backend's stand-in for builds without a CUDA toolkit (AZFLOW_HAVE_CUDA off): the probe
// reports that the build has no CUDA, and every constructor throws, so callers need no #if.

#include "stages/integrate/cuda_integrator.hpp"

namespace azflow::integrate {

namespace {

[[noreturn]] void no_cuda(const char* what) {
  throw Error(ErrorCategory::kConfig,
              std::string(what) + ": azflow was built without CUDA (AZFLOW_WITH_CUDA)");
}

}  // namespace

struct CudaIntegrator::Impl {
  CudaOptions options;
};

CudaProbe probe_cuda_devices() noexcept {
  CudaProbe probe;
  probe.reason = "azflow was built without CUDA";
  return probe;
}

CudaIntegrator::CudaIntegrator(std::shared_ptr<const Plan> plan, CudaOptions options)
    : plan_(std::move(plan)) {
  (void)options;
  no_cuda("CudaIntegrator");
}

CudaIntegrator::~CudaIntegrator() = default;

const CudaOptions& CudaIntegrator::options() const noexcept { return impl_->options; }
const void* CudaIntegrator::device_plan_id() const noexcept { return nullptr; }
void CudaIntegrator::integrate(const FrameView&, BinSums&) { no_cuda("CudaIntegrator"); }
void CudaIntegrator::integrate_batch(std::span<const FrameView>, std::span<BinSums>) {
  no_cuda("CudaIntegrator");
}
std::size_t CudaIntegrator::max_frames(DType) const noexcept { return 0; }
bool CudaIntegrator::can_submit() const noexcept { return false; }
std::size_t CudaIntegrator::in_flight() const noexcept { return 0; }
std::uint64_t CudaIntegrator::submit(std::span<const FrameView>, std::span<const std::uint64_t>) {
  no_cuda("CudaIntegrator");
}
CudaIntegrator::Batch CudaIntegrator::collect() { no_cuda("CudaIntegrator"); }
double CudaIntegrator::time_kernel(std::size_t, DType, std::size_t) { no_cuda("CudaIntegrator"); }

PinnedHostRegion::PinnedHostRegion(int device, void* data, std::size_t bytes)
    : device_(device), data_(nullptr) {
  (void)data;
  (void)bytes;
  no_cuda("PinnedHostRegion");
}

PinnedHostRegion::~PinnedHostRegion() = default;

}  // namespace azflow::integrate
