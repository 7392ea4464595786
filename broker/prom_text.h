// Prometheus text exposition, built at scrape time from a component's own stats (no second set of
// counters on the hot path): families are assembled here and written by prometheus-cpp's
// TextSerializer (Debian's prometheus-cpp-dev), which escapes and formats them as Prometheus reads.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "histogram.h"

namespace swarmlens {

using PromLabels = std::vector<std::pair<std::string, std::string>>;

class PromText {
 public:
  PromText();
  ~PromText();
  // A sample of a counter (name ends in _total), a gauge or a histogram; the family's help is the
  // first one given. Labels of one family's samples must differ.
  void counter(const std::string& name, const std::string& help, double value, const PromLabels& labels = {});
  void gauge(const std::string& name, const std::string& help, double value, const PromLabels& labels = {});
  void histogram(const std::string& name, const std::string& help, const Histogram& h, const PromLabels& labels = {});
  // The process' own metrics, by the names every Prometheus client uses: process_cpu_seconds_total,
  // process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
  // process_start_time_seconds (from /proc/self).
  void process();
  std::string str() const;

 private:
  struct Families;
  std::unique_ptr<Families> f_;
};

inline constexpr const char* kPromContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace swarmlens
