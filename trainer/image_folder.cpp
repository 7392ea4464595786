#include "image_folder.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <stdexcept>

namespace fs = std::filesystem;

namespace swarmlens {

bool is_image_folder(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec) || fs::exists(fs::path(dir) / "train-images-idx3-ubyte.gz", ec)) return false;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory()) return true;
  return false;
}

namespace {

// The class sub-folders, sorted (their order is the labels'); empty if there are none or dir cannot
// be read.
std::vector<fs::path> class_folders(const std::string& dir) {
  std::vector<fs::path> classes;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory()) classes.push_back(e.path());
  if (ec) return {};
  std::sort(classes.begin(), classes.end());
  return classes;
}

}  // namespace

std::vector<std::string> site_folders(const std::string& dir) {
  std::vector<std::pair<long, std::string>> sites;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name.rfind("site-", 0) != 0) continue;
    char* end = nullptr;
    const long k = std::strtol(name.c_str() + 5, &end, 10);
    if (end != name.c_str() + 5 && *end == '\0') sites.emplace_back(k, e.path().string());
  }
  std::sort(sites.begin(), sites.end());
  std::vector<std::string> out;
  for (auto& [k, path] : sites) out.push_back(std::move(path));
  return out;
}

std::pair<int, int> first_image_size(const std::string& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    const cv::Mat img = cv::imread(f.string(), cv::IMREAD_UNCHANGED);
    if (!img.empty()) return {img.cols, img.rows};
  }
  throw std::runtime_error(dir + ": no readable image");
}

int count_class_folders(const std::string& dir) { return int(class_folders(dir).size()); }

Dataset load_image_folder(const std::string& dir, int width, int height, int channels) {
  const std::vector<fs::path> classes = class_folders(dir);
  if (classes.empty()) throw std::runtime_error(dir + ": no class sub-folders");
  if (classes.size() > 255) throw std::runtime_error(dir + ": more than 255 classes");
  Dataset d;
  d.rows = uint32_t(height);
  d.cols = uint32_t(width);
  d.channels = uint32_t(channels);
  for (size_t c = 0; c < classes.size(); ++c) {
    d.class_names.push_back(classes[c].filename().string());
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(classes[c]))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      cv::Mat img = cv::imread(f.string(), channels == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
      if (img.empty()) continue;  // not an image (a README, a thumbnail database): skip it
      if (channels == 3) cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
      cv::resize(img, img, cv::Size(width, height), 0, 0, cv::INTER_AREA);
      d.pixels.insert(d.pixels.end(), img.data, img.data + img.total() * img.elemSize());
      d.labels.push_back(uint8_t(c));
    }
  }
  if (d.labels.empty()) throw std::runtime_error(dir + ": no readable images in its class sub-folders");
  return d;
}

}  // namespace swarmlens
