#pragma once
// Whether a path lies inside a folder, by path elements (the allowed input and output folders'
// test: daemon/path_policy.cpp, stages/source/input_policy.cpp).

#include <filesystem>

namespace azflow {

/// True if `path` is `root` or lies below it, comparing path elements: "/data2/x" is not inside
/// "/data". Both absolute and already resolved by the caller (canonical or lexically normal); a
/// trailing separator of `root` ("/data/") is ignored. Pure: touches no file, never throws.
inline bool path_inside(const std::filesystem::path& path, const std::filesystem::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // trailing separator of "/data/"
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

}  // namespace azflow
