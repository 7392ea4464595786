// One element of a gst-launch description, written from typed values and property-name constants
// (plugins/properties.h): `LaunchElement("swarmtrain").set(props::kLearningRate, lr).str()`.
// Text values are quoted, so paths and URLs with spaces or commas survive the parser.
#pragma once

#include <cstdint>
#include <string>

namespace swarmlens {

class LaunchElement {
 public:
  explicit LaunchElement(std::string factory) : desc_(std::move(factory)) {}
  LaunchElement& set(const char* property, const std::string& value);  // quoted; throws on a '"'
  LaunchElement& set(const char* property, const char* value) { return set(property, std::string(value)); }
  // A name from a fixed set (a model, a device, a policy) as it is; throws std::invalid_argument
  // unless it is one word of letters, digits and . _ : + -.
  LaunchElement& set_word(const char* property, const std::string& value);
  LaunchElement& set(const char* property, double value);
  LaunchElement& set(const char* property, int64_t value);
  LaunchElement& set(const char* property, uint64_t value);
  LaunchElement& set(const char* property, int value) { return set(property, int64_t(value)); }
  LaunchElement& set(const char* property, unsigned value) { return set(property, uint64_t(value)); }
  // Sets it only when `value` is not empty (an optional text property left at its default).
  LaunchElement& set_if(const char* property, const std::string& value);
  const std::string& str() const { return desc_; }

 private:
  std::string desc_;
};

// A property value for gst-launch: quoted. Throws std::invalid_argument for a value with a '"'.
std::string quoted(const std::string& value);

}  // namespace swarmlens
