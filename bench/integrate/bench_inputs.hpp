#pragma once
// What the integration benchmarks share (bench/integrate, bench/cuda): the EIGER 4M geometry,
// the measured modes and the frames (synthetic, or read from a master file). Header-only;
// not part of the azflow libraries.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "stages/integrate/detector.hpp"
#include "stages/integrate/plan.hpp"
#include "stages/integrate/poni.hpp"
#include "stages/source/dataset.hpp"

namespace azflow::bench {

/// EIGER 4M at 0.15 m, beam near the centre, 1 Angstrom: the geometry when no --poni is given.
inline integrate::Poni default_poni() {
  integrate::Poni p;
  p.detector = *integrate::find_detector("Eiger4M");
  p.dist_m = 0.15;
  p.poni1_m = 0.0811;
  p.poni2_m = 0.0775;
  p.wavelength_m = 1e-10;
  return p;
}

/// One measured integration mode.
struct Mode {
  std::string name;
  integrate::IntegrationSettings settings;
};

/// 1D no split, 1D bbox, 1D full and 2D bbox 360 x 1000: 1000 radial bins in q_nm^-1, Poisson
/// errors, dummy 0xFFFFFFFF (the Eiger gap value).
inline std::vector<Mode> modes() {
  using namespace azflow::integrate;
  IntegrationSettings base;
  base.npt_rad = 1000;
  base.unit = RadialUnit::kQ_nm;
  base.error_model = ErrorModel::kPoisson;
  base.dummy = 4294967295.0;
  Mode nosplit{"1d_no", base};
  Mode bbox{"1d_bbox", base};
  bbox.settings.split = PixelSplit::kBBox;
  Mode full{"1d_full", base};
  full.settings.split = PixelSplit::kFull;
  Mode cake{"2d_bbox_360x1000", base};
  cake.settings.split = PixelSplit::kBBox;
  cake.settings.npt_azim = 360;
  return {nosplit, bbox, full, cake};
}

/// `n` frames of rows x cols Poisson-like uint32 counts (seed 42) with Eiger module gaps
/// (columns 1030-1039) at 0xFFFFFFFF.
inline std::vector<std::vector<std::uint32_t>> make_frames(std::size_t n, std::size_t rows,
                                                           std::size_t cols) {
  std::mt19937 rng(42);
  std::vector<std::vector<std::uint32_t>> frames(n, std::vector<std::uint32_t>(rows * cols));
  for (auto& f : frames) {
    std::geometric_distribution<std::uint32_t> counts(0.02);
    for (auto& v : f) v = counts(rng);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 1030; c < std::min<std::size_t>(cols, 1040); ++c)
        f[r * cols + c] = 0xFFFFFFFFu;
  }
  return frames;
}

/// The first `n` frames of an Eiger/NeXus master file, cycled if it has fewer. Throws
/// std::runtime_error naming `path` unless its frames are uint32 of rows x cols.
inline std::vector<std::vector<std::uint32_t>> read_frames(const std::string& path, std::size_t n,
                                                           std::size_t rows, std::size_t cols) {
  auto ds = source::Dataset::open(path);
  const auto& info = ds.info();
  if (info.dtype != DType::kUint32 || info.rows != rows || info.cols != cols || info.frames == 0)
    throw std::runtime_error(path + ": expected uint32 frames of the PONI's detector shape");
  std::vector<std::vector<std::uint32_t>> frames(n, std::vector<std::uint32_t>(rows * cols));
  for (std::size_t i = 0; i < n; ++i)
    ds.read_frame(i % info.frames, std::as_writable_bytes(std::span(frames[i])));
  return frames;
}

}  // namespace azflow::bench
