#include "scenes.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fmt/core.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

namespace fs = std::filesystem;

namespace swarmlens {

void SceneConfig::check() const {
  if (sites < 1 || sites > 64) throw std::invalid_argument(fmt::format("sites {} is outside 1..64", sites));
  if (width < 16 || width > 1024 || height < 16 || height > 1024)
    throw std::invalid_argument(fmt::format("scene size {}x{} is outside 16..1024", width, height));
  if (train_per_site == 0 && test_per_site == 0) throw std::invalid_argument("no images asked for");
}

const std::vector<std::string>& scene_families() {
  static const std::vector<std::string> names = {"wood", "brick", "foliage", "tiles", "sky", "gravel", "fabric"};
  return names;
}

std::string site_family(int site) { return scene_families()[size_t(site) % scene_families().size()]; }

namespace {

using Rng = std::mt19937_64;
float uniform(Rng& rng, float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng); }
int uniform_int(Rng& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

cv::Vec3f hsv(float h, float s, float v) {  // h in 0..360, s and v in 0..1: RGB 0..1
  cv::Mat3f px(1, 1, cv::Vec3f(h, s, v));
  cv::cvtColor(px, px, cv::COLOR_HSV2RGB);
  return px(0, 0);
}

// Each family's hue range and saturation/value, so that sites of one family look alike but not
// identical. Hues in degrees.
struct FamilyColours {
  float hue_lo, hue_hi, sat_lo, sat_hi, val_lo, val_hi;
};
constexpr FamilyColours kFamilyColours[] = {
    {20, 40, 0.45f, 0.75f, 0.35f, 0.75f},   // wood: browns
    {0, 25, 0.45f, 0.8f, 0.4f, 0.8f},       // brick: reds
    {70, 140, 0.4f, 0.85f, 0.25f, 0.7f},    // foliage: greens
    {0, 360, 0.05f, 0.35f, 0.6f, 0.95f},    // tiles: pale, any hue
    {195, 225, 0.25f, 0.7f, 0.6f, 0.95f},   // sky: blues
    {0, 360, 0.0f, 0.12f, 0.3f, 0.7f},      // gravel: greys
    {0, 360, 0.4f, 0.9f, 0.3f, 0.9f},       // fabric: any strong colour
};

// Smooth noise in 0..1: uniform noise on a coarse grid of `cell`-pixel cells, scaled up bicubically.
cv::Mat1f smooth_noise(int w, int h, int cell, Rng& rng) {
  cv::Mat1f coarse(std::max(2, h / cell + 2), std::max(2, w / cell + 2));
  for (auto& v : coarse) v = uniform(rng, 0.0f, 1.0f);
  cv::Mat1f fine;
  cv::resize(coarse, fine, cv::Size(w, h), 0, 0, cv::INTER_CUBIC);
  return fine;
}

// Mixes palette colours a and b by t (0..1) per pixel into an RGB float image.
cv::Mat3f mix(const cv::Mat1f& t, cv::Vec3f a, cv::Vec3f b) {
  cv::Mat3f out(t.size());
  for (int y = 0; y < t.rows; ++y)
    for (int x = 0; x < t.cols; ++x) {
      const float k = std::clamp(t(y, x), 0.0f, 1.0f);
      out(y, x) = a * (1.0f - k) + b * k;
    }
  return out;
}

cv::Scalar bgr255(cv::Vec3f rgb) { return cv::Scalar(rgb[2] * 255, rgb[1] * 255, rgb[0] * 255); }

// Background of one family at one site, RGB float 0..1. Random within the family on every call.
cv::Mat3f background(const SiteLook& look, int w, int h, Rng& rng) {
  const cv::Vec3f *pal = look.palette;
  switch (look.family) {
    case 0: {  // wood: bent grain stripes
      const float angle = uniform(rng, -0.4f, 0.4f), freq = uniform(rng, 0.15f, 0.35f);
      cv::Mat1f warp = smooth_noise(w, h, 24, rng), t(h, w);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
          t(y, x) = 0.5f + 0.5f * std::sin((x * std::cos(angle) + y * std::sin(angle)) * freq + 8.0f * warp(y, x));
      return mix(t, pal[0], pal[1] * 0.55f);  // dark grain on the light wood
    }
    case 1: {  // brick: offset rows of jittered bricks in mortar
      cv::Mat3b img(h, w, cv::Vec3b(0, 0, 0));
      img.setTo(bgr255(pal[2] * 0.9f + cv::Vec3f(0.1f, 0.1f, 0.1f)));
      const int bh = uniform_int(rng, h / 10, h / 6), bw = bh * uniform_int(rng, 2, 3), mortar = std::max(1, bh / 6);
      for (int row = 0, y = -uniform_int(rng, 0, bh); y < h; ++row, y += bh) {
        const int offset = (row % 2) * bw / 2 + uniform_int(rng, 0, 2);
        for (int x = -offset; x < w; x += bw) {
          const cv::Vec3f c = (uniform(rng, 0, 1) < 0.5f ? pal[0] : pal[1]) * uniform(rng, 0.8f, 1.15f);
          cv::rectangle(img, cv::Rect(x + mortar, y + mortar, bw - mortar, bh - mortar), bgr255(c), cv::FILLED);
        }
      }
      cv::Mat3f out;
      img.convertTo(out, CV_32FC3, 1.0 / 255);
      cv::cvtColor(out, out, cv::COLOR_BGR2RGB);
      return out;
    }
    case 2: {  // foliage: many short strokes over a dark ground
      cv::Mat3b img(h, w);
      img.setTo(bgr255(pal[2] * 0.5f));
      const int strokes = w * h / 12;
      for (int i = 0; i < strokes; ++i) {
        const cv::Point p(uniform_int(rng, -4, w + 4), uniform_int(rng, -4, h + 4));
        const float a = uniform(rng, 0, float(CV_PI)), len = uniform(rng, 3, float(w) / 8);
        const cv::Point q(p.x + int(len * std::cos(a)), p.y - int(len * std::sin(a)));
        const cv::Vec3f c = (i % 2 ? pal[0] : pal[1]) * uniform(rng, 0.6f, 1.2f);
        cv::line(img, p, q, bgr255(c), uniform_int(rng, 1, 2), cv::LINE_AA);
      }
      cv::Mat3f out;
      img.convertTo(out, CV_32FC3, 1.0 / 255);
      cv::cvtColor(out, out, cv::COLOR_BGR2RGB);
      return out;
    }
    case 3: {  // tiles: a checkerboard of two colours with grout lines
      const int tile = uniform_int(rng, w / 8, w / 3), grout = std::max(1, tile / 12);
      const int ox = uniform_int(rng, 0, tile), oy = uniform_int(rng, 0, tile);
      cv::Mat3f out(h, w);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const int tx = (x + ox) / tile, ty = (y + oy) / tile;
          const bool line = (x + ox) % tile < grout || (y + oy) % tile < grout;
          out(y, x) = line ? pal[2] * 0.6f : ((tx + ty) % 2 ? pal[0] : pal[1]);
        }
      return out;
    }
    case 4: {  // sky: a vertical gradient with soft clouds
      cv::Mat1f clouds = smooth_noise(w, h, uniform_int(rng, 12, 32), rng);
      cv::Mat3f out(h, w);
      const cv::Vec3f white(0.95f, 0.95f, 0.97f);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const float g = float(y) / float(h);
          const cv::Vec3f sky = pal[0] * (1.0f - g) + pal[1] * g;
          const float c = std::clamp((clouds(y, x) - 0.5f) * 2.5f, 0.0f, 1.0f);
          out(y, x) = sky * (1.0f - c) + white * c;
        }
      return out;
    }
    case 5: {  // gravel: speckle at two scales
      cv::Mat1f coarse = smooth_noise(w, h, 4, rng), fine(h, w);
      for (auto& v : fine) v = uniform(rng, 0.0f, 1.0f);
      cv::GaussianBlur(fine, fine, cv::Size(3, 3), 0.8);
      const cv::Mat1f t = 0.6f * coarse + 0.4f * fine;
      return mix(t, pal[0], pal[1]);
    }
    default: {  // fabric: a plaid of horizontal and vertical bands
      const float fx = uniform(rng, 0.1f, 0.4f), fy = uniform(rng, 0.1f, 0.4f);
      cv::Mat3f out(h, w);
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const float a = std::sin(x * fx) > 0.3f ? 1.0f : 0.0f, b = std::sin(y * fy) > 0.3f ? 1.0f : 0.0f;
          out(y, x) = pal[0] * (1 - a) * (1 - b) + pal[1] * (a + b) * 0.5f + pal[2] * a * b * 0.5f;
        }
      return out;
    }
  }
}

}  // namespace

