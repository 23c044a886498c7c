#include "node/node.h"

#include <spdlog/spdlog.h>

#include "db/applier.h"
#include "db/capture.h"
#include "db/change_reader.h"
#include "db/change_watcher.h"
#include "db/schema.h"
#include "db/sqlite.h"
#include "stream/consumer.h"
#include "stream/publisher.h"

namespace marmot {

Node::Node(NodeOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<Node>> Node::Start(NodeOptions options) {
  std::unique_ptr<Node> node(new Node(std::move(options)));
  MARMOT_RETURN_IF_ERROR(node->PrepareDatabase());
  MARMOT_RETURN_IF_ERROR(node->ConnectNats());
  MARMOT_RETURN_IF_ERROR(node->StartPipeline());
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
  Result<std::vector<TableSchema>> tables = ReadSchema(*db);
  if (!tables.ok()) return tables.status();
  if (tables->empty())
    spdlog::warn("{} has no tables yet; tables created later are captured from the next start",
                 options_.db_path);
  return InstallCapture(*db, *tables);
}

Status Node::ConnectNats() {
  if (options_.nats.urls.empty()) {
    if (!options_.embedded) return Status::Error("no [nats] urls and no embedded server configured");
    Result<std::unique_ptr<EmbeddedNatsServer>> server = EmbeddedNatsServer::Start(*options_.embedded);
    if (!server.ok()) return server.status().WithContext("starting embedded nats-server");
    server_ = std::move(*server);
    options_.nats.urls = {server_->client_url()};
  }
  nats_url_ = options_.nats.urls.front();
  Result<std::unique_ptr<NatsClient>> client = NatsClient::Connect(options_.nats);
  if (!client.ok()) return client.status();
  client_ = std::move(*client);
  MARMOT_RETURN_IF_ERROR(client_->WaitForJetStream(std::chrono::seconds(120)));
  // In a cluster, creating an R3 stream fails until enough servers have joined; keep trying.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (true) {
    Status s = EnsureStreams(client_->jetstream(), options_.layout);
    if (s.ok()) return Status();
    if (std::chrono::steady_clock::now() > deadline ||
        s.message().find("different settings") != std::string::npos) {
      return s;
    }
    spdlog::info("{}; retrying", s.message());
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

Status Node::StartPipeline() {
  std::function<std::optional<uint64_t>()> local_cursor;
  if (options_.publish) {
    Result<std::unique_ptr<ChangeReader>> reader = ChangeReader::Open(options_.db_path);
    if (!reader.ok()) return reader.status();
    reader_ = std::move(*reader);
    Result<std::unique_ptr<ChangeWatcher>> watcher =
        ChangeWatcher::Open(options_.db_path, options_.polling_interval);
    if (!watcher.ok()) return watcher.status();
    watcher_ = std::move(*watcher);
    PublisherOptions po;
    po.node_id = options_.node_id;
    po.layout = options_.layout;
    po.scan_max_changes = options_.scan_max_changes;
    po.cleanup_interval = options_.cleanup_interval;
    publisher_ = std::make_unique<ChangePublisher>(client_.get(), reader_.get(), watcher_.get(), po);
    ChangePublisher* publisher = publisher_.get();
    local_cursor = [publisher]() -> std::optional<uint64_t> { return publisher->cursor(); };
  }
  if (options_.replicate) {
    for (int shard = 1; shard <= options_.layout.shards; ++shard) {
      Result<std::unique_ptr<Applier>> applier = Applier::Open(options_.db_path);
      if (!applier.ok()) return applier.status();
      ConsumerOptions co;
      co.layout = options_.layout;
      co.shard = shard;
      co.node_id = options_.node_id;
      auto consumer = std::make_unique<ShardConsumer>(client_.get(), std::move(*applier), co, local_cursor);
      MARMOT_RETURN_IF_ERROR(consumer->Start());
      consumers_.push_back(std::move(consumer));
    }
  }
  if (publisher_) threads_.emplace_back([this] { publisher_->Run(stop_); });
  for (auto& consumer : consumers_) threads_.emplace_back([this, c = consumer.get()] { c->Run(stop_); });
  return Status();
}

void Node::Stop() {
  if (stopped_) return;
  stopped_ = true;
  spdlog::info("stopping: publishing what is captured and finishing the batch being applied");
  stop_.store(true);
  if (watcher_) watcher_->Stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  consumers_.clear();
  publisher_.reset();
  client_.reset();
  server_.reset();
  spdlog::info("stopped");
}

Node::~Node() { Stop(); }

}  // namespace marmot
