// libFuzzer target: the configuration parser (config/config.h) and the flag parser
// (config/flags.h). The input is a TOML text; its lines also serve as command-line arguments.
// Besides not crashing, hanging or tripping a sanitizer: a config that parses must pass the
// same validation again, and flags that parse must apply to it.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/flags.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  marmot::Result<marmot::Config> config = marmot::ParseConfigToml(text, "fuzz.toml");
  if (config.ok() && !marmot::ValidateConfig(*config).ok()) std::abort();

  std::vector<std::string> args;
  size_t start = 0;
  while (start <= text.size() && args.size() < 64) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    args.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  marmot::Result<marmot::CommandLine> flags = marmot::ParseFlags(args);
  if (flags.ok() && config.ok()) marmot::ApplyFlags(*flags, &*config);
  return 0;
}
