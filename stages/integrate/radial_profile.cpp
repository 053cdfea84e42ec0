// Radial sums of a 2D result (pyFAI 0.21 integrate_radial); see radial_profile.hpp.

#include "stages/integrate/radial_profile.hpp"

#include <string>

#include "base/error.hpp"

namespace azflow::integrate {

void sum_radial_bins(const Plan& plan, const BinSums& sums, BinSums& out) {
  const IntegrationSettings& s = plan.settings();
  if (!s.is_2d() || sums.bins() != plan.bins()) {
    throw Error(ErrorCategory::kInternal,
                "sum_radial_bins: needs the sums of a 2D plan (" + std::to_string(sums.bins()) +
                    " bins given, plan has " + std::to_string(plan.bins()) + ")");
  }
  out.reset(s.npt_azim);
  for (std::size_t a = 0; a < s.npt_azim; ++a) {
    for (std::size_t r = 0; r < s.npt_rad; ++r) {
      const std::size_t b = a * s.npt_rad + r;
      out.signal[a] += sums.signal[b];
      out.variance[a] += sums.variance[b];
      out.normalization[a] += sums.normalization[b];
      out.count[a] += sums.count[b];
    }
  }
}

}  // namespace azflow::integrate
