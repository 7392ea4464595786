#include "process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace swarmlens {

Process::Process(const std::vector<std::string>& argv, const std::string& log_path) {
  if (argv.empty()) throw std::runtime_error("no program to start");
  name_ = argv[0].substr(argv[0].rfind('/') + 1);
  int log = -1;
  if (!log_path.empty()) {
    log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) throw std::runtime_error(log_path + ": " + std::strerror(errno));
  }
  // Everything exec needs is prepared before fork: the child only calls async-signal-safe functions.
  std::vector<std::string> args = argv;
  std::vector<char*> c_args;
  for (auto& a : args) c_args.push_back(a.data());
  c_args.push_back(nullptr);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) {
    if (log >= 0) close(log);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid_ == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);  // the demo died before the line above
    if (log >= 0) {
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
    }
    execvp(c_args[0], c_args.data());
    const char msg[] = "cannot start program\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    _exit(127);
  }
  setpgid(pid_, pid_);  // also here, so no signal to the group races the child's own call
  if (log >= 0) close(log);
}

Process::~Process() {
  if (pid_ > 0) stop(SIGTERM, std::chrono::seconds(5));
}

bool Process::running() {
  if (pid_ <= 0) return false;
  int st = 0;
  const pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == 0) return true;
  status_ = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
  pid_ = -1;
  return false;
}

int Process::stop(int sig, std::chrono::milliseconds grace) {
  if (!running()) return status_;
  kill(pid_, sig);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid_, SIGKILL);
      int st = 0;
      waitpid(pid_, &st, 0);
      status_ = 128 + SIGKILL;
      pid_ = -1;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

LocalNatsServer::LocalNatsServer(std::string log_path, std::vector<std::string> extra_args, bool jetstream)
    : port_(free_loopback_port()), log_path_(std::move(log_path)), extra_args_(std::move(extra_args)), jetstream_(jetstream) {
  std::string dir = (std::filesystem::temp_directory_path() / "swarmlens-nats-XXXXXX").string();
  if (!mkdtemp(dir.data())) throw std::runtime_error("cannot create a JetStream store folder: " + std::string(std::strerror(errno)));
  store_ = dir;
  try {
    start();
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(store_, ec);
    throw;
  }
}

LocalNatsServer::~LocalNatsServer() {
  stop();
  std::error_code ec;
  std::filesystem::remove_all(store_, ec);
}

void LocalNatsServer::start() {
  std::vector<std::string> argv{"nats-server", "-a", "127.0.0.1", "-p", std::to_string(port_)};
  if (jetstream_) argv.insert(argv.end(), {"-js", "-sd", store_});
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
  process_ = std::make_unique<Process>(argv, log_path_);
  if (!wait_for_port(port_, std::chrono::seconds(10))) {
    process_.reset();
    throw std::runtime_error("nats-server did not start on port " + std::to_string(port_) +
                             " (is it installed? scripts/setup-deps)");
  }
}

void LocalNatsServer::stop() {
  if (process_) process_->stop(SIGTERM, std::chrono::seconds(5));
  process_.reset();
}

void LocalNatsServer::kill() {
  if (process_) process_->stop(SIGKILL, std::chrono::seconds(5));
  process_.reset();
}

LocalNatsCluster::LocalNatsCluster(size_t servers, const std::string& log_prefix) {
  if (servers == 0) throw std::invalid_argument("a NATS cluster of no servers");
  std::string dir = (std::filesystem::temp_directory_path() / "swarmlens-cluster-XXXXXX").string();
  if (!mkdtemp(dir.data())) throw std::runtime_error("cannot create a folder for cluster configs: " + std::string(std::strerror(errno)));
  conf_dir_ = dir;
  std::vector<int> route_ports;
  for (size_t i = 0; i < servers; ++i) {
    route_ports.push_back(free_loopback_port());
    monitor_ports_.push_back(free_loopback_port());
    leaf_ports_.push_back(free_loopback_port());
  }
  try {
    for (size_t i = 0; i < servers; ++i) {
      std::string routes;
      for (size_t j = 0; j < servers; ++j)
        if (j != i) routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") + std::to_string(route_ports[j]);
      const std::string conf = conf_dir_ + "/hub-" + std::to_string(i) + ".conf";
      std::ofstream(conf) << "leafnodes { listen: \"127.0.0.1:" << leaf_ports_[i] << "\" }\n";
      std::vector<std::string> args{"-c", conf, "-m", std::to_string(monitor_ports_[i]), "--server_name",
                                    "swarmlens-" + std::to_string(i), "--cluster_name", "swarmlens", "--cluster",
                                    "nats://127.0.0.1:" + std::to_string(route_ports[i])};
      if (!routes.empty()) args.insert(args.end(), {"--routes", routes});
      servers_.push_back(std::make_unique<LocalNatsServer>(
          log_prefix.empty() ? "/dev/null" : log_prefix + "-" + std::to_string(i) + ".log", args));
    }
  } catch (...) {
    servers_.clear();
    std::error_code ec;
    std::filesystem::remove_all(conf_dir_, ec);
    throw;
  }
}

LocalNatsCluster::~LocalNatsCluster() {
  servers_.clear();
  std::error_code ec;
  std::filesystem::remove_all(conf_dir_, ec);
}

std::string LocalNatsCluster::leaf_remotes_config() {
  const std::string conf = conf_dir_ + "/leaf.conf";
  std::ofstream f(conf);
  f << "leafnodes { remotes = [ { urls: [";
  for (size_t i = 0; i < leaf_ports_.size(); ++i) f << (i ? ", " : "") << "\"nats-leaf://127.0.0.1:" << leaf_ports_[i] << "\"";
  f << "] } ] }\n";
  return conf;
}

std::string http_get_loopback(int port, const std::string& path) {
  const int fd = connect_loopback(port);
  if (fd < 0) throw std::runtime_error("cannot connect to 127.0.0.1:" + std::to_string(port));
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, req.data(), req.size()) != ssize_t(req.size())) {
    close(fd);
    throw std::runtime_error("cannot send to 127.0.0.1:" + std::to_string(port));
  }
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  close(fd);
  const size_t body = out.find("\r\n\r\n");
  if (body == std::string::npos) throw std::runtime_error("no HTTP answer from 127.0.0.1:" + std::to_string(port) + path);
  return out.substr(body + 4);
}

std::vector<std::string> LocalNatsCluster::urls() const {
  std::vector<std::string> out;
  for (const auto& s : servers_) out.push_back(s->url());
  return out;
}

std::string self_dir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string path(buf, size_t(n));
  return path.substr(0, path.rfind('/'));
}

std::string find_sibling(const std::string& name, const std::string& build_folder) {
  for (const std::string& p : {self_dir() + "/" + name, self_dir() + "/../" + build_folder + "/" + name})
    if (access(p.c_str(), X_OK) == 0) return p;
  return name;
}

int exec_sibling(const std::string& name, const std::string& build_folder, const std::vector<std::string>& args) {
  const std::string path = find_sibling(name, build_folder);
  std::vector<char*> argv{const_cast<char*>(path.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execvp(path.c_str(), argv.data());
  std::fprintf(stderr, "cannot run %s: %s\n", path.c_str(), std::strerror(errno));
  return 127;
}

int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

int connect_loopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool wait_for_port(int port, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const int fd = connect_loopback(port);
    if (fd >= 0) {
      close(fd);
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  return false;
}

}  // namespace swarmlens
