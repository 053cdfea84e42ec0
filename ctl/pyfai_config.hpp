#pragma once
// `azflowctl enqueue --config FILE`: a pyFAI integration/worker JSON file as a job spec
// (the reading itself is reduce::read_pyfai_config, shared with `azflow integrate --config`).

#include <filesystem>

#include "daemon/job_spec.hpp"

namespace azflow::ctl {

/// reduce::read_pyfai_config(file) as a job spec without datasets or output: geometry, settings,
/// mask/dark/flat and use_file_mask from the file, dummy_auto false (pyFAI applies no dummy
/// unless the config names one). Throws as read_pyfai_config. The result passes
/// daemon::job_spec_from_json's validation once datasets are added.
daemon::JobSpec job_spec_from_pyfai_config(const std::filesystem::path& file);

}  // namespace azflow::ctl
