#include "verify/verify_responder.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "db/marmot_tables.h"
#include "db/publish_state.h"
#include "db/schema.h"
#include "db/schema_objects.h"
#include "db/sqlite.h"
#include "stream/nats_client.h"
#include "util/host_port.h"
#include "verify/table_digest.h"
#include "verify/verify_protocol.h"

namespace marmot {

// One verify session: a read transaction and what was computed in it.
struct VerifySession {
  explicit VerifySession(Database database) : db(std::move(database)) {}
  Database db;
  std::unique_ptr<Transaction> read;
  std::map<std::string, TableSchema> schemas;
  std::map<std::string, TableDigest> digests;
  std::chrono::steady_clock::time_point last_used;
};

namespace {

// How many rows one "rows" answer may hold; the verifier asks for fewer buckets at a time.
constexpr size_t kMaxRowsPerAnswer = 20000;

}  // namespace

VerifyResponder::VerifyResponder(natsConnection* connection, VerifyResponderOptions options)
    : connection_(connection), options_(std::move(options)) {}

Result<std::unique_ptr<VerifyResponder>> VerifyResponder::Start(natsConnection* connection,
                                                                VerifyResponderOptions options) {
  std::unique_ptr<VerifyResponder> r(new VerifyResponder(connection, std::move(options)));
  natsSubscription* sub = nullptr;
  natsStatus s = natsConnection_Subscribe(&sub, connection, r->options_.subject.c_str(), &OnMessage, r.get());
  if (s != NATS_OK) return NatsStatus(s, "subscribing to the verify subject " + r->options_.subject);
  r->subscription_.reset(sub);
  s = natsSubscription_SetOnCompleteCB(sub, &OnComplete, r.get());
  if (s != NATS_OK) return NatsStatus(s, "watching the verify subscription on " + r->options_.subject);
  r->janitor_ = std::thread([p = r.get()] { p->JanitorLoop(); });
  return r;
}

VerifyResponder::~VerifyResponder() {
  {
    std::lock_guard<std::mutex> lock(active_mu_);
    stopping_.store(true);
    if (active_db_) sqlite3_interrupt(active_db_);  // a digest in progress ends now
  }
  if (subscription_) {
    // nats.c calls OnComplete once the subscription is closed and no handler runs any more.
    if (natsSubscription_Unsubscribe(subscription_.get()) == NATS_OK) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return subscription_closed_; });
    }
    subscription_.reset();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    janitor_stop_ = true;
  }
  cv_.notify_all();
  if (janitor_.joinable()) janitor_.join();
}

void VerifyResponder::OnComplete(void* closure) {
  auto* self = static_cast<VerifyResponder*>(closure);
  std::lock_guard<std::mutex> lock(self->mu_);
  self->subscription_closed_ = true;
  self->cv_.notify_all();
}

void VerifyResponder::OnMessage(natsConnection*, natsSubscription*, natsMsg* raw, void* closure) {
  NatsMsgPtr msg(raw);
  auto* self = static_cast<VerifyResponder*>(closure);
  const char* reply = natsMsg_GetReply(msg.get());
  if (!reply || self->stopping_.load()) return;
  nlohmann::json request = nlohmann::json::parse(
      std::string_view(natsMsg_GetData(msg.get()), static_cast<size_t>(natsMsg_GetDataLength(msg.get()))),
      nullptr,
      /*allow_exceptions=*/false);
  if (!request.is_object() || !request.contains("op") || !request["op"].is_string()) {
    self->Reply(reply, {{"error", "not a verify request (docs/VERIFY.md)"}});
    return;
  }
  self->Handle(reply, request);
}

void VerifyResponder::Reply(const std::string& reply, nlohmann::json answer) {
  answer["node"] = options_.node_id;
  answer["instance"] = options_.instance;
  std::string data = answer.dump();
  natsStatus s =
      natsConnection_Publish(connection_, reply.c_str(), data.data(), static_cast<int>(data.size()));
  if (s != NATS_OK) spdlog::warn("verify: cannot answer on {}: {}", reply, NatsError(s));
}

