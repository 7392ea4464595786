// A web page through headless Chromium (Debian's chromium): the demo's screenshot of the dashboard,
// and the tests that load it in a real browser. Chromium runs as its own process with a fresh
// profile folder; a page with a live event stream never goes idle, so each call ends on a timer.
#pragma once

#include <string>

namespace swarmlens {

struct BrowserOptions {
  int width = 1280, height = 1000;  // the window, in CSS pixels
  int settle_ms = 4000;             // how long the page runs before it is captured
};

// The chromium executable, or "" when none is installed (chromium, then chromium-browser, in PATH).
std::string find_chromium();

struct PageCapture {
  bool ok = false;
  std::string dom;      // the rendered document (dump_dom)
  std::string console;  // the page's console messages and uncaught errors, one per line
  std::string error;    // why not ok
};

// The page's DOM after settle_ms, and what it wrote to its console.
PageCapture dump_dom(const std::string& url, const BrowserOptions& o = {});
// A PNG of the page after settle_ms at `png`; false with `error` set when it could not be taken.
bool screenshot(const std::string& url, const std::string& png, std::string* error, const BrowserOptions& o = {});

}  // namespace swarmlens
