// `azflow integrate --stream`: the detector simulator serving the Pilatus fixture series, received
// by the real azflow binary, must give the same NeXus output as integrating the file itself; and
// a hand-made series with a lost image, a duplicate, an out-of-range id and a broken message
// must end with that image as a failed row, everything else integrated, and the rest reported.
// The same for stream v1 (azflow-detector-sim --format v1), and the real EIGER 4M stream v1
// capture replayed by pyzmq, integrated as pyFAI 0.21.3 integrates the same decoded frames. With
// --save-raw the spool must hold the simulator's chunks byte for byte (h5py, fabio and pyFAI in
// fixtures/check_raw_spool.py) and integrate as the stream did.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "sim/detector_sim.hpp"
#include "stages/source/dataset.hpp"
#include "tests/common/command.hpp"
#include "tests/reduce/h5_read.hpp"

namespace {

namespace fs = std::filesystem;
using azflow::testing::CommandResult;
using azflow::testing::H5File;
using azflow::testing::quote;

const fs::path kFixtures = fs::path(AZFLOW_CLI_FIXTURES);
const std::string kMaster = (kFixtures / "pilatus_master.h5").string();
const std::string kPoni = (kFixtures / "pilatus.poni").string();
const std::string kSettings = " --npt 300 --unit q_nm^-1 --error-model poisson --quiet";

class StreamCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("azflow_stream_cli_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string endpoint() const { return "ipc://" + path("sim.sock"); }

  /// Starts the simulator in the background (it ends after its series).
  void start_sim(const std::string& args) const {
    const auto r = azflow::testing::run_command(std::string(AZFLOW_SIM_BIN) + " " + quote(kMaster) +
                                                " --endpoint " + quote(endpoint()) + " " + args +
                                                " > " + quote(path("sim.log")) + " 2>&1 &");
    ASSERT_EQ(r.code, 0) << r.output;
  }
  static CommandResult azflow(const std::string& args) {
    return azflow::testing::run_command(std::string(AZFLOW_BIN) + " integrate " + args);
  }
  fs::path dir_;
};

void expect_same(const H5File& a, const H5File& b, const std::string& dataset, double rtol) {
  const std::vector<double> x = a.doubles(dataset), y = b.doubles(dataset);
  ASSERT_EQ(x.size(), y.size()) << dataset;
  std::size_t differ = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]) && std::isnan(y[i])) continue;
    if (!(std::abs(x[i] - y[i]) <= rtol * std::abs(y[i]))) ++differ;
  }
  EXPECT_EQ(differ, 0u) << dataset;
}

TEST_F(StreamCliTest, SimulatorSeriesGivesTheFileResult) {
  // one worker thread on the file path: the dataset-wide sums then add in the same order
  const CommandResult file = azflow(quote(kMaster) + " --poni " + quote(kPoni) + kSettings +
                                    " --threads 1 -o " + quote(path("file.h5")));
  ASSERT_EQ(file.code, 0) << file.output;
  start_sim("--rate 100");
  const CommandResult stream = azflow("--stream " + quote(endpoint()) + " --poni " + quote(kPoni) +
                                      kSettings + " --threads 1 -o " + quote(path("stream.h5")));
  ASSERT_EQ(stream.code, 0) << stream.output;
  const H5File a(path("stream.h5")), b(path("file.h5"));
  for (const char* d :
       {"/entry/integrate/I", "/entry/integrate/I_errors", "/entry/integrate/frame_index",
        "/entry/integrate/q", "/entry/sum/I", "/entry/sum/sum_signal", "/entry/sum/sum_variance",
        "/entry/sum/sum_normalization", "/entry/sum/sum_count"}) {
    expect_same(a, b, d, 0.0);
  }
  EXPECT_EQ(a.doubles("/entry/process/frames_failed"), std::vector<double>{0});
  // three workers: the same rows; the float64 sums only in their order of addition
  start_sim("");
  const CommandResult three = azflow("--stream " + quote(endpoint()) + " --poni " + quote(kPoni) +
                                     kSettings + " --threads 3 -o " + quote(path("three.h5")));
  ASSERT_EQ(three.code, 0) << three.output;
  const H5File c(path("three.h5"));
  for (const char* d :
       {"/entry/integrate/I", "/entry/integrate/I_errors", "/entry/integrate/frame_index"}) {
    expect_same(c, b, d, 0.0);
  }
  expect_same(c, b, "/entry/sum/sum_signal", 1e-12);
}

