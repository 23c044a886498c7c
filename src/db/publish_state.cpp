#include "db/publish_state.h"

#include <cstdio>
#include <random>

#include "db/marmot_tables.h"
#include "db/sqlite.h"

namespace marmot {
namespace {

// Names of the rows in __marmot__state. "reader_confirmed_seq" is the name older versions used
// for the confirmed position, kept so an upgraded node continues where it stopped.
constexpr char kConfirmedName[] = "reader_confirmed_seq";
constexpr char kSessionsName[] = "publish_sessions";
constexpr char kAckedPrefix[] = "publish_acked:";  // + stream name

std::string JoinSessions(const std::vector<std::string>& sessions) {
  std::string out;
  for (const std::string& s : sessions) out += (out.empty() ? "" : ",") + s;
  return out;
}

std::vector<std::string> SplitSessions(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

}  // namespace

Result<PublishState> LoadPublishState(Database& db) {
  PublishState state;
  Result<Statement> stmt = db.Prepare("SELECT name, value FROM " + QuoteIdent(kStateTable) +
                                      " WHERE name IN (?1, ?2) OR substr(name, 1, ?3) = ?4");
  if (!stmt.ok()) return stmt.status().WithContext("reading publish state");
  stmt->BindText(1, kConfirmedName);
  stmt->BindText(2, kSessionsName);
  stmt->BindInt(3, static_cast<int64_t>(sizeof(kAckedPrefix) - 1));
  stmt->BindText(4, kAckedPrefix);
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status().WithContext("reading publish state");
    if (!*row) break;
    std::string name = stmt->ColumnText(0);
    if (name == kConfirmedName) {
      state.confirmed_seq = static_cast<uint64_t>(stmt->ColumnInt(1));
    } else if (name == kSessionsName) {
      state.sessions = SplitSessions(stmt->ColumnText(1));
    } else {
      state.acked_seq[name.substr(sizeof(kAckedPrefix) - 1)] = static_cast<uint64_t>(stmt->ColumnInt(1));
    }
  }
  return state;
}

Status SavePublishState(Database& db, const PublishState& state) {
  Result<Statement> save =
      db.Prepare("INSERT OR REPLACE INTO " + QuoteIdent(kStateTable) + "(name, value) VALUES(?1, ?2)");
  if (!save.ok()) return save.status().WithContext("saving publish state");
  auto put = [&](const std::string& name, auto value) -> Status {
    save->BindText(1, name);
    if constexpr (std::is_same_v<decltype(value), std::string>) {
      save->BindText(2, value);
    } else {
      save->BindInt(2, static_cast<int64_t>(value));
    }
    Status s = save->Run();
    save->Reset();
    return s.WithContext("saving publish state (" + name + ")");
  };
  MARMOT_RETURN_IF_ERROR(put(kConfirmedName, state.confirmed_seq));
  MARMOT_RETURN_IF_ERROR(put(kSessionsName, JoinSessions(state.sessions)));
  for (const auto& [stream, seq] : state.acked_seq) MARMOT_RETURN_IF_ERROR(put(kAckedPrefix + stream, seq));
  return Status();
}

std::string NewPublishSession() {
  std::random_device random;  // getrandom(2) on Linux
  uint64_t id = (static_cast<uint64_t>(random()) << 32) ^ random();
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(id));
  return buf;
}

}  // namespace marmot
