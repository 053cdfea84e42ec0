#pragma once
// The arithmetic of the GPU decoders for bitshuffle-LZ4 (HDF5 filter 32008) and LZ4 (HDF5 filter
// 32004, Dectris "lz4<"), written once for the device (nvcc) and the host (g++/clang), so that the
// CPU tests and the fuzzer run exactly the block-decoding and unshuffle code the CUDA kernels run
// (cuda_decode.cu), lane by lane. Internal header of the decompress library: no CUDA header, no
// exceptions, no STL containers; under nvcc the functions are __host__ __device__. Errors are
// DecodeStatus codes; gpu_decode.hpp maps them to the CPU decoders' messages on the host.
//
// Algorithm, one chunk:
//   (a) find_blocks() walks the chunk's framing (bitshuffle_lz4.hpp / lz4.hpp give the layouts)
//       with every size checked against what arrived, and lists one BlockRef per piece of work:
//       an LZ4 block to decode and bit-unshuffle, an LZ4 block to decode in place, or bytes to
//       copy raw (bitshuffle's trailing elements, LZ4 blocks the filter stored raw).
//   (b) One CUDA thread block (one warp, `lanes` threads) takes one BlockRef. Every lane parses
//       the LZ4 sequences itself (lz4_next_sequence: the same bytes, so the same result in every
//       lane), then the lanes copy the sequence's literals and its match with a lane stride.
//       A match of offset d is copied as out[op + i] = out[op - d + i % d], which reads only bytes
//       written before the sequence, so the lanes need no order among themselves (a barrier
//       between the literal and the match copy, and after the match). Offset 0 is a match of
//       zeros, as LZ4 1.9.4's decoder writes it.
//   (c) Bitshuffle blocks are decoded into a scratch buffer (shared memory on the device), then
//       un-transposed from there: lane m builds the 8 elements of column m (8 x elem_size
//       contiguous bytes, one 8x8 bit transpose per byte plane, Hacker's Delight 7-3) in 64-bit
//       words and
//   (d) stores them into the frame buffer: consecutive lanes write consecutive 8/16/32 bytes
//       (8-byte stores: the frame buffer must be 8-byte aligned on the device).
//
// Accept/reject: a block is accepted exactly when LZ4_decompress_safe of lz4 1.9.4 (Debian
// bookworm's liblz4, which the CPU decoder calls) with the block's decoded size as capacity returns
// that size. lz4_next_sequence therefore follows that decoder's three parsing paths (the fast loop
// while at least 64 output bytes remain, the two-stage shortcut, the general path) and their
// limits (12 bytes before the end of the output and 8 before the end of the input for a literal
// run that is not the last, 5 literal bytes after the last match, the length-byte read limits);
// unlike it, every read and write is also bounds-checked on its own, so nothing outside the input
// or the output is touched even where the checks above would not catch it. (The fast loop turns
// out to accept exactly what the general path with its shortcut accepts, since it runs only while
// 64 output bytes remain; its limits are kept to follow lz4's code, but only the shortcut's and
// the general path's limits change the verdict: tests/decompress/gpu_decode_test.cpp's hand-made
// streams fail when any of those is off by one.)

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define AZFLOW_DECODE_HD __host__ __device__ __forceinline__
#else
#define AZFLOW_DECODE_HD inline
#endif
#if defined(__CUDA_ARCH__)
#define AZFLOW_DECODE_UNROLL _Pragma("unroll")
#else
#define AZFLOW_DECODE_UNROLL
#endif