TEST_F(StreamCliTest, SimulatorV1SeriesGivesTheFileResult) {
  const CommandResult file = azflow(quote(kMaster) + " --poni " + quote(kPoni) + kSettings +
                                    " --threads 1 -o " + quote(path("file.h5")));
  ASSERT_EQ(file.code, 0) << file.output;
  start_sim("--format v1");
  const CommandResult stream =
      azflow("--stream " + quote(endpoint()) + " --stream-format v1 --poni " + quote(kPoni) +
             kSettings + " --threads 1 -o " + quote(path("stream.h5")));
  ASSERT_EQ(stream.code, 0) << stream.output;
  const H5File a(path("stream.h5")), b(path("file.h5"));
  for (const char* d :
       {"/entry/integrate/I", "/entry/integrate/I_errors", "/entry/integrate/frame_index",
        "/entry/integrate/q", "/entry/sum/I", "/entry/sum/sum_signal", "/entry/sum/sum_variance",
        "/entry/sum/sum_normalization", "/entry/sum/sum_count"}) {
    expect_same(a, b, d, 0.0);
  }
  EXPECT_EQ(a.doubles("/entry/process/frames_failed"), std::vector<double>{0});
  // v1 messages read as Stream V2 are invalid, never fatal: no start message ever comes
  start_sim("--format v1");
  const CommandResult wrong = azflow("--stream " + quote(endpoint()) + kSettings +
                                     " --stream-timeout 2 -o " + quote(path("wrong.h5")));
  EXPECT_EQ(wrong.code, 1) << wrong.output;
  EXPECT_NE(wrong.output.find("no start message"), std::string::npos) << wrong.output;
}

TEST_F(StreamCliTest, WithoutPoniTheV1HeaderGivesTheGeometry) {
  std::ofstream(path("meta.poni"))
      << "poni_version: 2\nDetector: Detector\nDetector_config: {\"pixel1\": 0.000172, "
         "\"pixel2\": 0.000172, \"max_shape\": [195, 487]}\nDistance: 0.1\nPoni1: "
      << 87.75 * 0.000172 << "\nPoni2: " << 267.85 * 0.000172
      << "\nRot1: 0\nRot2: 0\nRot3: 0\nWavelength: 1e-10\n";
  const CommandResult file = azflow(quote(kMaster) + " --poni " + quote(path("meta.poni")) +
                                    kSettings + " -o " + quote(path("file.h5")));
  ASSERT_EQ(file.code, 0) << file.output;
  start_sim("--format v1");
  const CommandResult stream = azflow("--stream " + quote(endpoint()) + " --stream-format v1" +
                                      kSettings + " -o " + quote(path("stream.h5")));
  ASSERT_EQ(stream.code, 0) << stream.output;
  const H5File a(path("stream.h5")), b(path("file.h5"));
  expect_same(a, b, "/entry/integrate/q", 1e-5);
  expect_same(a, b, "/entry/integrate/I", 1e-3);
}

TEST_F(StreamCliTest, WithoutPoniTheStartMessageGivesTheGeometry) {
  // the master's metadata as a PONI: distance 0.1 m, beam centre (267.85, 87.75) px of 172 um,
  // 1 angstrom, no rotations
  std::ofstream(path("meta.poni"))
      << "poni_version: 2\nDetector: Detector\nDetector_config: {\"pixel1\": 0.000172, "
         "\"pixel2\": 0.000172, \"max_shape\": [195, 487]}\nDistance: 0.1\nPoni1: "
      << 87.75 * 0.000172 << "\nPoni2: " << 267.85 * 0.000172
      << "\nRot1: 0\nRot2: 0\nRot3: 0\nWavelength: 1e-10\n";
  const CommandResult file = azflow(quote(kMaster) + " --poni " + quote(path("meta.poni")) +
                                    kSettings + " -o " + quote(path("file.h5")));
  ASSERT_EQ(file.code, 0) << file.output;
  start_sim("");
  const CommandResult stream =
      azflow("--stream " + quote(endpoint()) + kSettings + " -o " + quote(path("stream.h5")));
  ASSERT_EQ(stream.code, 0) << stream.output;
  const H5File a(path("stream.h5")), b(path("file.h5"));
  // the master stores float32 metadata: the geometry agrees to float32 rounding
  expect_same(a, b, "/entry/integrate/q", 1e-5);
  expect_same(a, b, "/entry/integrate/I", 1e-3);
}

