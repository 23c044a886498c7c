#include "config/config.h"

#include <fstream>

#include "config/flags.h"
#include "test_util.h"

namespace marmot {
namespace {

using test::TempDir;

TEST(ConfigTest, DefaultsAreThoseOfMarmot08) {
  Result<Config> c = ParseConfigToml("", "empty.toml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->db_path, (std::filesystem::temp_directory_path() / "marmot.db").string());
  EXPECT_EQ(c->node_id, DefaultNodeId());
  EXPECT_NE(c->node_id, 0u);
  EXPECT_TRUE(c->replicate);
  EXPECT_TRUE(c->publish);
  EXPECT_EQ(c->scan_max_changes, 512);
  EXPECT_EQ(c->cleanup_interval, Millis(5000));
  EXPECT_EQ(c->sleep_timeout, Millis(0));
  EXPECT_EQ(c->polling_interval, Millis(0));
  EXPECT_TRUE(c->snapshot.enabled);
  EXPECT_EQ(c->snapshot.store, "nats");
  EXPECT_EQ(c->snapshot.interval, Millis(0));
  EXPECT_EQ(c->snapshot.nats.replicas, 1);
  EXPECT_EQ(SnapshotBucket(*c), "marmot-changes-snapshot-store");
  EXPECT_EQ(c->replication_log.shards, 1);
  EXPECT_EQ(c->replication_log.replicas, 1);
  EXPECT_EQ(c->replication_log.max_entries, 1024);
  EXPECT_TRUE(c->replication_log.compress);
  EXPECT_FALSE(c->replication_log.update_existing);
  EXPECT_TRUE(c->nats.urls.empty());
  EXPECT_EQ(c->nats.bind_address, "127.0.0.1:-1");  // deliberate: loopback by default
  EXPECT_EQ(c->nats.subject_prefix, "marmot-change-log");
  EXPECT_EQ(c->nats.stream_prefix, "marmot-changes");
  EXPECT_EQ(c->nats.connect_retries, 5);
  EXPECT_EQ(c->nats.reconnect_wait_seconds, 2);
  EXPECT_FALSE(c->prometheus.enable);
  EXPECT_EQ(c->prometheus.bind, ":3010");
  EXPECT_EQ(c->prometheus.name_space, "marmot");
  EXPECT_FALSE(c->logging.verbose);
  EXPECT_EQ(c->logging.format, "console");
  EXPECT_EQ(c->seq_map_path, (std::filesystem::temp_directory_path() / "seq-map.cbor").string());
}

TEST(ConfigTest, EveryKeyIsRead) {
  TempDir dir;
  std::string toml = R"(
db_path = ")" + dir.File("x.db") +
                     R"("
node_id = 42
seq_map_path = "/x/seq.cbor"
replicate = false
publish = false
scan_max_changes = 99
cleanup_interval = 1
sleep_timeout = 2
polling_interval = 3
[snapshot]
enabled = false
store = "s3"
interval = 4
[snapshot.nats]
replicas = 2
bucket = "b"
[snapshot.s3]
endpoint = "e"
path = "p"
bucket = "sb"
use_ssl = true
access_key = "ak"
secret = "sk"
session_token = "st"
[snapshot.webdav]
url = "https://w/?dir=/s"
[snapshot.sftp]
url = "sftp://u:p@h:22/p"
[replication_log]
shards = 4
replicas = 3
max_entries = 77
compress = false
update_existing = true
[nats]
urls = ["nats://a:1", "nats://b:2"]
bind_address = "0.0.0.0:4222"
server_config = "/etc/n.conf"
subject_prefix = "sp"
stream_prefix = "st"
seed_file = "/s.nk"
user_name = "u"
user_password = "pw"
ca_file = "/ca"
cert_file = "/cert"
key_file = "/key"
connect_retries = 9
reconnect_wait_seconds = 8
[prometheus]
enable = true
bind = "127.0.0.1:9000"
namespace = "ns"
subsystem = "sub"
[logging]
verbose = true
format = "json"
)";
  Result<Config> c = ParseConfigToml(toml, "full.toml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->db_path, dir.File("x.db"));
  EXPECT_EQ(c->node_id, 42u);
  EXPECT_EQ(c->seq_map_path, "/x/seq.cbor");
  EXPECT_FALSE(c->replicate);
  EXPECT_FALSE(c->publish);
  EXPECT_EQ(c->scan_max_changes, 99);
  EXPECT_EQ(c->cleanup_interval, Millis(1));
  EXPECT_EQ(c->sleep_timeout, Millis(2));
  EXPECT_EQ(c->polling_interval, Millis(3));
  EXPECT_FALSE(c->snapshot.enabled);
  EXPECT_EQ(c->snapshot.store, "s3");
  EXPECT_EQ(c->snapshot.interval, Millis(4));
  EXPECT_EQ(c->snapshot.nats.replicas, 2);
  EXPECT_EQ(SnapshotBucket(*c), "b");
  EXPECT_EQ(c->snapshot.s3.endpoint, "e");
  EXPECT_EQ(c->snapshot.s3.path, "p");
  EXPECT_EQ(c->snapshot.s3.bucket, "sb");
  EXPECT_TRUE(c->snapshot.s3.use_ssl);
  EXPECT_EQ(c->snapshot.s3.access_key, "ak");
  EXPECT_EQ(c->snapshot.s3.secret, "sk");
  EXPECT_EQ(c->snapshot.s3.session_token, "st");
  EXPECT_EQ(c->snapshot.webdav.url, "https://w/?dir=/s");
  EXPECT_EQ(c->snapshot.sftp.url, "sftp://u:p@h:22/p");
  EXPECT_EQ(c->replication_log.shards, 4);
  EXPECT_EQ(c->replication_log.replicas, 3);
  EXPECT_EQ(c->replication_log.max_entries, 77);
  EXPECT_FALSE(c->replication_log.compress);
  EXPECT_TRUE(c->replication_log.update_existing);
  EXPECT_EQ(c->nats.urls, (std::vector<std::string>{"nats://a:1", "nats://b:2"}));
  EXPECT_EQ(c->nats.bind_address, "0.0.0.0:4222");
  EXPECT_EQ(c->nats.server_config, "/etc/n.conf");
  EXPECT_EQ(c->nats.subject_prefix, "sp");
  EXPECT_EQ(c->nats.stream_prefix, "st");
  EXPECT_EQ(c->nats.seed_file, "/s.nk");
  EXPECT_EQ(c->nats.user_name, "u");
  EXPECT_EQ(c->nats.user_password, "pw");
  EXPECT_EQ(c->nats.ca_file, "/ca");
  EXPECT_EQ(c->nats.cert_file, "/cert");
  EXPECT_EQ(c->nats.key_file, "/key");
  EXPECT_EQ(c->nats.connect_retries, 9);
  EXPECT_EQ(c->nats.reconnect_wait_seconds, 8);
  EXPECT_TRUE(c->prometheus.enable);
  EXPECT_EQ(c->prometheus.bind, "127.0.0.1:9000");
  EXPECT_EQ(c->prometheus.name_space, "ns");
  EXPECT_EQ(c->prometheus.subsystem, "sub");
  EXPECT_TRUE(c->logging.verbose);
  EXPECT_EQ(c->logging.format, "json");
}

// Each bad config must fail with a message naming the key (or the problem).
struct BadCase {
  const char* toml;
  const char* expect;
};

TEST(ConfigTest, RejectsUnknownKeysWrongTypesAndImpossibleValues) {
  const BadCase cases[] = {
      {"bogus = 1", "unknown key 'bogus'"},
      {"[nats]\nurl = [\"x\"]", "unknown key 'nats.url'"},
      {"[nope]\nx = 1", "unknown key 'nope'"},
      {"[replication_log]\nshards = 0", "replication_log.shards"},
      {"[replication_log]\nshards = \"4\"", "replication_log.shards must be an integer"},
      {"[replication_log]\nmax_entries = 0", "replication_log.max_entries"},
      {"[replication_log]\ncompress = 1", "replication_log.compress must be a boolean"},
      {"scan_max_changes = 0", "scan_max_changes"},
      {"cleanup_interval = -1", "cleanup_interval must not be negative"},
      {"sleep_timeout = -5", "sleep_timeout must not be negative"},
      {"polling_interval = -1", "polling_interval must not be negative"},
      {"polling_interval = 1.5", "polling_interval must be an integer number of milliseconds"},
      {"[snapshot]\ninterval = -1", "snapshot.interval must not be negative"},
      {"[snapshot]\nstore = \"ftp\"", "snapshot.store"},
      {"[snapshot.nats]\nreplicas = 0", "snapshot.nats.replicas"},
      {"[logging]\nformat = \"xml\"", "logging.format"},
      {"[nats]\nurls = \"nats://x\"", "nats.urls must be an array of strings"},
      {"[nats]\nurls = [1]", "nats.urls must be an array of strings"},
      {"[nats]\nbind_address = \"localhost\"", "nats.bind_address"},
      {"[nats]\nbind_address = \"h:99999\"", "nats.bind_address"},
      {"[nats]\nconnect_retries = -1", "nats.connect_retries"},
      {"[nats]\nreconnect_wait_seconds = -1", "nats.reconnect_wait_seconds"},
      {"[nats]\nkey_file = \"/k\"", "nats.cert_file"},
      {"[prometheus]\nbind = \"nope\"", "prometheus.bind"},
      {"node_id = -3", "node_id must be a positive integer"},
      {"db_path = \"/no/such/dir/x.db\"", "directory /no/such/dir does not exist"},
      {"nats = 5", "[nats] must be a table"},
      {"this is not toml", "bad.toml:1"},
  };
  for (const BadCase& c : cases) {
    Result<Config> config = ParseConfigToml(c.toml, "bad.toml");
    ASSERT_FALSE(config.ok()) << "accepted: " << c.toml;
    EXPECT_NE(config.status().message().find(c.expect), std::string::npos)
        << "for " << c.toml << " got: " << config.status().message();
  }
}

TEST(ConfigTest, ErrorsNameTheFileLine) {
  Result<Config> c =
      ParseConfigToml("db_path = \"/tmp/x.db\"\n\n[replication_log]\ncompress = \"yes\"\n", "node.toml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("node.toml:4"), std::string::npos) << c.status().message();
}

TEST(ConfigTest, ReplicasFollowTheOriginalsRules) {
  ReplicationLogConfig log;
  log.shards = 4;
  log.replicas = 0;
  EXPECT_EQ(EffectiveReplicas(log), 3);
  log.replicas = 9;
  EXPECT_EQ(EffectiveReplicas(log), 5);
  log.replicas = 2;
  EXPECT_EQ(EffectiveReplicas(log), 2);
}

TEST(ConfigTest, MissingFileMeansDefaultsAndUnreadableFileIsAnError) {
  TempDir dir;
  Result<Config> missing = LoadConfigFile(dir.File("nope.toml"));
  ASSERT_TRUE(missing.ok()) << missing.status().message();
  EXPECT_EQ(missing->scan_max_changes, 512);
  std::ofstream(dir.File("c.toml")) << "scan_max_changes = 7\n";
  Result<Config> loaded = LoadConfigFile(dir.File("c.toml"));
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->scan_max_changes, 7);
  EXPECT_FALSE(LoadConfigFile(dir.path()).ok());  // a directory is not a config file
}

TEST(FlagsTest, GoStylesAllWork) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"-config", "a.toml", "-cluster-addr", "h:1", "-cluster-peers", "nats://x:1/,dns://y:2/"},
           {"--config", "a.toml", "--cluster-addr", "h:1", "--cluster-peers", "nats://x:1/,dns://y:2/"},
           {"-config=a.toml", "--cluster-addr=h:1", "-cluster-peers=nats://x:1/,dns://y:2/"},
       }) {
    Result<CommandLine> cl = ParseFlags(args);
    ASSERT_TRUE(cl.ok()) << cl.status().message();
    EXPECT_EQ(cl->config_path, "a.toml");
    EXPECT_EQ(cl->cluster_addr, "h:1");
    EXPECT_EQ(cl->cluster_peers, (std::vector<std::string>{"nats://x:1/", "dns://y:2/"}));
  }
}

