#pragma once
// A forked child process for the ipc tests, with a pipe from child to parent for progress
// bytes and 64-bit values. The child runs a function and _exit()s with its return value (99 on
// an exception); it never returns into GoogleTest.

#include <poll.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

namespace azflow::ipc::test {

/// The child's end: send progress bytes and values to the parent.
class ChildPipe {
 public:
  explicit ChildPipe(int fd) : fd_(fd) {}
  /// Sends one value (8 bytes).
  void send(std::uint64_t v) const {
    const char* p = reinterpret_cast<const char*>(&v);
    std::size_t left = sizeof v;
    while (left > 0) {
      const ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_;
};

/// A running child process; killed and reaped by the destructor if still running.
class Child {
 public:
  /// Forks; the child runs body(pipe) and exits with its result.
  static Child spawn(const std::function<int(const ChildPipe&)>& body) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::close(fds[0]);
      int rc = 99;
      try {
        rc = body(ChildPipe(fds[1]));
      } catch (...) {
        rc = 99;
      }
      ::_exit(rc);
    }
    ::close(fds[1]);
    return Child(pid, fds[0]);
  }

  Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)), fd_(std::exchange(o.fd_, -1)) {}
  Child& operator=(Child&&) = delete;
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) ::close(fd_);
  }

  [[nodiscard]] pid_t pid() const { return pid_; }

  /// Next value from the child, or nullopt on EOF or after `timeout`.
  std::optional<std::uint64_t> receive(std::chrono::milliseconds timeout) {
    std::uint64_t v = 0;
    char* p = reinterpret_cast<char*>(&v);
    std::size_t got = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (got < sizeof v) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
      const ssize_t n = ::read(fd_, p + got, sizeof v - got);
      if (n == 0) return std::nullopt;
      if (n < 0) {
        if (errno == EINTR) continue;
        return std::nullopt;
      }
      got += static_cast<std::size_t>(n);
    }
    return v;
  }

  /// All values until the child closes its end (exits), bounded by `timeout`.
  std::vector<std::uint64_t> receive_all(std::chrono::milliseconds timeout) {
    std::vector<std::uint64_t> out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto v = receive(std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now()));
      if (!v) break;
      out.push_back(*v);
    }
    return out;
  }

  /// Waits for exit up to `timeout`: the exit status, 128+signal if killed, or -1 on timeout
  /// (the child is then killed).
  int wait(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
        return -2;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  /// SIGKILLs the child and reaps it; returns its pid.
  pid_t kill_and_reap() {
    const pid_t p = pid_;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return p;
  }

 private:
  Child(pid_t pid, int fd) : pid_(pid), fd_(fd) {}
  pid_t pid_;
  int fd_;
};

}  // namespace azflow::ipc::test
