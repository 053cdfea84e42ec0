#include "stages/integrate/method.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>
#include <vector>

#include "base/error.hpp"

namespace azflow::integrate {
namespace {

constexpr std::string_view kSupported =
    "azflow does no, bbox and full pixel splitting (CSR): give no, bbox, full, a pyFAI name "
    "(nosplit_csr, csr, full_csr, splitbbox, splitpixel, ...) or a triple such as "
    "full,csr,cython";

[[noreturn]] void refuse(std::string_view field, std::string_view text, std::string_view why) {
  const std::string where = field.empty() ? "" : std::string(field) + ": ";
  throw Error(ErrorCategory::kConfig, where + "method '" + std::string(text) + "': " +
                                          std::string(why) + "; " + std::string(kSupported));
}

bool any(std::string_view s) { return s.empty() || s == "*" || s == "any" || s == "all"; }
bool has(std::string_view s, std::string_view part) { return s.find(part) != s.npos; }

// pyFAI 0.21's registered "old method" names (pyFAI/load_integrators.py) and their splitting.
constexpr std::array<std::pair<std::string_view, PixelSplit>, 10> kOldNames = {{
    {"numpy", PixelSplit::kNo},
    {"cython", PixelSplit::kNo},
    {"bbox", PixelSplit::kBBox},
    {"splitpixel", PixelSplit::kFull},
    {"nosplit_csr", PixelSplit::kNo},
    {"csr", PixelSplit::kBBox},
    {"lut", PixelSplit::kBBox},
    {"nosplit_lut", PixelSplit::kNo},
    {"full_lut", PixelSplit::kFull},
    {"full_csr", PixelSplit::kFull},
}};

MethodChoice parse_triple(const std::vector<std::string>& parts, std::string_view text,
                          std::string_view field) {
  if (parts.size() != 3) refuse(field, text, "expected 3 parts: split, algorithm, implementation");
  MethodChoice m;
  const std::string& split = parts[0];
  if (split == "bbox") {
    m.split = PixelSplit::kBBox;
  } else if (split == "full") {
    m.split = PixelSplit::kFull;
  } else if (split != "no" && !any(split)) {
    refuse(field, text, "unknown or unsupported pixel splitting '" + split + "'");
  }
  m.algo = any(parts[1]) ? "*" : parts[1];
  m.impl = any(parts[2]) ? "*" : parts[2];
  if (m.algo != "*" && m.algo != "histogram" && m.algo != "csr" && m.algo != "lut")
    refuse(field, text, "unknown algorithm '" + m.algo + "' (pyFAI's: histogram, csr, lut)");
  if (m.impl != "*" && m.impl != "python" && m.impl != "cython" && m.impl != "opencl")
    refuse(field, text,
           "unknown implementation '" + m.impl + "' (pyFAI's: python, cython, opencl)");
  return m;
}

// pyFAI's Method.parsed followed by the first registered match (method_registry.py).
MethodChoice parse_name(const std::string& s, std::string_view text, std::string_view field) {
  for (const auto& [name, split] : kOldNames)
    if (s == name) return {split, "*", "*"};
  MethodChoice m;
  if (has(s, "lut")) m.algo = "lut";
  if (has(s, "csr")) m.algo = "csr";
  if (s == "numpy" || s == "python") m.impl = "python";
  if (s == "cython") m.impl = "cython";
  if (has(s, "ocl")) m.impl = "opencl";
  if (has(s, "bbox")) return {PixelSplit::kBBox, m.algo, m.impl};
  if (has(s, "full")) return {PixelSplit::kFull, m.algo, m.impl};
  if (has(s, "pseudo") || has(s, "splitpix"))
    refuse(field, text,
           "pseudo splitting is not supported (pyFAI 0.21 itself reads this name as "
           "no splitting)");
  if (has(s, "no")) return {PixelSplit::kNo, m.algo, m.impl};
  if (m.algo == "*" && m.impl == "*" && s != "histogram") refuse(field, text, "unknown method");
  // Splitting left to pyFAI: the first registered method, no splitting, except for OpenCL sparse
  // engines, which pyFAI registers with bbox only.
  m.split = m.impl == "opencl" && m.algo != "*" ? PixelSplit::kBBox : PixelSplit::kNo;
  return m;
}

}  // namespace

MethodChoice parse_method(std::string_view text, std::string_view field) {
  std::string s;
  for (const char c : text) {
    if (std::isspace(static_cast<unsigned char>(c)) || c == '"' || c == '\'' || c == '(' ||
        c == ')' || c == '[' || c == ']')
      continue;
    s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (s.empty()) refuse(field, text, "empty");
  if (std::count(s.begin(), s.end(), ',') >= 2) {
    std::vector<std::string> parts(1);
    for (const char c : s) {
      if (c == ',') {
        parts.emplace_back();
      } else {
        parts.back().push_back(c);
      }
    }
    return parse_triple(parts, text, field);
  }
  return parse_name(s, text, field);
}

}  // namespace azflow::integrate
