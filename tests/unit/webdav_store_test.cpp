// WebDAV snapshot store against a real WebDAV server: Debian's rclone (`rclone serve webdav`),
// started per test on a free loopback port with a user and password, serving a temp directory.
// The served directory is also read straight from disk to check what the server really holds.
#include "snapshot/webdav_store.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

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
using test::TempDir;
using test::WriteRandomFile;

constexpr const char* kUser = "marmot";
constexpr const char* kPass = "s3cret-pass";

bool RcloneInstalled() { return std::system("rclone version >/dev/null 2>&1") == 0; }

class WebDavStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RcloneInstalled()) GTEST_SKIP() << "rclone is not installed (Debian package: rclone)";
    served_ = dir_.File("served");
    fs::create_directories(served_);
    port_ = test::FreeLoopbackPort();
    server_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"rclone", "serve", "webdav", served_, "--addr",
                                 "127.0.0.1:" + std::to_string(port_), "--user", kUser, "--pass", kPass,
                                 "--config", dir_.File("rclone.conf")},
        dir_.File("rclone.log"));
    ASSERT_TRUE(test::WaitForPort(port_, std::chrono::seconds(20))) << "rclone serve webdav did not start";
  }

  std::string Url(const std::string& user, const std::string& pass,
                  const std::string& dir = "/snapshots/daily") {
    return "http://127.0.0.1:" + std::to_string(port_) + "/?dir=" + dir + "&login=" + user +
           "&secret=" + pass;
  }

  std::unique_ptr<SnapshotStore> Open(const std::string& url) {
    Result<std::unique_ptr<SnapshotStore>> store = OpenWebDavStore(WebDavSnapshotConfig{url});
    EXPECT_TRUE(store.ok()) << store.status().message();
    return store.ok() ? std::move(*store) : nullptr;
  }

  TempDir dir_;
  std::string served_;
  int port_ = 0;
  std::unique_ptr<ChildProcess> server_;
};

TEST(WebDavStoreOpenTest, RejectsBadUrlsNamingTheKey) {
  for (const std::string& url :
       {std::string(""), std::string("ftp://host/x"), std::string("http://:8080/x"),
        std::string("https://host/?dir=/a&colour=blue&secret=hush&login=u"),
        std::string("https://host/?dir=/a/../b"), std::string("https://host/?secret=hush")}) {
    Result<std::unique_ptr<SnapshotStore>> store = OpenWebDavStore(WebDavSnapshotConfig{url});
    ASSERT_FALSE(store.ok()) << url;
    EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument) << url;
    EXPECT_NE(store.status().message().find("snapshot.webdav.url"), std::string::npos)
        << store.status().message();
    EXPECT_EQ(store.status().message().find("hush"), std::string::npos) << store.status().message();
  }
}

TEST(WebDavStoreOpenTest, DescribeShowsTheDirectoryButNoSecret) {
  Result<std::unique_ptr<SnapshotStore>> store = OpenWebDavStore(
      WebDavSnapshotConfig{"https://dav.example.com/remote/?dir=/snap%20shots&login=me&secret=hush"});
  ASSERT_TRUE(store.ok()) << store.status().message();
  EXPECT_EQ((*store)->Describe(), "webdav store https://dav.example.com/remote/snap%20shots/");
}

TEST_F(WebDavStoreTest, PutListGetRoundTripKeepsTheBytes) {
  std::unique_ptr<SnapshotStore> store = Open(Url(kUser, kPass));
  ASSERT_NE(store, nullptr);
  Result<std::vector<StoredObject>> empty = store->List();
  ASSERT_TRUE(empty.ok()) << empty.status().message();  // directory not created yet: nothing stored
  EXPECT_TRUE(empty->empty());

  const size_t big_size = (6 << 20) + 12345;
  WriteRandomFile(dir_.File("big"), big_size, 1);
  WriteRandomFile(dir_.File("small"), 100, 2);
  CountingSink upload;
  Status put = store->Put("snapshot-1.db.zst", dir_.File("big"), &upload);
  ASSERT_TRUE(put.ok()) << put.message();
  EXPECT_EQ(upload.total, big_size);
  ASSERT_TRUE(store->Put("snapshot-1.json", dir_.File("small"), nullptr).ok());

  Result<std::vector<StoredObject>> listed = store->List();
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 2u);
  ASSERT_NE(FindObject(*listed, "snapshot-1.db.zst"), nullptr);
  EXPECT_EQ(FindObject(*listed, "snapshot-1.db.zst")->size, big_size);
  ASSERT_NE(FindObject(*listed, "snapshot-1.json"), nullptr);
  EXPECT_EQ(FindObject(*listed, "snapshot-1.json")->size, 100u);

  CountingSink download;
  Status get = store->Get("snapshot-1.db.zst", dir_.File("big.back"), &download);
  ASSERT_TRUE(get.ok()) << get.message();
  EXPECT_EQ(download.total, big_size);
  EXPECT_EQ(FileSha256(dir_.File("big.back")), FileSha256(dir_.File("big")));
  ASSERT_TRUE(store->Get("snapshot-1.json", dir_.File("small.back"), nullptr).ok());
  EXPECT_EQ(FileSha256(dir_.File("small.back")), FileSha256(dir_.File("small")));

  // What the server holds on disk: the objects under dir, and no leftover .partial.
  EXPECT_EQ(FileSha256(served_ + "/snapshots/daily/snapshot-1.db.zst"), FileSha256(dir_.File("big")));
  for (const auto& entry : fs::directory_iterator(served_ + "/snapshots/daily")) {
    EXPECT_NE(entry.path().extension(), ".partial") << "left behind: " << entry.path();
  }
}

