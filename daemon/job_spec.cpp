#include "daemon/job_spec.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <limits>

#include "stages/integrate/method.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/integrate/units.hpp"

namespace azflow::daemon {

namespace {

using nlohmann::json;

/// Typed access to the fields of one JSON object; errors name "<prefix><key>".
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string prefix)
      : object_(object), prefix_(std::move(prefix)) {
    if (!object_.is_object()) {
      const std::string field = prefix_.empty() ? "" : prefix_.substr(0, prefix_.size() - 1);
      throw FieldError(field, std::string("expected an object, got ") + object_.type_name());
    }
  }

  void reject_unknown(std::initializer_list<std::string_view> known) const {
    for (const auto& [key, value] : object_.items()) {
      if (std::find(known.begin(), known.end(), key) == known.end()) fail(key, "unknown field");
    }
  }

  [[nodiscard]] const json* find(std::string_view key) const {
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }

  void read(std::string_view key, std::string& out) const {
    if (const json* v = find(key)) out = as_string(*v, field(key));
  }

  void read(std::string_view key, bool& out) const {
    const json* v = find(key);
    if (v == nullptr) return;
    if (!v->is_boolean()) fail(key, std::string("expected a boolean, got ") + v->type_name());
    out = v->get<bool>();
  }

  void read(std::string_view key, std::size_t& out) const {
    const json* v = find(key);
    if (v == nullptr) return;
    // A JSON parser gives 100 as unsigned, but json{{"npt", 100}} built in C++ holds a signed
    // integer: accept either when it is >= 0.
    const bool non_negative =
        v->is_number_unsigned() || (v->is_number_integer() && v->get<std::int64_t>() >= 0);
    if (!non_negative) {
      fail(key, std::string("expected an integer >= 0, got ") + describe_value(*v));
    }
    out = v->is_number_unsigned() ? v->get<std::size_t>()
                                  : static_cast<std::size_t>(v->get<std::int64_t>());
  }

  void read(std::string_view key, double& out) const {
    const json* v = find(key);
    if (v == nullptr) return;
    if (!v->is_number()) fail(key, std::string("expected a number, got ") + v->type_name());
    out = v->get<double>();
  }

  /// null or absent -> nullopt; a number -> its value.
  void read(std::string_view key, std::optional<double>& out) const {
    const json* v = find(key);
    if (v == nullptr || v->is_null()) return;
    if (!v->is_number()) fail(key, std::string("expected a number or null, got ") + v->type_name());
    out = v->get<double>();
  }

  /// null or absent -> nullopt; [A, B] -> the pair.
  void read(std::string_view key, std::optional<std::pair<double, double>>& out) const {
    const json* v = find(key);
    if (v == nullptr || v->is_null()) return;
    if (!v->is_array() || v->size() != 2 || !(*v)[0].is_number() || !(*v)[1].is_number()) {
      fail(key, "expected [low, high] (two numbers) or null");
    }
    out = std::pair((*v)[0].get<double>(), (*v)[1].get<double>());
  }

  [[noreturn]] void fail(std::string_view key, const std::string& message) const {
    throw FieldError(field(key), message);
  }

  [[nodiscard]] std::string field(std::string_view key) const { return prefix_ + std::string(key); }

  static std::string as_string(const json& v, const std::string& field) {
    if (!v.is_string())
      throw FieldError(field, std::string("expected a string, got ") + v.type_name());
    return v.get<std::string>();
  }

 private:
  static std::string describe_value(const json& v) {
    return v.is_number_integer() ? "negative " + v.dump() : std::string(v.type_name());
  }

  const json& object_;
  std::string prefix_;
};

template <typename Enum>
Enum parse_enum(const ObjectReader& r, std::string_view key, const std::string& text,
                std::optional<Enum> value, std::string_view allowed) {
  if (!value) r.fail(key, "unknown value '" + text + "' (expected " + std::string(allowed) + ")");
  return *value;
}

void read_dummy(const ObjectReader& r, JobSpec& spec) {
  const json* v = r.find("dummy");
  if (v == nullptr || (v->is_string() && v->get<std::string>() == "auto")) {
    spec.dummy_auto = true;
    spec.settings.dummy.reset();
    return;
  }
  spec.dummy_auto = false;
  if (v->is_null()) return;
  if (!v->is_number()) r.fail("dummy", "expected a number, null (no dummy) or \"auto\"");
  spec.settings.dummy = v->get<double>();
}

