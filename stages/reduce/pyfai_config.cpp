#include "stages/reduce/pyfai_config.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/integrate/units.hpp"

namespace azflow::reduce {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

/// The keys of one pyFAI config with typed access; every read marks its key as used, and every
/// error names the file and the key.
class Config {
 public:
  Config(json object, fs::path file) : object_(std::move(object)), file_(std::move(file)) {}

  [[nodiscard]] const fs::path& file() const noexcept { return file_; }
  [[nodiscard]] fs::path dir() const { return file_.parent_path(); }

  [[noreturn]] void fail(std::string_view key, const std::string& why) const {
    throw Error(ErrorCategory::kConfig,
                "pyFAI config " + file_.string() + ": key '" + std::string(key) + "': " + why);
  }

  /// The value of `key`, or nullptr if absent. null values are returned as they are.
  const json* get(std::string_view key) {
    used_.insert(std::string(key));
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }

  [[nodiscard]] bool has(std::string_view key) const { return object_.contains(key); }

  /// A boolean switch (pyFAI also writes 0/1); absent or null -> `fallback`.
  bool flag(std::string_view key, bool fallback) {
    const json* v = get(key);
    if (v == nullptr || v->is_null()) return fallback;
    if (v->is_boolean()) return v->get<bool>();
    if (v->is_number_integer() && (v->get<long long>() == 0 || v->get<long long>() == 1)) {
      return v->get<long long>() == 1;
    }
    fail(key, "expected true or false, got " + v->dump());
  }

