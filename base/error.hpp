#pragma once
// The one exception type azflow throws for setup, resource, input and programming errors.
// Expected outcomes (would block, timeout, queue full) are return values, never exceptions.

#include <stdexcept>
#include <string>
#include <string_view>

namespace azflow {

/// What kind of failure an Error reports; printed as a short word before the message.
enum class ErrorCategory {
  kConfig,    ///< invalid setting, option or request field
  kInput,     ///< bad input data: malformed file, wrong shape or dtype, corrupt chunk
  kIo,        ///< a file or socket could not be opened, read or written
  kResource,  ///< out of memory, shared memory, device or other resource
  kInternal,  ///< a broken invariant: a bug in azflow
};

/// Short lower-case name of a category ("config", "input", "io", "resource", "internal").
constexpr std::string_view category_name(ErrorCategory c) noexcept {
  switch (c) {
    case ErrorCategory::kConfig:
      return "config";
    case ErrorCategory::kInput:
      return "input";
    case ErrorCategory::kIo:
      return "io";
    case ErrorCategory::kResource:
      return "resource";
    case ErrorCategory::kInternal:
      return "internal";
  }
  return "unknown";
}

/// azflow's exception: a category and a message that names the file, dataset, frame, stage or
/// request field concerned. what() returns "<category>: <message>".
class Error : public std::runtime_error {
 public:
  Error(ErrorCategory category, const std::string& message)
      : std::runtime_error(std::string(category_name(category)) + ": " + message),
        category_(category) {}

  [[nodiscard]] ErrorCategory category() const noexcept { return category_; }

 private:
  ErrorCategory category_;
};

}  // namespace azflow
