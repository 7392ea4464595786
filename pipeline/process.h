// Child processes for the demo: started in a process group of their own (a terminal's Ctrl-C goes to
// the demo, which stops them in order), bound to die with the demo (PR_SET_PDEATHSIG), stopped with a
// signal and a deadline, and always reaped.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace swarmlens {

class Process {
 public:
  // Starts argv[0] (looked up in PATH when it has no '/'); stdout and stderr go to log_path
  // (appended), or stay the demo's when log_path is empty. Throws std::runtime_error.
  Process(const std::vector<std::string>& argv, const std::string& log_path);
  ~Process();  // stops it (SIGTERM, then SIGKILL) if it still runs
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Sends `sig`, waits up to `grace`, then SIGKILL. Returns the exit status (128 + signal if killed).
  int stop(int sig, std::chrono::milliseconds grace);
  bool running();  // reaps it if it has exited
  int exit_status() const { return status_; }
  int pid() const { return pid_; }  // -1 once reaped
  const std::string& name() const { return name_; }

 private:
  int pid_ = -1;
  int status_ = -1;
  std::string name_;
};

// nats-server with JetStream on a free loopback port, its store in a fresh temporary folder (kept
// across stop()/start(), removed on destruction). For the demo, the benchmarks and the tests.
class LocalNatsServer {
 public:
  // log_path as Process's ("/dev/null" to discard). Throws std::runtime_error if it does not start.
  // extra_args go to nats-server after the defaults (e.g. --user/--pass, or -c with a config file).
  // jetstream = false: a server without it (a site's leaf node, which uses the hub's).
  explicit LocalNatsServer(std::string log_path, std::vector<std::string> extra_args = {}, bool jetstream = true);
  ~LocalNatsServer();
  LocalNatsServer(const LocalNatsServer&) = delete;
  LocalNatsServer& operator=(const LocalNatsServer&) = delete;

  void start();  // on the same port and store as before
  void stop();   // SIGTERM, reaped
  void kill();   // SIGKILL, reaped: a crash
  int port() const { return port_; }
  int pid() const { return process_ ? process_->pid() : -1; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }

 private:
  int port_;
  std::string store_, log_path_;
  std::vector<std::string> extra_args_;
  bool jetstream_ = true;
  std::unique_ptr<Process> process_;
};

// A cluster of nats-servers on loopback, each with JetStream and routes to all the others, so that
// streams can be replicated (replicas up to the cluster's size), each with its HTTP monitoring port
// and a port for leaf nodes (a site's server joins with leaf_remotes_config()). Logs to
// <log_prefix>-<i>.log, or nowhere when log_prefix is empty. Throws std::runtime_error if a server
// does not start.
class LocalNatsCluster {
 public:
  LocalNatsCluster(size_t servers, const std::string& log_prefix);
  ~LocalNatsCluster();
  size_t size() const { return servers_.size(); }
  LocalNatsServer& server(size_t i) { return *servers_.at(i); }
  std::vector<std::string> urls() const;  // client URLs, in server order
  int monitor_port(size_t i) const { return monitor_ports_.at(i); }
  // A config file (written once, removed with the cluster) for a leaf node of this cluster: pass it
  // with -c to a LocalNatsServer without JetStream.
  std::string leaf_remotes_config();

 private:
  std::string conf_dir_;
  std::vector<int> monitor_ports_, leaf_ports_;
  std::vector<std::unique_ptr<LocalNatsServer>> servers_;
};

// GET http://127.0.0.1:port/path: the body of the answer (for nats-server's monitoring JSON).
// Throws std::runtime_error.
std::string http_get_loopback(int port, const std::string& path);

// The directory of this executable, for finding its siblings (swarmlens-broker) in a build or install.
std::string self_dir();
// A program installed beside this one (self_dir()/name), or in the build tree (self_dir()/../folder/
// name); else `name`, looked up in PATH.
std::string find_sibling(const std::string& name, const std::string& build_folder);
// Replaces this process with the sibling program `name` (find_sibling), passing `args`; returns
// only if that fails (exit code 127, the reason on stderr).
int exec_sibling(const std::string& name, const std::string& build_folder, const std::vector<std::string>& args);
// A free TCP port on 127.0.0.1 (bound and released; the caller binds it right away).
int free_loopback_port();
// A TCP connection to 127.0.0.1:port (a socket, close-on-exec): its descriptor, or -1 when nothing
// accepts there.
int connect_loopback(int port);

// Waits until something accepts TCP connections on 127.0.0.1:port; false on timeout.
bool wait_for_port(int port, std::chrono::milliseconds timeout);

}  // namespace swarmlens