/// "sigma_clip": null (none) or {"thres": 5, "max_iter": 5} (either may be left out); with it an
/// error_model "none" becomes "poisson", as pyFAI's sigma_clip_ng falls back to.
void read_sigma_clip(const ObjectReader& r, integrate::IntegrationSettings& s) {
  const json* v = r.find("sigma_clip");
  if (v == nullptr || v->is_null()) {
    s.sigma_clip.reset();
    return;
  }
  if (!v->is_object()) r.fail("sigma_clip", "expected null or an object {thres, max_iter}");
  const ObjectReader clip(*v, r.field("sigma_clip") + ".");
  clip.reject_unknown({"thres", "max_iter"});
  integrate::SigmaClip c;
  clip.read("thres", c.thres);
  clip.read("max_iter", c.max_iter);
  s.sigma_clip = c;
  if (s.error_model == integrate::ErrorModel::kNone)
    s.error_model = integrate::ErrorModel::kPoisson;
}

/// Runs IntegrationSettings::validate() and names the failing field in the request's terms.
void validate_settings(const integrate::IntegrationSettings& s, const std::string& prefix) {
  try {
    s.validate();
  } catch (const Error& e) {
    // validate() says "integration setting 'NAME': why".
    const std::string what = e.what();
    const std::size_t open = what.find('\'');
    const std::size_t close = open == std::string::npos ? open : what.find('\'', open + 1);
    std::string name = close == std::string::npos ? "" : what.substr(open + 1, close - open - 1);
    if (name == "npt") name = "npt_rad";
    if (name == "azimuth_range") name = "azimuth_range_deg";
    if (name == "thres" || name == "max_iter") name = "sigma_clip." + name;
    const std::string why = close == std::string::npos ? what : what.substr(close + 3);
    throw FieldError(prefix + name, why);
  }
}

integrate::IntegrationSettings read_settings(const json& j, const std::string& prefix,
                                             JobSpec& spec) {
  const ObjectReader r(j, prefix);
  r.reject_unknown({"unit", "npt_rad", "npt_azim", "split", "method", "radial_range",
                    "azimuth_range_deg", "azimuthal_unit", "correct_solid_angle",
                    "polarization_factor", "dummy", "delta_dummy", "normalization_factor",
                    "error_model", "sigma_clip"});
  integrate::IntegrationSettings& s = spec.settings;
  std::string unit(integrate::unit_name(s.unit)), split(integrate::split_name(s.split)),
      model(integrate::error_model_name(s.error_model));
  r.read("unit", unit);
  s.unit = parse_enum(r, "unit", unit, integrate::parse_radial_unit(unit),
                      "q_nm^-1, q_A^-1, 2th_deg, 2th_rad or r_mm");
  r.read("split", split);
  s.split = parse_enum(r, "split", split, integrate::parse_split(split), "no, bbox or full");
  if (std::string method; r.find("method") != nullptr) {  // a pyFAI name: overrides split
    r.read("method", method);
    try {
      s.split = integrate::parse_method(method, "").split;
    } catch (const Error& e) {
      r.fail("method", e.what());
    }
  }
  r.read("error_model", model);
  s.error_model = parse_enum(r, "error_model", model, integrate::parse_error_model(model),
                             "none, poisson or azimuthal");
  r.read("npt_rad", s.npt_rad);
  r.read("npt_azim", s.npt_azim);
  r.read("radial_range", s.radial_range);
  r.read("azimuth_range_deg", s.azimuth_range_deg);
  std::string azimuthal_unit(integrate::azimuthal_unit_name(s.azimuthal_unit));
  r.read("azimuthal_unit", azimuthal_unit);
  s.azimuthal_unit =
      parse_enum(r, "azimuthal_unit", azimuthal_unit,
                 integrate::parse_azimuthal_unit(azimuthal_unit), "chi_deg or chi_rad");
  r.read("correct_solid_angle", s.correct_solid_angle);
  r.read("polarization_factor", s.polarization_factor);
  read_dummy(r, spec);
  r.read("delta_dummy", s.delta_dummy);
  r.read("normalization_factor", s.normalization_factor);
  read_sigma_clip(r, s);
  if (s.delta_dummy && !s.dummy && !spec.dummy_auto) r.fail("delta_dummy", "given without dummy");
  integrate::IntegrationSettings check = s;
  if (spec.dummy_auto && check.delta_dummy) check.dummy = 0.0;  // delta_dummy alone is fine here
  validate_settings(check, prefix);
  return s;
}

