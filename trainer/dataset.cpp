#include "dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>


namespace swarmlens {

namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<std::remove_pointer_t<gzFile>, GzCloser>;

// gzread reads plain files too, so .gz and raw IDX both work.
std::vector<uint8_t> read_all(const std::string& path) {
  GzFile f(gzopen(path.c_str(), "rb"));
  if (!f) throw std::runtime_error(path + ": cannot open");
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  for (;;) {
    const int n = gzread(f.get(), buf, sizeof buf);
    if (n < 0) throw std::runtime_error(path + ": read error (corrupt gzip?)");
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

uint32_t be32(const std::vector<uint8_t>& b, size_t off) {
  return uint32_t(b[off]) << 24 | uint32_t(b[off + 1]) << 16 | uint32_t(b[off + 2]) << 8 | b[off + 3];
}

}  // namespace

void Dataset::truncate(size_t n) {
  if (n >= size()) return;
  labels.resize(n);
  pixels.resize(n * image_size());
}

void Dataset::append(const Dataset& other) {
  if (labels.empty() && pixels.empty()) {
    rows = other.rows, cols = other.cols, channels = other.channels;
    class_names = other.class_names;
  } else if (rows != other.rows || cols != other.cols || channels != other.channels) {
    throw std::invalid_argument("cannot join data sets of different image shapes");
  } else if (class_names != other.class_names) {
    throw std::invalid_argument("cannot join data sets of different classes");
  }
  pixels.insert(pixels.end(), other.pixels.begin(), other.pixels.end());
  labels.insert(labels.end(), other.labels.begin(), other.labels.end());
}

Dataset load_idx(const std::string& images_path, const std::string& labels_path) {
  const auto img = read_all(images_path);
  const auto lab = read_all(labels_path);
  if (img.size() < 16 || be32(img, 0) != 0x00000803)
    throw std::runtime_error(images_path + ": not an IDX3 ubyte image file");
  if (lab.size() < 8 || be32(lab, 0) != 0x00000801)
    throw std::runtime_error(labels_path + ": not an IDX1 ubyte label file");
  const uint64_t n = be32(img, 4), rows = be32(img, 8), cols = be32(img, 12);
  if (rows == 0 || cols == 0 || rows > 4096 || cols > 4096)
    throw std::runtime_error(images_path + ": implausible image size");
  if (img.size() - 16 != n * rows * cols)
    throw std::runtime_error(images_path + ": size does not match its header");
  if (be32(lab, 4) != n || lab.size() - 8 != n)
    throw std::runtime_error(labels_path + ": label count does not match the images");
  Dataset d;
  d.rows = uint32_t(rows);
  d.cols = uint32_t(cols);
  d.pixels.assign(img.begin() + 16, img.end());
  d.labels.assign(lab.begin() + 8, lab.end());
  return d;
}

std::string default_fashion_mnist_dir() {
  if (const char* e = std::getenv("SWARMLENS_FASHION_MNIST"); e && *e) return e;
  return "/usr/share/datasets/fashion-mnist";
}

std::vector<std::string> read_class_names(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot read the class names");
  std::vector<std::string> names;
  for (std::string line; std::getline(f, line);) {
    const auto b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
    if (b == std::string::npos) continue;
    names.push_back(line.substr(b, e - b + 1));
    if (std::count(names.begin(), names.end(), names.back()) > 1) throw std::runtime_error(path + ": class '" + names.back() + "' named twice");
  }
  if (names.empty()) throw std::runtime_error(path + ": no class names");
  return names;
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                 "Coat",        "Sandal",  "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

Dataset load_fashion_mnist(const std::string& dir, bool train) {
  const std::string p = dir + (train ? "/train" : "/t10k");
  Dataset d = load_idx(p + "-images-idx3-ubyte.gz", p + "-labels-idx1-ubyte.gz");
  for (uint8_t l : d.labels)
    if (l >= 10) throw std::runtime_error(p + ": label out of range 0..9");
  d.class_names = fashion_mnist_class_names();
  return d;
}

Shards shard_iid(size_t n, uint32_t nodes, uint64_t seed) {
  if (nodes == 0) throw std::invalid_argument("shard_iid: zero nodes");
  std::vector<uint32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0u);
  std::mt19937_64 rng(seed);
  std::shuffle(idx.begin(), idx.end(), rng);
  Shards s(nodes);
  for (size_t i = 0; i < n; ++i) s[i % nodes].push_back(idx[i]);
  return s;
}

Shards shard_dirichlet(const std::vector<uint8_t>& labels, uint32_t classes, uint32_t nodes,
                       double alpha, uint64_t seed) {
  if (nodes == 0 || classes == 0 || !(alpha > 0.0))
    throw std::invalid_argument("shard_dirichlet: need nodes, classes and alpha > 0");
  std::mt19937_64 rng(seed);
  std::vector<std::vector<uint32_t>> by_class(classes);
  for (uint32_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= classes) throw std::invalid_argument("shard_dirichlet: label out of range");
    by_class[labels[i]].push_back(i);
  }
  Shards s(nodes);
  std::gamma_distribution<double> gamma(alpha, 1.0);
  for (auto& members : by_class) {
    std::shuffle(members.begin(), members.end(), rng);
    std::vector<double> p(nodes);
    double sum = 0.0;
    for (auto& x : p) sum += (x = gamma(rng));
    // Cut points from the cumulative proportions; the last node takes the remainder.
    size_t start = 0;
    double acc = 0.0;
    for (uint32_t k = 0; k < nodes; ++k) {
      acc += sum > 0.0 ? p[k] / sum : 1.0 / nodes;
      const size_t end = (k + 1 == nodes) ? members.size()
                                          : std::min(members.size(), size_t(acc * members.size()));
      for (size_t i = start; i < end; ++i) s[k].push_back(members[i]);
      start = std::max(start, end);
    }
  }
  for (auto& shard : s) std::shuffle(shard.begin(), shard.end(), rng);
  return s;
}

void make_batch(const Dataset& d, const uint32_t* indices, size_t count, std::vector<float>& images,
                std::vector<int64_t>& labels) {
  if (d.channels != 1 && d.channels != 3) throw std::invalid_argument("make_batch: grey or RGB data sets only");
  const size_t px = size_t(d.rows) * d.cols, ch = d.channels;
  const Normalisation n = frame_normalisation(int(ch));  // as the elements normalise camera frames
  images.resize(count * px * ch);
  labels.resize(count);
  for (size_t b = 0; b < count; ++b) {
    const uint8_t* src = d.image(indices[b]);  // [rows, cols, channels]
    float* dst = images.data() + b * px * ch;  // [channels, rows, cols]
    for (size_t c = 0; c < ch; ++c)
      for (size_t i = 0; i < px; ++i) dst[c * px + i] = (src[i * ch + c] / 255.0f - n.mean) / n.std;
    labels[b] = d.labels[indices[b]];
  }
}


}  // namespace swarmlens
