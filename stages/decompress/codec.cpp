#include "stages/decompress/codec.hpp"

#include <cstring>
#include <string>

#include "base/error.hpp"
#include "stages/decompress/bitshuffle_lz4.hpp"
#include "stages/decompress/lz4.hpp"

namespace azflow::decompress {

std::string_view codec_name(Codec codec) noexcept {
  switch (codec) {
    case Codec::kNone:
      return "none";
    case Codec::kBitshuffleLz4:
      return "bitshuffle-lz4";
    case Codec::kLz4:
      return "lz4";
    case Codec::kLz4Raw:
      return "lz4-raw";
    case Codec::kBitshuffle:
      return "bitshuffle";
    case Codec::kOther:
      return "other";
  }
  return "unknown";
}

CodecParams stream_codec(std::string_view encoding) {
  if (encoding == "<") return {Codec::kNone, 1, 0};
  if (encoding == "lz4<") return {Codec::kLz4Raw, 1, 0};
  if (encoding == "bs32-lz4<") return {Codec::kBitshuffleLz4, 4, 0};
  if (encoding == "bs16-lz4<") return {Codec::kBitshuffleLz4, 2, 0};
  if (encoding == "bs8-lz4<") return {Codec::kBitshuffleLz4, 1, 0};
  throw Error(ErrorCategory::kInput, "unsupported stream encoding '" + std::string(encoding) + "'");
}

void decode(const CodecParams& params, std::span<const std::byte> in, std::span<std::byte> out,
            SimdLevel level) {
  switch (params.codec) {
    case Codec::kNone:
      if (in.size() != out.size()) {
        throw Error(ErrorCategory::kInput, "uncompressed chunk of " + std::to_string(in.size()) +
                                               " bytes, the frame needs " +
                                               std::to_string(out.size()));
      }
      std::memcpy(out.data(), in.data(), in.size());
      return;
    case Codec::kBitshuffleLz4:
      return decode_bitshuffle_lz4(in, out, params.elem_size, level);
    case Codec::kLz4:
      return decode_lz4_h5(in, out);
    case Codec::kLz4Raw:
      return decode_lz4_raw(in, out);
    case Codec::kBitshuffle:
      return bitunshuffle(in, out, params.elem_size, params.block_elements, level);
    case Codec::kOther:
      break;
  }
  throw Error(ErrorCategory::kInternal, "decode: codec '" + std::string(codec_name(params.codec)) +
                                            "' has no azflow decoder");
}

}  // namespace azflow::decompress
