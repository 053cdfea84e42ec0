#pragma once
// Allowed roots: the folders under which input and output paths of requests must lie
// (configuration keys allowed_input_roots / allowed_output_roots, default ["/"]). Used here for
// shards that peers hand to this node (docs/federation.md, "Security").

#include <filesystem>
#include <vector>

#include "daemon/job_spec.hpp"

namespace azflow::daemon {

/// Whether `path` (absolute; ".." and symbolic links resolved as far as it exists) lies under
/// one of `roots` (absolute directories).
bool path_under_roots(const std::filesystem::path& path,
                      const std::vector<std::filesystem::path>& roots);

/// Checks every input path of `spec` (datasets, mask/dark/flat files; the "FILE::/dataset"
/// suffix ignored) against `roots`. Throws FieldError naming the field ("datasets[0]",
/// "dark_path", ...) and the path for the first one outside every root.
void check_input_roots(const JobSpec& spec, const std::vector<std::filesystem::path>& roots);

}  // namespace azflow::daemon
