// Moving Fashion-MNIST: a labelled temporal data set made from real images. Each clip shows one
// Fashion-MNIST item, shrunk to `item` pixels, moving across a black canvas along one axis at 1..3
// pixels a frame and bouncing off the edges; the class of a frame is the direction of the item's
// last step (left, right, up, down). The start place is uniform, so one frame alone says next to
// nothing of the direction (chance is 25%); the motion over two or more frames says it all.
// Everything is deterministic in the seed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataset.h"

namespace swarmlens {

enum class Direction : int { left = 0, right = 1, up = 2, down = 3 };
const std::vector<std::string>& motion_class_names();  // "left", "right", "up", "down"

struct MotionConfig {
  int canvas = 28;    // square canvas side in pixels
  int item = 14;      // the item's side on the canvas
  int min_speed = 1;  // pixels per frame
  int max_speed = 3;
};

struct MotionClip {
  uint32_t item = 0;  // index into the data set
  Direction direction = Direction::left;  // at frame 0
  int x0 = 0, y0 = 0;  // the item's top-left corner at frame 0, in [0, canvas - item]
  int speed = 1;
};

// The clip number `index` of a stream seeded with `seed`, showing data set item `item`.
MotionClip motion_clip(uint32_t item, uint64_t seed, uint64_t index, const MotionConfig& cfg = {});

// The direction of the clip's item at frame t (that of its last step): frame t's label.
Direction motion_direction(const MotionClip& clip, int t, const MotionConfig& cfg);

// Frame t of the clip as a canvas x canvas grey image (row-major, 0..255) into out.
void render_motion_frame(const Dataset& d, const MotionClip& clip, int t, const MotionConfig& cfg,
                         uint8_t* out);

// Model input for a temporal model: for each of `count` items a clip (index = its position in the
// call plus `first_index`), its first `window` frames, normalised as Fashion-MNIST is
// ([count, window, 1, canvas, canvas]), labels = the direction at the window's last frame. Grey
// data sets only.
void make_motion_batch(const Dataset& d, const uint32_t* items, size_t count, int window, uint64_t seed,
                       uint64_t first_index, const MotionConfig& cfg, std::vector<float>& images,
                       std::vector<int64_t>& labels);

}  // namespace swarmlens
