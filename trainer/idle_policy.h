// When a camera node may train: always, only while the device is otherwise idle enough, only within
// a daily schedule, or both. The live video path and the device's other work come first; training
// uses what is left. Plain C++ over /proc, tested without GStreamer.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace swarmlens {

enum class TrainState { Training, PausedLoad, OutsideSchedule };
// "training", "paused-load", "outside-schedule" (the names the bus messages and the overlay show).
const char* train_state_name(TrainState s);

enum class IdleMode { Always, Load, Schedule, LoadAndSchedule };
std::optional<IdleMode> parse_idle_mode(const std::string& s);  // always, load, schedule, load+schedule
const char* idle_mode_name(IdleMode m);

// Daily windows in local time, "HH:MM-HH:MM[,HH:MM-HH:MM...]"; a window may cross midnight
// ("22:00-06:00"). Throws std::invalid_argument with the offending text.
class Schedule {
 public:
  static Schedule parse(const std::string& text);
  bool contains(int minute_of_day) const;  // [start, end)
  bool empty() const { return windows_.empty(); }

 private:
  std::vector<std::pair<int, int>> windows_;  // minutes of the day
};

// CPU time counters, in clock ticks.
struct CpuTimes {
  uint64_t busy = 0, total = 0;  // all CPUs, from /proc/stat's "cpu" line (idle and iowait not busy)
  uint64_t self = 0;             // this process, user + system, from /proc/self/stat
};
// Parsers for the two files' text (exposed for tests). Throw std::runtime_error on malformed text.
CpuTimes parse_proc_stat(const std::string& text);
uint64_t parse_self_stat(const std::string& text);
CpuTimes read_cpu_times();
// Share of all CPUs' time between two readings spent by other processes (not this one: its own
// video path and training never count), in [0, 1].
double other_load(const CpuTimes& before, const CpuTimes& after);

struct IdlePolicyConfig {
  IdleMode mode = IdleMode::Always;
  double load_ceiling = 0.5;   // pause when other processes use more than this share of the CPUs...
  double resume_factor = 0.8;  // ...and resume below ceiling x this (hysteresis: no flapping)
  std::string schedule;        // for Schedule modes
  int nice = 10;               // the training thread's nice value (0 = leave it); Linux: per thread
  std::chrono::milliseconds sample_every{500};  // load measured over windows this long
};

class IdleGate {
 public:
  // Throws std::invalid_argument for a bad schedule, or a Schedule mode without one.
  explicit IdleGate(IdlePolicyConfig cfg);

  // The state now: reads /proc/stat at most every sample_every (between readings the last verdict
  // holds) and the local time. Thread: one caller (the training thread).
  TrainState check();
  // The same decision from given inputs (tests, and check() itself).
  TrainState decide(double load, int minute_of_day);
  double last_load() const { return load_; }
  const IdlePolicyConfig& config() const { return cfg_; }

 private:
  IdlePolicyConfig cfg_;
  Schedule schedule_;
  bool paused_for_load_ = false;
  double load_ = 0.0;
  std::optional<CpuTimes> last_;
  std::chrono::steady_clock::time_point last_at_{};
};

}  // namespace swarmlens
