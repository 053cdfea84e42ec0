#include "daemon/job_setup.hpp"

#include <filesystem>
#include <tuple>

#include "base/error.hpp"
#include "stages/integrate/geometry.hpp"
#include "stages/integrate/units.hpp"
#include "stages/reduce/image_file.hpp"

namespace azflow::daemon {

namespace {

std::string shape_text(std::size_t rows, std::size_t cols) {
  return "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
}

std::vector<double> doubles_field(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || !j.at(key).is_array()) {
    throw Error(ErrorCategory::kInput, std::string("plan axes: field '") + key + "' missing");
  }
  return j.at(key).get<std::vector<double>>();
}

}  // namespace

source::Dataset open_job_dataset(const JobSpec& spec) {
  if (spec.datasets.empty()) throw Error(ErrorCategory::kConfig, "job has no dataset");
  source::OpenOptions options;
  options.dataset_path = spec.dataset_path;
  if (spec.datasets.size() == 1) return source::Dataset::open(spec.datasets.front(), options);
  std::vector<std::filesystem::path> files(spec.datasets.begin(), spec.datasets.end());
  return source::Dataset::open_files(files, options);
}

integrate::Poni job_poni(const JobSpec& spec) {
  return integrate::parse_poni(spec.poni_text, spec.poni_path.empty() ? "poni" : spec.poni_path);
}

void check_frame_shape(const source::DatasetInfo& info, const integrate::Poni& poni,
                       const JobSpec& spec) {
  if (info.rows == poni.detector.rows && info.cols == poni.detector.cols) return;
  throw Error(ErrorCategory::kInput, "frames of " + info.path.string() + " (" + info.dataset +
                                         ") have shape " + shape_text(info.rows, info.cols) +
                                         " but the PONI detector " + poni.detector.name + " in " +
                                         spec.poni_path + " is " +
                                         shape_text(poni.detector.rows, poni.detector.cols));
}

integrate::Corrections load_job_corrections(const JobSpec& spec, const source::DatasetInfo& info) {
  integrate::Corrections c;
  const std::size_t pixels = info.rows * info.cols;
  if (info.pixel_mask && spec.use_file_mask) {
    c.mask.assign(pixels, 0);
    for (std::size_t i = 0; i < pixels; ++i) c.mask[i] = (*info.pixel_mask)[i] != 0;
  }
  if (!spec.mask_path.empty()) {
    const reduce::Image mask = reduce::read_image(spec.mask_path, info.rows, info.cols, "mask");
    c.mask.resize(pixels, 0);
    for (std::size_t i = 0; i < pixels; ++i) {
      if (mask.values[i] != 0) c.mask[i] = 1;
    }
  }
  for (auto [image_spec, out, what] : {std::tuple{&spec.dark_path, &c.dark, "dark"},
                                       std::tuple{&spec.flat_path, &c.flat, "flat"}}) {
    if (image_spec->empty()) continue;
    const reduce::Image image = reduce::read_image(*image_spec, info.rows, info.cols, what);
    out->assign(image.values.begin(), image.values.end());
  }
  return c;
}

std::shared_ptr<const integrate::Plan> build_job_plan(const JobSpec& spec,
                                                      const source::DatasetInfo& info) {
  const integrate::Poni poni = job_poni(spec);
  check_frame_shape(info, poni, spec);
  return integrate::Plan::build(integrate::Geometry(poni), spec.settings_for(info.dtype),
                                load_job_corrections(spec, info));
}

nlohmann::json plan_axes_json(const integrate::Plan& plan) {
  return {{"unit", std::string(integrate::unit_name(plan.settings().unit))},
          {"radial_centers", plan.radial_centers()},
          {"radial_edges", plan.radial_edges()},
          {"azimuthal_centers", plan.azimuthal_centers()},
          {"azimuthal_edges", plan.azimuthal_edges()},
          {"with_errors", plan.settings().error_model != integrate::ErrorModel::kNone},
          {"bins", plan.bins()}};
}

reduce::NexusLayout layout_from_axes_json(const nlohmann::json& axes, std::string path,
                                          std::size_t frames) {
  reduce::NexusLayout layout;
  layout.path = std::move(path);
  layout.frames = frames;
  const auto unit = integrate::parse_radial_unit(axes.value("unit", std::string()));
  if (!unit) throw Error(ErrorCategory::kInput, "plan axes: field 'unit' missing or unknown");
  layout.unit = *unit;
  layout.radial_centers = doubles_field(axes, "radial_centers");
  layout.radial_edges = doubles_field(axes, "radial_edges");
  layout.azimuthal_centers = doubles_field(axes, "azimuthal_centers");
  layout.azimuthal_edges = doubles_field(axes, "azimuthal_edges");
  layout.with_errors = axes.value("with_errors", false);
  return layout;
}

std::string plan_cache_key(const JobSpec& spec, const source::DatasetInfo& info) {
  nlohmann::json j = to_json(spec);
  for (const char* unrelated : {"datasets", "output_path", "mode", "poni_path"}) j.erase(unrelated);
  for (const std::string* image : {&spec.mask_path, &spec.dark_path, &spec.flat_path}) {
    std::error_code ec;
    const std::filesystem::path file = image->substr(0, image->find("::"));
    const auto size = image->empty() ? 0 : std::filesystem::file_size(file, ec);
    const auto time = image->empty() ? std::filesystem::file_time_type{}
                                     : std::filesystem::last_write_time(file, ec);
    j["image_stamps"].push_back({size, time.time_since_epoch().count()});
  }
  std::uint64_t hash = 1469598103934665603ull;  // FNV-1a 64
  if (spec.use_file_mask && info.pixel_mask) {
    for (const std::uint32_t v : *info.pixel_mask)
      hash = (hash ^ (v != 0 ? 1u : 0u)) * 1099511628211ull;
  }
  j["pixel_mask_hash"] = hash;
  j["shape"] = {info.rows, info.cols, static_cast<int>(info.dtype)};
  return j.dump();
}

std::size_t spec_bins(const JobSpec& spec) noexcept {
  const std::size_t azim = spec.settings.npt_azim > 0 ? spec.settings.npt_azim : 1;
  return azim * spec.settings.npt_rad;
}

}  // namespace azflow::daemon
