#pragma once
// Sigma clipping of one frame on the CSR matrix: pyFAI 0.21's AzimuthalIntegrator.sigma_clip_ng
// (1D, method ("no"|"bbox", "csr", "cython"), engine CsrIntegrator.sigma_clip in
// pyFAI/ext/CSR_common.pxi), the per-bin mean of the pixels left after iterative outlier
// rejection (the background under Bragg spots in serial crystallography).
//
// Algorithm, per radial bin (CSR row) in increasing bin order:
//   1. Preprocess every pixel as pyFAI's preproc does (float32): signal s = raw - dark, Poisson
//      variance v = max(raw, 1), normalization n from the plan; pixels masked, equal to the
//      dummy, NaN or invalidated by the dark/flat are left out.
//   2. Integrate the bin's kept pixels with weight w in float64: poisson: S = sum w s,
//      V = sum w^2 v, N = sum w n, C = sum w; azimuthal: S, N, C the same and V the weighted sum
//      of squared deviations of s/n (pyFAI's incremental form, Schubert & Gertz, SSDBM 2018).
//      mean = S / N, std = sqrt(V / N) (pyFAI 0.21's formula for both error models).
//   3. Up to max_iter times: if N = 0 or C = 0 stop; cutoff = max(thres, sqrt(2 ln(max(3, C) /
//      sqrt(2 pi)))) x std (Chauvenet's criterion as the lower bound of thres); drop each kept
//      pixel with |s/n - mean| > cutoff; if none was dropped stop; else integrate again (2.).
//   4. The bin's sums are those of the last integration: I = S / N, sigma = sqrt(V) / N.
// A dropped pixel stays dropped for the rest of the frame, so with pixel splitting a pixel
// clipped in one bin is also left out of the bins after it (pyFAI shares the flag the same way,
// with its bins processed in parallel; azflow processes them in order).
//
// Deliberate difference: pyFAI 0.21 reports count = max(3, C) for every bin whose clipping
// stopped early (its Chauvenet code overwrites C); azflow reports C itself. I, sigma and the
// clipping decisions are the same.

#include <cstdint>
#include <vector>

#include "base/dtype.hpp"
#include "stages/integrate/cpu_integrator.hpp"
#include "stages/integrate/plan.hpp"

namespace azflow::integrate {

/// Per-frame buffers of sigma_clip_frame, reused from frame to frame (one per thread):
/// per pixel the preprocessed signal, variance and normalization (float32) and whether it is
/// still kept (1) or invalid or clipped (0).
struct SigmaClipBuffers {
  std::vector<float> signal, variance, normalization;
  std::vector<std::uint8_t> keep;
};

/// Sigma-clips one frame with plan.settings().sigma_clip (which must be set; the error model
/// poisson or azimuthal) and writes each bin's sums after clipping into `out` (reset to
/// plan.bins()): signal, variance, normalization and count, as integrate() does for the same
/// pixels, so finalize() gives pyFAI's intensity and sigma. Throws azflow::Error (kInput) for a
/// frame of the wrong shape (check_frame), kInternal if the plan has no sigma_clip.
void sigma_clip_frame(const Plan& plan, const FrameView& frame, SigmaClipBuffers& buffers,
                      BinSums& out);

/// The per-bin standard deviation after clipping, sqrt(variance / normalization) (pyFAI 0.21's
/// std of sigma_clip_ng), `empty` in bins with count 0. `std_dev` has sums.bins() values.
void clipped_std(const BinSums& sums, std::vector<float>& std_dev, float empty);

}  // namespace azflow::integrate
