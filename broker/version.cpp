#include "version.h"

namespace swarmlens {

const char* version() { return SWARMLENS_VERSION; }

}  // namespace swarmlens
