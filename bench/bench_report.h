// A benchmark's JSON report. The path is checked when the run starts (snapshot.h's check_writable),
// so a run of many minutes does not end in "cannot write"; the report is written atomically at the
// end, and a failed write is an error too, never silent.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace swarmlens {

class JsonReport {
 public:
  // "" asks for no report. Throws std::runtime_error if the file could not be written.
  explicit JsonReport(std::string path);
  // Writes the report (nothing if none was asked for) and says where on stderr. Throws
  // std::runtime_error if it cannot be written.
  void write(const nlohmann::json& j) const;

 private:
  std::string path_;
};

}  // namespace swarmlens