  /// A number; absent or null -> nullopt.
  std::optional<double> number(std::string_view key) {
    const json* v = get(key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    if (!v->is_number()) fail(key, "expected a number, got " + v->dump());
    return v->get<double>();
  }

  /// A non-negative integer (pyFAI writes 500 or 500.0); absent or null -> nullopt.
  std::optional<std::size_t> count(std::string_view key) {
    const std::optional<double> v = number(key);
    if (!v) return std::nullopt;
    if (*v < 0 || *v != static_cast<double>(static_cast<std::size_t>(*v))) {
      fail(key, "expected a whole number >= 0, got " + get(key)->dump());
    }
    return static_cast<std::size_t>(*v);
  }

  /// A string; absent or null -> nullopt.
  std::optional<std::string> text(std::string_view key) {
    const json* v = get(key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    if (!v->is_string()) fail(key, "expected a string, got " + v->dump());
    return v->get<std::string>();
  }

  /// Renames key `from` to `to` when `to` is absent (pyFAI's _patch_v4_to_v5).
  void rename(std::string_view from, std::string_view to) {
    const std::string f(from), t(to);
    if (!object_.contains(f) || object_.contains(t)) return;
    object_[t] = object_[f];
    object_.erase(f);
  }

  /// Keys present in the file that no reader asked for.
  [[nodiscard]] std::vector<std::string> unused() const {
    std::vector<std::string> out;
    for (const auto& [key, value] : object_.items()) {
      if (!used_.contains(key)) out.push_back(key);
    }
    return out;
  }

 private:
  json object_;
  fs::path file_;
  std::set<std::string, std::less<>> used_;
};

/// A file named in the config: relative names are taken relative to the JSON file's directory.
/// A "::/dataset" suffix (fabio's and azflow's HDF5 notation) is kept as it is.
std::string resolve(const Config& c, const std::string& name) {
  const std::size_t sep = name.find("::");
  const std::string file = name.substr(0, sep);
  const std::string suffix = sep == std::string::npos ? "" : name.substr(sep);
  fs::path p(file);
  if (p.is_relative()) p = c.dir() / p;
  return p.lexically_normal().string() + suffix;
}

/// One image file for the dark or flat (pyFAI: a list, or a comma-separated string in version 1
/// files, averaged by pyFAI). "" when absent, null, empty or switched off by `switch_key`.
std::string single_image(Config& c, std::string_view key, std::string_view switch_key) {
  const bool apply = c.flag(switch_key, true);
  const json* v = c.get(key);
  if (v == nullptr || v->is_null()) return "";
  std::vector<std::string> names;
  if (v->is_string()) {
    std::stringstream in(v->get<std::string>());
    std::string part;
    while (std::getline(in, part, ',')) {
      const auto b = part.find_first_not_of(" \t");
      const auto e = part.find_last_not_of(" \t");
      if (b != std::string::npos) names.push_back(part.substr(b, e - b + 1));
    }
  } else if (v->is_array()) {
    for (const json& item : *v) {
      if (!item.is_string()) c.fail(key, "expected file names, got " + item.dump());
      if (!item.get<std::string>().empty()) names.push_back(item.get<std::string>());
    }
  } else {
    c.fail(key, "expected a file name or a list of file names, got " + v->dump());
  }
  if (names.empty() || !apply) return "";
  if (names.size() > 1) {
    c.fail(key, std::to_string(names.size()) +
                    " files, which pyFAI averages; azflow takes one image: average them first "
                    "(e.g. with pyFAI-average) and name the result");
  }
  return resolve(c, names.front());
}

/// A range from RANGE: [a, b] or RANGE_min / RANGE_max, applied unless `switch_key` is false.
std::optional<std::pair<double, double>> read_range(
    Config& c, std::string_view base, std::initializer_list<std::string_view> switches) {
  bool apply = true;
  for (std::string_view s : switches) {
    if (c.has(s)) apply = apply && c.flag(s, true);
  }
  const std::string name(base);
  std::optional<double> lo = c.number(name + "_min"), hi = c.number(name + "_max");
  if (const json* v = c.get(name); v != nullptr && !v->is_null()) {
    if (!v->is_array() || v->size() != 2 || !(*v)[0].is_number() || !(*v)[1].is_number()) {
      c.fail(name, "expected [min, max] or null, got " + v->dump());
    }
    if (lo || hi) c.fail(name, "given together with " + name + "_min/" + name + "_max");
    lo = (*v)[0].get<double>();
    hi = (*v)[1].get<double>();
  }
  if (!apply || !lo || !hi) return std::nullopt;
  // pyFAI's Worker takes min() and max() of the two values.
  return std::pair(std::min(*lo, *hi), std::max(*lo, *hi));
}

/// The pixel splitting of a pyFAI method, as pyFAI 0.21 resolves it
/// (method_registry.Method.parsed for names, then AzimuthalIntegrator._normalize_method for a
/// split of "*": LUT and OpenCL methods resolve to bbox, the others to no splitting).
integrate::PixelSplit split_of_method(Config& c, bool legacy_v1) {
  const json* v = c.get("method");
  (void)c.flag("do_OpenCL", false);  // only the implementation (with no method: see below)
  std::string split = "*", algo = "*", impl = "*";
  if (v == nullptr || v->is_null()) {
    // version 1 files default to "splitbbox" (or "csr_ocl" with do_OpenCL); later ones to "csr"
    if (legacy_v1) return integrate::PixelSplit::kBBox;
    algo = "csr";
  } else if (v->is_string()) {
    const std::string name = lower(v->get<std::string>());
    // Legacy full / pseudo splitting names, which 0.21's Method.parsed reads as no splitting
    if ((name.find("splitpix") != std::string::npos && name.find("full") == std::string::npos) ||
        name.find("pseudo") != std::string::npos) {
      c.fail("method", "'" + v->get<std::string>() +
                           "' is an old name of full or pseudo splitting, which pyFAI 0.21's "
                           "Worker reads as no splitting; write the splitting out (e.g. method "
                           "[\"full\", \"csr\", \"cython\"] or [\"no\", \"csr\", \"cython\"])");
    }
    if (name.find("lut") != std::string::npos) algo = "lut";
    if (name.find("csr") != std::string::npos) algo = "csr";
    if (name.find("ocl") != std::string::npos) impl = "opencl";
    if (name.find("bbox") != std::string::npos) {
      split = "bbox";
    } else if (name.find("full") != std::string::npos) {
      split = "full";
    } else if (name.find("no") != std::string::npos) {
      split = "no";
    }
  } else if (v->is_array() && (v->size() == 3 || v->size() == 5)) {
    // [split, algo, impl] (version 3) or a serialized Method (dim, split, algo, impl, target)
    const std::size_t first = v->size() == 5 ? 1 : 0;
    std::string parts[3];
    for (std::size_t i = 0; i < 3; ++i) {
      const json& p = (*v)[first + i];
      if (p.is_null()) {
        parts[i] = "*";
      } else if (p.is_string()) {
        parts[i] = lower(p.get<std::string>());
      } else {
        c.fail("method", "expected [split, algo, impl] strings, got " + v->dump());
      }
    }
    split = parts[0];
    algo = parts[1];
    impl = parts[2];
  } else {
    c.fail("method", "expected a method name or [split, algo, impl], got " + v->dump());
  }
  if (split == "pseudo") {
    c.fail("method", "split 'pseudo' is not supported (azflow does \"no\", \"bbox\" and \"full\")");
  }
  if (split == "full") return integrate::PixelSplit::kFull;
  if (split == "bbox") return integrate::PixelSplit::kBBox;
  if (split == "no") return integrate::PixelSplit::kNo;
  if (split != "*") c.fail("method", "unknown pixel splitting '" + split + "'");
  return algo == "lut" || impl == "opencl" ? integrate::PixelSplit::kBBox
                                           : integrate::PixelSplit::kNo;
}

/// Geometry: a `poni` file name or object, overridden by the top-level keys (as pyFAI's
/// version-1 migration does), as version-2 PONI text that parse_poni accepts.
struct GeometryOut {
  std::string poni_text, poni_path;
};

GeometryOut read_geometry(Config& c) {
  json fields = json::object();  // PONI keys: dist, poni1, ..., detector, detector_config
  std::string from_file;
  if (const json* p = c.get("poni"); p != nullptr && !p->is_null()) {
    if (p->is_string()) {
      from_file = resolve(c, p->get<std::string>());
      const integrate::Poni poni = integrate::read_poni(from_file);
      fields = {{"dist", poni.dist_m},
                {"poni1", poni.poni1_m},
                {"poni2", poni.poni2_m},
                {"rot1", poni.rot1_rad},
                {"rot2", poni.rot2_rad},
                {"rot3", poni.rot3_rad},
                {"detector", poni.detector.name},
                {"detector_config",
                 {{"pixel1", poni.detector.pixel1_m}, {"pixel2", poni.detector.pixel2_m}}}};
      if (poni.detector.rows > 0) {
        fields["detector_config"]["max_shape"] = {poni.detector.rows, poni.detector.cols};
      }
      if (poni.wavelength_m) fields["wavelength"] = *poni.wavelength_m;
    } else if (p->is_object()) {
      for (const auto& [key, value] : p->items()) {
        const std::string k = key == "distance" ? "dist" : key;
        if (k == "poni_version") continue;
        if (k != "dist" && k != "poni1" && k != "poni2" && k != "rot1" && k != "rot2" &&
            k != "rot3" && k != "wavelength" && k != "detector" && k != "detector_config") {
          c.fail("poni", "unknown geometry key '" + key + "'");
        }
        if (!value.is_null()) fields[k] = value;
      }
    } else {
      c.fail("poni", "expected a PONI file name or a geometry object, got " + p->dump());
    }
  }
  for (const char* key : {"dist", "poni1", "poni2", "rot1", "rot2", "rot3", "wavelength"}) {
    if (const std::optional<double> v = c.number(key)) fields[key] = *v;
  }
  if (const std::optional<std::string> spline = c.text("splineFile"); spline && !spline->empty()) {
    c.fail("splineFile", "a distortion spline, which azflow does not apply");
  }
  // Detector: a class name (+ detector_config), or bare pixel sizes (Worker.get_config()).
  if (const std::optional<std::string> name = c.text("detector")) {
    fields["detector"] = *name;
    fields["detector_config"] = json::object();
  }
  if (const json* cfg = c.get("detector_config"); cfg != nullptr && !cfg->is_null()) {
    if (!cfg->is_object()) c.fail("detector_config", "expected an object, got " + cfg->dump());
    fields["detector_config"] = *cfg;
  }
  const std::optional<double> pixel1 = c.number("pixel1"), pixel2 = c.number("pixel2");
  const json* shape = c.get("shape");
  if (!fields.contains("detector") && pixel1 && pixel2) {
    fields["detector"] = "Detector";
    fields["detector_config"] = {{"pixel1", *pixel1}, {"pixel2", *pixel2}};
    if (shape != nullptr && shape->is_array()) fields["detector_config"]["max_shape"] = *shape;
  }
  if (!fields.contains("detector")) {
    c.fail("detector", "no detector: give detector (and detector_config), pixel1/pixel2, or poni");
  }
  if (fields.contains("detector_config")) {
    for (const auto& [key, value] : fields["detector_config"].items()) {
      if (key == "splineFile" && !value.is_null()) {
        c.fail("detector_config", "a distortion spline, which azflow does not apply");
      }
      if (key == "orientation" && value != json(3)) {  // PONI 2.1: 3 is pyFAI's default
        c.fail("detector_config", "detector orientation " + value.dump() + " (azflow: 3 only)");
      }
      if (key != "pixel1" && key != "pixel2" && key != "max_shape" && key != "splineFile" &&
          key != "orientation") {
        c.fail("detector_config", "unsupported detector setting '" + key + "'");
      }
    }
  }
  for (const char* key : {"dist", "poni1", "poni2"}) {
    if (!fields.contains(key)) c.fail(key, "required (the geometry)");
  }
  std::ostringstream text;
  text.precision(17);
  text << "poni_version: 2\nDetector: " << fields["detector"].get<std::string>()
       << "\nDetector_config: " << fields.value("detector_config", json::object()).dump() << "\n";
  const std::pair<const char*, const char*> names[] = {
      {"dist", "Distance"}, {"poni1", "Poni1"}, {"poni2", "Poni2"},          {"rot1", "Rot1"},
      {"rot2", "Rot2"},     {"rot3", "Rot3"},   {"wavelength", "Wavelength"}};
  for (const auto& [key, poni_key] : names) {
    if (!fields.contains(key)) continue;
    if (!fields[key].is_number()) c.fail(key, "expected a number, got " + fields[key].dump());
    text << poni_key << ": " << fields[key].get<double>() << "\n";
  }
  integrate::Poni poni;
  try {
    poni = integrate::parse_poni(text.str(), c.file().string());
  } catch (const Error& e) {
    c.fail("detector", e.what());
  }
  return {integrate::format_poni(poni), from_file.empty() ? c.file().string() : from_file};
}

void read_error_model(Config& c, integrate::IntegrationSettings& s) {
  std::optional<integrate::ErrorModel> model;
  if (const std::optional<std::string> name = c.text("error_model")) {
    const std::string n = lower(*name);
    if (n.empty() || n == "none" || n == "no") {  // "no": ErrorModel.NO (version 5)
      model = integrate::ErrorModel::kNone;
    } else if (n == "poisson") {
      model = integrate::ErrorModel::kPoisson;
    } else if (n == "azimuthal" || n == "azimuth") {
      model = integrate::ErrorModel::kAzimuthal;
    } else {
      c.fail("error_model", "'" + *name + "' is not supported (none, poisson or azimuthal)");
    }
  }
  if (c.flag("do_poisson", false)) {
    if (model && *model != integrate::ErrorModel::kPoisson) {
      c.fail("do_poisson", "true, but error_model is '" + *c.text("error_model") + "'");
    }
    model = integrate::ErrorModel::kPoisson;
  }
  s.error_model = model.value_or(integrate::ErrorModel::kNone);
}

void read_dummy(Config& c, integrate::IntegrationSettings& s) {
  const bool apply = c.flag("do_dummy", true);
  const std::optional<double> val = c.number("val_dummy"), plain = c.number("dummy");
  if (val && plain && *val != *plain) {
    c.fail("dummy", "differs from val_dummy (" + std::to_string(*val) + ")");
  }
  const std::optional<double> dummy = val ? val : plain;
  const std::optional<double> delta = c.number("delta_dummy");
  if (!apply || !dummy) return;  // pyFAI ignores delta_dummy without a dummy
  s.dummy = dummy;
  s.delta_dummy = delta;
}

/// Keys that change nothing in the result: file bookkeeping, pyFAI's implementation choices
/// and, from Worker.get_config(), descriptions of images whose names are read from other keys.
bool is_inert(const std::string& key) {
  static const std::set<std::string, std::less<>> inert = {"application", "version",
                                                           "opencl_device", "shape"};
  return inert.contains(key);
}

/// The polarization factor: polarization_factor (versions 1 to 4) or version 5's
/// polarization_description [factor, offset] (pyFAI PolarizationDescription; azflow has no
/// axis offset, so a non-zero offset throws); null = none.
std::optional<double> polarization_factor(Config& c) {
  const json* d = c.get("polarization_description");
  if (d == nullptr || d->is_null()) return c.number("polarization_factor");
  if (c.has("polarization_factor")) {
    c.fail("polarization_factor", "given together with polarization_description");
  }
  if (d->is_number()) return d->get<double>();
  if (!d->is_array() || d->empty() || d->size() > 2 || !(*d)[0].is_number() ||
      (d->size() == 2 && !(*d)[1].is_number())) {
    c.fail("polarization_description", "expected [factor, offset], got " + d->dump());
  }
  if (d->size() == 2 && (*d)[1].get<double>() != 0.0) {
    c.fail("polarization_description",
           "an axis offset of " + (*d)[1].dump() + " rad, which azflow does not apply (0 only)");
  }
  return (*d)[0].get<double>();
}

/// integrator_method (or integrator_name) sigma_clip_ng: pyFAI's Worker passes extra_options as
/// its keyword arguments, of which azflow honours thres, max_iter and error_model (which must
/// agree with the config's error_model if that is set); no error model means poisson (as
/// sigma_clip_ng). Other extra_options keys, and a 2D integration, throw.
void read_sigma_clip(Config& c, integrate::IntegrationSettings& s) {
  const std::optional<std::string> m = c.text("integrator_method");
  const std::optional<std::string> n = c.text("integrator_name");
  if (m.value_or(n.value_or("")) != "sigma_clip_ng") return;
  if (s.is_2d()) {
    c.fail(m ? "integrator_method" : "integrator_name",
           "sigma_clip_ng is 1D only (as in pyFAI 0.21), but nbpt_azim asks for 2D");
  }
  integrate::SigmaClip clip;
  const json* x = c.get("extra_options");
  if (x != nullptr && !x->is_null()) {
    if (!x->is_object()) c.fail("extra_options", "expected an object, got " + x->dump());
    for (const auto& [key, value] : x->items()) {
      if (key == "thres" && value.is_number() && value.get<double>() > 0) {
        clip.thres = value.get<double>();
      } else if (key == "max_iter" && value.is_number_unsigned()) {
        clip.max_iter = value.get<std::size_t>();
      } else if (key == "error_model" && value.is_string()) {
        const auto model = integrate::parse_error_model(value.get<std::string>());
        if (!model || (s.error_model != integrate::ErrorModel::kNone && *model != s.error_model))
          c.fail("extra_options", "error_model " + value.dump() +
                                      " (poisson or azimuthal, as "
                                      "the config's error_model)");
        s.error_model = *model;
      } else {
        c.fail("extra_options", "'" + key + "': " + value.dump() +
                                    " is not a sigma_clip_ng option azflow honours (thres > 0, "
                                    "max_iter >= 0, error_model)");
      }
    }
  }
  s.sigma_clip = clip;
  if (s.error_model == integrate::ErrorModel::kNone)
    s.error_model = integrate::ErrorModel::kPoisson;
}

/// Keys of WorkerConfig versions 4 and 5 (pyFAI/io/integration_config.py, pyFAI >= 2023.x): the
/// integrator (AzimuthalIntegrator with integrate1d / integrate2d only), extra_options (none
/// honoured: non-empty throws), and the v4 -> v5 renames of the image and dummy keys (mask_image
/// -> mask_file, dark_current_image -> dark_current, flat_field_image -> flat_field, dummy ->
/// val_dummy, azimuthal_range_min/max -> azimuth_range_min/max, do_azimuth_range ->
/// do_azimuthal_range), applied when the new name is absent, as normalize() does.
void read_v4_v5_keys(Config& c, double version) {
  if (const std::optional<std::string> cls = c.text("integrator_class");
      cls && *cls != "AzimuthalIntegrator") {
    c.fail("integrator_class", "'" + *cls + "' (azflow integrates as AzimuthalIntegrator)");
  }
  static const std::set<std::string, std::less<>> methods = {
      "integrate1d", "integrate1d_ng", "integrate2d", "integrate2d_ng", "sigma_clip_ng"};
  bool sigma_clip = false;
  for (const char* key : {"integrator_method", "integrator_name"}) {
    if (const std::optional<std::string> m = c.text(key); m && !methods.contains(*m)) {
      c.fail(key, "'" + *m +
                      "' is not an integration azflow does (integrate1d_ng, integrate2d_ng, "
                      "sigma_clip_ng)");
    } else if (m && *m == "sigma_clip_ng") {
      sigma_clip = true;
    }
  }
  if (const json* x = c.get("extra_options");
      !sigma_clip && x != nullptr && !x->is_null() && !(x->is_object() && x->empty())) {
    c.fail("extra_options", "options for pyFAI's integrator (" + x->dump() +
                                ") that azflow does not honour (null or {} only)");
  }
  (void)version;
  c.rename("mask_image", "mask_file");
  c.rename("dark_current_image", "dark_current");
  c.rename("flat_field_image", "flat_field");
  c.rename("dummy", "val_dummy");
  c.rename("azimuthal_range_min", "azimuth_range_min");
  c.rename("azimuthal_range_max", "azimuth_range_max");
  c.rename("do_azimuth_range", "do_azimuthal_range");
}

}  // namespace

PyfaiSettings read_pyfai_config(const fs::path& file) {
  const fs::path path = fs::absolute(file).lexically_normal();
  std::ifstream in(path);
  if (!in) throw Error(ErrorCategory::kIo, "cannot read pyFAI config " + path.string());
  json root;
  try {
    root = json::parse(in);
  } catch (const json::exception& e) {
    throw Error(ErrorCategory::kConfig,
                "pyFAI config " + path.string() + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) {
    throw Error(ErrorCategory::kConfig,
                "pyFAI config " + path.string() + ": expected a JSON object");
  }
  Config c(std::move(root), path);

  // Version and application (pyFAI/io/integration_config.py normalize()).
  std::optional<double> version = c.number("version");
  if (version && (*version < 1 || *version > 5 || *version != std::floor(*version))) {
    c.fail("version",
           "version " + c.get("version")->dump() + " is not a pyFAI WorkerConfig version (1 to 5)");
  }
  // normalize(): pyfai-integrate (the GUI), worker (WorkerConfig, versions 4 and 5) or poni.
  if (const std::optional<std::string> app = c.text("application");
      app && *app != "pyfai-integrate" && *app != "worker" && *app != "poni") {
    c.fail("application", "'" + *app + "' is not a pyFAI-integrate or worker configuration");
  }
  if (version && *version >= 4) read_v4_v5_keys(c, *version);
  const bool legacy_v1 = !version || *version == 1;

  PyfaiSettings spec;  // as pyFAI: no dummy unless the config names one
  const GeometryOut geometry = read_geometry(c);
  spec.poni_text = geometry.poni_text;
  spec.poni_path = geometry.poni_path;

  integrate::IntegrationSettings& s = spec.settings;
  // 2D when do_2D (default true) and nbpt_azim > 1: Worker.set_config()/do_2D().
  const bool do_2d = c.flag("do_2D", true);
  const std::size_t nbpt_azim = c.count("nbpt_azim").value_or(1);
  s.npt_azim = do_2d && nbpt_azim > 1 ? nbpt_azim : 0;
  s.npt_rad = c.count("nbpt_rad").value_or(500);  // Worker's default shapeOut (360, 500)
  if (s.npt_rad == 0) c.fail("nbpt_rad", "must be > 0");

  const std::string unit = c.text("unit").value_or("2th_deg");  // Worker.set_config's default
  const auto parsed_unit = integrate::parse_radial_unit(unit);
  if (!parsed_unit) {
    c.fail("unit",
           "'" + unit + "' is not an azflow unit (q_nm^-1, q_A^-1, 2th_deg, 2th_rad, r_mm)");
  }
  s.unit = *parsed_unit;
  s.split = split_of_method(c, legacy_v1);

  const bool solid = c.flag("do_solid_angle", true);
  if (c.has("correct_solid_angle")) {
    const bool other = c.flag("correct_solid_angle", true);
    if (c.has("do_solid_angle") && other != solid) {
      c.fail("correct_solid_angle", "contradicts do_solid_angle");
    }
    s.correct_solid_angle = other;
  } else {
    s.correct_solid_angle = solid;
  }

  // Worker.set_config(): `if value and apply_value` -- a factor of 0 means no correction.
  const bool polarize = c.flag("do_polarization", true);
  if (const std::optional<double> f = polarization_factor(c); f && *f != 0 && polarize) {
    s.polarization_factor = f;
  }
  read_dummy(c, s);

  s.radial_range = read_range(c, "radial_range", {"do_radial_range"});
  s.azimuth_range_deg = read_range(c, "azimuth_range", {"do_azimuthal_range", "do_azimuth_range"});
  if (c.flag("chi_discontinuity_at_0", false) && (s.is_2d() || s.azimuth_range_deg)) {
    c.fail("chi_discontinuity_at_0",
           "azflow's azimuth runs from -180 to 180 degrees (chi_discontinuity_at_0 false)");
  }

  if (const std::optional<double> f = c.number("normalization_factor")) {
    s.normalization_factor = *f;
  }
  if (const std::optional<std::string> monitor = c.text("monitor_name");
      monitor && !monitor->empty()) {
    c.fail("monitor_name",
           "a per-frame monitor, which azflow does not read "
           "(normalization_factor, a constant, is supported)");
  }
  read_error_model(c, s);
  if (version && *version >= 4) read_sigma_clip(c, s);

  // do_mask false: no mask at all, neither mask_file nor the input file's pixel_mask (pyFAI's
  // Worker then applies none of its own either).
  const bool do_mask = c.flag("do_mask", true);
  if (!do_mask) spec.use_file_mask = false;
  if (const std::optional<std::string> mask = c.text("mask_file"); mask && !mask->empty()) {
    if (do_mask) spec.mask_path = resolve(c, *mask);
  }
  spec.dark_path = single_image(c, "dark_current", "do_dark");
  spec.flat_path = single_image(c, "flat_field", "do_flat");
  // Worker.get_config() records the images it applied only as descriptions ("mean(a,b)"):
  // they cannot be read back, so a config that has them is refused rather than run without.
  for (const char* key : {"dark_current_image", "flat_field_image", "mask_image"}) {
    if (version && *version >= 4) break;  // renamed to the file keys (read_v4_v5_keys)
    if (const json* v = c.get(key); v != nullptr && !v->is_null()) {
      c.fail(key, "the description of an image pyFAI applied (" + v->dump() +
                      "); name the file as " +
                      (std::string(key) == "mask_image"           ? "mask_file"
                       : std::string(key) == "dark_current_image" ? "dark_current"
                                                                  : "flat_field"));
    }
  }

  for (const std::string& key : c.unused()) {
    if (!is_inert(key)) {
      c.fail(key,
             "not a pyFAI 0.21 integration setting azflow supports (refused rather than "
             "ignored, since it may change the result)");
    }
  }
  try {
    s.validate();
  } catch (const Error& e) {
    throw Error(ErrorCategory::kConfig, "pyFAI config " + path.string() + ": " + e.what());
  }
  return spec;
}

}  // namespace azflow::reduce
