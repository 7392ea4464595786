#include "bench_report.h"

#include <fmt/core.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace swarmlens {

void check_writable(const std::string& path, const char* option) {
  const bool existed = std::ifstream(path).good();
  {
    std::ofstream probe(path, std::ios::app);  // what a previous run wrote stays until this one ends
    if (!probe) throw std::invalid_argument(std::string(option) + " " + path + ": cannot write there (" + std::strerror(errno) + ")");
  }
  if (!existed) std::remove(path.c_str());
}

JsonReport::JsonReport(std::string path) : path_(std::move(path)) {
  if (!path_.empty()) check_writable(path_, "--json");
}

void JsonReport::write(const nlohmann::json& j) const {
  if (path_.empty()) return;
  std::ofstream f(path_, std::ios::trunc);
  f << j.dump(2) << "\n";
  f.flush();
  if (!f) throw std::runtime_error("cannot write " + path_ + ": " + std::strerror(errno));
  fmt::print(stderr, "wrote {}\n", path_);
}

}  // namespace swarmlens
