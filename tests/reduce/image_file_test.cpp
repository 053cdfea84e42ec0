// Correction images (mask, dark, flat) from NumPy .npy, EDF and HDF5: files written by NumPy and
// fabio themselves (committed fixtures), files built byte by byte here, and the errors for wrong
// shapes and malformed headers.

#include "stages/reduce/image_file.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace azflow::reduce {
namespace {

namespace fs = std::filesystem;

const fs::path kFixtures = fs::path(AZFLOW_REDUCE_FIXTURES);

/// 10 * r + c for a 3 x 5 image, as the fixture script writes.
std::vector<double> expected_values() {
  std::vector<double> v;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 5; ++c) v.push_back(10.0 * r + c);
  }
  return v;
}

/// The message of the azflow::Error that `f` throws (fails the test if none).
template <typename F>
std::string error_of(F&& f, ErrorCategory expected = ErrorCategory::kInput) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), expected) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no azflow::Error thrown";
  return {};
}

class ImageFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("azflow_image_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& bytes) const {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }

  /// A .npy file: version 1 (uint16 header length) or 2 (uint32), header padded to 64 bytes.
  std::string npy(const std::string& name, const std::string& dict, const std::string& data,
                  int version = 1) const {
    std::string header = dict;
    const std::size_t prefix = version == 1 ? 10 : 12;
    while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    std::string bytes = "\x93NUMPY";
    bytes += static_cast<char>(version);
    bytes += '\0';
    const auto n = static_cast<std::uint32_t>(header.size());
    bytes += static_cast<char>(n & 0xff);
    bytes += static_cast<char>((n >> 8) & 0xff);
    if (version != 1) {
      bytes += static_cast<char>((n >> 16) & 0xff);
      bytes += static_cast<char>((n >> 24) & 0xff);
    }
    return write(name, bytes + header + data);
  }

  /// An EDF file: "{\n" + keys + padding + "}\n" (512 bytes) + data.
  std::string edf(const std::string& name, const std::string& keys, const std::string& data) const {
    std::string header = "{\n" + keys;
    while (header.size() < 510) header += ' ';
    header += "}\n";
    return write(name, header + data);
  }

  fs::path dir_;
};

template <typename T>
std::string raw_bytes(const std::vector<T>& values, bool big_endian = false) {
  std::string out(values.size() * sizeof(T), '\0');
  std::memcpy(out.data(), values.data(), out.size());
  if (big_endian) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      std::reverse(out.begin() + static_cast<std::ptrdiff_t>(i * sizeof(T)),
                   out.begin() + static_cast<std::ptrdiff_t>((i + 1) * sizeof(T)));
    }
  }
  return out;
}

TEST_F(ImageFileTest, NumpyWrittenFilesRoundTrip) {
  for (const char* name : {"numpy_f4.npy", "numpy_u2_v2.npy"}) {
    const Image image = read_image((kFixtures / name).string());
    EXPECT_EQ(image.rows, 3u) << name;
    EXPECT_EQ(image.cols, 5u) << name;
    EXPECT_EQ(image.values, expected_values()) << name;
  }
  const Image mask = read_image((kFixtures / "numpy_bool.npy").string());
  ASSERT_EQ(mask.values.size(), 15u);
  for (std::size_t i = 0; i < 15; ++i) {
    EXPECT_EQ(mask.values[i], double(int(expected_values()[i]) % 2)) << i;
  }
}

TEST_F(ImageFileTest, FabioWrittenEdfRoundTrip) {
  for (const char* name : {"fabio_i4.edf", "fabio_f4.edf", "fabio_u2.edf"}) {
    const Image image = read_image((kFixtures / name).string());
    EXPECT_EQ(image.rows, 3u) << name;
    EXPECT_EQ(image.cols, 5u) << name;
    EXPECT_EQ(image.values, expected_values()) << name;
  }
}

