// Config: every setting of a marmot node, read once at start from the TOML file (and a few flags),
// validated, and then handed to each component as the part it needs.
//
// Keys, meanings and defaults are those of Marmot v0.8 (docs/CONFIG.md lists them all), with one
// deliberate difference: [nats] bind_address defaults to loopback. Parsing is strict: an unknown
// key or section, a value of the wrong type, or an impossible value is an error that names the
// full key (e.g. "replication_log.shards") and says what is allowed; main exits with code 2.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/status.h"

namespace marmot {

using Millis = std::chrono::milliseconds;

struct SnapshotConfig {
  bool enabled = true;
  std::string store = "nats";  // nats | s3 | webdav | sftp
  Millis interval{0};          // 0: no periodic snapshot
  struct {
    int64_t replicas = 1;
    std::string bucket;  // empty: <stream_prefix>-snapshot-store
  } nats;
  struct {
    std::string endpoint, path, bucket;
    bool use_ssl = false;
    std::string access_key, secret, session_token;
  } s3;
  struct {
    std::string url;
  } webdav;
  struct {
    std::string url;
  } sftp;
};

struct ReplicationLogConfig {
  int64_t shards = 1;
  int64_t replicas = 1;  // < 1 means shards/2 + 1; capped at 5 (EffectiveReplicas)
  int64_t max_entries = 1024;
  bool compress = true;
  bool update_existing = false;
};

struct NatsConfig {
  std::vector<std::string> urls;              // empty: start the embedded server
  std::string bind_address = "127.0.0.1:-1";  // embedded server's client listener
  std::string server_config;
  std::string subject_prefix = "marmot-change-log";
  std::string stream_prefix = "marmot-changes";
  std::string seed_file, user_name, user_password;
  std::string ca_file, cert_file, key_file;
  int64_t connect_retries = 5;
  int64_t reconnect_wait_seconds = 2;
};

struct PrometheusConfig {
  bool enable = false;
  std::string bind = ":3010";
  std::string name_space = "marmot";  // the TOML key is "namespace"
  std::string subsystem;
};

struct LoggingConfig {
  bool verbose = false;
  std::string format = "console";  // console | json
};

struct Config {
  std::string db_path;       // default: <temp dir>/marmot.db
  uint64_t node_id = 0;      // 0: DefaultNodeId()
  std::string seq_map_path;  // accepted for compatibility; positions live in the database
  bool replicate = true;
  bool publish = true;
  int64_t scan_max_changes = 512;
  Millis cleanup_interval{5000};
  Millis sleep_timeout{0};
  Millis polling_interval{0};
  SnapshotConfig snapshot;
  ReplicationLogConfig replication_log;
  NatsConfig nats;
  PrometheusConfig prometheus;
  LoggingConfig logging;
};

// The defaults, with db_path, seq_map_path and node_id filled in.
Config DefaultConfig();

// Parses TOML `text` (named `source` in errors) over the defaults, then validates.
Result<Config> ParseConfigToml(std::string_view text, const std::string& source);
// Reads and parses `path`; a missing file means all defaults (as in v0.8).
Result<Config> LoadConfigFile(const std::string& path);
// The value checks (also run by the two functions above).
Status ValidateConfig(const Config& config);

// 64-bit FNV-1a of the machine id (/etc/machine-id, /var/lib/dbus/machine-id, or the host name).
uint64_t DefaultNodeId();
int EffectiveReplicas(const ReplicationLogConfig& log);
std::string SnapshotBucket(const Config& config);

}  // namespace marmot
