#include "ctl/pyfai_config.hpp"

#include "stages/reduce/pyfai_config.hpp"

namespace azflow::ctl {

daemon::JobSpec job_spec_from_pyfai_config(const std::filesystem::path& file) {
  reduce::PyfaiSettings config = reduce::read_pyfai_config(file);
  daemon::JobSpec spec;
  spec.dummy_auto = false;
  spec.poni_text = std::move(config.poni_text);
  spec.poni_path = std::move(config.poni_path);
  spec.settings = config.settings;
  spec.mask_path = std::move(config.mask_path);
  spec.dark_path = std::move(config.dark_path);
  spec.flat_path = std::move(config.flat_path);
  spec.use_file_mask = config.use_file_mask;
  return spec;
}

}  // namespace azflow::ctl
