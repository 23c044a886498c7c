#include "config/config.h"

#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <variant>

#include "util/fnv.h"
#include "util/host_port.h"

namespace marmot {
namespace fs = std::filesystem;

namespace {

std::string Trim(std::string s) {
  auto space = [](unsigned char c) { return std::isspace(c) != 0; };
  while (!s.empty() && space(s.back())) s.pop_back();
  size_t start = 0;
  while (start < s.size() && space(s[start])) ++start;
  return s.substr(start);
}

// The first line of `path`, trimmed; empty when the file is absent or empty.
std::string FirstLine(const char* path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return Trim(line);
}

// seq_map_path's default: next to the database.
std::string SeqMapPathFor(const std::string& db_path) {
  return (fs::path(db_path).parent_path() / "seq-map.cbor").string();
}

}  // namespace

uint64_t DefaultNodeId() {
  std::string id = FirstLine("/etc/machine-id");
  if (id.empty()) id = FirstLine("/var/lib/dbus/machine-id");
  if (id.empty()) id = LocalHostName();
  uint64_t hash = Fnv1a64(id);
  return hash == 0 ? 1 : hash;  // 0 means "derive", so it can never be a derived id
}

int EffectiveReplicas(const ReplicationLogConfig& log) {
  int64_t replicas = log.replicas < 1 ? log.shards / 2 + 1 : log.replicas;
  return static_cast<int>(std::clamp<int64_t>(replicas, 1, 5));
}

std::string SnapshotBucket(const Config& config) {
  if (!config.snapshot.nats.bucket.empty()) return config.snapshot.nats.bucket;
  return config.nats.stream_prefix + "-snapshot-store";
}

Config DefaultConfig() {
  Config c;
  c.db_path = (fs::temp_directory_path() / "marmot.db").string();
  c.seq_map_path = SeqMapPathFor(c.db_path);
  c.node_id = DefaultNodeId();
  return c;
}

namespace {

// ---------------------------------------------------------------------------------------------
// TOML -> Config: one table of every known key, the field it fills and (by the pointer's type)
// the TOML type it takes.

using Target = std::variant<bool*, int64_t*, std::string*, std::vector<std::string>*, Millis*,
                            std::chrono::seconds*, uint64_t* /* node_id */>;

struct Field {
  const char* key;  // full dotted key
  Target target;
};

std::vector<Field> Fields(Config& c) {
  return {
      {"db_path", &c.db_path},
      {"node_id", &c.node_id},
      {"seq_map_path", &c.seq_map_path},
      {"replicate", &c.replicate},
      {"publish", &c.publish},
      {"scan_max_changes", &c.scan_max_changes},
      {"cleanup_interval", &c.cleanup_interval},
      {"sleep_timeout", &c.sleep_timeout},
      {"polling_interval", &c.polling_interval},
      {"snapshot.enabled", &c.snapshot.enabled},
      {"snapshot.store", &c.snapshot.store},
      {"snapshot.interval", &c.snapshot.interval},
      {"snapshot.keep", &c.snapshot.keep},
      {"snapshot.nats.replicas", &c.snapshot.nats.replicas},
      {"snapshot.nats.bucket", &c.snapshot.nats.bucket},
      {"snapshot.s3.endpoint", &c.snapshot.s3.endpoint},
      {"snapshot.s3.path", &c.snapshot.s3.path},
      {"snapshot.s3.bucket", &c.snapshot.s3.bucket},
      {"snapshot.s3.use_ssl", &c.snapshot.s3.use_ssl},
      {"snapshot.s3.access_key", &c.snapshot.s3.access_key},
      {"snapshot.s3.secret", &c.snapshot.s3.secret},
      {"snapshot.s3.session_token", &c.snapshot.s3.session_token},
      {"snapshot.webdav.url", &c.snapshot.webdav.url},
      {"snapshot.sftp.url", &c.snapshot.sftp.url},
      {"replication_log.shards", &c.replication_log.shards},
      {"replication_log.replicas", &c.replication_log.replicas},
      {"replication_log.max_entries", &c.replication_log.max_entries},
      {"replication_log.compress", &c.replication_log.compress},
      {"replication_log.update_existing", &c.replication_log.update_existing},
      {"replication_log.max_message_bytes", &c.replication_log.max_message_bytes},
      {"replication_log.max_batch_bytes", &c.replication_log.max_batch_bytes},
      {"replication.include", &c.replication.include},
      {"replication.exclude", &c.replication.exclude},
      {"nats.urls", &c.nats.urls},
      {"nats.bind_address", &c.nats.bind_address},
      {"nats.server_config", &c.nats.server_config},
      {"nats.jetstream_domain", &c.nats.jetstream_domain},
      {"nats.subject_prefix", &c.nats.subject_prefix},
      {"nats.stream_prefix", &c.nats.stream_prefix},
      {"nats.seed_file", &c.nats.seed_file},
      {"nats.user_name", &c.nats.user_name},
      {"nats.user_password", &c.nats.user_password},
      {"nats.ca_file", &c.nats.ca_file},
      {"nats.cert_file", &c.nats.cert_file},
      {"nats.key_file", &c.nats.key_file},
      {"nats.connect_retries", &c.nats.connect_retries},
      {"nats.reconnect_wait_seconds", &c.nats.reconnect_wait_seconds},
      {"prometheus.enable", &c.prometheus.enable},
      {"prometheus.bind", &c.prometheus.bind},
      {"prometheus.namespace", &c.prometheus.name_space},
      {"prometheus.subsystem", &c.prometheus.subsystem},
      {"prometheus.health_max_lag", &c.prometheus.health_max_lag},
      {"logging.verbose", &c.logging.verbose},
      {"logging.format", &c.logging.format},
  };
}

// What a target takes, for "KEY must be <this>"; indexed like Target's alternatives.
const char* Expected(const Target& target) {
  static const char* const kExpected[] = {
      "a boolean (true or false)",
      "an integer",
      "a string",
      "an array of strings",
      "an integer number of milliseconds",
      "an integer number of seconds",
      "a positive integer (0: derived from the machine id)",
  };
  return kExpected[target.index()];
}

const char* TypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "floating-point number";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// "config <source>:<line>:<column>" for a value or a key.
template <typename Located>  // toml::node or toml::key: both have source()
std::string Where(const Located& located, const std::string& source) {
  const toml::source_position& at = located.source().begin;
  return "config " + source + ":" + std::to_string(at.line) + ":" + std::to_string(at.column);
}

// Stores `node` into `field`, or says which type the key takes. Only types are checked here;
// ranges are ValidateConfig's, except node_id, whose negative values cannot be stored at all.
Status Assign(const Field& field, const toml::node& node, const std::string& source) {
  const std::string key = field.key;
  // `what` finishes "KEY must be <expected>", e.g. ", not string".
  auto wrong_type = [&](const toml::node& culprit, const std::string& what) {
    return Status::Error(Where(culprit, source) + ": " + key + " must be " + Expected(field.target) + what);
  };
  auto not_type = [&](const toml::node& culprit) {
    return wrong_type(culprit, std::string(", not ") + TypeName(culprit.type()));
  };
  const Target& t = field.target;
  if (bool* const* out = std::get_if<bool*>(&t)) {
    if (!node.is_boolean()) return not_type(node);
    **out = node.as_boolean()->get();
  } else if (std::string* const* out = std::get_if<std::string*>(&t)) {
    if (!node.is_string()) return not_type(node);
    **out = node.as_string()->get();
  } else if (auto* const* out = std::get_if<std::vector<std::string>*>(&t)) {
    const toml::array* array = node.as_array();
    if (array == nullptr) return not_type(node);
    std::vector<std::string> items;
    for (const toml::node& item : *array) {
      if (!item.is_string()) {
        return wrong_type(item,
                          ", but item " + std::to_string(items.size() + 1) + " is " + TypeName(item.type()));
      }
      items.push_back(item.as_string()->get());
    }
    **out = std::move(items);
  } else {
    // The integer kinds.
    if (!node.is_integer()) return not_type(node);
    const int64_t v = node.as_integer()->get();
    if (int64_t* const* out = std::get_if<int64_t*>(&t)) {
      **out = v;
    } else if (Millis* const* out = std::get_if<Millis*>(&t)) {
      **out = Millis(v);
    } else if (auto* const* out = std::get_if<std::chrono::seconds*>(&t)) {
      **out = std::chrono::seconds(v);
    } else if (uint64_t* const* out = std::get_if<uint64_t*>(&t)) {
      if (v < 0) return wrong_type(node, ", not " + std::to_string(v));
      **out = v == 0 ? DefaultNodeId() : static_cast<uint64_t>(v);
    }
  }
  return Status();
}

// What may appear directly in the table at `prefix` ("" = top level): its keys, then its
// sections as "[name]". For the hint after "unknown key".
std::string AllowedAt(const std::vector<Field>& fields, const std::string& prefix) {
  std::vector<std::string> keys, sections;
  const std::string lead = prefix.empty() ? "" : prefix + ".";
  for (const Field& f : fields) {
    std::string_view name = f.key;
    if (name.substr(0, lead.size()) != lead) continue;
    name.remove_prefix(lead.size());
    const size_t dot = name.find('.');
    if (dot == std::string_view::npos) {
      keys.emplace_back(name);
    } else {
      std::string section = "[" + lead + std::string(name.substr(0, dot)) + "]";
      if (std::find(sections.begin(), sections.end(), section) == sections.end()) sections.push_back(section);
    }
  }
  keys.insert(keys.end(), sections.begin(), sections.end());
  std::string out;
  for (const std::string& k : keys) out += (out.empty() ? "" : ", ") + k;
  return out;
}

bool IsSection(const std::vector<Field>& fields, const std::string& key) {
  const std::string lead = key + ".";
  return std::any_of(fields.begin(), fields.end(),
                     [&](const Field& f) { return std::string_view(f.key).substr(0, lead.size()) == lead; });
}

// Assigns every key of `table` (found at `prefix`) to its field, descending into sections.
Status Walk(const toml::table& table, const std::string& prefix, const std::vector<Field>& fields,
            const std::string& source) {
  for (const auto& [name, node] : table) {
    const std::string key = prefix.empty() ? std::string(name.str()) : prefix + "." + std::string(name.str());
    auto field = std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return key == f.key; });
    if (field != fields.end()) {
      MARMOT_RETURN_IF_ERROR(Assign(*field, node, source));
    } else if (IsSection(fields, key)) {
      if (!node.is_table()) {
        return Status::Error(Where(node, source) + ": [" + key + "] must be a table (section), not " +
                             TypeName(node.type()));
      }
      MARMOT_RETURN_IF_ERROR(Walk(*node.as_table(), key, fields, source));
    } else {
      const std::string what =
          node.is_table() ? "unknown section [" + key + "]" : "unknown key '" + key + "'";
      const std::string here = prefix.empty() ? "at the top level" : "in [" + prefix + "]";
      return Status::Error(Where(name, source) + ": " + what + " (allowed " + here + ": " +
                           AllowedAt(fields, prefix) + ")");
    }
  }
  return Status();
}

