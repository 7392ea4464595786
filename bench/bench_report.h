// A benchmark's JSON report. The path is checked when the run starts, so a run of many minutes does
// not end in "cannot write"; a write that fails at the end is an error too, never silent.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace swarmlens {

// Throws std::invalid_argument, naming `option`, if `path` cannot be written; leaves no file behind
// that was not there.
void check_writable(const std::string& path, const char* option);

class JsonReport {
 public:
  // "" asks for no report. Throws std::invalid_argument if the file cannot be created.
  explicit JsonReport(std::string path);
  // Writes the report (nothing if none was asked for) and says where on stderr. Throws
  // std::runtime_error if it cannot be written.
  void write(const nlohmann::json& j) const;

 private:
  std::string path_;
};

}  // namespace swarmlens
