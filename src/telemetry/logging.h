// Logging: one spdlog logger for the whole process, configured once at start from [logging].
//
// "console" prints human-readable lines; "json" prints one JSON object per line with the keys
// time, level, logger and msg (msg properly escaped), for log shippers. `verbose` enables debug.
// Components that want a tag (e.g. the supervised nats-server's output, tagged "nats") use
// TaggedLogger(). Secrets never go into log lines: callers pass redacted URLs (RedactUrl).
#pragma once

#include <spdlog/logger.h>

#include <memory>
#include <string>

namespace marmot {

// `format` must be "console" or "json" (validated by the config). Safe to call again (tests).
void SetupLogging(bool verbose, const std::string& format);

// A logger that shares the default logger's sinks but prints `tag` as its name.
std::shared_ptr<spdlog::logger> TaggedLogger(const std::string& tag);

// Replaces the password part of user:password@ in a URL with "***".
std::string RedactUrl(const std::string& url);

}  // namespace marmot