// ---------------------------------------------------------------------------------------------
// Value checks. Messages start with the key and its value and say what is allowed; the caller
// puts "config:" or "config <file>:" in front.

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

Status AtLeast(const char* key, int64_t value, int64_t min) {
  if (value >= min) return Status();
  return Status::Error(std::string(key) + " = " + std::to_string(value) + " must be at least " +
                       std::to_string(min));
}

Status NotNegative(const char* key, int64_t value, const char* unit) {
  if (value >= 0) return Status();
  return Status::Error(std::string(key) + " = " + std::to_string(value) + " must not be negative (" + unit +
                       ", 0 or more)");
}

Status CheckHostPort(const char* key, const std::string& value) {
  if (ParseHostPort(value).ok()) return Status();  // util/host_port.h has the syntax
  return Status::Error(std::string(key) + " = " + Quoted(value) +
                       " must be host:port with port 0..65535 or -1 (random); the host may be empty "
                       "(all interfaces), an IPv6 host goes in brackets ([::1]:4222)");
}

// Stream and subject names end up in JetStream API subjects, where these characters break them.
Status CheckNatsName(const char* key, const std::string& value, const char* forbidden) {
  if (value.empty()) return Status::Error(std::string(key) + " must not be empty");
  for (unsigned char c : value) {
    if (std::isspace(c) || std::strchr(forbidden, c) != nullptr) {
      return Status::Error(std::string(key) + " = " + Quoted(value) +
                           " must not contain white space or any of: " + forbidden);
    }
  }
  return Status();
}

