#include "stages/reduce/nexus_writer.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <system_error>

#include "base/error.hpp"
#include "stages/integrate/sigma_clip.hpp"
#include "stages/reduce/hdf5_handle.hpp"

#ifndef AZFLOW_VERSION
#error "AZFLOW_VERSION must be defined by the build (CMake PROJECT_VERSION)"
#endif

namespace azflow::reduce {

namespace {

enum RowState : std::uint8_t { kPending = 0, kWritten = 1, kFailed = 2 };

/// Replaces characters HDF5 does not allow in a link name.
std::string link_name(std::string_view key) {
  std::string name(key);
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  if (name.empty() || name == "." || name == "..") name = "_" + name;
  return name;
}

/// Whether `value` is a non-empty array whose elements all satisfy `pred`.
bool is_array_of(const nlohmann::json& value, bool (nlohmann::json::*pred)() const noexcept) {
  return value.is_array() && !value.empty() &&
         std::all_of(value.begin(), value.end(), [pred](const auto& v) { return (v.*pred)(); });
}

/// One dataset in an NXcollection for one JSON setting.
void write_parameter(hid_t group, const std::string& name, const nlohmann::json& value) {
  if (value.is_null()) return;
  if (value.is_string()) {
    h5::write_string(group, name, value.get<std::string>());
  } else if (value.is_boolean()) {
    h5::write_string(group, name, value.get<bool>() ? "true" : "false");
  } else if (value.is_number_integer()) {
    h5::write_scalar(group, name, value.get<std::int64_t>());
  } else if (value.is_number()) {
    h5::write_scalar(group, name, value.get<double>());
  } else if (is_array_of(value, &nlohmann::json::is_number_integer)) {
    std::vector<std::int64_t> numbers;
    for (const auto& v : value) numbers.push_back(v.get<std::int64_t>());
    const std::array<hsize_t, 1> dims{numbers.size()};
    h5::write_array(group, name, dims, std::span<const std::int64_t>(numbers));
  } else if (is_array_of(value, &nlohmann::json::is_number)) {
    std::vector<double> numbers;
    for (const auto& v : value) numbers.push_back(v.get<double>());
    const std::array<hsize_t, 1> dims{numbers.size()};
    h5::write_array(group, name, dims, std::span<const double>(numbers));
  } else {
    h5::write_string(group, name, value.dump());
  }
}

/// Writes `values` into row `row` of a (frames, ...) dataset.
void write_row(hid_t dataset, std::size_t row, std::span<const float> values,
               const std::filesystem::path& file) {
  h5::Handle file_space = h5::check(H5Dget_space(dataset), "H5Dget_space failed");
  std::array<hsize_t, 3> dims{};
  H5Sget_simple_extent_dims(file_space.get(), dims.data(), nullptr);
  std::array<hsize_t, 3> start{row, 0, 0};
  std::array<hsize_t, 3> count = dims;
  count[0] = 1;
  h5::check_status(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr,
                                       count.data(), nullptr),
                   "H5Sselect_hyperslab failed");
  const std::array<hsize_t, 1> mem_dims{values.size()};
  h5::Handle mem_space =
      h5::check(H5Screate_simple(1, mem_dims.data(), nullptr), "H5Screate_simple failed");
  h5::check_status(H5Dwrite(dataset, H5T_NATIVE_FLOAT, mem_space.get(), file_space.get(),
                            H5P_DEFAULT, values.data()),
                   "cannot write row " + std::to_string(row) + " of " + file.string());
}

/// Shape of one row: (npt_rad) or (npt_azim, npt_rad).
std::vector<hsize_t> row_dims(const NexusLayout& layout) {
  if (layout.npt_azim() > 0) return {layout.npt_azim(), layout.npt_rad()};
  return {layout.npt_rad()};
}

/// Creates a (frames, row...) float32 dataset in 1-row chunks, fill value NaN.
h5::Handle create_row_dataset(hid_t group, const std::string& name, const NexusLayout& layout) {
  std::vector<hsize_t> dims{layout.frames};
  for (hsize_t d : row_dims(layout)) dims.push_back(d);
  std::vector<hsize_t> chunk = dims;
  chunk[0] = 1;
  h5::Handle space =
      h5::check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                "H5Screate_simple failed");
  h5::Handle dcpl = h5::check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate failed");
  h5::check_status(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()),
                   "H5Pset_chunk failed");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  h5::check_status(H5Pset_fill_value(dcpl.get(), H5T_NATIVE_FLOAT, &nan), "H5Pset_fill_value");
  return h5::check(H5Dcreate2(group, name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT,
                              dcpl.get(), H5P_DEFAULT),
                   "cannot create dataset " + name);
}