void require_absolute(const std::string& path, const std::string& field) {
  if (path.empty()) return;
  // Image specs may carry "::/dataset" after the file name.
  const std::string file = path.substr(0, path.find("::"));
  if (!std::filesystem::path(file).is_absolute()) {
    throw FieldError(field, "'" + path + "' is not an absolute path");
  }
}

void read_datasets(const ObjectReader& r, JobSpec& spec) {
  const json* v = r.find("datasets");
  const bool stream = r.find("stream") != nullptr && !r.find("stream")->is_null();
  if (stream) {
    if (v != nullptr && !(v->is_array() && v->empty())) {
      r.fail("datasets", "a stream job reads no files: give datasets [] or leave it out");
    }
    return;
  }
  if (v == nullptr) r.fail("datasets", "required (a list of absolute HDF5 file paths)");
  if (!v->is_array() || v->empty()) r.fail("datasets", "expected a non-empty list of strings");
  spec.datasets.clear();
  for (std::size_t i = 0; i < v->size(); ++i) {
    const std::string field = r.field("datasets") + "[" + std::to_string(i) + "]";
    std::string path = ObjectReader::as_string((*v)[i], field);
    if (path.empty()) throw FieldError(field, "empty path");
    require_absolute(path, field);
    spec.datasets.push_back(std::move(path));
  }
}

void read_poni(const ObjectReader& r, JobSpec& spec) {
  r.read("poni_text", spec.poni_text);
  r.read("poni_path", spec.poni_path);
  const bool stream = r.find("stream") != nullptr && !r.find("stream")->is_null();
  if (spec.poni_text.empty() && spec.poni_path.empty() && !stream) {
    r.fail("poni_text", "required (the PONI file's contents; or poni_path)");
  }
  require_absolute(spec.poni_path, r.field("poni_path"));
  if (spec.poni_text.empty()) return;
  try {
    (void)integrate::parse_poni(spec.poni_text,
                                spec.poni_path.empty() ? "poni_text" : spec.poni_path);
  } catch (const Error& e) {
    r.fail("poni_text", e.what());
  }
}

void read_format(const ObjectReader& r, JobSpec& spec) {
  std::string name(reduce::output_format_name(spec.format));
  r.read("format", name);
  const auto format = reduce::parse_output_format(name);
  if (!format) {
    r.fail("format", "unknown value '" + name + "' (expected " +
                         std::string(reduce::kOutputFormatChoices) + ")");
  }
  if (!reduce::format_supports(*format, spec.settings.npt_azim)) {
    r.fail("format", "'" + name + "' holds 1D results only, but settings.npt_azim is " +
                         std::to_string(spec.settings.npt_azim) + " (use nexus or nxazint)");
  }
  spec.format = *format;
}

void read_mode(const ObjectReader& r, JobSpec& spec) {
  std::string mode(mode_name(spec.mode));
  r.read("mode", mode);
  if (mode == "split") {
    spec.mode = JobSpec::Mode::kSplit;
  } else if (mode == "bulk") {
    spec.mode = JobSpec::Mode::kBulk;
  } else {
    r.fail("mode", "unknown value '" + mode + "' (expected split or bulk)");
  }
}

bool valid_node_name(const std::string& n) {
  return !n.empty() && n.size() <= 64 && std::all_of(n.begin(), n.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
  });
}