/// Sends a series by hand: start (3 images), image 0, image 0 again, image 7, a broken
/// message, image 2, end — image 1 never comes.
void send_lossy_series(const std::string& endpoint) {
  azflow::source::Dataset d = azflow::source::Dataset::open(kMaster);
  const azflow::source::DatasetInfo& info = d.info();
  zmq::context_t ctx(1);
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::sndtimeo, 20000);
  push.set(zmq::sockopt::linger, 5000);
  push.bind(endpoint);
  auto send = [&](const std::vector<std::byte>& b) {
    ASSERT_TRUE(push.send(zmq::buffer(b.data(), b.size())).has_value());
  };
  auto image = [&](std::size_t frame, std::uint64_t id) {
    std::vector<std::byte> chunk(d.chunk_bytes(frame));
    const azflow::source::RawChunk raw = d.read_chunk(frame, chunk);
    std::vector<std::byte> msg =
        azflow::sim::encode_image_head(info, raw.codec, raw.bytes, id, 5, "uid-5", "threshold_1");
    msg.insert(msg.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(raw.bytes));
    return msg;
  };
  send(azflow::sim::encode_start(info, 3, 5, "uid-5", "threshold_1"));
  send(image(0, 0));
  send(image(1, 0));  // duplicate id: ignored, image 0 keeps frame 0
  send(image(1, 7));  // out of range
  send(std::vector<std::byte>(16, std::byte{0xff}));
  send(image(2, 2));
  send(azflow::sim::encode_end(5, "uid-5"));
}

TEST_F(StreamCliTest, LostDuplicateAndBrokenMessagesAreReportedNotFatal) {
  const CommandResult file = azflow(quote(kMaster) + " --poni " + quote(kPoni) + kSettings +
                                    " -o " + quote(path("file.h5")));
  ASSERT_EQ(file.code, 0) << file.output;
  auto run = std::async(std::launch::async, [&] {
    return azflow("--stream " + quote(endpoint()) + " --poni " + quote(kPoni) + kSettings +
                  " --stream-timeout 20 -o " + quote(path("stream.h5")));
  });
  send_lossy_series(endpoint());
  const CommandResult stream = run.get();
  EXPECT_EQ(stream.code, 3) << stream.output;
  EXPECT_NE(stream.output.find("1 duplicate, 1 out of range"), std::string::npos) << stream.output;
  EXPECT_NE(stream.output.find("1 invalid"), std::string::npos) << stream.output;
  EXPECT_NE(stream.output.find("image 1 never arrived before the end message"), std::string::npos)
      << stream.output;
  const H5File a(path("stream.h5")), b(path("file.h5"));
  const std::vector<double> i = a.doubles("/entry/integrate/I"),
                            ref = b.doubles("/entry/integrate/I");
  ASSERT_EQ(i.size(), ref.size());
  const std::size_t npt = ref.size() / 3;
  for (std::size_t row : {0u, 2u}) {
    for (std::size_t k = 0; k < npt; ++k) {
      const double x = i[row * npt + k], y = ref[row * npt + k];
      if (!(std::isnan(x) && std::isnan(y))) {
        EXPECT_EQ(x, y) << "row " << row << " bin " << k;
      }
    }
  }
  for (std::size_t k = 0; k < npt; ++k) EXPECT_TRUE(std::isnan(i[npt + k])) << k;
  EXPECT_EQ(a.doubles("/entry/process/frames_failed"), std::vector<double>{1});
}

/// Runs check_raw_spool.py (h5py read_direct_chunk, fabio, pyFAI) on `spool` against kMaster.
CommandResult check_spool(const std::string& spool, const std::string& args) {
  return azflow::testing::run_command(
      "/usr/bin/python3 " + quote((kFixtures / "check_raw_spool.py").string()) + " --spool " +
      quote(spool) + " --source " + quote(kMaster) + " --poni " + quote(kPoni) + " " + args);
}