/// Writes a 1D float64 axis with @units.
void write_axis(hid_t group, const std::string& name, const std::vector<double>& values,
                std::string_view units, std::string_view long_name) {
  const std::array<hsize_t, 1> dims{values.size()};
  h5::Handle ds = h5::write_array(group, name, dims, std::span<const double>(values));
  h5::write_string_attr(ds.get(), "units", units);
  h5::write_string_attr(ds.get(), "long_name", long_name);
}

/// NXdata @signal, @axes and @<axis>_indices (NeXus NXdata: dimension i of the signal is labelled
/// by axes[i]; "." leaves a dimension unlabelled and gets no _indices attribute).
void write_nxdata_attrs(hid_t group, const std::vector<std::string>& axes) {
  h5::write_string_attr(group, "signal", "I");
  h5::write_string_array_attr(group, "axes", axes);
  for (std::size_t i = 0; i < axes.size(); ++i) {
    if (axes[i] != ".")
      h5::write_int_attr(group, axes[i] + "_indices", static_cast<std::int64_t>(i));
  }
}

/// Group and dataset names of one format's layout.
struct Names {
  std::string process, params, params_class, data, rad, rad_edges, chi, chi_edges;
};

/// NXazint's radial long_name ("q", "2theta"; "r" outside the definition's list) and units.
std::pair<std::string, std::string> azint_radial_label(integrate::RadialUnit unit) {
  using integrate::RadialUnit;
  if (unit == RadialUnit::kQ_nm) return {"q", "1/nm"};
  if (unit == RadialUnit::kQ_A) return {"q", "1/angstrom"};
  if (unit == RadialUnit::k2Th_deg) return {"2theta", "degree"};
  if (unit == RadialUnit::k2Th_rad) return {"2theta", "rad"};
  return {std::string(radial_axis_name(unit)), std::string(integrate::unit_symbol(unit))};
}

bool is_azint(const NexusLayout& layout) { return layout.format == OutputFormat::kNxAzint; }

Names names_for(const NexusLayout& layout) {
  if (is_azint(layout)) {
    return {"reduction",         "input",          "NXparameters",        "data", "radial_axis",
            "radial_axis_edges", "azimuthal_axis", "azimuthal_axis_edges"};
  }
  const std::string rad(layout.chi_profile ? "chi" : radial_axis_name(layout.unit));
  return {"process", "parameters",   "NXcollection", "integrate",
          rad,       rad + "_edges", "chi",          "chi_edges"};
}

/// A scalar NX_BOOLEAN dataset (stored as int8 0/1, as h5py writes numpy.bool_ scalars' values).
void write_bool(hid_t parent, const std::string& name, bool value) {
  const std::int8_t v = value ? 1 : 0;
  h5::Handle space = h5::check(H5Screate(H5S_SCALAR), "H5Screate failed");
  h5::Handle ds = h5::check(H5Dcreate2(parent, name.c_str(), H5T_STD_I8LE, space.get(), H5P_DEFAULT,
                                       H5P_DEFAULT, H5P_DEFAULT),
                            "cannot create dataset " + name);
  h5::check_status(H5Dwrite(ds.get(), H5T_NATIVE_INT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v),
                   "cannot write dataset " + name);
}

