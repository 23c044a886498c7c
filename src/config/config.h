// Config: every setting of a marmot node, read once at start from one TOML file (plus the -node-id
// flag), validated once, and then handed out piece by piece: each component gets the part it needs
// (NodeOptions, EmbeddedNatsOptions, ...), never the whole Config and never through a global.
//
// Keys, meanings and code defaults are those of Marmot v0.8 (docs/CONFIG.md lists them all), with
// one deliberate difference: [nats] bind_address defaults to "127.0.0.1:-1" (loopback, random
// port) instead of v0.8's ":-1" (every interface), so a node never exposes an unauthenticated NATS
// server to the network unless told to (DESIGN property 9).
//
// Parsing is strict, unlike v0.8: an unknown key or section, a value of the wrong TOML type, or an
// impossible value is an error whose message names the file, the full dotted key (for example
// "replication_log.shards") and what is allowed. main turns such an error into exit code 2.
//
// Types: booleans must be TOML booleans (1 is not true); counts and durations must be TOML
// integers (5.0 and "5s" are rejected). Durations whose key has no unit are milliseconds.
//
// Thread safety: the functions here touch no shared state; a Config is a plain value.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace marmot {

using Millis = std::chrono::milliseconds;

// [snapshot.nats]: snapshots in a NATS object store bucket.
struct NatsSnapshotConfig {
  int64_t replicas = 1;  // object store replicas, 1..5 (JetStream's limit)
  std::string bucket;    // empty: "<nats.stream_prefix>-snapshot-store" (see SnapshotBucket)
};

// [snapshot.s3]: snapshots in an S3-compatible bucket.
struct S3SnapshotConfig {
  std::string endpoint;  // host[:port] of the S3 service
  std::string path;      // key prefix inside the bucket
  std::string bucket;
  bool use_ssl = false;  // https instead of http
  std::string access_key;
  std::string secret;         // never logged
  std::string session_token;  // for temporary credentials; never logged
};

// [snapshot.webdav]: e.g. "https://host/path?dir=/snapshots&login=USER&secret=PASS".
struct WebDavSnapshotConfig {
  std::string url;
};

// [snapshot.sftp]: e.g. "sftp://user:password@host:port/path".
struct SftpSnapshotConfig {
  std::string url;
};

// [snapshot]
struct SnapshotConfig {
  bool enabled = true;
  std::string store = "nats";  // one of: nats, s3, webdav, sftp
  Millis interval{0};          // periodic snapshot; 0 = off
  int64_t keep = 3;            // addition to v0.8: snapshots kept in the store, >= 1
  NatsSnapshotConfig nats;
  S3SnapshotConfig s3;
  WebDavSnapshotConfig webdav;
  SftpSnapshotConfig sftp;
};

// [replication_log]: the JetStream streams that carry the changes.
struct ReplicationLogConfig {
  int64_t shards = 1;            // number of streams, 1..1024
  int64_t replicas = 1;          // as written; use EffectiveReplicas() for the value to apply
  int64_t max_entries = 1024;    // messages kept per stream (oldest discarded), >= 1
  bool compress = true;          // zstd payloads; streams are named "<prefix>-c-N"
  bool update_existing = false;  // reconfigure existing streams whose settings differ
  // Additions to v0.8 (bounds against hostile or runaway messages; docs/CONFIG.md):
  int64_t max_message_bytes = 64 << 20;  // decoded size of one message or chunked row, >= 1 MiB
  int64_t max_batch_bytes = 64 << 20;    // decoded bytes applied in one transaction, >= 1 MiB
};

// [replication] (an addition to v0.8; docs/SCHEMA.md): which tables are replicated. A table is
// replicated when its name matches a pattern of `include` and none of `exclude`. Patterns are
// globs (`*`, `?`, `[...]`), matched without regard to case, as SQLite compares table names.
struct ReplicationConfig {
  std::vector<std::string> include{"*"};
  std::vector<std::string> exclude;
};

