#include "stages/source/input_policy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>

#include "base/error.hpp"
#include "base/path_inside.hpp"
#include "stages/source/h5.hpp"

namespace azflow::source {

namespace {

namespace fs = std::filesystem;

struct Policy {
  std::mutex mutex;
  bool set = false;
  std::vector<fs::path> roots;  // weakly canonical
};

Policy& policy() {
  static Policy p;
  return p;
}

std::optional<std::vector<fs::path>> roots_now() {
  Policy& p = policy();
  std::lock_guard lock(p.mutex);
  if (!p.set) return std::nullopt;
  return p.roots;
}

bool anywhere(const std::vector<fs::path>& roots) {
  for (const fs::path& r : roots) {
    if (r == "/") return true;
  }
  return roots.empty();
}

std::string roots_text(const std::vector<fs::path>& roots) {
  std::string out;
  for (const auto& r : roots) out += (out.empty() ? "" : ", ") + r.string();
  return out;
}

std::string kind_of(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string named(const fs::path& file, const std::string& via) {
  return "input file " + file.string() + (via.empty() ? "" : " (" + via + ")");
}

/// Throws unless `real` (symbolic links resolved) is inside the roots.
void check_inside(const fs::path& real, const fs::path& file, const std::string& via) {
  const auto roots = roots_now();
  if (!roots || anywhere(*roots)) return;
  for (const fs::path& root : *roots) {
    if (path_inside(real, root)) return;
  }
  throw Error(ErrorCategory::kInput, named(file, via) + " is " + real.string() +
                                         ", outside the allowed input folders of this daemon (" +
                                         roots_text(*roots) + "): not read");
}

/// Every name HDF5 may try for a file `stored` in a link or property of `holder` (H5Fint.c
/// H5F_prefix_open_file: the name itself; for an absolute name that fails, its last component;
/// each prefix of `env`; beside the holding file; relative to the working folder).
std::vector<fs::path> candidates(const std::string& stored, const fs::path& holder,
                                 const char* env) {
  const fs::path name(stored);
  std::vector<fs::path> out;
  fs::path rest = name;
  if (name.is_absolute()) {
    out.push_back(name);
    rest = name.filename();
  }
  if (const char* prefixes = std::getenv(env)) {
    std::stringstream in(prefixes);
    for (std::string prefix; std::getline(in, prefix, ':');) {
      if (!prefix.empty()) out.push_back(fs::path(prefix) / rest);
    }
  }
  out.push_back(holder.parent_path() / rest);
  std::error_code ec;
  out.push_back(fs::current_path(ec) / rest);
  return out;
}

struct Walk {
  std::set<fs::path> seen;  // real paths of the HDF5 files checked
  int depth = 0;
};

void walk_file(hid_t file, const fs::path& path, Walk& walk);

/// Checks each candidate of `stored` that exists; walks those that are HDF5 files.
void check_target(const std::string& stored, const fs::path& holder, const char* env,
                  const std::string& via, Walk& walk) {
  for (const fs::path& c : candidates(stored, holder, env)) {
    if (!check_input_file(c, via)) continue;
    std::error_code ec;
    const fs::path real = fs::canonical(c, ec);
    if (ec || walk.seen.contains(real) || walk.depth >= 16) continue;
    htri_t is_h5 = -1;
    H5E_BEGIN_TRY { is_h5 = H5Fis_hdf5(real.c_str()); }
    H5E_END_TRY;
    if (is_h5 <= 0) continue;
    hid_t id = -1;
    H5E_BEGIN_TRY { id = H5Fopen(real.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    h5::Id f(id);
    if (!f.valid()) continue;  // HDF5 cannot open it now: nor can it follow the link into it
    ++walk.depth;
    walk_file(f.get(), c, walk);
    --walk.depth;
  }
}

/// A dataset's virtual sources and external raw-data files.
void check_dataset(hid_t dset, const std::string& name, const fs::path& path, Walk& walk) {
  h5::Id dcpl(H5Dget_create_plist(dset));
  if (!dcpl.valid()) return;
  const std::string where = "dataset " + name + " of " + path.string();
  if (H5Pget_layout(dcpl.get()) == H5D_VIRTUAL) {
    std::size_t count = 0;
    if (H5Pget_virtual_count(dcpl.get(), &count) < 0) count = 0;
    for (std::size_t i = 0; i < count; ++i) {
      const ssize_t len = H5Pget_virtual_filename(dcpl.get(), i, nullptr, 0);
      if (len < 0) continue;
      std::string source(static_cast<std::size_t>(len) + 1, '\0');
      H5Pget_virtual_filename(dcpl.get(), i, source.data(), source.size());
      source.resize(static_cast<std::size_t>(len));
      if (source == ".") continue;  // the same file
      if (source.find('%') != std::string::npos) {
        throw Error(ErrorCategory::kInput, "virtual " + where + " has a source file pattern '" +
                                               source + "': not supported (not read)");
      }
      check_target(source, path, "HDF5_VDS_PREFIX", "virtual source of " + where, walk);
    }
  }
  const int external = H5Pget_external_count(dcpl.get());
  for (int i = 0; i < external; ++i) {
    std::string file(4096, '\0');
    off_t offset = 0;
    hsize_t size = 0;
    if (H5Pget_external(dcpl.get(), static_cast<unsigned>(i), file.size(), file.data(), &offset,
                        &size) < 0) {
      continue;
    }
    file.resize(file.find('\0'));
    check_target(file, path, "HDF5_EXTFILE_PREFIX", "external raw data of " + where, walk);
  }
}

struct VisitState {
  const fs::path* path;
  Walk* walk;
  std::optional<Error> error;
};

herr_t visit_link(hid_t group, const char* name, const H5L_info_t* info, void* data) {
  auto& state = *static_cast<VisitState*>(data);
  try {
    const std::string link = std::string("/") + name;
    if (info->type == H5L_TYPE_EXTERNAL) {
      if (const auto target = h5::external_link(group, name)) {
        check_target(target->file, *state.path, "HDF5_EXT_PREFIX",
                     "external link " + link + " of " + state.path->string(), *state.walk);
      }
    } else if (info->type == H5L_TYPE_HARD) {
      hid_t id = -1;
      H5E_BEGIN_TRY { id = H5Oopen(group, name, H5P_DEFAULT); }
      H5E_END_TRY;
      h5::Id obj(id);
      if (obj.valid() && H5Iget_type(obj.get()) == H5I_DATASET) {
        check_dataset(obj.get(), link, *state.path, *state.walk);
      }
    }
    return 0;
  } catch (const Error& e) {
    state.error = e;
    return -1;  // stops the visit
  }
}

void walk_file(hid_t file, const fs::path& path, Walk& walk) {
  std::error_code ec;
  const fs::path real = fs::canonical(path, ec);
  if (!ec && !walk.seen.insert(real).second) return;
  VisitState state{&path, &walk, std::nullopt};
  H5E_BEGIN_TRY { H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, visit_link, &state); }
  H5E_END_TRY;
  if (state.error) throw *state.error;
}

}  // namespace

void set_allowed_input_roots(std::vector<fs::path> roots) {
  for (fs::path& r : roots) {
    std::error_code ec;
    const fs::path c = fs::weakly_canonical(r, ec);
    if (!ec) r = c;
  }
  Policy& p = policy();
  std::lock_guard lock(p.mutex);
  p.roots = std::move(roots);
  p.set = true;
}

void set_allowed_input_roots_from_env() {
  const char* value = std::getenv(kInputRootsEnv);
  if (value == nullptr) return;
  std::vector<fs::path> roots;
  std::stringstream in(value);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) roots.emplace_back(line);
  }
  set_allowed_input_roots(std::move(roots));
}

std::string input_roots_env_value(const std::vector<fs::path>& roots) {
  std::string out;
  for (const fs::path& r : roots) out += r.string() + "\n";
  return out;
}

bool check_input_file(const fs::path& file, const std::string& via) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return false;
  if (!S_ISREG(st.st_mode)) {
    throw Error(ErrorCategory::kInput,
                named(file, via) + " is " + kind_of(st.st_mode) + ", not a regular file: not read");
  }
  std::error_code ec;
  const fs::path real = fs::canonical(file, ec);
  if (ec) return false;
  check_inside(real, file, via);
  return true;
}

