#include "param_check.h"

#include <cmath>

namespace swarmlens {

double l2_norm(const std::vector<float>& params) {
  double s = 0.0;
  for (float v : params) s += double(v) * double(v);
  return std::sqrt(s);
}

std::string check_model(const std::vector<float>& params, double max_norm) {
  for (size_t i = 0; i < params.size(); ++i)
    if (!std::isfinite(params[i])) return "parameter " + std::to_string(i) + " is not finite";
  const double n = l2_norm(params);
  if (max_norm > 0.0 && n > max_norm)
    return "parameter norm " + std::to_string(n) + " above the bound " + std::to_string(max_norm);
  return "";
}

}  // namespace swarmlens
