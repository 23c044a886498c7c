// Tests of the NATS layer against a real nats-server started by EmbeddedNatsServer on a random
// loopback port in a temp dir.
#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "stream/nats_client.h"
#include "stream/nats_handles.h"
#include "stream/nats_server.h"
#include "stream/nkey.h"
#include "stream/streams.h"
#include "test_util.h"

namespace marmot {
namespace {

using test::TempDir;

EmbeddedNatsOptions ServerOptions(const TempDir& dir, const std::string& name) {
  EmbeddedNatsOptions o;
  o.server_name = name;
  o.work_dir = dir.File("nats");
  o.bind_address = "127.0.0.1:-1";
  return o;
}

NatsClientOptions ClientOptions(const EmbeddedNatsServer& server) {
  NatsClientOptions o;
  o.urls = {server.client_url()};
  o.connect_retries = 0;
  o.reconnect_wait = std::chrono::seconds(1);
  return o;
}

TEST(NKeyTest, SeedRoundTripsAndSigns) {
  Result<NKey> key = NKey::Generate();
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_EQ(key->seed().substr(0, 2), "SU");
  EXPECT_EQ(key->public_key().substr(0, 1), "U");
  EXPECT_EQ(key->public_key().size(), 56u);
  Result<NKey> again = NKey::FromSeed(key->seed());
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->public_key(), key->public_key());
  // nats.c signs with the seed (the server test below checks that it matches the public key).
  // nats_Sign needs the library initialized (its base32 table), which natsOptions_Create does.
  ASSERT_EQ(nats_Open(-1), NATS_OK);
  unsigned char* sig = nullptr;
  int sig_len = 0;
  ASSERT_EQ(nats_Sign(key->seed().c_str(), "nonce", &sig, &sig_len), NATS_OK);
  std::free(sig);  // NOLINT(cppcoreguidelines-no-malloc): nats.c allocated it with malloc
  EXPECT_EQ(sig_len, 64);
  std::string broken = key->seed();
  broken[10] = broken[10] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(NKey::FromSeed(broken).ok());
  EXPECT_FALSE(NKey::FromSeed("not a seed").ok());
}

TEST(NatsTest, NKeyAuthenticationAgainstARealServer) {
  TempDir dir;
  Result<NKey> allowed = NKey::Generate();
  Result<NKey> stranger = NKey::Generate();
  ASSERT_TRUE(allowed.ok() && stranger.ok());
  std::ofstream(dir.File("auth.conf"))
      << "authorization { users = [ { nkey: \"" << allowed->public_key() << "\" } ] }\n";
  std::ofstream(dir.File("good.nk")) << "-----BEGIN USER NKEY SEED-----\n"
                                     << allowed->seed() << "\n------END USER NKEY SEED------\n";
  std::ofstream(dir.File("good-bare.nk")) << allowed->seed() << "\n";
  std::ofstream(dir.File("bad.nk")) << stranger->seed() << "\n";
  EmbeddedNatsOptions so = ServerOptions(dir, "nkey-test");
  so.server_config = dir.File("auth.conf");
  Result<std::unique_ptr<EmbeddedNatsServer>> server = EmbeddedNatsServer::Start(so);
  ASSERT_TRUE(server.ok()) << server.status().message();

  NatsClientOptions co = ClientOptions(**server);
  Result<std::unique_ptr<NatsClient>> anonymous = NatsClient::Connect(co);
  EXPECT_FALSE(anonymous.ok());
  co.seed_file = dir.File("bad.nk");
  EXPECT_FALSE(NatsClient::Connect(co).ok());
  co.seed_file = dir.File("missing.nk");
  Result<std::unique_ptr<NatsClient>> missing = NatsClient::Connect(co);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("[nats] seed_file " + co.seed_file), std::string::npos)
      << missing.status().message();
  co.seed_file = dir.File("good-bare.nk");
  co.connect_retries = 3;  // a loaded machine (tests run in parallel) may miss the 2 s connect timeout once
  EXPECT_TRUE(NatsClient::Connect(co).ok()) << "a file holding only the seed";
  co.seed_file = dir.File("good.nk");
  Result<std::unique_ptr<NatsClient>> client = NatsClient::Connect(co);
  ASSERT_TRUE(client.ok()) << client.status().message();
  EXPECT_TRUE((*client)->WaitForJetStream(std::chrono::seconds(10)).ok());
}

TEST(NatsTest, UserPasswordAndRedactedErrors) {
  TempDir dir;
  EmbeddedNatsOptions so = ServerOptions(dir, "userpass-test");
  so.user_name = "app";
  so.user_password = "s3cret-pw";
  Result<std::unique_ptr<EmbeddedNatsServer>> server = EmbeddedNatsServer::Start(so);
  ASSERT_TRUE(server.ok()) << server.status().message();
  NatsClientOptions co = ClientOptions(**server);
  co.user_name = "app";
  co.user_password = "wrong";
  Result<std::unique_ptr<NatsClient>> refused = NatsClient::Connect(co);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message().find("s3cret"), std::string::npos);
  co.user_password = "s3cret-pw";
  co.connect_retries = 3;  // see NKeyAuthenticationAgainstARealServer
  EXPECT_TRUE(NatsClient::Connect(co).ok());
}

