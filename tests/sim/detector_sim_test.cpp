// The detector simulator received by azflow's own Stream V2 parser: in-process serve() on a
// loopback TCP port, a PULL socket, every message parsed, every image decoded and compared with
// libhdf5's H5Dread of the same frame (through the installed filter plugins).

#include "sim/detector_sim.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "base/error.hpp"
#include "stages/source/stream2.hpp"
#include "tests/decompress/h5_test_util.hpp"

namespace azflow::sim {
namespace {

namespace fs = std::filesystem;
namespace s2 = source::stream2;

fs::path fixtures() {
  const char* root = std::getenv("AZFLOW_SOURCE_DIR");
  return fs::path(root != nullptr ? root : ".") / "tests/source/fixtures";
}

/// Runs serve() in a thread and connects a PULL socket to the port it bound.
class Served {
 public:
  explicit Served(SimOptions options) {
    std::promise<std::string> bound;
    auto endpoint = bound.get_future();
    thread_ = std::jthread([this, options, p = std::move(bound)](std::stop_token stop) mutable {
      try {
        stats_ = serve(options, stop, [&](const std::string& ep) { p.set_value(ep); });
      } catch (...) {
        error_ = std::current_exception();
        try {
          p.set_exception(std::current_exception());
        } catch (...) {  // already set: the error came after binding
        }
      }
    });
    pull_.set(zmq::sockopt::rcvtimeo, 10000);
    pull_.connect(endpoint.get());
  }

  /// The next message's bytes; fails the test on a 10 s timeout.
  std::vector<std::byte> next() {
    zmq::message_t msg;
    if (!pull_.recv(msg)) {
      ADD_FAILURE() << "no message within 10 s";
      return {};
    }
    const auto* p = static_cast<const std::byte*>(msg.data());
    return {p, p + msg.size()};
  }

  SimStats finish() {
    thread_.join();
    if (error_) std::rethrow_exception(error_);
    return stats_;
  }
  void stop() { thread_.request_stop(); }

