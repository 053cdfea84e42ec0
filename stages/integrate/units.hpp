#pragma once
// Radial units of integration, as pyFAI names and defines them (pyFAI/units.py).

#include <optional>
#include <string_view>

namespace azflow::integrate {

/// Radial unit. Internally positions are kept in pyFAI's "unscaled" units: q in nm^-1, 2theta in
/// radians, r in metres; `unit_scale` converts them to the unit's own (e.g. 2th_deg = rad *
/// 180/pi).
enum class RadialUnit { kQ_nm, kQ_A, k2Th_deg, k2Th_rad, kR_mm };

/// "q_nm^-1", "q_A^-1", "2th_deg", "2th_rad", "r_mm".
std::string_view unit_name(RadialUnit unit) noexcept;
/// Parses a unit name (also pyFAI's aliases "q", "2th", "r" for the first of each family).
std::optional<RadialUnit> parse_radial_unit(std::string_view name) noexcept;
/// Factor from the internal unit to the user unit: 1, 0.1, 180/pi, 1, 1000.
double unit_scale(RadialUnit unit) noexcept;
/// Short unit string for NeXus `@units`: "nm^-1", "A^-1", "deg", "rad", "mm".
std::string_view unit_symbol(RadialUnit unit) noexcept;
/// Whether positions in this unit need the wavelength (q units).
bool unit_needs_wavelength(RadialUnit unit) noexcept;

}  // namespace azflow::integrate
