#include "daemon/job_setup.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <tuple>

#include "stages/source/input_policy.hpp"

#include "base/error.hpp"
#include "stages/integrate/geometry.hpp"
#include "stages/integrate/units.hpp"
#include "stages/reduce/image_file.hpp"

namespace azflow::daemon {

namespace {

std::vector<double> doubles_field(const nlohmann::json& j, const char* key) {
  if (!j.contains(key) || !j.at(key).is_array()) {
    throw Error(ErrorCategory::kInput, std::string("plan axes: field '") + key + "' missing");
  }
  return j.at(key).get<std::vector<double>>();
}

}  // namespace

source::Dataset open_job_dataset(const JobSpec& spec, bool wait) {
  if (spec.datasets.empty()) throw Error(ErrorCategory::kConfig, "job has no dataset");
  source::OpenOptions options;
  options.dataset_path = spec.dataset_path;
  if (spec.follow_timeout_s) {
    options.follow = true;
    options.idle_timeout_s = wait ? *spec.follow_timeout_s : 0;
  }
  if (spec.datasets.size() == 1) return source::Dataset::open(spec.datasets.front(), options);
  std::vector<std::filesystem::path> files(spec.datasets.begin(), spec.datasets.end());
  return source::Dataset::open_files(files, options);
}

namespace {

std::vector<std::uint32_t> read_stream_pixel_mask(const std::string& path, std::size_t pixels) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::uint32_t> mask(pixels);
  in.read(reinterpret_cast<char*>(mask.data()),
          static_cast<std::streamsize>(pixels * sizeof(std::uint32_t)));
  if (!in || in.peek() != std::char_traits<char>::eof()) {
    throw Error(ErrorCategory::kIo, "stream pixel mask " + path + ": cannot be read or is not " +
                                        std::to_string(pixels) + " uint32 values");
  }
  return mask;
}

}  // namespace

source::DatasetInfo job_input_info(const JobSpec& spec) {
  if (!spec.stream) return open_job_dataset(spec).info();
  if (!spec.stream->series) {
    throw Error(ErrorCategory::kConfig, "stream job: no start message received yet");
  }
  const StreamSeries& s = *spec.stream->series;
  source::DatasetInfo info;
  info.path = spec.stream->endpoint;
  info.dataset = "series " + std::to_string(s.series_id);
  info.frames = s.images;
  info.rows = s.rows;
  info.cols = s.cols;
  info.dtype = s.dtype;
  if (!s.pixel_mask_path.empty()) {
    info.pixel_mask = read_stream_pixel_mask(s.pixel_mask_path, s.rows * s.cols);
  }
  return info;
}

void write_stream_pixel_mask(const std::string& path, std::span<const std::uint32_t> mask) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw Error(ErrorCategory::kIo, "cannot create " + path + ": " + std::strerror(errno));
  }
  const auto* bytes = reinterpret_cast<const char*>(mask.data());
  std::size_t left = mask.size_bytes();
  while (left > 0) {
    const ssize_t n = ::write(fd, bytes, left);
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      throw Error(ErrorCategory::kIo, "cannot write " + path + ": " + std::strerror(err));
    }
    bytes += n;
    left -= static_cast<std::size_t>(n);
  }
  ::close(fd);
}

integrate::Poni job_poni(const JobSpec& spec) {
  return integrate::parse_poni(spec.poni_text, spec.poni_path.empty() ? "poni" : spec.poni_path);
}

integrate::Poni job_poni(const JobSpec& spec, const source::DatasetInfo& info) {
  return integrate::fit_to_frames(job_poni(spec), info.rows, info.cols);
}

reduce::PlanResult make_job_plan(const JobSpec& spec, const source::DatasetInfo& info,
                                 integrate::PlanCache* cache) {
  const integrate::Poni poni = job_poni(spec, info);
  integrate::check_frame_shape(poni, info.rows, info.cols,
                               info.path.string() + " (" + info.dataset + ")", spec.poni_path);
  for (const auto& [field, image] :
       {std::pair{"spec.mask_path", &spec.mask_path}, std::pair{"spec.dark_path", &spec.dark_path},
        std::pair{"spec.flat_path", &spec.flat_path}}) {
    if (!image->empty()) source::check_input_tree(image->substr(0, image->find("::")), field);
  }
  const reduce::PlanRequest request{
      poni,
      info.rows,
      info.cols,
      spec.settings_for(info.dtype),
      spec.use_file_mask && info.pixel_mask ? &*info.pixel_mask : nullptr,
      {spec.mask_path, spec.dark_path, spec.flat_path}};
  return reduce::make_plan(request, cache);
}

std::shared_ptr<const integrate::Plan> build_job_plan(const JobSpec& spec,
                                                      const source::DatasetInfo& info,
                                                      integrate::PlanCache* cache) {
  return make_job_plan(spec, info, cache).plan;
}

nlohmann::json plan_axes_json(const integrate::Plan& plan) {
  return {{"unit", std::string(integrate::unit_name(plan.settings().unit))},
          {"radial_centers", plan.radial_centers()},
          {"radial_edges", plan.radial_edges()},
          {"azimuthal_centers", plan.azimuthal_centers()},
          {"azimuthal_edges", plan.azimuthal_edges()},
          {"azimuthal_unit",
           std::string(integrate::azimuthal_unit_name(plan.settings().azimuthal_unit))},
          {"with_errors", plan.settings().error_model != integrate::ErrorModel::kNone},
          {"with_clip_stats", plan.settings().sigma_clip.has_value()},
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
  const auto azimuthal_unit =
      integrate::parse_azimuthal_unit(axes.value("azimuthal_unit", std::string("chi_deg")));
  if (!azimuthal_unit)
    throw Error(ErrorCategory::kInput, "plan axes: field 'azimuthal_unit' unknown");
  layout.azimuthal_unit = *azimuthal_unit;
  layout.with_errors = axes.value("with_errors", false);
  layout.with_clip_stats = axes.value("with_clip_stats", false);
  return layout;
}

std::string plan_cache_key(const JobSpec& spec, const source::DatasetInfo& info) {
  nlohmann::json j = to_json(spec);
  // what only says where frames come from or where results go (a stream job's mask, the one of
  // its series, is in `info` and hashed below)
  for (const char* unrelated : {"datasets", "output_path", "mode", "poni_path", "frames", "follow",
                                "stream", "format", "overwrite", "nodes", "dataset_path"}) {
    j.erase(unrelated);
  }
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
