#include "browser.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "process.h"

namespace swarmlens {

namespace fs = std::filesystem;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string quoted(const std::string& s) {  // for /bin/sh
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs chromium headless on `url` with `extra` flags in a fresh profile; stdout and stderr into
// files of the returned folder (removed by the caller). The exit status in *status.
std::string run_chromium(const std::string& url, const std::vector<std::string>& extra, const BrowserOptions& o,
                         int* status, std::string* error) {
  const std::string exe = find_chromium();
  if (exe.empty()) {
    *error = "no chromium in PATH (apt-get install chromium)";
    return "";
  }
  std::string dir = (fs::temp_directory_path() / "swarmlens-browser-XXXXXX").string();
  if (!mkdtemp(dir.data())) {
    *error = "cannot create a browser profile folder";
    return "";
  }
  std::vector<std::string> argv{exe, "--headless=new", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
                                "--user-data-dir=" + dir + "/profile", "--enable-logging=stderr", "--v=0",
                                "--window-size=" + std::to_string(o.width) + "," + std::to_string(o.height),
                                "--timeout=" + std::to_string(o.settle_ms)};
  if (geteuid() == 0) argv.push_back("--no-sandbox");  // chromium refuses root with its sandbox
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(url);
  // stdout (the DOM) and stderr (the console) apart: the child writes through a shell redirect.
  std::string cmd;
  for (const auto& a : argv) cmd += quoted(a) + " ";
  Process p({"/bin/sh", "-c", "exec " + cmd + ">" + quoted(dir + "/out") + " 2>" + quoted(dir + "/err")}, "/dev/null");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(o.settle_ms + 60000);
  while (p.running() && std::chrono::steady_clock::now() < deadline) usleep(50000);
  *status = p.running() ? p.stop(SIGKILL, std::chrono::milliseconds(1000)) : p.exit_status();
  return dir;
}

// The console lines of chromium's log: "...:INFO:CONSOLE(12)] "message", source: URL (12)".
std::string console_lines(const std::string& log) {
  std::istringstream in(log);
  std::string out;
  for (std::string line; std::getline(in, line);)
    if (line.find(":CONSOLE") != std::string::npos) out += line + "\n";
  return out;
}

}  // namespace

std::string find_chromium() {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  for (std::string d; std::getline(dirs, d, ':');)
    for (const char* name : {"chromium", "chromium-browser"})
      if (!d.empty() && access((d + "/" + name).c_str(), X_OK) == 0) return d + "/" + name;
  return "";
}

PageCapture dump_dom(const std::string& url, const BrowserOptions& o) {
  PageCapture c;
  int status = -1;
  const std::string dir = run_chromium(url, {"--dump-dom"}, o, &status, &c.error);
  if (dir.empty()) return c;
  c.dom = read_all(dir + "/out");
  const std::string log = read_all(dir + "/err");
  c.console = console_lines(log);
  c.ok = status == 0 && !c.dom.empty();
  if (!c.ok) c.error = "chromium exited with status " + std::to_string(status) + ":\n" + log.substr(0, 2000);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return c;
}

bool screenshot(const std::string& url, const std::string& png, std::string* error, const BrowserOptions& o) {
  int status = -1;
  std::error_code ec;
  fs::remove(png, ec);
  const std::string dir = run_chromium(url, {"--screenshot=" + fs::absolute(png).string()}, o, &status, error);
  if (dir.empty()) return false;
  const bool ok = status == 0 && fs::exists(png) && fs::file_size(png) > 0;
  if (!ok) *error = "chromium exited with status " + std::to_string(status) + ":\n" + read_all(dir + "/err").substr(0, 2000);
  fs::remove_all(dir, ec);
  return ok;
}

}  // namespace swarmlens