void read_nodes(const ObjectReader& r, JobSpec& spec) {
  const json* v = r.find("nodes");
  if (v == nullptr || v->is_null()) return;
  NodeSelection& n = spec.nodes;
  if (v->is_string() && (v->get<std::string>() == "all" || v->get<std::string>() == "local")) {
    n.kind =
        v->get<std::string>() == "all" ? NodeSelection::Kind::kAll : NodeSelection::Kind::kLocal;
  } else if (v->is_number_unsigned() && v->get<std::size_t>() >= 1) {
    n.kind = NodeSelection::Kind::kCount;
    n.count = v->get<std::size_t>();
  } else if (v->is_array() && !v->empty()) {
    n.kind = NodeSelection::Kind::kNames;
    for (const json& name : *v) {
      if (!name.is_string() || !valid_node_name(name.get<std::string>())) {
        r.fail("nodes", "expected node names of [A-Za-z0-9._-], got " + name.dump());
      }
      n.names.push_back(name.get<std::string>());
    }
  } else {
    r.fail("nodes", "expected \"all\", an integer >= 1 or a list of node names, got " + v->dump());
  }
  if (n.kind != NodeSelection::Kind::kLocal && spec.mode != JobSpec::Mode::kSplit) {
    r.fail("nodes", "only split jobs are shared across nodes");
  }
}

void read_frames(const ObjectReader& r, JobSpec& spec) {
  const json* v = r.find("frames");
  if (v == nullptr || v->is_null()) return;
  const ObjectReader f(*v, r.field("frames") + ".");
  f.reject_unknown({"first", "last"});
  FrameSlice slice;
  f.read("first", slice.first);
  if (const json* last = f.find("last"); last != nullptr && !last->is_null()) {
    std::size_t value = 0;
    f.read("last", value);
    if (value <= slice.first) {
      r.fail("frames", "range " + std::to_string(slice.first) + ":" + std::to_string(value) +
                           " is empty (\"last\" is exclusive and must exceed \"first\")");
    }
    slice.last = value;
  }
  spec.frames = slice;
}

/// "follow": null/absent = off, {"idle_timeout_s": S} (S > 0, default 30) = follow mode; a
/// follow job runs on this node only (nodes local).
void read_follow(const ObjectReader& r, JobSpec& spec) {
  const json* v = r.find("follow");
  if (v == nullptr || v->is_null()) return;
  const ObjectReader f(*v, r.field("follow") + ".");
  f.reject_unknown({"idle_timeout_s"});
  double timeout_s = kDefaultFollowTimeout_s;
  f.read("idle_timeout_s", timeout_s);
  if (!(timeout_s > 0) || timeout_s > 86400) {
    f.fail("idle_timeout_s", "must be > 0 and at most 86400 s, got " + std::to_string(timeout_s));
  }
  if (spec.nodes.kind != NodeSelection::Kind::kLocal) {
    r.fail("follow", "a follow job runs on this node only: drop \"nodes\"");
  }
  spec.follow_timeout_s = timeout_s;
}

/// "stream": null/absent = a file job; {"endpoint", "format", "channel", "idle_timeout_s",
/// "max_frame_mib", "save_raw", "series"} = a stream job (local only, no frames, follow or
/// dataset_path).
void read_stream(const ObjectReader& r, JobSpec& spec) {
  const json* v = r.find("stream");
  if (v == nullptr || v->is_null()) return;
  const ObjectReader f(*v, r.field("stream") + ".");
  f.reject_unknown(
      {"endpoint", "format", "channel", "idle_timeout_s", "max_frame_mib", "save_raw", "series"});
  StreamSpec s;
  f.read("endpoint", s.endpoint);
  if (s.endpoint.empty()) f.fail("endpoint", "required (the detector's ZeroMQ endpoint)");
  if (!s.endpoint.starts_with("tcp://") && !s.endpoint.starts_with("ipc://")) {
    f.fail("endpoint", "expected a tcp:// or ipc:// endpoint, got '" + s.endpoint + "'");
  }
  f.read("format", s.format);
  if (s.format != "stream2" && s.format != "v1") {
    f.fail("format", "unknown value '" + s.format + "' (expected stream2 or v1)");
  }
  f.read("channel", s.channel);
  f.read("idle_timeout_s", s.idle_timeout_s);
  if (!(s.idle_timeout_s > 0) || s.idle_timeout_s > 86400) {
    f.fail("idle_timeout_s", "must be > 0 and at most 86400 s");
  }
  f.read("max_frame_mib", s.max_frame_mib);
  if (s.max_frame_mib == 0 || s.max_frame_mib > 4096) {
    f.fail("max_frame_mib", "must be 1 to 4096 MiB");
  }
  f.read("save_raw", s.save_raw);
  require_absolute(s.save_raw, f.field("save_raw"));
  if (const json* series = f.find("series"); series != nullptr && !series->is_null()) {
    s.series = stream_series_from_json(*series, f.field("series") + ".");
  }
  if (spec.nodes.kind != NodeSelection::Kind::kLocal) {
    r.fail("stream", "a stream job runs on this node only: drop \"nodes\"");
  }
  if (spec.frames) r.fail("frames", "does not apply to a stream job (it takes the whole series)");
  if (spec.follow_timeout_s) r.fail("follow", "does not apply to a stream job");
  if (!spec.dataset_path.empty()) r.fail("dataset_path", "does not apply to a stream job");
  spec.stream = std::move(s);
}

