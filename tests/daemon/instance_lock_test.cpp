// One azflowd per instance and per state directory (daemon/instance_lock.hpp): the lock itself,
// and a second real azflowd refused while the first keeps serving.

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "base/error.hpp"
#include "daemon/instance_lock.hpp"
#include "tests/daemon/daemon_test_support.hpp"

namespace azflow::daemon {
namespace {

using namespace azflow::testing;

TEST(InstanceLock, SecondLockOnAFileIsRefusedWithTheHolderPidUntilTheFirstIsGone) {
  const TempSpace space;
  const fs::path file = space.path("sub/azflowd.lock");
  {
    const InstanceLock first({file}, "instance 'x'");
    std::ifstream in(file);
    pid_t pid = 0;
    in >> pid;
    EXPECT_EQ(pid, ::getpid());
    try {
      const InstanceLock second({space.path("other.lock"), file}, "instance 'x'");
      ADD_FAILURE() << "a second lock on " << file << " was granted";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kResource);
      const std::string what = e.what();
      EXPECT_NE(what.find("pid " + std::to_string(::getpid())), std::string::npos) << what;
      EXPECT_NE(what.find(file.string()), std::string::npos) << what;
      EXPECT_NE(what.find("instance 'x'"), std::string::npos) << what;
    }
    // The failed attempt released what it had taken: other.lock is free.
    EXPECT_NO_THROW(InstanceLock({space.path("other.lock")}, "y"));
  }
  EXPECT_NO_THROW(InstanceLock({file}, "instance 'x'"));  // the first one was released
}

TEST(InstanceLock, LockPathsAreOutsideTheRingPrefix) {
  EXPECT_EQ(InstanceLock::shm_lock_path("beam1"), fs::path("/dev/shm/azflow-lock.beam1"));
  EXPECT_EQ(InstanceLock::state_lock_path("/var/lib/azflow"),
            fs::path("/var/lib/azflow/azflowd.lock"));
}

TEST(InstanceLock, SecondDaemonOnTheSameInstanceOrStateDirStopsAndTheFirstServesOn) {
  const TempSpace space;
  DaemonProcess first(space, 1);
  ControlClient client(first.endpoint());
  ASSERT_TRUE(client.wait_ready(std::chrono::seconds(30))) << first.log();

  // Same instance (shared memory namespace), other state and runtime directories.
  const CommandResult same_instance =
      run_command(std::string(AZFLOWD_BIN) + " --instance " + space.instance() + " --state-dir " +
                  quote(space.path("state2").string()) + " --runtime-dir " +
                  quote(space.path("run2").string()));
  EXPECT_NE(same_instance.code, 0) << same_instance.output;
  EXPECT_NE(same_instance.output.find("another azflowd (pid " + std::to_string(first.pid())),
            std::string::npos)
      << same_instance.output;

  // Same state directory (job store), other instance.
  const std::string other = space.instance() + "b";
  const CommandResult same_state = run_command(
      std::string(AZFLOWD_BIN) + " --instance " + other + " --state-dir " +
      quote(space.path("state").string()) + " --runtime-dir " + quote(space.path("run3").string()));
  ::unlink(InstanceLock::shm_lock_path(other).c_str());
  EXPECT_NE(same_state.code, 0) << same_state.output;
  EXPECT_NE(same_state.output.find("azflowd.lock is locked"), std::string::npos)
      << same_state.output;

  // The first daemon's rings and endpoint survived: it still answers and runs a job.
  EXPECT_FALSE(client.call({{"verb", "status"}}).is_null());
  const std::string master = make_series(space, "s", 4);
  const std::int64_t id = enqueue(client, job_spec({master}, space.path("out.h5").string()));
  ASSERT_GT(id, 0);
  EXPECT_EQ(wait_job(client, id).value("state", ""), "succeeded") << first.log();
}

}  // namespace
}  // namespace azflow::daemon
