// SFTP snapshot store against real SSH servers started per test on free loopback ports:
//  - Debian's rclone (`rclone serve sftp`) with a user, a password and an authorized key: password
//    login, key login, and every store operation;
//  - Debian's OpenSSH sshd (when the test runs as root): key login as root with an
//    AuthorizedKeysFile in the temp dir (no system account or password is touched). OpenSSH is the
//    server that refuses to rename onto an existing file, so replacing an object is tested there,
//    and known_hosts checking too.
// Host and user keys are made by ssh-keygen in the temp dir. The served directory is also read
// straight from disk to check what the server really holds.
#include "snapshot/sftp_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "child_process.h"
#include "snapshot/curl_easy.h"
#include "store_test_util.h"
#include "test_util.h"

namespace marmot {
namespace {

namespace fs = std::filesystem;
using test::ChildProcess;
using test::CountingSink;
using test::FileSha256;
using test::FindObject;
using test::ReadFile;
using test::TempDir;
using test::WriteRandomFile;

constexpr const char* kUser = "marmot";
constexpr const char* kPass = "s3cret-pass";

bool MakeKey(const std::string& path, const std::string& passphrase = "") {
  std::string command =
      "ssh-keygen -q -t ed25519 -N '" + passphrase + "' -C marmot-test -f " + path + " >/dev/null";
  return std::system(command.c_str()) == 0;
}

std::unique_ptr<SnapshotStore> Open(const std::string& url) {
  Result<std::unique_ptr<SnapshotStore>> store = OpenSftpStore(SftpSnapshotConfig{url});
  EXPECT_TRUE(store.ok()) << store.status().message();
  return store.ok() ? std::move(*store) : nullptr;
}

// Every store operation against one server: round trip with a file of several MiB, replacing an
// object, a .partial that is never listed, remove, missing object.
void ExerciseStore(SnapshotStore& store, const TempDir& dir, const std::string& served_dir) {
  Result<std::vector<StoredObject>> empty = store.List();
  ASSERT_TRUE(empty.ok()) << empty.status().message();  // directory not created yet: nothing stored
  EXPECT_TRUE(empty->empty());

  const size_t big_size = (5 << 20) + 4321;
  WriteRandomFile(dir.File("big"), big_size, 1);
  WriteRandomFile(dir.File("small"), 100, 2);
  CountingSink upload;
  Status put = store.Put("snapshot-1.db.zst", dir.File("big"), &upload);
  ASSERT_TRUE(put.ok()) << put.message();
  EXPECT_EQ(upload.total, big_size);
  ASSERT_TRUE(store.Put("snapshot-1.json", dir.File("small"), nullptr).ok());

  Result<std::vector<StoredObject>> listed = store.List();
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 2u);
  ASSERT_NE(FindObject(*listed, "snapshot-1.db.zst"), nullptr);
  EXPECT_EQ(FindObject(*listed, "snapshot-1.db.zst")->size, big_size);
  ASSERT_NE(FindObject(*listed, "snapshot-1.json"), nullptr);
  EXPECT_EQ(FindObject(*listed, "snapshot-1.json")->size, 100u);

  CountingSink download;
  Status get = store.Get("snapshot-1.db.zst", dir.File("big.back"), &download);
  ASSERT_TRUE(get.ok()) << get.message();
  EXPECT_EQ(download.total, big_size);
  EXPECT_EQ(FileSha256(dir.File("big.back")), FileSha256(dir.File("big")));
  EXPECT_EQ(FileSha256(served_dir + "/snapshot-1.db.zst"), FileSha256(dir.File("big")));
  for (const auto& entry : fs::directory_iterator(served_dir)) {
    EXPECT_NE(entry.path().extension(), ".partial") << "left behind: " << entry.path();
  }

  // Replacing: the new content, once.
  Status again = store.Put("snapshot-1.json", dir.File("big"), nullptr);
  ASSERT_TRUE(again.ok()) << again.message();
  listed = store.List();
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 2u);
  ASSERT_NE(FindObject(*listed, "snapshot-1.json"), nullptr);
  EXPECT_EQ(FindObject(*listed, "snapshot-1.json")->size, big_size);
  ASSERT_TRUE(store.Get("snapshot-1.json", dir.File("json.back"), nullptr).ok());
  EXPECT_EQ(FileSha256(dir.File("json.back")), FileSha256(dir.File("big")));

