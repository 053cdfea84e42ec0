#pragma once
// Element types of detector frames, and a non-owning view of one frame.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace azflow {

/// Element type of a frame's pixels, as detectors and HDF5 files store them (little-endian).
/// The numeric values travel in ring slot headers and job messages: new types are appended.
enum class DType : std::uint8_t {
  kUint8,
  kUint16,
  kUint32,
  kInt32,
  kFloat32,
  kInt16,
  kInt64,
  kFloat64,
};

/// The last DType value (slot headers holding a larger number are refused).
inline constexpr DType kLastDType = DType::kFloat64;

/// Every DType, in the order of their values.
inline constexpr DType kAllDTypes[] = {DType::kUint8, DType::kUint16,  DType::kUint32,
                                       DType::kInt32, DType::kFloat32, DType::kInt16,
                                       DType::kInt64, DType::kFloat64};

/// Size of one element in bytes.
constexpr std::size_t dtype_size(DType t) noexcept {
  switch (t) {
    case DType::kUint8:
      return 1;
    case DType::kUint16:
    case DType::kInt16:
      return 2;
    case DType::kUint32:
    case DType::kInt32:
    case DType::kFloat32:
      return 4;
    case DType::kInt64:
    case DType::kFloat64:
      return 8;
  }
  return 0;
}

/// NumPy-style name: "uint8", "uint16", "uint32", "int32", "float32", "int16", "int64",
/// "float64".
constexpr std::string_view dtype_name(DType t) noexcept {
  switch (t) {
    case DType::kUint8:
      return "uint8";
    case DType::kUint16:
      return "uint16";
    case DType::kUint32:
      return "uint32";
    case DType::kInt32:
      return "int32";
    case DType::kFloat32:
      return "float32";
    case DType::kInt16:
      return "int16";
    case DType::kInt64:
      return "int64";
    case DType::kFloat64:
      return "float64";
  }
  return "unknown";
}

/// Parses a NumPy-style name; nullopt for anything else.
constexpr std::optional<DType> dtype_from_name(std::string_view name) noexcept {
  for (DType t : kAllDTypes) {
    if (dtype_name(t) == name) return t;
  }
  return std::nullopt;
}

/// The value detectors write into gap and dead pixels of unsigned integer frames — the type's
/// maximum (Dectris EIGER: 0xFFFFFFFF for uint32, 0xFFFF for uint16) — which is azflow's default
/// dummy, as pyFAI users set it. nullopt for signed and floating-point types.
constexpr std::optional<double> default_dummy(DType t) noexcept {
  switch (t) {
    case DType::kUint8:
      return 255.0;
    case DType::kUint16:
      return 65535.0;
    case DType::kUint32:
      return 4294967295.0;
    case DType::kInt16:
    case DType::kInt32:
    case DType::kInt64:
    case DType::kFloat32:
    case DType::kFloat64:
      return std::nullopt;
  }
  return std::nullopt;
}

/// A read-only view of one frame: `rows` x `cols` elements of `dtype`, row-major, contiguous
/// (rows = slow axis = pyFAI's dim1, cols = fast axis = dim2). Does not own `data`.
struct FrameView {
  const void* data = nullptr;
  DType dtype = DType::kUint32;
  std::size_t rows = 0;
  std::size_t cols = 0;

  [[nodiscard]] std::size_t pixels() const noexcept { return rows * cols; }
  [[nodiscard]] std::size_t bytes() const noexcept { return pixels() * dtype_size(dtype); }
};

}  // namespace azflow
