// `swarmlens scenes`: writes the colour, camera-like data set (trainer/scenes.h) as image folders,
// one per site, from the Fashion-MNIST Debian package.
#pragma once

#include <string>

#include "scenes.h"

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

struct ScenesOptions : SceneConfig {
  std::string output;    // the folder written (site-0, site-1, ..., scenes.json)
  std::string sheet;     // a contact sheet PNG, if asked
  std::string data_dir;  // Fashion-MNIST; empty: default_fashion_mnist_dir()
};

int run_scenes(const ScenesOptions& o);
void add_scenes_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
