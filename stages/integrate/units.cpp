#include "stages/integrate/units.hpp"

#include <array>
#include <numbers>

namespace azflow::integrate {
namespace {

// One radial unit: pyFAI name, scale from the internal unit, NeXus symbol.
struct UnitInfo {
  RadialUnit unit;
  std::string_view name;
  double scale;
  std::string_view symbol;
};

constexpr std::array<UnitInfo, 14> kUnits = {{
    {RadialUnit::kQ_nm, "q_nm^-1", 1.0, "nm^-1"},
    {RadialUnit::kQ_A, "q_A^-1", 0.1, "A^-1"},
    {RadialUnit::k2Th_deg, "2th_deg", 180.0 / std::numbers::pi, "deg"},
    {RadialUnit::k2Th_rad, "2th_rad", 1.0, "rad"},
    {RadialUnit::kR_mm, "r_mm", 1000.0, "mm"},
    {RadialUnit::kR_m, "r_m", 1.0, "m"},
    {RadialUnit::kD2_A, "d*2_A^-2", 0.01, "A^-2"},
    {RadialUnit::kD2_nm, "d*2_nm^-2", 1.0, "nm^-2"},
    {RadialUnit::kLogQ_nm, "log(q.nm)_None", 1.0, ""},
    {RadialUnit::kLog1pQ_nm, "log(1+q.nm)_None", 1.0, ""},
    {RadialUnit::kLog1pQ_A, "log(1+q.A)_None", 1.0, ""},
    {RadialUnit::kLog10Q_m, "log10(q.m)_None", 1.0, ""},
    {RadialUnit::kAsinhQ_nm, "arcsinh(q.nm)_None", 1.0, ""},
    {RadialUnit::kAsinhQ_A, "arcsinh(q.A)_None", 1.0, ""},
}};

const UnitInfo& info(RadialUnit unit) noexcept {
  for (const UnitInfo& u : kUnits)
    if (u.unit == unit) return u;
  return kUnits[0];
}

}  // namespace

std::string_view unit_name(RadialUnit unit) noexcept { return info(unit).name; }

std::optional<RadialUnit> parse_radial_unit(std::string_view name) noexcept {
  for (const UnitInfo& u : kUnits)
    if (u.name == name) return u.unit;
  if (name == "q") return RadialUnit::kQ_nm;
  if (name == "2th") return RadialUnit::k2Th_deg;
  if (name == "r") return RadialUnit::kR_mm;
  return std::nullopt;
}

double unit_scale(RadialUnit unit) noexcept { return info(unit).scale; }

std::string_view unit_symbol(RadialUnit unit) noexcept { return info(unit).symbol; }

bool unit_needs_wavelength(RadialUnit unit) noexcept {
  return unit != RadialUnit::k2Th_deg && unit != RadialUnit::k2Th_rad &&
         unit != RadialUnit::kR_mm && unit != RadialUnit::kR_m;
}

bool unit_uses_equation(RadialUnit unit) noexcept {
  switch (unit) {
    case RadialUnit::kLogQ_nm:
    case RadialUnit::kLog1pQ_nm:
    case RadialUnit::kLog1pQ_A:
    case RadialUnit::kLog10Q_m:
    case RadialUnit::kAsinhQ_nm:
    case RadialUnit::kAsinhQ_A:
      return true;
    default:
      return false;
  }
}

std::string_view azimuthal_unit_name(AzimuthalUnit unit) noexcept {
  return unit == AzimuthalUnit::kChiRad ? "chi_rad" : "chi_deg";
}

std::optional<AzimuthalUnit> parse_azimuthal_unit(std::string_view name) noexcept {
  if (name == "chi_deg" || name == "chi") return AzimuthalUnit::kChiDeg;
  if (name == "chi_rad") return AzimuthalUnit::kChiRad;
  return std::nullopt;
}

double azimuthal_unit_scale(AzimuthalUnit unit) noexcept {
  return unit == AzimuthalUnit::kChiRad ? 1.0 : 180.0 / std::numbers::pi;
}

std::string_view azimuthal_unit_symbol(AzimuthalUnit unit) noexcept {
  return unit == AzimuthalUnit::kChiRad ? "rad" : "deg";
}

}  // namespace azflow::integrate
