// Logging: one spdlog logger for the whole process, configured once at start from [logging].
//
// "console" prints human-readable lines; "json" prints one JSON object per line with the keys
// time, level, logger and msg, for log shippers: every line is valid JSON and valid UTF-8 (bytes
// that are not UTF-8, e.g. a string cut mid-character, become U+FFFD). `verbose` enables debug.
// Components that want a tag (e.g. the supervised nats-server's output, tagged "nats") use
// TaggedLogger(). Secrets never go into log lines: callers pass redacted URLs (RedactUrl).
#pragma once

#include <spdlog/formatter.h>
#include <spdlog/logger.h>

#include <memory>
#include <string>

namespace marmot {

// `format` must be "console" or "json" (validated by the config). Safe to call again (tests).
void SetupLogging(bool verbose, const std::string& format);

// A logger that shares the default logger's sinks but prints `tag` as its name.
std::shared_ptr<spdlog::logger> TaggedLogger(const std::string& tag);

// The formatter SetupLogging installs for "json" (exposed for tests): one line per record,
// {"time":"2024-01-02T03:04:05.678Z","level":"info","logger":"marmot","msg":"..."}, time in UTC.
std::unique_ptr<spdlog::formatter> MakeJsonFormatter();

// `url` with its credentials replaced by "***", for log lines and error messages:
//   nats://user:secret@host:4222  ->  nats://user:***@host:4222/   (password hidden)
//   nats://token@host:4222        ->  nats://***@host:4222/        (token auth: the user is the secret)
//   nats://host:4222              ->  nats://host:4222              (no credentials: unchanged)
// libcurl's URL parser decides what the credentials are (any scheme: nats, tls, dns, ...); a
// redacted URL comes back in curl's normalized form (a "/" path is added). When curl cannot parse
// `url`, or an unencoded '@' is left after the user info (a password with a raw '@' or '/'),
// everything between "://" (or the start) and the last '@' becomes "***": the result never holds a
// secret, at worst it hides more than the secret.
std::string RedactUrl(const std::string& url);

// The last line logged at error level since SetupLogging (empty when none), with its time as Unix
// seconds; for the node's heartbeat (`marmot status`, the status page).
struct LoggedError {
  std::string message;
  double unix_time = 0;
};
LoggedError LastLoggedError();

}  // namespace marmot