SiteLook site_look(int site, uint64_t seed) {
  Rng rng(seed * 1000003 + uint64_t(site) * 7919 + 17);
  SiteLook look;
  look.site = site;
  look.family = site % int(scene_families().size());
  const FamilyColours& fc = kFamilyColours[look.family];
  for (auto& p : look.palette)
    p = hsv(uniform(rng, fc.hue_lo, fc.hue_hi), uniform(rng, fc.sat_lo, fc.sat_hi), uniform(rng, fc.val_lo, fc.val_hi));
  look.cast = cv::Vec3f(uniform(rng, 0.85f, 1.15f), uniform(rng, 0.9f, 1.1f), uniform(rng, 0.85f, 1.15f));
  look.noise_std = uniform(rng, 2.0f, 9.0f);
  look.jpeg_min = uniform_int(rng, 25, 55);
  look.jpeg_max = look.jpeg_min + uniform_int(rng, 10, 35);
  return look;
}

cv::Mat render_scene(const uint8_t* item, const SiteLook& look, int width, int height, std::mt19937_64& rng) {
  cv::Mat3f scene = background(look, width, height, rng);

  // The item: scaled to 50..85% of the frame, rotated, placed anywhere it stays mostly in view.
  cv::Mat1f src;
  cv::Mat1b(28, 28, const_cast<uint8_t*>(item)).convertTo(src, CV_32F);
  const float side = float(std::min(width, height)) * uniform(rng, 0.5f, 0.85f);
  const float scale = side / 28.0f, angle = uniform(rng, -25.0f, 25.0f);
  const float slack_x = std::max(0.0f, (float(width) - side) / 2 + side * 0.1f);
  const float slack_y = std::max(0.0f, (float(height) - side) / 2 + side * 0.1f);
  const cv::Point2f centre(float(width) / 2 + uniform(rng, -slack_x, slack_x), float(height) / 2 + uniform(rng, -slack_y, slack_y));
  cv::Mat m = cv::getRotationMatrix2D(cv::Point2f(14, 14), angle, scale);
  m.at<double>(0, 2) += centre.x - 14;
  m.at<double>(1, 2) += centre.y - 14;
  cv::Mat1f shade;
  cv::warpAffine(src, shade, m, cv::Size(width, height), cv::INTER_LINEAR, cv::BORDER_CONSTANT, 0);

  // Coloured by a random hue (colour says nothing of the class), shaded by the item's own grey.
  const cv::Vec3f colour = hsv(uniform(rng, 0, 360), uniform(rng, 0.3f, 0.9f), uniform(rng, 0.55f, 1.0f));
  // Light: a global gain and a linear ramp across the frame in a random direction.
  const float gain = uniform(rng, 0.6f, 1.25f), ramp = uniform(rng, 0.0f, 0.5f), dir = uniform(rng, 0, 2 * float(CV_PI));
  const float dx = std::cos(dir) / float(width), dy = std::sin(dir) / float(height);
  std::normal_distribution<float> noise(0.0f, look.noise_std);
  cv::Mat3b out(height, width);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const float s = shade(y, x) / 255.0f, alpha = std::min(1.0f, s * 2.0f);
      const cv::Vec3f item_px = colour * (0.35f + 0.65f * s);
      const cv::Vec3f px = scene(y, x) * (1.0f - alpha) + item_px * alpha;
      const float light = gain * (1.0f + ramp * ((float(x) - width / 2.0f) * dx + (float(y) - height / 2.0f) * dy));
      for (int c = 0; c < 3; ++c)  // RGB in, BGR out
        out(y, x)[2 - c] = cv::saturate_cast<uint8_t>(px[c] * look.cast[c] * light * 255.0f + noise(rng));
    }
  return out;
}

