#include "bench_report.h"

#include <fmt/core.h>

#include "snapshot.h"

namespace swarmlens {

JsonReport::JsonReport(std::string path) : path_(std::move(path)) {
  if (!path_.empty()) check_writable(path_, "the --json report");
}

void JsonReport::write(const nlohmann::json& j) const {
  if (path_.empty()) return;
  const std::string text = j.dump(2) + "\n";
  write_file_atomically(path_, std::vector<uint8_t>(text.begin(), text.end()));
  fmt::print(stderr, "wrote {}\n", path_);
}

}  // namespace swarmlens
