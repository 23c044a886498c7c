#include "config/config.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace marmot {
namespace fs = std::filesystem;

uint64_t DefaultNodeId() {
  std::string id;
  for (const char* path : {"/etc/machine-id", "/var/lib/dbus/machine-id"}) {
    std::ifstream in(path);
    if (in && std::getline(in, id) && !id.empty()) break;
  }
  if (id.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    id = host;
  }
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : id) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h == 0 ? 1 : h;
}

int EffectiveReplicas(const ReplicationLogConfig& log) {
  int64_t r = log.replicas < 1 ? log.shards / 2 + 1 : log.replicas;
  return static_cast<int>(std::min<int64_t>(r, 5));
}

std::string SnapshotBucket(const Config& c) {
  return c.snapshot.nats.bucket.empty() ? c.nats.stream_prefix + "-snapshot-store" : c.snapshot.nats.bucket;
}

Config DefaultConfig() {
  Config c;
  c.db_path = (fs::temp_directory_path() / "marmot.db").string();
  c.node_id = DefaultNodeId();
  return c;
}

namespace {

// One known key: where it goes and which TOML type it takes.
struct Field {
  enum Kind { kBool, kInt, kString, kStringList, kMillis, kNodeId };
  Kind kind;
  void* target;
};

std::map<std::string, Field> Fields(Config& c) {
  return {
      {"db_path", {Field::kString, &c.db_path}},
      {"node_id", {Field::kNodeId, &c.node_id}},
      {"seq_map_path", {Field::kString, &c.seq_map_path}},
      {"replicate", {Field::kBool, &c.replicate}},
      {"publish", {Field::kBool, &c.publish}},
      {"scan_max_changes", {Field::kInt, &c.scan_max_changes}},
      {"cleanup_interval", {Field::kMillis, &c.cleanup_interval}},
      {"sleep_timeout", {Field::kMillis, &c.sleep_timeout}},
      {"polling_interval", {Field::kMillis, &c.polling_interval}},
      {"snapshot.enabled", {Field::kBool, &c.snapshot.enabled}},
      {"snapshot.store", {Field::kString, &c.snapshot.store}},
      {"snapshot.interval", {Field::kMillis, &c.snapshot.interval}},
      {"snapshot.nats.replicas", {Field::kInt, &c.snapshot.nats.replicas}},
      {"snapshot.nats.bucket", {Field::kString, &c.snapshot.nats.bucket}},
      {"snapshot.s3.endpoint", {Field::kString, &c.snapshot.s3.endpoint}},
      {"snapshot.s3.path", {Field::kString, &c.snapshot.s3.path}},
      {"snapshot.s3.bucket", {Field::kString, &c.snapshot.s3.bucket}},
      {"snapshot.s3.use_ssl", {Field::kBool, &c.snapshot.s3.use_ssl}},
      {"snapshot.s3.access_key", {Field::kString, &c.snapshot.s3.access_key}},
      {"snapshot.s3.secret", {Field::kString, &c.snapshot.s3.secret}},
      {"snapshot.s3.session_token", {Field::kString, &c.snapshot.s3.session_token}},
      {"snapshot.webdav.url", {Field::kString, &c.snapshot.webdav.url}},
      {"snapshot.sftp.url", {Field::kString, &c.snapshot.sftp.url}},
      {"replication_log.shards", {Field::kInt, &c.replication_log.shards}},
      {"replication_log.replicas", {Field::kInt, &c.replication_log.replicas}},
      {"replication_log.max_entries", {Field::kInt, &c.replication_log.max_entries}},
      {"replication_log.compress", {Field::kBool, &c.replication_log.compress}},
      {"replication_log.update_existing", {Field::kBool, &c.replication_log.update_existing}},
      {"nats.urls", {Field::kStringList, &c.nats.urls}},
      {"nats.bind_address", {Field::kString, &c.nats.bind_address}},
      {"nats.server_config", {Field::kString, &c.nats.server_config}},
      {"nats.subject_prefix", {Field::kString, &c.nats.subject_prefix}},
      {"nats.stream_prefix", {Field::kString, &c.nats.stream_prefix}},
      {"nats.seed_file", {Field::kString, &c.nats.seed_file}},
      {"nats.user_name", {Field::kString, &c.nats.user_name}},
      {"nats.user_password", {Field::kString, &c.nats.user_password}},
      {"nats.ca_file", {Field::kString, &c.nats.ca_file}},
      {"nats.cert_file", {Field::kString, &c.nats.cert_file}},
      {"nats.key_file", {Field::kString, &c.nats.key_file}},
      {"nats.connect_retries", {Field::kInt, &c.nats.connect_retries}},
      {"nats.reconnect_wait_seconds", {Field::kInt, &c.nats.reconnect_wait_seconds}},
      {"prometheus.enable", {Field::kBool, &c.prometheus.enable}},
      {"prometheus.bind", {Field::kString, &c.prometheus.bind}},
      {"prometheus.namespace", {Field::kString, &c.prometheus.name_space}},
      {"prometheus.subsystem", {Field::kString, &c.prometheus.subsystem}},
      {"logging.verbose", {Field::kBool, &c.logging.verbose}},
      {"logging.format", {Field::kString, &c.logging.format}},
  };
}

const char* KindName(Field::Kind k) {
  switch (k) {
    case Field::kBool:
      return "a boolean (true or false)";
    case Field::kInt:
      return "an integer";
    case Field::kString:
      return "a string";
    case Field::kStringList:
      return "an array of strings";
    case Field::kMillis:
      return "an integer number of milliseconds";
    case Field::kNodeId:
      return "a positive integer";
  }
  return "?";
}

std::string Where(const toml::node& node, const std::string& source) {
  const toml::source_region& r = node.source();
  return source + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

Status Assign(const Field& f, const toml::node& node, const std::string& key, const std::string& source) {
  auto wrong = [&] {
    return Status::Error("config " + Where(node, source) + ": " + key + " must be " + KindName(f.kind) +
                         ", not " +
                         std::string(toml::impl::node_type_friendly_names[static_cast<int>(node.type())]));
  };
  switch (f.kind) {
    case Field::kBool:
      if (!node.is_boolean()) return wrong();
      *static_cast<bool*>(f.target) = node.as_boolean()->get();
      return Status();
    case Field::kString:
      if (!node.is_string()) return wrong();
      *static_cast<std::string*>(f.target) = node.as_string()->get();
      return Status();
    case Field::kInt:
    case Field::kMillis:
    case Field::kNodeId: {
      if (!node.is_integer()) return wrong();
      int64_t v = node.as_integer()->get();
      if (f.kind == Field::kInt) *static_cast<int64_t*>(f.target) = v;
      if (f.kind == Field::kMillis) {
        if (v < 0)
          return Status::Error("config " + Where(node, source) + ": " + key +
                               " must not be negative (0 turns it off)");
        *static_cast<Millis*>(f.target) = Millis(v);
      }
      if (f.kind == Field::kNodeId) {
        if (v < 0)
          return Status::Error("config " + Where(node, source) + ": " + key +
                               " must be a positive integer (0 or unset: derived from the machine id)");
        *static_cast<uint64_t*>(f.target) = v == 0 ? DefaultNodeId() : static_cast<uint64_t>(v);
      }
      return Status();
    }
    case Field::kStringList: {
      const toml::array* arr = node.as_array();
      if (!arr) return wrong();
      std::vector<std::string> out;
      for (const toml::node& item : *arr) {
        if (!item.is_string()) return wrong();
        out.push_back(item.as_string()->get());
      }
      *static_cast<std::vector<std::string>*>(f.target) = std::move(out);
      return Status();
    }
  }
  return Status();
}

// Walks `table` (at `prefix`) and assigns every key to its field; unknown keys are errors.
Status Walk(const toml::table& table, const std::string& prefix, const std::map<std::string, Field>& fields,
            const std::string& source) {
  for (const auto& [k, node] : table) {
    std::string key = prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
    auto field = fields.find(key);
    if (field != fields.end()) {
      MARMOT_RETURN_IF_ERROR(Assign(field->second, node, key, source));
      continue;
    }
    bool is_section = std::any_of(fields.begin(), fields.end(),
                                  [&](const auto& f) { return f.first.rfind(key + ".", 0) == 0; });
    if (is_section && node.is_table()) {
      MARMOT_RETURN_IF_ERROR(Walk(*node.as_table(), key, fields, source));
      continue;
    }
    if (is_section)
      return Status::Error("config " + Where(node, source) + ": [" + key + "] must be a table (section)");
    std::string known;
    for (const auto& [name, f] : fields) {
      size_t dot = name.rfind('.');
      std::string parent = dot == std::string::npos ? "" : name.substr(0, dot);
      if (parent == prefix) known += (known.empty() ? "" : ", ") + name;
    }
    return Status::Error("config " + Where(node, source) + ": unknown key '" + key + "'" +
                         (known.empty() ? "" : " (known keys here: " + known + ")"));
  }
  return Status();
}

Status CheckHostPort(const std::string& key, const std::string& value) {
  size_t colon = value.rfind(':');
  bool ok = colon != std::string::npos;
  if (ok) {
    std::string port = value.substr(colon + 1);
    ok = !port.empty() && (port == "-1" || std::all_of(port.begin(), port.end(), ::isdigit));
    if (ok && port != "-1") ok = port.size() <= 5 && std::stoi(port) <= 65535;
  }
  return ok ? Status()
            : Status::Error("config: " + key + " = \"" + value +
                            "\" must be host:port (port 0-65535, or -1 for a random one; host may be empty)");
}

}  // namespace

Status ValidateConfig(const Config& c) {
  auto positive = [](const char* key, int64_t v) {
    return v >= 1 ? Status()
                  : Status::Error(std::string("config: ") + key + " = " + std::to_string(v) +
                                  " must be at least 1");
  };
  MARMOT_RETURN_IF_ERROR(positive("replication_log.shards", c.replication_log.shards));
  MARMOT_RETURN_IF_ERROR(positive("replication_log.max_entries", c.replication_log.max_entries));
  MARMOT_RETURN_IF_ERROR(positive("scan_max_changes", c.scan_max_changes));
  MARMOT_RETURN_IF_ERROR(positive("snapshot.nats.replicas", c.snapshot.nats.replicas));
  if (c.replication_log.shards > 1024)
    return Status::Error("config: replication_log.shards must be at most 1024");
  if (c.nats.connect_retries < 0) return Status::Error("config: nats.connect_retries must not be negative");
  if (c.nats.reconnect_wait_seconds < 0)
    return Status::Error("config: nats.reconnect_wait_seconds must not be negative");
  const std::vector<std::string> stores = {"nats", "s3", "webdav", "sftp"};
  if (std::find(stores.begin(), stores.end(), c.snapshot.store) == stores.end()) {
    return Status::Error("config: snapshot.store = \"" + c.snapshot.store +
                         "\" must be one of nats, s3, webdav, sftp");
  }
  if (c.logging.format != "console" && c.logging.format != "json") {
    return Status::Error("config: logging.format = \"" + c.logging.format + "\" must be console or json");
  }
  if (c.db_path.empty()) return Status::Error("config: db_path must not be empty");
  fs::path dir = fs::absolute(c.db_path).parent_path();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status::Error("config: db_path = \"" + c.db_path + "\": directory " + dir.string() +
                         " does not exist");
  }
  MARMOT_RETURN_IF_ERROR(CheckHostPort("nats.bind_address", c.nats.bind_address));
  MARMOT_RETURN_IF_ERROR(CheckHostPort("prometheus.bind", c.prometheus.bind));
  if (c.nats.stream_prefix.empty() || c.nats.subject_prefix.empty()) {
    return Status::Error("config: nats.stream_prefix and nats.subject_prefix must not be empty");
  }
  if (!c.nats.key_file.empty() && c.nats.cert_file.empty()) {
    return Status::Error(
        "config: nats.key_file is set but nats.cert_file is not; TLS client authentication needs both");
  }
  return Status();
}

Result<Config> ParseConfigToml(std::string_view text, const std::string& source) {
  Config c = DefaultConfig();
  toml::table table;
  try {
    table = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return Status::Error("config " + source + ":" + std::to_string(where.line) + ":" +
                         std::to_string(where.column) + ": " + std::string(e.description()));
  }
  MARMOT_RETURN_IF_ERROR(Walk(table, "", Fields(c), source));
  if (c.seq_map_path.empty()) c.seq_map_path = (fs::path(c.db_path).parent_path() / "seq-map.cbor").string();
  MARMOT_RETURN_IF_ERROR(ValidateConfig(c));
  return c;
}

Result<Config> LoadConfigFile(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return ParseConfigToml("", path);
  if (fs::is_directory(path, ec))
    return Status::Error("config " + path + ": is a directory, not a TOML file");
  std::ifstream in(path);
  if (!in) return Status::Error("config " + path + ": cannot read it (check its permissions)");
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfigToml(text.str(), path);
}

}  // namespace marmot