/// NXazint's NXentry fields: definition, the *_applied flags and the NXinstrument.
void write_azint_entry(hid_t entry, const NexusLayout& layout) {
  const OutputProvenance& p = layout.provenance;
  h5::write_string(entry, "definition", layout.npt_azim() > 0 ? "NXazint2d" : "NXazint1d");
  write_bool(entry, "solid_angle_applied", p.solid_angle_applied);
  write_bool(entry, "polarization_applied", p.polarization_factor.has_value());
  write_bool(entry, "normalization_applied", true);
  write_bool(entry, "monitor_applied", p.normalization_factor != 1.0);
  write_bool(entry, "mask_applied", p.mask_applied);
  write_bool(entry, "dark_applied", p.dark_applied);
  write_bool(entry, "flat_applied", p.flat_applied);
  h5::Handle instrument = h5::create_nx_group(entry, "instrument", "NXinstrument");
  h5::write_string(instrument.get(), "name", "unknown");
  h5::Handle source = h5::create_nx_group(instrument.get(), "source", "NXsource");
  h5::write_string(source.get(), "name", "unknown");
  h5::write_string(source.get(), "type", "unknown");
  h5::write_string(source.get(), "probe", "x-ray");
  if (p.poni && p.poni->wavelength_m) {
    constexpr double kHcKeVAngstrom = 12.398419843320026;  // h c in keV x angstrom (CODATA 2018)
    const double wavelength_a = *p.poni->wavelength_m * 1e10;
    h5::Handle mono = h5::create_nx_group(instrument.get(), "monochromator", "NXmonochromator");
    h5::Handle wl = h5::write_scalar(mono.get(), "wavelength", wavelength_a);
    h5::write_string_attr(wl.get(), "units", "angstrom");
    h5::Handle energy = h5::write_scalar(mono.get(), "energy", kHcKeVAngstrom / wavelength_a);
    h5::write_string_attr(energy.get(), "units", "keV");
  }
}

std::string radial_long_name(integrate::RadialUnit unit) {
  return std::string(radial_axis_name(unit)) + " (" + std::string(integrate::unit_symbol(unit)) +
         ")";
}

}  // namespace

/// Open HDF5 objects of the file being written.
struct NexusWriter::Files {
  h5::Handle file, entry, process, data, intensity, sigma, clip_std, clip_count;
};

std::string_view program_version() noexcept { return AZFLOW_VERSION; }

std::string iso8601_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf.data();
}

std::string_view radial_axis_name(integrate::RadialUnit unit) noexcept {
  switch (unit) {
    case integrate::RadialUnit::kQ_nm:
    case integrate::RadialUnit::kQ_A:
      return "q";
    case integrate::RadialUnit::k2Th_deg:
    case integrate::RadialUnit::k2Th_rad:
      return "2th";
    case integrate::RadialUnit::kR_mm:
    case integrate::RadialUnit::kR_m:
      return "r";
    case integrate::RadialUnit::kD2_A:
    case integrate::RadialUnit::kD2_nm:
      return "d2";
    default:  // the log / arcsinh units of pyFAI 0.21
      return "radial";
  }
}

NexusLayout NexusLayout::from_plan(const integrate::Plan& plan, std::filesystem::path path,
                                   std::size_t frames) {
  NexusLayout layout;
  layout.path = std::move(path);
  layout.frames = frames;
  layout.unit = plan.settings().unit;
  layout.radial_centers = plan.radial_centers();
  layout.radial_edges = plan.radial_edges();
  layout.azimuthal_centers = plan.azimuthal_centers();
  layout.azimuthal_edges = plan.azimuthal_edges();
  layout.azimuthal_unit = plan.settings().azimuthal_unit;
  layout.with_errors = plan.settings().error_model != integrate::ErrorModel::kNone;
  layout.with_clip_stats = plan.settings().sigma_clip.has_value();
  layout.provenance.solid_angle_applied = plan.settings().correct_solid_angle;
  layout.provenance.polarization_factor = plan.settings().polarization_factor;
  layout.provenance.normalization_factor = plan.settings().normalization_factor;
  layout.provenance.dark_applied = !plan.dark().empty();
  return layout;
}

std::size_t NexusLayout::bins() const noexcept {
  return npt_azim() > 0 ? npt_azim() * npt_rad() : npt_rad();
}

