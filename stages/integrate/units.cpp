#include "stages/integrate/units.hpp"

#include <numbers>

namespace azflow::integrate {

std::string_view unit_name(RadialUnit unit) noexcept {
  switch (unit) {
    case RadialUnit::kQ_nm:
      return "q_nm^-1";
    case RadialUnit::kQ_A:
      return "q_A^-1";
    case RadialUnit::k2Th_deg:
      return "2th_deg";
    case RadialUnit::k2Th_rad:
      return "2th_rad";
    case RadialUnit::kR_mm:
      return "r_mm";
  }
  return "unknown";
}

std::optional<RadialUnit> parse_radial_unit(std::string_view name) noexcept {
  for (RadialUnit u : {RadialUnit::kQ_nm, RadialUnit::kQ_A, RadialUnit::k2Th_deg,
                       RadialUnit::k2Th_rad, RadialUnit::kR_mm}) {
    if (unit_name(u) == name) return u;
  }
  if (name == "q") return RadialUnit::kQ_nm;
  if (name == "2th") return RadialUnit::k2Th_deg;
  if (name == "r") return RadialUnit::kR_mm;
  return std::nullopt;
}

double unit_scale(RadialUnit unit) noexcept {
  switch (unit) {
    case RadialUnit::kQ_nm:
      return 1.0;
    case RadialUnit::kQ_A:
      return 0.1;
    case RadialUnit::k2Th_deg:
      return 180.0 / std::numbers::pi;
    case RadialUnit::k2Th_rad:
      return 1.0;
    case RadialUnit::kR_mm:
      return 1000.0;
  }
  return 1.0;
}

std::string_view unit_symbol(RadialUnit unit) noexcept {
  switch (unit) {
    case RadialUnit::kQ_nm:
      return "nm^-1";
    case RadialUnit::kQ_A:
      return "A^-1";
    case RadialUnit::k2Th_deg:
      return "deg";
    case RadialUnit::k2Th_rad:
      return "rad";
    case RadialUnit::kR_mm:
      return "mm";
  }
  return "";
}

bool unit_needs_wavelength(RadialUnit unit) noexcept {
  return unit == RadialUnit::kQ_nm || unit == RadialUnit::kQ_A;
}

}  // namespace azflow::integrate
