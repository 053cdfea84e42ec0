#include "stages/reduce/plan_setup.hpp"

#include <chrono>

#include "stages/integrate/geometry.hpp"
#include "stages/integrate/plan_file.hpp"

namespace azflow::reduce {

PlanResult make_plan(const PlanRequest& request, integrate::PlanCache* cache) {
  integrate::Corrections corrections =
      load_corrections(request.rows, request.cols, request.pixel_mask, request.images);
  if (request.images.mask.empty()) integrate::add_detector_mask(request.poni.detector, corrections);
  const auto build = [&] {
    return integrate::Plan::build(integrate::Geometry(request.poni), request.settings, corrections);
  };
  PlanResult out;
  if (cache == nullptr) {
    const auto start = std::chrono::steady_clock::now();
    out.plan = build();
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
  }
  request.settings.validate();  // a bad setting is reported as such, not as a cache miss
  integrate::CachedPlan cached =
      cache->get(integrate::plan_key_text(request.poni, request.settings, corrections), build);
  out.plan = std::move(cached.plan);
  out.built = cached.built;
  out.key_hash = std::move(cached.key_hash);
  out.seconds = cached.seconds;
  out.note = std::move(cached.note);
  return out;
}

}  // namespace azflow::reduce
