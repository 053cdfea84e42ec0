// The Stream V2 parser against messages made by an encoder azflow did not write: Python's cbor2,
// with compressed chunks written by libhdf5 through the bitshuffle and LZ4 filter plugins
// (tests/source/fixtures/make_stream2_messages.py, run at test time with /usr/bin/python3).
// Decoded pixels must equal the frames the script encoded; each broken message must be refused
// with an error naming what is wrong.

#include "stages/source/stream2.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "tests/common/command.hpp"

namespace azflow::source::stream2 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::byte> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> out(chars.size());
  for (std::size_t i = 0; i < chars.size(); ++i) out[i] = static_cast<std::byte>(chars[i]);
  return out;
}

/// The real EIGER 4M stream v1 capture (../shared/real-data), absent on some machines.
fs::path real_v1() {
  const char* root = std::getenv("AZFLOW_SOURCE_DIR");
  return fs::path(root != nullptr ? root : ".") / "../shared/real-data/dls-eiger-detector-stream1";
}

/// Messages generated once for the whole suite, in a temporary folder.
class Stream2Messages : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("azflow_stream2_test_" + std::to_string(getpid()));
    const char* root = std::getenv("AZFLOW_SOURCE_DIR");
    const fs::path script =
        fs::path(root != nullptr ? root : ".") / "tests/source/fixtures/make_stream2_messages.py";
    const auto r = testing::run_command("/usr/bin/python3 " + testing::quote(script.string()) +
                                        " --out-dir " + testing::quote(dir_.string()) +
                                        " --real-v1 " + testing::quote(real_v1().string()));
    ASSERT_EQ(r.code, 0) << r.output;
    std::ifstream in(dir_ / "manifest.json");
    manifest_ = json::parse(in);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static const json& spec(const std::string& name) {
    for (const json& c : manifest_) {
      if (c["name"] == name) return c;
    }
    throw std::runtime_error("no case " + name);
  }
  static std::vector<std::byte> bytes(const std::string& name, const char* ext = ".cbor") {
    return read_file(dir_ / (name + ext));
  }

  static inline fs::path dir_;
  static inline json manifest_;
};

TEST_F(Stream2Messages, ImagesDecodeToTheEncodedFrames) {
  int checked = 0;
  for (const json& c : manifest_) {
    if (c["type"] != "image") continue;
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const std::vector<std::byte> msg = bytes(name);
    const Message m = parse_message(msg);
    ASSERT_TRUE(m.is_image());
    const Image& img = std::get<Image>(m.body);
    EXPECT_EQ(img.image_id, c["image_id"].get<std::uint64_t>());
    EXPECT_EQ(img.series_id, 7u);
    EXPECT_EQ(img.series_unique_id, "series-7-uid");
    EXPECT_EQ(m.unknown_fields, c.value("unknown_fields", 0u));
    const Array& a = img.channel(c["channel"].get<std::string>()).array;
    EXPECT_EQ(a.rows, c["rows"].get<std::size_t>());
    EXPECT_EQ(a.cols, c["cols"].get<std::size_t>());
    EXPECT_EQ(dtype_name(a.dtype), c["dtype"].get<std::string>());
    EXPECT_EQ(decompress::codec_name(a.codec.codec), c["codec"].get<std::string>());
    // No copy: the stored bytes are a view inside the message buffer.
    EXPECT_GE(a.bytes.data(), msg.data());
    EXPECT_LE(a.bytes.data() + a.bytes.size(), msg.data() + msg.size());
    std::vector<std::byte> out(a.decoded_bytes());
    decode(a, out);
    EXPECT_EQ(out, bytes(name, ".bin"));
    ++checked;
  }
  EXPECT_EQ(checked, 10);
}

TEST_F(Stream2Messages, ARealEigerFrameDecodesAsBitshuffleDoes) {
  if (!fs::exists(real_v1() / "streamfile_12")) GTEST_SKIP() << "no " << real_v1();
  const std::vector<std::byte> msg = bytes("real_v1_image");
  const Image img = std::get<Image>(parse_message(msg).body);
  const Array& a = img.channel("").array;
  EXPECT_EQ(a.rows, 2167u);  // v1 shape [2070, 2167] is [x, y]
  EXPECT_EQ(a.cols, 2070u);
  EXPECT_EQ(a.bytes.size(), 1170446u);  // the detector's blob, as it arrived
  std::vector<std::byte> out(a.decoded_bytes());
  decode(a, out);
  EXPECT_EQ(out, bytes("real_v1_image", ".bin"));
}

TEST_F(Stream2Messages, FirstChannelIsTheDefaultAndAMissingOneIsNamed) {
  const std::vector<std::byte> msg = bytes("two_channels");
  const Image img = std::get<Image>(parse_message(msg).body);
  ASSERT_EQ(img.data.size(), 2u);
  EXPECT_EQ(img.channel("").name, "threshold_1");
  EXPECT_EQ(img.channel("threshold_2").name, "threshold_2");
  try {
    (void)img.channel("threshold_3");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no channel 'threshold_3'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("'threshold_1', 'threshold_2'"), std::string::npos);
  }
}

