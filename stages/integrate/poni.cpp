#include "stages/integrate/poni.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "base/error.hpp"

namespace azflow::integrate {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// One "key: value" entry of the file, with its line number for messages.
struct Entry {
  std::string value;
  int line = 0;
  std::string key;  // as written
};

[[noreturn]] void fail(std::string_view source, int line, std::string_view key,
                       const std::string& what) {
  std::ostringstream msg;
  msg << "PONI file " << source;
  if (line > 0) msg << ", line " << line;
  if (!key.empty()) msg << ", key '" << key << "'";
  msg << ": " << what;
  throw Error(ErrorCategory::kConfig, msg.str());
}

std::map<std::string, Entry> split_entries(std::string_view text, std::string_view source) {
  std::map<std::string, Entry> entries;
  int line_no = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = trim(text.substr(pos, end - pos));
    ++line_no;
    pos = end + 1;
    if (line.empty() || line.front() == '#') continue;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      fail(source, line_no, "", "expected 'key: value', got '" + std::string(line) + "'");
    }
    const std::string_view key = trim(line.substr(0, colon));
    if (key.empty()) fail(source, line_no, "", "empty key");
    entries[lower(key)] =
        Entry{std::string(trim(line.substr(colon + 1))), line_no, std::string(key)};
  }
  return entries;
}

double parse_number(const Entry& e, std::string_view source) {
  double v = 0;
  const char* first = e.value.data();
  const char* last = first + e.value.size();
  const auto [ptr, ec] = std::from_chars(first, last, v);
  if (ec != std::errc() || ptr != last || !std::isfinite(v)) {
    fail(source, e.line, e.key, "expected a number, got '" + e.value + "'");
  }
  return v;
}

const Entry& require(const std::map<std::string, Entry>& entries, const std::string& key,
                     std::string_view source) {
  const auto it = entries.find(key);
  if (it == entries.end()) fail(source, 0, key, "missing");
  return it->second;
}

std::optional<double> optional_number(const std::map<std::string, Entry>& entries,
                                      const std::string& key, std::string_view source) {
  const auto it = entries.find(key);
  if (it == entries.end() || lower(it->second.value) == "none") return std::nullopt;
  return parse_number(it->second, source);
}

// Pixel sizes and shape from Detector_config JSON ({"pixel1", "pixel2", "max_shape"}).
void apply_detector_config(const Entry& e, std::string_view source, DetectorSpec& det) {
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(e.value.empty() ? std::string("{}") : e.value);
  } catch (const nlohmann::json::exception& ex) {
    fail(source, e.line, e.key, std::string("invalid JSON: ") + ex.what());
  }
  if (!cfg.is_object()) fail(source, e.line, e.key, "expected a JSON object");
  try {
    if (cfg.contains("pixel1") && !cfg["pixel1"].is_null())
      det.pixel1_m = cfg["pixel1"].get<double>();
    if (cfg.contains("pixel2") && !cfg["pixel2"].is_null())
      det.pixel2_m = cfg["pixel2"].get<double>();
    if (cfg.contains("max_shape") && !cfg["max_shape"].is_null()) {
      const auto shape = cfg["max_shape"].get<std::vector<long long>>();
      if (shape.size() != 2 || shape[0] <= 0 || shape[1] <= 0) {
        fail(source, e.line, e.key, "max_shape must be two positive integers");
      }
      det.rows = static_cast<std::size_t>(shape[0]);
      det.cols = static_cast<std::size_t>(shape[1]);
    }
  } catch (const nlohmann::json::exception& ex) {
    fail(source, e.line, e.key, std::string("wrong type: ") + ex.what());
  }
}

DetectorSpec parse_detector(const std::map<std::string, Entry>& entries, std::string_view source) {
  DetectorSpec det;
  const auto name_it = entries.find("detector");
  const bool generic = name_it == entries.end() || lower(name_it->second.value) == "detector";
  if (!generic) {
    auto known = find_detector(name_it->second.value);
    if (!known) {
      fail(source, name_it->second.line, name_it->second.key,
           "unknown detector '" + name_it->second.value +
               "' (use 'Detector' with Detector_config pixel1/pixel2/max_shape)");
    }
    det = *known;
  } else {
    det.name = "Detector";
  }
  if (const auto it = entries.find("detector_config"); it != entries.end()) {
    apply_detector_config(it->second, source, det);
  }
  // Version 1 files give the pixel sizes as their own keys.
  if (auto p1 = optional_number(entries, "pixelsize1", source)) det.pixel1_m = *p1;
  if (auto p2 = optional_number(entries, "pixelsize2", source)) det.pixel2_m = *p2;
  if (!(det.pixel1_m > 0) || !(det.pixel2_m > 0)) {
    const Entry* e = name_it != entries.end() ? &name_it->second : nullptr;
    fail(source, e ? e->line : 0, "Detector_config",
         "pixel sizes missing or not positive (need pixel1 and pixel2, or PixelSize1/PixelSize2)");
  }
  return det;
}

}  // namespace

