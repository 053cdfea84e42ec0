#pragma once
// I as a function of chi over a radial range: pyFAI 0.21's AzimuthalIntegrator.integrate_radial.
//
// pyFAI does a 2D integration (integrate2d_ng: npt_rad radial x npt azimuthal bins over the
// radial range) and adds, for every azimuthal bin, the sums of its radial bins: signal,
// normalization, count (and variance); I = sum signal / sum normalization, sigma =
// sqrt(sum variance) / sum normalization, `empty` where the count is 0. azflow does the same on
// the BinSums of a 2D plan; the chi axis is the plan's azimuthal axis (chi_deg or chi_rad).

#include "stages/integrate/cpu_integrator.hpp"
#include "stages/integrate/plan.hpp"

namespace azflow::integrate {

/// The radial sums of a 2D result: `sums` has plan.bins() = npt_azim x npt_rad bins (bin = azim
/// x npt_rad + rad); `out` is reset to npt_azim bins, out[a] = sum over rad of sums[a][rad] for
/// each of signal, variance, normalization and count. Throws azflow::Error (kInternal) if the
/// plan is 1D or the sums do not have plan.bins() bins.
void sum_radial_bins(const Plan& plan, const BinSums& sums, BinSums& out);

}  // namespace azflow::integrate
