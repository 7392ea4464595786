// Real CPU load for the idle-policy tests and benchmark: busy-looping child processes (other processes, as the
// device's other work would be), killed on destruction.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <vector>

extern char** environ;

class BusyLoad {
 public:
  explicit BusyLoad(unsigned processes) {
    for (unsigned i = 0; i < processes; ++i) {
      pid_t pid;
      char* argv[] = {const_cast<char*>("sh"), const_cast<char*>("-c"), const_cast<char*>("while :; do :; done"), nullptr};
      if (posix_spawnp(&pid, "sh", nullptr, nullptr, argv, environ) == 0) pids_.push_back(pid);
    }
  }
  ~BusyLoad() { stop(); }
  BusyLoad(const BusyLoad&) = delete;
  BusyLoad& operator=(const BusyLoad&) = delete;
  void stop() {
    for (pid_t p : pids_) kill(p, SIGKILL);
    for (pid_t p : pids_) waitpid(p, nullptr, 0);
    pids_.clear();
  }
  size_t running() const { return pids_.size(); }

 private:
  std::vector<pid_t> pids_;
};
