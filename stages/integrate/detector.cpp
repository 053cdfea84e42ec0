#include "stages/integrate/detector.hpp"

#include <array>
#include <cctype>

namespace azflow::integrate {
namespace {

constexpr double kEigerPixel_m = 75e-6;
constexpr double kPilatusPixel_m = 172e-6;

// Names, pixel sizes and MAX_SHAPE as in pyFAI 0.21 (pyFAI/detectors/_dectris.py).
const std::array<DetectorSpec, 27> kDetectors = {{
    {"Eiger500k", kEigerPixel_m, kEigerPixel_m, 514, 1030},
    {"Eiger1M", kEigerPixel_m, kEigerPixel_m, 1065, 1030},
    {"Eiger4M", kEigerPixel_m, kEigerPixel_m, 2167, 2070},
    {"Eiger9M", kEigerPixel_m, kEigerPixel_m, 3269, 3110},
    {"Eiger16M", kEigerPixel_m, kEigerPixel_m, 4371, 4150},
    {"Eiger2_500k", kEigerPixel_m, kEigerPixel_m, 512, 1028},
    {"Eiger2_1M", kEigerPixel_m, kEigerPixel_m, 1062, 1028},
    {"Eiger2_4M", kEigerPixel_m, kEigerPixel_m, 2162, 2068},
    {"Eiger2_9M", kEigerPixel_m, kEigerPixel_m, 3262, 3108},
    {"Eiger2_16M", kEigerPixel_m, kEigerPixel_m, 4362, 4148},
    {"Eiger2CdTe_500k", kEigerPixel_m, kEigerPixel_m, 512, 1028},
    {"Eiger2CdTe_1M", kEigerPixel_m, kEigerPixel_m, 1062, 1028},
    {"Eiger2CdTe_4M", kEigerPixel_m, kEigerPixel_m, 2162, 2068},
    {"Eiger2CdTe_9M", kEigerPixel_m, kEigerPixel_m, 3262, 3108},
    {"Eiger2CdTe_16M", kEigerPixel_m, kEigerPixel_m, 4362, 4148},
    {"Pilatus100k", kPilatusPixel_m, kPilatusPixel_m, 195, 487},
    {"Pilatus200k", kPilatusPixel_m, kPilatusPixel_m, 407, 487},
    {"Pilatus300k", kPilatusPixel_m, kPilatusPixel_m, 619, 487},
    {"Pilatus300kw", kPilatusPixel_m, kPilatusPixel_m, 195, 1475},
    {"Pilatus1M", kPilatusPixel_m, kPilatusPixel_m, 1043, 981},
    {"Pilatus2M", kPilatusPixel_m, kPilatusPixel_m, 1679, 1475},
    {"Pilatus6M", kPilatusPixel_m, kPilatusPixel_m, 2527, 2463},
    {"PilatusCdTe300k", kPilatusPixel_m, kPilatusPixel_m, 619, 487},
    {"PilatusCdTe300kw", kPilatusPixel_m, kPilatusPixel_m, 195, 1475},
    {"PilatusCdTe1M", kPilatusPixel_m, kPilatusPixel_m, 1043, 981},
    {"PilatusCdTe2M", kPilatusPixel_m, kPilatusPixel_m, 1679, 1475},
    {"Mar345", 100e-6, 100e-6, 3450, 3450},
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

}  // namespace azflow::integrate
