#include "node/dead_letter_command.h"

#include <cstdio>
#include <filesystem>
#include <vector>

#include "db/applier.h"
#include "db/marmot_tables.h"
#include "db/sqlite.h"

namespace marmot {
namespace {

constexpr int kFailed = 1;

// " WHERE ..." selecting the records the command names, with ?1 the table when one is given.
std::string Where(const DeadLetterCommand& c) {
  if (c.id) return " WHERE id = " + std::to_string(*c.id);
  if (!c.table.empty()) return " WHERE tbl = ?1";
  return "";
}

// One line of text: newlines and tabs become spaces, and at most `max` bytes are kept.
std::string OneLine(std::string s, size_t max) {
  for (char& ch : s) {
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
  }
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

int List(Database& db, const DeadLetterCommand& c) {
  std::string from = " FROM " + QuoteIdent(kDeadLetterTable) + Where(c);
  Result<Statement> count = db.Prepare("SELECT count(*)" + from);
  Result<Statement> rows = db.Prepare(
      "SELECT id, at, coalesce(stream, ''), coalesce(stream_seq, 0), tbl, op, reason, superseded_seq IS NOT "
      "NULL, "
      "change IS NULL" +
      from + " ORDER BY id DESC LIMIT " + std::to_string(c.limit));
  for (Result<Statement>* s : {&count, &rows}) {
    if (!s->ok()) {
      std::fprintf(stderr, "marmot dead-letter list: %s\n", s->status().message().c_str());
      return kFailed;
    }
    if (!c.table.empty()) (*s)->BindText(1, c.table);
  }
  Result<bool> counted = count->Step();
  int64_t total = counted.ok() && *counted ? count->ColumnInt(0) : 0;
  std::printf("%-6s %-24s %-28s %-16s %-6s %-14s %s\n", "ID", "AT", "STREAM MESSAGE", "TABLE", "OP", "STATE",
              "REASON");
  while (true) {
    Result<bool> row = rows->Step();
    if (!row.ok()) {
      std::fprintf(stderr, "marmot dead-letter list: %s\n", row.status().message().c_str());
      return kFailed;
    }
    if (!*row) break;
    std::string message = rows->ColumnText(2).empty()
                              ? std::string("-")
                              : rows->ColumnText(2) + ":" + std::to_string(rows->ColumnInt(3));
    std::string state = rows->ColumnInt(7) ? "superseded" : rows->ColumnInt(8) ? "not replayable" : "pending";
    std::string table = rows->ColumnText(4).empty() ? std::string("-") : rows->ColumnText(4);
    std::printf("%-6lld %-24s %-28s %-16s %-6s %-14s %s\n", static_cast<long long>(rows->ColumnInt(0)),
                rows->ColumnText(1).c_str(), OneLine(message, 28).c_str(), OneLine(table, 16).c_str(),
                rows->ColumnText(5) == "undecodable message" ? "-" : rows->ColumnText(5).c_str(),
                state.c_str(), OneLine(rows->ColumnText(6), 200).c_str());
  }
  std::printf("%lld dead letter(s)%s\n", static_cast<long long>(total),
              static_cast<uint64_t>(total) > c.limit
                  ? (", the newest " + std::to_string(c.limit) + " shown").c_str()
                  : "");
  return 0;
}

int Drop(Database& db, const DeadLetterCommand& c) {
  Result<Statement> drop = db.Prepare("DELETE FROM " + QuoteIdent(kDeadLetterTable) + Where(c));
  if (!drop.ok()) {
    std::fprintf(stderr, "marmot dead-letter drop: %s\n", drop.status().message().c_str());
    return kFailed;
  }
  if (!c.table.empty()) drop->BindText(1, c.table);
  Status s = drop->Run();
  if (!s.ok()) {
    std::fprintf(stderr, "marmot dead-letter drop: %s\n", s.message().c_str());
    return kFailed;
  }
  std::printf("dropped %lld dead letter(s) from %s\n", static_cast<long long>(sqlite3_changes64(db.get())),
              c.db_path.c_str());
  return 0;
}

int Replay(Database& db, const DeadLetterCommand& c) {
  Result<Statement> select =
      db.Prepare("SELECT id, tbl FROM " + QuoteIdent(kDeadLetterTable) + Where(c) + " ORDER BY id");
  if (!select.ok()) {
    std::fprintf(stderr, "marmot dead-letter replay: %s\n", select.status().message().c_str());
    return kFailed;
  }
  if (!c.table.empty()) select->BindText(1, c.table);
  std::vector<std::pair<int64_t, std::string>> ids;
  while (true) {
    Result<bool> row = select->Step();
    if (!row.ok()) {
      std::fprintf(stderr, "marmot dead-letter replay: %s\n", row.status().message().c_str());
      return kFailed;
    }
    if (!*row) break;
    ids.emplace_back(select->ColumnInt(0), select->ColumnText(1));
  }
  if (ids.empty()) {
    std::printf("no dead letters to replay in %s\n", c.db_path.c_str());
    return c.id ? kFailed : 0;
  }
  Result<std::unique_ptr<Applier>> applier = Applier::Open(c.db_path);
  if (!applier.ok()) {
    std::fprintf(stderr, "marmot dead-letter replay: %s\n", applier.status().message().c_str());
    return kFailed;
  }
  int applied = 0, superseded = 0, left = 0;
  for (const auto& [id, table] : ids) {
    Result<Applier::ReplayOutcome> outcome = (*applier)->ReplayDeadLetter(id);
    if (!outcome.ok()) {
      std::fprintf(stderr, "marmot dead-letter replay: %s\n", outcome.status().message().c_str());
      return kFailed;
    }
    switch (outcome->result) {
      case Applier::ReplayResult::kApplied:
        ++applied;
        std::printf("%lld %s: applied\n", static_cast<long long>(id), table.c_str());
        break;
      case Applier::ReplayResult::kSuperseded:
        ++superseded;
        std::printf("%lld %s: superseded: %s\n", static_cast<long long>(id), table.c_str(),
                    outcome->detail.c_str());
        break;
      case Applier::ReplayResult::kFailed:
      case Applier::ReplayResult::kNotReplayable:
        ++left;
        std::printf("%lld %s: not applied, kept: %s\n", static_cast<long long>(id), table.c_str(),
                    outcome->detail.c_str());
        break;
    }
  }
  std::printf("replayed %d, dropped %d superseded, %d kept\n", applied, superseded, left);
  return left == 0 ? 0 : kFailed;
}

}  // namespace

int RunDeadLetterCommand(const DeadLetterCommand& c) {
  if (!std::filesystem::exists(c.db_path)) {
    std::fprintf(stderr, "marmot dead-letter: database %s does not exist\n", c.db_path.c_str());
    return kFailed;
  }
  Database::Options options;
  options.read_only = c.action == "list";
  Result<Database> db = Database::Open(c.db_path, options);
  if (!db.ok()) {
    std::fprintf(stderr, "marmot dead-letter: %s\n", db.status().message().c_str());
    return kFailed;
  }
  Result<int64_t> exists =
      db->QueryInt(std::string("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '") +
                   kDeadLetterTable + "'");
  if (!exists.ok() || *exists == 0) {
    std::fprintf(stderr, "marmot dead-letter: %s has no dead-letter table (%s): marmot has not run on it\n",
                 c.db_path.c_str(), kDeadLetterTable);
    return kFailed;
  }
  if (c.action == "list") return List(*db, c);
  if (c.action == "drop") return Drop(*db, c);
  return Replay(*db, c);
}

}  // namespace marmot
