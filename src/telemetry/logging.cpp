#include "telemetry/logging.h"

#include <curl/curl.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

namespace marmot {
namespace {

// Formats each record as one JSON object per line.
class JsonFormatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    auto since_epoch = msg.time.time_since_epoch();
    std::time_t secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
    int millis =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char time_buf[96];
    std::snprintf(time_buf, sizeof(time_buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    auto level = spdlog::level::to_string_view(msg.level);
    // ordered_json keeps the keys in this order; replace turns bytes that are not UTF-8 into
    // U+FFFD instead of throwing, so a log call never fails and the line stays valid UTF-8.
    nlohmann::ordered_json line = {
        {"time", std::string(time_buf)},
        {"level", std::string(level.data(), level.size())},
        {"logger", std::string(msg.logger_name.data(), msg.logger_name.size())},
        {"msg", std::string(msg.payload.data(), msg.payload.size())},
    };
    std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    text.push_back('\n');
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<JsonFormatter>(); }
};

// Keeps the last error-level record (the sink's mutex guards it).
class LastErrorSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  LoggedError Get() {
    std::lock_guard<std::mutex> lock(mutex_);
    return last_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (msg.level < spdlog::level::err) return;
    last_.message.assign(msg.payload.data(), msg.payload.size());
    last_.unix_time = std::chrono::duration<double>(msg.time.time_since_epoch()).count();
  }
  void flush_() override {}

 private:
  LoggedError last_;
};

// Shared: the loggers hold their own references, so the sink outlives this static if need be.
const std::shared_ptr<LastErrorSink>& LastErrors() {
  static const std::shared_ptr<LastErrorSink> sink = std::make_shared<LastErrorSink>();
  return sink;
}

}  // namespace

LoggedError LastLoggedError() { return LastErrors()->Get(); }

void SetupLogging(bool verbose, const std::string& format) {
  // Logs go to stderr so stdout stays free for command output.
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  if (format == "json") {
    sink->set_formatter(MakeJsonFormatter());
  } else {
    sink->set_formatter(std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ [%n] %v"));
  }
  auto logger = std::make_shared<spdlog::logger>("marmot", spdlog::sinks_init_list{sink, LastErrors()});
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::info);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

std::shared_ptr<spdlog::logger> TaggedLogger(const std::string& tag) {
  auto base = spdlog::default_logger();
  auto logger = std::make_shared<spdlog::logger>(tag, base->sinks().begin(), base->sinks().end());
  logger->set_level(base->level());
  logger->flush_on(spdlog::level::info);
  return logger;
}

std::unique_ptr<spdlog::formatter> MakeJsonFormatter() { return std::make_unique<JsonFormatter>(); }

namespace {

struct CurlUrlFree {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlFree {
  void operator()(char* p) const { curl_free(p); }
};
using CurlUrl = std::unique_ptr<CURLU, CurlUrlFree>;
using CurlString = std::unique_ptr<char, CurlFree>;

// One part of a parsed URL; null when the URL has no such part.
CurlString UrlPart(CURLU* url, CURLUPart part) {
  char* text = nullptr;
  if (curl_url_get(url, part, &text, 0) != CURLUE_OK) return nullptr;
  return CurlString(text);
}

// Everything between "://" (or the start) and the last '@' becomes "***".
std::string RedactUpToLastAt(const std::string& url) {
  size_t scheme = url.find("://");
  size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  size_t at = url.rfind('@');
  if (at == std::string::npos || at < start) return url;
  return url.substr(0, start) + "***" + url.substr(at);
}

}  // namespace

std::string RedactUrl(const std::string& url) {
  // CURLU_NON_SUPPORT_SCHEME: parse nats://, tls://, dns:// like any URL.
  CurlUrl parsed(curl_url());
  if (!parsed) return RedactUpToLastAt(url);
  if (curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
    return RedactUpToLastAt(url);
  // curl ends the user info at the first '@': one left in the rest means the user info itself
  // held an unencoded '@' (or a '/' cut it short), so part of a secret would show.
  for (CURLUPart rest : {CURLUPART_HOST, CURLUPART_PATH, CURLUPART_QUERY, CURLUPART_FRAGMENT}) {
    CurlString text = UrlPart(parsed.get(), rest);
    if (text && std::strchr(text.get(), '@') != nullptr) return RedactUpToLastAt(url);
  }
  CURLUcode set;
  if (UrlPart(parsed.get(), CURLUPART_PASSWORD))
    set = curl_url_set(parsed.get(), CURLUPART_PASSWORD, "***", 0);
  else if (UrlPart(parsed.get(), CURLUPART_USER))
    set = curl_url_set(parsed.get(), CURLUPART_USER, "***", 0);
  else
    return url;
  CurlString redacted = set == CURLUE_OK ? UrlPart(parsed.get(), CURLUPART_URL) : nullptr;
  return redacted ? std::string(redacted.get()) : RedactUpToLastAt(url);
}

}  // namespace marmot
