#include "http_server.h"

#include <arpa/inet.h>
#include <civetweb.h>

#include <cstring>
#include <stdexcept>
#include <vector>

namespace swarmlens {

ListenAddress ListenAddress::parse(const std::string& text, const std::string& option) {
  const auto bad = [&](const std::string& why) {
    return std::invalid_argument(option + " " + text + ": " + why + " (want HOST:PORT, e.g. 127.0.0.1:9464)");
  };
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) throw bad("no host");
  ListenAddress a;
  a.host = text.substr(0, colon);
  const std::string port = text.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) throw bad("bad port");
  a.port = std::stoi(port);
  if (a.port < 1 || a.port > 65535) throw bad("port out of 1..65535");
  in_addr ip{};
  if (a.host != "localhost" && inet_pton(AF_INET, a.host.c_str(), &ip) != 1) throw bad("host is not an IPv4 address");
  return a;
}

std::string listen_address_error(const std::string& text, const std::string& option) {
  try {
    ListenAddress::parse(text, option);
    return "";
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
}

HttpServer::HttpServer(const ListenAddress& at, int max_streams) : at_(at), max_streams_(max_streams) {
  mg_init_library(0);
  const std::string ports = (at.host == "localhost" ? std::string("127.0.0.1") : at.host) + ":" + std::to_string(at.port);
  // Threads: every open event stream holds one; a few more answer the rest (scrapes, the page).
  const std::string threads = std::to_string(max_streams + 4);
  const char* options[] = {"listening_ports", ports.c_str(), "num_threads", threads.c_str(), "request_timeout_ms", "10000",
                           "enable_keep_alive", "no", nullptr};
  mg_callbacks callbacks{};
  callbacks.begin_request = [](mg_connection* c) {
    return static_cast<HttpServer*>(mg_get_user_data(mg_get_context(c)))->serve(c);
  };
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };  // ours say it better
  ctx_ = mg_start(&callbacks, this, options);
  if (!ctx_) throw std::runtime_error("cannot listen on " + at.str() + " (in use, or not an address of this machine)");
  mg_server_port p[4];
  const int n = mg_get_server_ports(ctx_, 4, p);
  port_ = n > 0 ? p[0].port : at.port;
}

HttpServer::~HttpServer() {
  {
    std::lock_guard<std::mutex> g(lock_);
    stopping_ = true;
  }
  wake_.notify_all();
  mg_stop(ctx_);  // waits for its threads: the streams see stopping_ and end
}

std::string HttpServer::url() const { return "http://" + at_.host + ":" + std::to_string(port_) + "/"; }

void HttpServer::route(const std::string& path, Handler h) {
  std::lock_guard<std::mutex> g(lock_);
  Route r;
  r.handler = std::move(h);
  r.prefix = !path.empty() && path.back() == '/' && path != "/";
  routes_[path] = std::move(r);
}

void HttpServer::events(const std::string& path, EventSource source, std::chrono::milliseconds period) {
  std::lock_guard<std::mutex> g(lock_);
  Route r;
  r.events = std::move(source);
  r.period = period;
  routes_[path] = std::move(r);
}

int HttpServer::serve(mg_connection* c) {
  ++requests_;
  const mg_request_info* ri = mg_get_request_info(c);
  const std::string path = ri->local_uri ? ri->local_uri : "/";
  if (std::strcmp(ri->request_method, "GET") != 0 && std::strcmp(ri->request_method, "HEAD") != 0) {
    mg_send_http_error(c, 405, "GET only\n");
    return 405;
  }
  Route r;
  bool found = false;
  {
    std::lock_guard<std::mutex> g(lock_);
    auto it = routes_.find(path);
    if (it == routes_.end()) {  // the longest prefix route that holds it
      size_t best = 0;
      for (auto& [p, route] : routes_)
        if (route.prefix && p.size() > best && path.compare(0, p.size(), p) == 0) {
          r = route;
          best = p.size();
          found = true;
        }
    } else {
      r = it->second;
      found = true;
    }
  }
  if (!found) {
    mg_send_http_error(c, 404, "not found: %s\n", path.c_str());
    return 404;
  }
  if (r.events) return stream(c, r);
  HttpResponse res;
  try {
    res = r.handler(path);
  } catch (const std::exception& e) {
    res = {500, "text/plain; charset=utf-8", std::string(e.what()) + "\n"};
  }
  mg_printf(c, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
               "Connection: close\r\n\r\n", res.status, mg_get_response_code_text(c, res.status), res.content_type.c_str(),
            res.body.size());
  if (std::strcmp(ri->request_method, "GET") == 0) mg_write(c, res.body.data(), res.body.size());
  return res.status;
}

int HttpServer::stream(mg_connection* c, const Route& r) {
  {
    std::lock_guard<std::mutex> g(lock_);
    if (streams_ >= max_streams_ || stopping_) {
      ++streams_refused_;
      mg_send_http_error(c, 503, "too many live views open (at most %d)\n", max_streams_);
      return 503;
    }
    ++streams_;
  }
  mg_printf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n");
  uint64_t cursor = 0;
  for (;;) {
    std::string data;
    try {
      data = r.events(cursor);
    } catch (const std::exception&) {
      data = "{\"error\":\"the state could not be read\"}";
    }
    const std::string event = "data: " + data + "\n\n";
    if (mg_write(c, event.data(), event.size()) <= 0) break;  // the client went
    std::unique_lock<std::mutex> g(lock_);
    if (wake_.wait_for(g, r.period, [this] { return stopping_; })) break;
  }
  std::lock_guard<std::mutex> g(lock_);
  --streams_;
  return 200;
}

}  // namespace swarmlens
