#include "telemetry/http_listener.h"

#include <httplib.h>

#include <cerrno>
#include <cstring>

#include "util/host_port.h"

namespace marmot {

struct HttpListener::Server {
  httplib::Server http;
};

HttpListener::HttpListener() : server_(std::make_unique<Server>()) {}

HttpListener::~HttpListener() {
  server_->http.stop();
  if (thread_.joinable()) thread_.join();
}

Result<std::unique_ptr<HttpListener>> HttpListener::Start(const std::string& bind,
                                                          const std::map<std::string, HttpRoute>& routes) {
  Result<HostPort> address = ParseHostPort(bind);
  if (!address.ok()) return address.status().WithContext("[prometheus] bind");
  if (address->port < 0) address->port = 0;
  std::string host = address->host.empty() ? "0.0.0.0" : address->host;

  std::unique_ptr<HttpListener> listener(new HttpListener());
  httplib::Server& http = listener->server_->http;
  for (const auto& [path, route] : routes) {
    http.Get(path, [route = route](const httplib::Request&, httplib::Response& res) {
      HttpResponse r = route();
      res.status = r.status;
      res.set_content(r.body, r.content_type.c_str());
    });
  }
  http.set_keep_alive_max_count(100);
  http.set_read_timeout(std::chrono::seconds(5));

  int port = address->port;
  bool bound = true;
  if (port == 0) {
    port = http.bind_to_any_port(host);
    bound = port > 0;
  } else {
    bound = http.bind_to_port(host, port);
  }
  if (!bound) {
    return Status::IoError(
        "cannot listen for HTTP on " + JoinHostPort(host, address->port) + " ([prometheus] bind " + bind +
        "): " + std::strerror(errno) +
        "; choose a free port or an address of this machine, or set [prometheus] enable = false");
  }
  listener->address_ = JoinHostPort(host, port);
  listener->thread_ = std::thread([&http] { http.listen_after_bind(); });
  return listener;
}

}  // namespace marmot