std::string class_folder_name(const std::string& class_name) {
  std::string s = class_name;
  for (char& c : s)
    if (c == '/' || c == '\\' || c == ' ') c = '-';
  return s;
}

namespace {

// Writes `count` scenes of `look`'s site, items from `data` at `indices`, under dir/<class>/.
// The first few scenes go into `shown` (for the contact sheet).
uint64_t write_split(const Dataset& data, const std::vector<uint32_t>& indices, const SiteLook& look,
                     const fs::path& dir, const SceneConfig& cfg, Rng& rng, std::vector<cv::Mat>* shown) {
  const std::vector<std::string>& names = data.class_names.empty() ? fashion_mnist_class_names() : data.class_names;
  for (const auto& n : names) {
    std::error_code ec;
    fs::create_directories(dir / class_folder_name(n), ec);
    if (ec) throw std::runtime_error(fmt::format("cannot create {}: {}", (dir / class_folder_name(n)).string(), ec.message()));
  }
  uint64_t bytes = 0;
  std::vector<uint8_t> jpeg;
  for (size_t k = 0; k < indices.size(); ++k) {
    const uint32_t i = indices[k];
    const cv::Mat img = render_scene(data.image(i), look, cfg.width, cfg.height, rng);
    const int quality = uniform_int(rng, look.jpeg_min, look.jpeg_max);
    cv::imencode(".jpg", img, jpeg, {cv::IMWRITE_JPEG_QUALITY, quality});
    if (shown && shown->size() < kSheetColumns) shown->push_back(cv::imdecode(jpeg, cv::IMREAD_COLOR));
    const fs::path file = dir / class_folder_name(names.at(data.labels[i])) / fmt::format("{:05}.jpg", k);
    std::ofstream f(file, std::ios::binary);
    f.write(reinterpret_cast<const char*>(jpeg.data()), std::streamsize(jpeg.size()));
    if (!f) throw std::runtime_error("cannot write " + file.string());
    bytes += jpeg.size();
  }
  return bytes;
}

}  // namespace

