#include "daemon/federation/allowed_roots.hpp"

#include <algorithm>
#include <string>

namespace azflow::daemon {

bool path_under_roots(const std::filesystem::path& path,
                      const std::vector<std::filesystem::path>& roots) {
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::weakly_canonical(path, ec).lexically_normal();
  if (ec || !p.is_absolute()) return false;
  return std::any_of(roots.begin(), roots.end(), [&](const std::filesystem::path& root) {
    const std::filesystem::path r = root.lexically_normal();
    auto pi = p.begin();
    for (auto ri = r.begin(); ri != r.end(); ++ri) {
      if (ri->empty()) continue;  // a trailing separator
      if (pi == p.end() || *pi != *ri) return false;
      ++pi;
    }
    return true;
  });
}

void check_input_roots(const JobSpec& spec, const std::vector<std::filesystem::path>& roots) {
  const auto check = [&](const std::string& field, const std::string& value) {
    if (value.empty()) return;
    const std::string file = value.substr(0, value.find("::"));
    if (!path_under_roots(file, roots)) {
      throw FieldError(field, file + " is not under an allowed input root");
    }
  };
  for (std::size_t i = 0; i < spec.datasets.size(); ++i) {
    check("datasets[" + std::to_string(i) + "]", spec.datasets[i]);
  }
  check("mask_path", spec.mask_path);
  check("dark_path", spec.dark_path);
  check("flat_path", spec.flat_path);
}

}  // namespace azflow::daemon
