#pragma once
// Radial and azimuthal units of integration, as pyFAI 0.21 names and defines them
// (pyFAI/units.py).

#include <optional>
#include <string_view>

namespace azflow::integrate {

/// Radial unit. Internally positions are kept in pyFAI's "unscaled" units: q in nm^-1, 2theta in
/// radians, r in metres, d*^2 in nm^-2, the log / arcsinh units as their own values; `unit_scale`
/// converts them to the unit's own (e.g. 2th_deg = rad * 180/pi, d*2_A^-2 = nm^-2 * 0.01).
/// Formulas (pyFAI units.py, q = 4 pi sin(2theta / 2) / lambda in nm^-1):
///   d*2 = (q / 2 pi)^2; log(q.nm) = ln q; log(1+q.nm) = ln(1 + q); log(1+q.A) = ln(1 + q / 10);
///   log10(q.m) = log10 q (what pyFAI 0.21.3's numexpr formula returns, q in nm^-1, although
///   the name says metres); arcsinh(q.nm) = asinh q; arcsinh(q.A) = asinh(q / 10).
enum class RadialUnit {
  kQ_nm,
  kQ_A,
  k2Th_deg,
  k2Th_rad,
  kR_mm,
  kR_m,
  kD2_A,
  kD2_nm,
  kLogQ_nm,
  kLog1pQ_nm,
  kLog1pQ_A,
  kLog10Q_m,
  kAsinhQ_nm,
  kAsinhQ_A,
};

/// pyFAI's names: "q_nm^-1", "q_A^-1", "2th_deg", "2th_rad", "r_mm", "r_m", "d*2_A^-2",
/// "d*2_nm^-2", "log(q.nm)_None", "log(1+q.nm)_None", "log(1+q.A)_None", "log10(q.m)_None",
/// "arcsinh(q.nm)_None", "arcsinh(q.A)_None".
std::string_view unit_name(RadialUnit unit) noexcept;
/// Parses a unit name (also pyFAI's aliases "q", "2th", "r" for the first of each family).
std::optional<RadialUnit> parse_radial_unit(std::string_view name) noexcept;
/// Factor from the internal unit to the user unit: 1, 0.1, 180/pi, 1, 1000, 1, 0.01, 1, ...
double unit_scale(RadialUnit unit) noexcept;
/// Short unit string for NeXus `@units`: "nm^-1", "A^-1", "deg", "rad", "mm", "m", "A^-2",
/// "nm^-2"; "" for the dimensionless log / arcsinh units.
std::string_view unit_symbol(RadialUnit unit) noexcept;
/// Whether positions in this unit need the wavelength (every unit but 2th and r).
bool unit_needs_wavelength(RadialUnit unit) noexcept;
/// Whether pyFAI 0.21 computes this unit from its generic equation on float64 pixel positions
/// (the log / arcsinh units, which have no dedicated array method) rather than from its q /
/// 2theta arrays, whose pixel centres are formed in float32.
bool unit_uses_equation(RadialUnit unit) noexcept;

/// Azimuthal unit of chi (pyFAI 0.21 units.AZIMUTHAL_UNITS): chi_deg (scale 180/pi) or chi_rad
/// (scale 1). It sets the unit of the 2D azimuthal axis and of the azimuthal range given by the
/// user; pyFAI 0.21's integrate2d always writes degrees, so chi_rad is the same integration with
/// the axis in radians (as pyFAI's integrate_radial writes it for unit chi_rad).
enum class AzimuthalUnit { kChiDeg, kChiRad };

/// "chi_deg" or "chi_rad".
std::string_view azimuthal_unit_name(AzimuthalUnit unit) noexcept;
/// Parses "chi_deg" / "chi_rad" (also "chi", pyFAI's short name for chi_deg); nullopt otherwise.
std::optional<AzimuthalUnit> parse_azimuthal_unit(std::string_view name) noexcept;
/// Factor from radians to the unit: 180/pi (chi_deg) or 1 (chi_rad).
double azimuthal_unit_scale(AzimuthalUnit unit) noexcept;
/// Symbol for @units attributes: "deg" or "rad".
std::string_view azimuthal_unit_symbol(AzimuthalUnit unit) noexcept;

}  // namespace azflow::integrate
