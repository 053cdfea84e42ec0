#pragma once
// Running a shell command from a test: its exit code and its output (stdout and stderr).

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace azflow::testing {

/// Output and exit code of a shell command (128 + N if killed by signal N; -1 if it could not
/// be started).
struct CommandResult {
  int code = -1;
  std::string output;
};

/// Runs `command` with /bin/sh, stderr merged into stdout, and waits for it.
inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

/// `s` in single quotes for the shell (test paths hold no single quote).
inline std::string quote(const std::string& s) { return "'" + s + "'"; }

}  // namespace azflow::testing
