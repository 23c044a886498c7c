// Command-line flags, parsed the way Go's `flag` package parses Marmot v0.8's: every flag may be
// written `-name value`, `--name value`, `-name=value` or `--name=value`. Boolean flags (-cleanup,
// -save-snapshot, -version, -help, -h) take no separate value; `-cleanup=false` (any of Go's
// spellings: 1 0 t f T F true false TRUE FALSE True False) sets one explicitly. A later flag
// overrides an earlier one. `--` ends the flags.
//
// `marmot verify [flags]` runs the verify command (docs/VERIFY.md); its own flags (-repair, -from,
// -nodes, -wait, -nats-url) are accepted only after it. `marmot dead-letter list|replay|drop
// [flags]` works on the local dead-letter table (docs/OPERATIONS.md), with -table, -id, -all, -limit.
//
// Unlike Go, marmot takes no other positional arguments, so everything that is not a flag is an error;
// so is an unknown flag, a missing value and a malformed number. Each message names the flag (or
// argument), e.g. "unknown flag -bogus (see -help)" or "flag -config needs a value"; main exits
// with code 2 on it.
//
// Thread safety: no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "util/status.h"

namespace marmot {

// What the command line asked for. Fields keep "not given" apart from any given value.
struct CommandLine {
  std::string config_path;                  // -config PATH; empty: not given (all defaults)
  bool cleanup = false;                     // -cleanup: remove triggers and change-log tables, then exit
  bool save_snapshot = false;               // -save-snapshot: take and upload a snapshot, then exit
  bool version = false;                     // -version: print the version, then exit
  bool help = false;                        // -help / -h: print FlagUsage(), then exit
  std::optional<std::string> cluster_addr;  // -cluster-addr HOST:PORT (embedded server routes)
  std::vector<std::string> cluster_peers;   // -cluster-peers, split at commas; empty: not given
  std::vector<std::string> leaf_servers;    // -leaf-servers, split at commas; empty: not given
  std::optional<uint64_t> node_id;          // -node-id N: 1..2^64-1, decimal; overrides node_id
  std::string command;                      // "" (run a node), "verify", "status" or "dead-letter"
  // `marmot verify`
  bool verify = false;
  bool repair = false;                  // -repair: needs -from
  std::optional<uint64_t> repair_from;  // -from N
  uint64_t verify_nodes = 0;            // -nodes N: fewer answers is exit 2
  std::optional<uint64_t> verify_wait;  // -wait SECONDS for the nodes to reach the barriers
  std::string nats_url;                 // -nats-url URL: where the nodes' NATS is
  // `marmot dead-letter list|replay|drop`
  std::string dead_letter_action;          // "list", "replay" or "drop"
  std::string dead_letter_table;           // -table NAME
  std::optional<uint64_t> dead_letter_id;  // -id N
  bool dead_letter_all = false;            // -all
  uint64_t dead_letter_limit = 50;         // -limit N (list)
};

// Parses `args` (argv without argv[0]). Returns the flags, or an error naming the offending flag
// or argument.
Result<CommandLine> ParseFlags(const std::vector<std::string>& args);

// The -help text: a usage line and one line per flag.
std::string FlagUsage();

// Applies the flags that override config keys (-node-id over node_id) to `config`. Cannot fail:
// every value was checked by ParseFlags. The cluster flags stay in CommandLine (they configure the
// embedded server and have no config key).
void ApplyFlags(const CommandLine& flags, Config* config);

}  // namespace marmot
