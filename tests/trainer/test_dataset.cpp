#include <catch2/catch.hpp>

#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <fstream>
#include <algorithm>
#include <set>

#include "dataset.h"
#include "motion.h"
#include "frame_window.h"
#include "snapshot.h"
#include "camera_model.h"
#include "framing.h"

using namespace swarmlens;

TEST_CASE("Fashion-MNIST loads from Debian's gzip IDX files", "[dataset]") {
  const auto test = load_fashion_mnist(default_fashion_mnist_dir(), false);
  CHECK(test.size() == 10000);
  CHECK(test.rows == 28);
  CHECK(test.cols == 28);
  CHECK(test.pixels.size() == 10000u * 28 * 28);
  std::vector<int> per_class(10, 0);
  for (auto l : test.labels) per_class.at(l)++;
  for (int c : per_class) CHECK(c == 1000);  // the test set is balanced
  CHECK(test.class_names.at(9) == "Ankle boot");
}

TEST_CASE("dataset_rejects_malformed_idx_files", "[dataset][reject]") {
  const std::string dir = "dataset_rejects_tmp";
  std::remove((dir + "-img").c_str());
  {
    std::ofstream f(dir + "-img", std::ios::binary);
    const unsigned char hdr[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3};  // cut short
    f.write(reinterpret_cast<const char*>(hdr), sizeof hdr);
  }
  {
    std::ofstream f(dir + "-lab", std::ios::binary);
    const unsigned char hdr[] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 2};
    f.write(reinterpret_cast<const char*>(hdr), sizeof hdr);
  }
  CHECK_THROWS_WITH(load_idx(dir + "-img", dir + "-lab"), Catch::Contains("does not match"));
  CHECK_THROWS_WITH(load_idx(dir + "-lab", dir + "-lab"), Catch::Contains("not an IDX3"));
  CHECK_THROWS_WITH(load_idx("/nonexistent/x", dir + "-lab"), Catch::Contains("cannot open"));
}

TEST_CASE("IID shards partition the data deterministically", "[dataset]") {
  auto a = shard_iid(1003, 4, 7), b = shard_iid(1003, 4, 7), c = shard_iid(1003, 4, 8);
  CHECK(a == b);
  CHECK(a != c);
  std::set<uint32_t> all;
  for (auto& s : a) {
    CHECK((s.size() == 250 || s.size() == 251));
    all.insert(s.begin(), s.end());
  }
  CHECK(all.size() == 1003);
}

TEST_CASE("Dirichlet shards partition the data and skew with small alpha", "[dataset]") {
  std::vector<uint8_t> labels(10000);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = uint8_t(i % 10);
  // Concentration: for each class, the largest share of it held by one node, averaged over classes
  // (0.25 for an even split over 4 nodes, 1.0 when every class sits on a single node).
  auto skew = [&](double alpha) {
    auto shards = shard_dirichlet(labels, 10, 4, alpha, 3);
    std::set<uint32_t> all;
    size_t total = 0;
    std::vector<std::vector<int>> cnt(shards.size(), std::vector<int>(10, 0));
    for (size_t n = 0; n < shards.size(); ++n) {
      all.insert(shards[n].begin(), shards[n].end());
      total += shards[n].size();
      for (auto i : shards[n]) cnt[n][labels[i]]++;
    }
    CHECK(all.size() == labels.size());
    CHECK(total == labels.size());
    double concentration = 0;
    for (int c = 0; c < 10; ++c) {
      int best = 0;
      for (auto& node : cnt) best = std::max(best, node[c]);
      concentration += best / 1000.0 / 10.0;
    }
    return concentration;
  };
  CHECK(skew(0.1) > skew(100.0) + 0.2);
  CHECK(shard_dirichlet(labels, 10, 4, 0.5, 1) == shard_dirichlet(labels, 10, 4, 0.5, 1));
}

