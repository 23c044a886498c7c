#include "node/node.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>

#include "db/applier.h"
#include "db/capture.h"
#include "db/change_reader.h"
#include "db/change_watcher.h"
#include "db/marmot_tables.h"
#include "db/publish_state.h"
#include "db/schema.h"
#include "db/schema_applier.h"
#include "db/sqlite.h"
#include "node/status_board.h"
#include "snapshot/snapshot_keeper.h"
#include "stream/consumer.h"
#include "stream/jetstream_sink.h"
#include "stream/jetstream_source.h"
#include "stream/publisher.h"
#include "stream/schema_stream.h"
#include "telemetry/http_listener.h"
#include "util/clock.h"
#include "util/write_file.h"
#include "verify/node_id_check.h"
#include "verify/verify_protocol.h"
#include "verify/verify_responder.h"

namespace marmot {
namespace {

// With more than one shard the rows of a table travel in several streams, which a node may apply
// in another order than they were written (each stream is read at its own pace, e.g. while
// catching up). With a UNIQUE index besides the key, an older row that takes a unique value can
// then remove, by REPLACE, a newer row on that node only (docs/CLUSTER.md, "Shards and UNIQUE
// indexes").
void WarnOfUniqueIndexesAcrossShards(Database& db, const std::vector<TableSchema>& tables, int shards) {
  std::string names;
  for (const TableSchema& table : tables) {
    Result<std::vector<std::string>> unique = UniqueIndexesBesidesKey(db, table.name);
    if (unique.ok() && !unique->empty()) names += (names.empty() ? "" : ", ") + QuoteIdent(table.name);
  }
  if (names.empty()) return;
  spdlog::warn(
      "[replication_log] shards = {} and table(s) {} have a UNIQUE index besides the primary key: rows of "
      "one "
      "table travel in several streams, a node can apply them in another order than they were written, and a "
      "row that takes another's unique value can then remove it on that node only. Nodes may differ (marmot "
      "verify finds it, -repair mends it); use shards = 1 with such tables (docs/CLUSTER.md, \"Shards and "
      "UNIQUE indexes\")",
      shards, names);
}

}  // namespace

Node::Node(NodeOptions options)
    : options_(std::move(options)),
      metrics_(std::make_unique<NodeMetrics>(options_.prometheus.name_space, options_.prometheus.subsystem)) {
}

Result<std::unique_ptr<Node>> Node::Start(NodeOptions options, const std::atomic<bool>* cancel) {
  std::unique_ptr<Node> node(new Node(std::move(options)));
  node->cancel_ = cancel;
  node->instance_ = NewPublishSession();  // random, like a publisher session
  std::filesystem::path dir = std::filesystem::absolute(node->options_.db_path).parent_path();
  if (::access(dir.c_str(), W_OK) != 0) {
    return Status::IoError(
        "the directory " + dir.string() + " of database " + node->options_.db_path +
        " is not writable: SQLite (in WAL mode) and marmot create files next to the database "
        "(-wal, -shm, the lock file); make it writable for the user running marmot");
  }
  Result<ProcessLock> lock =
      ProcessLock::Acquire(DatabaseLockPath(node->options_.db_path), "database " + node->options_.db_path);
  if (!lock.ok()) return lock.status();
  node->lock_.emplace(std::move(*lock));
  MARMOT_RETURN_IF_ERROR(node->PrepareDatabase());
  MARMOT_RETURN_IF_ERROR(node->StartHttpListener());
  Result<DatabaseWatch> watch = DatabaseWatch::Open(node->options_.db_path);
  if (!watch.ok()) return watch.status();
  node->database_watch_.emplace(std::move(*watch));
  MARMOT_RETURN_IF_ERROR(node->ConnectNats());
  std::string shared_id =
      NodeIdInUse(node->client_->connection(), VerifySubject(node->options_.layout.stream_prefix),
                  node->options_.node_id, std::chrono::milliseconds(500));
  if (!shared_id.empty()) spdlog::warn("{}", shared_id);
  MARMOT_RETURN_IF_ERROR(node->OpenSnapshots());
  MARMOT_RETURN_IF_ERROR(node->BootstrapFromSnapshot());
  MARMOT_RETURN_IF_ERROR(node->StartPipeline());
  VerifyResponderOptions vo;
  vo.db_path = node->options_.db_path;
  vo.node_id = node->options_.node_id;
  vo.instance = node->instance_;
  vo.subject = VerifySubject(node->options_.layout.stream_prefix);
  vo.publishing = node->options_.publish;
  if (node->options_.replicate) {
    for (int shard = 1; shard <= node->options_.layout.shards; ++shard)
      vo.streams.push_back(node->options_.layout.StreamName(shard));
  }
  vo.barriers = &node->verify_barriers_;
  if (node->options_.publish) vo.hold = &node->change_log_hold_;
  Result<std::unique_ptr<VerifyResponder>> verify = VerifyResponder::Start(node->client_->connection(), vo);
  if (!verify.ok()) return verify.status();
  node->verify_ = std::move(*verify);
  node->running_ = true;
  node->cancel_ = nullptr;
  if (node->snapshots_) node->supervisor_ = std::thread([n = node.get()] { n->SupervisorLoop(); });
  node->watch_thread_ = std::thread([n = node.get()] { n->WatchDatabaseLoop(); });
  node->heartbeat_ = std::thread([n = node.get()] { n->HeartbeatLoop(); });
  spdlog::info("node {} running on {} ({} shard(s), publish {}, replicate {})", node->options_.node_id,
               node->options_.db_path, node->options_.layout.shards, node->options_.publish ? "on" : "off",
               node->options_.replicate ? "on" : "off");
  return node;
}

Status Node::PrepareDatabase() {
  Database::Options open;
  open.create = true;
  Result<Database> db = Database::Open(options_.db_path, open);
  if (!db.ok()) return db.status();
  bool switched = false;
  MARMOT_RETURN_IF_ERROR(db->EnsureWal(&switched));
  if (switched)
    spdlog::info("switched {} to WAL journal mode (marmot needs WAL; it stays WAL)", options_.db_path);
  MARMOT_RETURN_IF_ERROR(StoreSelection(*db));
  Result<std::vector<TableSchema>> tables = ReadSchema(*db);
  if (!tables.ok()) return tables.status();
  if (tables->empty())
    spdlog::warn("{} has no tables yet; tables created later are captured when marmot sees them",
                 options_.db_path);
  MARMOT_RETURN_IF_ERROR(InstallCapture(*db, *tables, /*log_rows_of_new_tables=*/true));
  if (options_.layout.shards > 1) WarnOfUniqueIndexesAcrossShards(*db, *tables, options_.layout.shards);
  {
    Transaction txn(&*db);
    MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true));
    MARMOT_RETURN_IF_ERROR(InitSchemaRecords(*db).WithContext("recording the schema of " + options_.db_path));
    MARMOT_RETURN_IF_ERROR(txn.Commit());
  }
  Result<int64_t> cookie = db->QueryInt("PRAGMA schema_version");
  if (!cookie.ok()) return cookie.status().WithContext("reading the schema cookie of " + options_.db_path);
  installed_schema_ = *cookie;
  return Status();
}