NexusWriter::NexusWriter(NexusLayout layout)
    : layout_(std::move(layout)), files_(std::make_unique<Files>()) {
  if (layout_.frames == 0 || layout_.npt_rad() == 0 ||
      layout_.radial_edges.size() != layout_.npt_rad() + 1 ||
      (layout_.npt_azim() > 0 && layout_.azimuthal_edges.size() != layout_.npt_azim() + 1)) {
    throw Error(ErrorCategory::kConfig, "output " + layout_.path.string() +
                                            ": empty or inconsistent layout (no frames or bins)");
  }
  if ((layout_.format != OutputFormat::kNexus && layout_.format != OutputFormat::kNxAzint) ||
      (layout_.chi_profile && layout_.format != OutputFormat::kNexus)) {
    throw Error(ErrorCategory::kInternal, "NexusWriter cannot write format " +
                                              std::string(output_format_name(layout_.format)));
  }
  dir_ = layout_.dir ? layout_.dir : OutputDir::open(layout_.path.parent_path());
  if (!layout_.overwrite && dir_->exists(layout_.path.filename().string())) {
    throw Error(ErrorCategory::kConfig, "output " + layout_.path.string() +
                                            " already exists (use --overwrite to replace it)");
  }
  partial_ = layout_.path;
  partial_ += ".partial";
  state_.assign(layout_.frames, kPending);
  total_.reset(layout_.bins());
  h5::silence_errors();
  create_file();
  create_frame_group();
}

NexusWriter::~NexusWriter() = default;

const std::filesystem::path& NexusWriter::partial_path() const noexcept { return partial_; }

