// Labelled image data sets: IDX files (Fashion-MNIST as Debian installs it, read straight from .gz)
// and their split over N nodes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model.h"

namespace swarmlens {

struct Dataset {
  uint32_t rows = 0, cols = 0;
  uint32_t channels = 1;        // 1 (grey) or 3 (RGB, interleaved)
  std::vector<uint8_t> pixels;  // [n, rows, cols, channels], row-major, 0..255
  std::vector<uint8_t> labels;  // [n]
  std::vector<std::string> class_names;

  size_t size() const { return labels.size(); }
  size_t image_size() const { return size_t(rows) * cols * channels; }
  const uint8_t* image(size_t i) const { return pixels.data() + i * image_size(); }
  // The first n samples only (n >= size() keeps everything).
  void truncate(size_t n);
  // Appends `other`'s samples (an empty data set takes other's shape and class names). Throws
  // std::invalid_argument if the image shape or the class names differ.
  void append(const Dataset& other);
};

// Reads an IDX3 image file and an IDX1 label file (gzip or raw). Throws std::runtime_error with the
// path and the reason on any malformed or mismatched file.
Dataset load_idx(const std::string& images_path, const std::string& labels_path);

// Class names from a text file, one per line (blank lines and surrounding spaces ignored). Throws
// std::runtime_error naming the file when it cannot be read, is empty, or names a class twice.
std::vector<std::string> read_class_names(const std::string& path);

// $SWARMLENS_FASHION_MNIST if set, else /usr/share/datasets/fashion-mnist.
std::string default_fashion_mnist_dir();
Dataset load_fashion_mnist(const std::string& dir, bool train);
const std::vector<std::string>& fashion_mnist_class_names();

// Sample indices per node. IID: a seeded shuffle cut into near-equal parts. Non-IID: for each class,
// proportions over nodes drawn from Dirichlet(alpha) (small alpha = more skew). Deterministic in
// the seed; every sample goes to exactly one node.
using Shards = std::vector<std::vector<uint32_t>>;
Shards shard_iid(size_t n, uint32_t nodes, uint64_t seed);
Shards shard_dirichlet(const std::vector<uint8_t>& labels, uint32_t classes, uint32_t nodes,
                       double alpha, uint64_t seed);

// Normalised float batch for the models: images [B, channels, rows, cols] as (x/255 - mean)/std
// (frame_normalisation, as the elements do), labels [B]. Grey or RGB data sets.
inline constexpr float kFashionMean = 0.2860f, kFashionStd = 0.3530f;

// How camera frames are normalised for a model with `channels` channels, (x/255 - mean)/std: grey
// models use the Fashion-MNIST statistics they were trained with, RGB ones a generic 0.5/0.25.
struct Normalisation {
  float mean, std;
};
inline Normalisation frame_normalisation(int channels) {
  return channels == 1 ? Normalisation{kFashionMean, kFashionStd} : Normalisation{0.5f, 0.25f};
}

void make_batch(const Dataset& d, const uint32_t* indices, size_t count, std::vector<float>& images,
                std::vector<int64_t>& labels);

}  // namespace swarmlens
