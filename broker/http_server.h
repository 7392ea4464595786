// The operator's HTTP endpoint: a small server (CivetWeb, Debian's libcivetweb) that serves
// Prometheus' /metrics, the live dashboard page and its server-sent events. Plain C++, no
// GStreamer, no LibTorch: the broker daemon and `swarmlens camera` both use it.
//
// What a client can make it hold is bounded: requests are GET only, the event streams open at once
// are at most `max_streams` (more are answered 503 and counted), and each stream sends one event a
// period, built by the owner's callback (no queue grows behind a slow reader: a write that blocks
// holds only that stream's thread).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

struct mg_context;
struct mg_connection;

namespace swarmlens {

// "HOST:PORT" (HOST an IPv4 address or "localhost"; PORT 1..65535). Throws std::invalid_argument
// naming the option for anything else: a bad --metrics-listen is an error at start.
struct ListenAddress {
  std::string host;
  int port = 0;
  static ListenAddress parse(const std::string& text, const std::string& option);
  std::string str() const { return host + ":" + std::to_string(port); }
  bool loopback() const { return host == "127.0.0.1" || host == "localhost"; }
};

// The reason `text` is not a listen address ("" when it is): for command-line validators.
std::string listen_address_error(const std::string& text, const std::string& option);

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  static constexpr int kDefaultMaxStreams = 8;
  using Handler = std::function<HttpResponse(const std::string& path)>;
  // One event's data (a line of JSON); `cursor` is the stream's own, 0 on its first event, for the
  // source to send only what is new to that client.
  using EventSource = std::function<std::string(uint64_t& cursor)>;

  // Listens at once; throws std::runtime_error when it cannot (port taken, address not local).
  HttpServer(const ListenAddress& at, int max_streams = kDefaultMaxStreams);
  ~HttpServer();  // ends the event streams, then stops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // GET on `path` exactly, or below it when it ends in '/'. Add every route before serving traffic
  // (routes are not locked).
  void route(const std::string& path, Handler h);
  // GET on `path`: text/event-stream, one event from `source` every `period`, until the client
  // goes or the server stops.
  void events(const std::string& path, EventSource source, std::chrono::milliseconds period);

  int port() const { return port_; }
  std::string url() const;
  uint64_t streams_refused() const { return streams_refused_.load(); }
  uint64_t requests() const { return requests_.load(); }

 private:
  struct Route {
    Handler handler;
    EventSource events;
    std::chrono::milliseconds period{0};
    bool prefix = false;
  };
  static int dispatch(mg_connection* c, void* self);
  int serve(mg_connection* c);
  int stream(mg_connection* c, const Route& r);

  ListenAddress at_;
  const int max_streams_;
  int port_ = 0;
  std::map<std::string, Route> routes_;
  std::mutex lock_;
  std::condition_variable wake_;
  bool stopping_ = false;
  int streams_ = 0;
  std::atomic<uint64_t> streams_refused_{0}, requests_{0};
  mg_context* ctx_ = nullptr;  // last: started when the rest exists
};

}  // namespace swarmlens
