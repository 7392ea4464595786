#include "prom_text.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <sstream>

namespace swarmlens {

struct PromText::Families {
  std::vector<prometheus::MetricFamily> list;
  std::map<std::string, size_t> index;

  prometheus::ClientMetric& add(const std::string& name, const std::string& help, prometheus::MetricType type,
                                const PromLabels& labels) {
    auto it = index.find(name);
    if (it == index.end()) {
      it = index.emplace(name, list.size()).first;
      list.push_back(prometheus::MetricFamily{name, help, type, {}});
    }
    auto& m = list[it->second].metric.emplace_back();
    for (const auto& [k, v] : labels) m.label.push_back({k, v});
    return m;
  }
};

PromText::PromText() : f_(std::make_unique<Families>()) {}
PromText::~PromText() = default;

void PromText::counter(const std::string& name, const std::string& help, double value, const PromLabels& labels) {
  f_->add(name, help, prometheus::MetricType::Counter, labels).counter.value = value;
}

void PromText::gauge(const std::string& name, const std::string& help, double value, const PromLabels& labels) {
  f_->add(name, help, prometheus::MetricType::Gauge, labels).gauge.value = value;
}

void PromText::histogram(const std::string& name, const std::string& help, const Histogram& h, const PromLabels& labels) {
  auto& m = f_->add(name, help, prometheus::MetricType::Histogram, labels);
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = h.sum;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    m.histogram.bucket.push_back({cumulative, i < h.bounds.size() ? h.bounds[i] : std::numeric_limits<double>::infinity()});
  }
}

void PromText::process() {
  // /proc/self/stat: fields after the command's closing parenthesis; utime 14, stime 15,
  // starttime 22 (clock ticks since boot), vsize 23 (bytes), rss 24 (pages).
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');
  if (close == std::string::npos) return;
  std::istringstream rest(text.substr(close + 2));
  std::vector<std::string> f(3);  // fields 1..2 are before it; index = field number
  for (std::string w; rest >> w;) f.push_back(w);
  if (f.size() < 25) return;
  const double tick = double(sysconf(_SC_CLK_TCK)), page = double(sysconf(_SC_PAGESIZE));
  counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
          (std::stod(f[14]) + std::stod(f[15])) / tick);
  gauge("process_resident_memory_bytes", "Resident memory size in bytes.", std::stod(f[24]) * page);
  gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", std::stod(f[23]));
  std::ifstream up("/proc/stat");
  for (std::string key; up >> key;)
    if (key == "btime") {
      double boot = 0;
      up >> boot;
      gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
            boot + std::stod(f[22]) / tick);
      break;
    }
  if (DIR* d = opendir("/proc/self/fd")) {
    int n = 0;
    while (readdir(d)) ++n;
    closedir(d);
    gauge("process_open_fds", "Number of open file descriptors.", double(n - 3));  // ., .. and this one
  }
}

std::string PromText::str() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, f_->list);
  return out.str();
}

}  // namespace swarmlens
