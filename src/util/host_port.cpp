#include "util/host_port.h"

#include <unistd.h>

#include <cctype>
#include <charconv>

namespace marmot {

Result<HostPort> ParseHostPort(std::string_view address) {
  auto fail = [&](const char* why) {
    return Status::InvalidArgument("'" + std::string(address) + "' is not host:port: " + why);
  };
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return fail("no ':' before the port");
  std::string_view host = address.substr(0, colon);
  const std::string_view port = address.substr(colon + 1);

  if (!host.empty() && host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return fail("an IPv6 host needs both brackets ([::1]:4222)");
    host = host.substr(1, host.size() - 2);
    if (host.find_first_of("[]") != std::string_view::npos) return fail("stray bracket in the host");
  } else if (host.find_first_of(":[]") != std::string_view::npos) {
    return fail("an IPv6 host goes in brackets ([::1]:4222)");
  }
  for (unsigned char c : host) {
    if (std::isspace(c) || c == '/') return fail("the host contains white space or '/' (a URL?)");
  }

  HostPort out;
  out.host = std::string(host);
  if (port == "-1") {
    out.port = -1;
    return out;
  }
  // Digits only (from_chars would take a '-'); at most 5 of them, so the value fits an int.
  bool digits = !port.empty() && port.size() <= 5;
  for (unsigned char c : port) digits = digits && std::isdigit(c);
  if (!digits) return fail("the port must be 0..65535, or -1 for a random one");
  std::from_chars(port.data(), port.data() + port.size(), out.port);
  if (out.port > 65535) return fail("the port must be 0..65535, or -1 for a random one");
  return out;
}

std::string JoinHostPort(const std::string& host, int port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

bool IsLoopbackHost(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string LocalHostName() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) return "";
  return host;
}

}  // namespace marmot
