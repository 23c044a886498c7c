// HostPort: the one parser of "host:port" listen and peer addresses ([nats] bind_address,
// [prometheus] bind, -cluster-addr, the name:port of dns:// peers).
//
// The syntax is Go's net.SplitHostPort, which Marmot v0.8 used: the host may be empty (all
// interfaces), an IPv6 host goes in brackets ("[::1]:4222"), and the port is 0..65535 in decimal
// or -1 (nats-server's "pick a random free port"). Rejected: no colon, an unbracketed host with a
// colon ("::1:4222"), white space or '/' in the host (a URL such as "nats://h:4222"), and an
// empty, signed, non-decimal or out-of-range port. Names are not resolved.
//
// Thread safety: no shared state.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace marmot {

struct HostPort {
  std::string host;  // brackets removed ("::1"); empty: all interfaces
  int port = 0;      // 0..65535, or -1 for a random port
};

// Parses `address`; on failure the message quotes it and says what is wrong (callers add the
// config key or flag with WithContext).
Result<HostPort> ParseHostPort(std::string_view address);

// The inverse: "host:port", with brackets around a host that contains ':' (IPv6).
std::string JoinHostPort(const std::string& host, int port);

// True for hosts only this machine reaches: "localhost", 127.0.0.0/8, "::1". An empty host (every
// interface) is not.
bool IsLoopbackHost(const std::string& host);

// This machine's host name (gethostname), empty when it cannot be read.
std::string LocalHostName();

}  // namespace marmot