ScenesSummary write_scenes(const Dataset& train, const Dataset& test, const std::string& out, const SceneConfig& cfg) {
  cfg.check();
  if (train.rows != 28 || train.cols != 28 || train.channels != 1 || test.rows != 28 || test.cols != 28 || test.channels != 1)
    throw std::invalid_argument("scenes are made from 28x28 grey items (Fashion-MNIST)");
  if (train.size() < cfg.train_per_site * size_t(cfg.sites) || test.size() < cfg.test_per_site * size_t(cfg.sites))
    throw std::invalid_argument(fmt::format("{} sites of {} train and {} test images need more items than the data set "
                                            "has ({} train, {} test)", cfg.sites, cfg.train_per_site, cfg.test_per_site,
                                            train.size(), test.size()));
  // Items without replacement: a seeded permutation of each set, cut into consecutive runs per site.
  auto permutation = [&](size_t n, uint64_t salt) {
    std::vector<uint32_t> p(n);
    std::iota(p.begin(), p.end(), 0u);
    Rng rng(cfg.seed * 31 + salt);
    std::shuffle(p.begin(), p.end(), rng);
    return p;
  };
  const std::vector<uint32_t> train_order = permutation(train.size(), 1), test_order = permutation(test.size(), 2);

  ScenesSummary summary;
  nlohmann::json sites = nlohmann::json::array();
  for (int s = 0; s < cfg.sites; ++s) {
    const SiteLook look = site_look(s, cfg.seed);
    Rng rng(cfg.seed * 1000003 + uint64_t(s) * 104729 + 5);
    const fs::path site_dir = fs::path(out) / fmt::format("site-{}", s);
    auto cut = [&](const std::vector<uint32_t>& order, size_t per_site) {
      return std::vector<uint32_t>(order.begin() + long(per_site) * s, order.begin() + long(per_site) * (s + 1));
    };
    std::vector<cv::Mat> shown;
    summary.bytes += write_split(train, cut(train_order, cfg.train_per_site), look, site_dir / "train", cfg, rng, &shown);
    summary.bytes += write_split(test, cut(test_order, cfg.test_per_site), look, site_dir / "test", cfg, rng, &shown);
    while (shown.size() < kSheetColumns) shown.push_back(cv::Mat::zeros(cfg.height, cfg.width, CV_8UC3));
    cv::Mat row;
    cv::hconcat(shown, row);
    if (summary.sheet.empty()) summary.sheet = row;
    else cv::vconcat(summary.sheet, row, summary.sheet);
    summary.images += cfg.train_per_site + cfg.test_per_site;
    sites.push_back({{"site", s}, {"family", site_family(s)}, {"noise_std", look.noise_std},
                     {"jpeg_quality", {look.jpeg_min, look.jpeg_max}}});
  }
  nlohmann::json j = {{"data_set", "swarmlens scenes"}, {"source", "fashion-mnist"},
                      {"width", cfg.width}, {"height", cfg.height}, {"train_per_site", cfg.train_per_site},
                      {"test_per_site", cfg.test_per_site}, {"seed", cfg.seed}, {"sites", sites}};
  const fs::path meta = fs::path(out) / "scenes.json";
  std::ofstream f(meta);
  f << j.dump(2) << "\n";
  if (!f) throw std::runtime_error("cannot write " + meta.string());
  return summary;
}

}  // namespace swarmlens
