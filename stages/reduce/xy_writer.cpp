#include "stages/reduce/xy_writer.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <system_error>

#include <unistd.h>

#include "base/error.hpp"

namespace azflow::reduce {

namespace {

enum RowState : std::uint8_t { kPending = 0, kWritten = 1, kFailed = 2 };

/// printf into a std::string.
template <typename... Args>
std::string format(const char* fmt, Args... args) {
  std::array<char, 256> buf{};
  std::snprintf(buf.data(), buf.size(), fmt, args...);
  return buf.data();
}

/// One "%14.6e" field; NaN and infinities as Python writes them ("nan", "inf").
std::string number_field(double v) {
  if (std::isnan(v)) return format("%14s", "nan");
  if (std::isinf(v)) return format("%14s", v > 0 ? "inf" : "-inf");
  return format("%14.6e", v);
}

/// The Fit2D description of a PONI geometry: pyFAI 0.21 Geometry.getFit2D.
struct Fit2d {
  double direct_dist_mm, center_x_pix, center_y_pix, tilt_deg, tilt_plane_rotation_deg;
};

Fit2d to_fit2d(const integrate::Poni& p) {
  constexpr double kDeg = 180.0 / 3.14159265358979323846;
  double cos_tilt = std::cos(p.rot1_rad) * std::cos(p.rot2_rad);
  double sin_tilt = std::sqrt(1.0 - cos_tilt * cos_tilt);
  const double tan_tilt = sin_tilt / cos_tilt;
  double cos_tpr = 1.0, sin_tpr = 0.0;
  if (sin_tilt == 0) {
    cos_tilt = 1.0;
    sin_tilt = 0.0;
  } else {
    cos_tpr = std::clamp(-std::cos(p.rot2_rad) * std::sin(p.rot1_rad) / sin_tilt, -1.0, 1.0);
    sin_tpr = std::sin(p.rot2_rad) / sin_tilt;
  }
  Fit2d f{};
  f.direct_dist_mm = 1.0e3 * p.dist_m / cos_tilt;
  f.tilt_deg = std::acos(cos_tilt) * kDeg;
  f.tilt_plane_rotation_deg = (sin_tpr < 0 ? -1.0 : 1.0) * std::acos(cos_tpr) * kDeg;
  f.center_x_pix = (p.poni2_m + p.dist_m * tan_tilt * cos_tpr) / p.detector.pixel2_m;
  f.center_y_pix = std::abs(f.tilt_deg) < 1e-5
                       ? p.poni1_m / p.detector.pixel1_m
                       : (p.poni1_m + p.dist_m * tan_tilt * sin_tpr) / p.detector.pixel1_m;
  return f;
}

std::string provided(bool applied) { return applied ? "provided" : "False"; }

/// What pyFAI 0.21 says of its detector object's own mask: its named detector classes
/// (Pilatus, Eiger ...) compute one, a generic Detector has none.
std::string detector_mask(bool generic) { return generic ? "False" : "True"; }

}  // namespace

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  std::array<char, 64> buf{};
  const auto res =
      std::to_chars(buf.data(), buf.data() + buf.size(), value, std::chars_format::scientific);
  const std::string sci(buf.data(), res.ptr);  // e.g. "-1.25e-05"
  const std::size_t e = sci.find('e');
  const int exponent = std::stoi(sci.substr(e + 1));
  std::string mantissa = sci.substr(0, e);
  const bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  if (exponent < -4 || exponent >= 16) {
    const int mag = std::abs(exponent);
    return (negative ? "-" : "") + mantissa + (exponent < 0 ? "e-" : "e+") + (mag < 10 ? "0" : "") +
           std::to_string(mag);
  }
  std::string digits = mantissa;
  digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
  std::string out;
  if (exponent >= 0) {
    const auto int_len = static_cast<std::size_t>(exponent) + 1;
    if (digits.size() < int_len) digits.append(int_len - digits.size(), '0');
    out = digits.substr(0, int_len) + "." +
          (digits.size() > int_len ? digits.substr(int_len) : std::string("0"));
  } else {
    out = "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
  }
  return (negative ? "-" : "") + out;
}

std::filesystem::path xy_frame_path(const std::filesystem::path& output, std::int64_t frame) {
  const std::string name = output.stem().string() +
                           format("_%05lld", static_cast<long long>(frame)) +
                           output.extension().string();
  return output.parent_path() / name;
}

