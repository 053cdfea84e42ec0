#pragma once
// Internal helpers of azflow::decompress: big-endian reads and size formatting.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace azflow::decompress::detail {

/// Big-endian unsigned integer of N bytes at `p` (caller checks the bounds).
template <std::size_t N>
[[nodiscard]] inline std::uint64_t read_be(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < N; ++i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
  return v;
}

/// "N bytes", for error messages.
[[nodiscard]] inline std::string bytes_str(std::uint64_t n) { return std::to_string(n) + " bytes"; }

}  // namespace azflow::decompress::detail
