// Helpers shared by the snapshot store tests (nats_object_store, s3_store, sftp_store,
// webdav_store): seeded random files to upload, their SHA-256 to compare what comes back, a shell
// command's output (for the second clients: node, python3/boto3), a whole small file as text, and
// an object picked out of a listing.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "snapshot/snapshot_store.h"
#include "util/sha256.h"

namespace marmot::test {

// A ProgressSink that adds up what it is told.
struct CountingSink : ProgressSink {
  void Advance(uint64_t bytes) override { total += bytes; }
  uint64_t total = 0;
};

// Writes `size` pseudo-random bytes to `path`, the same bytes for the same `seed` (so a failure
// repeats), streamed in 64 KiB pieces. Fails the test when the file cannot be written.
inline void WriteRandomFile(const std::string& path, uint64_t size, uint32_t seed) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::mt19937 rng(seed);
  std::vector<char> buf(64 * 1024);
  for (uint64_t done = 0; done < size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - done));
    for (size_t i = 0; i < n; ++i) buf[i] = static_cast<char>(rng());
    out.write(buf.data(), static_cast<std::streamsize>(n));
    done += n;
  }
  ASSERT_TRUE(out.good()) << path;
}

// The SHA-256 of the file at `path` in hex; when it cannot be read, the error naming the file,
// so that EXPECT_EQ of two files' digests says which one is missing.
inline std::string FileSha256(const std::string& path) {
  Result<std::string> digest = FileSha256Hex(path);
  return digest.ok() ? *digest : digest.status().message();
}

// Runs `command` through the shell and returns its standard output; `*exit_code` gets its exit
// status (-1 when it could not be started or did not exit normally).
inline std::string RunCommand(const std::string& command, int* exit_code) {
  std::string output;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    *exit_code = -1;
    return output;
  }
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  int status = ::pclose(pipe);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

// The whole text of the file at `path`; "" when it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The object called `name` in `objects`; nullptr when it is not listed.
inline const StoredObject* FindObject(const std::vector<StoredObject>& objects, const std::string& name) {
  for (const StoredObject& object : objects) {
    if (object.name == name) return &object;
  }
  return nullptr;
}

}  // namespace marmot::test