 private:
  zmq::context_t context_{1};
  zmq::socket_t pull_{context_, zmq::socket_type::pull};
  SimStats stats_;
  std::exception_ptr error_;
  std::jthread thread_;
};

SimOptions loopback(const fs::path& master) {
  SimOptions o;
  o.master = master;
  o.endpoint = "tcp://127.0.0.1:*";
  return o;
}

TEST(DetectorSim, EigerSeriesParsesAndDecodesToTheStoredFrames) {
  SimOptions o = loopback(fixtures() / "eiger_master.h5");
  o.series = 2;
  o.first_series_id = 41;
  Served served(o);
  std::vector<std::byte> expected =
      test::h5_read_all(fixtures() / "eiger_data_000001.h5", "/entry/data/data");
  const std::vector<std::byte> second =
      test::h5_read_all(fixtures() / "eiger_data_000002.h5", "/entry/data/data");
  expected.insert(expected.end(), second.begin(), second.end());
  const std::size_t frame_bytes = 37 * 53 * 4;
  ASSERT_EQ(expected.size(), 5 * frame_bytes);
  for (std::uint64_t series = 41; series <= 42; ++series) {
    const s2::Message start_msg = s2::parse_message(served.next());
    ASSERT_TRUE(start_msg.is_start());
    const s2::Start& start = std::get<s2::Start>(start_msg.body);
    EXPECT_EQ(start.series_id, series);
    EXPECT_EQ(start.image_size_x, 53u);
    EXPECT_EQ(start.image_size_y, 37u);
    EXPECT_EQ(start.image_dtype, DType::kUint32);
    EXPECT_EQ(start.number_of_images, 5u);
    EXPECT_DOUBLE_EQ(*start.beam_center_x_px, 20.5);
    EXPECT_NEAR(*start.detector_distance_m, 0.155, 1e-7);
    EXPECT_NEAR(*start.pixel_size_y_m, 75e-6, 1e-10);  // stored in mm in the fixture
    EXPECT_EQ(start_msg.unknown_fields, 0u);
    ASSERT_NE(start.pixel_mask("threshold_1"), nullptr);
    EXPECT_EQ((*start.pixel_mask(""))[5 * 53 + 3], 1u);
    for (std::uint64_t i = 0; i < 5; ++i) {
      const std::vector<std::byte> bytes = served.next();
      const s2::Message m = s2::parse_message(bytes);
      ASSERT_TRUE(m.is_image());
      const s2::Image& img = std::get<s2::Image>(m.body);
      EXPECT_EQ(img.image_id, i);
      EXPECT_EQ(img.series_id, series);
      EXPECT_EQ(img.series_unique_id, start.series_unique_id);
      const s2::Array& a = img.channel("").array;
      EXPECT_EQ(a.codec.codec, decompress::Codec::kBitshuffleLz4);
      std::vector<std::byte> out(a.decoded_bytes());
      s2::decode(a, out);
      EXPECT_TRUE(std::equal(out.begin(), out.end(), expected.begin() + i * frame_bytes))
          << "image " << i;
    }
    const s2::Message end = s2::parse_message(served.next());
    ASSERT_TRUE(end.is_end());
    EXPECT_EQ(std::get<s2::End>(end.body).series_id, series);
  }
  const SimStats stats = served.finish();
  EXPECT_EQ(stats.series, 2u);
  EXPECT_EQ(stats.images, 10u);
  EXPECT_EQ(stats.compressed_passthrough, 10u);
}

TEST(DetectorSim, UncompressedAndLz4FilesAndAFrameLimit) {
  const fs::path dir = fs::temp_directory_path() / ("azflow_sim_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (unsigned filter : {0u, test::kLz4Filter}) {
    SCOPED_TRACE(filter);
    const fs::path file = dir / ("plain_" + std::to_string(filter) + ".h5");
    {  // the file with its /entry/data group, where Dataset::open looks by default
      test::H5Id f(H5Fcreate(file.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
      test::H5Id lcpl(H5Pcreate(H5P_LINK_CREATE));
      H5Pset_create_intermediate_group(lcpl, 1);
      test::H5Id g(H5Gcreate2(f, "/entry/data", lcpl, H5P_DEFAULT, H5P_DEFAULT));
    }
    test::DatasetSpec spec;
    spec.name = "/entry/data/data";
    spec.type = H5T_NATIVE_UINT16;
    spec.frames = 3;
    spec.filter = filter;
    const std::vector<std::byte> frames =
        test::make_frames(spec.frames * spec.rows * spec.cols * 2, 2, 9 + filter);
    test::write_dataset(file, spec, frames.data());
    SimOptions o = loopback(file);
    o.frames = 2;
    o.channel = "ch0";
    Served served(o);
    const s2::Start start = std::get<s2::Start>(s2::parse_message(served.next()).body);
    EXPECT_EQ(start.number_of_images, 2u);
    EXPECT_EQ(start.image_dtype, DType::kUint16);
    EXPECT_EQ(start.channels, std::vector<std::string>{"ch0"});
    const std::size_t frame_bytes = spec.rows * spec.cols * 2;
    for (std::size_t i = 0; i < 2; ++i) {
      const std::vector<std::byte> bytes = served.next();
      const s2::Image img = std::get<s2::Image>(s2::parse_message(bytes).body);
      const s2::Array& a = img.channel("ch0").array;
      EXPECT_EQ(a.codec.codec, filter == 0 ? decompress::Codec::kNone : decompress::Codec::kLz4);
      std::vector<std::byte> out(a.decoded_bytes());
      s2::decode(a, out);
      EXPECT_TRUE(std::equal(out.begin(), out.end(), frames.begin() + i * frame_bytes));
    }
    EXPECT_TRUE(s2::parse_message(served.next()).is_end());
    EXPECT_EQ(served.finish().images, 2u);
  }
  fs::remove_all(dir);
}

TEST(DetectorSim, RateIsPacedAndStopEndsASeriesEarly) {
  SimOptions o = loopback(fixtures() / "eiger_master.h5");
  o.rate_fps = 20;  // 5 images: the last one 0.2 s after the first
  o.series = 100;
  Served served(o);
  (void)served.next();  // start
  const auto t0 = std::chrono::steady_clock::now();
  (void)served.next();
  for (int i = 0; i < 4; ++i) (void)served.next();
  const double spread =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(spread, 0.15);
  served.stop();
  const SimStats stats = served.finish();
  EXPECT_LT(stats.series, 100u);
}

TEST(DetectorSim, BadOptionsAndFilesAreClearErrors) {
  SimOptions o = loopback(fixtures() / "no_such_master.h5");
  EXPECT_THROW((void)serve(o, {}), Error);
  o = loopback(fixtures() / "eiger_master.h5");
  o.endpoint = "tcp://not an endpoint";
  try {
    (void)serve(o, {});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIo);
    EXPECT_NE(std::string(e.what()).find("cannot bind tcp://not an endpoint"), std::string::npos);
  }
}

}  // namespace
}  // namespace azflow::sim