TEST_F(ImageFileTest, NpyTypesVersionsAndLeadingUnitAxis) {
  const std::vector<std::int32_t> i4{-1, 2, -3, 4, 5, 6};
  Image a = read_image(
      npy("a.npy", "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", raw_bytes(i4)));
  EXPECT_EQ(a.values, (std::vector<double>{-1, 2, -3, 4, 5, 6}));
  const std::vector<double> f8{0.5, 1.5, 2.5, 3.5};
  Image b = read_image(npy(
      "b.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2, 2), }", raw_bytes(f8), 2));
  EXPECT_EQ(b.rows, 2u);
  EXPECT_EQ(b.values, f8);
  const std::vector<std::uint8_t> u1{0, 1, 255};
  Image c = read_image(
      npy("c.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 1), }", raw_bytes(u1)));
  EXPECT_EQ(c.values, (std::vector<double>{0, 1, 255}));
}

TEST_F(ImageFileTest, NpyRejectsWhatItCannotRead) {
  const std::string data = raw_bytes(std::vector<float>{1, 2, 3, 4});
  auto big = npy("big.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", data);
  EXPECT_NE(error_of([&] { read_image(big); }).find("big-endian"), std::string::npos);
  auto fortran = npy("f.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", data);
  EXPECT_NE(error_of([&] { read_image(fortran); }).find("Fortran"), std::string::npos);
  auto noshape = npy("noshape.npy", "{'descr': '<f4', 'fortran_order': False, }", data);
  const std::string msg = error_of([&] { read_image(noshape); });
  EXPECT_NE(msg.find("noshape.npy"), std::string::npos) << msg;
  EXPECT_NE(msg.find("malformed .npy header"), std::string::npos) << msg;
  auto complex = npy("c.npy", "{'descr': '<c8', 'fortran_order': False, 'shape': (2, 2), }", data);
  EXPECT_NE(error_of([&] { read_image(complex); }).find("unsupported .npy dtype"),
            std::string::npos);
  auto one_d = npy("v.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", data);
  EXPECT_NE(error_of([&] { read_image(one_d); }).find("(4,)"), std::string::npos);
  auto truncated =
      npy("t.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 4), }", data);
  EXPECT_NE(error_of([&] { read_image(truncated); }).find("truncated"), std::string::npos);
  auto cut = write("cut.npy", std::string("\x93NUMPY\x01\x00\xff\x00{'descr'", 17));
  EXPECT_NE(error_of([&] { read_image(cut); }).find("truncated .npy header"), std::string::npos);
}

TEST_F(ImageFileTest, EdfByteOrdersAndTypes) {
  const std::vector<std::uint16_t> u2{1, 256, 65535, 7, 8, 9};
  Image a = read_image(edf("a.edf",
                           "ByteOrder = HighByteFirst ;\nDataType = UnsignedShort ;\n"
                           "Dim_1 = 3 ;\nDim_2 = 2 ;\nSize = 12 ;\n",
                           raw_bytes(u2, true)));
  EXPECT_EQ(a.rows, 2u);
  EXPECT_EQ(a.cols, 3u);
  EXPECT_EQ(a.values, (std::vector<double>{1, 256, 65535, 7, 8, 9}));
  const std::vector<double> f8{-1.25, 2.5};
  Image b = read_image(edf("b.edf",
                           "ByteOrder = LowByteFirst ;\nDataType = DoubleValue ;\n"
                           "Dim_1 = 1 ;\nDim_2 = 2 ;\n",
                           raw_bytes(f8)));
  EXPECT_EQ(b.values, f8);
}

