#pragma once
// Loading of 2D correction images (mask, dark, flat) from the file formats pyFAI users have:
// HDF5, NumPy .npy and ESRF EDF.
//
// Formats:
//  - HDF5: "FILE::/path/to/dataset", or "FILE" alone for the first 2D dataset found in a
//    depth-first walk of the file in name order. Any numeric type (HDF5 converts).
//  - NumPy .npy, versions 1-3
//  (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
//    magic "\x93NUMPY", version, header length (uint16 v1, uint32 v2/v3), a Python dict literal
//    with 'descr', 'fortran_order' and 'shape'. C order and little-endian only; types b1, i1, u1,
//    i2, u2, i4, u4, i8, u8, f4, f8.
//  - EDF (ESRF data format, as fabio writes it): an ASCII header "{ Key = value ; ... }" padded
//    to a multiple of 512 bytes, then the raw data of the first image. Keys used: Dim_1 (columns,
//    fast), Dim_2 (rows, slow), DataType (UnsignedByte, SignedByte, UnsignedShort, SignedShort,
//    UnsignedInteger, SignedInteger, UnsignedLong, SignedLong, Unsigned64, Signed64, FloatValue,
//    Float, DoubleValue, Double), ByteOrder (LowByteFirst, HighByteFirst), optional Size and
//    Compression (only none).
// The format is chosen by the file's first bytes, not its name.
// Leading axes of length 1 are dropped (a (1, rows, cols) array is an image).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "stages/integrate/plan.hpp"

namespace azflow::reduce {

/// A 2D image, row-major, converted to float64.
struct Image {
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::vector<double> values;  ///< rows * cols
  std::string source;          ///< the spec it was read from, for messages
};

/// Reads an image from `spec` (a path, or "path::/dataset" for HDF5). Throws azflow::Error: kIo
/// if the file cannot be opened or read, kInput naming the file for a malformed or unsupported
/// header or type, a missing HDF5 dataset, a non-2D shape or truncated data.
Image read_image(const std::string& spec);

/// As read_image, and checks the shape: throws azflow::Error (kInput) naming `what` (e.g.
/// "mask"), the file and both shapes if it is not rows x cols.
Image read_image(const std::string& spec, std::size_t rows, std::size_t cols,
                 std::string_view what);

/// Correction image files of an integration; empty = none.
struct CorrectionFiles {
  std::string mask, dark, flat;  ///< read_image specs ("path" or "path::/dataset")
};

/// Per-pixel corrections for rows x cols frames: mask = (detector_mask != 0, when given) OR
/// (mask image != 0); dark and flat as float32. `detector_mask` (rows * cols, e.g. an Eiger
/// pixel_mask) may be null. Throws azflow::Error as read_image, naming the image and both shapes.
integrate::Corrections load_corrections(std::size_t rows, std::size_t cols,
                                        const std::vector<std::uint32_t>* detector_mask,
                                        const CorrectionFiles& files);

}  // namespace azflow::reduce