void VerifyResponder::Handle(const std::string& reply, const nlohmann::json& request) {
  const std::string op = request["op"].get<std::string>();
  const std::string session = request.value("session", "");
  const std::string table = request.value("table", "");
  Result<nlohmann::json> answer = nlohmann::json::object();
  if (op == "whois") {  // node_id_check.h
    Reply(reply, {{"op", "whois"}, {"db_path", options_.db_path}, {"host", LocalHostName()}});
    return;
  }
  if (op == "digest") {
    Reply(reply, {{"op", "hello"}});
    answer = OpenSession(session);
    if (answer.ok()) (*answer)["op"] = "digest";
  } else if (op == "buckets") {
    answer = Buckets(session, table);
  } else if (op == "rows") {
    answer = Rows(session, table, request.value("buckets", nlohmann::json::array()));
  } else if (op == "end") {
    std::lock_guard<std::mutex> lock(mu_);
    sessions_.erase(session);
    return;
  } else if (op == "repair") {
    if (request.value("instance", std::string()) != options_.instance) return;
    answer = Repair(table, request.value("keys", nlohmann::json::array()));
    if (answer.ok())
      spdlog::info("verify --repair: logged {} row(s) of table {} to publish again",
                   (*answer)["logged"].get<uint64_t>(), table);
  } else {
    answer = Status::InvalidArgument("unknown verify request \"" + op + "\"");
  }
  if (!answer.ok()) {
    spdlog::warn("verify: {}", answer.status().message());
    Reply(reply, {{"error", answer.status().message()}});
    return;
  }
  Reply(reply, std::move(*answer));
}

// Marks `db` as the one a stop interrupts while the caller works on it.
class VerifyResponder::ActiveDb {
 public:
  ActiveDb(VerifyResponder* r, Database& db) : r_(r) {
    std::lock_guard<std::mutex> lock(r_->active_mu_);
    r_->active_db_ = db.get();
  }
  ~ActiveDb() {
    std::lock_guard<std::mutex> lock(r_->active_mu_);
    r_->active_db_ = nullptr;
  }
  ActiveDb(const ActiveDb&) = delete;
  ActiveDb& operator=(const ActiveDb&) = delete;

 private:
  VerifyResponder* r_;
};

Result<nlohmann::json> VerifyResponder::OpenSession(const std::string& id) {
  if (id.empty()) return Status::InvalidArgument("a digest request needs a session id");
  Database::Options ro;
  ro.read_only = true;
  Result<Database> db = Database::Open(options_.db_path, ro);
  if (!db.ok()) return db.status();
  auto session = std::make_unique<VerifySession>(std::move(*db));
  ActiveDb active(this, session->db);
  session->read = std::make_unique<Transaction>(&session->db);
  MARMOT_RETURN_IF_ERROR(session->read->Begin(/*immediate=*/false));

  nlohmann::json answer;
  Result<std::vector<TableSchema>> schema = ReadSchema(session->db);  // starts the read snapshot
  if (!schema.ok()) return schema.status();
  nlohmann::json positions = nlohmann::json::object();
  {
    Result<Statement> stmt = session->db.Prepare("SELECT stream, seq FROM " + QuoteIdent(kPositionsTable));
    if (!stmt.ok()) return stmt.status().WithContext("reading the stream positions");
    while (true) {
      Result<bool> row = stmt->Step();
      if (!row.ok()) return row.status().WithContext("reading the stream positions");
      if (!*row) break;
      positions[stmt->ColumnText(0)] = stmt->ColumnInt(1);
    }
  }
  answer["positions"] = positions;
  uint64_t unpublished = 0;
  if (options_.publishing) {
    Result<int64_t> last =
        session->db.QueryInt("SELECT coalesce(max(seq), 0) FROM " + QuoteIdent(kChangeLogTable));
    if (!last.ok()) return last.status().WithContext("reading the change log");
    Result<PublishState> state = LoadPublishState(session->db);
    if (!state.ok()) return state.status();
    if (static_cast<uint64_t>(*last) > state->confirmed_seq)
      unpublished = static_cast<uint64_t>(*last) - state->confirmed_seq;
  }
  answer["unpublished"] = unpublished;
  Result<int64_t> gaps = session->db.QueryInt("SELECT count(*) FROM " + QuoteIdent(kGapsTable));
  if (!gaps.ok()) return gaps.status().WithContext("reading the recorded gaps");
  answer["gaps"] = *gaps;
  nlohmann::json tables = nlohmann::json::array();
  for (TableSchema& t : *schema) {
    Result<TableDigest> digest = DigestTable(session->db, t);
    if (!digest.ok()) return digest.status();
    tables.push_back({{"name", t.name}, {"rows", digest->rows}, {"sum", digest->sum.Hex()}});
    session->digests[t.name] = std::move(*digest);
    session->schemas[t.name] = std::move(t);
  }
  answer["tables"] = std::move(tables);
  // The tables' definitions, compared by the command too (docs/SCHEMA.md, schemas that differ).
  Result<SchemaObjects> objects = ReadLiveSchema(session->db);
  if (!objects.ok()) return objects.status();
  answer["schema"] = TableDigests(*objects);
  session->last_used = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  sessions_[id] = std::move(session);
  return answer;
}

