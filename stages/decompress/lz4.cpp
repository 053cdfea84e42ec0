#include "stages/decompress/lz4.hpp"

#include <lz4.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>

#include "base/error.hpp"
#include "stages/decompress/bytes.hpp"

namespace azflow::decompress {
namespace {

using detail::bytes_str;

[[noreturn]] void fail(const std::string& what) {
  throw Error(ErrorCategory::kInput, "lz4 chunk: " + what);
}

// Decodes exactly out.size() bytes from one LZ4 block of `in`; returns false on any LZ4 error or
// short result.
bool lz4_exact(std::span<const std::byte> in, std::span<std::byte> out) {
  if (in.size() > INT_MAX || out.size() > INT_MAX) return false;
  const int got = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data()),
                                      reinterpret_cast<char*>(out.data()),
                                      static_cast<int>(in.size()), static_cast<int>(out.size()));
  return got >= 0 && static_cast<std::size_t>(got) == out.size();
}

}  // namespace

std::size_t lz4_h5_decoded_size(std::span<const std::byte> in) {
  if (in.size() < kLz4HeaderBytes) {
    fail("truncated: " + bytes_str(in.size()) + ", shorter than the 12-byte header");
  }
  const std::uint64_t raw = detail::read_be<8>(in.data());
  if (raw > SIZE_MAX / 2) fail("declared size " + bytes_str(raw) + " is impossible");
  return static_cast<std::size_t>(raw);
}

void decode_lz4_h5(std::span<const std::byte> in, std::span<std::byte> out) {
  const std::size_t raw = lz4_h5_decoded_size(in);
  if (raw != out.size()) {
    fail("header declares " + bytes_str(raw) + " decoded, the frame needs " +
         bytes_str(out.size()));
  }
  std::size_t block = static_cast<std::size_t>(detail::read_be<4>(in.data() + 8));
  if (block > raw) block = raw;  // as the encoder does
  if (block == 0 && raw > 0) fail("block size 0");
  std::size_t pos = kLz4HeaderBytes;
  std::size_t done = 0;
  for (std::size_t index = 0; done < raw; ++index) {
    const std::string name = "block " + std::to_string(index);
    const std::size_t this_block = std::min(block, raw - done);
    if (in.size() - pos < 4) {
      fail(name + ": truncated before its size field (" + bytes_str(in.size() - pos) + " left)");
    }
    const std::uint64_t stored = detail::read_be<4>(in.data() + pos);
    pos += 4;
    if (stored > in.size() - pos) {
      fail(name + ": stored size " + bytes_str(stored) + " overruns the chunk (" +
           bytes_str(in.size() - pos) + " left)");
    }
    const auto src = in.subspan(pos, static_cast<std::size_t>(stored));
    const auto dst = out.subspan(done, this_block);
    if (stored == this_block) {
      std::memcpy(dst.data(), src.data(), this_block);  // stored raw
    } else if (!lz4_exact(src, dst)) {
      fail(name + ": LZ4 error or wrong decoded size (expected " + bytes_str(this_block) + ")");
    }
    pos += static_cast<std::size_t>(stored);
    done += this_block;
  }
  if (pos != in.size()) fail(bytes_str(in.size() - pos) + " after the last block");
}

void decode_lz4_raw(std::span<const std::byte> in, std::span<std::byte> out) {
  if (!lz4_exact(in, out)) {
    throw Error(ErrorCategory::kInput,
                "lz4 stream frame: LZ4 error or decoded size other than " + bytes_str(out.size()));
  }
}

}  // namespace azflow::decompress
