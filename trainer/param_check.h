// The check of a model's parameters before anyone adopts or publishes them: every parameter finite,
// and the L2 norm within a bound. Used by the broker before each publish, by the nodes' link on every
// model that comes down, and by NodeTrainer on every model offered to it.
#pragma once

#include <string>
#include <vector>

namespace swarmlens {

double l2_norm(const std::vector<float>& params);
// "" when every parameter is finite and the L2 norm is at most max_norm (0 = no bound), else why not.
std::string check_model(const std::vector<float>& params, double max_norm);

}  // namespace swarmlens