TEST_F(ImageFileTest, EdfMalformedHeadersAreClearErrors) {
  const std::string data = raw_bytes(std::vector<std::int32_t>{1, 2, 3, 4});
  auto nodim = edf("nodim.edf", "ByteOrder = LowByteFirst ;\nDataType = SignedInteger ;\n", data);
  std::string msg = error_of([&] { read_image(nodim); });
  EXPECT_NE(msg.find("nodim.edf"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Dim_1"), std::string::npos) << msg;
  auto type = edf("type.edf", "DataType = Complex ;\nDim_1 = 2 ;\nDim_2 = 2 ;\n", data);
  EXPECT_NE(error_of([&] { read_image(type); }).find("unsupported EDF DataType 'Complex'"),
            std::string::npos);
  auto unclosed = write("open.edf", "{\nDim_1 = 2 ;\nDim_2 = 2 ;\n");
  EXPECT_NE(error_of([&] { read_image(unclosed); }).find("no closing"), std::string::npos);
  auto bad_dim = edf("dim.edf", "DataType = SignedInteger ;\nDim_1 = two ;\nDim_2 = 2 ;\n", data);
  EXPECT_NE(error_of([&] { read_image(bad_dim); }).find("Dim_1"), std::string::npos);
  auto short_data =
      edf("short.edf", "DataType = SignedInteger ;\nDim_1 = 4 ;\nDim_2 = 4 ;\n", data);
  EXPECT_NE(error_of([&] { read_image(short_data); }).find("truncated"), std::string::npos);
}

TEST_F(ImageFileTest, Hdf5FirstImageOrNamedDataset) {
  const std::string path = (dir_ / "images.h5").string();
  {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "a", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t one_d[1] = {4};
    hid_t s1 = H5Screate_simple(1, one_d, nullptr);
    const std::int32_t vec[4] = {9, 9, 9, 9};
    hid_t d1 = H5Dcreate2(g, "vector", H5T_STD_I32LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d1, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, vec);
    const hsize_t two_d[2] = {2, 2};
    hid_t s2 = H5Screate_simple(2, two_d, nullptr);
    const std::uint16_t img[4] = {1, 2, 3, 4};
    hid_t d2 = H5Dcreate2(g, "mask", H5T_STD_U16LE, s2, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d2, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, img);
    const float other[4] = {0.5f, 1.5f, 2.5f, 3.5f};
    hid_t d3 = H5Dcreate2(f, "z_dark", H5T_IEEE_F32LE, s2, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d3, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, other);
    for (hid_t id : {d1, d2, d3}) H5Dclose(id);
    H5Sclose(s1);
    H5Sclose(s2);
    H5Gclose(g);
    H5Fclose(f);
  }
  EXPECT_EQ(read_image(path).values, (std::vector<double>{1, 2, 3, 4}));
  EXPECT_EQ(read_image(path + "::/z_dark").values, (std::vector<double>{0.5, 1.5, 2.5, 3.5}));
  const std::string msg = error_of([&] { read_image(path + "::/nope"); });
  EXPECT_NE(msg.find("/nope"), std::string::npos) << msg;
  EXPECT_NE(msg.find("images.h5"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { read_image(path + "::/a/vector"); }).find("2D"), std::string::npos);
}

TEST_F(ImageFileTest, WrongShapeNamesFileAndBothShapes) {
  const std::string spec = (kFixtures / "numpy_f4.npy").string();
  const std::string msg = error_of([&] { read_image(spec, 195, 487, "mask"); });
  EXPECT_NE(msg.find("mask"), std::string::npos) << msg;
  EXPECT_NE(msg.find(spec), std::string::npos) << msg;
  EXPECT_NE(msg.find("(3, 5)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(195, 487)"), std::string::npos) << msg;
  EXPECT_EQ(read_image(spec, 3, 5, "mask").values, expected_values());
}

TEST_F(ImageFileTest, MissingOrUnknownFiles) {
  const std::string missing = (dir_ / "missing.npy").string();
  EXPECT_NE(error_of([&] { read_image(missing); }, ErrorCategory::kIo).find(missing),
            std::string::npos);
  const std::string text = write("notes.txt", "hello world");
  EXPECT_NE(error_of([&] { read_image(text); }).find("unknown image format"), std::string::npos);
  const std::string npy_path = (kFixtures / "numpy_f4.npy").string();
  EXPECT_NE(error_of([&] { read_image(npy_path + "::/data"); }).find("not HDF5"),
            std::string::npos);
}

}  // namespace
}  // namespace azflow::reduce
