#pragma once
// Which paths a job may read and write: the daemon's allowed_input_roots and
// allowed_output_roots (daemon/config.hpp), checked on enqueue.

#include <filesystem>
#include <vector>

#include "daemon/job_spec.hpp"

namespace azflow::daemon {

/// True if `path`, made canonical with std::filesystem::weakly_canonical (symlinks of its
/// existing part resolved, "." and ".." removed), lies inside one of `roots` (each canonicalised
/// the same way); a root of "/" allows every absolute path.
bool path_within(const std::filesystem::path& path,
                 const std::vector<std::filesystem::path>& roots);

/// Checks the inputs of a job spec (every dataset and the file part of the mask, dark and flat
/// image specs) against `input_roots`. Throws FieldError naming "spec.datasets[i]",
/// "spec.mask_path", "spec.dark_path" or "spec.flat_path" with the canonical path and the roots.
/// Used on enqueue and for the shards federation peers hand to this daemon.
void check_input_paths(const JobSpec& spec, const std::vector<std::filesystem::path>& input_roots);

/// Checks a job spec against the roots: every dataset and the mask, dark and flat images (the
/// file part of "FILE::/dataset") against `input_roots`, a non-empty output_path against
/// `output_roots` or `default_output_dir` (always allowed). Throws FieldError naming
/// "spec.datasets[i]", "spec.mask_path", "spec.dark_path", "spec.flat_path" or
/// "spec.output_path" with the canonical path and the roots.
void check_allowed_paths(const JobSpec& spec, const std::vector<std::filesystem::path>& input_roots,
                         const std::vector<std::filesystem::path>& output_roots,
                         const std::filesystem::path& default_output_dir);

}  // namespace azflow::daemon
