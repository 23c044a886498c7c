// ParseHostPort: the one "host:port" syntax of listen and peer addresses (Go's SplitHostPort).
#include "util/host_port.h"

#include <gtest/gtest.h>

namespace marmot {
namespace {

TEST(HostPortTest, AcceptedForms) {
  struct Case {
    const char* address;
    const char* host;
    int port;
  };
  for (const Case& c : std::vector<Case>{
           {"127.0.0.1:4222", "127.0.0.1", 4222},
           {"my-host:65535", "my-host", 65535},
           {":3010", "", 3010},  // empty host: all interfaces
           {":-1", "", -1},      // -1: a random free port
           {"127.0.0.1:-1", "127.0.0.1", -1},
           {"[::1]:4222", "::1", 4222},
           {"[::]:0", "::", 0},
           {"[fe80::1%eth0]:1", "fe80::1%eth0", 1},
           {"h:04222", "h", 4222},  // leading zeros, as Go
       }) {
    Result<HostPort> hp = ParseHostPort(c.address);
    ASSERT_TRUE(hp.ok()) << c.address << ": " << hp.status().message();
    EXPECT_EQ(hp->host, c.host) << c.address;
    EXPECT_EQ(hp->port, c.port) << c.address;
  }
}

TEST(HostPortTest, RejectedFormsSayWhy) {
  struct Case {
    const char* address;
    const char* why;
  };
  for (const Case& c : std::vector<Case>{
           {"localhost", "no ':'"},
           {"", "no ':'"},
           {"h:", "port"},
           {"h:-2", "port"},
           {"h:-0", "port"},
           {"h:+80", "port"},
           {"h: 80", "port"},
           {"h:80 ", "port"},
           {"h:http", "port"},
           {"h:65536", "port"},
           {"h:70000", "port"},
           {"h:999999", "port"},
           {"h:004222", "port"},  // more than 5 digits
           {"h:0x50", "port"},
           {"::1:4222", "brackets"},
           {"[::1:4222", "brackets"},
           {"[]:4222", "brackets"},
           {"[[::1]]:4222", "bracket"},
           {"h]:1", "brackets"},
           {"nats://h:4222", "brackets"},  // the ':' of the scheme
           {"a/b:1", "'/'"},
           {"a b:1", "white space"},
       }) {
    Result<HostPort> hp = ParseHostPort(c.address);
    ASSERT_FALSE(hp.ok()) << "accepted: '" << c.address << "'";
    EXPECT_NE(hp.status().message().find(c.address), std::string::npos) << hp.status().message();
    EXPECT_NE(hp.status().message().find(c.why), std::string::npos)
        << c.address << ": " << hp.status().message();
    EXPECT_TRUE(hp.status().Is(StatusCode::kInvalidArgument));
  }
}

TEST(HostPortTest, JoinIsTheInverse) {
  EXPECT_EQ(JoinHostPort("127.0.0.1", 4222), "127.0.0.1:4222");
  EXPECT_EQ(JoinHostPort("::1", 4222), "[::1]:4222");
  EXPECT_EQ(JoinHostPort("", -1), ":-1");
  for (const char* address : {"[::1]:4222", "h:1", ":-1", "[::]:0"}) {
    Result<HostPort> hp = ParseHostPort(address);
    ASSERT_TRUE(hp.ok()) << address;
    EXPECT_EQ(JoinHostPort(hp->host, hp->port), address);
  }
}

}  // namespace
}  // namespace marmot
