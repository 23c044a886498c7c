// Command-line flags in Go's `flag` style, as Marmot v0.8 takes them: `-name value`,
// `--name value`, `-name=value` and `--name=value`; boolean flags take no value (or `=true|false`).
// Anything else (an unknown flag, a missing or bad value, a stray argument) is an error naming it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "util/status.h"

namespace marmot {

struct CommandLine {
  std::string config_path;  // -config; empty: all defaults
  bool cleanup = false;
  bool save_snapshot = false;
  bool version = false;
  bool help = false;
  std::optional<std::string> cluster_addr;
  std::vector<std::string> cluster_peers;  // comma-separated
  std::vector<std::string> leaf_servers;   // comma-separated
  std::optional<uint64_t> node_id;
};

Result<CommandLine> ParseFlags(const std::vector<std::string>& args);  // args without argv[0]
std::string FlagUsage();
// Applies flags that override config keys (-node-id).
void ApplyFlags(const CommandLine& flags, Config* config);

}  // namespace marmot