json frames_json(const std::optional<FrameSlice>& frames) {
  if (!frames) return nullptr;
  return json{{"first", frames->first},
              {"last", frames->last ? json(*frames->last) : json(nullptr)}};
}

json optional_json(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json range_json(const std::optional<std::pair<double, double>>& r) {
  return r ? json::array({r->first, r->second}) : json(nullptr);
}

json settings_to_json(const JobSpec& spec) {
  const integrate::IntegrationSettings& s = spec.settings;
  return json{{"unit", std::string(integrate::unit_name(s.unit))},
              {"npt_rad", s.npt_rad},
              {"npt_azim", s.npt_azim},
              {"split", std::string(integrate::split_name(s.split))},
              {"radial_range", range_json(s.radial_range)},
              {"azimuth_range_deg", range_json(s.azimuth_range_deg)},
              {"azimuthal_unit", std::string(integrate::azimuthal_unit_name(s.azimuthal_unit))},
              {"correct_solid_angle", s.correct_solid_angle},
              {"polarization_factor", optional_json(s.polarization_factor)},
              {"dummy", spec.dummy_auto ? json("auto") : optional_json(s.dummy)},
              {"delta_dummy", optional_json(s.delta_dummy)},
              {"normalization_factor", s.normalization_factor},
              {"error_model", std::string(integrate::error_model_name(s.error_model))},
              {"sigma_clip", s.sigma_clip ? json{{"thres", s.sigma_clip->thres},
                                                 {"max_iter", s.sigma_clip->max_iter}}
                                          : json(nullptr)}};
}

}  // namespace

integrate::IntegrationSettings JobSpec::settings_for(DType dtype) const {
  integrate::IntegrationSettings s = settings;
  if (dummy_auto) {
    s.dummy = default_dummy(dtype);
    if (!s.dummy) s.delta_dummy.reset();
  }
  return s;
}

std::string_view mode_name(JobSpec::Mode mode) noexcept {
  return mode == JobSpec::Mode::kBulk ? "bulk" : "split";
}

nlohmann::json to_json(const JobSpec& spec) {
  return json{
      {"datasets", spec.datasets},
      {"dataset_path", spec.dataset_path},
      {"poni_text", spec.poni_text},
      {"poni_path", spec.poni_path},
      {"settings", settings_to_json(spec)},
      {"mask_path", spec.mask_path},
      {"dark_path", spec.dark_path},
      {"flat_path", spec.flat_path},
      {"use_file_mask", spec.use_file_mask},
      {"output_path", spec.output_path},
      {"overwrite", spec.overwrite},
      {"format", std::string(reduce::output_format_name(spec.format))},
      {"mode", std::string(mode_name(spec.mode))},
      {"nodes", to_json(spec.nodes)},
      {"frames", frames_json(spec.frames)},
      {"follow",
       spec.follow_timeout_s ? json{{"idle_timeout_s", *spec.follow_timeout_s}} : json(nullptr)},
      {"stream", spec.stream ? json{{"endpoint", spec.stream->endpoint},
                                    {"format", spec.stream->format},
                                    {"channel", spec.stream->channel},
                                    {"idle_timeout_s", spec.stream->idle_timeout_s},
                                    {"max_frame_mib", spec.stream->max_frame_mib},
                                    {"save_raw", spec.stream->save_raw},
                                    {"series", spec.stream->series ? to_json(*spec.stream->series)
                                                                   : json(nullptr)}}
                             : json(nullptr)}};
}