void check_open_input(int fd, const fs::path& file) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return;
  if (!S_ISREG(st.st_mode)) {
    throw Error(ErrorCategory::kInput,
                named(file, "") + " is " + kind_of(st.st_mode) + ", not a regular file: not read");
  }
  std::string link(4096, '\0');
  const ssize_t n =
      ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), link.data(), link.size());
  if (n <= 0) return;  // no /proc: the check before the open stands alone
  link.resize(static_cast<std::size_t>(n));
  check_inside(link, file, "as opened");
}

void check_hdf5_references(hid_t file_id, const fs::path& path) {
  if (!roots_now()) return;
  Walk walk;
  walk_file(file_id, path, walk);
}

void check_input_tree(const fs::path& file, const std::string& via) {
  if (!check_input_file(file, via) || !roots_now()) return;
  htri_t is_h5 = -1;
  H5E_BEGIN_TRY { is_h5 = H5Fis_hdf5(file.c_str()); }
  H5E_END_TRY;
  if (is_h5 <= 0) return;
  hid_t id = -1;
  H5E_BEGIN_TRY { id = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT); }
  H5E_END_TRY;
  h5::Id f(id);
  if (!f.valid()) return;  // the loader reports why it cannot open it
  if (const auto raw = h5::raw_file(f.get())) check_open_input(raw->fd, file);
  check_hdf5_references(f.get(), file);
}

}  // namespace azflow::source
