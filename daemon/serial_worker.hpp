#pragma once
// A thread that runs posted tasks one after another, in the order they were posted (the
// result sink's reducer and output threads, daemon/result_sink.hpp).

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace azflow::daemon {

/// One worker thread with a FIFO of tasks. A task that throws is logged (naming the worker) and
/// dropped; the worker keeps running. Thread-safe: any thread may post and wait.
class SerialWorker {
 public:
  /// Starts the thread; `name` appears in log lines. `capacity` bounds the queue: post() blocks
  /// while that many tasks wait (back-pressure on the poster, never a dropped task).
  SerialWorker(std::string name, std::size_t capacity);
  /// Runs every task still queued, then joins the thread.
  ~SerialWorker();
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  /// Queues `task` to run after every task posted before it.
  void post(std::function<void()> task);
  /// Blocks until every task posted so far has run.
  void wait_idle();
  /// Whether a task is queued or running.
  [[nodiscard]] bool busy() const;

 private:
  void run(const std::stop_token& stop);

  std::string name_;
  std::size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  std::deque<std::function<void()>> tasks_;
  bool running_task_ = false;
  std::jthread thread_;  // last: started after the members it uses
};

}  // namespace azflow::daemon
