#include "verify/verify_responder.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <set>

#include "db/change_log_hold.h"
#include "db/marmot_tables.h"
#include "db/schema.h"
#include "db/schema_objects.h"
#include "db/sqlite.h"
#include "stream/nats_client.h"
#include "util/host_port.h"
#include "verify/table_digest.h"
#include "verify/verify_barriers.h"
#include "verify/verify_protocol.h"

namespace marmot {

// One verify session: a read transaction and what was computed in it.
struct VerifySession {
  explicit VerifySession(Database database) : db(std::move(database)) {}
  std::mutex mu;  // one request at a time works in the session
  Database db;
  std::unique_ptr<Transaction> read;
  std::map<std::string, TableSchema> schemas;
  std::map<std::string, TableDigest> digests;
  // table -> the rows left out (by row hash: a key can name a row in more than one spelling,
  // 'abc' and 'ABC' under NOCASE, or '5' and 5 in an INTEGER column)
  std::map<std::string, std::set<std::pair<uint64_t, uint64_t>>> excluded;
  std::chrono::steady_clock::time_point last_used;
};

namespace {

// How many rows one "rows" answer may hold; the verifier asks for fewer buckets at a time.
constexpr size_t kMaxRowsPerAnswer = 20000;
// How many rows written here but not surely in the streams one digest answer may name (the
// answer must fit in one NATS message, 1 MB by default).
constexpr size_t kMaxLocalKeys = 20000;
// A prepared session's hold and barriers outlast the verifier's wait by this much.
constexpr std::chrono::seconds kPrepareMargin{10};

// The string `name` of a request, or "" when it is missing or not a string.
std::string StringField(const nlohmann::json& request, const char* name) {
  auto it = request.find(name);
  return it != request.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::chrono::milliseconds Millis(const nlohmann::json& request, const char* name, int64_t fallback) {
  int64_t ms = fallback;
  if (request.contains(name) && request[name].is_number_unsigned()) ms = request[name].get<int64_t>();
  return std::chrono::milliseconds(std::clamp<int64_t>(ms, 100, int64_t{3600} * 1000));
}

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
  stopping_.store(true);  // database work ends at its next step (Interrupted); no new request starts
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A digest request waiting for its barriers goes on now (and fails).
    if (options_.barriers) {
      for (const auto& [id, p] : prepared_) options_.barriers->Release(id);
    }
  }
  if (subscription_) {
    // nats.c calls OnComplete once the subscription is closed and no handler runs any more.
    if (natsSubscription_Unsubscribe(subscription_.get()) == NATS_OK) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return subscription_closed_; });
    }
    subscription_.reset();
  }
  std::list<Worker> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    janitor_stop_ = true;
    workers.swap(workers_);
  }
  cv_.notify_all();
  for (Worker& w : workers) w.thread.join();
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
  const std::string op = request["op"].get<std::string>();
  // A repair names the one node that repairs; the others have nothing to do.
  if (op == "repair" && StringField(request, "instance") != self->options_.instance) return;
  if (op == "whois" || op == "prepare" || op == "end") {
    self->HandleSafely(reply, request);  // quick: answered on this thread, in the order they came
    return;
  }
  // verify counts the nodes by this answer, so it goes out now, before the digests are computed.
  if (op == "digest") self->Reply(reply, {{"op", "hello"}});
  self->HandleOnWorker(reply, request);
}

void VerifyResponder::HandleOnWorker(const std::string& reply, const nlohmann::json& request) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_.load()) return;  // the destructor joins the workers it has; no new one after
    ReapWorkers();
    if (workers_.size() < kMaxWorkers) {
      auto done = std::make_shared<std::atomic<bool>>(false);
      workers_.push_back({std::thread([this, reply, request, done] {
                            HandleSafely(reply, request);
                            done->store(true);
                          }),
                          done});
      return;
    }
  }
  Reply(reply, {{"error", "this node is busy with " + std::to_string(kMaxWorkers) +
                              " verify requests; run one verify at a time"}});
}

void VerifyResponder::HandleSafely(const std::string& reply, const nlohmann::json& request) {
  try {
    Handle(reply, request);
  } catch (const std::exception& e) {  // a malformed request (nlohmann::json type errors)
    spdlog::warn("verify: a request failed: {}", e.what());
    Reply(reply, {{"error", std::string("bad verify request: ") + e.what()}});
  }
}

void VerifyResponder::ReapWorkers() {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (!it->done->load()) {
      ++it;
      continue;
    }
    it->thread.join();  // it has returned from Handle: the join is immediate
    it = workers_.erase(it);
  }
}

int VerifyResponder::Interrupted(void* closure) {
  return static_cast<VerifyResponder*>(closure)->stopping_.load() ? 1 : 0;
}

void VerifyResponder::WatchForStop(Database& db) {
  sqlite3_progress_handler(db.get(), 10000, &Interrupted, this);
}