TEST_CASE("snapshot round trip and snapshot_rejects_corruption", "[snapshot][reject]") {
  Snapshot s{"cnn", 0xabcdef, 17, {1.0f, -2.5f, 3.25f}};
  save_snapshot("snap_test.swm", s);
  auto l = load_snapshot("snap_test.swm");
  CHECK(l.model == "cnn");
  CHECK(l.layout_hash == 0xabcdef);
  CHECK(l.version == 17);
  CHECK(l.params == s.params);
  {
    std::fstream f("snap_test.swm", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(30);
    f.put('\x7f');
  }
  CHECK_THROWS_WITH(load_snapshot("snap_test.swm"), Catch::Contains("checksum"));
  CHECK_THROWS_WITH(load_snapshot("no_such_snapshot.swm"), Catch::Contains("cannot open"));
}

TEST_CASE("a snapshot describes its model; a format-1 snapshot is still read, undescribed", "[snapshot]") {
  Snapshot s{"mobilenet", 0x1234, 3, {0.5f, 1.5f}, {{7, 9}}};
  s.description = describe_model(ModelSpec{"mobilenet", 3, 96, 64, 3}, {"cat", "dog", "bird"});
  const auto bytes = encode_snapshot(s);
  const Snapshot d = decode_snapshot(bytes.data(), bytes.size(), "test");
  CHECK(d.description == s.description);
  CHECK(d.applied == s.applied);
  CHECK(describe(d.model, d.description) == "mobilenet 3x96x64, 3 classes (cat, dog, bird)");
  const ModelSpec spec = described_spec(d);
  CHECK((spec.name == "mobilenet" && spec.channels == 3 && spec.height == 96 && spec.width == 64 && spec.classes == 3));
  CHECK(model_mismatch(d, 0x1234, "whatever").empty());
  CHECK(model_mismatch(d, 0x99, describe("cnn", describe_model(ModelSpec{}))) ==
        "the model served is mobilenet 3x96x64, 3 classes (cat, dog, bird); this side runs cnn 1x28x28, 10 classes");
  // Class names that do not match the count are refused both ways.
  Snapshot bad = s;
  bad.description.class_names.pop_back();
  CHECK_THROWS(encode_snapshot(bad));
  auto tampered = bytes;
  tampered[tampered.size() - 30] ^= 1;  // inside the names, then the CRC no longer matches
  CHECK_THROWS_WITH(decode_snapshot(tampered.data(), tampered.size(), "t"), Catch::Contains("checksum"));
  // Format 1 (as written before descriptions): the same body without the description, version byte 1.
  std::vector<uint8_t> v1 = {'S', 'W', 'L', 'M', 1, 3, 'c', 'n', 'n'};
  const auto put = [&](uint64_t v, int n) { for (int i = 0; i < n; ++i) v1.push_back(uint8_t(v >> (8 * i))); };
  put(0x42, 8);
  put(5, 8);
  put(1, 8);
  const float one = 1.0f;
  const auto* f = reinterpret_cast<const uint8_t*>(&one);
  v1.insert(v1.end(), f, f + 4);
  put(0, 4);
  put(crc32_of(v1.data(), v1.size()), 4);
  const Snapshot old = decode_snapshot(v1.data(), v1.size(), "v1");
  CHECK((old.model == "cnn" && old.version == 5 && old.params.size() == 1 && !old.description.described()));
  CHECK_THROWS_WITH(described_spec(old), Catch::Contains("does not describe"));
}

TEST_CASE("class names come from a file, one per line", "[dataset]") {
  std::ofstream("names_test.txt") << "  cat\n\ndog \n";
  CHECK(read_class_names("names_test.txt") == std::vector<std::string>{"cat", "dog"});
  std::ofstream("names_twice.txt") << "cat\ncat\n";
  CHECK_THROWS_WITH(read_class_names("names_twice.txt"), Catch::Contains("named twice"));
  CHECK_THROWS_WITH(read_class_names("no_such_names.txt"), Catch::Contains("cannot read"));
}

TEST_CASE("moving Fashion-MNIST: deterministic clips whose item moves speed pixels a frame", "[dataset][motion]") {
  auto d = load_fashion_mnist(default_fashion_mnist_dir(), false);
  d.truncate(64);
  const MotionConfig mc;
  std::set<int> directions;
  for (uint64_t i = 0; i < 64; ++i) {
    const MotionClip a = motion_clip(uint32_t(i), 5, i, mc), b = motion_clip(uint32_t(i), 5, i, mc);
    CHECK((a.direction == b.direction && a.x0 == b.x0 && a.y0 == b.y0 && a.speed == b.speed));
    CHECK((a.speed >= 1 && a.speed <= 3));
    directions.insert(int(a.direction));
  }
  CHECK(directions.size() == 4);
  // Frame t+1 is frame t shifted by speed pixels in the clip's direction (away from the edges).
  for (int dir = 0; dir < 4; ++dir) {
    MotionClip c{7, Direction(dir), 4, 3, 2};
    std::vector<uint8_t> f0(28 * 28), f1(28 * 28);
    render_motion_frame(d, c, 0, mc, f0.data());
    render_motion_frame(d, c, 1, mc, f1.data());
    const int dx[] = {-2, 2, 0, 0}, dy[] = {0, 0, -2, 2};
    size_t lit = 0;
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        const uint8_t v = f0[size_t(y) * 28 + size_t(x)];
        lit += v > 0;
        const int y1 = y + dy[dir], x1 = x + dx[dir];
        if (y1 >= 0 && y1 < 28 && x1 >= 0 && x1 < 28) CHECK(f1[size_t(y1) * 28 + size_t(x1)] == v);
      }
    CHECK(lit > 20);  // the item is there
    CHECK(motion_direction(c, 1, mc) == Direction(dir));
  }
  // It bounces off the edges: right from x = 13 at 2 px a frame (x in [0, 14]) it turns at frame 2
  // (x 13, 13, 11, ...), runs back to the left edge and turns again at frame 9 (x 1, 1, 3).
  const MotionClip b{3, Direction::right, 13, 0, 2};
  CHECK(motion_direction(b, 1, mc) == Direction::right);
  CHECK(motion_direction(b, 2, mc) == Direction::left);
  CHECK(motion_direction(b, 8, mc) == Direction::left);
  CHECK(motion_direction(b, 9, mc) == Direction::right);
  std::vector<float> img;
  std::vector<int64_t> lab;
  std::vector<uint32_t> items = {0, 1, 2};
  make_motion_batch(d, items.data(), 3, 4, 9, 0, mc, img, lab);
  CHECK(img.size() == 3u * 4 * 28 * 28);
  CHECK(lab.size() == 3u);
  CHECK(motion_class_names().size() == 4u);
  std::vector<uint8_t> canvas(28 * 28);
  CHECK_THROWS_AS(render_motion_frame(d, MotionClip{1000}, 0, mc, canvas.data()), std::out_of_range);  // no such item
}

TEST_CASE("a frame window holds the last N frames, oldest first, and forgets them on clear", "[dataset][window]") {
  FrameWindow w(2, 3);
  const float f[][2] = {{1, 1}, {2, 2}, {3, 3}, {4, 4}};
  CHECK_FALSE(w.push(f[0]));
  CHECK_FALSE(w.push(f[1]));
  CHECK(w.push(f[2]));
  CHECK(w.sample() == std::vector<float>{1, 1, 2, 2, 3, 3});
  CHECK(w.push(f[3]));
  CHECK(w.sample() == std::vector<float>{2, 2, 3, 3, 4, 4});
  CHECK(w.pushed() == 4u);
  w.clear();
  CHECK_FALSE(w.full());
  CHECK_FALSE(w.push(f[0]));
}
