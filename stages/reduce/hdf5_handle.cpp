#include "stages/reduce/hdf5_handle.hpp"

#include "base/error.hpp"

namespace azflow::reduce::h5 {

Handle check(hid_t id, std::string_view what) {
  if (id < 0) throw Error(ErrorCategory::kIo, std::string(what));
  return Handle(id);
}

void check_status(herr_t status, std::string_view what) {
  if (status < 0) throw Error(ErrorCategory::kIo, std::string(what));
}

void silence_errors() noexcept { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

namespace {

/// A variable-length UTF-8 string type.
Handle vlen_string_type() {
  Handle type = check(H5Tcopy(H5T_C_S1), "H5Tcopy failed");
  check_status(H5Tset_size(type.get(), H5T_VARIABLE), "H5Tset_size failed");
  check_status(H5Tset_cset(type.get(), H5T_CSET_UTF8), "H5Tset_cset failed");
  return type;
}

Handle simple_space(std::span<const hsize_t> dims) {
  return check(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               "H5Screate_simple failed");
}

void write_attr(hid_t obj, const std::string& name, hid_t type, hid_t space, const void* data) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle attr = check(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                      "cannot create attribute " + name);
  check_status(H5Awrite(attr.get(), type, data), "cannot write attribute " + name);
}

Handle write_dataset(hid_t parent, const std::string& name, hid_t type, hid_t space,
                     const void* data) {
  Handle ds =
      check(H5Dcreate2(parent, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
            "cannot create dataset " + name);
  if (H5Sget_simple_extent_npoints(space) > 0) {
    check_status(H5Dwrite(ds.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data),
                 "cannot write dataset " + name);
  }
  return ds;
}

std::vector<const char*> c_strings(std::span<const std::string> values) {
  std::vector<const char*> out;
  out.reserve(values.size());
  for (const auto& v : values) out.push_back(v.c_str());
  return out;
}

}  // namespace

Handle create_nx_group(hid_t parent, const std::string& name, std::string_view nx_class) {
  Handle group = check(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                       "cannot create group " + name);
  write_string_attr(group.get(), "NX_class", nx_class);
  return group;
}

void write_string_attr(hid_t obj, const std::string& name, std::string_view value) {
  Handle type = vlen_string_type();
  Handle space = check(H5Screate(H5S_SCALAR), "H5Screate failed");
  std::string copy(value);
  const char* ptr = copy.c_str();
  write_attr(obj, name, type.get(), space.get(), &ptr);
}

void write_string_array_attr(hid_t obj, const std::string& name,
                             std::span<const std::string> values) {
  Handle type = vlen_string_type();
  const hsize_t dims[1] = {values.size()};
  Handle space = simple_space(dims);
  auto ptrs = c_strings(values);
  write_attr(obj, name, type.get(), space.get(), ptrs.data());
}

void write_int_attr(hid_t obj, const std::string& name, std::int64_t value) {
  Handle space = check(H5Screate(H5S_SCALAR), "H5Screate failed");
  write_attr(obj, name, H5T_NATIVE_INT64, space.get(), &value);
}

Handle write_string(hid_t parent, const std::string& name, std::string_view value) {
  Handle type = vlen_string_type();
  Handle space = check(H5Screate(H5S_SCALAR), "H5Screate failed");
  std::string copy(value);
  const char* ptr = copy.c_str();
  return write_dataset(parent, name, type.get(), space.get(), &ptr);
}

Handle write_string_array(hid_t parent, const std::string& name,
                          std::span<const std::string> values) {
  Handle type = vlen_string_type();
  const hsize_t dims[1] = {values.size()};
  Handle space = simple_space(dims);
  auto ptrs = c_strings(values);
  return write_dataset(parent, name, type.get(), space.get(), ptrs.data());
}

Handle write_scalar(hid_t parent, const std::string& name, double value) {
  Handle space = check(H5Screate(H5S_SCALAR), "H5Screate failed");
  return write_dataset(parent, name, H5T_NATIVE_DOUBLE, space.get(), &value);
}

Handle write_scalar(hid_t parent, const std::string& name, std::int64_t value) {
  Handle space = check(H5Screate(H5S_SCALAR), "H5Screate failed");
  return write_dataset(parent, name, H5T_NATIVE_INT64, space.get(), &value);
}

Handle write_array(hid_t parent, const std::string& name, std::span<const hsize_t> dims,
                   std::span<const double> data) {
  Handle space = simple_space(dims);
  return write_dataset(parent, name, H5T_NATIVE_DOUBLE, space.get(), data.data());
}

Handle write_array(hid_t parent, const std::string& name, std::span<const hsize_t> dims,
                   std::span<const float> data) {
  Handle space = simple_space(dims);
  return write_dataset(parent, name, H5T_NATIVE_FLOAT, space.get(), data.data());
}

Handle write_array(hid_t parent, const std::string& name, std::span<const hsize_t> dims,
                   std::span<const std::int64_t> data) {
  Handle space = simple_space(dims);
  return write_dataset(parent, name, H5T_NATIVE_INT64, space.get(), data.data());
}

}  // namespace azflow::reduce::h5