  // Remove, twice (the second finds nothing and is fine), then the object is missing.
  Status removed = store.Remove("snapshot-1.json");
  ASSERT_TRUE(removed.ok()) << removed.message();
  EXPECT_FALSE(fs::exists(served_dir + "/snapshot-1.json"));
  Status removed_again = store.Remove("snapshot-1.json");
  EXPECT_TRUE(removed_again.ok()) << removed_again.message();
  listed = store.List();
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "snapshot-1.db.zst");

  Status missing = store.Get("snapshot-1.json", dir.File("missing"), nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.code(), StatusCode::kNotFound) << missing.message();
  EXPECT_NE(missing.message().find("snapshot-1.json"), std::string::npos) << missing.message();
  EXPECT_NE(missing.message().find(store.Describe()), std::string::npos) << missing.message();
}

TEST(SftpStoreOpenTest, RejectsBadUrlsNamingTheKey) {
  for (const std::string& url :
       {std::string(""), std::string("http://u:hush@host/x"), std::string("sftp://host/dir"),
        std::string("sftp://u:hush@host"), std::string("sftp://u:hush@host/"),
        std::string("sftp://u:hush@h/d?colour=x"),
        std::string("sftp://u:hush@h/d?key=/nonexistent/id_ed25519"),
        std::string("sftp://u:hush@h/a/%2e%2e/b")}) {
    Result<std::unique_ptr<SnapshotStore>> store = OpenSftpStore(SftpSnapshotConfig{url});
    ASSERT_FALSE(store.ok()) << url;
    EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_NE(store.status().message().find("snapshot.sftp.url"), std::string::npos)
        << store.status().message();
    EXPECT_EQ(store.status().message().find("hush"), std::string::npos) << store.status().message();
  }
}

TEST(SftpStoreOpenTest, DescribeShowsUserHostAndDirectoryButNoPassword) {
  Result<std::unique_ptr<SnapshotStore>> store =
      OpenSftpStore(SftpSnapshotConfig{"sftp://me:hush@backup.example.com/srv/snap%20shots/"});
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_EQ((*store)->Describe(), "sftp store sftp://me@backup.example.com:22/srv/snap shots");
}

// rclone serve sftp with a password and an authorized key for user kUser.
class RcloneSftpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("rclone version >/dev/null 2>&1") != 0) {
      GTEST_SKIP() << "rclone is not installed (Debian package: rclone)";
    }
    ASSERT_TRUE(MakeKey(dir_.File("host_key"))) << "ssh-keygen failed (Debian package: openssh-client)";
    ASSERT_TRUE(MakeKey(dir_.File("user_key")));
    ASSERT_TRUE(MakeKey(dir_.File("locked_key"), "correct-horse"));
    std::ofstream(dir_.File("authorized_keys"))
        << ReadFile(dir_.File("user_key.pub")) << ReadFile(dir_.File("locked_key.pub"));
    served_ = dir_.File("served");
    fs::create_directories(served_);
    port_ = test::FreeLoopbackPort();
    server_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"rclone", "serve", "sftp", served_, "--addr",
                                 "127.0.0.1:" + std::to_string(port_), "--user", kUser, "--pass", kPass,
                                 "--key", dir_.File("host_key"), "--authorized-keys",
                                 dir_.File("authorized_keys"), "--config", dir_.File("rclone.conf")},
        dir_.File("rclone.log"));
    ASSERT_TRUE(test::WaitForPort(port_, std::chrono::seconds(20))) << "rclone serve sftp did not start";
  }

  std::string Server() const { return "127.0.0.1:" + std::to_string(port_); }

  TempDir dir_;
  std::string served_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> server_;
};

TEST_F(RcloneSftpTest, PasswordLoginEveryOperation) {
  std::unique_ptr<SnapshotStore> store =
      Open("sftp://" + std::string(kUser) + ":" + kPass + "@" + Server() + "/snaps/daily");
  ASSERT_NE(store, nullptr);
  ExerciseStore(*store, dir_, served_ + "/snaps/daily");
}

TEST_F(RcloneSftpTest, KeyFileLogin) {
  std::unique_ptr<SnapshotStore> store =
      Open("sftp://" + std::string(kUser) + "@" + Server() + "/snaps?key=" + dir_.File("user_key"));
  ASSERT_NE(store, nullptr);
  WriteRandomFile(dir_.File("data"), 3 << 20, 3);
  Status put = store->Put("k.db", dir_.File("data"), nullptr);
  ASSERT_TRUE(put.ok()) << put.message();
  Result<std::vector<StoredObject>> listed = store->List();
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].size, 3u << 20);
  ASSERT_TRUE(store->Get("k.db", dir_.File("back"), nullptr).ok());
  EXPECT_EQ(FileSha256(dir_.File("back")), FileSha256(dir_.File("data")));
}

