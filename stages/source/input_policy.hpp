#pragma once
// Which files a process may read for a job: every file HDF5 opens, by name or by following an
// external link, a virtual-dataset source or an external raw-data file, must be a regular file
// inside the allowed input folders once every symbolic link is resolved (azflowd's
// allowed_input_roots; docs/security.md, "Input files"). Process-wide: azflowd sets it from its
// configuration and passes it to its stage processes in the environment; `azflow integrate` sets
// no roots (any folder), but still never opens a FIFO or a device.

#include <filesystem>
#include <string>
#include <vector>

namespace azflow::source {

/// The environment variable azflowd passes the roots to its stages in: absolute paths, one per
/// line.
inline constexpr const char* kInputRootsEnv = "AZFLOW_ALLOWED_INPUT_ROOTS";

/// Sets the allowed input folders of this process (absolute; {"/"} or empty = anywhere).
void set_allowed_input_roots(std::vector<std::filesystem::path> roots);
/// Sets them from kInputRootsEnv if it is set (a stage process).
void set_allowed_input_roots_from_env();
/// The value of kInputRootsEnv for `roots`.
std::string input_roots_env_value(const std::vector<std::filesystem::path>& roots);

/// Checks `file` before anything opens it, with stat(2) only (a FIFO is never opened, so this
/// never blocks): false if it does not exist; true if it is a regular file inside the roots.
/// Throws azflow::Error (kInput) naming the file and `via` (how it was reached, e.g. "external
/// link /entry/data/data_000001 of /data/m.h5"; "" for a file named in the request) when it is
/// not a regular file (a FIFO, a device, a folder) or lies outside the roots.
bool check_input_file(const std::filesystem::path& file, const std::string& via);

/// Checks the file behind an open descriptor (after opening by name: closes the window between
/// the check and the open) with fstat and /proc/self/fd: regular and inside the roots. Throws
/// azflow::Error (kInput) naming `file`.
void check_open_input(int fd, const std::filesystem::path& file);

/// check_hdf5_references (stages/source/h5.hpp) checks what an open HDF5 file can make HDF5 open.

/// check_input_file, then for an HDF5 file (by its signature) opened read-only, check_open_input
/// and check_hdf5_references: for a mask, dark or flat image before it is loaded. Throws as those.
void check_input_tree(const std::filesystem::path& file, const std::string& via);

}  // namespace azflow::source