TEST_F(Stream2Messages, StartCarriesGeometryAndPixelMasks) {
  const json& c = spec("start");
  const Message m = parse_message(bytes("start"));
  ASSERT_TRUE(m.is_start());
  const Start& s = std::get<Start>(m.body);
  EXPECT_EQ(s.series_id, 7u);
  EXPECT_EQ(s.series_unique_id, "series-7-uid");
  EXPECT_EQ(s.image_size_x, c["image_size_x"].get<std::size_t>());
  EXPECT_EQ(s.image_size_y, c["image_size_y"].get<std::size_t>());
  ASSERT_TRUE(s.image_dtype);
  EXPECT_EQ(dtype_name(*s.image_dtype), c["image_dtype"].get<std::string>());
  EXPECT_EQ(s.number_of_images, c["number_of_images"].get<std::uint64_t>());
  EXPECT_DOUBLE_EQ(*s.beam_center_x_px, c["beam_center_x"].get<double>());
  EXPECT_DOUBLE_EQ(*s.beam_center_y_px, c["beam_center_y"].get<double>());
  EXPECT_DOUBLE_EQ(*s.detector_distance_m, c["detector_distance_m"].get<double>());
  // incident_wavelength (angstrom) wins over incident_energy
  EXPECT_NEAR(*s.incident_wavelength_m, c["incident_wavelength_m"].get<double>(), 1e-22);
  EXPECT_DOUBLE_EQ(*s.pixel_size_x_m, c["pixel_size_x_m"].get<double>());
  EXPECT_DOUBLE_EQ(*s.pixel_size_y_m, c["pixel_size_y_m"].get<double>());
  EXPECT_DOUBLE_EQ(*s.count_time_s, c["count_time_s"].get<double>());
  EXPECT_DOUBLE_EQ(*s.frame_time_s, c["frame_time_s"].get<double>());
  EXPECT_EQ(s.channels, c["channels"].get<std::vector<std::string>>());
  EXPECT_EQ(s.detector_description, "Dectris EIGER2 Si 4M");
  EXPECT_EQ(m.unknown_fields, c["unknown_fields"].get<std::size_t>());
  // both masks (one bslz4-compressed, one raw) decode to the mask the script wrote
  const std::vector<std::byte> raw = bytes("start", ".bin");
  std::vector<std::uint32_t> expected(raw.size() / 4);
  std::memcpy(expected.data(), raw.data(), raw.size());
  ASSERT_EQ(s.pixel_masks.size(), 2u);
  ASSERT_NE(s.pixel_mask(""), nullptr);
  EXPECT_EQ(*s.pixel_mask(""), expected);
  ASSERT_NE(s.pixel_mask("threshold_2"), nullptr);
  EXPECT_EQ(*s.pixel_mask("threshold_2"), expected);
  EXPECT_EQ(s.pixel_mask("threshold_9"), nullptr);
}

TEST_F(Stream2Messages, WavelengthFromEnergyWhenOnlyEnergyIsSent) {
  const Start s = std::get<Start>(parse_message(bytes("start_energy")).body);
  EXPECT_EQ(s.series_id, 8u);
  ASSERT_TRUE(s.incident_wavelength_m);
  EXPECT_NEAR(*s.incident_wavelength_m, spec("start_energy")["incident_wavelength_m"], 1e-18);
  EXPECT_FALSE(s.image_size_x);
  EXPECT_TRUE(s.pixel_masks.empty());
}

TEST_F(Stream2Messages, EndAndUnknownTypes) {
  const Message e = parse_message(bytes("end"));
  ASSERT_TRUE(e.is_end());
  EXPECT_EQ(std::get<End>(e.body).series_id, 7u);
  EXPECT_EQ(std::get<End>(e.body).series_unique_id, "series-7-uid");
  const Message u = parse_message(bytes("unknown_type"));
  ASSERT_EQ(u.body.index(), 3u);
  EXPECT_EQ(std::get<Unknown>(u.body).type, "calibration");
  EXPECT_EQ(u.unknown_fields, 2u);
}

TEST_F(Stream2Messages, BadMessagesAreRefusedWithTheirReason) {
  int checked = 0;
  for (const json& c : manifest_) {
    if (c["type"] != "error") continue;
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const std::vector<std::byte> msg = bytes(name);
    try {
      (void)parse_message(msg);
      ADD_FAILURE() << "no error for " << name;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInput) << e.what();
      EXPECT_NE(std::string(e.what()).find("stream2: "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(c["error"].get<std::string>()), std::string::npos)
          << e.what();
    }
    ++checked;
  }
  EXPECT_EQ(checked, 17);
}

TEST_F(Stream2Messages, EveryTruncationOfAnImageIsRefused) {
  const std::vector<std::byte> msg = bytes("lz4_uint16");
  for (std::size_t n = 0; n < msg.size(); n += 97) {
    EXPECT_THROW((void)parse_message(std::span(msg).first(n)), Error) << n;
  }
}

TEST(Stream2Limits, MessageAndImageSizesBeyondTheLimitsAreRefused) {
  Limits limits;
  limits.max_message_bytes = 2;
  const std::vector<std::byte> three(3, std::byte{0});
  EXPECT_THROW((void)parse_message(three, limits), Error);
}

TEST(Stream2Decode, CorruptCompressedBytesFailAtDecode) {
  // A bslz4 array whose header is right but whose block is garbage: parse accepts the view,
  // decode refuses it (the bytes are untrusted).
  Array a;
  a.rows = 2;
  a.cols = 4;
  a.dtype = DType::kUint32;
  a.codec = {decompress::Codec::kBitshuffleLz4, 4, 0};
  std::vector<std::byte> chunk(12 + 4 + 3, std::byte{0xff});
  const std::uint8_t header[12] = {0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0, 32};
  std::memcpy(chunk.data(), header, 12);
  a.bytes = chunk;
  std::vector<std::byte> out(a.decoded_bytes());
  EXPECT_THROW(decode(a, out), Error);
}

}  // namespace
}  // namespace azflow::source::stream2
