// libFuzzer target: decode_lz4_raw (Dectris "lz4<" stream frames) on arbitrary bytes.
// Bytes 0-1 (little-endian) give the expected decoded size; the rest is the LZ4 block.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/error.hpp"
#include "stages/decompress/lz4.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace azflow::decompress;
  if (size < 2) return 0;
  const std::size_t out_size = data[0] | (std::size_t{data[1]} << 8);
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 2), size - 2);
  std::vector<std::byte> out(out_size);
  try {
    decode_lz4_raw(in, out);
  } catch (const azflow::Error&) {
  }
  return 0;
}
