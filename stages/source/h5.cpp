#include "stages/source/h5.hpp"

#include <algorithm>
#include <cstdlib>

#include "stages/source/input_policy.hpp"

namespace azflow::source::h5 {

Id open_file(const std::filesystem::path& file, bool no_locking) {
  if (!check_input_file(file, "")) return Id();  // missing: the caller reports or waits
  Id fapl(H5Pcreate(H5P_FILE_ACCESS));
#if H5_VERSION_GE(1, 10, 7)
  if (no_locking) H5Pset_file_locking(fapl.get(), false, true);
#else
  (void)no_locking;
#endif
  hid_t id = -1;
  H5E_BEGIN_TRY { id = H5Fopen(file.c_str(), H5F_ACC_RDONLY, fapl.get()); }
  H5E_END_TRY;
  Id opened(id);
  if (opened.valid()) {
    if (const auto raw = raw_file(opened.get())) check_open_input(raw->fd, file);
    check_hdf5_references(opened.get(), file);
  }
  return opened;
}

bool path_exists(hid_t loc, const std::string& path) {
  // H5Lexists fails on a missing parent, so test each component in turn.
  std::size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    const std::string prefix = path.substr(0, pos);
    if (prefix.empty() || prefix == "/") continue;
    htri_t exists = -1;
    H5E_BEGIN_TRY { exists = H5Lexists(loc, prefix.c_str(), H5P_DEFAULT); }
    H5E_END_TRY;
    if (exists <= 0) return false;
  }
  return true;
}

Id open_dataset(hid_t loc, const std::string& path) {
  if (!path_exists(loc, path)) return Id();
  hid_t id = -1;
  H5E_BEGIN_TRY { id = H5Dopen2(loc, path.c_str(), H5P_DEFAULT); }
  H5E_END_TRY;
  return Id(id);
}

std::optional<double> read_number(hid_t loc, const std::string& path) {
  Id d = open_dataset(loc, path);
  if (!d.valid()) return std::nullopt;
  Id type(H5Dget_type(d.get()));
  Id space(H5Dget_space(d.get()));
  const H5T_class_t cls = H5Tget_class(type.get());
  if ((cls != H5T_INTEGER && cls != H5T_FLOAT) || H5Sget_simple_extent_npoints(space.get()) != 1) {
    return std::nullopt;
  }
  double value = 0;
  herr_t status = -1;
  H5E_BEGIN_TRY {
    status = H5Dread(d.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value);
  }
  H5E_END_TRY;
  if (status < 0) return std::nullopt;
  return value;
}