void VerifyResponder::Reply(const std::string& reply, nlohmann::json answer) {
  answer["node"] = options_.node_id;
  answer["instance"] = options_.instance;
  // Keys are the application's values: TEXT that is not UTF-8 is sent with U+FFFD in its place
  // (it is compared by row hash, not by this text).
  std::string data = answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  natsStatus s =
      natsConnection_Publish(connection_, reply.c_str(), data.data(), static_cast<int>(data.size()));
  if (s == NATS_OK) return;
  spdlog::warn("verify: cannot answer on {}: {}", reply, NatsError(s));
  if (answer.contains("error")) return;
  // Say why instead (an answer larger than the server's max_payload), so verify need not wait.
  nlohmann::json error = {
      {"node", options_.node_id},
      {"instance", options_.instance},
      {"error", "cannot send an answer of " + std::to_string(data.size()) + " bytes: " + NatsError(s)}};
  std::string text = error.dump();
  natsConnection_Publish(connection_, reply.c_str(), text.data(), static_cast<int>(text.size()));
}

void VerifyResponder::Handle(const std::string& reply, const nlohmann::json& request) {
  const std::string op = request["op"].get<std::string>();
  const std::string session = StringField(request, "session");
  const std::string table = StringField(request, "table");
  Result<nlohmann::json> answer = nlohmann::json::object();
  if (op == "whois") {  // node_id_check.h
    Reply(reply, {{"op", "whois"}, {"db_path", options_.db_path}, {"host", LocalHostName()}});
    return;
  }
  if (op == "prepare") {
    answer = Prepare(session, Millis(request, "hold_ms", 60000));
    if (answer.ok()) (*answer)["op"] = "prepared";
  } else if (op == "digest") {  // its "hello" went out already (OnMessage)
    answer = OpenSession(session, Millis(request, "wait_ms", 60000));
    if (answer.ok()) (*answer)["op"] = "digest";
  } else if (op == "exclude") {
    answer = Exclude(session, request.value("keys", nlohmann::json::object()));
  } else if (op == "buckets") {
    answer = Buckets(session, table);
  } else if (op == "rows") {
    answer = Rows(session, table, request.value("buckets", nlohmann::json::array()));
  } else if (op == "end") {
    DropPrepared(session);
    std::lock_guard<std::mutex> lock(mu_);
    sessions_.erase(session);
    return;
  } else if (op == "repair") {  // for this node (OnMessage)
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

Result<nlohmann::json> VerifyResponder::Prepare(const std::string& id, std::chrono::milliseconds hold) {
  if (id.empty()) return Status::InvalidArgument("a prepare request needs a session id");
  if (options_.streams.empty() || !options_.barriers) {
    return Status::InvalidArgument(
        "this node does not apply the streams (replicate = false): its rows cannot be compared");
  }
  Prepared p;
  p.expires = std::chrono::steady_clock::now() + hold + kPrepareMargin;
  options_.barriers->Expect(id, hold + kPrepareMargin);
  if (options_.hold && options_.publishing) {
    p.held = options_.hold->Hold();
    p.holding = true;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (prepared_.count(id) && prepared_[id].holding) options_.hold->Release(prepared_[id].held);
  prepared_[id] = p;
  return nlohmann::json::object();
}

void VerifyResponder::DropPrepared(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = prepared_.find(id);
  if (it == prepared_.end()) return;
  if (it->second.holding) options_.hold->Release(it->second.held);
  prepared_.erase(it);
  if (options_.barriers) options_.barriers->Release(id);
}

Result<nlohmann::json> VerifyResponder::LocalKeys(VerifySession& session, uint64_t held) {
  nlohmann::json local = nlohmann::json::object();
  Result<int> width = ChangeLogKeyColumns(session.db);
  if (!width.ok()) return width.status();
  std::string cols = "t.name";
  for (int i = 1; i <= *width; ++i) cols += ", l.k" + std::to_string(i);
  Result<Statement> stmt =
      session.db.Prepare("SELECT " + cols + " FROM " + QuoteIdent(kChangeLogTable) + " AS l JOIN " +
                         QuoteIdent(kTablesTable) + " AS t ON t.id = l.tbl WHERE l.seq > ?");
  if (!stmt.ok()) return stmt.status().WithContext("reading the change log");
  stmt->BindInt(1, static_cast<int64_t>(held));
  std::map<std::string, std::set<std::string>> keys;
  size_t count = 0;
  while (true) {
    Result<bool> row = stmt->Step();
    if (!row.ok()) return row.status().WithContext("reading the change log");
    if (!*row) break;
    std::string table = stmt->ColumnText(0);
    auto schema = session.schemas.find(table);
    if (schema == session.schemas.end()) continue;  // not replicated (or gone): not compared either
    std::vector<Value> key(schema->second.KeyColumns().size());
    for (size_t i = 0; i < key.size() && static_cast<int>(i) < *width; ++i)
      stmt->ReadColumn(static_cast<int>(i + 1), &key[i]);
    if (keys[table].insert(KeyToJson(key).dump()).second && ++count > kMaxLocalKeys) {
      return Status::Unavailable("more than " + std::to_string(kMaxLocalKeys) +
                                 " rows written here may reach the streams only after the verify barrier; "
                                 "verify again when the writers slow down");
    }
  }
  for (const auto& [table, set] : keys) {
    nlohmann::json list = nlohmann::json::array();
    for (const std::string& k : set) list.push_back(nlohmann::json::parse(k));
    local[table] = std::move(list);
  }
  return local;
}

Result<nlohmann::json> VerifyResponder::OpenSession(const std::string& id, std::chrono::milliseconds wait) {
  if (id.empty()) return Status::InvalidArgument("a digest request needs a session id");
  Prepared prepared;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = prepared_.find(id);
    if (it == prepared_.end())
      return Status::NotFound("verify session " + id + " was not prepared here (or its hold passed)");
    it->second.opening = true;
    prepared = it->second;
  }
  // One digest at a time: two sessions waiting for their barriers at once can each hold a
  // consumer the other needs (in stream 1 A's barrier comes first, in stream 2 B's). The second
  // waits here; meanwhile its barriers pass after VerifyBarriers::kClaimWait, and it fails (exit
  // 2, "went on before the snapshot") instead of both failing after their whole wait.
  std::unique_lock<std::timed_mutex> one_digest(digest_mu_, std::defer_lock);
  if (!one_digest.try_lock_for(wait)) {
    DropPrepared(id);
    return Status::Unavailable(
        "this node was computing another verify's digests for the whole wait; run "
        "one verify at a time");
  }
  Result<std::map<std::string, uint64_t>> reached = options_.barriers->WaitAll(id, options_.streams, wait);
  if (!reached.ok()) {
    DropPrepared(id);
    return reached.status();
  }
  Result<nlohmann::json> answer = Digest(id, prepared, *reached);
  DropPrepared(id);  // the consumers go on (also when the digest failed)
  return answer;
}

Result<nlohmann::json> VerifyResponder::Digest(const std::string& id, const Prepared& prepared,
                                               const std::map<std::string, uint64_t>& barriers) {
  Database::Options ro;
  ro.read_only = true;
  Result<Database> db = Database::Open(options_.db_path, ro);
  if (!db.ok()) return db.status();
  auto session = std::make_shared<VerifySession>(std::move(*db));
  WatchForStop(session->db);
  session->read = std::make_unique<Transaction>(&session->db);
  MARMOT_RETURN_IF_ERROR(session->read->Begin(/*immediate=*/false));

  nlohmann::json answer;
  Result<std::vector<TableSchema>> schema = ReadSchema(session->db);  // starts the read snapshot
  if (!schema.ok()) return schema.status();
  options_.barriers->Release(id);  // the snapshot is taken: the consumers may go on
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
  // Every consumer stood at its barrier when the snapshot began (VerifyBarriers), so no position
  // may lie past one; if one does, these digests are not comparable.
  for (const auto& [stream, barrier] : barriers) {
    if (positions.value(stream, uint64_t{0}) > barrier) {
      return Status::Unavailable("stream " + stream + " was applied past the verify barrier (message " +
                                 std::to_string(barrier) + ") before the snapshot was taken");
    }
  }
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
  answer["local"] = nlohmann::json::object();
  if (prepared.holding) {
    // Entries up to this line are in the streams before the barriers, hence in every node's rows.
    uint64_t line = options_.hold->LastBefore(prepared.held, barriers);
    Result<nlohmann::json> local = LocalKeys(*session, line);
    if (!local.ok()) return local.status();
    answer["local"] = std::move(*local);
  }
  // The tables' definitions, compared by the command too (docs/SCHEMA.md, schemas that differ).
  Result<SchemaObjects> objects = ReadLiveSchema(session->db);
  if (!objects.ok()) return objects.status();
  answer["schema"] = TableDigests(*objects);
  session->last_used = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  // An "end" that came while the digests were computed ended the session (DropPrepared).
  if (!prepared_.count(id)) return Status::Unavailable("verify session " + id + " ended during its digest");
  sessions_[id] = std::move(session);
  return answer;
}

Result<std::shared_ptr<VerifySession>> VerifyResponder::FindSession(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end())
    return Status::NotFound("verify session " + id + " is not open here (it ended, or timed out)");
  it->second->last_used = std::chrono::steady_clock::now();
  return it->second;
}

Result<nlohmann::json> VerifyResponder::Exclude(const std::string& id, const nlohmann::json& keys) {
  Result<std::shared_ptr<VerifySession>> found = FindSession(id);
  if (!found.ok()) return found.status();
  VerifySession& session = **found;
  std::lock_guard<std::mutex> lock(session.mu);
  if (!keys.is_object()) return Status::InvalidArgument("exclude: keys must be an object of tables");
  for (const auto& [table, list] : keys.items()) {
    auto schema = session.schemas.find(table);
    if (schema == session.schemas.end() || !list.is_array()) continue;
    TableDigest& digest = session.digests[table];
    auto& excluded = session.excluded[table];
    for (const nlohmann::json& k : list) {
      Result<std::vector<Value>> key = KeyFromJson(k);
      if (!key.ok()) return key.status();
      if (key->size() != schema->second.KeyColumns().size()) continue;
      bool found = false;
      RowSum hash;
      uint32_t bucket = 0;
      MARMOT_RETURN_IF_ERROR(HashRowByKey(session.db, schema->second, *key, &found, &hash, &bucket));
      if (!found || !excluded.insert({hash.low, hash.high}).second) continue;
      --digest.rows;
      digest.sum.Subtract(hash);
      --digest.bucket_rows[bucket];
      digest.bucket_sums[bucket].Subtract(hash);
    }
  }
  nlohmann::json tables = nlohmann::json::array();
  for (const auto& [name, digest] : session.digests)
    tables.push_back({{"name", name}, {"rows", digest.rows}, {"sum", digest.sum.Hex()}});
  return nlohmann::json{{"tables", std::move(tables)}};
}

Result<nlohmann::json> VerifyResponder::Buckets(const std::string& id, const std::string& table) {
  Result<std::shared_ptr<VerifySession>> session = FindSession(id);
  if (!session.ok()) return session.status();
  std::lock_guard<std::mutex> lock((*session)->mu);
  auto digest = (*session)->digests.find(table);
  if (digest == (*session)->digests.end()) return Status::NotFound("no table " + table + " here");
  nlohmann::json buckets = nlohmann::json::array();
  for (size_t b = 0; b < TableDigest::kBuckets; ++b) {
    if (digest->second.bucket_rows[b] == 0) continue;
    buckets.push_back({b, digest->second.bucket_rows[b], digest->second.bucket_sums[b].Hex()});
  }
  return nlohmann::json{{"buckets", std::move(buckets)}};
}

Result<nlohmann::json> VerifyResponder::Rows(const std::string& id, const std::string& table,
                                             const nlohmann::json& buckets) {
  Result<std::shared_ptr<VerifySession>> found = FindSession(id);
  if (!found.ok()) return found.status();
  VerifySession& session = **found;
  std::lock_guard<std::mutex> lock(session.mu);
  auto schema = session.schemas.find(table);
  if (schema == session.schemas.end()) return Status::NotFound("no table " + table + " here");
  std::vector<uint32_t> wanted;
  for (const nlohmann::json& b : buckets) {
    if (b.is_number_unsigned()) wanted.push_back(b.get<uint32_t>());
  }
  Result<std::vector<KeyedRow>> rows = RowsInBuckets(session.db, schema->second, wanted);
  if (!rows.ok()) return rows.status();
  if (rows->size() > kMaxRowsPerAnswer) {
    return Status::InvalidArgument("the buckets asked for hold " + std::to_string(rows->size()) +
                                   " rows of table " + table + ", more than one answer carries (" +
                                   std::to_string(kMaxRowsPerAnswer) + ")");
  }
  const auto& excluded = session.excluded[table];
  nlohmann::json out = nlohmann::json::array();
  for (const KeyedRow& r : *rows) {
    if (excluded.count({r.hash.low, r.hash.high})) continue;
    out.push_back({{"key", KeyToJson(r.key)}, {"hash", r.hash.Hex()}});
  }
  return nlohmann::json{{"rows", std::move(out)}};
}

Result<nlohmann::json> VerifyResponder::Repair(const std::string& table, const nlohmann::json& keys) {
  Result<Database> db = Database::Open(options_.db_path);
  if (!db.ok()) return db.status();
  WatchForStop(*db);
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
    ReapWorkers();
    auto now = std::chrono::steady_clock::now();
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      it = (now - it->second->last_used > kVerifySessionIdle) ? sessions_.erase(it) : std::next(it);
    }
    for (auto it = prepared_.begin(); it != prepared_.end();) {
      if (it->second.expires > now || it->second.opening) {
        ++it;
        continue;
      }
      if (it->second.holding) options_.hold->Release(it->second.held);
      if (options_.barriers) options_.barriers->Release(it->first);
      it = prepared_.erase(it);
    }
  }
  sessions_.clear();
  for (auto& [id, p] : prepared_) {
    if (p.holding) options_.hold->Release(p.held);
  }
  prepared_.clear();
}

}  // namespace marmot
