#include "stream/message_id.h"

#include <charconv>

namespace marmot {

std::string MessageId::ToString() const {
  return session + "-" + std::to_string(first) + "-" + std::to_string(last) + "-" + std::to_string(groups) +
         "-" + std::to_string(shard) + "-" + std::to_string(index) + "-" + std::to_string(count);
}

namespace {

template <typename T>
bool ParseNumber(std::string_view text, T* out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::optional<MessageId> MessageId::Parse(std::string_view text) {
  std::string_view fields[7];
  size_t n = 0;
  while (n < 7) {
    size_t dash = text.find('-');
    fields[n++] = text.substr(0, dash);
    if (dash == std::string_view::npos) break;
    text.remove_prefix(dash + 1);
  }
  if (n != 7 || text.find('-') != std::string_view::npos || fields[6].size() != text.size()) {
    return std::nullopt;
  }
  MessageId id;
  if (fields[0].size() != 16 || fields[0].find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return std::nullopt;
  }
  id.session = std::string(fields[0]);
  if (!ParseNumber(fields[1], &id.first) || !ParseNumber(fields[2], &id.last) ||
      !ParseNumber(fields[3], &id.groups) || !ParseNumber(fields[4], &id.shard) ||
      !ParseNumber(fields[5], &id.index) || !ParseNumber(fields[6], &id.count)) {
    return std::nullopt;
  }
  if (id.first > id.last || id.groups < 1 || id.shard < 1 || id.count < 1 || id.index < 0 ||
      id.index >= id.count) {
    return std::nullopt;
  }
  return id;
}

}  // namespace marmot
