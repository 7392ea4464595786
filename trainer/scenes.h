// A colour, camera-like data set made from Fashion-MNIST on any machine, with nothing downloaded:
// each item is coloured, scaled, rotated and composited onto a procedural background, lit, given
// sensor noise and saved through JPEG. Every site (camera) has its own background family, colour
// cast, lighting and compression quality, so a fleet trained on some sites faces the feature skew
// real sites have, and sites it never saw measure how well the model travels.
//
// Written as image folders, one per site: DIR/site-K/{train,test}/<class>/NNNNN.jpg, which swarmsrc
// plays as video, the broker evaluates on (--test-data) and the benchmarks load. OpenCV only: part
// of swarmlens-images, no LibTorch.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <opencv2/core/mat.hpp>

#include "dataset.h"

namespace swarmlens {

struct SceneConfig {
  static constexpr int kDefaultSites = 6;
  static constexpr int kDefaultSize = 96;
  int sites = kDefaultSites;
  int width = kDefaultSize, height = kDefaultSize;
  size_t train_per_site = 1000;  // images in each site's train/ split
  size_t test_per_site = 250;    // ...and in its test/ split
  uint64_t seed = 1;

  // Throws std::invalid_argument naming the value out of range.
  void check() const;
};

// The background families, one per site in turn: wood, brick, foliage, tiles, sky, gravel, fabric.
const std::vector<std::string>& scene_families();
// Site K's family name (families repeat, with new colours, after the seventh site).
std::string site_family(int site);

// What makes one site look like itself: drawn once per site from the seed.
struct SiteLook {
  int site = 0;
  int family = 0;
  cv::Vec3f palette[3];   // the family's colours at this site, RGB 0..1
  cv::Vec3f cast;         // white balance: per-channel gain
  float noise_std = 0.0f; // sensor noise, in 0..255 units
  int jpeg_min = 0, jpeg_max = 0;  // JPEG quality range
};
SiteLook site_look(int site, uint64_t seed);

// One scene: the grey 28x28 item `item` (0 = empty) on a background of the site's family, as an
// 8-bit BGR image of width x height (OpenCV's order), before JPEG.
cv::Mat render_scene(const uint8_t* item, const SiteLook& look, int width, int height, std::mt19937_64& rng);

inline constexpr size_t kSheetColumns = 8;
struct ScenesSummary {
  size_t images = 0;
  uint64_t bytes = 0;
  cv::Mat sheet;  // a contact sheet: a row of each site's first kSheetColumns scenes (BGR, as written)
};

// Renders every site's train and test split from Fashion-MNIST (items drawn without replacement:
// no item is in two sites or two splits) into `out`, and writes out/scenes.json describing the run.
// Throws std::runtime_error naming a path that cannot be written, std::invalid_argument if the data
// set has too few items for the sites asked.
ScenesSummary write_scenes(const Dataset& train, const Dataset& test, const std::string& out,
                           const SceneConfig& cfg);

// A folder name for a class name, safe in a path and a shell ("T-shirt/top" -> "T-shirt-top",
// "Ankle boot" -> "Ankle-boot").
std::string class_folder_name(const std::string& class_name);

}  // namespace swarmlens