Result<nlohmann::json> VerifyResponder::Buckets(const std::string& id, const std::string& table) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end())
    return Status::NotFound("verify session " + id + " is not open here (it ended, or timed out)");
  it->second->last_used = std::chrono::steady_clock::now();
  auto digest = it->second->digests.find(table);
  if (digest == it->second->digests.end()) return Status::NotFound("no table " + table + " here");
  nlohmann::json buckets = nlohmann::json::array();
  for (size_t b = 0; b < TableDigest::kBuckets; ++b) {
    if (digest->second.bucket_rows[b] == 0) continue;
    buckets.push_back({b, digest->second.bucket_rows[b], digest->second.bucket_sums[b].Hex()});
  }
  return nlohmann::json{{"buckets", std::move(buckets)}};
}

Result<nlohmann::json> VerifyResponder::Rows(const std::string& id, const std::string& table,
                                             const nlohmann::json& buckets) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end())
    return Status::NotFound("verify session " + id + " is not open here (it ended, or timed out)");
  VerifySession& session = *it->second;
  session.last_used = std::chrono::steady_clock::now();
  auto schema = session.schemas.find(table);
  if (schema == session.schemas.end()) return Status::NotFound("no table " + table + " here");
  std::vector<uint32_t> wanted;
  for (const nlohmann::json& b : buckets) {
    if (b.is_number_unsigned()) wanted.push_back(b.get<uint32_t>());
  }
  ActiveDb active(this, session.db);
  Result<std::vector<KeyedRow>> rows = RowsInBuckets(session.db, schema->second, wanted);
  if (!rows.ok()) return rows.status();
  if (rows->size() > kMaxRowsPerAnswer) {
    return Status::InvalidArgument("the buckets asked for hold " + std::to_string(rows->size()) +
                                   " rows of table " + table + ", more than one answer carries (" +
                                   std::to_string(kMaxRowsPerAnswer) + ")");
  }
  nlohmann::json out = nlohmann::json::array();
  for (const KeyedRow& r : *rows) out.push_back({{"key", KeyToJson(r.key)}, {"hash", r.hash.Hex()}});
  return nlohmann::json{{"rows", std::move(out)}};
}

Result<nlohmann::json> VerifyResponder::Repair(const std::string& table, const nlohmann::json& keys) {
  Result<Database> db = Database::Open(options_.db_path);
  if (!db.ok()) return db.status();
  Transaction write(&*db);
  MARMOT_RETURN_IF_ERROR(write.Begin(/*immediate=*/true));
  Result<std::optional<TableSchema>> schema = ReadTableSchema(*db, table);
  if (!schema.ok()) return schema.status();
  if (!*schema) return Status::NotFound("cannot repair table " + table + ": this node does not replicate it");
  Result<Statement> id = db->Prepare("SELECT id FROM " + QuoteIdent(kTablesTable) + " WHERE name = ?");
  if (!id.ok()) return id.status();
  id->BindText(1, table);
  Result<bool> found = id->Step();
  if (!found.ok()) return found.status();
  if (!*found)
    return Status::NotFound("cannot repair table " + table + ": capture is not installed on it here");
  int64_t table_id = id->ColumnInt(0);
  size_t key_columns = (*schema)->KeyColumns().size();
  std::string cols = "tbl";
  std::string params = "?";
  for (size_t i = 1; i <= key_columns; ++i) {
    cols += ", k" + std::to_string(i);
    params += ", ?";
  }
  Result<Statement> insert =
      db->Prepare("INSERT INTO " + QuoteIdent(kChangeLogTable) + " (" + cols + ") VALUES (" + params + ")");
  if (!insert.ok())
    return insert.status().WithContext("logging rows of table " + table + " to publish again");
  uint64_t logged = 0;
  for (const nlohmann::json& k : keys) {
    Result<std::vector<Value>> key = KeyFromJson(k);
    if (!key.ok()) return key.status();
    if (key->size() != key_columns) {
      return Status::InvalidArgument("table " + table + " has " + std::to_string(key_columns) +
                                     " key column(s); the key " + k.dump() + " does not fit");
    }
    insert->Reset();
    insert->BindInt(1, table_id);
    for (size_t i = 0; i < key->size(); ++i) insert->Bind(static_cast<int>(i + 2), (*key)[i]);
    MARMOT_RETURN_IF_ERROR(insert->Run());
    ++logged;
  }
  MARMOT_RETURN_IF_ERROR(write.Commit());
  return nlohmann::json{{"logged", logged}};
}

void VerifyResponder::JanitorLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!janitor_stop_) {
    cv_.wait_for(lock, std::chrono::seconds(5));
    auto now = std::chrono::steady_clock::now();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      it = (now - it->second->last_used > kVerifySessionIdle) ? sessions_.erase(it) : std::next(it);
    }
  }
  sessions_.clear();
}

}  // namespace marmot