TEST(FlagsTest, BooleansNodeIdAndErrors) {
  Result<CommandLine> cl =
      ParseFlags({"-cleanup", "--save-snapshot=false", "-node-id", "12", "-leaf-servers", "nats://l:1"});
  ASSERT_TRUE(cl.ok()) << cl.status().message();
  EXPECT_TRUE(cl->cleanup);
  EXPECT_FALSE(cl->save_snapshot);
  EXPECT_EQ(cl->node_id, 12u);
  EXPECT_EQ(cl->leaf_servers, (std::vector<std::string>{"nats://l:1"}));
  Config config = DefaultConfig();
  ApplyFlags(*cl, &config);
  EXPECT_EQ(config.node_id, 12u);
  EXPECT_TRUE(ParseFlags({"-h"})->help);
  EXPECT_TRUE(ParseFlags({"--version"})->version);

  struct Bad {
    std::vector<std::string> args;
    const char* expect;
  };
  for (const Bad& bad : std::vector<Bad>{{{"-nope"}, "unknown flag -nope"},
                                         {{"-config"}, "flag -config needs a value"},
                                         {{"-node-id", "abc"}, "-node-id"},
                                         {{"-node-id", "0"}, "-node-id"},
                                         {{"-cleanup=maybe"}, "-cleanup takes true or false"},
                                         {{"stray"}, "unexpected argument 'stray'"}}) {
    Result<CommandLine> r = ParseFlags(bad.args);
    ASSERT_FALSE(r.ok()) << bad.args[0];
    EXPECT_NE(r.status().message().find(bad.expect), std::string::npos) << r.status().message();
  }
  EXPECT_NE(FlagUsage().find("-cluster-peers"), std::string::npos);
}

}  // namespace
}  // namespace marmot