TEST_F(StreamCliTest, SaveRawSpoolsTheSentChunksAndIntegratesAsTheStream) {
  start_sim("");
  const CommandResult stream =
      azflow("--stream " + quote(endpoint()) + " --poni " + quote(kPoni) + kSettings +
             " --threads 1 --save-raw " + quote(path("raw")) + " -o " + quote(path("stream.h5")));
  ASSERT_EQ(stream.code, 0) << stream.output;
  const std::string master = path("raw/series_1_master.h5");
  const CommandResult checked = check_spool(master, "");
  EXPECT_EQ(checked.code, 0) << checked.output;
  const CommandResult file = azflow(quote(master) + " --poni " + quote(kPoni) + kSettings +
                                    " --threads 1 -o " + quote(path("spool.h5")));
  ASSERT_EQ(file.code, 0) << file.output;
  const H5File a(path("spool.h5")), b(path("stream.h5"));
  for (const char* d :
       {"/entry/integrate/I", "/entry/integrate/I_errors", "/entry/integrate/frame_index",
        "/entry/integrate/q", "/entry/sum/I", "/entry/sum/sum_signal", "/entry/sum/sum_variance",
        "/entry/sum/sum_normalization", "/entry/sum/sum_count"}) {
    expect_same(a, b, d, 0.0);
  }
  // without HDF5's bitshuffle plugin in reach azflow declares all five cd_values itself
  start_sim("");
  const CommandResult bare = azflow::testing::run_command(
      "HDF5_PLUGIN_PATH=/nonexistent " + std::string(AZFLOW_BIN) + " integrate --stream " +
      quote(endpoint()) + " --poni " + quote(kPoni) + kSettings + " --save-raw " +
      quote(path("bare")) + " -o " + quote(path("bare.h5")));
  ASSERT_EQ(bare.code, 0) << bare.output;
  const CommandResult bare_checked = check_spool(path("bare/series_1_master.h5"), "");
  EXPECT_EQ(bare_checked.code, 0) << bare_checked.output;
}

TEST_F(StreamCliTest, SaveRawRecordsTheLostImage) {
  auto run = std::async(std::launch::async, [&] {
    return azflow("--stream " + quote(endpoint()) + " --poni " + quote(kPoni) + kSettings +
                  " --stream-timeout 20 --save-raw " + quote(path("raw")) + " -o " +
                  quote(path("stream.h5")));
  });
  send_lossy_series(endpoint());
  const CommandResult stream = run.get();
  EXPECT_EQ(stream.code, 3) << stream.output;
  const std::string master = path("raw/series_5_master.h5");
  // image 0 is frame 0 (its duplicate, frame 1, is not spooled), image 2 frame 2, image 1 lost
  const CommandResult checked = check_spool(master, "--images 0 2 --missing 1");
  EXPECT_EQ(checked.code, 0) << checked.output;
  const CommandResult file = azflow(quote(master) + " --poni " + quote(kPoni) + kSettings + " -o " +
                                    quote(path("spool.h5")));
  EXPECT_EQ(file.code, 3) << file.output;
  EXPECT_NE(file.output.find("never written"), std::string::npos) << file.output;
  const H5File a(path("spool.h5")), b(path("stream.h5"));
  expect_same(a, b, "/entry/integrate/I", 0.0);
  EXPECT_EQ(a.doubles("/entry/process/frames_failed"), std::vector<double>{1});
}