std::string xy_header(const OutputProvenance& provenance, const std::filesystem::path& file) {
  if (!provenance.poni) {
    throw Error(ErrorCategory::kConfig,
                "output " + file.string() + ": the xy format needs the geometry (PONI)");
  }
  const integrate::Poni& p = *provenance.poni;
  const Fit2d f = to_fit2d(p);
  const bool generic = p.detector.name.empty() || p.detector.name == "Detector";
  std::vector<std::string> lines{
      "== pyFAI calibration ==",
      "Distance Sample to Detector: " + python_float_repr(p.dist_m) + " m",
      format("PONI: %.3e, %.3e m", p.poni1_m, p.poni2_m),
      format("Rotations: %.6f %.6f %.6f rad", p.rot1_rad, p.rot2_rad, p.rot3_rad),
      "",
      "== Fit2d calibration ==",
      format("Distance Sample-beamCenter: %.3f mm", f.direct_dist_mm),
      format("Center: x=%.3f, y=%.3f pix", f.center_x_pix, f.center_y_pix),
      format("Tilt: %.3f deg  TiltPlanRot: %.3f deg", f.tilt_deg, f.tilt_plane_rotation_deg),
      "",
      "Detector " + (generic ? std::string("Detector\t Spline= None") : p.detector.name) +
          format("\t PixelSize= %.3e, %.3e m", p.detector.pixel1_m, p.detector.pixel2_m),
      "   Detector has a mask: " + detector_mask(generic) + " ",
      "   Detector has a dark current: False ",
      "   detector has a flat field: False ",
      ""};
  if (p.wavelength_m) lines.push_back("Wavelength: " + python_float_repr(*p.wavelength_m) + " m");
  lines.push_back("Mask applied: " +
                  std::string(provenance.mask_applied ? "user provided" : "False"));
  lines.push_back("Dark current applied: " + provided(provenance.dark_applied));
  lines.push_back("Flat field applied: " + provided(provenance.flat_applied));
  lines.push_back("Polarization factor: " +
                  (provenance.polarization_factor
                       ? python_float_repr(*provenance.polarization_factor)
                       : std::string("None")));
  lines.push_back("Normalization factor: " + python_float_repr(provenance.normalization_factor));
  std::string out;
  for (const std::string& line : lines) out += "# " + line + "\n";
  return out + "# --> " + file.string() + "\n";
}

XyWriter::XyWriter(NexusLayout layout) : layout_(std::move(layout)) {
  const std::string out = "output " + layout_.path.string();
  if (layout_.format != OutputFormat::kXy && layout_.format != OutputFormat::kXyFrames) {
    throw Error(ErrorCategory::kInternal,
                "XyWriter cannot write format " + std::string(output_format_name(layout_.format)));
  }
  if (layout_.frames == 0 || layout_.npt_rad() == 0) {
    throw Error(ErrorCategory::kConfig, out + ": empty layout (no frames or bins)");
  }
  if (layout_.npt_azim() > 0) {
    throw Error(ErrorCategory::kConfig,
                out + ": format " + std::string(output_format_name(layout_.format)) +
                    " holds 1D results only (npt_azim must be 0; use nexus or nxazint)");
  }
  if (!layout_.provenance.poni) {
    throw Error(ErrorCategory::kConfig, out + ": the xy format needs the geometry (PONI)");
  }
  dir_ = layout_.dir ? layout_.dir : OutputDir::open(layout_.path.parent_path());
  if (!layout_.overwrite) {
    for (std::size_t row = 0; row < layout_.frames; ++row) {
      const auto file =
          layout_.format == OutputFormat::kXy
              ? layout_.path
              : xy_frame_path(layout_.path, layout_.first_frame + static_cast<std::int64_t>(row));
      if (dir_->exists(file.filename().string())) {
        throw Error(ErrorCategory::kConfig,
                    "output " + file.string() + " already exists (use --overwrite to replace it)");
      }
      if (layout_.format == OutputFormat::kXy) break;
    }
  }
  partial_ = layout_.path;
  partial_ += ".partial";
  state_.assign(layout_.frames, kPending);
  total_.reset(layout_.bins());
}

XyWriter::~XyWriter() {
  if (finished_ || layout_.format != OutputFormat::kXy) return;
  try {  // unfinished (a failed or cancelled run): the mean of the frames summed so far stays
    std::vector<float> intensity(layout_.bins());
    std::vector<float> sigma(layout_.with_errors ? layout_.bins() : 0);
    integrate::finalize(total_, intensity, sigma, layout_.empty_value);
    write_file(partial_, intensity, sigma, true, false);
  } catch (const std::exception&) {
    // a destructor must not throw; the caller already reports why the run did not finish
  }
}

const std::filesystem::path& XyWriter::partial_path() const noexcept { return partial_; }

void XyWriter::write_settings(const nlohmann::json& /*settings*/) {
  std::lock_guard lock(mutex_);
  if (finished_ || settings_written_) {
    throw Error(ErrorCategory::kInternal, "XyWriter::write_settings called twice or too late");
  }
  settings_written_ = true;
}

