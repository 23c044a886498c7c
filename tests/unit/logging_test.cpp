// Logging: JSON lines are valid JSON and valid UTF-8 whatever the message holds, and RedactUrl
// never lets a credential through.
#include "telemetry/logging.h"

#include <gtest/gtest.h>
#include <spdlog/details/log_msg.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace marmot {
namespace {

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t extra = 0;
    uint32_t cp = 0;
    if (b < 0x80) {
      ++i;
      continue;
    } else if ((b & 0xe0) == 0xc0) {
      extra = 1, cp = b & 0x1f;
    } else if ((b & 0xf0) == 0xe0) {
      extra = 2, cp = b & 0x0f;
    } else if ((b & 0xf8) == 0xf0) {
      extra = 3, cp = b & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;  // cut short
    for (size_t k = 1; k <= extra; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (c & 0x3f);
    }
    static const uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += extra + 1;
  }
  return true;
}

std::string FormatJson(const std::string& logger, spdlog::level::level_enum level, std::string_view payload) {
  spdlog::details::log_msg msg(spdlog::source_loc{}, logger, level,
                               spdlog::string_view_t(payload.data(), payload.size()));
  spdlog::memory_buf_t buf;
  MakeJsonFormatter()->format(msg, buf);
  return std::string(buf.data(), buf.size());
}

TEST(LoggingTest, Utf8CheckerOfThisTestWorks) {
  EXPECT_TRUE(IsValidUtf8("plain \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("cut \xe2\x82"));
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
}

TEST(LoggingTest, JsonLineIsValidJsonAndUtf8WhateverTheMessageHolds) {
  using namespace std::string_literals;
  // A string cut mid-character, a lone invalid byte, quotes, backslashes, control characters
  // (a NUL too) and valid multi-byte characters.
  const std::string payload = "cut \xe2\x82| lone \xff| \"quoted\" back\\slash\nnew line\ttab\r\x01\x1f"s +
                              "nul:"s + std::string(1, '\0') + "| caf\xc3\xa9 \xe2\x82\xac"s;
  const std::string line = FormatJson("na\"me\xc3", spdlog::level::warn, payload);

  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line per record: " << line;
  EXPECT_TRUE(IsValidUtf8(line)) << line;

  nlohmann::json parsed;
  ASSERT_NO_THROW(parsed = nlohmann::json::parse(line)) << line;
  ASSERT_TRUE(parsed.is_object());
  EXPECT_EQ(parsed.size(), 4u);
  EXPECT_EQ(parsed["level"], "warning");
  const std::string msg = parsed["msg"];
  EXPECT_NE(msg.find("| \"quoted\" back\\slash\nnew line\ttab\r\x01\x1fnul:"s + std::string(1, '\0') + "|"s),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("caf\xc3\xa9 \xe2\x82\xac"), std::string::npos) << "valid UTF-8 is kept: " << msg;
  EXPECT_NE(msg.find("\xef\xbf\xbd"), std::string::npos) << "invalid bytes become U+FFFD: " << msg;
  EXPECT_EQ(std::string(parsed["logger"]).rfind("na\"me", 0), 0u);

  // Same keys, same order, same time format as before.
  EXPECT_EQ(line.rfind("{\"time\":\"", 0), 0u) << line;
  EXPECT_LT(line.find("\"level\":"), line.find("\"logger\":"));
  EXPECT_LT(line.find("\"logger\":"), line.find("\"msg\":"));
  // YYYY-MM-DDTHH:MM:SS.mmmZ (no <regex>: GCC 12 warns inside it in the sanitizer build).
  std::string time = parsed["time"];
  const std::string shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  ASSERT_EQ(time.size(), shape.size()) << time;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 'd') {
      EXPECT_TRUE(time[i] >= '0' && time[i] <= '9') << time;
    } else {
      EXPECT_EQ(time[i], shape[i]) << time;
    }
  }
}

TEST(LoggingTest, JsonLineOfAPlainMessage) {
  const std::string line = FormatJson("nats", spdlog::level::info, "hello");
  nlohmann::json parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["level"], "info");
  EXPECT_EQ(parsed["logger"], "nats");
  EXPECT_EQ(parsed["msg"], "hello");
}

TEST(RedactUrlTest, PasswordIsHidden) {
  EXPECT_EQ(RedactUrl("nats://user:secret@host:4222"), "nats://user:***@host:4222/");
  EXPECT_EQ(RedactUrl("tls://app:pw@nats.example.com:4443/"), "tls://app:***@nats.example.com:4443/");
  EXPECT_EQ(RedactUrl("nats://user:@host:4222"), "nats://user:***@host:4222/");
}

TEST(RedactUrlTest, TokenAloneIsHidden) {
  // Token authentication: the user part is the secret.
  EXPECT_EQ(RedactUrl("nats://s3cr3t-token@host:4222"), "nats://***@host:4222/");
}

TEST(RedactUrlTest, PasswordWithAtSignIsHiddenWhole) {
  // Encoded, curl parses it: the whole password goes.
  EXPECT_EQ(RedactUrl("nats://user:p%40ss@host:4222"), "nats://user:***@host:4222/");
  // Raw, it is not a valid URL: everything up to the last '@' goes.
  const std::string raw = RedactUrl("nats://user:p@ss@host:4222");
  EXPECT_EQ(raw, "nats://***@host:4222");
  EXPECT_EQ(raw.find("ss"), std::string::npos) << raw;
  // A '/' in the user info makes curl see a path holding the rest of the secret.
  EXPECT_EQ(RedactUrl("nats://tok/en@host:4222"), "nats://***@host:4222");
  EXPECT_EQ(RedactUrl("nats://user:pa/ss@host:4222"), "nats://***@host:4222");
}

TEST(RedactUrlTest, NoCredentialsMeansUnchanged) {
  for (const char* url : {"nats://host:4222", "nats://127.0.0.1:4222/", "tls://h:1",
                          "dns://name:4248/?min=2&interval_ms=500", "nats://[::1]:4222"}) {
    EXPECT_EQ(RedactUrl(url), url);
  }
}

TEST(RedactUrlTest, Ipv6Host) {
  EXPECT_EQ(RedactUrl("nats://user:secret@[::1]:4222"), "nats://user:***@[::1]:4222/");
  EXPECT_EQ(RedactUrl("nats://token@[2001:db8::1]:4222"), "nats://***@[2001:db8::1]:4222/");
}

TEST(RedactUrlTest, UnparsableInputNeverShowsTheSecret) {
  EXPECT_EQ(RedactUrl("user:secret@host:4222"), "***@host:4222");  // no scheme
  EXPECT_EQ(RedactUrl("nats://user:secret@ho st:4222"), "nats://***@ho st:4222");
  EXPECT_EQ(RedactUrl("nats://user:sec@ret@[::1:4222"), "nats://***@[::1:4222");
  EXPECT_EQ(RedactUrl("not a url"), "not a url");  // nothing that could be a credential
  EXPECT_EQ(RedactUrl(""), "");
}

TEST(LoggingTest, TheLastErrorLineIsKeptForTheHeartbeat) {
  SetupLogging(false, "console");
  spdlog::error("first failure {}", 1);
  spdlog::warn("only a warning");
  LoggedError last = LastLoggedError();
  EXPECT_EQ(last.message, "first failure 1");
  EXPECT_GT(last.unix_time, 1.7e9);
  spdlog::critical("second failure");
  EXPECT_EQ(LastLoggedError().message, "second failure");
}

}  // namespace
}  // namespace marmot
