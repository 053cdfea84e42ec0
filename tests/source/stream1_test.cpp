// The stream v1 parser against multipart messages made by an encoder azflow did not write
// (tests/source/fixtures/make_stream1_messages.py: Python's json, libhdf5's bitshuffle filter,
// python3-lz4, numpy), and against the real EIGER 4M capture replayed by a pyzmq PUSH sender
// (tests/source/fixtures/replay_stream1_capture.py), whose decoded pixels must equal what Debian's
// bitshuffle module decodes from the same blobs. Each broken message must be refused with an
// error naming what is wrong.

#include "stages/source/stream1.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "base/error.hpp"
#include "tests/common/command.hpp"

namespace azflow::source::stream1 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Bytes = std::vector<std::byte>;

Bytes read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Bytes out(chars.size());
  for (std::size_t i = 0; i < chars.size(); ++i) out[i] = static_cast<std::byte>(chars[i]);
  return out;
}

fs::path source_dir() {
  const char* root = std::getenv("AZFLOW_SOURCE_DIR");
  return fs::path(root != nullptr ? root : ".");
}

/// Parses `parts` (owned buffers) with the v1 parser.
stream2::Message parse_parts(const std::vector<Bytes>& parts) {
  std::vector<std::span<const std::byte>> views(parts.begin(), parts.end());
  return parse_message(views);
}

class Stream1Messages : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("azflow_stream1_test_" + std::to_string(getpid()));
    const fs::path script = source_dir() / "tests/source/fixtures/make_stream1_messages.py";
    const auto r = testing::run_command("/usr/bin/python3 " + testing::quote(script.string()) +
                                        " --out-dir " + testing::quote(dir_.string()));
    ASSERT_EQ(r.code, 0) << r.output;
    std::ifstream in(dir_ / "manifest.json");
    manifest_ = json::parse(in);
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  static std::vector<Bytes> parts(const json& c) {
    std::vector<Bytes> out;
    for (int i = 1; i <= c["parts"].get<int>(); ++i) {
      out.push_back(read_file(dir_ / (c["name"].get<std::string>() + "." + std::to_string(i))));
    }
    return out;
  }
  static const json& spec(const std::string& name) {
    for (const json& c : manifest_) {
      if (c["name"] == name) return c;
    }
    throw std::runtime_error("no case " + name);
  }

  static inline fs::path dir_;
  static inline json manifest_;
};

TEST_F(Stream1Messages, ImagesDecodeToTheEncodedFrames) {
  int checked = 0;
  for (const json& c : manifest_) {
    if (c["type"] != "image") continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    const std::vector<Bytes> p = parts(c);
    const stream2::Message m = parse_parts(p);
    ASSERT_TRUE(m.is_image());
    const auto& img = std::get<stream2::Image>(m.body);
    EXPECT_EQ(img.series_id, 11u);
    EXPECT_EQ(img.image_id, c["image_id"].get<std::uint64_t>());
    ASSERT_EQ(img.data.size(), 1u);
    const stream2::Array& a = img.channel("").array;
    EXPECT_EQ(a.rows, c["rows"].get<std::size_t>());
    EXPECT_EQ(a.cols, c["cols"].get<std::size_t>());
    EXPECT_EQ(dtype_name(a.dtype), c["dtype"].get<std::string>());
    EXPECT_EQ(decompress::codec_name(a.codec.codec), c["codec"].get<std::string>());
    // the array views the blob part: no copy
    EXPECT_EQ(a.bytes.data(), p[2].data());
    Bytes out(a.decoded_bytes());
    stream2::decode(a, out);
    EXPECT_EQ(out, read_file(dir_ / (c["name"].get<std::string>() + ".bin")));
    ++checked;
  }
  EXPECT_EQ(checked, 8);
}