void NexusWriter::create_file() {
  const std::string partial = partial_path().string();
  fd_ = dir_->create(partial_.filename().string());
  // HDF5 opens by name: the magic link reaches the inode just made, not whatever the name holds
  const std::string by_fd = proc_fd_path(fd_.get());
  files_->file = h5::check(H5Fcreate(by_fd.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                           "cannot create output file " + partial + " (as " + by_fd + ")");
  void* handle = nullptr;
  h5::check_status(H5Fget_vfd_handle(files_->file.get(), H5P_DEFAULT, &handle),
                   "cannot check output file " + partial);
  if (handle == nullptr ||
      !(file_id(*static_cast<int*>(handle), partial) == file_id(fd_.get(), partial))) {
    throw Error(ErrorCategory::kIo, "HDF5 did not open the file made as " + partial);
  }
  const hid_t root = files_->file.get();
  const std::string now = iso8601_now();
  h5::write_string_attr(root, "default", "entry");
  h5::write_string_attr(root, "creator", "azflow " + std::string(program_version()));
  h5::write_string_attr(root, "file_name", layout_.path.filename().string());
  h5::write_string_attr(root, "file_time", now);
  const Names names = names_for(layout_);
  files_->entry = h5::create_nx_group(root, "entry", "NXentry");
  h5::write_string_attr(files_->entry.get(), "default", names.data);
  h5::write_string(files_->entry.get(), "start_time", now);
  if (is_azint(layout_)) write_azint_entry(files_->entry.get(), layout_);
  files_->process = h5::create_nx_group(files_->entry.get(), names.process, "NXprocess");
  const hid_t process = files_->process.get();
  h5::write_string(process, "program", "azflow");
  h5::write_string(process, "version", program_version());
  h5::write_string(process, "date", now);
  h5::write_scalar(process, "sequence_index", std::int64_t{1});
  if (is_azint(layout_)) {
    h5::write_string(process, "reference",
                     "G. Ashiotis et al., J. Appl. Cryst. 48 (2015) 510-519 (pyFAI's algorithm, "
                     "which azflow follows)");
    h5::write_string(process, "note",
                     "I = sum(signal) / sum(norm) per bin, pyFAI 0.21 conventions (radial unit "
                     "of radial_axis, chi in degrees); norm = solid angle x polarization x flat x "
                     "normalization factor, mean over the written frames");
  }
}

void NexusWriter::create_frame_group() {
  const Names names = names_for(layout_);
  const bool azint = is_azint(layout_);
  files_->data = h5::create_nx_group(files_->entry.get(), names.data, "NXdata");
  const hid_t data = files_->data.get();
  const char* interpretation = layout_.npt_azim() > 0 ? "image" : "spectrum";
  files_->intensity = create_row_dataset(data, "I", layout_);
  h5::write_string_attr(files_->intensity.get(), "interpretation", interpretation);
  h5::write_string_attr(files_->intensity.get(), "long_name", azint ? "intensity" : "Intensity");
  if (azint) h5::write_string_attr(files_->intensity.get(), "units", "arbitrary units");
  if (layout_.with_errors) {
    files_->sigma = create_row_dataset(data, "I_errors", layout_);
    if (azint) {
      h5::write_string_attr(files_->sigma.get(), "long_name", "estimated intensity error");
      h5::write_string_attr(files_->sigma.get(), "units", "arbitrary units");
    }
  }
  if (layout_.with_clip_stats) {
    files_->clip_std = create_row_dataset(data, "std", layout_);
    h5::write_string_attr(files_->clip_std.get(), "long_name",
                          "standard deviation of the pixels kept by sigma clipping");
    files_->clip_count = create_row_dataset(data, "count", layout_);
    h5::write_string_attr(files_->clip_count.get(), "long_name",
                          "pixels kept by sigma clipping (sum of weights)");
  }
  const bool chi_rad = layout_.azimuthal_unit == integrate::AzimuthalUnit::kChiRad;
  const auto [rad_label, rad_units] =
      azint                 ? azint_radial_label(layout_.unit)
      : layout_.chi_profile ? std::pair{std::string("chi (") + (chi_rad ? "rad" : "deg") + ")",
                                        std::string(chi_rad ? "rad" : "deg")}
                            : std::pair{radial_long_name(layout_.unit),
                                        std::string(integrate::unit_symbol(layout_.unit))};
  write_axis(data, names.rad, layout_.radial_centers, rad_units, rad_label);
  write_axis(data, names.rad_edges, layout_.radial_edges, rad_units, rad_label + " bin edges");
  std::vector<std::string> axes{names.rad};
  if (layout_.npt_azim() > 0) {
    const bool rad = layout_.azimuthal_unit == integrate::AzimuthalUnit::kChiRad;
    const std::string chi_units = rad ? "rad" : (azint ? "degree" : "deg");
    const std::string chi_label = std::string("chi (") + (rad ? "rad" : "deg") + ")";
    write_axis(data, names.chi, layout_.azimuthal_centers, chi_units,
               azint ? "azimuthal bin center" : chi_label);
    write_axis(data, names.chi_edges, layout_.azimuthal_edges, chi_units,
               azint ? "azimuthal bin edges" : chi_label + " bin edges");
    axes.insert(axes.begin(), names.chi);
  }
  if (azint) h5::write_string_attr(data, "interpretation", interpretation);
  std::vector<std::int64_t> frame_index(layout_.frames);
  for (std::size_t i = 0; i < frame_index.size(); ++i) {
    frame_index[i] = layout_.first_frame + static_cast<std::int64_t>(i);
  }
  const std::array<hsize_t, 1> dims{frame_index.size()};
  h5::Handle index =
      h5::write_array(data, "frame_index", dims, std::span<const std::int64_t>(frame_index));
  h5::write_string_attr(index.get(), "long_name", "input frame index");
  // NXazint fixes dimension 0's axis to "."; azflow's own layout labels it with frame_index.
  axes.insert(axes.begin(), azint ? "." : "frame_index");
  write_nxdata_attrs(data, axes);
}

void NexusWriter::write_settings(const nlohmann::json& settings) {
  std::lock_guard lock(mutex_);
  if (finished_ || settings_written_) {
    throw Error(ErrorCategory::kInternal, "NexusWriter::write_settings called twice or too late");
  }
  settings_written_ = true;
  const hid_t process = files_->process.get();
  h5::Handle note = h5::create_nx_group(process, "configuration", "NXnote");
  h5::write_string(note.get(), "type", "application/json");
  h5::write_string(note.get(), "data", settings.dump(2));
  const Names names = names_for(layout_);
  h5::Handle params = h5::create_nx_group(process, names.params, names.params_class);
  if (!settings.is_object()) return;
  for (const auto& [key, value] : settings.items()) {
    if (key == "pyfai_config") {
      h5::Handle config = h5::create_nx_group(process, "pyfai_config", "NXnote");
      h5::write_string(config.get(), "type", "application/json");
      h5::write_string(config.get(), "data", value.dump(2));
      continue;
    }
    write_parameter(params.get(), link_name(key), value);
  }
}

void NexusWriter::check_row(std::size_t row, std::string_view what) const {
  h5::silence_errors();  // HDF5's error stack is per thread: silence each caller's
  if (finished_)
    throw Error(ErrorCategory::kInternal, "NexusWriter: " + std::string(what) + " after finish()");
  if (row >= state_.size()) {
    throw Error(ErrorCategory::kInternal, "NexusWriter: " + std::string(what) + ": row " +
                                              std::to_string(row) + " out of range (frames " +
                                              std::to_string(state_.size()) + ")");
  }
  if (state_[row] != kPending) {
    throw Error(ErrorCategory::kInternal,
                "NexusWriter: " + std::string(what) + ": row " + std::to_string(row) +
                    (state_[row] == kWritten ? " was already written" : " already failed"));
  }
}

void NexusWriter::write_frame(std::size_t row, std::span<const float> intensity,
                              std::span<const float> sigma) {
  std::lock_guard lock(mutex_);
  check_row(row, "write_frame");
  const bool sigma_ok = layout_.with_errors ? sigma.size() == layout_.bins()
                                            : sigma.empty() || sigma.size() == layout_.bins();
  if (intensity.size() != layout_.bins() || !sigma_ok) {
    throw Error(ErrorCategory::kInternal, "NexusWriter::write_frame: row " + std::to_string(row) +
                                              " has " + std::to_string(intensity.size()) +
                                              " values, expected " +
                                              std::to_string(layout_.bins()));
  }
  write_row(files_->intensity.get(), row, intensity, partial_);
  if (layout_.with_errors) write_row(files_->sigma.get(), row, sigma, partial_);
  state_[row] = kWritten;
}

void NexusWriter::write_frame(std::size_t row, const integrate::BinSums& sums) {
  std::vector<float> intensity(sums.bins());
  std::vector<float> sigma(layout_.with_errors ? sums.bins() : 0);
  integrate::finalize(sums, intensity, sigma, layout_.empty_value);
  write_frame(row, intensity, sigma);
  add_sums(sums);
  if (layout_.with_clip_stats) {
    std::vector<float> std_dev;
    integrate::clipped_std(sums, std_dev, layout_.empty_value);
    const std::vector<float> count(sums.count.begin(), sums.count.end());
    write_clip_stats(row, std_dev, count);
  }
}

void NexusWriter::write_clip_stats(std::size_t row, std::span<const float> std_dev,
                                   std::span<const float> count) {
  std::lock_guard lock(mutex_);
  if (!layout_.with_clip_stats || finished_ || row >= state_.size() ||
      std_dev.size() != layout_.bins() || count.size() != layout_.bins()) {
    throw Error(ErrorCategory::kInternal, "NexusWriter::write_clip_stats: row " +
                                              std::to_string(row) +
                                              " without sigma clipping, "
                                              "out of range or of the wrong size");
  }
  write_row(files_->clip_std.get(), row, std_dev, partial_);
  write_row(files_->clip_count.get(), row, count, partial_);
}

void NexusWriter::add_sums(const integrate::BinSums& sums) {
  std::lock_guard lock(mutex_);
  if (finished_) throw Error(ErrorCategory::kInternal, "NexusWriter::add_sums after finish()");
  total_.add(sums);
}

void NexusWriter::fail_frame(std::size_t row, std::string_view reason) {
  std::lock_guard lock(mutex_);
  check_row(row, "fail_frame");
  state_[row] = kFailed;
  failed_.push_back(
      {row, layout_.first_frame + static_cast<std::int64_t>(row), std::string(reason)});
}

void NexusWriter::write_sum_group() {
  const hid_t entry = files_->entry.get();
  h5::Handle sum = h5::create_nx_group(entry, "sum", "NXdata");
  const std::vector<hsize_t> dims = row_dims(layout_);
  std::vector<float> intensity(layout_.bins()), sigma(layout_.bins());
  integrate::finalize(total_, intensity, sigma, layout_.empty_value);
  h5::Handle ids = h5::write_array(sum.get(), "I", dims, std::span<const float>(intensity));
  h5::write_string_attr(ids.get(), "long_name", "Intensity of the dataset-wide sums");
  if (layout_.with_errors) {
    h5::write_array(sum.get(), "I_errors", dims, std::span<const float>(sigma));
  }
  h5::write_array(sum.get(), "sum_signal", dims, std::span<const double>(total_.signal));
  h5::write_array(sum.get(), "sum_variance", dims, std::span<const double>(total_.variance));
  h5::write_array(sum.get(), "sum_normalization", dims,
                  std::span<const double>(total_.normalization));
  h5::write_array(sum.get(), "sum_count", dims, std::span<const double>(total_.count));
  const std::string rad = names_for(layout_).rad;
  std::vector<std::string> links{rad, rad + "_edges"};
  std::vector<std::string> axes{rad};
  if (layout_.npt_azim() > 0) {
    links.insert(links.end(), {"chi", "chi_edges"});
    axes.insert(axes.begin(), "chi");
  }
  for (const auto& name : links) {
    h5::check_status(H5Lcreate_hard(files_->data.get(), name.c_str(), sum.get(), name.c_str(),
                                    H5P_DEFAULT, H5P_DEFAULT),
                     "cannot link axis " + name);
  }
  write_nxdata_attrs(sum.get(), axes);
}

void NexusWriter::write_norm() {
  const std::size_t written = static_cast<std::size_t>(
      std::count(state_.begin(), state_.end(), static_cast<std::uint8_t>(kWritten)));
  std::vector<double> norm(total_.normalization);
  for (double& v : norm) v /= static_cast<double>(std::max<std::size_t>(written, 1));
  h5::Handle ds =
      h5::write_array(files_->data.get(), "norm", row_dims(layout_), std::span<const double>(norm));
  h5::write_string_attr(ds.get(), "long_name",
                        "effective number of pixels contributing to the corresponding bin");
  h5::write_string_attr(ds.get(), "units", "arbitrary units");
}

void NexusWriter::write_failures(const std::vector<FailedFrame>& failed) {
  const hid_t process = files_->process.get();
  const std::size_t written = static_cast<std::size_t>(
      std::count(state_.begin(), state_.end(), static_cast<std::uint8_t>(kWritten)));
  h5::write_scalar(process, "frames_total", static_cast<std::int64_t>(layout_.frames));
  h5::write_scalar(process, "frames_written", static_cast<std::int64_t>(written));
  h5::write_scalar(process, "frames_failed", static_cast<std::int64_t>(failed.size()));
  h5::Handle group = h5::create_nx_group(process, "failed_frames", "NXcollection");
  std::vector<std::int64_t> rows, frames;
  std::vector<std::string> reasons;
  for (const auto& f : failed) {
    rows.push_back(static_cast<std::int64_t>(f.row));
    frames.push_back(f.frame);
    reasons.push_back(f.reason);
  }
  const std::array<hsize_t, 1> dims{failed.size()};
  h5::write_array(group.get(), "row", dims, std::span<const std::int64_t>(rows));
  h5::write_array(group.get(), "frame", dims, std::span<const std::int64_t>(frames));
  h5::write_string_array(group.get(), "reason", reasons);
}

WriterSummary NexusWriter::finish() {
  std::lock_guard lock(mutex_);
  h5::silence_errors();
  if (finished_) throw Error(ErrorCategory::kInternal, "NexusWriter::finish called twice");
  for (std::size_t row = 0; row < state_.size(); ++row) {
    if (state_[row] != kPending) continue;
    state_[row] = kFailed;
    failed_.push_back({row, layout_.first_frame + static_cast<std::int64_t>(row), "never written"});
  }
  std::sort(failed_.begin(), failed_.end(),
            [](const FailedFrame& a, const FailedFrame& b) { return a.row < b.row; });
  if (!settings_written_) {
    const Names names = names_for(layout_);
    h5::create_nx_group(files_->process.get(), names.params, names.params_class);
  }
  if (is_azint(layout_)) {
    write_norm();
  } else {
    write_sum_group();
  }
  write_failures(failed_);
  h5::write_string(files_->entry.get(), "end_time", iso8601_now());
  files_ = std::make_unique<Files>();  // closes every object, then the file
  finished_ = true;
  dir_->commit(fd_, partial_.filename().string(), layout_.path.filename().string(),
               layout_.overwrite, true);
  fd_ = UniqueFd();
  WriterSummary summary;
  summary.failed = failed_;
  summary.frames_written = layout_.frames - failed_.size();
  return summary;
}

nlohmann::json pyfai_worker_config(const integrate::IntegrationSettings& s,
                                   const integrate::Poni& poni, const std::string& mask_file,
                                   const std::string& dark_file, const std::string& flat_file) {
  using nlohmann::json;
  const auto optional = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  const auto range = [](const std::optional<std::pair<double, double>>& r) {
    return r ? json::array({r->first, r->second}) : json(nullptr);
  };
  const auto file = [](const std::string& f) { return f.empty() ? json(nullptr) : json(f); };
  json detector_config = {{"pixel1", poni.detector.pixel1_m}, {"pixel2", poni.detector.pixel2_m}};
  if (poni.detector.rows > 0)
    detector_config["max_shape"] = {poni.detector.rows, poni.detector.cols};
  json geometry = {{"poni_version", 2},
                   {"detector", poni.detector.name},
                   {"detector_config", detector_config},
                   {"dist", poni.dist_m},
                   {"poni1", poni.poni1_m},
                   {"poni2", poni.poni2_m},
                   {"rot1", poni.rot1_rad},
                   {"rot2", poni.rot2_rad},
                   {"rot3", poni.rot3_rad}};
  if (poni.wavelength_m) geometry["wavelength"] = *poni.wavelength_m;
  const std::string model = s.error_model == integrate::ErrorModel::kNone
                                ? "no"
                                : std::string(integrate::error_model_name(s.error_model));
  return json{
      {"application", "worker"},
      {"version", 5},
      {"poni", geometry},
      {"nbpt_rad", s.npt_rad},
      {"nbpt_azim", s.is_2d() ? json(s.npt_azim) : json(nullptr)},
      {"unit", std::string(integrate::unit_name(s.unit))},
      {"chi_discontinuity_at_0", false},
      {"polarization_description",
       s.polarization_factor ? json::array({*s.polarization_factor, 0.0}) : json(nullptr)},
      {"normalization_factor", s.normalization_factor},
      {"val_dummy", optional(s.dummy)},
      {"delta_dummy", optional(s.delta_dummy)},
      {"correct_solid_angle", s.correct_solid_angle},
      {"mask_file", file(mask_file)},
      {"dark_current", file(dark_file)},
      {"flat_field", file(flat_file)},
      {"error_model", model},
      {"method", json::array({std::string(integrate::split_name(s.split)), "csr", "cython"})},
      {"azimuth_range", range(s.azimuth_range_deg)},
      {"radial_range", range(s.radial_range)},
      {"integrator_class", "AzimuthalIntegrator"},
      {"integrator_method",
       s.sigma_clip ? "sigma_clip_ng" : (s.is_2d() ? "integrate2d_ng" : "integrate1d_ng")},
      {"extra_options", s.sigma_clip ? json{{"thres", s.sigma_clip->thres},
                                            {"max_iter", s.sigma_clip->max_iter},
                                            {"error_model", model}}
                                     : json(nullptr)}};
}

nlohmann::json settings_parameters(const integrate::IntegrationSettings& s) {
  const auto optional = [](const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  const auto range = [](const std::optional<std::pair<double, double>>& r) {
    return r ? nlohmann::json::array({r->first, r->second}) : nlohmann::json(nullptr);
  };
  nlohmann::json j;
  j["unit"] = std::string(integrate::unit_name(s.unit));
  j["npt_rad"] = s.npt_rad;
  j["npt_azim"] = s.npt_azim;
  j["method"] = nlohmann::json::array({std::string(integrate::split_name(s.split)), "csr", "cpu"});
  j["radial_range"] = range(s.radial_range);
  j["azimuth_range_deg"] = range(s.azimuth_range_deg);
  j["azimuthal_unit"] = std::string(integrate::azimuthal_unit_name(s.azimuthal_unit));
  j["correct_solid_angle"] = s.correct_solid_angle;
  j["polarization_factor"] = optional(s.polarization_factor);
  j["dummy"] = optional(s.dummy);
  j["delta_dummy"] = optional(s.delta_dummy);
  j["normalization_factor"] = s.normalization_factor;
  j["error_model"] = std::string(integrate::error_model_name(s.error_model));
  j["sigma_clip"] = s.sigma_clip.has_value();
  if (s.sigma_clip) {
    j["thres"] = s.sigma_clip->thres;
    j["max_iter"] = s.sigma_clip->max_iter;
  }
  return j;
}

}  // namespace azflow::reduce