nlohmann::json to_json(const StreamSeries& s) {
  return json{{"series_id", s.series_id},
              {"series_unique_id", s.series_unique_id},
              {"rows", s.rows},
              {"cols", s.cols},
              {"dtype", std::string(dtype_name(s.dtype))},
              {"images", s.images},
              {"pixel_mask_path", s.pixel_mask_path},
              {"geometry_from_start", s.geometry_from_start}};
}

StreamSeries stream_series_from_json(const nlohmann::json& j, std::string_view prefix) {
  const ObjectReader r(j, std::string(prefix));
  r.reject_unknown({"series_id", "series_unique_id", "rows", "cols", "dtype", "images",
                    "pixel_mask_path", "geometry_from_start"});
  StreamSeries s;
  std::size_t id = 0;
  r.read("series_id", id);
  s.series_id = id;
  r.read("series_unique_id", s.series_unique_id);
  r.read("rows", s.rows);
  r.read("cols", s.cols);
  r.read("images", s.images);
  std::string dtype = "uint32";
  r.read("dtype", dtype);
  const auto t = dtype_from_name(dtype);
  if (!t) r.fail("dtype", "unknown dtype '" + dtype + "'");
  s.dtype = *t;
  r.read("pixel_mask_path", s.pixel_mask_path);
  require_absolute(s.pixel_mask_path, r.field("pixel_mask_path"));
  r.read("geometry_from_start", s.geometry_from_start);
  if (s.rows == 0 || s.cols == 0 || s.images == 0) {
    r.fail("images", "rows, cols and images must be > 0");
  }
  return s;
}

nlohmann::json to_json(const NodeSelection& nodes) {
  switch (nodes.kind) {
    case NodeSelection::Kind::kAll:
      return "all";
    case NodeSelection::Kind::kCount:
      return nodes.count;
    case NodeSelection::Kind::kNames:
      return nodes.names;
    case NodeSelection::Kind::kLocal:
      break;
  }
  return nullptr;
}

NodeSelection parse_node_selection(std::string_view text) {
  json value;
  if (text == "all" || text == "local") {
    value = std::string(text);
  } else if (!text.empty() &&
             std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    value = std::stoull(std::string(text));
  } else {
    value = json::array();
    std::size_t start = 0;
    while (start <= text.size()) {
      const std::size_t end = std::min(text.find(',', start), text.size());
      value.push_back(std::string(text.substr(start, end - start)));
      start = end + 1;
    }
  }
  JobSpec spec;
  read_nodes(ObjectReader(json{{"nodes", value}}, ""), spec);
  return spec.nodes;
}

JobSpec job_spec_from_json(const nlohmann::json& j, std::string_view prefix) {
  const ObjectReader r(j, std::string(prefix));
  r.reject_unknown({"datasets", "dataset_path", "poni_text", "poni_path", "settings", "mask_path",
                    "dark_path", "flat_path", "use_file_mask", "output_path", "format", "mode",
                    "nodes", "overwrite", "frames", "follow", "stream"});
  JobSpec spec;
  read_datasets(r, spec);
  r.read("dataset_path", spec.dataset_path);
  read_poni(r, spec);
  if (const json* s = r.find("settings")) {
    read_settings(*s, r.field("settings") + ".", spec);
  } else {
    validate_settings(spec.settings, r.field("settings."));
  }
  for (const auto& [key, target] :
       {std::pair{"mask_path", &spec.mask_path}, std::pair{"dark_path", &spec.dark_path},
        std::pair{"flat_path", &spec.flat_path}, std::pair{"output_path", &spec.output_path}}) {
    r.read(key, *target);
    require_absolute(*target, r.field(key));
  }
  r.read("use_file_mask", spec.use_file_mask);
  r.read("overwrite", spec.overwrite);
  read_format(r, spec);
  read_mode(r, spec);
  read_nodes(r, spec);
  read_frames(r, spec);
  read_follow(r, spec);
  read_stream(r, spec);
  return spec;
}

}  // namespace azflow::daemon