/// Sends a stream v1 series by hand: header (3 images, no pixel mask), image 0, image 1 without
/// its dconfig part, image 2, end. Pixels raw ("<"), read with azflow's source.
void send_v1_series_missing_a_part(const std::string& endpoint) {
  azflow::source::Dataset d = azflow::source::Dataset::open(kMaster);
  const azflow::source::DatasetInfo& info = d.info();
  zmq::context_t ctx(1);
  zmq::socket_t push(ctx, zmq::socket_type::push);
  push.set(zmq::sockopt::sndtimeo, 20000);
  push.set(zmq::sockopt::linger, 5000);
  push.bind(endpoint);
  auto send = [&](const std::vector<std::string>& parts) {
    for (std::size_t i = 0; i < parts.size(); ++i) {
      ASSERT_TRUE(push.send(zmq::buffer(parts[i]),
                            i + 1 < parts.size() ? zmq::send_flags::sndmore : zmq::send_flags::none)
                      .has_value());
    }
  };
  using nlohmann::json;
  send({json{{"htype", "dheader-1.0"}, {"series", 9}, {"header_detail", "basic"}}.dump(),
        json{{"x_pixels_in_detector", info.cols},
             {"y_pixels_in_detector", info.rows},
             {"nimages", 3},
             {"ntrigger", 1}}
            .dump()});
  auto image = [&](std::size_t frame, bool with_config) {
    std::vector<std::byte> pixels(info.frame_bytes());
    d.read_frame(frame, pixels);
    std::vector<std::string> parts = {
        json{{"htype", "dimage-1.0"}, {"series", 9}, {"frame", frame}, {"hash", ""}}.dump(),
        json{{"htype", "dimage_d-1.0"},
             {"shape", {info.cols, info.rows}},
             {"type", "uint32"},
             {"encoding", "<"},
             {"size", pixels.size()}}
            .dump(),
        std::string(reinterpret_cast<const char*>(pixels.data()), pixels.size())};
    if (with_config) parts.push_back(json{{"htype", "dconfig-1.0"}}.dump());
    return parts;
  };
  send(image(0, true));
  send(image(1, false));  // a part missing: invalid, counted, never fatal
  send(image(2, true));
  send({json{{"htype", "dseries_end-1.0"}, {"series", 9}}.dump()});
}

TEST_F(StreamCliTest, V1MessageMissingAPartIsCountedAndTheOthersIntegrated) {
  const CommandResult file =
      azflow(quote(kMaster) + " --poni " + quote(kPoni) + kSettings + " --no-file-mask -o " +
             quote(path("file.h5")));  // the v1 header sends no mask
  ASSERT_EQ(file.code, 0) << file.output;
  auto run = std::async(std::launch::async, [&] {
    return azflow("--stream " + quote(endpoint()) + " --stream-format v1 --poni " + quote(kPoni) +
                  kSettings + " --stream-timeout 20 -o " + quote(path("stream.h5")));
  });
  send_v1_series_missing_a_part(endpoint());
  const CommandResult stream = run.get();
  EXPECT_EQ(stream.code, 3) << stream.output;
  EXPECT_NE(stream.output.find("1 invalid"), std::string::npos) << stream.output;
  EXPECT_NE(stream.output.find("stream1: image 1 part 4 is missing"), std::string::npos)
      << stream.output;
  EXPECT_NE(stream.output.find("image 1 never arrived before the end message"), std::string::npos)
      << stream.output;
  const H5File a(path("stream.h5")), b(path("file.h5"));
  const std::vector<double> i = a.doubles("/entry/integrate/I"),
                            ref = b.doubles("/entry/integrate/I");
  ASSERT_EQ(i.size(), ref.size());
  const std::size_t npt = ref.size() / 3;
  for (std::size_t row : {0u, 2u}) {
    for (std::size_t k = 0; k < npt; ++k) {
      const double x = i[row * npt + k], y = ref[row * npt + k];
      if (!(std::isnan(x) && std::isnan(y))) {
        EXPECT_EQ(x, y) << "row " << row << " bin " << k;
      }
    }
  }
  for (std::size_t k = 0; k < npt; ++k) EXPECT_TRUE(std::isnan(i[npt + k])) << k;
}

