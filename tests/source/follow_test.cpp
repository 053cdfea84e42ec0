// Follow mode: a separate writer process (h5py) creates the master file, then the data files one
// by one (and appends frames to the first), while the Dataset waits for them.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "base/error.hpp"
#include "stages/source/dataset.hpp"
#include "tests/decompress/h5_test_util.hpp"

namespace azflow::source {
namespace {

namespace fs = std::filesystem;

// Writer: master (nimages frames expected) at once, then data_000001 with 2 frames, a third
// frame appended to it, then data_000002 with `second` frames. New files appear by rename.
constexpr const char* kWriter = R"PY(
import os, sys, time
import h5py, numpy as np
out, nimages, second = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = (np.arange(5 * 37 * 53, dtype=np.uint32).reshape(5, 37, 53) * 7) % 1013
kw = dict(compression=32008, compression_opts=(0, 2))
def publish(name, build):
    tmp = os.path.join(out, name + ".tmp")
    with h5py.File(tmp, "w") as f:
        build(f)
    os.rename(tmp, os.path.join(out, name))
def master(f):
    for i in (1, 2):
        f[f"entry/data/data_{i:06d}"] = h5py.ExternalLink(f"s_data_{i:06d}.h5", "/entry/data/data")
    f["entry/instrument/detector/detectorSpecific/nimages"] = np.uint32(nimages)
    f["entry/instrument/detector/detectorSpecific/ntrigger"] = np.uint32(1)
publish("s_master.h5", master)
time.sleep(0.4)
publish("s_data_000001.h5", lambda f: f.create_dataset("entry/data/data", data=data[0:2],
        maxshape=(None, 37, 53), chunks=(1, 37, 53), **kw))
time.sleep(0.4)
with h5py.File(os.path.join(out, "s_data_000001.h5"), "a") as f:
    d = f["entry/data/data"]
    d.resize(3, axis=0)
    d[2] = data[2]
time.sleep(0.4)
publish("s_data_000002.h5", lambda f: f.create_dataset("entry/data/data", data=data[3:3 + second],
        chunks=(1, 37, 53), **kw))
open(os.path.join(out, "done"), "w").close()
)PY";

class Follow : public ::testing::Test {
 protected:
  fs::path dir =
      fs::temp_directory_path() / ("azflow_follow_test_" + std::to_string(getpid()) + "_" +
                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());

  void start_writer(int nimages, int second) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::ofstream(dir / "writer.py") << kWriter;
    const std::string cmd = "/usr/bin/python3 " + (dir / "writer.py").string() + " " +
                            dir.string() + " " + std::to_string(nimages) + " " +
                            std::to_string(second) + " > " + (dir / "writer.log").string() +
                            " 2>&1 &";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }

  void wait_writer() {
    for (int i = 0; i < 300 && !fs::exists(dir / "done"); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(fs::exists(dir / "done")) << "writer did not finish; see " << dir / "writer.log";
  }

  void TearDown() override { fs::remove_all(dir); }
};

TEST_F(Follow, WaitsForFilesAndFramesUpToNimages) {
  start_writer(5, 2);
  OpenOptions o;
  o.follow = true;
  o.idle_timeout_s = 10;
  std::vector<std::byte> all;
  {
    Dataset d = Dataset::open(dir / "s_master.h5", o);  // waits for the master and first file
    EXPECT_EQ(d.expected_frames(), 5u);
    EXPECT_EQ(d.follow(), 5u);
    const std::size_t n = d.info().frame_bytes();
    all.resize(5 * n);
    for (std::size_t i = 0; i < 5; ++i) {
      d.read_frame(i, std::span<std::byte>(all).subspan(i * n, n));
    }
  }  // closed before HDF5 opens the files again with locking (HDF5 refuses mixed settings)
  wait_writer();
  auto ref = test::h5_read_all(dir / "s_data_000001.h5", "/entry/data/data");
  const auto ref2 = test::h5_read_all(dir / "s_data_000002.h5", "/entry/data/data");
  ref.insert(ref.end(), ref2.begin(), ref2.end());
  EXPECT_EQ(all, ref);
}

TEST_F(Follow, ReadFrameWaitsForAFrameNotYetWritten) {
  start_writer(5, 2);
  OpenOptions o;
  o.follow = true;
  o.idle_timeout_s = 10;
  std::vector<std::byte> frame;
  {
    Dataset d = Dataset::open(dir / "s_master.h5", o);
    frame.resize(d.info().frame_bytes());
    d.read_frame(4, frame);  // in the second file, not there yet when we ask
  }
  wait_writer();
  const auto ref = test::h5_read_all(dir / "s_data_000002.h5", "/entry/data/data");
  EXPECT_TRUE(
      std::equal(frame.begin(), frame.end(), ref.begin() + static_cast<long>(frame.size())));
}

TEST_F(Follow, StopsAtIdleTimeoutAndReportsFramesFound) {
  start_writer(6, 1);  // promises 6 frames, writes 4
  OpenOptions o;
  o.follow = true;
  o.idle_timeout_s = 1.5;
  Dataset d = Dataset::open(dir / "s_master.h5", o);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(d.follow(), 4u);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1400));
  std::vector<std::byte> frame(d.info().frame_bytes());
  try {
    d.read_frame(5, frame);
    ADD_FAILURE() << "frame 5 was never written";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("4 frames found"), std::string::npos) << e.what();
  }
  wait_writer();
}

}  // namespace
}  // namespace azflow::source
