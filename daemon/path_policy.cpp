#include "daemon/path_policy.hpp"

#include <system_error>

#include "base/path_inside.hpp"

namespace azflow::daemon {

namespace {

namespace fs = std::filesystem;

fs::path canonical_or_normal(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p.lexically_normal() : c;
}

std::string roots_text(const std::vector<fs::path>& roots) {
  std::string out;
  for (const auto& r : roots) out += (out.empty() ? "" : ", ") + r.string();
  return out;
}

void check_one(const std::string& path, const std::vector<fs::path>& roots,
               const std::string& field, const char* key) {
  if (path.empty() || path_within(path, roots)) return;
  throw FieldError(field, "'" + canonical_or_normal(path).string() + "' is outside the " + key +
                              " of this daemon (" + roots_text(roots) + ")");
}

}  // namespace

bool path_within(const fs::path& path, const std::vector<fs::path>& roots) {
  if (!path.is_absolute()) return false;
  const fs::path canonical = canonical_or_normal(path);
  for (const fs::path& root : roots) {
    if (path_inside(canonical, canonical_or_normal(root))) return true;
  }
  return false;
}

void check_input_paths(const JobSpec& spec, const std::vector<fs::path>& input_roots) {
  for (std::size_t i = 0; i < spec.datasets.size(); ++i) {
    check_one(spec.datasets[i], input_roots, "spec.datasets[" + std::to_string(i) + "]",
              "allowed_input_roots");
  }
  const auto file_part = [](const std::string& image) { return image.substr(0, image.find("::")); };
  check_one(file_part(spec.mask_path), input_roots, "spec.mask_path", "allowed_input_roots");
  check_one(file_part(spec.dark_path), input_roots, "spec.dark_path", "allowed_input_roots");
  check_one(file_part(spec.flat_path), input_roots, "spec.flat_path", "allowed_input_roots");
}

void check_allowed_paths(const JobSpec& spec, const std::vector<fs::path>& input_roots,
                         const std::vector<fs::path>& output_roots,
                         const fs::path& default_output_dir) {
  check_input_paths(spec, input_roots);
  if (!spec.output_path.empty() && !path_within(spec.output_path, {default_output_dir})) {
    check_one(spec.output_path, output_roots, "spec.output_path", "allowed_output_roots");
  }
  if (spec.stream && !spec.stream->save_raw.empty()) {
    check_one(spec.stream->save_raw, output_roots, "spec.stream.save_raw", "allowed_output_roots");
  }
}

}  // namespace azflow::daemon
