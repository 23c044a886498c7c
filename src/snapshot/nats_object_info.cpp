#include "snapshot/nats_object_info.h"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

namespace marmot {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kHexDigits = "0123456789abcdefABCDEF";

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// Just enough JSON to read a meta message: strings, unsigned integers, booleans, null; any other
// value is skipped.
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : text_(text) {}

  // Reads an object, calling `field(key)` to read or skip each value.
  template <typename Field>
  bool Object(Field field) {
    if (!Take('{')) return false;
    if (Take('}')) return true;
    do {
      std::string key;
      if (!String(&key) || !Take(':') || !field(key)) return false;
    } while (Take(','));
    return Take('}');
  }
  bool String(std::string* out) {
    if (Word("null")) return true;
    if (!Take('"')) return false;
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (pos_ >= text_.size()) return false;
        c = text_[pos_++];
        if (c == 'u') {
          std::string hex(text_.substr(pos_, 4));
          if (hex.size() != 4 || hex.find_first_not_of(kHexDigits) != std::string::npos) return false;
          unsigned code = static_cast<unsigned>(std::stoul(hex, nullptr, 16));
          pos_ += 4;
          AppendUtf8(out, code);  // a name with surrogate pairs reads wrong; marmot's names are ASCII
          continue;
        }
        static constexpr std::string_view kEscapes = "b\bf\fn\nr\rt\t";
        size_t e = kEscapes.find(c);
        if (e != std::string_view::npos && e % 2 == 0) c = kEscapes[e + 1];
      }
      out->push_back(c);
    }
    return false;
  }
  bool Uint(uint64_t* out) {
    if (Word("null")) return true;
    size_t start = pos_;
    *out = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9')
      *out = *out * 10 + (text_[pos_++] - '0');
    return pos_ > start;
  }
  bool Bool(bool* out) {
    if (Word("null")) return true;
    *out = Word("true");
    return *out || Word("false");
  }
  bool Skip() {
    Space();
    if (pos_ >= text_.size()) return false;
    std::string ignored;
    if (text_[pos_] == '"') return String(&ignored);
    if (text_[pos_] == '{') return Object([this](const std::string&) { return Skip(); });
    if (Take('[')) {
      if (Take(']')) return true;
      do {
        if (!Skip()) return false;
      } while (Take(','));
      return Take(']');
    }
    if (Word("true") || Word("false") || Word("null")) return true;
    size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != 0 && std::strchr("+-.eE0123456789", text_[pos_])) ++pos_;
    return pos_ > start;
  }
  bool AtEnd() {
    Space();
    return pos_ == text_.size();
  }

 private:
  void Space() {
    while (pos_ < text_.size() && text_[pos_] != 0 && std::strchr(" \t\r\n", text_[pos_])) ++pos_;
  }
  bool Take(char c) {
    Space();
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  bool Word(std::string_view word) {
    Space();
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  static void AppendUtf8(std::string* out, unsigned code) {
    if (code < 0x80) {
      out->push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (code >> 6)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xE0 | (code >> 12)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

std::string Base64UrlPadded(std::string_view bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) n |= static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

std::optional<std::string> DecodeSha256Digest(std::string_view digest) {
  constexpr std::string_view kPrefix = "SHA-256=";
  if (digest.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  digest.remove_prefix(kPrefix.size());
  std::string out;
  if (digest.size() == 64 && digest.find_first_not_of(kHexDigits) == std::string_view::npos) {
    for (size_t i = 0; i < 64; i += 2)
      out += static_cast<char>(std::stoi(std::string(digest.substr(i, 2)), nullptr, 16));
    return out;
  }
  while (!digest.empty() && digest.back() == '=') digest.remove_suffix(1);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : digest) {
    const char* p = c == '+' ? &kAlphabet[62] : c == '/' ? &kAlphabet[63] : std::strchr(kAlphabet, c);
    if (c == '\0' || p == nullptr) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(p - kAlphabet);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  if (out.size() != 32) return std::nullopt;
  return out;
}

// RFC 3339 UTC time with nanoseconds, as nats.go writes "mtime".
std::string NowRfc3339() {
  int64_t ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char date[32], out[48];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(out, sizeof out, "%s.%09lldZ", date, static_cast<long long>(ns % 1000000000));
  return out;
}

std::string ObjectInfoJson(const ObjectInfo& info) {
  std::string json = "{\"name\":" + JsonString(info.name) + ",\"bucket\":" + JsonString(info.bucket) +
                     ",\"nuid\":" + JsonString(info.nuid) + ",\"size\":" + std::to_string(info.size) +
                     ",\"mtime\":" + JsonString(NowRfc3339()) + ",\"chunks\":" + std::to_string(info.chunks);
  if (!info.digest.empty()) json += ",\"digest\":" + JsonString(info.digest);
  if (info.deleted) json += ",\"deleted\":true";
  return json + ",\"options\":{\"max_chunk_size\":" + std::to_string(info.max_chunk_size) + "}}";
}

std::optional<ObjectInfo> ParseObjectInfo(std::string_view json) {
  ObjectInfo info;
  JsonReader r(json);
  bool ok = r.Object([&](const std::string& key) {
    if (key == "name") return r.String(&info.name);
    if (key == "bucket") return r.String(&info.bucket);
    if (key == "nuid") return r.String(&info.nuid);
    if (key == "digest") return r.String(&info.digest);
    if (key == "size") return r.Uint(&info.size);
    if (key == "chunks") return r.Uint(&info.chunks);
    if (key == "deleted") return r.Bool(&info.deleted);
    return r.Skip();
  });
  if (!ok || !r.AtEnd() || info.name.empty()) return std::nullopt;
  return info;
}

}  // namespace marmot
