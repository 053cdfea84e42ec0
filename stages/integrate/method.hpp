#pragma once
// pyFAI integration method names (AzimuthalIntegrator.integrate1d / integrate2d `method=`) and
// the pixel splitting azflow computes for each.

#include <string>
#include <string_view>

#include "stages/integrate/plan.hpp"

namespace azflow::integrate {

/// What a pyFAI method name resolves to, as pyFAI 0.21.3's method_registry does for
/// ai.integrate1d(method=...) (IntegrationMethod.select_one_available): the pixel splitting, and
/// pyFAI's algorithm and implementation ("*" where pyFAI picks). azflow computes every method with
/// its CSR engine (pyFAI's "csr", "cython" results); histogram, LUT and the python / OpenCL
/// implementations are taken as that, since pyFAI's engines give the same sums.
struct MethodChoice {
  PixelSplit split = PixelSplit::kNo;
  std::string algo = "*", impl = "*";
};

/// Parses a method as pyFAI 0.21 names it:
/// - a triple "split,algo,impl", also written ("full", "csr", "cython") or [..] (quotes, brackets
///   and spaces ignored; "*" or "any" for pyFAI's choice); split no | bbox | full, or "*" (no,
///   the first in pyFAI's registry), algo histogram | csr | lut, impl python | cython | opencl;
/// - a name of pyFAI's registry: numpy, cython (no splitting), bbox, splitbbox, csr, lut,
///   bbox_csr, bbox_lut, csr_ocl, lut_ocl (bbox), nosplit_csr, nosplit_lut, no, nosplit (no),
///   splitpixel, full, full_csr, full_lut, splitpixelfull (full), case-insensitive.
/// Throws azflow::Error (kConfig) naming `field` (unless empty) and listing what azflow supports
/// for anything else, pseudo splitting included.
MethodChoice parse_method(std::string_view text, std::string_view field);

}  // namespace azflow::integrate
