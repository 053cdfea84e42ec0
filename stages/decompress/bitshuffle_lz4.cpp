#include "stages/decompress/bitshuffle_lz4.hpp"

#include <lz4.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "stages/decompress/bytes.hpp"

namespace azflow::decompress {
namespace {

using detail::bytes_str;

[[noreturn]] void fail(const std::string& what) {
  throw Error(ErrorCategory::kInput, "bitshuffle-lz4 chunk: " + what);
}

// Per-thread scratch for one decoded (still bit-shuffled) block; grows, never shrinks.
std::span<std::byte> scratch(std::size_t bytes) {
  thread_local std::vector<std::byte> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return {buffer.data(), bytes};
}

// Reads the block at in[pos], decodes it into `tmp` (at least out.size() bytes, small enough to
// stay in L1) and un-shuffles it into `out`; returns the new position.
std::size_t decode_block(std::span<const std::byte> in, std::size_t pos, std::size_t index,
                         std::span<std::byte> out, std::span<std::byte> tmp,
                         const BlockUnshuffler& unshuffle) {
  const auto name = [index] { return "block " + std::to_string(index); };  // only on errors
  if (in.size() - pos < 4) {
    fail(name() + ": truncated before its size field (" + bytes_str(in.size() - pos) + " left)");
  }
  const std::uint64_t stored = detail::read_be<4>(in.data() + pos);
  pos += 4;
  if (stored > in.size() - pos) {
    fail(name() + ": compressed size " + bytes_str(stored) + " overruns the chunk (" +
         bytes_str(in.size() - pos) + " left)");
  }
  if (stored > INT_MAX || out.size() > INT_MAX) fail(name() + ": block too large for LZ4");
  const int got = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data() + pos),
                                      reinterpret_cast<char*>(tmp.data()), static_cast<int>(stored),
                                      static_cast<int>(out.size()));
  if (got < 0) fail(name() + ": LZ4 error (corrupt or truncated block data)");
  if (static_cast<std::size_t>(got) != out.size()) {
    fail(name() + ": decodes to " + bytes_str(static_cast<std::size_t>(got)) + ", expected " +
         bytes_str(out.size()));
  }
  unshuffle(tmp.first(out.size()), out);
  return pos + static_cast<std::size_t>(stored);
}

}  // namespace

std::size_t bitshuffle_lz4_decoded_size(std::span<const std::byte> in) {
  if (in.size() < kBitshuffleLz4HeaderBytes) {
    fail("truncated: " + bytes_str(in.size()) + ", shorter than the 12-byte header");
  }
  const std::uint64_t raw = detail::read_be<8>(in.data());
  if (raw > SIZE_MAX / 2) fail("declared size " + bytes_str(raw) + " is impossible");
  return static_cast<std::size_t>(raw);
}

void decode_bitshuffle_lz4(std::span<const std::byte> in, std::span<std::byte> out,
                           std::size_t elem_size, SimdLevel level) {
  if (elem_size == 0) fail("element size 0");
  const std::size_t raw = bitshuffle_lz4_decoded_size(in);
  if (raw != out.size()) {
    fail("header declares " + bytes_str(raw) + " decoded, the frame needs " +
         bytes_str(out.size()));
  }
  if (raw % elem_size != 0) {
    fail("decoded size " + bytes_str(raw) + " is not a whole number of " +
         std::to_string(elem_size) + "-byte elements");
  }
  const std::uint64_t block_field = detail::read_be<4>(in.data() + 8);
  const std::size_t block_elems = block_field == 0
                                      ? default_block_elements(elem_size)
                                      : static_cast<std::size_t>(block_field) / elem_size;
  if (block_field % elem_size != 0 || block_elems == 0 || block_elems % 8 != 0) {
    fail("block size " + bytes_str(block_field) + " is not a positive multiple of 8 elements of " +
         std::to_string(elem_size) + " bytes");
  }
  const std::size_t n = raw / elem_size;
  const std::size_t block_bytes = block_elems * elem_size;
  const std::span<std::byte> tmp = scratch(std::min(block_bytes, raw));
  const BlockUnshuffler unshuffle(elem_size, level, store_mode_for(raw));
  std::size_t pos = kBitshuffleLz4HeaderBytes;
  std::size_t done = 0;
  std::size_t index = 0;
  for (; index < n / block_elems; ++index, done += block_bytes) {
    pos = decode_block(in, pos, index, out.subspan(done, block_bytes), tmp, unshuffle);
  }
  const std::size_t last_bytes = (n % block_elems) / 8 * 8 * elem_size;
  if (last_bytes > 0) {
    pos = decode_block(in, pos, index, out.subspan(done, last_bytes), tmp, unshuffle);
    done += last_bytes;
  }
  const std::size_t tail = raw - done;  // fewer than 8 elements, stored raw
  if (in.size() - pos != tail) {
    fail("after the last block " + bytes_str(in.size() - pos) + " remain, expected " +
         bytes_str(tail) + " of raw trailing elements");
  }
  if (tail > 0) std::memcpy(out.data() + done, in.data() + pos, tail);
}

}  // namespace azflow::decompress