TEST_F(RcloneSftpTest, EncryptedKeyFileWithPassphrase) {
  std::string base =
      "sftp://" + std::string(kUser) + "@" + Server() + "/snaps?key=" + dir_.File("locked_key");
  std::unique_ptr<SnapshotStore> store = Open(base + "&passphrase=correct-horse");
  ASSERT_NE(store, nullptr);
  Result<std::vector<StoredObject>> listed = store->List();
  EXPECT_TRUE(listed.ok()) << listed.status().message();

  std::unique_ptr<SnapshotStore> wrong = Open(base + "&passphrase=wrong-horse");
  ASSERT_NE(wrong, nullptr);
  listed = wrong->List();
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.status().code(), StatusCode::kInvalidArgument) << listed.status().message();
  EXPECT_EQ(listed.status().message().find("wrong-horse"), std::string::npos) << listed.status().message();
}

TEST_F(RcloneSftpTest, PartialUploadIsNeverListed) {
  std::unique_ptr<SnapshotStore> store =
      Open("sftp://" + std::string(kUser) + ":" + kPass + "@" + Server() + "/snaps");
  ASSERT_NE(store, nullptr);
  WriteRandomFile(dir_.File("data"), 500, 4);
  ASSERT_TRUE(store->Put("done.db", dir_.File("data"), nullptr).ok());
  // An upload cut off half way, as a crashed node would leave it, put there through the server.
  CurlEasy put;
  FilePtr file(std::fopen(dir_.File("data").c_str(), "rb"));
  std::string url = "sftp://" + Server() + "/snaps/cut.db.partial";
  put.Set(CURLOPT_URL, url.c_str());
  put.Set(CURLOPT_USERNAME, kUser);
  put.Set(CURLOPT_PASSWORD, kPass);
  put.UploadFrom(file.get(), 500, nullptr);
  Result<long> code = put.Perform("raw upload");
  ASSERT_TRUE(code.ok()) << code.status().message();
  ASSERT_TRUE(fs::exists(served_ + "/snaps/cut.db.partial"));

  Result<std::vector<StoredObject>> listed = store->List();
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "done.db");
}

TEST_F(RcloneSftpTest, WrongPasswordIsAClearError) {
  std::unique_ptr<SnapshotStore> store =
      Open("sftp://" + std::string(kUser) + ":not-the-password@" + Server() + "/snaps");
  ASSERT_NE(store, nullptr);
  WriteRandomFile(dir_.File("data"), 10, 5);
  Status put = store->Put("x.db", dir_.File("data"), nullptr);
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.code(), StatusCode::kInvalidArgument) << put.message();
  EXPECT_NE(put.message().find("sftp store"), std::string::npos) << put.message();
  EXPECT_NE(put.message().find("wrong credentials"), std::string::npos) << put.message();
  EXPECT_EQ(put.message().find("not-the-password"), std::string::npos) << put.message();
  Result<std::vector<StoredObject>> listed = store->List();
  EXPECT_EQ(listed.status().code(), StatusCode::kInvalidArgument) << listed.status().message();
  EXPECT_EQ(store->Get("x.db", dir_.File("out"), nullptr).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Remove("x.db").code(), StatusCode::kInvalidArgument);
}

TEST_F(RcloneSftpTest, UnauthorizedKeyIsAClearError) {
  ASSERT_TRUE(MakeKey(dir_.File("stranger_key")));
  std::unique_ptr<SnapshotStore> store =
      Open("sftp://" + std::string(kUser) + "@" + Server() + "/snaps?key=" + dir_.File("stranger_key"));
  ASSERT_NE(store, nullptr);
  Result<std::vector<StoredObject>> listed = store->List();
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.status().code(), StatusCode::kInvalidArgument) << listed.status().message();
  EXPECT_NE(listed.status().message().find("wrong credentials"), std::string::npos)
      << listed.status().message();
}

