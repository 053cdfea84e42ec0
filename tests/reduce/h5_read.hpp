#pragma once
// Test helpers: read back datasets and attributes of an HDF5 file with the HDF5 C API, as an
// independent check of what azflow wrote. Each helper fails the current test (ADD_FAILURE) and
// returns an empty value when the object is missing.

#include <hdf5.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace azflow::testing {

/// An open HDF5 file, closed on destruction.
class H5File {
 public:
  explicit H5File(const std::string& path)
      : id_(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)) {
    EXPECT_GE(id_, 0) << "cannot open " << path;
  }
  ~H5File() {
    if (id_ >= 0) H5Fclose(id_);
  }
  H5File(const H5File&) = delete;
  H5File& operator=(const H5File&) = delete;
  [[nodiscard]] hid_t id() const { return id_; }

  /// Whether `path` names a link in the file (every intermediate group must exist).
  [[nodiscard]] bool exists(const std::string& path) const {
    std::string partial;
    std::size_t pos = 0;
    while (pos != std::string::npos) {
      pos = path.find('/', pos + 1);
      partial = path.substr(0, pos);
      if (partial.empty() || partial == "/") continue;
      if (H5Lexists(id_, partial.c_str(), H5P_DEFAULT) <= 0) return false;
    }
    return true;
  }

  /// Dimensions of a dataset.
  [[nodiscard]] std::vector<hsize_t> dims(const std::string& path) const {
    hid_t ds = H5Dopen2(id_, path.c_str(), H5P_DEFAULT);
    if (ds < 0) {
      ADD_FAILURE() << "no dataset " << path;
      return {};
    }
    hid_t space = H5Dget_space(ds);
    std::vector<hsize_t> d(static_cast<std::size_t>(H5Sget_simple_extent_ndims(space)));
    H5Sget_simple_extent_dims(space, d.data(), nullptr);
    H5Sclose(space);
    H5Dclose(ds);
    return d;
  }

  /// A numeric dataset, converted to double, row-major.
  [[nodiscard]] std::vector<double> doubles(const std::string& path) const {
    hid_t ds = H5Dopen2(id_, path.c_str(), H5P_DEFAULT);
    if (ds < 0) {
      ADD_FAILURE() << "no dataset " << path;
      return {};
    }
    hid_t space = H5Dget_space(ds);
    std::vector<double> out(static_cast<std::size_t>(H5Sget_simple_extent_npoints(space)));
    if (!out.empty()) H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data());
    H5Sclose(space);
    H5Dclose(ds);
    return out;
  }

  /// A scalar or 1D string dataset (variable- or fixed-length).
  [[nodiscard]] std::vector<std::string> strings(const std::string& path) const {
    hid_t ds = H5Dopen2(id_, path.c_str(), H5P_DEFAULT);
    if (ds < 0) {
      ADD_FAILURE() << "no dataset " << path;
      return {};
    }
    auto out = read_strings(ds, false);
    H5Dclose(ds);
    return out;
  }

  /// A string or string-array attribute of the object at `path`.
  [[nodiscard]] std::vector<std::string> string_attr(const std::string& path,
                                                     const std::string& name) const {
    hid_t attr = H5Aopen_by_name(id_, path.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0) {
      ADD_FAILURE() << "no attribute " << path << "@" << name;
      return {};
    }
    auto out = read_strings(attr, true);
    H5Aclose(attr);
    return out;
  }

  /// An integer attribute.
  [[nodiscard]] std::int64_t int_attr(const std::string& path, const std::string& name) const {
    hid_t attr = H5Aopen_by_name(id_, path.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
    if (attr < 0) {
      ADD_FAILURE() << "no attribute " << path << "@" << name;
      return -1;
    }
    std::int64_t v = -1;
    H5Aread(attr, H5T_NATIVE_INT64, &v);
    H5Aclose(attr);
    return v;
  }

 private:
  static std::vector<std::string> read_strings(hid_t obj, bool is_attr) {
    hid_t type = is_attr ? H5Aget_type(obj) : H5Dget_type(obj);
    hid_t space = is_attr ? H5Aget_space(obj) : H5Dget_space(obj);
    const auto n = static_cast<std::size_t>(H5Sget_simple_extent_npoints(space));
    std::vector<std::string> out;
    if (H5Tis_variable_str(type) > 0) {
      std::vector<char*> ptrs(n, nullptr);
      hid_t mem = H5Tcopy(H5T_C_S1);
      H5Tset_size(mem, H5T_VARIABLE);
      H5Tset_cset(mem, H5Tget_cset(type));
      if (n > 0) {
        if (is_attr) {
          H5Aread(obj, mem, ptrs.data());
        } else {
          H5Dread(obj, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data());
        }
      }
      for (char* p : ptrs) out.emplace_back(p ? p : "");
      if (n > 0) H5Dvlen_reclaim(mem, space, H5P_DEFAULT, ptrs.data());
      H5Tclose(mem);
    } else {
      const std::size_t size = H5Tget_size(type);
      std::vector<char> buf(n * size + 1, '\0');
      if (is_attr) {
        H5Aread(obj, type, buf.data());
      } else {
        H5Dread(obj, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
      }
      for (std::size_t i = 0; i < n; ++i) {
        std::string s(buf.data() + i * size, size);
        out.push_back(s.substr(0, s.find('\0')));
      }
    }
    H5Sclose(space);
    H5Tclose(type);
    return out;
  }

  hid_t id_;
};

}  // namespace azflow::testing
