// FreeLoopbackPorts: ports for the servers that tests and the benchmark start, picked at random
// (never fixed ports: tests run in parallel). tests/e2e/lib.sh `free_port` follows the same rule.
// LoopbackAccepts: whether such a server is up yet.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <random>

namespace marmot::test {

// 127.0.0.1:port.
inline sockaddr_in LoopbackAddress(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  return addr;
}

// True when nothing is bound to 127.0.0.1:port now.
inline bool LoopbackPortFree(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr = LoopbackAddress(port);
  bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return free;
}

// True when something accepts connections on 127.0.0.1:port now.
inline bool LoopbackAccepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr = LoopbackAddress(port);
  bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return up;
}

// The first of `count` consecutive loopback TCP ports that are free now, picked at random below
// the kernel's ephemeral range (ip_local_port_range): a port from inside that range can go to an
// outgoing connection of a test running in parallel before our server binds it. -1 when 1,000
// tries found none.
inline int FreeLoopbackPorts(int count) {
  int low = 32768, high = 60999;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d %d", &low, &high) != 2) low = 32768, high = 60999;
    std::fclose(f);
  }
  int first = low > 11000 ? 10000 : high + 1, last = (low > 11000 ? low - 1 : 65535) - count;
  std::random_device random;
  std::uniform_int_distribution<int> pick(first, last);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int port = pick(random), free = 0;
    while (free < count && LoopbackPortFree(port + free)) ++free;
    if (free == count) return port;
  }
  return -1;
}

}  // namespace marmot::test