Status CheckValues(const Config& c) {
  // Top level.
  if (c.db_path.empty()) return Status::Error("db_path must not be empty");
  {
    std::error_code ec;
    const fs::path dir = fs::absolute(c.db_path, ec).parent_path();
    if (!fs::is_directory(dir, ec)) {
      return Status::Error("db_path = " + Quoted(c.db_path) + ": directory " + dir.string() +
                           " does not exist (marmot creates the database file, not its directory)");
    }
    if (fs::is_directory(c.db_path, ec)) {
      return Status::Error("db_path = " + Quoted(c.db_path) +
                           " is a directory; it must name a database file");
    }
  }
  MARMOT_RETURN_IF_ERROR(AtLeast("scan_max_changes", c.scan_max_changes, 1));
  MARMOT_RETURN_IF_ERROR(NotNegative("cleanup_interval", c.cleanup_interval.count(), "milliseconds"));
  MARMOT_RETURN_IF_ERROR(NotNegative("sleep_timeout", c.sleep_timeout.count(), "milliseconds, 0 = off"));
  MARMOT_RETURN_IF_ERROR(
      NotNegative("polling_interval", c.polling_interval.count(), "milliseconds, 0 = off"));

  // [snapshot]
  const std::vector<std::string> stores = {"nats", "s3", "webdav", "sftp"};
  if (std::find(stores.begin(), stores.end(), c.snapshot.store) == stores.end()) {
    return Status::Error("snapshot.store = " + Quoted(c.snapshot.store) +
                         " must be one of nats, s3, webdav, sftp");
  }
  MARMOT_RETURN_IF_ERROR(
      NotNegative("snapshot.interval", c.snapshot.interval.count(), "milliseconds, 0 = off"));
  MARMOT_RETURN_IF_ERROR(AtLeast("snapshot.keep", c.snapshot.keep, 1));
  MARMOT_RETURN_IF_ERROR(AtLeast("snapshot.nats.replicas", c.snapshot.nats.replicas, 1));
  if (c.snapshot.nats.replicas > 5) {
    return Status::Error("snapshot.nats.replicas = " + std::to_string(c.snapshot.nats.replicas) +
                         " must be at most 5 (JetStream's limit)");
  }

  // [replication_log]; replicas takes any value (EffectiveReplicas maps it).
  MARMOT_RETURN_IF_ERROR(AtLeast("replication_log.shards", c.replication_log.shards, 1));
  if (c.replication_log.shards > 1024) {
    return Status::Error("replication_log.shards = " + std::to_string(c.replication_log.shards) +
                         " must be at most 1024 (each shard is a stream and a consumer per node)");
  }
  MARMOT_RETURN_IF_ERROR(AtLeast("replication_log.max_entries", c.replication_log.max_entries, 1));
  MARMOT_RETURN_IF_ERROR(
      AtLeast("replication_log.max_message_bytes", c.replication_log.max_message_bytes, 1 << 20));
  MARMOT_RETURN_IF_ERROR(
      AtLeast("replication_log.max_batch_bytes", c.replication_log.max_batch_bytes, 1 << 20));

  // [replication]
  for (const auto& [key, patterns] :
       {std::pair<const char*, const std::vector<std::string>&>{"replication.include", c.replication.include},
        {"replication.exclude", c.replication.exclude}}) {
    for (const std::string& pattern : patterns) {
      if (pattern.empty()) return Status::Error(std::string(key) + " has an empty pattern; remove it");
    }
  }

  // [nats]
  MARMOT_RETURN_IF_ERROR(CheckHostPort("nats.bind_address", c.nats.bind_address));
  MARMOT_RETURN_IF_ERROR(CheckNatsName("nats.stream_prefix", c.nats.stream_prefix, ".*>/\\"));
  MARMOT_RETURN_IF_ERROR(CheckNatsName("nats.jetstream_domain", c.nats.jetstream_domain, ".*>/\\\"'"));
  MARMOT_RETURN_IF_ERROR(CheckNatsName("nats.subject_prefix", c.nats.subject_prefix, "*>"));
  MARMOT_RETURN_IF_ERROR(NotNegative("nats.connect_retries", c.nats.connect_retries, "attempts"));
  MARMOT_RETURN_IF_ERROR(
      NotNegative("nats.reconnect_wait_seconds", c.nats.reconnect_wait_seconds.count(), "seconds"));
  if (c.nats.cert_file.empty() != c.nats.key_file.empty()) {
    return Status::Error(std::string(c.nats.cert_file.empty() ? "nats.key_file" : "nats.cert_file") +
                         " is set without " +
                         (c.nats.cert_file.empty() ? "nats.cert_file" : "nats.key_file") +
                         "; a TLS client certificate needs both nats.cert_file and nats.key_file");
  }

  // [prometheus], [logging]
  MARMOT_RETURN_IF_ERROR(CheckHostPort("prometheus.bind", c.prometheus.bind));
  MARMOT_RETURN_IF_ERROR(AtLeast("prometheus.health_max_lag", c.prometheus.health_max_lag, 0));
  for (const auto& [key, part] :
       {std::pair<const char*, const std::string&>{"prometheus.namespace", c.prometheus.name_space},
        {"prometheus.subsystem", c.prometheus.subsystem}}) {
    // Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; the parts are joined with '_'.
    bool valid = part.empty() || !std::isdigit(static_cast<unsigned char>(part[0]));
    for (char ch : part) valid = valid && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_');
    if (!valid) {
      return Status::Error(
          std::string(key) + " = " + Quoted(part) +
          " must consist of letters, digits and '_' and not start with a digit (it is part of "
          "every metric name)");
    }
  }
  if (c.logging.format != "console" && c.logging.format != "json") {
    return Status::Error("logging.format = " + Quoted(c.logging.format) + " must be console or json");
  }
  return Status();
}

}  // namespace

