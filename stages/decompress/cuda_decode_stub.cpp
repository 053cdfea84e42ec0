// The CUDA decoder's stand-in for builds without a CUDA toolkit (AZFLOW_HAVE_CUDA off): it says
// the build has no CUDA, and its constructor throws, so callers need no #if.

#include "base/error.hpp"
#include "stages/decompress/cuda_decode.hpp"

namespace azflow::decompress {

struct CudaDecoder::Impl {};

std::string cuda_decoder_unavailable() noexcept { return "azflow was built without CUDA"; }

CudaDecoder::CudaDecoder(int device) {
  throw Error(ErrorCategory::kConfig, "CudaDecoder (cuda:" + std::to_string(device) +
                                          "): azflow was built without CUDA (AZFLOW_WITH_CUDA)");
}

CudaDecoder::~CudaDecoder() = default;

std::vector<gpu::DecodeResult> CudaDecoder::decode(std::span<const CudaDecodeItem>) {
  throw Error(ErrorCategory::kConfig, "CudaDecoder: azflow was built without CUDA");
}

double CudaDecoder::time_kernel(std::size_t, std::size_t*) {
  throw Error(ErrorCategory::kConfig, "CudaDecoder: azflow was built without CUDA");
}

DeviceBytes::DeviceBytes(int device, std::size_t bytes) : device_(device), bytes_(bytes) {
  throw Error(ErrorCategory::kConfig, "DeviceBytes: azflow was built without CUDA");
}
DeviceBytes::~DeviceBytes() = default;
void DeviceBytes::upload(std::span<const std::byte>, std::size_t) {}
void DeviceBytes::download(std::span<std::byte>, std::size_t) const {}
void DeviceBytes::fill(std::uint8_t) {}

}  // namespace azflow::decompress
