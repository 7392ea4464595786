// Tests: a fresh folder under /tmp, removed with everything in it when the test is done.
#pragma once

#include <catch2/catch.hpp>
#include <stdlib.h>

#include <filesystem>
#include <string>

namespace swarmlens::testing {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/swarmlens-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path;
};

}  // namespace swarmlens::testing
