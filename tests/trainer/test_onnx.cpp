// ONNX export checked by a runtime no one here wrote: OpenCV's DNN module loads the exported file
// and must agree with LibTorch on the same inputs.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <numeric>
#include <random>

#include "dataset.h"
#include "dnn_classifier.h"
#include "model.h"
#include "onnx_export.h"
#include "optim.h"

using namespace swarmlens;

namespace {

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
  REQUIRE(f.good());
}

// Runs both runtimes on the same inputs; returns the share of equal labels and the largest
// difference in probability.
std::pair<double, float> compare(Model& m, DnnClassifier& dnn, const std::vector<float>& images, size_t n) {
  const size_t classes = size_t(m.spec().classes);
  std::vector<int64_t> a(n), b(n);
  std::vector<float> pa(n * classes), pb(n * classes);
  m.predict(images.data(), n, a.data(), pa.data());
  dnn.predict(images.data(), n, b.data(), pb.data());
  size_t same = 0;
  float diff = 0.0f;
  for (size_t i = 0; i < n; ++i) same += a[i] == b[i];
  for (size_t i = 0; i < pa.size(); ++i) diff = std::max(diff, std::abs(pa[i] - pb[i]));
  return {double(same) / double(n), diff};
}

}  // namespace

TEST_CASE("the small CNN exported to ONNX classifies as LibTorch does, in OpenCV DNN", "[onnx]") {
  set_compute_threads(2);
  auto m = Model::create({}, 3);
  auto train = load_fashion_mnist(default_fashion_mnist_dir(), true);
  train.truncate(1024);
  FlatSgd opt(m->num_params(), 0.05, 0.9);  // trained a little, so that its answers mean something
  std::vector<uint32_t> idx(train.size());
  std::iota(idx.begin(), idx.end(), 0u);
  std::vector<float> img;
  std::vector<int64_t> lab;
  for (int s = 0; s < 24; ++s) {
    make_batch(train, idx.data() + s * 32, 32, img, lab);
    m->compute_gradient({img.data(), lab.data(), 32});
    opt.step(m->params(), m->grad());
  }
  OnnxExportInfo info;
  info.model_id = "fashion";
  info.version = 42;
  info.class_names = fashion_mnist_class_names();
  info.input_mean = kFashionMean;
  info.input_std = kFashionStd;
  write_file("cnn.onnx", export_onnx(*m, info));

  const OnnxModelInfo read = read_onnx_info("cnn.onnx");
  CHECK(read.spec.name == "cnn");
  CHECK(read.spec.channels == 1);
  CHECK(read.spec.height == 28);
  CHECK(read.spec.classes == 10);
  CHECK(read.model_id == "fashion");
  CHECK(read.version == 42);
  CHECK(read.class_names == fashion_mnist_class_names());
  CHECK(read.input_mean == Approx(kFashionMean));

  DnnClassifier dnn("cnn.onnx");
  auto test = load_fashion_mnist(default_fashion_mnist_dir(), false);
  std::vector<uint32_t> tidx(500);
  std::iota(tidx.begin(), tidx.end(), 0u);
  make_batch(test, tidx.data(), 500, img, lab);
  const auto [agree, diff] = compare(*m, dnn, img, 500);
  INFO("labels agree " << agree << ", max probability difference " << diff);
  CHECK(agree >= 0.998);
  CHECK(diff < 1e-4f);
  const Classification one = dnn.classify(img.data());
  std::vector<int64_t> torch_label(1);
  m->predict(img.data(), 1, torch_label.data());
  CHECK(one.label == torch_label[0]);
  CHECK((one.confidence > 0.0f && one.confidence <= 1.0f));
}

TEST_CASE("the MobileNet-style net exported to ONNX agrees with LibTorch in OpenCV DNN", "[onnx]") {
  for (const auto& size : {std::pair{32, 32}, std::pair{96, 96}}) {
    ModelSpec spec{"mobilenet", 3, size.first, size.second, 10};
    auto m = Model::create(spec, 5);
    write_file("mobilenet.onnx", export_onnx(*m, {}));
    DnnClassifier dnn("mobilenet.onnx");
    CHECK(dnn.spec().width == size.second);
    std::mt19937 rng(9);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> img(64 * sample_size(spec));
    for (float& v : img) v = g(rng);
    const auto [agree, diff] = compare(*m, dnn, img, 64);
    INFO(size.first << "x" << size.second << ": labels agree " << agree << ", max probability difference " << diff);
    CHECK(agree >= 0.98);
    CHECK(diff < 1e-4f);
  }
}

TEST_CASE("what cannot be exported is refused clearly", "[onnx][reject]") {
  auto crnn = Model::create({"crnn", 1, 28, 28, 4, 8}, 1);
  CHECK_THROWS_WITH(export_onnx(*crnn, {}), Catch::Contains("recurrent"));
  auto cnn = Model::create({}, 1);
  OnnxExportInfo info;
  info.class_names = {"a", "b"};
  CHECK_THROWS_WITH(export_onnx(*cnn, info), Catch::Contains("2 class names"));
  write_file("garbage.onnx", std::string(1000, '\x07'));
  CHECK_THROWS_AS(DnnClassifier("garbage.onnx"), std::runtime_error);
  CHECK_THROWS_AS(DnnClassifier("no-such-file.onnx"), std::runtime_error);
}