TEST_F(StreamCliTest, RealV1CaptureIntegratesAsPyfaiDoes) {
  const fs::path capture = fs::path(AZFLOW_REAL_DATA) / "dls-eiger-detector-stream1";
  if (!fs::exists(capture / "streamfile_12")) GTEST_SKIP() << "no " << capture;
  // The capture's own geometry has detector_distance 0 and beam centre (0, 0): a PONI gives it,
  // with the capture's pixel size, shape and wavelength; the stream's pixel mask still applies.
  std::ofstream(path("eiger4m.poni"))
      << "poni_version: 2\nDetector: Detector\nDetector_config: {\"pixel1\": "
         "7.5000003562308848e-05, \"pixel2\": 7.5000003562308848e-05, \"max_shape\": [2167, "
         "2070]}\nDistance: 0.12\nPoni1: 0.0825\nPoni2: 0.075\nRot1: 0\nRot2: 0\nRot3: 0\n"
         "Wavelength: 1.5406012535095215e-10\n";
  auto run = std::async(std::launch::async, [&] {
    return azflow("--stream " + quote(endpoint()) + " --stream-format v1 --poni " +
                  quote(path("eiger4m.poni")) + kSettings + " --threads 2 --stream-timeout 60" +
                  " -o " + quote(path("stream.h5")));
  });
  const CommandResult sent = azflow::testing::run_command(
      "/usr/bin/python3 " +
      quote(std::string(AZFLOW_SOURCE_FIXTURES) + "/replay_stream1_capture.py") + " --capture " +
      quote(capture.string()) + " --endpoint " + quote(endpoint()) + " --expected-dir " +
      quote(dir_.string()));
  ASSERT_EQ(sent.code, 0) << sent.output;
  const CommandResult stream = run.get();
  // the header declares nimages 10; the capture holds images 0-2: rows 3-9 never arrived
  EXPECT_EQ(stream.code, 3) << stream.output;
  EXPECT_NE(stream.output.find("image 3 never arrived before the end message"), std::string::npos)
      << stream.output;
  const CommandResult ref = azflow::testing::run_command(
      "/usr/bin/python3 " + quote(std::string(AZFLOW_CLI_FIXTURES) + "/pyfai_stream1_capture.py") +
      " --frames-dir " + quote(dir_.string()) + " --poni " + quote(path("eiger4m.poni")) +
      " --npt 300 --unit q_nm^-1 --out " + quote(path("pyfai.json")));
  ASSERT_EQ(ref.code, 0) << ref.output;
  const nlohmann::json py = nlohmann::json::parse(std::ifstream(path("pyfai.json")));
  const H5File a(path("stream.h5"));
  EXPECT_EQ(a.doubles("/entry/process/frames_failed"), std::vector<double>{7});
  const std::vector<double> q = a.doubles("/entry/integrate/q"),
                            i = a.doubles("/entry/integrate/I");
  const std::vector<double> pq = py["radial"].get<std::vector<double>>();
  ASSERT_EQ(q.size(), pq.size());
  for (std::size_t b = 0; b < q.size(); ++b) {
    EXPECT_NEAR(q[b], pq[b], 1e-3 * (pq[1] - pq[0])) << "bin " << b;
  }
  ASSERT_EQ(py["frames"].size(), 3u);
  ASSERT_EQ(i.size(), 10 * q.size());
  for (std::size_t k = 0; k < 3; ++k) {
    const std::vector<double> ref_i = py["frames"][k]["I"].get<std::vector<double>>();
    const std::vector<double> count = py["frames"][k]["count"].get<std::vector<double>>();
    std::size_t compared = 0, bad = 0;
    for (std::size_t b = 0; b < q.size(); ++b) {
      const double got = i[k * q.size() + b];
      if (count[b] <= 0.5) {
        if (count[b] == 0 && got != 0 && !std::isnan(got)) ++bad;
        continue;
      }
      ++compared;
      if (!(std::abs(got - ref_i[b]) <= 1e-3 * std::max(std::abs(ref_i[b]), 1e-30))) {
        if (bad < 5)
          ADD_FAILURE() << "frame " << k << " bin " << b << ": " << got << " vs " << ref_i[b];
        ++bad;
      }
    }
    EXPECT_GT(compared, q.size() / 2) << "frame " << k;
    EXPECT_EQ(bad, 0u) << "frame " << k;
  }
}

TEST_F(StreamCliTest, NoStartMessageIsAnErrorAndFileOptionsAreRefused) {
  const CommandResult r =
      azflow("--stream " + quote(endpoint()) + " --stream-timeout 0.3 -o " + quote(path("x.h5")));
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("no start message"), std::string::npos) << r.output;
  const CommandResult frames =
      azflow("--stream " + quote(endpoint()) + " --frames 0:2 -o " + quote(path("x.h5")));
  EXPECT_EQ(frames.code, 2) << frames.output;
  const CommandResult both =
      azflow(quote(kMaster) + " --stream " + quote(endpoint()) + " -o " + quote(path("x.h5")));
  EXPECT_EQ(both.code, 2) << both.output;
  EXPECT_FALSE(fs::exists(path("x.h5")));
}

}  // namespace
