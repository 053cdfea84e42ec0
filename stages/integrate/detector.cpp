#include "stages/integrate/detector.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace azflow::integrate {
namespace {

constexpr double kEigerPixel_m = 75e-6;
constexpr double kPilatusPixel_m = 172e-6;

// A detector of the Eiger (514 x 1030 modules, gaps 37 x 10), Eiger2 (512 x 1028, 38 x 12) or
// Pilatus (195 x 487, 17 x 7) family (pyFAI 0.21 MODULE_SIZE / MODULE_GAP).
DetectorSpec eiger(const char* name, std::size_t rows, std::size_t cols) {
  return {name, kEigerPixel_m, kEigerPixel_m, rows, cols, 514, 1030, 37, 10, 0, false};
}
DetectorSpec eiger2(const char* name, std::size_t rows, std::size_t cols, std::size_t mid = 0) {
  return {name, kEigerPixel_m, kEigerPixel_m, rows, cols, 512, 1028, 38, 12, mid, false};
}
DetectorSpec pilatus(const char* name, std::size_t rows, std::size_t cols, std::size_t mid = 0) {
  return {name, kPilatusPixel_m, kPilatusPixel_m, rows, cols, 195, 487, 17, 7, mid, false};
}

// Names, pixel sizes and MAX_SHAPE as in pyFAI 0.21 (pyFAI/detectors/_dectris.py).
const std::array<DetectorSpec, 27> kDetectors = {{
    eiger("Eiger500k", 514, 1030),
    eiger("Eiger1M", 1065, 1030),
    eiger("Eiger4M", 2167, 2070),
    eiger("Eiger9M", 3269, 3110),
    eiger("Eiger16M", 4371, 4150),
    eiger2("Eiger2_500k", 512, 1028),
    eiger2("Eiger2_1M", 1062, 1028),
    eiger2("Eiger2_4M", 2162, 2068),
    eiger2("Eiger2_9M", 3262, 3108),
    eiger2("Eiger2_16M", 4362, 4148),
    eiger2("Eiger2CdTe_500k", 512, 1028, 2),
    eiger2("Eiger2CdTe_1M", 1062, 1028, 2),
    eiger2("Eiger2CdTe_4M", 2162, 2068, 2),
    eiger2("Eiger2CdTe_9M", 3262, 3108, 2),
    eiger2("Eiger2CdTe_16M", 4362, 4148, 2),
    pilatus("Pilatus100k", 195, 487),
    pilatus("Pilatus200k", 407, 487),
    pilatus("Pilatus300k", 619, 487),
    pilatus("Pilatus300kw", 195, 1475),
    pilatus("Pilatus1M", 1043, 981),
    pilatus("Pilatus2M", 1679, 1475),
    pilatus("Pilatus6M", 2527, 2463),
    pilatus("PilatusCdTe300k", 619, 487, 3),
    pilatus("PilatusCdTe300kw", 195, 1475, 3),
    pilatus("PilatusCdTe1M", 1043, 981, 3),
    pilatus("PilatusCdTe2M", 1679, 1475, 3),
    {"Mar345", 100e-6, 100e-6, 3450, 3450, 0, 0, 0, 0, 0, true},
}};

// Lower-case, without ' ', '_' and '-', so that pyFAI's spellings ("Eiger 4M", "eiger_4m",
// "Eiger4M", "Pilatus CdTe 1M") all compare equal.
std::string normalized(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == ' ' || c == '_' || c == '-') continue;
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

}  // namespace

std::span<const DetectorSpec> known_detectors() noexcept { return kDetectors; }

std::optional<DetectorSpec> find_detector(std::string_view name) {
  const std::string key = normalized(name);
  for (const DetectorSpec& d : kDetectors) {
    if (normalized(d.name) == key) return d;
  }
  // pyFAI also accepts the CdTe variants with "CdTe" after the size ("Pilatus 1M CdTe").
  for (const DetectorSpec& d : kDetectors) {
    std::string n = normalized(d.name);
    const auto pos = n.find("cdte");
    if (pos == std::string::npos) continue;
    n.erase(pos, 4);
    if (n + "cdte" == key) return d;
  }
  return std::nullopt;
}

namespace {

// Marks [start, start + width) of every period along one axis: gaps after each module, or the
// middle columns of each module.
template <class Mark>
void mark_periodic(std::size_t first, std::size_t width, std::size_t period, std::size_t extent,
                   Mark&& mark) {
  for (std::size_t start = first; start < extent; start += period) {
    for (std::size_t k = start; k < std::min(start + width, extent); ++k) mark(k);
  }
}

}  // namespace

std::vector<std::uint8_t> detector_mask(const DetectorSpec& d) {
  const std::size_t rows = d.rows, cols = d.cols;
  std::vector<std::uint8_t> mask(rows * cols, 0);
  bool any = false;
  auto row = [&](std::size_t i) {
    std::fill_n(mask.begin() + static_cast<std::ptrdiff_t>(i * cols), cols, std::uint8_t{1});
    any = true;
  };
  auto col = [&](std::size_t j) {
    for (std::size_t i = 0; i < rows; ++i) mask[i * cols + j] = 1;
    any = true;
  };
  if (d.module_rows > 0 && d.module_cols > 0) {
    mark_periodic(d.module_rows, d.gap_rows, d.module_rows + d.gap_rows, rows, row);
    mark_periodic(d.module_cols, d.gap_cols, d.module_cols + d.gap_cols, cols, col);
    if (d.mid_module_cols > 0) {
      mark_periodic(d.module_cols / 2 - 1, d.mid_module_cols, d.module_cols + d.gap_cols, cols,
                    col);
    }
  }
  if (d.circular) {
    // pyFAI's integer centre (shape // 2) and radius rows // 2.
    const double ci = static_cast<double>(rows / 2), cj = static_cast<double>(cols / 2);
    for (std::size_t i = 0; i < rows; ++i) {
      for (std::size_t j = 0; j < cols; ++j) {
        const double di = static_cast<double>(i) + 0.5 - ci, dj = static_cast<double>(j) + 0.5 - cj;
        if (di * di + dj * dj > ci * ci) {
          mask[i * cols + j] = 1;
          any = true;
        }
      }
    }
  }
  if (!any) mask.clear();
  return mask;
}

}  // namespace azflow::integrate
