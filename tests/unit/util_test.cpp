// src/util: the FNV-1a hash, UniqueFd and WriteFileWithMode.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "test_util.h"
#include "util/fnv.h"
#include "util/unique_fd.h"
#include "util/write_file.h"

namespace marmot {
namespace {

using test::TempDir;

TEST(FnvTest, MatchesTheReferenceVectors) {
  // From the FNV reference test suite (isthe.com/chongo/src/fnv/test_fnv.c), FNV-1a 64.
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
  // Pieces hash like the whole.
  EXPECT_EQ(Fnv1a64Add(Fnv1a64("foo"), "bar", 3), Fnv1a64("foobar"));
}

// The mode bits of `path` (permissions only).
mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(UniqueFdTest, ClosesOnceAndMoves) {
  TempDir dir;
  int raw = open(dir.File("f").c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(raw, 0);
  {
    UniqueFd a(raw);
    UniqueFd b(std::move(a));
    EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): moved-from owns nothing
    EXPECT_EQ(b.get(), raw);
    UniqueFd c;
    c = std::move(b);
    EXPECT_EQ(c.get(), raw);
    EXPECT_NE(fcntl(raw, F_GETFD), -1);
  }
  EXPECT_EQ(fcntl(raw, F_GETFD), -1) << "closed when the owner went away";

  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  UniqueFd r(fds[0]), w(fds[1]);
  EXPECT_EQ(w.Close(), 0);
  EXPECT_FALSE(w.valid());
  EXPECT_EQ(w.Close(), 0) << "closing nothing is fine";
  int kept = r.Release();
  EXPECT_FALSE(r.valid());
  EXPECT_NE(fcntl(kept, F_GETFD), -1) << "Release does not close";
  close(kept);
}

TEST(WriteFileWithModeTest, NewFileHasTheModeWhateverTheUmask) {
  TempDir dir;
  const std::string path = dir.File("server.conf");
  mode_t old_umask = umask(0);  // the most permissive umask: the mode must still be 0600
  Status s = WriteFileWithMode(path, "password: \"x\"\n", 0600);
  umask(old_umask);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ModeOf(path), 0600u);
  EXPECT_EQ(ReadAll(path), "password: \"x\"\n");
}

TEST(WriteFileWithModeTest, ExistingFileIsTruncatedAndNarrowed) {
  TempDir dir;
  const std::string path = dir.File("server.conf");
  std::ofstream(path) << "a much longer old content that must go\n";
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  Status s = WriteFileWithMode(path, "new\n", 0600);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(ModeOf(path), 0600u);
  EXPECT_EQ(ReadAll(path), "new\n");
}

TEST(WriteFileWithModeTest, ErrorsNameTheFile) {
  TempDir dir;
  const std::string path = dir.File("no-such-dir/server.conf");
  Status s = WriteFileWithMode(path, "x", 0600);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.Is(StatusCode::kIoError));
  EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("No such file"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace marmot