namespace {

// Reads a string from a dataset or attribute `obj` of file type `type`.
std::optional<std::string> read_string_from(hid_t obj, hid_t type, bool attribute) {
  if (H5Tget_class(type) != H5T_STRING) return std::nullopt;
  Id mem(H5Tcopy(H5T_C_S1));
  H5Tset_cset(mem.get(), H5Tget_cset(type));  // h5py writes UTF-8; HDF5 will not convert
  herr_t status = -1;
  std::string out;
  if (H5Tis_variable_str(type) > 0) {
    H5Tset_size(mem.get(), H5T_VARIABLE);
    char* s = nullptr;
    H5E_BEGIN_TRY {
      status = attribute ? H5Aread(obj, mem.get(), &s)
                         : H5Dread(obj, mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &s);
    }
    H5E_END_TRY;
    if (status < 0) return std::nullopt;
    if (s != nullptr) out = s;
    H5free_memory(s);
  } else {
    const std::size_t n = H5Tget_size(type);
    H5Tset_size(mem.get(), n + 1);
    std::string buf(n + 1, '\0');
    H5E_BEGIN_TRY {
      status = attribute ? H5Aread(obj, mem.get(), buf.data())
                         : H5Dread(obj, mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
    }
    H5E_END_TRY;
    if (status < 0) return std::nullopt;
    out = buf.c_str();
  }
  return out;
}

}  // namespace

std::optional<std::string> read_string(hid_t loc, const std::string& path, const char* attribute) {
  Id d = open_dataset(loc, path);
  if (!d.valid()) return std::nullopt;
  if (attribute == nullptr) {
    Id type(H5Dget_type(d.get()));
    return read_string_from(d.get(), type.get(), false);
  }
  if (H5Aexists(d.get(), attribute) <= 0) return std::nullopt;
  Id attr(H5Aopen(d.get(), attribute, H5P_DEFAULT));
  if (!attr.valid()) return std::nullopt;
  Id type(H5Aget_type(attr.get()));
  return read_string_from(attr.get(), type.get(), true);
}

std::vector<std::string> link_names(hid_t loc, const std::string& group) {
  std::vector<std::string> names;
  if (!path_exists(loc, group)) return names;
  hid_t gid = -1;
  H5E_BEGIN_TRY { gid = H5Gopen2(loc, group.c_str(), H5P_DEFAULT); }
  H5E_END_TRY;
  Id g(gid);
  if (!g.valid()) return names;
  H5G_info_t info{};
  if (H5Gget_info(g.get(), &info) < 0) return names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len =
        H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) continue;
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(),
                       H5P_DEFAULT);
    name.resize(static_cast<std::size_t>(len));
    names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::optional<ExternalTarget> external_link(hid_t loc, const std::string& path) {
  H5L_info_t info{};
  herr_t status = -1;
  H5E_BEGIN_TRY { status = H5Lget_info(loc, path.c_str(), &info, H5P_DEFAULT); }
  H5E_END_TRY;
  if (status < 0 || info.type != H5L_TYPE_EXTERNAL) return std::nullopt;
  std::vector<char> value(info.u.val_size);
  if (H5Lget_val(loc, path.c_str(), value.data(), value.size(), H5P_DEFAULT) < 0) {
    return std::nullopt;
  }
  const char* file = nullptr;
  const char* object = nullptr;
  unsigned flags = 0;
  if (H5Lunpack_elink_val(value.data(), value.size(), &flags, &file, &object) < 0) {
    return std::nullopt;
  }
  return ExternalTarget{file, object};
}

bool read_chunk(hid_t dset, const hsize_t* offset, std::uint32_t& filter_mask, void* buf,
                std::size_t buf_size) {
  herr_t status = -1;
  H5E_BEGIN_TRY {
#if H5_VERSION_GE(2, 0, 0)
    std::size_t nalloc = buf_size;
    status = H5Dread_chunk2(dset, H5P_DEFAULT, offset, &filter_mask, buf, &nalloc);
#else
    (void)buf_size;  // the caller sized `buf` with H5Dget_chunk_storage_size
    status = H5Dread_chunk(dset, H5P_DEFAULT, offset, &filter_mask, buf);
#endif
  }
  H5E_END_TRY;
  return status >= 0;
}

std::optional<ChunkLocation> chunk_location(hid_t dset, const hsize_t* offset) {
#if H5_VERSION_GE(1, 10, 5)
  unsigned mask = 0;
  haddr_t addr = HADDR_UNDEF;
  hsize_t size = 0;
  herr_t status = -1;
  H5E_BEGIN_TRY { status = H5Dget_chunk_info_by_coord(dset, offset, &mask, &addr, &size); }
  H5E_END_TRY;
  if (status < 0) return std::nullopt;
  if (addr == HADDR_UNDEF) size = 0;
  return ChunkLocation{size == 0 ? 0 : addr, size, mask};
#else
  (void)dset;
  (void)offset;
  return std::nullopt;
#endif
}

std::optional<RawFile> raw_file(hid_t obj) {
  hid_t fid = -1;
  H5E_BEGIN_TRY { fid = H5Iget_file_id(obj); }
  H5E_END_TRY;
  Id file(fid);
  if (!file.valid()) return std::nullopt;
  Id fapl(H5Fget_access_plist(file.get()));
  Id fcpl(H5Fget_create_plist(file.get()));
  if (!fapl.valid() || !fcpl.valid() || H5Pget_driver(fapl.get()) != H5FD_SEC2) return std::nullopt;
  void* handle = nullptr;
  hsize_t userblock = 0;
  herr_t status = -1;
  H5E_BEGIN_TRY {
    status = H5Fget_vfd_handle(file.get(), H5P_DEFAULT, &handle);
    if (status >= 0) status = H5Pget_userblock(fcpl.get(), &userblock);
  }
  H5E_END_TRY;
  if (status < 0 || handle == nullptr) return std::nullopt;
  return RawFile{*static_cast<int*>(handle), userblock};
}

}  // namespace azflow::source::h5
