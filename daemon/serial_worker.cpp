#include "daemon/serial_worker.hpp"

#include <exception>
#include <utility>

#include <spdlog/spdlog.h>

namespace azflow::daemon {

SerialWorker::SerialWorker(std::string name, std::size_t capacity)
    : name_(std::move(name)),
      capacity_(capacity == 0 ? 1 : capacity),
      thread_([this](const std::stop_token& stop) { run(stop); }) {}

SerialWorker::~SerialWorker() {
  thread_.request_stop();  // wakes run(), which empties the queue before it returns
}

void SerialWorker::post(std::function<void()> task) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return tasks_.size() < capacity_; });
  tasks_.push_back(std::move(task));
  changed_.notify_all();
}

void SerialWorker::wait_idle() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return tasks_.empty() && !running_task_; });
}

bool SerialWorker::busy() const {
  const std::lock_guard lock(mutex_);
  return !tasks_.empty() || running_task_;
}

void SerialWorker::run(const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  while (true) {
    changed_.wait(lock, stop, [&] { return !tasks_.empty(); });
    if (tasks_.empty()) return;  // stop requested and nothing left to run
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    running_task_ = true;
    changed_.notify_all();  // a poster blocked on a full queue may go on
    lock.unlock();
    try {
      task();
    } catch (const std::exception& e) {
      spdlog::error("{}: {}", name_, e.what());
    }
    lock.lock();
    running_task_ = false;
    changed_.notify_all();
  }
}

}  // namespace azflow::daemon
