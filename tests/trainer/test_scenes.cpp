// The colour, camera-like data set (trainer/scenes.h) and the image-folder helpers the benchmarks
// read it with: written from the Debian Fashion-MNIST package into a temporary folder.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <set>

#include "image_folder.h"
#include "scenes.h"
#include "../temp_dir.h"

using namespace swarmlens;
namespace fs = std::filesystem;

namespace {

const Dataset& fashion(bool train) {
  static const Dataset tr = load_fashion_mnist(default_fashion_mnist_dir(), true);
  static const Dataset te = load_fashion_mnist(default_fashion_mnist_dir(), false);
  return train ? tr : te;
}

size_t count_files(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.is_regular_file();
  return n;
}

cv::Scalar mean_colour(const Dataset& d) {
  double sum[3] = {0, 0, 0};
  for (size_t i = 0; i < d.pixels.size(); ++i) sum[i % 3] += d.pixels[i];
  const double n = double(d.pixels.size() / 3);
  return cv::Scalar(sum[0] / n, sum[1] / n, sum[2] / n);
}

}  // namespace

TEST_CASE("scenes: each site gets its own background family and look, the same for the same seed", "[scenes]") {
  const SiteLook a = site_look(0, 1), b = site_look(1, 1), a_again = site_look(0, 1), a_other = site_look(0, 2);
  CHECK(a.family != b.family);
  CHECK(site_family(0) == "wood");
  CHECK(site_family(7) == "wood");  // families repeat after the seventh site...
  CHECK(site_look(7, 1).palette[0] != a.palette[0]);  // ...in other colours
  CHECK(a.palette[0] == a_again.palette[0]);
  CHECK(a.palette[0] != a_other.palette[0]);

  std::mt19937_64 r1(5), r2(5), r3(6);
  const cv::Mat s1 = render_scene(fashion(false).image(0), a, 64, 48, r1);
  const cv::Mat s2 = render_scene(fashion(false).image(0), a, 64, 48, r2);
  const cv::Mat s3 = render_scene(fashion(false).image(0), a, 64, 48, r3);
  REQUIRE(s1.type() == CV_8UC3);
  CHECK(s1.cols == 64);
  CHECK(s1.rows == 48);
  CHECK(cv::norm(s1, s2, cv::NORM_INF) == 0);  // deterministic in the generator
  CHECK(cv::norm(s1, s3, cv::NORM_L1) > 0);   // another draw: another placement, light, noise
}

TEST_CASE("scenes: written as one image folder per site, in colour, read back with its class names", "[scenes]") {
  testing::TempDir tmp;
  SceneConfig cfg;
  cfg.sites = 3;
  cfg.width = 40;
  cfg.height = 32;
  cfg.train_per_site = 30;
  cfg.test_per_site = 10;
  const ScenesSummary s = write_scenes(fashion(true), fashion(false), tmp.path, cfg);
  CHECK(s.images == 3 * 40u);
  CHECK(s.bytes > 0);
  CHECK(s.sheet.cols == int(kSheetColumns) * 40);
  CHECK(s.sheet.rows == 3 * 32);

  const std::vector<std::string> sites = site_folders(tmp.path);
  REQUIRE(sites.size() == 3);
  CHECK(fs::path(sites[2]).filename() == "site-2");
  for (const auto& site : sites) {
    CHECK(count_files(fs::path(site) / "train") == 30);
    CHECK(count_files(fs::path(site) / "test") == 10);
  }
  CHECK(fs::is_directory(fs::path(sites[0]) / "train" / "T-shirt-top"));  // no '/' in a folder name
  CHECK(fs::is_directory(fs::path(sites[0]) / "train" / "Ankle-boot"));   // nor a space
  CHECK(first_image_size(sites[0]) == std::pair<int, int>(40, 32));

  const Dataset d0 = load_image_folder(sites[0] + "/train", 40, 32, 3), d1 = load_image_folder(sites[1] + "/train", 40, 32, 3);
  CHECK(d0.size() == 30);
  CHECK(d0.class_names.size() == 10);
  size_t grey = 0;  // colour scenes: R = G = B almost nowhere
  for (size_t i = 0; i + 2 < d0.pixels.size(); i += 3)
    grey += d0.pixels[i] == d0.pixels[i + 1] && d0.pixels[i + 1] == d0.pixels[i + 2];
  CHECK(grey < d0.pixels.size() / 3 / 10);
  // Feature skew: wood and brick differ in their mean colour.
  CHECK(cv::norm(mean_colour(d0) - mean_colour(d1)) > 10);

  std::ifstream f(fs::path(tmp.path) / "scenes.json");
  const auto j = nlohmann::json::parse(f);
  CHECK(j["sites"].size() == 3);
  CHECK(j["sites"][1]["family"] == "brick");
  CHECK(j["width"] == 40);

  SECTION("the same seed writes the same files") {
    testing::TempDir again;
    write_scenes(fashion(true), fashion(false), again.path, cfg);
    const Dataset d0_again = load_image_folder(again.path + "/site-0/train", 40, 32, 3);
    CHECK(d0_again.pixels == d0.pixels);
    CHECK(d0_again.labels == d0.labels);
  }
}

TEST_CASE("scenes: a request it cannot meet is an error naming the problem", "[scenes][reject]") {
  testing::TempDir tmp;
  SceneConfig cfg;
  cfg.sites = 0;
  CHECK_THROWS_WITH(write_scenes(fashion(true), fashion(false), tmp.path, cfg), Catch::Contains("sites 0"));
  cfg.sites = 7;
  cfg.test_per_site = 2000;  // 14,000 test items from 10,000
  CHECK_THROWS_WITH(write_scenes(fashion(true), fashion(false), tmp.path, cfg), Catch::Contains("more items"));
  cfg = SceneConfig{};
  cfg.train_per_site = 1;
  cfg.test_per_site = 1;
  std::ofstream(tmp.path + "/file") << "x";
  CHECK_THROWS_WITH(write_scenes(fashion(true), fashion(false), tmp.path + "/file/out", cfg), Catch::Contains("cannot create"));
}

TEST_CASE("site folders are listed in site order; data sets join only when alike", "[scenes][dataset]") {
  testing::TempDir tmp;
  for (const char* name : {"site-10", "site-2", "site-0", "notes", "site-x"}) fs::create_directories(fs::path(tmp.path) / name);
  const auto sites = site_folders(tmp.path);
  REQUIRE(sites.size() == 3);
  CHECK(fs::path(sites[0]).filename() == "site-0");
  CHECK(fs::path(sites[1]).filename() == "site-2");
  CHECK(fs::path(sites[2]).filename() == "site-10");
  CHECK(site_folders(tmp.path + "/notes").empty());
  CHECK_THROWS_WITH(first_image_size(tmp.path), Catch::Contains("no readable image"));

  Dataset a;
  a.append(fashion(false));
  CHECK(a.size() == fashion(false).size());
  a.append(fashion(false));
  CHECK(a.size() == 2 * fashion(false).size());
  CHECK(std::equal(a.image(fashion(false).size()), a.image(fashion(false).size()) + 784, fashion(false).image(0)));
  Dataset rgb;
  rgb.rows = rgb.cols = 28;
  rgb.channels = 3;
  rgb.labels = {0};
  rgb.pixels.resize(28 * 28 * 3);
  CHECK_THROWS_WITH(a.append(rgb), Catch::Contains("image shapes"));
}
