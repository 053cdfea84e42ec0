// libFuzzer target: decode_lz4_h5 (HDF5 filter 32004 chunks) on arbitrary bytes. The output
// size is the header's declared size (capped at 1 MiB), +- 1 when byte 0 says so.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/error.hpp"
#include "stages/decompress/lz4.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace azflow::decompress;
  if (size < 1) return 0;
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  try {
    std::size_t out_size = lz4_h5_decoded_size(in);
    if (out_size > (1U << 20)) return 0;
    if ((data[0] & 1) != 0) out_size += 1;
    if ((data[0] & 2) != 0 && out_size > 0) out_size -= 1;
    std::vector<std::byte> out(out_size);
    decode_lz4_h5(in, out);
  } catch (const azflow::Error&) {
  }
  return 0;
}
