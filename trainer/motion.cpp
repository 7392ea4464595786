#include "motion.h"

#include <algorithm>
#include <stdexcept>

namespace swarmlens {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int wrap(int v, int n) { return ((v % n) + n) % n; }

// The item's top-left corner and its direction at frame t. It moves speed pixels a frame along one
// axis and bounces off the canvas edges (a triangle wave over [0, canvas - item]); its direction at
// frame t is that of its last step (t = 0: the clip's own).
struct Place {
  int x, y;
  Direction direction;
};

int axis_pos(const MotionClip& c, int t, int room) {
  const int dir = int(c.direction);
  const int sign0 = (dir == int(Direction::left) || dir == int(Direction::up)) ? -1 : 1;
  const int p0 = std::min(dir < 2 ? c.x0 : c.y0, room);
  if (room == 0) return 0;
  const int m = wrap(p0 + sign0 * c.speed * t, 2 * room);
  return m <= room ? m : 2 * room - m;
}

Place place_at(const MotionClip& c, int t, const MotionConfig& cfg) {
  const int room = cfg.canvas - cfg.item;
  const bool horizontal = int(c.direction) < 2;
  int sign = (c.direction == Direction::left || c.direction == Direction::up) ? -1 : 1;
  for (int k = 1; k <= t; ++k) {
    const int step = axis_pos(c, k, room) - axis_pos(c, k - 1, room);
    if (step != 0) sign = step > 0 ? 1 : -1;
  }
  const int pos = axis_pos(c, t, room);
  const Direction now = horizontal ? (sign < 0 ? Direction::left : Direction::right)
                                   : (sign < 0 ? Direction::up : Direction::down);
  return horizontal ? Place{pos, std::min(c.y0, room), now} : Place{std::min(c.x0, room), pos, now};
}

}  // namespace

const std::vector<std::string>& motion_class_names() {
  static const std::vector<std::string> names = {"left", "right", "up", "down"};
  return names;
}

MotionClip motion_clip(uint32_t item, uint64_t seed, uint64_t index, const MotionConfig& cfg) {
  if (cfg.canvas < 2 || cfg.item < 1 || cfg.item > cfg.canvas || cfg.min_speed < 1 || cfg.max_speed < cfg.min_speed)
    throw std::invalid_argument("motion: need 1 <= item <= canvas and 1 <= min_speed <= max_speed");
  const uint64_t h = splitmix64(splitmix64(seed) ^ index);
  MotionClip c;
  c.item = item;
  c.direction = Direction(int(h & 3));
  c.x0 = int((h >> 8) % uint64_t(cfg.canvas - cfg.item + 1));
  c.y0 = int((h >> 24) % uint64_t(cfg.canvas - cfg.item + 1));
  c.speed = cfg.min_speed + int((h >> 40) % uint64_t(cfg.max_speed - cfg.min_speed + 1));
  return c;
}

Direction motion_direction(const MotionClip& clip, int t, const MotionConfig& cfg) {
  return place_at(clip, t, cfg).direction;
}

void render_motion_frame(const Dataset& d, const MotionClip& clip, int t, const MotionConfig& cfg, uint8_t* out) {
  if (d.channels != 1) throw std::invalid_argument("motion: grey data sets only");
  if (clip.item >= d.size()) throw std::out_of_range("motion: item outside the data set");
  const int n = cfg.canvas, s = cfg.item;
  const Place at = place_at(clip, t, cfg);
  const int x0 = at.x, y0 = at.y;
  std::fill(out, out + size_t(n) * n, uint8_t(0));
  const uint8_t* img = d.image(clip.item);
  // Area-average the rows x cols image down to s x s, and paste it with wrap-around.
  for (int y = 0; y < s; ++y) {
    const uint32_t r0 = uint32_t(y) * d.rows / uint32_t(s), r1 = std::max(r0 + 1, uint32_t(y + 1) * d.rows / uint32_t(s));
    for (int x = 0; x < s; ++x) {
      const uint32_t c0 = uint32_t(x) * d.cols / uint32_t(s), c1 = std::max(c0 + 1, uint32_t(x + 1) * d.cols / uint32_t(s));
      uint32_t sum = 0;
      for (uint32_t r = r0; r < r1; ++r)
        for (uint32_t c = c0; c < c1; ++c) sum += img[r * d.cols + c];
      out[size_t(y0 + y) * n + size_t(x0 + x)] = uint8_t(sum / ((r1 - r0) * (c1 - c0)));
    }
  }
}

void make_motion_batch(const Dataset& d, const uint32_t* items, size_t count, int window, uint64_t seed,
                       uint64_t first_index, const MotionConfig& cfg, std::vector<float>& images,
                       std::vector<int64_t>& labels) {
  if (window < 1) throw std::invalid_argument("motion: window must be >= 1");
  const size_t plane = size_t(cfg.canvas) * cfg.canvas;
  images.resize(count * size_t(window) * plane);
  labels.resize(count);
  std::vector<uint8_t> frame(plane);
  for (size_t i = 0; i < count; ++i) {
    const MotionClip clip = motion_clip(items[i], seed, first_index + i, cfg);
    labels[i] = int64_t(motion_direction(clip, window - 1, cfg));
    for (int t = 0; t < window; ++t) {
      render_motion_frame(d, clip, t, cfg, frame.data());
      float* dst = images.data() + (i * size_t(window) + size_t(t)) * plane;
      for (size_t k = 0; k < plane; ++k) dst[k] = (frame[k] / 255.0f - kFashionMean) / kFashionStd;
    }
  }
}

}  // namespace swarmlens
