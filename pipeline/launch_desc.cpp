#include "launch_desc.h"

#include <fmt/core.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace swarmlens {

std::string quoted(const std::string& v) {
  if (v.find('"') != std::string::npos) throw std::invalid_argument("a value with a double quote: " + v);
  return "\"" + v + "\"";
}

LaunchElement& LaunchElement::set(const char* property, const std::string& value) {
  desc_ += fmt::format(" {}={}", property, quoted(value));
  return *this;
}

LaunchElement& LaunchElement::set_word(const char* property, const std::string& value) {
  const bool word = !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' || c == '+' || c == '-';
  });
  if (!word) throw std::invalid_argument(std::string(property) + ": not a name: \"" + value + "\"");
  desc_ += fmt::format(" {}={}", property, value);
  return *this;
}

LaunchElement& LaunchElement::set(const char* property, double value) {
  desc_ += fmt::format(" {}={}", property, value);
  return *this;
}

LaunchElement& LaunchElement::set(const char* property, int64_t value) {
  desc_ += fmt::format(" {}={}", property, value);
  return *this;
}

LaunchElement& LaunchElement::set(const char* property, uint64_t value) {
  desc_ += fmt::format(" {}={}", property, value);
  return *this;
}

LaunchElement& LaunchElement::set_if(const char* property, const std::string& value) {
  return value.empty() ? *this : set(property, value);
}

}  // namespace swarmlens
