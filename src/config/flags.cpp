#include "config/flags.h"

#include <functional>
#include <map>

namespace marmot {
namespace {

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

struct Flag {
  bool boolean;
  const char* help;
  std::function<Status(CommandLine*, const std::string&)> set;
};

const std::map<std::string, Flag>& Flags() {
  static const std::map<std::string, Flag> kFlags = {
      {"config",
       {false, "TOML config file (missing file: all defaults)",
        [](CommandLine* c, const std::string& v) {
          c->config_path = v;
          return Status();
        }}},
      {"cleanup",
       {true, "remove marmot's triggers and tables from the database, then exit",
        [](CommandLine* c, const std::string& v) {
          c->cleanup = v == "true";
          return Status();
        }}},
      {"save-snapshot",
       {true, "save a snapshot, upload it, then exit",
        [](CommandLine* c, const std::string& v) {
          c->save_snapshot = v == "true";
          return Status();
        }}},
      {"cluster-addr",
       {false, "embedded NATS: cluster listener HOST:PORT (leaf-node listener on PORT+1)",
        [](CommandLine* c, const std::string& v) {
          c->cluster_addr = v;
          return Status();
        }}},
      {"cluster-peers",
       {false,
        "embedded NATS: comma-separated nats://host:port/ or dns://name:port/?min=N&interval_ms=M routes",
        [](CommandLine* c, const std::string& v) {
          c->cluster_peers = SplitList(v);
          return Status();
        }}},
      {"leaf-servers",
       {false, "embedded NATS: comma-separated leaf-node remotes (nats:// or dns:// as above)",
        [](CommandLine* c, const std::string& v) {
          c->leaf_servers = SplitList(v);
          return Status();
        }}},
      {"node-id",
       {false, "node id, overriding the config's node_id",
        [](CommandLine* c, const std::string& v) {
          try {
            size_t used = 0;
            unsigned long long id = std::stoull(v, &used);
            if (used != v.size() || id == 0 || v[0] == '-') throw std::invalid_argument(v);
            c->node_id = id;
            return Status();
          } catch (const std::exception&) {
            return Status::Error("flag -node-id: '" + v + "' is not a positive integer");
          }
        }}},
      {"version",
       {true, "print the version and exit",
        [](CommandLine* c, const std::string& v) {
          c->version = v == "true";
          return Status();
        }}},
      {"help",
       {true, "print this help and exit",
        [](CommandLine* c, const std::string& v) {
          c->help = v == "true";
          return Status();
        }}},
      {"h",
       {true, "same as -help",
        [](CommandLine* c, const std::string& v) {
          c->help = v == "true";
          return Status();
        }}},
  };
  return kFlags;
}

}  // namespace

Result<CommandLine> ParseFlags(const std::vector<std::string>& args) {
  CommandLine cl;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') {
      return Status::Error("unexpected argument '" + arg + "' (flags start with -; see -help)");
    }
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    std::optional<std::string> value;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto flag = Flags().find(name);
    if (flag == Flags().end()) return Status::Error("unknown flag -" + name + " (see -help)");
    if (flag->second.boolean) {
      std::string v = value.value_or("true");
      if (v != "true" && v != "false" && v != "1" && v != "0") {
        return Status::Error("flag -" + name + " takes true or false, not '" + v + "'");
      }
      MARMOT_RETURN_IF_ERROR(flag->second.set(&cl, v == "1" ? "true" : v == "0" ? "false" : v));
      continue;
    }
    if (!value) {
      if (i + 1 >= args.size()) return Status::Error("flag -" + name + " needs a value");
      value = args[++i];
    }
    MARMOT_RETURN_IF_ERROR(flag->second.set(&cl, *value));
  }
  return cl;
}

std::string FlagUsage() {
  std::string out = "Usage: marmot [flags]\n\nFlags (also --name, -name=value):\n";
  for (const auto& [name, flag] : Flags()) {
    std::string left = "  -" + name + (flag.boolean ? "" : " value");
    out += left + std::string(left.size() < 24 ? 24 - left.size() : 1, ' ') + flag.help + "\n";
  }
  return out;
}

void ApplyFlags(const CommandLine& flags, Config* config) {
  if (flags.node_id) config->node_id = *flags.node_id;
}

}  // namespace marmot
