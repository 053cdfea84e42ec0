#include "ctl/suggest.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace azflow::ctl {

namespace {

/// Levenshtein distance (insertions, deletions, substitutions of one character each).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

bool knows(const CLI::App& app, const CLI::App& command, const std::string& name) {
  return command.get_option_no_throw(name) != nullptr || app.get_option_no_throw(name) != nullptr;
}

/// pyFAI-integrate's option names that differ from azflowctl's by more than '_' / '-'.
constexpr std::pair<std::string_view, std::string_view> kPyfaiAliases[] = {
    {"--polarization", "--polarization-factor"},
    {"--npt_rad", "--npt-rad"},
    {"--npt_azim", "--npt-azim"},
    {"--delta_dummy", "--delta-dummy"},
};

}  // namespace

std::optional<std::string> suggest_option(const CLI::App& app, const CLI::App& command,
                                          std::string_view given) {
  const std::string name(given);
  if (!name.starts_with("--") || knows(app, command, name)) return std::nullopt;
  std::string dashed = name;
  std::replace(dashed.begin() + 2, dashed.end(), '_', '-');
  if (knows(app, command, dashed)) return dashed;
  for (const auto& [alias, option] : kPyfaiAliases) {
    if (alias == given && knows(app, command, std::string(option))) return std::string(option);
  }
  std::optional<std::string> best;
  std::size_t best_distance = 3;
  bool tie = false;
  for (const CLI::App* a : {&command, &app}) {
    for (const CLI::Option* o : a->get_options()) {
      for (const std::string& l : o->get_lnames()) {
        const std::string candidate = "--" + l;
        const std::size_t d = edit_distance(dashed, candidate);
        if (d < best_distance) {
          best = candidate;
          best_distance = d;
          tie = false;
        } else if (d == best_distance && best && *best != candidate) {
          tie = true;
        }
      }
    }
  }
  if (tie) return std::nullopt;
  return best;
}

std::optional<std::string> unknown_option_hint(const CLI::App& app, int argc,
                                               const char* const* argv) {
  const CLI::App* command = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--") return std::nullopt;
    if (command == nullptr) {
      if (arg.starts_with("-")) {  // an option of azflowctl itself: skip its value
        const CLI::Option* o = app.get_option_no_throw(arg.substr(0, arg.find('=')));
        if (o != nullptr && o->get_type_size() > 0 && arg.find('=') == std::string::npos) ++i;
        continue;
      }
      const auto found = app.get_subcommands([&](const CLI::App* s) { return s->check_name(arg); });
      if (found.empty()) return std::nullopt;
      command = found.front();
      continue;
    }
    if (!arg.starts_with("--") || arg.size() == 2) continue;
    const std::string name = arg.substr(0, arg.find('='));
    if (const auto s = suggest_option(app, *command, name)) {
      return command->get_name() + ": unknown option " + name + ": did you mean " + *s + "?";
    }
  }
  return std::nullopt;
}

}  // namespace azflow::ctl
