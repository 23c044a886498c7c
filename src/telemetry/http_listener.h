// HttpListener: the node's one HTTP endpoint ([prometheus] bind), serving a fixed set of GET
// routes (/metrics, /health, the status page) from a small thread pool of cpp-httplib.
//
// Each route is a function that builds the whole response; it runs on a listener thread, so it
// must be thread-safe. Anything but GET on a known path is 404/405.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "util/status.h"

namespace marmot {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using HttpRoute = std::function<HttpResponse()>;

class HttpListener {
 public:
  // Listens on `bind` ("host:port"; an empty host means every interface, port 0 a free one) and
  // serves `routes` (path -> handler). Fails with the address and the reason when it cannot bind.
  static Result<std::unique_ptr<HttpListener>> Start(const std::string& bind,
                                                     const std::map<std::string, HttpRoute>& routes);
  ~HttpListener();  // stops listening and waits for requests in progress
  HttpListener(const HttpListener&) = delete;
  HttpListener& operator=(const HttpListener&) = delete;

  // The address it listens on, with the port it got.
  const std::string& address() const { return address_; }

 private:
  struct Server;
  HttpListener();
  std::unique_ptr<Server> server_;
  std::thread thread_;
  std::string address_;
};

}  // namespace marmot