Status Node::StoreSelection(Database& db) {
  Transaction txn(&db);
  MARMOT_RETURN_IF_ERROR(txn.Begin(/*immediate=*/true));
  MARMOT_RETURN_IF_ERROR(EnsureMarmotTables(db, 1));
  Result<std::vector<TableSchema>> before = ReadSchema(db);
  if (!before.ok()) return before.status();
  MARMOT_RETURN_IF_ERROR(StoreTableSelection(db, options_.selection));
  // The first start: nothing was replicated before, so nothing moved.
  Result<int64_t> registered = db.QueryInt("SELECT count(*) FROM " + QuoteIdent(kTablesTable));
  if (!registered.ok()) return registered.status();
  if (*registered == 0) return txn.Commit();
  Result<std::vector<TableSchema>> after = ReadSchema(db);
  if (!after.ok()) return after.status();
  auto names = [](const std::vector<TableSchema>& tables) {
    std::set<std::string> out;
    for (const TableSchema& t : tables) out.insert(t.name);
    return out;
  };
  std::set<std::string> was = names(*before);
  std::set<std::string> now = names(*after);
  std::string added;
  std::string removed;
  for (const std::string& t : now)
    if (was.count(t) == 0) added += (added.empty() ? "" : ", ") + QuoteIdent(t);
  for (const std::string& t : was)
    if (now.count(t) == 0) removed += (removed.empty() ? "" : ", ") + QuoteIdent(t);
  // A table moving in is captured as a new one (its rows are published), also when it was
  // replicated once before and still has an id.
  for (const std::string& t : now) {
    if (was.count(t) > 0) continue;
    Result<Statement> forget = db.Prepare("DELETE FROM " + QuoteIdent(kTablesTable) + " WHERE name = ?1");
    if (!forget.ok()) return forget.status();
    forget->BindText(1, t);
    MARMOT_RETURN_IF_ERROR(forget->Run());
  }
  if (!added.empty() || !removed.empty()) {
    spdlog::warn(
        "table selection changed ([replication] include/exclude): now replicated: {}; no longer replicated: "
        "{}. "
        "The rows of newly replicated tables are published now (docs/SCHEMA.md, table selection)",
        added.empty() ? "none" : added, removed.empty() ? "none" : removed);
  }
  return txn.Commit();
}