TEST_F(Stream1Messages, HeadersGiveTheStartValues) {
  const Bytes mask_bytes = read_file(dir_ / "mask.bin");
  std::vector<std::uint32_t> mask(mask_bytes.size() / 4);
  std::memcpy(mask.data(), mask_bytes.data(), mask_bytes.size());
  for (const char* name : {"header_all", "header_all_no_d", "header_basic", "header_none"}) {
    SCOPED_TRACE(name);
    const json& c = spec(name);
    const stream2::Message m = parse_parts(parts(c));
    ASSERT_TRUE(m.is_start());
    const auto& s = std::get<stream2::Start>(m.body);
    EXPECT_EQ(s.series_id, 11u);
    const auto opt_eq = [&](const auto& value, const char* key) {
      if (!c.contains(key)) return;
      ASSERT_TRUE(value.has_value()) << key;
      EXPECT_DOUBLE_EQ(static_cast<double>(*value), c[key].get<double>()) << key;
    };
    opt_eq(s.image_size_x, "image_size_x");
    opt_eq(s.image_size_y, "image_size_y");
    opt_eq(s.number_of_images, "number_of_images");
    opt_eq(s.beam_center_x_px, "beam_center_x");
    opt_eq(s.beam_center_y_px, "beam_center_y");
    opt_eq(s.detector_distance_m, "detector_distance_m");
    opt_eq(s.incident_wavelength_m, "incident_wavelength_m");
    opt_eq(s.pixel_size_x_m, "pixel_size_x_m");
    opt_eq(s.pixel_size_y_m, "pixel_size_y_m");
    opt_eq(s.count_time_s, "count_time_s");
    opt_eq(s.frame_time_s, "frame_time_s");
    if (c.contains("image_dtype")) {
      ASSERT_TRUE(s.image_dtype);
      EXPECT_EQ(dtype_name(*s.image_dtype), c["image_dtype"].get<std::string>());
    } else {
      EXPECT_FALSE(s.image_dtype);
    }
    if (c["mask"].get<bool>()) {
      ASSERT_NE(s.pixel_mask(""), nullptr);
      EXPECT_EQ(*s.pixel_mask(""), mask);
    } else {
      EXPECT_EQ(s.pixel_mask(""), nullptr);
    }
  }
}

TEST_F(Stream1Messages, EndAndUnknown) {
  const stream2::Message end = parse_parts(parts(spec("end")));
  ASSERT_TRUE(end.is_end());
  EXPECT_EQ(std::get<stream2::End>(end.body).series_id, 11u);
  const stream2::Message unknown = parse_parts(parts(spec("unknown_htype")));
  ASSERT_EQ(unknown.body.index(), 3u);
  EXPECT_EQ(std::get<stream2::Unknown>(unknown.body).type, "dcalibration-1.0");
}

TEST_F(Stream1Messages, BadMessagesAreRefusedWithTheirReason) {
  int checked = 0;
  for (const json& c : manifest_) {
    if (c["type"] != "error") continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    try {
      (void)parse_parts(parts(c));
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInput);
      const std::string what = e.what();
      EXPECT_NE(what.find("stream1: "), std::string::npos) << what;
      EXPECT_NE(what.find(c["error"].get<std::string>()), std::string::npos) << what;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 20);
}

/// The real capture (../shared/real-data), absent on some machines.
fs::path real_v1() { return source_dir() / "../shared/real-data/dls-eiger-detector-stream1"; }

/// One multipart message from `socket` (empty after the receive timeout).
std::vector<zmq::message_t> receive_multipart(zmq::socket_t& socket) {
  std::vector<zmq::message_t> parts;
  do {
    zmq::message_t part;
    if (!socket.recv(part)) return {};
    parts.push_back(std::move(part));
  } while (parts.back().more());
  return parts;
}

stream2::Message parse_zmq(const std::vector<zmq::message_t>& parts) {
  std::vector<std::span<const std::byte>> views;
  for (const zmq::message_t& p : parts) {
    views.emplace_back(static_cast<const std::byte*>(p.data()), p.size());
  }
  return parse_message(views);
}