// Makes a CA, a server certificate for 127.0.0.1 and a client certificate with the openssl CLI.
void MakeCertificates(const TempDir& dir) {
  std::string d = dir.path();
  std::string script =
      "cd " + d +
      " && exec >openssl.log 2>&1 && "
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca && "
      "for who in server client; do "
      "  openssl req -newkey rsa:2048 -nodes -keyout $who.key -out $who.csr -subj /CN=$who && "
      "  printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > $who.ext && "
      "  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem -days 2 "
      "-extfile $who.ext; "
      "done";
  ASSERT_EQ(std::system(script.c_str()), 0) << "openssl failed, see " << d << "/openssl.log";
}

TEST(NatsTest, TlsWithClientCertificates) {
  TempDir dir;
  MakeCertificates(dir);
  std::ofstream(dir.File("tls.conf"))
      << "tls {\n  cert_file: \"" << dir.File("server.pem") << "\"\n  key_file: \"" << dir.File("server.key")
      << "\"\n  ca_file: \"" << dir.File("ca.pem") << "\"\n  verify: true\n}\n";
  EmbeddedNatsOptions so = ServerOptions(dir, "tls-test");
  so.server_config = dir.File("tls.conf");
  Result<std::unique_ptr<EmbeddedNatsServer>> server = EmbeddedNatsServer::Start(so);
  ASSERT_TRUE(server.ok()) << server.status().message();
  NatsClientOptions co = ClientOptions(**server);
  // Without a client certificate the server refuses the connection.
  co.ca_file = dir.File("ca.pem");
  EXPECT_FALSE(NatsClient::Connect(co).ok());
  co.cert_file = dir.File("client.pem");
  co.key_file = dir.File("client.key");
  Result<std::unique_ptr<NatsClient>> client = NatsClient::Connect(co);
  ASSERT_TRUE(client.ok()) << client.status().message();
  EXPECT_TRUE((*client)->WaitForJetStream(std::chrono::seconds(10)).ok());
  // A wrong CA file is reported naming the key.
  co.ca_file = dir.File("missing-ca.pem");
  Result<std::unique_ptr<NatsClient>> bad = NatsClient::Connect(co);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("[nats] ca_file"), std::string::npos) << bad.status().message();
}

TEST(NatsTest, EmbeddedServerIsRestartedWhenItDies) {
  TempDir dir;
  Result<std::unique_ptr<EmbeddedNatsServer>> server =
      EmbeddedNatsServer::Start(ServerOptions(dir, "restart-test"));
  ASSERT_TRUE(server.ok()) << server.status().message();
  std::string url = (*server)->client_url();
  pid_t first = (*server)->pid();
  ASSERT_GT(first, 0);
  ASSERT_EQ(kill(first, SIGKILL), 0);
  // The supervisor restarts it (after 1 s) on the same port.
  pid_t second = first;
  for (int i = 0; i < 100 && (second == first || second <= 0); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    second = (*server)->pid();
  }
  EXPECT_NE(second, first);
  EXPECT_EQ((*server)->client_url(), url);
  NatsClientOptions co = ClientOptions(**server);
  co.connect_retries = 20;
  Result<std::unique_ptr<NatsClient>> client = NatsClient::Connect(co);
  ASSERT_TRUE(client.ok()) << client.status().message();
  server->reset();
  EXPECT_NE(kill(second, 0), 0) << "nats-server still running after the supervisor was destroyed";
}

TEST(NatsTest, StreamsAreCreatedCheckedAndUpdated) {
  TempDir dir;
  Result<std::unique_ptr<EmbeddedNatsServer>> server =
      EmbeddedNatsServer::Start(ServerOptions(dir, "streams-test"));
  ASSERT_TRUE(server.ok()) << server.status().message();
  Result<std::unique_ptr<NatsClient>> client = NatsClient::Connect(ClientOptions(**server));
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->WaitForJetStream(std::chrono::seconds(10)).ok());
  StreamLayout layout;
  layout.shards = 3;
  ASSERT_TRUE(EnsureStreams((*client)->jetstream(), layout).ok());
  EXPECT_EQ(layout.StreamName(2), "marmot-changes-c-2");
  EXPECT_EQ(layout.Subject(2), "marmot-change-log-2");
  for (int shard = 1; shard <= 3; ++shard) {
    jsStreamInfo* info = nullptr;
    ASSERT_EQ(
        js_GetStreamInfo(&info, (*client)->jetstream(), layout.StreamName(shard).c_str(), nullptr, nullptr),
        NATS_OK);
    EXPECT_EQ(info->Config->MaxMsgs, 1024);
    EXPECT_TRUE(info->Config->DenyDelete);
    EXPECT_TRUE(info->Config->AllowDirect);
    jsStreamInfo_Destroy(info);
  }
  // Idempotent; a changed setting is refused unless update_existing.
  ASSERT_TRUE(EnsureStreams((*client)->jetstream(), layout).ok());
  layout.max_entries = 50;
  Status refused = EnsureStreams((*client)->jetstream(), layout);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("marmot-changes-c-1"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find("update_existing"), std::string::npos) << refused.message();
  layout.update_existing = true;
  Status updated = EnsureStreams((*client)->jetstream(), layout);
  EXPECT_TRUE(updated.ok()) << updated.message();
}