void Node::ReportRecordedGaps() {
  Result<Database> db = Database::Open(options_.db_path);
  if (!db.ok()) return;
  Result<int64_t> gaps = db->QueryInt("SELECT count(*) FROM " + QuoteIdent(kGapsTable));
  if (!gaps.ok() || *gaps == 0) return;
  Result<std::string> streams =
      db->QueryText("SELECT group_concat(DISTINCT stream) FROM " + QuoteIdent(kGapsTable));
  spdlog::error(
      "this node's copy of {} may be incomplete: {} gap(s) in stream(s) {} are recorded in __marmot__gaps "
      "(messages it will never apply); restore a snapshot, or copy the database from a complete node",
      options_.db_path, *gaps, streams.ok() ? *streams : "?");
}

Status Node::ConnectNats() {
  if (options_.nats.urls.empty()) {
    if (!options_.embedded)
      return Status::InvalidArgument("no [nats] urls and no embedded server configured");
    Result<std::unique_ptr<EmbeddedNatsServer>> server = EmbeddedNatsServer::Start(*options_.embedded);
    if (!server.ok()) return server.status().WithContext("starting embedded nats-server");
    server_ = std::move(*server);
    health_server_.store(server_.get());
    options_.nats.urls = {server_->client_url()};
    // `marmot verify` on this machine finds the server here (its port may be random).
    nats_url_file_ = NodeNatsUrlPath(options_.db_path);
    Status written = WriteFileWithMode(nats_url_file_, server_->client_url() + "\n", 0644);
    if (!written.ok()) spdlog::warn("{} (marmot verify will need -nats-url)", written.message());
  }
  nats_url_ = options_.nats.urls.front();
  Result<std::unique_ptr<NatsClient>> client = NatsClient::Connect(options_.nats);
  if (!client.ok()) return client.status();
  client_ = std::move(*client);
  health_client_.store(client_.get());
  MARMOT_RETURN_IF_ERROR(client_->WaitForJetStream(std::chrono::seconds(120)));
  // In a cluster, creating an R3 stream fails until enough servers have joined; keep trying.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (true) {
    Status s = EnsureStreams(client_->jetstream(), options_.layout);
    if (s.ok()) return Status();
    if (std::chrono::steady_clock::now() > deadline || s.Is(StatusCode::kInvalidArgument)) return s;
    spdlog::info("{}; retrying", s.message());
    for (int i = 0; i < 10 && !Cancelled(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (Cancelled()) return Status::Unavailable("cancelled while " + s.message());
  }
}

Status Node::StartPipeline() {
  stop_.store(false);
  std::function<std::optional<uint64_t>()> local_cursor;
  if (options_.publish) {
    Result<std::unique_ptr<ChangeReader>> reader = ChangeReader::Open(options_.db_path, installed_schema_);
    if (!reader.ok()) return reader.status();
    reader_ = std::move(*reader);
    reader_->set_hold(&change_log_hold_);
    NatsClient* client = client_.get();
    StreamLayout layout = options_.layout;
    uint64_t node_id = options_.node_id;
    reader_->set_schema_publisher(node_id, [client, layout, node_id](const std::string& payload) {
      return PublishSchemaMessage(client, layout, node_id, payload);
    });
    Result<std::unique_ptr<ChangeWatcher>> watcher =
        ChangeWatcher::Open(options_.db_path, options_.polling_interval);
    if (!watcher.ok()) return watcher.status();
    watcher_ = std::move(*watcher);
    Result<std::unique_ptr<JetStreamSink>> sink = JetStreamSink::Create(client_.get(), options_.layout);
    if (!sink.ok()) return sink.status();
    sink_ = std::move(*sink);
    PublisherOptions po;
    po.node_id = options_.node_id;
    po.layout = options_.layout;
    po.scan_max_changes = options_.scan_max_changes;
    po.cleanup_interval = options_.cleanup_interval;
    po.max_message_bytes = options_.max_message_bytes;
    po.metrics = metrics_.get();
    publisher_ =
        std::make_unique<ChangePublisher>(reader_.get(), sink_.get(), watcher_.get(), SystemClock::Get(), po);
    // Before any consumer applies anything: which of the log's entries are already in the streams
    // decides which incoming changes are superseded by local writes (Applier::Apply).
    MARMOT_RETURN_IF_ERROR(publisher_->Recover(cancel_ ? *cancel_ : stop_));
    ChangePublisher* publisher = publisher_.get();
    local_cursor = [publisher]() -> std::optional<uint64_t> { return publisher->cursor(); };
  }
  if (options_.replicate) {
    Result<std::unique_ptr<SchemaApplier>> schema_applier =
        SchemaApplier::Open(options_.db_path, options_.publish);
    if (!schema_applier.ok()) return schema_applier.status();
    schema_consumer_ = std::make_unique<SchemaConsumer>(client_.get(), options_.layout,
                                                        std::move(*schema_applier), metrics_.get());
    MARMOT_RETURN_IF_ERROR(schema_consumer_->Start());
    for (int shard = 1; shard <= options_.layout.shards; ++shard) {
      Result<std::unique_ptr<Applier>> applier = Applier::Open(options_.db_path);
      if (!applier.ok()) return applier.status();
      SchemaConsumer* schema = schema_consumer_.get();
      (*applier)->set_schema_wait(
          [this, schema](const std::string& why) { return WaitForSchema(schema, why); });
      ConsumerOptions co;
      co.layout = options_.layout;
      co.shard = shard;
      co.node_id = options_.node_id;
      co.max_message_bytes = options_.max_message_bytes;
      co.max_batch_bytes = options_.max_batch_bytes;
      co.metrics = metrics_.get();
      co.ensure_streams = [this] { return EnsureStreams(client_->jetstream(), options_.layout); };
      co.on_barrier = [this](const std::string& session, const std::string& stream, uint64_t seq,
                             const std::atomic<bool>& stop) {
        verify_barriers_.Reached(session, stream, seq, stop);
      };
      auto source = std::make_unique<JetStreamSource>(client_.get(), options_.layout, shard);
      auto consumer = std::make_unique<ShardConsumer>(std::move(source), std::move(*applier),
                                                      SystemClock::Get(), co, local_cursor);
      MARMOT_RETURN_IF_ERROR(consumer->Start());
      consumers_.push_back(std::move(consumer));
    }
    ReportRecordedGaps();
  }
  if (publisher_) threads_.emplace_back([this] { publisher_->Run(stop_); });
  for (auto& consumer : consumers_) threads_.emplace_back([this, c = consumer.get()] { c->Run(stop_); });
  pipeline_up_.store(true);
  return Status();
}

Status Node::WaitForSchema(SchemaConsumer* schema, const std::string& why) {
  spdlog::info("a change waits for the schema stream: {}", why);
  metrics_->SchemaWaited();
  const auto deadline = std::chrono::steady_clock::now() + kSchemaWaitMax;
  while (true) {
    schema->WaitCaughtUp(kSchemaWaitStep);
    if (stop_.load()) return Status::Unavailable("stopping while a change waits for its schema");
    if (!options_.publish || std::chrono::steady_clock::now() > deadline) break;
    // This node's own schema change, not back from the stream yet, may be what the change lacks
    // (a column renamed here): wait for it too.
    Result<Database> db = Database::Open(options_.db_path);
    if (!db.ok()) return db.status();
    Result<bool> in_flight = OwnSchemaChangeInFlight(*db);
    if (!in_flight.ok()) return in_flight.status();
    if (!*in_flight) break;
  }
  return Status();
}

void Node::StopPipeline() {
  pipeline_up_.store(false);
  stop_.store(true);
  if (watcher_) watcher_->Stop();
  if (schema_consumer_) schema_consumer_->Stop();  // also ends a shard consumer's wait for it
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  consumers_.clear();
  schema_consumer_.reset();
}

void Node::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (running_) spdlog::info("stopping: publishing what is captured and finishing the batch being applied");
  verify_barriers_.Cancel();  // a consumer or a verify request waiting at a barrier goes on now
  {
    std::lock_guard<std::mutex> lock(supervisor_mu_);
    shutdown_.store(true);
  }
  supervisor_cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  if (watch_thread_.joinable()) watch_thread_.join();
  if (heartbeat_.joinable()) heartbeat_.join();
  http_.reset();   // its handlers read the objects below
  board_.reset();  // uses the connection
  StopPipeline();
  publisher_.reset();
  snapshots_.reset();  // its lease bucket handle uses the connection
  verify_.reset();     // its subscription too
  // The connection first: once it is closed no ack handler can run, then the sink it calls goes.
  client_.reset();
  sink_.reset();
  server_.reset();
  if (!nats_url_file_.empty()) std::remove(nats_url_file_.c_str());
  if (running_) spdlog::info("stopped");
}

void Node::WatchDatabaseLoop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(supervisor_mu_);
      if (supervisor_cv_.wait_for(lock, std::chrono::seconds(2), [this] { return shutdown_.load(); })) return;
    }
    std::optional<std::string> changed = database_watch_->Changed();
    if (!changed) continue;
    spdlog::error(
        "{} while marmot runs on it: marmot's connections still use the old file, and the application's "
        "writes to the new one would never be captured. Stopping (what the old file captured is published "
        "first); start marmot again to work on the file that is there now",
        *changed);
    if (options_.on_database_lost) options_.on_database_lost();
    return;
  }
}

Node::~Node() { Stop(); }

}  // namespace marmot