Status ValidateConfig(const Config& config) { return CheckValues(config).WithContext("config"); }

Result<Config> ParseConfigToml(std::string_view text, const std::string& source_name) {
  Config c = DefaultConfig();
  c.seq_map_path.clear();  // derived below from the db_path the text may set
  toml::table table;
  try {
    table = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    const toml::source_position& at = e.source().begin;
    return Status::Error("config " + source_name + ":" + std::to_string(at.line) + ":" +
                         std::to_string(at.column) + ": " + std::string(e.description()));
  }
  MARMOT_RETURN_IF_ERROR(Walk(table, "", Fields(c), source_name));
  if (c.seq_map_path.empty()) c.seq_map_path = SeqMapPathFor(c.db_path);
  MARMOT_RETURN_IF_ERROR(CheckValues(c).WithContext("config " + source_name));
  return c;
}

Result<Config> LoadConfigFile(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (status.type() == fs::file_type::not_found) return ParseConfigToml("", path);  // v0.8: all defaults
  if (ec) return Status::Error("config " + path + ": cannot look at it: " + ec.message());
  if (fs::is_directory(status)) return Status::Error("config " + path + ": is a directory, not a TOML file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error("config " + path + ": cannot read it: " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::Error("config " + path + ": read error");
  return ParseConfigToml(text.str(), path);
}

}  // namespace marmot
