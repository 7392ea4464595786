#include "scenes_command.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <filesystem>
#include <fmt/core.h>
#include <memory>
#include <opencv2/imgcodecs.hpp>

#include "command.h"
#include "image_folder.h"
#include "snapshot.h"

namespace swarmlens {

int run_scenes(const ScenesOptions& o) {
  o.check();
  std::error_code ec;
  std::filesystem::create_directories(o.output, ec);
  if (ec) throw std::runtime_error("cannot create " + o.output + ": " + ec.message());
  if (!o.sheet.empty()) check_writable(o.sheet, "the contact sheet");  // before minutes of work, not after
  const auto t0 = std::chrono::steady_clock::now();
  const std::string dir = o.data_dir.empty() ? default_fashion_mnist_dir() : o.data_dir;
  const Dataset train = load_fashion_mnist(dir, true), test = load_fashion_mnist(dir, false);
  const ScenesSummary s = write_scenes(train, test, o.output, o);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  fmt::print(stderr, "wrote {} images ({:.1f} MB of JPEG) of {} sites at {}x{} in {:.1f} s to {}\n", s.images,
             double(s.bytes) / 1e6, o.sites, o.width, o.height, seconds, o.output);
  if (!o.sheet.empty()) {
    if (!cv::imwrite(o.sheet, s.sheet)) throw std::runtime_error("cannot write " + o.sheet);
    fmt::print(stderr, "wrote {}: a row of {} scenes per site\n", o.sheet, kSheetColumns);
  }
  for (int site = 0; site < o.sites; ++site)
    fmt::print(stderr, "  {}/site-{}: {}\n", o.output, site, site_family(site));
  return 0;
}

void add_scenes_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<ScenesOptions>();
  auto* c = parent.add_subcommand(
      "scenes", "Write a colour, camera-like data set: Fashion-MNIST items coloured, scaled, rotated and composited onto "
                "a background family per site (wood, brick, foliage, tiles, sky, gravel, fabric), lit, with sensor noise "
                "and JPEG artefacts; one image folder per site (site-K/train, site-K/test)");
  c->add_option("-o,--output", o->output, "the folder to write")->required();
  c->add_option("--sites", o->sites, "sites (cameras), each with its own background family and look")
      ->check(CLI::Range(1, 64))->capture_default_str();
  c->add_option("--width", o->width, "image width in pixels")->check(CLI::Range(16, 1024))->capture_default_str();
  c->add_option("--height", o->height, "image height in pixels")->check(CLI::Range(16, 1024))->capture_default_str();
  c->add_option("--train-per-site", o->train_per_site, "images in each site's train split")->capture_default_str();
  c->add_option("--test-per-site", o->test_per_site, "images in each site's test split")->capture_default_str();
  c->add_option("--seed", o->seed, "seed for items, looks and placement (same seed, same files)")->capture_default_str();
  c->add_option("--sheet", o->sheet, "also write a contact sheet (PNG): a row of scenes per site");
  c->add_option("--data", o->data_dir, "Fashion-MNIST folder (default: $SWARMLENS_FASHION_MNIST or the Debian package's)");
  commands.add(c, [o] { return run_scenes(*o); });
}

}  // namespace swarmlens
