// The Swarmlens version (meson's project version), for every command's --version.
#pragma once

namespace swarmlens {

const char* version();

}  // namespace swarmlens