void XyWriter::check_row(std::size_t row, std::string_view what) const {
  if (finished_)
    throw Error(ErrorCategory::kInternal, "XyWriter: " + std::string(what) + " after finish()");
  if (row >= state_.size()) {
    throw Error(ErrorCategory::kInternal, "XyWriter: " + std::string(what) + ": row " +
                                              std::to_string(row) + " out of range (frames " +
                                              std::to_string(state_.size()) + ")");
  }
  if (state_[row] != kPending) {
    throw Error(ErrorCategory::kInternal,
                "XyWriter: " + std::string(what) + ": row " + std::to_string(row) +
                    (state_[row] == kWritten ? " was already written" : " already failed"));
  }
}

void XyWriter::write_file(const std::filesystem::path& file, std::span<const float> intensity,
                          std::span<const float> sigma, bool replace, bool sync) const {
  std::string text = xy_header(layout_.provenance, file);
  const std::string unit(integrate::unit_name(layout_.unit));
  if (sigma.empty()) {
    text += format("#%14s %14s\n", unit.c_str(), "I ");
  } else {
    text += format("#%14s  %14s  %14s\n", unit.c_str(), "I ", "sigma ");
  }
  for (std::size_t i = 0; i < intensity.size(); ++i) {
    text += number_field(layout_.radial_centers[i]) + "  " + number_field(intensity[i]);
    if (!sigma.empty()) text += " " + number_field(sigma[i]);
    text += "\n";
  }
  const std::string name = file.filename().string();
  const std::string partial = name + ".partial";
  const UniqueFd fd = dir_->create(partial);
  for (std::size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw Error(ErrorCategory::kIo, "cannot write " + (dir_->path() / partial).string() + ": " +
                                          std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
  dir_->commit(fd, partial, name, replace, sync);
}

void XyWriter::write_frame(std::size_t row, std::span<const float> intensity,
                           std::span<const float> sigma) {
  std::lock_guard lock(mutex_);
  check_row(row, "write_frame");
  const bool sigma_ok = layout_.with_errors ? sigma.size() == layout_.bins()
                                            : sigma.empty() || sigma.size() == layout_.bins();
  if (intensity.size() != layout_.bins() || !sigma_ok) {
    throw Error(ErrorCategory::kInternal, "XyWriter::write_frame: row " + std::to_string(row) +
                                              " has " + std::to_string(intensity.size()) +
                                              " values, expected " +
                                              std::to_string(layout_.bins()));
  }
  if (layout_.format == OutputFormat::kXyFrames) {
    write_file(xy_frame_path(layout_.path, layout_.first_frame + static_cast<std::int64_t>(row)),
               intensity, layout_.with_errors ? sigma : std::span<const float>(), layout_.overwrite,
               false);
  }
  state_[row] = kWritten;
}

void XyWriter::write_frame(std::size_t row, const integrate::BinSums& sums) {
  std::vector<float> intensity(sums.bins());
  std::vector<float> sigma(layout_.with_errors ? sums.bins() : 0);
  integrate::finalize(sums, intensity, sigma, layout_.empty_value);
  write_frame(row, intensity, sigma);
  add_sums(sums);
}

void XyWriter::add_sums(const integrate::BinSums& sums) {
  std::lock_guard lock(mutex_);
  if (finished_) throw Error(ErrorCategory::kInternal, "XyWriter::add_sums after finish()");
  total_.add(sums);
}

void XyWriter::fail_frame(std::size_t row, std::string_view reason) {
  std::lock_guard lock(mutex_);
  check_row(row, "fail_frame");
  state_[row] = kFailed;
  failed_.push_back(
      {row, layout_.first_frame + static_cast<std::int64_t>(row), std::string(reason)});
}

WriterSummary XyWriter::finish() {
  std::lock_guard lock(mutex_);
  if (finished_) throw Error(ErrorCategory::kInternal, "XyWriter::finish called twice");
  finished_ = true;
  for (std::size_t row = 0; row < state_.size(); ++row) {
    if (state_[row] != kPending) continue;
    state_[row] = kFailed;
    failed_.push_back({row, layout_.first_frame + static_cast<std::int64_t>(row), "never written"});
  }
  std::sort(failed_.begin(), failed_.end(),
            [](const FailedFrame& a, const FailedFrame& b) { return a.row < b.row; });
  if (layout_.format == OutputFormat::kXy) {
    std::vector<float> intensity(layout_.bins());
    std::vector<float> sigma(layout_.with_errors ? layout_.bins() : 0);
    integrate::finalize(total_, intensity, sigma, layout_.empty_value);
    write_file(layout_.path, intensity, sigma, layout_.overwrite, true);
  } else {
    dir_->sync_all();
  }
  WriterSummary summary;
  summary.failed = failed_;
  summary.frames_written = layout_.frames - failed_.size();
  return summary;
}

}  // namespace azflow::reduce