TEST(Stream1RealCapture, ReplayedByPyzmqDecodesAsBitshuffleDoes) {
  if (!fs::exists(real_v1() / "streamfile_12")) GTEST_SKIP() << "no " << real_v1();
  const fs::path dir =
      fs::temp_directory_path() / ("azflow_stream1_replay_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string endpoint = "ipc://" + (dir / "dcu.ipc").string();
  zmq::context_t context;
  zmq::socket_t pull(context, zmq::socket_type::pull);
  pull.set(zmq::sockopt::rcvtimeo, 60000);
  pull.connect(endpoint);  // before the sender binds: ZeroMQ connects when it does
  testing::CommandResult sent;
  std::jthread sender([&] {
    const fs::path script = source_dir() / "tests/source/fixtures/replay_stream1_capture.py";
    sent = testing::run_command("/usr/bin/python3 " + testing::quote(script.string()) +
                                " --capture " + testing::quote(real_v1().string()) +
                                " --endpoint " + testing::quote(endpoint) + " --expected-dir " +
                                testing::quote(dir.string()));
  });
  std::vector<stream2::Message> messages;
  std::vector<std::vector<zmq::message_t>> buffers;  // the messages view them
  for (int i = 0; i < 5; ++i) {
    buffers.push_back(receive_multipart(pull));
    ASSERT_FALSE(buffers.back().empty()) << "message " << i << " never arrived";
    messages.push_back(parse_zmq(buffers.back()));
  }
  sender.join();
  ASSERT_EQ(sent.code, 0) << sent.output;
  ASSERT_EQ(buffers[0].size(), 9u);

  ASSERT_TRUE(messages[0].is_start());
  const auto& s = std::get<stream2::Start>(messages[0].body);
  EXPECT_EQ(s.series_id, 6u);
  EXPECT_EQ(s.image_size_x, 2070u);
  EXPECT_EQ(s.image_size_y, 2167u);
  EXPECT_EQ(s.number_of_images, 10u);  // nimages 10 x ntrigger 1, of which 3 were captured
  ASSERT_TRUE(s.incident_wavelength_m);
  EXPECT_DOUBLE_EQ(*s.incident_wavelength_m, 1.5406012535095215e-10);
  EXPECT_DOUBLE_EQ(*s.pixel_size_x_m, 7.5000003562308848e-05);
  EXPECT_EQ(s.detector_description, "Dectris Eiger 4M");
  const Bytes mask_bytes = read_file(dir / "mask.bin");
  ASSERT_NE(s.pixel_mask(""), nullptr);
  ASSERT_EQ(s.pixel_mask("")->size() * 4, mask_bytes.size());
  EXPECT_EQ(std::memcmp(s.pixel_mask("")->data(), mask_bytes.data(), mask_bytes.size()), 0);
  EXPECT_EQ((*s.pixel_mask(""))[10 * 2070 + 20], 1u);

  for (std::uint64_t k = 0; k < 3; ++k) {
    SCOPED_TRACE("image " + std::to_string(k));
    ASSERT_TRUE(messages[1 + k].is_image());
    const auto& img = std::get<stream2::Image>(messages[1 + k].body);
    EXPECT_EQ(img.series_id, 6u);
    EXPECT_EQ(img.image_id, k);
    const stream2::Array& a = img.channel("").array;
    EXPECT_EQ(a.rows, 2167u);
    EXPECT_EQ(a.cols, 2070u);
    EXPECT_EQ(a.dtype, DType::kUint16);
    EXPECT_EQ(a.codec.codec, decompress::Codec::kBitshuffleLz4);
    Bytes out(a.decoded_bytes());
    stream2::decode(a, out);
    EXPECT_EQ(out, read_file(dir / ("frame_" + std::to_string(k) + ".bin")));
  }
  ASSERT_TRUE(messages[4].is_end());
  EXPECT_EQ(std::get<stream2::End>(messages[4].body).series_id, 6u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace azflow::source::stream1
