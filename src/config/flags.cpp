#include "config/flags.h"

#include <charconv>

#include "util/host_port.h"

namespace marmot {
namespace {

// The items of a comma-separated list, empty items dropped ("a,,b," is a and b).
std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = s.find(',', start);
    std::string item = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(std::move(item));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// Go's strconv.ParseBool.
std::optional<bool> ParseBool(const std::string& v) {
  for (const char* yes : {"1", "t", "T", "true", "TRUE", "True"}) {
    if (v == yes) return true;
  }
  for (const char* no : {"0", "f", "F", "false", "FALSE", "False"}) {
    if (v == no) return false;
  }
  return std::nullopt;
}

// One flag. Boolean flags get "true"/"false" (already checked); the others their raw value.
struct Flag {
  const char* name;
  const char* alias;  // a second name, or nullptr
  bool boolean;
  const char* value_name;  // in the usage text, e.g. "PATH"; nullptr for booleans
  const char* help;
  Status (*set)(CommandLine* cl, const std::string& value);
  const char* command = nullptr;  // the subcommand the flag belongs to ("verify", "dead-letter"), or none
};

// A decimal number from 1 to 2^64-1: digits only, no sign, space or 0x.
Result<uint64_t> ParsePositive(const std::string& flag, const std::string& v, const char* what) {
  uint64_t n = 0;
  const char* end = v.data() + v.size();
  auto [ptr, ec] = std::from_chars(v.data(), end, n);
  if (v.empty() || ec != std::errc() || ptr != end || n == 0) {
    return Status::Error("flag -" + flag + ": \"" + v + "\" is not " + what +
                         " (a decimal number from 1 to 18446744073709551615)");
  }
  return n;
}

Status SetNodeId(CommandLine* cl, const std::string& v) {
  Result<uint64_t> id = ParsePositive("node-id", v, "a node id");
  if (!id.ok()) return id.status();
  cl->node_id = *id;
  return Status();
}

// The leaf-node listener takes port + 1, so the port must be fixed and below 65535.
Status SetClusterAddr(CommandLine* cl, const std::string& v) {
  Result<HostPort> address = ParseHostPort(v);
  if (!address.ok()) return address.status().WithContext("flag -cluster-addr");
  if (address->port < 1 || address->port > 65534) {
    return Status::InvalidArgument("flag -cluster-addr: \"" + v +
                                   "\" needs a fixed port from 1 to 65534 (leaf nodes listen on port + 1)");
  }
  cl->cluster_addr = v;
  return Status();
}

const std::vector<Flag>& Flags() {
  static const std::vector<Flag> kFlags = {
      {"config", nullptr, false, "PATH", "TOML config file; a missing file means all defaults",
       [](CommandLine* cl, const std::string& v) {
         cl->config_path = v;
         return Status();
       }},
      {"node-id", nullptr, false, "N", "this node's id (1..2^64-1), overriding the config's node_id",
       SetNodeId},
      {"cleanup", nullptr, true, nullptr,
       "remove marmot's triggers and change-log tables from the database, then exit",
       [](CommandLine* cl, const std::string& v) {
         cl->cleanup = v == "true";
         return Status();
       }},
      {"save-snapshot", nullptr, true, nullptr, "take a snapshot, upload it, then exit",
       [](CommandLine* cl, const std::string& v) {
         cl->save_snapshot = v == "true";
         return Status();
       }},
      {"cluster-addr", nullptr, false, "HOST:PORT",
       "embedded NATS: listen for cluster routes here (and for leaf nodes on PORT+1)", SetClusterAddr},
      {"cluster-peers", nullptr, false, "LIST",
       "embedded NATS: comma-separated routes, nats://host:port/ or dns://name:port/?min=N&interval_ms=M",
       [](CommandLine* cl, const std::string& v) {
         cl->cluster_peers = SplitList(v);
         return Status();
       }},
      {"leaf-servers", nullptr, false, "LIST",
       "embedded NATS: comma-separated servers to join as a leaf node (nats:// or dns:// as above)",
       [](CommandLine* cl, const std::string& v) {
         cl->leaf_servers = SplitList(v);
         return Status();
       }},
      {"version", nullptr, true, nullptr, "print the version, then exit",
       [](CommandLine* cl, const std::string& v) {
         cl->version = v == "true";
         return Status();
       }},
      {"help", "h", true, nullptr, "print this help, then exit",
       [](CommandLine* cl, const std::string& v) {
         cl->help = v == "true";
         return Status();
       }},
      {"repair", nullptr, true, nullptr, "verify: make every node take node -from's rows where they differ",
       [](CommandLine* cl, const std::string& v) {
         cl->repair = v == "true";
         return Status();
       },
       "verify"},
      {"from", nullptr, false, "N", "verify -repair: the node whose rows are right",
       [](CommandLine* cl, const std::string& v) {
         Result<uint64_t> n = ParsePositive("from", v, "a node id");
         if (!n.ok()) return n.status();
         cl->repair_from = *n;
         return Status();
       },
       "verify"},
      {"nodes", nullptr, false, "N", "verify: how many nodes must answer (default: whoever answers)",
       [](CommandLine* cl, const std::string& v) {
         Result<uint64_t> n = ParsePositive("nodes", v, "a node count");
         if (!n.ok()) return n.status();
         cl->verify_nodes = *n;
         return Status();
       },
       "verify"},
      {"wait", nullptr, false, "SECONDS",
       "verify: how long the nodes may take to reach the barriers (default 60)",
       [](CommandLine* cl, const std::string& v) {
         Result<uint64_t> n = ParsePositive("wait", v, "a number of seconds");
         if (!n.ok()) return n.status();
         cl->verify_wait = *n;
         return Status();
       },
       "verify"},
      {"nats-url", nullptr, false, "URL",
       "verify, status: the nodes' NATS (default: [nats] urls, or the local node's server)",
       [](CommandLine* cl, const std::string& v) {
         cl->nats_url = v;
         return Status();
       },
       "verify|status"},
      {"table", nullptr, false, "NAME", "dead-letter: only the dead letters of this table",
       [](CommandLine* cl, const std::string& v) {
         cl->dead_letter_table = v;
         return Status();
       },
       "dead-letter"},
      {"id", nullptr, false, "N", "dead-letter replay/drop: only the dead letter with this id",
       [](CommandLine* cl, const std::string& v) {
         Result<uint64_t> n = ParsePositive("id", v, "a dead-letter id");
         if (!n.ok()) return n.status();
         cl->dead_letter_id = *n;
         return Status();
       },
       "dead-letter"},
      {"all", nullptr, true, nullptr, "dead-letter replay/drop: every dead letter",
       [](CommandLine* cl, const std::string& v) {
         cl->dead_letter_all = v == "true";
         return Status();
       },
       "dead-letter"},
      {"limit", nullptr, false, "N", "dead-letter list: at most N, the newest (default 50)",
       [](CommandLine* cl, const std::string& v) {
         Result<uint64_t> n = ParsePositive("limit", v, "a count");
         if (!n.ok()) return n.status();
         cl->dead_letter_limit = *n;
         return Status();
       },
       "dead-letter"},
  };
  return kFlags;
}

const Flag* FindFlag(const std::string& name) {
  for (const Flag& f : Flags()) {
    if (name == f.name || (f.alias != nullptr && name == f.alias)) return &f;
  }
  return nullptr;
}

}  // namespace

Result<CommandLine> ParseFlags(const std::vector<std::string>& args) {
  CommandLine cl;
  size_t first = 0;
  if (!args.empty() && args[0] == "verify") {
    cl.verify = true;
    cl.command = "verify";
    first = 1;
  } else if (!args.empty() && args[0] == "status") {
    cl.command = "status";
    first = 1;
  } else if (!args.empty() && args[0] == "dead-letter") {
    cl.command = "dead-letter";
    if (args.size() < 2 || (args[1] != "list" && args[1] != "replay" && args[1] != "drop")) {
      return Status::Error("marmot dead-letter needs an action: list, replay or drop (see -help)");
    }
    cl.dead_letter_action = args[1];
    first = 2;
  }
  for (size_t i = first; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {  // end of flags; marmot takes no positional arguments after it either
      if (i + 1 < args.size())
        return Status::Error("unexpected argument '" + args[i + 1] + "' (marmot takes only flags)");
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      return Status::Error("unexpected argument '" + arg + "' (flags start with -; see -help)");
    }
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    if (name.empty() || name[0] == '-' || name[0] == '=') return Status::Error("bad flag syntax: " + arg);
    std::optional<std::string> value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const Flag* flag = FindFlag(name);
    if (flag == nullptr) return Status::Error("unknown flag -" + name + " (see -help)");
    // A flag's command may name several: "verify|status".
    if (flag->command != nullptr &&
        (cl.command.empty() ||
         ("|" + std::string(flag->command) + "|").find("|" + cl.command + "|") == std::string::npos)) {
      std::string commands = flag->command, first = commands.substr(0, commands.find('|'));
      std::string named = commands.find('|') == std::string::npos
                              ? "the " + commands + " command"
                              : "the " + first + " and " + commands.substr(first.size() + 1) + " commands";
      return Status::Error("flag -" + name + " belongs to " + named + ": marmot " + first +
                           (first == "dead-letter" ? " ACTION" : "") + " -" + name + " ...");
    }

    if (flag->boolean) {
      // A boolean never takes the next argument as its value (Go: `-cleanup false` is a stray
      // "false"), only `=value`.
      std::optional<bool> b = value ? ParseBool(*value) : std::optional<bool>(true);
      if (!b) return Status::Error("flag -" + name + " takes true or false, not '" + *value + "'");
      MARMOT_RETURN_IF_ERROR(flag->set(&cl, *b ? "true" : "false"));
      continue;
    }
    if (!value) {
      if (i + 1 >= args.size())
        return Status::Error("flag -" + name + " needs a value (" + flag->value_name + ")");
      value = args[++i];
    }
    MARMOT_RETURN_IF_ERROR(flag->set(&cl, *value));
  }
  if (cl.dead_letter_action == "replay" || cl.dead_letter_action == "drop") {
    int selectors =
        (cl.dead_letter_id ? 1 : 0) + (cl.dead_letter_table.empty() ? 0 : 1) + (cl.dead_letter_all ? 1 : 0);
    if (selectors != 1) {
      return Status::Error("marmot dead-letter " + cl.dead_letter_action +
                           " needs exactly one of -id N, -table NAME or -all (which dead letters)");
    }
  } else if (cl.dead_letter_action == "list" && (cl.dead_letter_id || cl.dead_letter_all)) {
    return Status::Error("marmot dead-letter list takes -table NAME and -limit N, not -id or -all");
  }
  if (cl.repair != cl.repair_from.has_value()) {
    return Status::Error(cl.repair ? "flag -repair needs -from N (the node whose rows are right)"
                                   : "flag -from goes with -repair");
  }
  return cl;
}

std::string FlagUsage() {
  std::string out =
      "Usage: marmot [flags]\n"
      "       marmot verify [-config PATH] [-repair -from N] [-nodes N] [-wait SECONDS] [-nats-url URL]\n"
      "       marmot status [-config PATH] [-nats-url URL]\n"
      "       marmot dead-letter list [-config PATH] [-table NAME] [-limit N]\n"
      "       marmot dead-letter replay|drop [-config PATH] (-id N | -table NAME | -all)\n"
      "\n"
      "Flags (-name value, --name value, -name=value and --name=value all work):\n";
  for (const Flag& f : Flags()) {
    if (f.name == std::string("repair")) out += "\nFlags of marmot verify (docs/VERIFY.md):\n";
    if (f.name == std::string("table")) out += "\nFlags of marmot dead-letter (docs/OPERATIONS.md):\n";
    std::string left = std::string("  -") + f.name;
    if (f.alias != nullptr) left += std::string(", -") + f.alias;
    if (f.value_name != nullptr) left += std::string(" ") + f.value_name;
    const size_t column = 28;
    left.append(left.size() < column ? column - left.size() : 1, ' ');
    out += left + f.help + "\n";
  }
  return out;
}

void ApplyFlags(const CommandLine& flags, Config* config) {
  if (flags.node_id) config->node_id = *flags.node_id;
}

}  // namespace marmot