TEST_F(WebDavStoreTest, PutReplacesAnExistingObject) {
  std::unique_ptr<SnapshotStore> store = Open(Url(kUser, kPass));
  ASSERT_NE(store, nullptr);
  WriteRandomFile(dir_.File("first"), 3000, 3);
  WriteRandomFile(dir_.File("second"), 2000, 4);
  ASSERT_TRUE(store->Put("snap.db", dir_.File("first"), nullptr).ok());
  Status again = store->Put("snap.db", dir_.File("second"), nullptr);
  ASSERT_TRUE(again.ok()) << again.message();
  Result<std::vector<StoredObject>> listed = store->List();
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].size, 2000u);
  ASSERT_TRUE(store->Get("snap.db", dir_.File("back"), nullptr).ok());
  EXPECT_EQ(FileSha256(dir_.File("back")), FileSha256(dir_.File("second")));
}

TEST_F(WebDavStoreTest, PartialUploadIsNeverListed) {
  std::unique_ptr<SnapshotStore> store = Open(Url(kUser, kPass));
  ASSERT_NE(store, nullptr);
  WriteRandomFile(dir_.File("data"), 500, 5);
  ASSERT_TRUE(store->Put("done.db", dir_.File("data"), nullptr).ok());
  // An upload cut off half way, as a crashed node would leave it, put there through the server.
  CurlEasy put;
  FilePtr file(std::fopen(dir_.File("data").c_str(), "rb"));
  std::string url = "http://127.0.0.1:" + std::to_string(port_) + "/snapshots/daily/cut.db.partial";
  put.Set(CURLOPT_URL, url.c_str());
  put.Set(CURLOPT_USERNAME, kUser);
  put.Set(CURLOPT_PASSWORD, kPass);
  put.UploadFrom(file.get(), 500, nullptr);
  put.CollectBody();
  Result<long> code = put.Perform("raw PUT");
  ASSERT_TRUE(code.ok()) << code.status().message();
  ASSERT_TRUE(fs::exists(served_ + "/snapshots/daily/cut.db.partial"));

  Result<std::vector<StoredObject>> listed = store->List();
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "done.db");
}

TEST_F(WebDavStoreTest, RemoveDeletesAndToleratesMissing) {
  std::unique_ptr<SnapshotStore> store = Open(Url(kUser, kPass));
  ASSERT_NE(store, nullptr);
  WriteRandomFile(dir_.File("data"), 700, 6);
  ASSERT_TRUE(store->Put("a.db", dir_.File("data"), nullptr).ok());
  ASSERT_TRUE(store->Put("b.db", dir_.File("data"), nullptr).ok());
  Status removed = store->Remove("a.db");
  ASSERT_TRUE(removed.ok()) << removed.message();
  Result<std::vector<StoredObject>> listed = store->List();
  ASSERT_TRUE(listed.ok()) << listed.status().message();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].name, "b.db");
  EXPECT_FALSE(fs::exists(served_ + "/snapshots/daily/a.db"));
  Status again = store->Remove("a.db");
  EXPECT_TRUE(again.ok()) << again.message();
}

TEST_F(WebDavStoreTest, MissingObjectIsNotFound) {
  std::unique_ptr<SnapshotStore> store = Open(Url(kUser, kPass));
  ASSERT_NE(store, nullptr);
  WriteRandomFile(dir_.File("data"), 10, 7);
  ASSERT_TRUE(store->Put("present.db", dir_.File("data"), nullptr).ok());
  Status get = store->Get("absent.db", dir_.File("out"), nullptr);
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.code(), StatusCode::kNotFound) << get.message();
  EXPECT_NE(get.message().find("absent.db"), std::string::npos) << get.message();
  EXPECT_NE(get.message().find(store->Describe()), std::string::npos) << get.message();
}

TEST_F(WebDavStoreTest, WrongCredentialsAreAClearError) {
  std::unique_ptr<SnapshotStore> store = Open(Url(kUser, "not-the-password"));
  ASSERT_NE(store, nullptr);
  WriteRandomFile(dir_.File("data"), 10, 8);
  Status put = store->Put("x.db", dir_.File("data"), nullptr);
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.code(), StatusCode::kInvalidArgument) << put.message();
  EXPECT_NE(put.message().find("webdav store"), std::string::npos) << put.message();
  EXPECT_NE(put.message().find("wrong credentials"), std::string::npos) << put.message();
  EXPECT_EQ(put.message().find("not-the-password"), std::string::npos) << put.message();
  Result<std::vector<StoredObject>> listed = store->List();
  ASSERT_FALSE(listed.ok());
  EXPECT_EQ(listed.status().code(), StatusCode::kInvalidArgument) << listed.status().message();
  Status get = store->Get("x.db", dir_.File("out"), nullptr);
  EXPECT_EQ(get.code(), StatusCode::kInvalidArgument) << get.message();
}

TEST_F(WebDavStoreTest, UnreachableServerIsUnavailable) {
  server_->Stop();
  std::unique_ptr<SnapshotStore> store = Open(Url(kUser, kPass));
  ASSERT_NE(store, nullptr);
  WriteRandomFile(dir_.File("data"), 10, 9);
  Status put = store->Put("x.db", dir_.File("data"), nullptr);
  EXPECT_EQ(put.code(), StatusCode::kUnavailable) << put.message();
  EXPECT_NE(put.message().find("unreachable"), std::string::npos) << put.message();
  EXPECT_NE(put.message().find(store->Describe()), std::string::npos) << put.message();
  Result<std::vector<StoredObject>> listed = store->List();
  EXPECT_EQ(listed.status().code(), StatusCode::kUnavailable) << listed.status().message();
  EXPECT_EQ(store->Get("x.db", dir_.File("out"), nullptr).code(), StatusCode::kUnavailable);
  EXPECT_EQ(store->Remove("x.db").code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace marmot
