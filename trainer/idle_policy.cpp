#include "idle_policy.h"

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace swarmlens {

const char* train_state_name(TrainState s) {
  switch (s) {
    case TrainState::Training: return "training";
    case TrainState::PausedLoad: return "paused-load";
    case TrainState::OutsideSchedule: return "outside-schedule";
  }
  return "?";
}

std::optional<IdleMode> parse_idle_mode(const std::string& s) {
  if (s == "always") return IdleMode::Always;
  if (s == "load") return IdleMode::Load;
  if (s == "schedule") return IdleMode::Schedule;
  if (s == "load+schedule") return IdleMode::LoadAndSchedule;
  return std::nullopt;
}

const char* idle_mode_name(IdleMode m) {
  switch (m) {
    case IdleMode::Always: return "always";
    case IdleMode::Load: return "load";
    case IdleMode::Schedule: return "schedule";
    case IdleMode::LoadAndSchedule: return "load+schedule";
  }
  return "?";
}

Schedule Schedule::parse(const std::string& text) {
  Schedule s;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');) {
    part.erase(std::remove(part.begin(), part.end(), ' '), part.end());
    int h1, m1, h2, m2;
    char c1, dash, c2;
    std::istringstream p(part);
    if (!(p >> h1 >> c1 >> m1 >> dash >> h2 >> c2 >> m2) || c1 != ':' || c2 != ':' || dash != '-' ||
        !p.eof() || h1 < 0 || h1 > 24 || h2 < 0 || h2 > 24 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59 ||
        h1 * 60 + m1 > 1440 || h2 * 60 + m2 > 1440)
      throw std::invalid_argument("schedule: '" + part + "' is not HH:MM-HH:MM");
    s.windows_.emplace_back(h1 * 60 + m1, h2 * 60 + m2);
  }
  if (s.windows_.empty()) throw std::invalid_argument("schedule: no window in '" + text + "'");
  return s;
}

bool Schedule::contains(int minute) const {
  for (const auto& [a, b] : windows_) {
    if (a <= b ? (minute >= a && minute < b) : (minute >= a || minute < b)) return true;
  }
  return false;
}

CpuTimes parse_proc_stat(const std::string& text) {
  std::istringstream in(text);
  std::string label;
  in >> label;
  if (label != "cpu") throw std::runtime_error("/proc/stat: no aggregate cpu line");
  uint64_t v[8] = {};  // user nice system idle iowait irq softirq steal
  for (auto& x : v)
    if (!(in >> x)) throw std::runtime_error("/proc/stat: short cpu line");
  CpuTimes t;
  for (uint64_t x : v) t.total += x;
  t.busy = t.total - v[3] - v[4];
  return t;
}

uint64_t parse_self_stat(const std::string& text) {
  // "pid (comm) state ppid ..." -- comm may hold spaces and parentheses: fields follow the last ')'.
  const auto close = text.rfind(')');
  if (close == std::string::npos) throw std::runtime_error("/proc/self/stat: no command field");
  std::istringstream in(text.substr(close + 1));
  std::string field;
  uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15; ++i) {  // field 3 is the state; utime is 14, stime 15
    if (!(in >> field)) throw std::runtime_error("/proc/self/stat: short");
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return utime + stime;
}

namespace {
std::string slurp(const char* path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(std::string("cannot read ") + path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}
}  // namespace

CpuTimes read_cpu_times() {
  CpuTimes t = parse_proc_stat(slurp("/proc/stat"));
  t.self = parse_self_stat(slurp("/proc/self/stat"));
  return t;
}

double other_load(const CpuTimes& a, const CpuTimes& b) {
  if (b.total <= a.total) return 0.0;
  const double busy = double(b.busy - std::min(b.busy, a.busy));
  const double self = double(b.self - std::min(b.self, a.self));
  return std::clamp((busy - self) / double(b.total - a.total), 0.0, 1.0);
}

IdleGate::IdleGate(IdlePolicyConfig cfg) : cfg_(std::move(cfg)) {
  const bool scheduled = cfg_.mode == IdleMode::Schedule || cfg_.mode == IdleMode::LoadAndSchedule;
  if (scheduled) schedule_ = Schedule::parse(cfg_.schedule);
  if (!(cfg_.load_ceiling > 0.0 && cfg_.load_ceiling <= 1.0))
    throw std::invalid_argument("load ceiling must be in (0, 1]");
}

TrainState IdleGate::decide(double load, int minute_of_day) {
  load_ = load;
  const bool by_load = cfg_.mode == IdleMode::Load || cfg_.mode == IdleMode::LoadAndSchedule;
  const bool by_time = cfg_.mode == IdleMode::Schedule || cfg_.mode == IdleMode::LoadAndSchedule;
  if (by_load) {
    if (paused_for_load_) paused_for_load_ = load >= cfg_.load_ceiling * cfg_.resume_factor;
    else paused_for_load_ = load > cfg_.load_ceiling;
  }
  if (by_time && !schedule_.contains(minute_of_day)) return TrainState::OutsideSchedule;
  if (by_load && paused_for_load_) return TrainState::PausedLoad;
  return TrainState::Training;
}

TrainState IdleGate::check() {
  if (cfg_.mode == IdleMode::Always) return TrainState::Training;
  const auto now = std::chrono::steady_clock::now();
  double load = load_;
  if (!last_ || now - last_at_ >= cfg_.sample_every) {
    const CpuTimes t = read_cpu_times();
    if (last_) load = other_load(*last_, t);
    last_ = t;
    last_at_ = now;
  }
  const std::time_t wall = std::time(nullptr);
  std::tm local{};
  localtime_r(&wall, &local);
  return decide(load, local.tm_hour * 60 + local.tm_min);
}

}  // namespace swarmlens