namespace azflow::decompress::gpu {

/// Why a chunk was rejected (0 = accepted). Each maps to one CPU decoder message (gpu_decode.hpp);
/// DecodeResult carries the block index and the two sizes the message names.
enum class DecodeStatus : std::uint32_t {
  kOk = 0,
  kElemSizeZero,         ///< bitshuffle element size 0
  kTruncatedHeader,      ///< chunk shorter than the 12-byte header (value = chunk size)
  kImpossibleSize,       ///< declared decoded size > SIZE_MAX / 2 (value = declared)
  kFrameSizeMismatch,    ///< header declares `value` bytes, the frame needs `limit`
  kNotWholeElements,     ///< decoded size `value` not a multiple of the element size `limit`
  kBadBlockSize,         ///< bitshuffle block size field `value` unusable
  kLz4BlockSizeZero,     ///< LZ4 filter block size 0 with a non-empty frame
  kTruncatedSizeField,   ///< block `block`: fewer than 4 bytes (`value`) left for its size
  kBlockOverruns,        ///< block `block`: stored size `value` > bytes left `limit`
  kBlockTooLarge,        ///< block `block`: over INT_MAX bytes (LZ4's limit)
  kLz4Corrupt,           ///< block `block`: LZ4 data corrupt or truncated
  kLz4WrongSize,         ///< block `block`: decodes to `value` bytes, expected `limit`
  kTrailingMismatch,     ///< bitshuffle: `value` bytes after the last block, expected `limit`
  kBytesAfterLastBlock,  ///< LZ4 filter: `value` bytes after the last block
  kTooManyBlocks,        ///< more blocks than the caller's BlockRef capacity (`limit`)
  kDeviceBlockTooLarge,  ///< device only: a bitshuffle block of `value` bytes > scratch `limit`
};

/// A decoding outcome: status, the block it concerns and up to two sizes for the message.
struct DecodeResult {
  DecodeStatus status;
  std::uint32_t block;
  std::uint64_t value;
  std::uint64_t limit;
};

/// What the GPU decoders decode (the subset of decompress::Codec they handle).
enum class GpuCodec : std::uint32_t {
  kBitshuffleLz4 = 0,  ///< HDF5 filter 32008 with LZ4, Dectris "bsNN-lz4<"
  kLz4H5 = 1,          ///< HDF5 filter 32004
  kLz4Raw = 2,         ///< one raw LZ4 block holding the whole frame, Dectris "lz4<"
};

/// What one BlockRef asks for.
enum class BlockKind : std::uint32_t {
  kLz4Unshuffle = 0,  ///< LZ4-decode into scratch, then bit-unshuffle into the frame
  kLz4 = 1,           ///< LZ4-decode straight into the frame
  kRaw = 2,           ///< copy src_bytes bytes into the frame
};

/// One piece of work: bytes [src, src + src_bytes) of the chunk become bytes
/// [dst, dst + dst_bytes) of the frame. Trivial (no initializers) so that arrays of it can be
/// copied to the device as they are.
struct BlockRef {
  std::uint64_t src;
  std::uint64_t dst;
  std::uint32_t src_bytes;
  std::uint32_t dst_bytes;
  BlockKind kind;
  std::uint32_t index;  ///< block number in the chunk (for messages)
};

inline constexpr std::uint64_t kHeaderBytes = 12;          ///< both filters' chunk header
inline constexpr std::uint64_t kDefaultBlockBytes = 8192;  ///< bitshuffle's default target
inline constexpr std::uint64_t kIntMax = 0x7fffffff;       ///< LZ4's size limit (INT_MAX)
inline constexpr std::uint64_t kMaxDeclared = ~std::uint64_t{0} / 2;  ///< SIZE_MAX / 2 (LP64)

/// BlockRef capacity enough for any chunk of `chunk_bytes` bytes: every block needs a 4-byte size
/// field, plus one entry for a raw tail.
AZFLOW_DECODE_HD std::uint64_t max_blocks(std::uint64_t chunk_bytes) { return chunk_bytes / 4 + 2; }

/// Big-endian unsigned integer of `n` bytes at `p` (caller checks the bounds).
AZFLOW_DECODE_HD std::uint64_t read_be(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

/// bitshuffle's default block in elements (bitunshuffle.hpp's default_block_elements).
AZFLOW_DECODE_HD std::uint64_t default_block_elems(std::uint64_t elem_size) {
  const std::uint64_t n = kDefaultBlockBytes / (elem_size == 0 ? 1 : elem_size) / 8 * 8;
  return n < 128 ? 128 : n;
}

AZFLOW_DECODE_HD DecodeResult ok_result() { return {DecodeStatus::kOk, 0, 0, 0}; }
AZFLOW_DECODE_HD DecodeResult fail(DecodeStatus s, std::uint32_t block = 0, std::uint64_t value = 0,
                                   std::uint64_t limit = 0) {
  return {s, block, value, limit};
}

/// The block list being built by find_blocks().
struct BlockList {
  BlockRef* refs;
  std::uint64_t capacity;
  std::uint64_t count;
};

AZFLOW_DECODE_HD bool push_block(BlockList& list, BlockRef ref) {
  if (list.count >= list.capacity) return false;
  list.refs[list.count++] = ref;
  return true;
}

/// Reads the size field of block `index` at `pos` and checks the stored bytes fit in the chunk;
/// on success `stored` is the stored size and `pos` points at the block's data.
AZFLOW_DECODE_HD DecodeResult read_block_size(const std::uint8_t* in, std::uint64_t in_size,
                                              std::uint64_t& pos, std::uint32_t index,
                                              std::uint64_t& stored) {
  if (in_size - pos < 4) return fail(DecodeStatus::kTruncatedSizeField, index, in_size - pos);
  stored = read_be(in + pos, 4);
  pos += 4;
  if (stored > in_size - pos) {
    return fail(DecodeStatus::kBlockOverruns, index, stored, in_size - pos);
  }
  return ok_result();
}

/// The header checks both filters share: size, declared size, frame size.
AZFLOW_DECODE_HD DecodeResult check_header(const std::uint8_t* in, std::uint64_t in_size,
                                           std::uint64_t frame_bytes) {
  if (in_size < kHeaderBytes) return fail(DecodeStatus::kTruncatedHeader, 0, in_size);
  const std::uint64_t raw = read_be(in, 8);
  if (raw > kMaxDeclared) return fail(DecodeStatus::kImpossibleSize, 0, raw);
  if (raw != frame_bytes) return fail(DecodeStatus::kFrameSizeMismatch, 0, raw, frame_bytes);
  return ok_result();
}

/// (a) Block list of a bitshuffle-LZ4 chunk (bitshuffle_lz4.hpp's layout and checks, in the CPU
/// decoder's order): LZ4+unshuffle blocks, then a raw tail of fewer than 8 elements if any.
AZFLOW_DECODE_HD DecodeResult find_bitshuffle_lz4_blocks(const std::uint8_t* in,
                                                         std::uint64_t in_size,
                                                         std::uint64_t frame_bytes,
                                                         std::uint64_t elem_size, BlockList& list) {
  if (elem_size == 0) return fail(DecodeStatus::kElemSizeZero);
  DecodeResult r = check_header(in, in_size, frame_bytes);
  if (r.status != DecodeStatus::kOk) return r;
  const std::uint64_t raw = frame_bytes;
  if (raw % elem_size != 0) return fail(DecodeStatus::kNotWholeElements, 0, raw, elem_size);
  const std::uint64_t field = read_be(in + 8, 4);
  const std::uint64_t block_elems = field == 0 ? default_block_elems(elem_size) : field / elem_size;
  if (field % elem_size != 0 || block_elems == 0 || block_elems % 8 != 0) {
    return fail(DecodeStatus::kBadBlockSize, 0, field, elem_size);
  }
  const std::uint64_t n = raw / elem_size, block_bytes = block_elems * elem_size;
  const std::uint64_t full = n / block_elems;
  const std::uint64_t last_bytes = (n % block_elems) / 8 * 8 * elem_size;
  std::uint64_t pos = kHeaderBytes, done = 0;
  const std::uint64_t blocks = full + (last_bytes > 0 ? 1 : 0);
  for (std::uint64_t i = 0; i < blocks; ++i) {
    const auto index = static_cast<std::uint32_t>(i);
    const std::uint64_t bytes = i < full ? block_bytes : last_bytes;
    std::uint64_t stored = 0;
    r = read_block_size(in, in_size, pos, index, stored);
    if (r.status != DecodeStatus::kOk) return r;
    if (stored > kIntMax || bytes > kIntMax) return fail(DecodeStatus::kBlockTooLarge, index);
    if (!push_block(list, {pos, done, static_cast<std::uint32_t>(stored),
                           static_cast<std::uint32_t>(bytes), BlockKind::kLz4Unshuffle, index})) {
      return fail(DecodeStatus::kTooManyBlocks, index, 0, list.capacity);
    }
    pos += stored;
    done += bytes;
  }
  const std::uint64_t tail = raw - done;
  if (in_size - pos != tail) return fail(DecodeStatus::kTrailingMismatch, 0, in_size - pos, tail);
  if (tail > 0 && !push_block(list, {pos, done, static_cast<std::uint32_t>(tail),
                                     static_cast<std::uint32_t>(tail), BlockKind::kRaw,
                                     static_cast<std::uint32_t>(blocks)})) {
    return fail(DecodeStatus::kTooManyBlocks, static_cast<std::uint32_t>(blocks), 0, list.capacity);
  }
  return ok_result();
}

/// (a) Block list of an HDF5 LZ4 (32004) chunk (lz4.hpp's layout and checks): a block whose stored
/// size equals its decoded size is raw, any other is one LZ4 block.
AZFLOW_DECODE_HD DecodeResult find_lz4_h5_blocks(const std::uint8_t* in, std::uint64_t in_size,
                                                 std::uint64_t frame_bytes, BlockList& list) {
  DecodeResult r = check_header(in, in_size, frame_bytes);
  if (r.status != DecodeStatus::kOk) return r;
  const std::uint64_t raw = frame_bytes;
  std::uint64_t block = read_be(in + 8, 4);
  if (block > raw) block = raw;
  if (block == 0 && raw > 0) return fail(DecodeStatus::kLz4BlockSizeZero);
  std::uint64_t pos = kHeaderBytes, done = 0;
  for (std::uint32_t index = 0; done < raw; ++index) {
    const std::uint64_t bytes = raw - done < block ? raw - done : block;
    std::uint64_t stored = 0;
    r = read_block_size(in, in_size, pos, index, stored);
    if (r.status != DecodeStatus::kOk) return r;
    const bool is_raw = stored == bytes;
    if (!is_raw && (stored > kIntMax || bytes > kIntMax)) {
      return fail(DecodeStatus::kLz4Corrupt, index, 0, bytes);  // lz4_exact's size limit
    }
    if (bytes > 0xffffffffu) return fail(DecodeStatus::kBlockTooLarge, index);
    if (!push_block(
            list, {pos, done, static_cast<std::uint32_t>(stored), static_cast<std::uint32_t>(bytes),
                   is_raw ? BlockKind::kRaw : BlockKind::kLz4, index})) {
      return fail(DecodeStatus::kTooManyBlocks, index, 0, list.capacity);
    }
    pos += stored;
    done += bytes;
  }
  if (pos != in_size) return fail(DecodeStatus::kBytesAfterLastBlock, 0, in_size - pos);
  return ok_result();
}

/// (a) Block list of a Dectris "lz4<" frame: one LZ4 block for the whole frame.
AZFLOW_DECODE_HD DecodeResult find_lz4_raw_blocks(std::uint64_t in_size, std::uint64_t frame_bytes,
                                                  BlockList& list) {
  if (in_size > kIntMax || frame_bytes > kIntMax) return fail(DecodeStatus::kLz4Corrupt);
  if (!push_block(list, {0, 0, static_cast<std::uint32_t>(in_size),
                         static_cast<std::uint32_t>(frame_bytes), BlockKind::kLz4, 0})) {
    return fail(DecodeStatus::kTooManyBlocks, 0, 0, list.capacity);
  }
  return ok_result();
}

/// A BlockRef capacity enough for this chunk: the blocks its header implies plus a raw tail,
/// never more than max_blocks(in_size); 2 when the header is unusable (find_blocks then fails
/// on it before listing any block).
AZFLOW_DECODE_HD std::uint64_t block_capacity(GpuCodec codec, const std::uint8_t* in,
                                              std::uint64_t in_size, std::uint64_t frame_bytes,
                                              std::uint64_t elem_size) {
  const std::uint64_t most = max_blocks(in_size);
  if (codec == GpuCodec::kLz4Raw) return 1;
  if (in_size < kHeaderBytes || elem_size == 0) return 2;
  const std::uint64_t field = read_be(in + 8, 4);
  std::uint64_t blocks = 0;
  if (codec == GpuCodec::kBitshuffleLz4) {
    const std::uint64_t elems = field == 0 ? default_block_elems(elem_size) : field / elem_size;
    if (elems == 0) return 2;
    blocks = frame_bytes / elem_size / elems + 2;
  } else {
    const std::uint64_t block = field == 0 || field > frame_bytes ? frame_bytes : field;
    blocks = block == 0 ? 2 : frame_bytes / block + 2;
  }
  return blocks < most ? blocks : most;
}

/// (a) The block list of any GPU codec.
AZFLOW_DECODE_HD DecodeResult find_blocks(GpuCodec codec, const std::uint8_t* in,
                                          std::uint64_t in_size, std::uint64_t frame_bytes,
                                          std::uint64_t elem_size, BlockList& list) {
  switch (codec) {
    case GpuCodec::kBitshuffleLz4:
      return find_bitshuffle_lz4_blocks(in, in_size, frame_bytes, elem_size, list);
    case GpuCodec::kLz4H5:
      return find_lz4_h5_blocks(in, in_size, frame_bytes, list);
    case GpuCodec::kLz4Raw:
      return find_lz4_raw_blocks(in_size, frame_bytes, list);
  }
  return fail(DecodeStatus::kLz4Corrupt);
}

// ------------------------------------------------------------------------------ (b) LZ4

/// Where one LZ4 block's decoding stands. Positions are signed so that LZ4's limits near the
/// ends (iend - 15, oend - 64, ...) compare as the C decoder's pointers do.
struct Lz4Cursor {
  std::int64_t ip;    ///< next input byte
  std::int64_t op;    ///< next output byte
  std::int64_t iend;  ///< input size
  std::int64_t oend;  ///< output size (the block's decoded size)
  bool fast;          ///< still in lz4's fast loop
  bool done;          ///< the last sequence was parsed
};

/// One parsed sequence: literals src[lit_src, +lit_len) to out[lit_dst, ...), then a match of
/// match_len bytes at offset `offset` (0 bytes for the last sequence).
struct Lz4Sequence {
  std::int64_t lit_src, lit_len, lit_dst;
  std::int64_t match_dst, match_len, offset;
};

inline constexpr std::int64_t kLz4FastLoopDistance = 64;  ///< lz4.c FASTLOOP_SAFE_DISTANCE
inline constexpr std::int64_t kLz4MfLimit = 12;           ///< lz4.c MFLIMIT
inline constexpr std::int64_t kLz4LastLiterals = 5;       ///< lz4.c LASTLITERALS

/// Starts decoding a block of `src_bytes` into `dst_bytes`.
AZFLOW_DECODE_HD Lz4Cursor lz4_start(std::uint32_t src_bytes, std::uint32_t dst_bytes) {
  return {0,
          0,
          static_cast<std::int64_t>(src_bytes),
          static_cast<std::int64_t>(dst_bytes),
          dst_bytes >= kLz4FastLoopDistance,
          false};
}

/// lz4.c read_variable_length: adds bytes while they are 255; fails when the input position
/// passes `limit` (or, with `initial`, starts at or past it).
AZFLOW_DECODE_HD bool lz4_read_length(const std::uint8_t* src, Lz4Cursor& c, std::int64_t limit,
                                      bool initial, std::int64_t& length) {
  if (initial && c.ip >= limit) return false;
  std::uint32_t s = 0;
  do {
    if (c.ip >= c.iend) return false;  // own bound check
    s = src[c.ip++];
    length += s;
    if (c.ip > limit) return false;
  } while (s == 255);
  return true;
}

/// Reads the 2-byte little-endian match offset.
AZFLOW_DECODE_HD bool lz4_read_offset(const std::uint8_t* src, Lz4Cursor& c, std::int64_t& offset) {
  if (c.iend - c.ip < 2) return false;  // own bound check
  offset = src[c.ip] | (std::int64_t{src[c.ip + 1]} << 8);
  c.ip += 2;
  return true;
}

/// Accepts a literal run of `len` bytes at the cursor.
AZFLOW_DECODE_HD bool lz4_take_literals(Lz4Cursor& c, std::int64_t len, Lz4Sequence& seq) {
  if (len > c.iend - c.ip || len > c.oend - c.op) return false;  // own bound check
  seq.lit_src = c.ip;
  seq.lit_len = len;
  seq.lit_dst = c.op;
  c.ip += len;
  c.op += len;
  return true;
}

/// Accepts a match of `len` bytes at `offset`; lz4's general-path checks when `safe`.
AZFLOW_DECODE_HD bool lz4_take_match(Lz4Cursor& c, std::int64_t offset, std::int64_t len, bool safe,
                                     Lz4Sequence& seq) {
  if (offset > c.op) return false;  // before the start of the output
  if (safe && c.op + len > c.oend - kLz4LastLiterals) return false;
  if (len > c.oend - c.op) return false;  // own bound check
  seq.match_dst = c.op;
  seq.match_len = len;
  seq.offset = offset;
  c.op += len;
  return true;
}

/// lz4's general path from the literal copy on: a literal run that ends too near either end must
/// be the last one and end both exactly; otherwise an offset and match follow.
AZFLOW_DECODE_HD bool lz4_safe_literals(const std::uint8_t* src, Lz4Cursor& c, std::uint32_t token,
                                        std::int64_t len, Lz4Sequence& seq) {
  const std::int64_t cpy = c.op + len;
  if (cpy > c.oend - kLz4MfLimit || c.ip + len > c.iend - (2 + 1 + kLz4LastLiterals)) {
    if (c.ip + len != c.iend || cpy > c.oend) return false;
    c.done = true;
    return lz4_take_literals(c, len, seq);
  }
  if (!lz4_take_literals(c, len, seq)) return false;
  std::int64_t offset = 0, mlen = token & 15;
  if (!lz4_read_offset(src, c, offset)) return false;
  if (mlen == 15 && !lz4_read_length(src, c, c.iend - kLz4LastLiterals + 1, false, mlen)) {
    return false;
  }
  return lz4_take_match(c, offset, mlen + 4, true, seq);
}

/// One sequence of lz4's fast loop (taken while 64 or more output bytes remain); falls into the
/// general path where lz4's does, which it then never leaves.
AZFLOW_DECODE_HD bool lz4_fast_sequence(const std::uint8_t* src, Lz4Cursor& c, std::uint32_t token,
                                        Lz4Sequence& seq) {
  std::int64_t len = token >> 4;
  if (len == 15) {
    if (!lz4_read_length(src, c, c.iend - 15, true, len)) return false;
    if (c.op + len > c.oend - 32 || c.ip + len > c.iend - 32) {
      c.fast = false;
      return lz4_safe_literals(src, c, token, len, seq);
    }
  } else if (c.ip > c.iend - 17) {
    c.fast = false;
    return lz4_safe_literals(src, c, token, len, seq);
  }
  if (!lz4_take_literals(c, len, seq)) return false;
  std::int64_t offset = 0, mlen = token & 15;
  if (!lz4_read_offset(src, c, offset)) return false;
  if (mlen == 15) {
    if (!lz4_read_length(src, c, c.iend - kLz4LastLiterals + 1, false, mlen)) return false;
    if (offset > c.op) return false;
  }
  mlen += 4;
  if (c.op + mlen >= c.oend - kLz4FastLoopDistance) {
    c.fast = false;
    return lz4_take_match(c, offset, mlen, true, seq);
  }
  return lz4_take_match(c, offset, mlen, false, seq);
}

/// One sequence of lz4's general loop, with its two-stage shortcut for short literal runs.
AZFLOW_DECODE_HD bool lz4_safe_sequence(const std::uint8_t* src, Lz4Cursor& c, std::uint32_t token,
                                        Lz4Sequence& seq) {
  std::int64_t len = token >> 4;
  if (len != 15 && c.ip < c.iend - 16 && c.op <= c.oend - 32) {
    if (!lz4_take_literals(c, len, seq)) return false;
    std::int64_t offset = 0, mlen = token & 15;
    if (!lz4_read_offset(src, c, offset)) return false;
    if (mlen != 15 && offset >= 8 && offset <= c.op) {
      return lz4_take_match(c, offset, mlen + 4, false, seq);
    }
    if (mlen == 15 && !lz4_read_length(src, c, c.iend - kLz4LastLiterals + 1, false, mlen)) {
      return false;
    }
    return lz4_take_match(c, offset, mlen + 4, true, seq);
  }
  if (len == 15 && !lz4_read_length(src, c, c.iend - 15, true, len)) return false;
  return lz4_safe_literals(src, c, token, len, seq);
}

/// (b) Parses the next sequence of an LZ4 block (every lane calls it with the same cursor and gets
/// the same answer). False: the block is corrupt (LZ4_decompress_safe would fail).
AZFLOW_DECODE_HD bool lz4_next_sequence(const std::uint8_t* src, Lz4Cursor& c, Lz4Sequence& seq) {
  seq = {0, 0, c.op, c.op, 0, 0};
  if (c.ip >= c.iend) return false;
  const std::uint32_t token = src[c.ip++];
  return c.fast ? lz4_fast_sequence(src, c, token, seq) : lz4_safe_sequence(src, c, token, seq);
}

/// (b) Lane `lane` of `lanes` copies its share of the sequence's literals. 32-bit indices: a block
/// is at most INT_MAX bytes (and 32-bit arithmetic is what a GPU does fast).
AZFLOW_DECODE_HD void lz4_copy_literals(const Lz4Sequence& seq, const std::uint8_t* src,
                                        std::uint8_t* out, unsigned lane, unsigned lanes) {
  const std::uint8_t* from = src + seq.lit_src;
  std::uint8_t* to = out + seq.lit_dst;
  const auto n = static_cast<std::uint32_t>(seq.lit_len);
  for (std::uint32_t i = lane; i < n; i += lanes) to[i] = from[i];
}

/// (b) Lane `lane` of `lanes` copies its share of the sequence's match: byte i is
/// out[op - offset + i % offset], written before the sequence began (zero for offset 0).
AZFLOW_DECODE_HD void lz4_copy_match(const Lz4Sequence& seq, std::uint8_t* out, unsigned lane,
                                     unsigned lanes) {
  std::uint8_t* to = out + seq.match_dst;
  const auto d = static_cast<std::uint32_t>(seq.offset);
  const auto n = static_cast<std::uint32_t>(seq.match_len);
  if (d == 0) {
    for (std::uint32_t i = lane; i < n; i += lanes) to[i] = 0;
    return;
  }
  const std::uint8_t* from = to - d;
  for (std::uint32_t i = lane; i < n; i += lanes) to[i] = from[i < d ? i : i % d];
}

/// (b) The outcome once lz4_next_sequence reported the last sequence or failed.
AZFLOW_DECODE_HD DecodeResult lz4_finish(const Lz4Cursor& c, bool parsed, std::uint32_t index) {
  if (!parsed) return fail(DecodeStatus::kLz4Corrupt, index, 0, static_cast<std::uint64_t>(c.oend));
  if (c.op != c.oend) {
    return fail(DecodeStatus::kLz4WrongSize, index, static_cast<std::uint64_t>(c.op),
                static_cast<std::uint64_t>(c.oend));
  }
  return ok_result();
}

/// LZ4_decompress_safe's special cases before any sequence: an empty output needs the one-byte
/// input 0x00, an empty input fails. Returns true if the block is settled, with `r` its outcome.
AZFLOW_DECODE_HD bool lz4_special_case(std::uint32_t src_bytes, std::uint32_t dst_bytes,
                                       const std::uint8_t* src, std::uint32_t index,
                                       DecodeResult& r) {
  if (dst_bytes == 0) {
    r = src_bytes == 1 && src[0] == 0 ? ok_result()
                                      : fail(DecodeStatus::kLz4Corrupt, index, 0, dst_bytes);
    return true;
  }
  if (src_bytes == 0) {
    r = fail(DecodeStatus::kLz4Corrupt, index, 0, dst_bytes);
    return true;
  }
  return false;
}

// ------------------------------------------------------------------------------ (c) unshuffle

/// 8x8 bit transpose of a 64-bit word (byte k = row k) (Hacker's Delight 7-3, three delta
/// swaps; bitunshuffle.cpp's transpose8x8).
AZFLOW_DECODE_HD std::uint64_t transpose8x8(std::uint64_t x) {
  std::uint64_t t = (x ^ (x >> 7)) & 0x00AA00AA00AA00AAULL;
  x = x ^ t ^ (t << 7);
  t = (x ^ (x >> 14)) & 0x0000CCCC0000CCCCULL;
  x = x ^ t ^ (t << 14);
  t = (x ^ (x >> 28)) & 0x00000000F0F0F0F0ULL;
  return x ^ t ^ (t << 28);
}

/// (c)+(d) Column m of a bit-shuffled block (`in`: 8 x es rows of `row` bytes) un-transposed: the
/// 8 elements 8m .. 8m+7, 8 x es contiguous bytes, stored at out + 8 * m * es. `es` is 1, 2 or 4
/// (any other size works too, one byte at a time).
AZFLOW_DECODE_HD void unshuffle_column(const std::uint8_t* in, std::uint8_t* out, std::uint64_t row,
                                       std::uint32_t es, std::uint64_t m) {
  std::uint8_t* dst = out + 8 * m * es;
  for (std::uint32_t b = 0; b < es; ++b) {
    const std::uint8_t* src = in + 8 * b * row + m;
    std::uint64_t x = 0;
    for (unsigned k = 0; k < 8; ++k) x |= std::uint64_t{src[k * row]} << (8 * k);
    x = transpose8x8(x);
    for (unsigned j = 0; j < 8; ++j) dst[j * es + b] = static_cast<std::uint8_t>(x >> (8 * j));
  }
}

/// Stores `v` little-endian at `p`: one 8-byte store on the device (`p` must be 8-byte aligned
/// there), bytes on the host (which compilers merge into one store).
AZFLOW_DECODE_HD void store_le64(std::uint8_t* p, std::uint64_t v) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<std::uint64_t*>(p) = v;
#else
  for (unsigned i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
#endif
}

/// (c)+(d) unshuffle_column for kEs-byte elements, the 8 x kEs output bytes assembled in kEs
/// 64-bit words and stored as such (consecutive lanes, consecutive words: coalesced stores).
/// out + 8 * m * kEs must be 8-byte aligned on the device.
template <unsigned kEs>
AZFLOW_DECODE_HD void unshuffle_column_words(const std::uint8_t* in, std::uint8_t* out,
                                             std::uint64_t row, std::uint64_t m) {
  std::uint64_t words[kEs] = {};
  AZFLOW_DECODE_UNROLL
  for (unsigned b = 0; b < kEs; ++b) {
    const std::uint8_t* src = in + 8 * b * row + m;
    std::uint64_t x = 0;
    AZFLOW_DECODE_UNROLL
    for (unsigned k = 0; k < 8; ++k) x |= std::uint64_t{src[k * row]} << (8 * k);
    x = transpose8x8(x);
    AZFLOW_DECODE_UNROLL
    for (unsigned j = 0; j < 8; ++j) {
      const unsigned t = j * kEs + b;  // output byte of element 8m + j, byte b
      words[t / 8] |= ((x >> (8 * j)) & 0xFF) << (8 * (t % 8));
    }
  }
  std::uint8_t* dst = out + 8 * m * kEs;
  AZFLOW_DECODE_UNROLL
  for (unsigned q = 0; q < kEs; ++q) store_le64(dst + 8 * q, words[q]);
}

/// (c)+(d) Lane `lane` of `lanes` un-transposes its columns of a block of `bytes` bytes (a
/// multiple of 8 * es) from `in` (scratch) into `out` (the block's place in the frame; 8-byte
/// aligned on the device for es 1, 2, 4).
AZFLOW_DECODE_HD void unshuffle_block_lanes(const std::uint8_t* in, std::uint8_t* out,
                                            std::uint64_t bytes, std::uint32_t es, unsigned lane,
                                            unsigned lanes) {
  const std::uint64_t row = bytes / (8 * static_cast<std::uint64_t>(es));
  switch (es) {
    case 1:
      for (std::uint64_t m = lane; m < row; m += lanes) unshuffle_column_words<1>(in, out, row, m);
      return;
    case 2:
      for (std::uint64_t m = lane; m < row; m += lanes) unshuffle_column_words<2>(in, out, row, m);
      return;
    case 4:
      for (std::uint64_t m = lane; m < row; m += lanes) unshuffle_column_words<4>(in, out, row, m);
      return;
    default:
      for (std::uint64_t m = lane; m < row; m += lanes) unshuffle_column(in, out, row, es, m);
  }
}

/// (d) Lane `lane` of `lanes` copies its share of a raw piece.
AZFLOW_DECODE_HD void copy_raw_lanes(const std::uint8_t* src, std::uint8_t* out,
                                     std::uint64_t bytes, unsigned lane, unsigned lanes) {
  for (std::uint64_t i = lane; i < bytes; i += lanes) out[i] = src[i];
}

}  // namespace azflow::decompress::gpu
