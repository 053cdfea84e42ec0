#include "stages/reduce/result_writer.hpp"

#include <array>
#include <utility>

#include "stages/reduce/nexus_writer.hpp"
#include "stages/reduce/xy_writer.hpp"

namespace azflow::reduce {

namespace {

constexpr std::array<std::pair<OutputFormat, std::string_view>, 4> kFormats{{
    {OutputFormat::kNexus, "nexus"},
    {OutputFormat::kNxAzint, "nxazint"},
    {OutputFormat::kXy, "xy"},
    {OutputFormat::kXyFrames, "xy-frames"},
}};

}  // namespace

std::string_view output_format_name(OutputFormat format) noexcept {
  for (const auto& [f, name] : kFormats) {
    if (f == format) return name;
  }
  return "nexus";
}

std::optional<OutputFormat> parse_output_format(std::string_view name) noexcept {
  for (const auto& [f, n] : kFormats) {
    if (n == name) return f;
  }
  return std::nullopt;
}

bool format_supports(OutputFormat format, std::size_t npt_azim) noexcept {
  const bool text = format == OutputFormat::kXy || format == OutputFormat::kXyFrames;
  return !text || npt_azim == 0;
}

std::unique_ptr<ResultWriter> make_result_writer(NexusLayout layout) {
  if (layout.format == OutputFormat::kXy || layout.format == OutputFormat::kXyFrames) {
    return std::make_unique<XyWriter>(std::move(layout));
  }
  return std::make_unique<NexusWriter>(std::move(layout));
}

}  // namespace azflow::reduce