// [nats]
struct NatsConfig {
  std::vector<std::string> urls;  // servers to join; empty: start the embedded server
  // The embedded server's client listener, "host:port"; port -1 = random. v0.8's code default is
  // ":-1" (all interfaces); ours is loopback (see the file comment).
  std::string bind_address = "127.0.0.1:-1";
  std::string server_config;  // nats-server config file for the embedded server
  // The JetStream domain of embedded servers that form a cluster; a leaf-only node reaches its
  // hub's JetStream through it (docs/CLUSTER.md, leaf nodes).
  std::string jetstream_domain = "marmot";
  std::string subject_prefix = "marmot-change-log";
  std::string stream_prefix = "marmot-changes";
  std::string seed_file;  // NKey user seed file
  std::string user_name;
  std::string user_password;                       // never logged
  std::string ca_file;                             // TLS: CA certificates to trust
  std::string cert_file;                           // TLS client certificate (needs key_file)
  std::string key_file;                            // TLS client key (needs cert_file)
  int64_t connect_retries = 5;                     // connection attempts at start, >= 0
  std::chrono::seconds reconnect_wait_seconds{2};  // between attempts and reconnects, >= 0
};

// [prometheus]
struct PrometheusConfig {
  bool enable = false;
  // "host:port"; an empty host means every interface. v0.8's default is ":3010" (every interface):
  // ours is loopback, like [nats] bind_address.
  std::string bind = "127.0.0.1:3010";
  std::string name_space = "marmot";  // the TOML key is "namespace" (a C++ keyword)
  std::string subsystem;
  // Addition to v0.8: /health answers 503 while a stream has more messages than this not yet applied.
  int64_t health_max_lag = 1000;
};

// [logging]
struct LoggingConfig {
  bool verbose = false;            // debug level
  std::string format = "console";  // one of: console, json
};

// The whole file. Field names are the TOML key names (except prometheus.name_space).
struct Config {
  std::string db_path;  // default: <temp dir>/marmot.db; its directory must exist
  // Default (or 0 in the file): DefaultNodeId(). The file takes a TOML integer, i.e. at most
  // 2^63-1; larger ids can be given with the -node-id flag.
  uint64_t node_id = 0;
  // Default: "seq-map.cbor" in db_path's directory. Accepted for compatibility only: marmot keeps
  // stream positions in the database itself, in the same transaction as the rows they cover.
  std::string seq_map_path;
  bool replicate = true;           // apply changes from the streams
  bool publish = true;             // capture and publish local changes
  int64_t scan_max_changes = 512;  // change-log rows read per batch, >= 1
  Millis cleanup_interval{5000};   // how often published change-log rows are deleted, >= 0
  Millis sleep_timeout{0};         // idle this long: snapshot, then exit; 0 = off
  Millis polling_interval{0};      // also poll the change log this often; 0 = off
  SnapshotConfig snapshot;
  ReplicationLogConfig replication_log;
  ReplicationConfig replication;
  NatsConfig nats;
  PrometheusConfig prometheus;
  LoggingConfig logging;
};

// Returns the code defaults, with the computed ones filled in: db_path, seq_map_path next to it,
// and node_id = DefaultNodeId().
Config DefaultConfig();

// Parses TOML `text` over DefaultConfig() and validates the result. `source_name` (normally the
// file path) names the source in error messages, which read like
//   "config node.toml:4:12: replication_log.compress must be a boolean (true or false), not string"
//   "config node.toml: replication_log.shards = 0 must be at least 1"
// A seq_map_path the text leaves unset follows the db_path the text sets; node_id 0 or unset
// becomes DefaultNodeId().
Result<Config> ParseConfigToml(std::string_view text, const std::string& source_name);

// Reads and parses the file at `path`. A missing file means all defaults (as in v0.8); a path that
// exists but cannot be read (a directory, no permission) is an error naming it.
Result<Config> LoadConfigFile(const std::string& path);

// The value checks that ParseConfigToml also runs; for a Config built or changed in code. Errors
// read "config: <key> = <value> must ...". node_id 0 is accepted (it means "derive").
Status ValidateConfig(const Config& config);

// 64-bit FNV-1a of the machine id: the first line of /etc/machine-id, else of
// /var/lib/dbus/machine-id, else the host name. Stable across restarts of one machine; never 0.
uint64_t DefaultNodeId();

// The stream replica count to apply, by v0.8's rule: replicas < 1 means shards/2 + 1, and
// anything above 5 (JetStream's maximum) is capped at 5.
int EffectiveReplicas(const ReplicationLogConfig& log);

// The object store bucket for snapshots: snapshot.nats.bucket, or when that is empty
// "<nats.stream_prefix>-snapshot-store".
std::string SnapshotBucket(const Config& config);

}  // namespace marmot