TEST_F(RcloneSftpTest, UnreachableServerIsUnavailable) {
  server_->Stop();
  std::unique_ptr<SnapshotStore> store =
      Open("sftp://" + std::string(kUser) + ":" + kPass + "@" + Server() + "/snaps");
  ASSERT_NE(store, nullptr);
  WriteRandomFile(dir_.File("data"), 10, 6);
  Status put = store->Put("x.db", dir_.File("data"), nullptr);
  EXPECT_EQ(put.code(), StatusCode::kUnavailable) << put.message();
  EXPECT_NE(put.message().find("unreachable"), std::string::npos) << put.message();
  EXPECT_NE(put.message().find(store->Describe()), std::string::npos) << put.message();
  EXPECT_EQ(store->List().status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(store->Get("x.db", dir_.File("out"), nullptr).code(), StatusCode::kUnavailable);
  EXPECT_EQ(store->Remove("x.db").code(), StatusCode::kUnavailable);
}

// OpenSSH's sshd, key login for root through an AuthorizedKeysFile in the temp dir.
class OpenSshSftpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists("/usr/sbin/sshd"))
      GTEST_SKIP() << "sshd is not installed (Debian package: openssh-server)";
    if (::geteuid() != 0) GTEST_SKIP() << "the sshd test logs in as root with a key, so it must run as root";
    std::error_code ec;
    fs::create_directories("/run/sshd", ec);  // sshd's privilege separation directory
    ASSERT_TRUE(MakeKey(dir_.File("host_key"))) << "ssh-keygen failed (Debian package: openssh-client)";
    ASSERT_TRUE(MakeKey(dir_.File("user_key")));
    fs::copy_file(dir_.File("user_key.pub"), dir_.File("authorized_keys"));
    port_ = test::FreeLoopbackPort();
    std::ofstream config(dir_.File("sshd_config"));
    config << "Port " << port_ << "\nListenAddress 127.0.0.1\nHostKey " << dir_.File("host_key")
           << "\nPidFile none\nAuthorizedKeysFile " << dir_.File("authorized_keys")
           << "\nStrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
              "KbdInteractiveAuthentication no\nUsePAM no\nSubsystem sftp internal-sftp\n";
    config.close();
    server_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"/usr/sbin/sshd", "-D", "-e", "-f", dir_.File("sshd_config")},
        dir_.File("sshd.log"));
    ASSERT_TRUE(test::WaitForPort(port_, std::chrono::seconds(20)))
        << "sshd did not start: " << ReadFile(dir_.File("sshd.log"));
    served_ = dir_.File("remote");  // absolute path on the server, created by the first upload
  }

  std::string Url(const std::string& query) const {
    return "sftp://root@127.0.0.1:" + std::to_string(port_) + served_ + "?key=" + dir_.File("user_key") +
           query;
  }

  TempDir dir_;
  std::string served_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> server_;
};

TEST_F(OpenSshSftpTest, KeyLoginEveryOperationWithKnownHosts) {
  std::ofstream known_hosts(dir_.File("known_hosts"));
  known_hosts << "[127.0.0.1]:" << port_ << " " << ReadFile(dir_.File("host_key.pub"));
  known_hosts.close();
  std::unique_ptr<SnapshotStore> store = Open(Url("&known_hosts=" + dir_.File("known_hosts")));
  ASSERT_NE(store, nullptr);
  ExerciseStore(*store, dir_, served_);
}

TEST_F(OpenSshSftpTest, HostMissingFromKnownHostsIsRefused) {
  std::ofstream known_hosts(dir_.File("known_hosts"));
  known_hosts << "[127.0.0.1]:" << (port_ + 1) << " " << ReadFile(dir_.File("host_key.pub"));
  known_hosts.close();
  std::unique_ptr<SnapshotStore> store = Open(Url("&known_hosts=" + dir_.File("known_hosts")));
  ASSERT_NE(store, nullptr);
  Result<std::vector<StoredObject>> listed = store->List();
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.status().code(), StatusCode::kInvalidArgument) << listed.status().message();
  EXPECT_NE(listed.status().message().find("not listed in the known_hosts file"), std::string::npos)
      << listed.status().message();
}

TEST_F(OpenSshSftpTest, ChangedHostKeyIsRefused) {
  ASSERT_TRUE(MakeKey(dir_.File("impostor_key")));
  std::ofstream known_hosts(dir_.File("known_hosts"));
  known_hosts << "[127.0.0.1]:" << port_ << " " << ReadFile(dir_.File("impostor_key.pub"));
  known_hosts.close();
  std::unique_ptr<SnapshotStore> store = Open(Url("&known_hosts=" + dir_.File("known_hosts")));
  ASSERT_NE(store, nullptr);
  WriteRandomFile(dir_.File("data"), 10, 7);
  Status put = store->Put("x.db", dir_.File("data"), nullptr);
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.code(), StatusCode::kInvalidArgument) << put.message();
  EXPECT_NE(put.message().find(store->Describe()), std::string::npos) << put.message();
  EXPECT_NE(put.message().find("host key DIFFERS"), std::string::npos) << put.message();
  EXPECT_FALSE(fs::exists(served_)) << "uploaded to a server whose host key is not known";
}

}  // namespace
}  // namespace marmot