Poni parse_poni(std::string_view text, std::string_view source) {
  const auto entries = split_entries(text, source);
  Poni poni;
  if (const auto it = entries.find("poni_version"); it != entries.end()) {
    const double v = parse_number(it->second, source);
    if (v != 1 && v != 2 && v != 2.1) {
      fail(source, it->second.line, it->second.key, "unsupported version " + it->second.value);
    }
    poni.version = static_cast<int>(v);
  } else {
    poni.version = 1;
  }
  if (const auto it = entries.find("splinefile"); it != entries.end()) {
    const std::string v = lower(it->second.value);
    if (!v.empty() && v != "none") {
      fail(source, it->second.line, it->second.key, "spline distortion files are not supported");
    }
  }
  poni.detector = parse_detector(entries, source);
  const Entry& dist = require(entries, "distance", source);
  poni.dist_m = parse_number(dist, source);
  if (!(poni.dist_m > 0)) fail(source, dist.line, dist.key, "distance must be positive");
  poni.poni1_m = parse_number(require(entries, "poni1", source), source);
  poni.poni2_m = parse_number(require(entries, "poni2", source), source);
  poni.rot1_rad = optional_number(entries, "rot1", source).value_or(0.0);
  poni.rot2_rad = optional_number(entries, "rot2", source).value_or(0.0);
  poni.rot3_rad = optional_number(entries, "rot3", source).value_or(0.0);
  poni.wavelength_m = optional_number(entries, "wavelength", source);
  if (poni.wavelength_m && !(*poni.wavelength_m > 0)) {
    const Entry& w = entries.at("wavelength");
    fail(source, w.line, w.key, "wavelength must be positive");
  }
  return poni;
}

Poni read_poni(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCategory::kIo, "cannot open PONI file " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error(ErrorCategory::kIo, "cannot read PONI file " + path.string());
  return parse_poni(text.str(), path.string());
}

Poni fit_to_frames(Poni poni, std::size_t rows, std::size_t cols) {
  if (poni.detector.rows == 0 && poni.detector.cols == 0) {
    poni.detector.rows = rows;
    poni.detector.cols = cols;
  }
  return poni;
}

void check_frame_shape(const Poni& poni, std::size_t rows, std::size_t cols,
                       std::string_view frames, std::string_view poni_source) {
  if (rows == poni.detector.rows && cols == poni.detector.cols) return;
  if (poni.detector.rows == 0 && poni.detector.cols == 0) return;  // shape from the data
  std::ostringstream msg;
  msg << "frames of " << frames << " have shape (" << rows << ", " << cols
      << ") but the PONI detector " << poni.detector.name << " in " << poni_source << " is ("
      << poni.detector.rows << ", " << poni.detector.cols << ")";
  throw Error(ErrorCategory::kInput, msg.str());
}

std::string format_poni(const Poni& poni) {
  std::ostringstream out;
  out.precision(17);
  out << "# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis\n";
  out << "poni_version: 2\n";
  const bool known = find_detector(poni.detector.name).has_value();
  if (known) {
    out << "Detector: " << poni.detector.name << "\nDetector_config: {}\n";
  } else {
    nlohmann::json cfg = {{"pixel1", poni.detector.pixel1_m}, {"pixel2", poni.detector.pixel2_m}};
    if (poni.detector.rows > 0) cfg["max_shape"] = {poni.detector.rows, poni.detector.cols};
    out << "Detector: Detector\nDetector_config: " << cfg.dump() << "\n";
  }
  out << "Distance: " << poni.dist_m << "\nPoni1: " << poni.poni1_m << "\nPoni2: " << poni.poni2_m
      << "\nRot1: " << poni.rot1_rad << "\nRot2: " << poni.rot2_rad << "\nRot3: " << poni.rot3_rad
      << "\n";
  if (poni.wavelength_m) out << "Wavelength: " << *poni.wavelength_m << "\n";
  return out.str();
}

}  // namespace azflow::integrate