TEST(NatsTest, DnsPeers) {
  // host:port itself is util/host_port.h's (host_port_test.cpp).
  Result<std::vector<std::string>> peers =
      ResolvePeers({"nats://a:1/", "dns://localhost:4248/?min=1&interval_ms=10"}, 2000);
  ASSERT_TRUE(peers.ok()) << peers.status().message();
  EXPECT_EQ(peers->front(), "nats://a:1/");
  EXPECT_NE(std::find(peers->begin(), peers->end(), "nats://127.0.0.1:4248"), peers->end());
  EXPECT_FALSE(ResolvePeers({"dns://localhost:4248/?min=50&interval_ms=10"}, 100).ok());
  EXPECT_FALSE(ResolvePeers({"dns://localhost:4248/?bogus=1"}, 100).ok());
  EXPECT_FALSE(ResolvePeers({"dns://localhost/?min=1"}, 100).ok());
  EXPECT_FALSE(ResolvePeers({"dns://localhost:-1/"}, 100).ok());
}

TEST(NatsTest, GeneratedConfigHoldingAPasswordIsOwnerOnly) {
  TempDir dir;
  EmbeddedNatsOptions so = ServerOptions(dir, "mode-test");
  so.user_name = "app";
  so.user_password = "s3cret-pw";
  // A config left behind with wider permissions is narrowed, not just rewritten.
  const std::string conf = so.work_dir + "/" + so.server_name + ".conf";
  std::filesystem::create_directories(so.work_dir);
  std::ofstream(conf) << "# old\n";
  ASSERT_EQ(chmod(conf.c_str(), 0644), 0);
  Result<std::unique_ptr<EmbeddedNatsServer>> server = EmbeddedNatsServer::Start(so);
  ASSERT_TRUE(server.ok()) << server.status().message();
  struct stat st {};
  ASSERT_EQ(stat(conf.c_str(), &st), 0) << conf;
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  std::ifstream in(conf);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("s3cret-pw"), std::string::npos) << "this test needs the password in the config";
}

TEST(NatsTest, EmbeddedServerListensOnIpv6Loopback) {
  TempDir dir;
  EmbeddedNatsOptions so = ServerOptions(dir, "ipv6-test");
  so.bind_address = "[::1]:-1";
  Result<std::unique_ptr<EmbeddedNatsServer>> server = EmbeddedNatsServer::Start(so);
  ASSERT_TRUE(server.ok()) << server.status().message();
  EXPECT_EQ((*server)->client_url().rfind("nats://[::1]:", 0), 0u) << (*server)->client_url();
  Result<std::unique_ptr<NatsClient>> client = NatsClient::Connect(ClientOptions(**server));
  ASSERT_TRUE(client.ok()) << client.status().message();
}

TEST(NatsHandlesTest, HandlesFreeWhatTheyOwn) {
  // Run under ASan (MARMOT_SANITIZE) this also proves nothing leaks or is freed twice.
  natsOptions* raw_opts = nullptr;
  ASSERT_EQ(natsOptions_Create(&raw_opts), NATS_OK);
  NatsOptionsPtr opts(raw_opts);
  EXPECT_EQ(natsOptions_SetName(opts.get(), "x"), NATS_OK);

  auto make_msg = [](const char* subject) {
    natsMsg* raw = nullptr;
    EXPECT_EQ(natsMsg_Create(&raw, subject, nullptr, "data", 4), NATS_OK);
    return raw;
  };
  NatsMsgPtr msg(make_msg("a"));
  EXPECT_STREQ(natsMsg_GetSubject(msg.get()), "a");

  NatsMsgList list;
  EXPECT_TRUE(list.empty());
  natsMsgList* fill = list.ResetForFill();  // as js_Fetch fills it: a malloc'ed array
  fill->Msgs = static_cast<natsMsg**>(std::calloc(3, sizeof(natsMsg*)));  // NOLINT: nats.c frees it
  ASSERT_NE(fill->Msgs, nullptr);
  for (int i = 0; i < 3; ++i) fill->Msgs[i] = make_msg(i == 1 ? "b" : "c");
  fill->Count = 3;
  ASSERT_EQ(list.size(), 3);
  NatsMsgPtr taken = list.Release(1);
  EXPECT_STREQ(natsMsg_GetSubject(taken.get()), "b");
  EXPECT_EQ(list[1], nullptr);
  NatsMsgList moved(std::move(list));
  EXPECT_EQ(moved.size(), 3);
  EXPECT_TRUE(list.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
  moved.Clear();
  EXPECT_TRUE(moved.empty());
}

}  // namespace
}  // namespace marmot
