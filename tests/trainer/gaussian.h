// Standard normal test vectors, seeded.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

inline std::vector<float> gaussian(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
