#include "verify/verify_command.h"

#include <nats/nats.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "db/schema_objects.h"
#include "stream/nats_handles.h"
#include "verify/table_digest.h"
#include "verify/verify_protocol.h"

namespace marmot {
namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
// Nodes are told apart by their process instance (two nodes may share a node id, e.g. clones
// that derive it from one /etc/machine-id): "<node id, 20 digits>:<instance>", so that a map of
// them is in node id order.
using Peer = std::string;
using Answers = std::map<Peer, Json>;  // peer -> its answer

Peer PeerOf(const Json& answer) {
  char id[21];
  std::snprintf(id, sizeof id, "%020llu", static_cast<unsigned long long>(answer["node"].get<uint64_t>()));
  return std::string(id) + ":" + answer.value("instance", std::string());
}

uint64_t NodeIdOf(const Peer& peer) { return std::stoull(peer.substr(0, 20)); }

constexpr std::chrono::seconds kHelloWindow{2};     // nodes announce themselves within this
constexpr std::chrono::minutes kDigestTimeout{30};  // a node digesting a huge database
constexpr std::chrono::seconds kAnswerTimeout{60};  // buckets, rows, repair
constexpr size_t kRowsPerRequest = 20000;           // as the responder's kMaxRowsPerAnswer
constexpr size_t kKeysPerRequest = 5000;            // keys to leave out, per "exclude" request

std::string NewSessionId() {
  std::random_device random;
  char id[17];
  std::snprintf(id, sizeof id, "%08x%08x", random(), random());
  return id;
}

// The tables whose definitions (CREATE statement, indexes, triggers) are not the same in every
// answer, a table missing somewhere included.
std::set<std::string> TablesDefinedDifferently(const Answers& digests) {
  std::set<std::string> tables;
  for (const auto& [node, answer] : digests) {
    for (const Json& t : answer["tables"]) tables.insert(t["name"].get<std::string>());
  }
  std::set<std::string> differ;
  for (const std::string& table : tables) {
    std::set<std::string> definitions;
    for (const auto& [node, answer] : digests) {
      if (answer.contains("schema"))
        definitions.insert(answer["schema"].value(ObjectKey(table), std::string()));
    }
    if (definitions.size() > 1) differ.insert(table);
  }
  return differ;
}

// How long verify compares again while table definitions differ (a schema change on its way to
// some nodes) before it reports them.
constexpr std::chrono::seconds kSchemaSettle{15};

class Verifier {
 public:
  Verifier(const VerifyOptions& options, NatsClient* client)
      : options_(options), client_(client), subject_(VerifySubject(options.layout.stream_prefix)) {}

  int Run();

 private:
  // Sends `request` to every node and gathers one answer per node. With `expect` empty, the nodes
  // that say hello within kHelloWindow are the ones waited for. Errors name the missing nodes.
  Result<Answers> Ask(const Json& request, const std::set<Peer>& expect, std::chrono::seconds timeout);
  // Sends `request` to every node without waiting for answers.
  void Tell(const Json& request);
  // The nodes end the current session (its read transaction, barriers and change-log hold).
  void EndSession() { Tell({{"op", "end"}, {"session", session_}}); }
  // Publishes the session's barrier message into every shard stream; returns stream -> sequence.
  Result<std::map<std::string, uint64_t>> PublishBarriers();
  // Prepare, barriers, digests, and the rows written locally left out (see verify_command.h).
  // `*left_out` gets the keys every node left out, by table.
  Result<Answers> DigestAtBarriers(std::map<std::string, std::set<std::string>>* left_out);
  // Compares one table across the nodes; adds its differing keys to `differing`.
  Status CompareRows(const std::string& table, std::vector<Json>* differing);
  // One comparison; with `repair`, node repair_from re-publishes what differs (sets *repaired).
  int Verify(bool repair, bool* repaired);
  // The keys that the last -repair asked to publish again, by table (KeyToJson dumps).
  std::map<std::string, std::set<std::string>> repaired_keys_;

  const VerifyOptions& options_;
  NatsClient* client_;
  std::string subject_;
  std::string session_;
  // "node N", or "node N#2" for the second of two nodes sharing id N.
  std::string Label(const Peer& peer) const { return labels_.at(peer); }
  void SetNodes(const Answers& answers);

  std::set<Peer> nodes_;
  std::map<Peer, std::string> labels_;
};

Result<Answers> Verifier::Ask(const Json& request, const std::set<Peer>& expect,
                              std::chrono::seconds timeout) {
  natsInbox* inbox_raw = nullptr;
  if (natsInbox_Create(&inbox_raw) != NATS_OK) return Status::Error("cannot create a NATS inbox");
  std::string inbox = inbox_raw;
  natsInbox_Destroy(inbox_raw);
  natsSubscription* sub_raw = nullptr;
  natsStatus s = natsConnection_SubscribeSync(&sub_raw, client_->connection(), inbox.c_str());
  if (s != NATS_OK) return NatsStatus(s, "subscribing to the answers of " + subject_);
  ClosingSubscription sub(client_->connection(), sub_raw);
  std::string data = request.dump();
  s = natsConnection_PublishRequest(client_->connection(), subject_.c_str(), inbox.c_str(), data.data(),
                                    static_cast<int>(data.size()));
  if (s != NATS_OK) return NatsStatus(s, "asking the nodes on " + subject_);

  std::set<Peer> waiting = expect;
  const bool discover = expect.empty();
  Answers answers;
  const auto start = Clock::now();
  auto hello_deadline = start + kHelloWindow;
  while (true) {
    auto now = Clock::now();
    if (!discover || now >= hello_deadline) {
      if (waiting.empty() && (!discover || !answers.empty() || now >= hello_deadline)) break;
    }
    auto deadline = (discover && now < hello_deadline) ? hello_deadline : start + timeout;
    if (now >= start + timeout) break;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    natsMsg* msg_raw = nullptr;
    s = natsSubscription_NextMsg(&msg_raw, sub.get(), std::max<int64_t>(left, 1));
    if (s == NATS_TIMEOUT) continue;
    if (s != NATS_OK) return NatsStatus(s, "reading the answers on " + subject_);
    NatsMsgPtr msg(msg_raw);
    Json answer = Json::parse(
        std::string_view(natsMsg_GetData(msg.get()), static_cast<size_t>(natsMsg_GetDataLength(msg.get()))),
        nullptr, /*allow_exceptions=*/false);
    if (!answer.is_object() || !answer.contains("node") || !answer["node"].is_number_unsigned()) continue;
    Peer node = PeerOf(answer);
    if (answer.value("op", "") == "hello") {
      if (discover && now < hello_deadline) waiting.insert(node);
      continue;
    }
    if (!discover && !expect.count(node)) continue;
    if (answer.contains("error")) {
      return Status::Error("node " + std::to_string(NodeIdOf(node)) + ": " +
                           answer["error"].get<std::string>());
    }
    waiting.erase(node);
    answers[node] = std::move(answer);
  }
  if (answers.empty() && discover) {
    return Status::Unavailable(
        "no node answered on " + subject_ +
        " (is a node running with this [nats] stream_prefix, reachable on this NATS?)");
  }
  if (!waiting.empty()) {
    std::string missing;
    for (const Peer& n : waiting) missing += (missing.empty() ? "" : ", ") + std::to_string(NodeIdOf(n));
    return Status::Unavailable("node(s) " + missing + " did not answer within " +
                               std::to_string(timeout.count()) + " s");
  }
  return answers;
}

void Verifier::Tell(const Json& request) {
  std::string data = request.dump();
  natsConnection_Publish(client_->connection(), subject_.c_str(), data.data(), static_cast<int>(data.size()));
  natsConnection_Flush(client_->connection());
}

Result<std::map<std::string, uint64_t>> Verifier::PublishBarriers() {
  std::map<std::string, uint64_t> barriers;
  for (int shard = 1; shard <= options_.layout.shards; ++shard) {
    std::string stream = options_.layout.StreamName(shard);
    std::string subject = options_.layout.Subject(shard);
    natsMsg* raw = nullptr;
    std::string payload = "verify barrier " + session_;
    natsStatus s =
        natsMsg_Create(&raw, subject.c_str(), nullptr, payload.data(), static_cast<int>(payload.size()));
    NatsMsgPtr msg(raw);
    if (s == NATS_OK) s = natsMsgHeader_Set(msg.get(), kVerifyBarrierHeader, session_.c_str());
    if (s != NATS_OK) return NatsStatus(s, "preparing the verify barrier for stream " + stream);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.ExpectStream = stream.c_str();
    po.MaxWait = 10000;
    jsPubAck* ack_raw = nullptr;
    jsErrCode code = static_cast<jsErrCode>(0);
    s = js_PublishMsg(&ack_raw, client_->jetstream(), msg.get(), &po, &code);
    JsPubAckPtr ack(ack_raw);
    if (s != NATS_OK) return NatsStatus(s, "publishing the verify barrier into stream " + stream);
    barriers[stream] = ack->Sequence;
  }
  return barriers;
}

Result<Answers> Verifier::DigestAtBarriers(std::map<std::string, std::set<std::string>>* left_out) {
  const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(options_.wait).count();
  // With -nodes N, fewer answers are asked again for up to -wait: a node whose NATS routes are
  // still coming back (after a restart or a partition) is not reachable for a moment.
  const auto discover_deadline = Clock::now() + options_.wait;
  bool told = false;
  while (true) {
    session_ = NewSessionId();
    Result<Answers> prepared =
        Ask({{"op", "prepare"}, {"session", session_}, {"hold_ms", wait_ms}}, {}, kAnswerTimeout);
    if (!prepared.ok()) return prepared.status();
    SetNodes(*prepared);
    if (options_.expected_nodes == 0 || nodes_.size() >= options_.expected_nodes ||
        Clock::now() >= discover_deadline)
      break;
    EndSession();
    if (!told) {
      std::fprintf(stderr, "marmot verify: %zu of %zu node(s) answered; asking again for up to %lld s\n",
                   nodes_.size(), options_.expected_nodes, static_cast<long long>(options_.wait.count()));
      told = true;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  if (options_.expected_nodes > 0 && nodes_.size() < options_.expected_nodes) {
    EndSession();
    return Status::Unavailable(std::to_string(nodes_.size()) + " node(s) answered, " +
                               std::to_string(options_.expected_nodes) + " expected");
  }
  Result<std::map<std::string, uint64_t>> barriers = PublishBarriers();
  if (!barriers.ok()) {
    EndSession();
    return barriers.status();
  }
  Result<Answers> digests =
      Ask({{"op", "digest"}, {"session", session_}, {"wait_ms", wait_ms}}, nodes_,
          std::chrono::duration_cast<std::chrono::seconds>(options_.wait + kDigestTimeout));
  if (!digests.ok()) {
    EndSession();
    return digests.status();
  }
  // Rows a node wrote that may reach the streams only after the barriers differ there for now:
  // every node leaves them out, told in requests of at most kKeysPerRequest keys (each answer
  // gives the tables' digests without all rows left out so far).
  std::vector<Json> requests(1, Json::object());
  size_t in_request = 0;
  left_out->clear();
  for (const auto& [node, answer] : *digests) {
    if (!answer.contains("local") || !answer["local"].is_object()) continue;
    for (const auto& [table, list] : answer["local"].items()) {
      for (const Json& k : list) {
        if (!(*left_out)[table].insert(k.dump()).second) continue;
        if (in_request == kKeysPerRequest) {
          requests.emplace_back(Json::object());
          in_request = 0;
        }
        requests.back()[table].push_back(k);
        ++in_request;
      }
    }
  }
  for (const Json& keys : requests) {
    if (keys.empty()) continue;
    Result<Answers> adjusted =
        Ask({{"op", "exclude"}, {"session", session_}, {"keys", keys}}, nodes_, kAnswerTimeout);
    if (!adjusted.ok()) {
      EndSession();
      return adjusted.status();
    }
    for (auto& [node, answer] : *digests) answer["tables"] = (*adjusted)[node]["tables"];
  }
  return digests;
}

Status Verifier::CompareRows(const std::string& table, std::vector<Json>* differing) {
  Result<Answers> buckets =
      Ask({{"op", "buckets"}, {"session", session_}, {"table", table}}, nodes_, kAnswerTimeout);
  if (!buckets.ok()) return buckets.status();
  // bucket -> node -> (rows, sum)
  std::map<uint32_t, std::map<Peer, std::pair<uint64_t, std::string>>> by_bucket;
  for (const auto& [node, answer] : *buckets) {
    for (const Json& b : answer["buckets"])
      by_bucket[b[0].get<uint32_t>()][node] = {b[1].get<uint64_t>(), b[2].get<std::string>()};
  }
  std::vector<std::vector<uint32_t>> requests(1);
  size_t rows_in_request = 0;
  for (const auto& [bucket, per_node] : by_bucket) {
    bool same = per_node.size() == nodes_.size();
    uint64_t most = 0;
    for (const auto& [node, v] : per_node) {
      same = same && v == per_node.begin()->second;
      most = std::max(most, v.first);
    }
    if (same) continue;
    if (rows_in_request + most > kRowsPerRequest && !requests.back().empty()) {
      requests.emplace_back();
      rows_in_request = 0;
    }
    requests.back().push_back(bucket);
    rows_in_request += most;
  }
  std::map<std::string, std::map<Peer, std::string>> by_key;  // key JSON -> node -> row hash
  for (const std::vector<uint32_t>& wanted : requests) {
    if (wanted.empty()) continue;
    Result<Answers> rows = Ask({{"op", "rows"}, {"session", session_}, {"table", table}, {"buckets", wanted}},
                               nodes_, kAnswerTimeout);
    if (!rows.ok()) return rows.status();
    for (const auto& [node, answer] : *rows) {
      for (const Json& r : answer["rows"]) by_key[r["key"].dump()][node] = r["hash"].get<std::string>();
    }
  }
  size_t shown = 0;
  for (const auto& [key_text, per_node] : by_key) {
    bool same = per_node.size() == nodes_.size();
    for (const auto& [node, hash] : per_node) same = same && hash == per_node.begin()->second;
    if (same) continue;
    Json key = Json::parse(key_text);
    differing->push_back(key);
    if (shown++ >= options_.max_keys_shown) continue;
    Result<std::vector<Value>> values = KeyFromJson(key);
    std::string line = "  " + table + " " + (values.ok() ? KeyToText(*values) : key_text) + ":";
    for (const Peer& node : nodes_) {
      auto it = per_node.find(node);
      line += " " + Label(node) + " " + (it == per_node.end() ? "missing" : "row " + it->second.substr(0, 8));
    }
    std::printf("%s\n", line.c_str());
  }
  if (shown > options_.max_keys_shown)
    std::printf("  %s: %zu more key(s) differ\n", table.c_str(), shown - options_.max_keys_shown);
  return Status();
}

int Verifier::Verify(bool repair, bool* repaired) {
  const auto deadline = Clock::now() + options_.wait;
  const auto settle_deadline = Clock::now() + std::min<std::chrono::seconds>(options_.wait, kSchemaSettle);
  bool told_settling = false;
  Answers digests;
  std::set<std::string> defined_differently;
  std::map<std::string, std::set<std::string>> left_out;
  while (true) {
    Result<Answers> asked = DigestAtBarriers(&left_out);
    if (!asked.ok()) {
      std::fprintf(stderr, "marmot verify: %s\n", asked.status().message().c_str());
      return kVerifyCannotAsk;
    }
    digests = std::move(*asked);
    // After a repair, the rows it published again must be in the comparison, not left out as
    // still on their way.
    std::string pending;
    for (const auto& [table, set] : repaired_keys_) {
      for (const std::string& k : set) {
        if (left_out.count(table) && left_out[table].count(k)) pending = table + " " + k;
      }
    }
    defined_differently = TablesDefinedDifferently(digests);
    if (pending.empty() && (defined_differently.empty() || Clock::now() >= settle_deadline)) break;
    EndSession();
    if (pending.empty()) {
      if (!told_settling) {
        std::fprintf(
            stderr,
            "marmot verify: table %s is defined differently on the nodes; comparing again for up to "
            "%lld s in case a schema change is on its way\n",
            defined_differently.begin()->c_str(),
            static_cast<long long>(std::min<std::chrono::seconds>(options_.wait, kSchemaSettle).count()));
      }
      told_settling = true;
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    if (Clock::now() >= deadline) {
      std::fprintf(stderr, "marmot verify: the repaired row %s was not in the streams within %lld s\n",
                   pending.c_str(), static_cast<long long>(options_.wait.count()));
      return kVerifyCannotAsk;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  if (options_.expected_nodes > 0 && nodes_.size() < options_.expected_nodes) {
    std::fprintf(stderr, "marmot verify: %zu node(s) answered, %zu expected\n", nodes_.size(),
                 options_.expected_nodes);
    return kVerifyCannotAsk;
  }
  // table -> node -> (rows, sum)
  std::map<std::string, std::map<Peer, std::pair<uint64_t, std::string>>> tables;
  std::string header = "table";
  for (const auto& [node, answer] : digests) {
    header += "\t" + Label(node);
    for (const Json& t : answer["tables"])
      tables[t["name"].get<std::string>()][node] = {t["rows"].get<uint64_t>(), t["sum"].get<std::string>()};
    if (answer.value("gaps", 0) > 0)
      std::printf("%s records %d gap(s) in its streams: its copy may be incomplete (docs/SNAPSHOTS.md)\n",
                  Label(node).c_str(), answer["gaps"].get<int>());
  }
  size_t in_flight = 0;
  for (const auto& [table, set] : left_out) in_flight += set.size();
  std::printf("%zu node(s) answered at stream positions %s\n", nodes_.size(),
              digests.begin()->second["positions"].dump().c_str());
  if (in_flight > 0) {
    std::printf(
        "%zu row(s) written on some node and not yet surely in the streams are left out on every node\n",
        in_flight);
  }
  std::printf("%s\tresult\n", header.c_str());
  std::vector<std::string> differ;
  std::vector<std::string> schema_differ;  // rows agree, definitions do not
  for (const auto& [table, per_node] : tables) {
    bool same = per_node.size() == nodes_.size();
    std::string line = table;
    for (const Peer& node : nodes_) {
      auto it = per_node.find(node);
      line += "\t" + (it == per_node.end()
                          ? std::string("no table")
                          : std::to_string(it->second.first) + " rows " + it->second.second.substr(0, 8));
      same = same && it != per_node.end() && it->second == per_node.begin()->second;
    }
    // The definitions too: equal rows under different constraints (a UNIQUE index on one node only)
    // do not stay equal.
    bool same_schema = !defined_differently.count(table);
    std::printf("%s\t%s\n", line.c_str(), !same ? "DIFFER" : same_schema ? "agree" : "DIFFER (definition)");
    if (!same_schema) {
      std::printf(
          "  the definition of table %s (or of its indexes or triggers) differs between the nodes: "
          "compare `.schema %s` on each (docs/SCHEMA.md)\n",
          table.c_str(), table.c_str());
      if (same) schema_differ.push_back(table);
    }
    if (!same) differ.push_back(table);
  }
  std::map<std::string, std::vector<Json>> keys;
  for (const std::string& table : differ) {
    Status s = CompareRows(table, &keys[table]);
    if (!s.ok()) {
      std::fprintf(stderr, "marmot verify: comparing the rows of table %s: %s\n", table.c_str(),
                   s.message().c_str());
      return kVerifyCannotAsk;
    }
  }
  EndSession();
  if (differ.empty() && schema_differ.empty()) {
    std::printf("all %zu table(s) agree on %zu node(s)\n", tables.size(), nodes_.size());
    return kVerifyAgree;
  }
  if (differ.empty()) {
    std::printf("the rows agree; the definitions of %zu table(s) differ\n", schema_differ.size());
    return kVerifyDiffer;
  }
  std::printf("%zu of %zu table(s) differ\n", differ.size(), tables.size());
  if (!repair || !options_.repair_from) return kVerifyDiffer;
  std::vector<Peer> from;
  for (const Peer& node : nodes_) {
    if (NodeIdOf(node) == *options_.repair_from) from.push_back(node);
  }
  if (from.size() != 1) {
    std::fprintf(stderr, "marmot verify: -from %llu: %s\n",
                 static_cast<unsigned long long>(*options_.repair_from),
                 from.empty() ? "that node did not answer" : "more than one running node has that node_id");
    return kVerifyCannotAsk;
  }
  const std::string instance = digests.at(from[0]).value("instance", std::string());
  for (const auto& [table, list] : keys) {
    Result<Answers> done = Ask({{"op", "repair"}, {"instance", instance}, {"table", table}, {"keys", list}},
                               {from[0]}, kAnswerTimeout);
    if (!done.ok()) {
      std::fprintf(stderr, "marmot verify: repairing table %s from %s: %s\n", table.c_str(),
                   Label(from[0]).c_str(), done.status().message().c_str());
      return kVerifyCannotAsk;
    }
    std::printf("repair: %s publishes its version of %zu row(s) of table %s again\n", Label(from[0]).c_str(),
                list.size(), table.c_str());
    for (const Json& k : list) repaired_keys_[table].insert(k.dump());
  }
  *repaired = true;
  return kVerifyDiffer;
}

void Verifier::SetNodes(const Answers& answers) {
  nodes_.clear();
  labels_.clear();
  std::map<uint64_t, int> seen;
  for (const auto& [peer, answer] : answers) {
    nodes_.insert(peer);
    int n = ++seen[NodeIdOf(peer)];
    labels_[peer] = "node " + std::to_string(NodeIdOf(peer)) + (n > 1 ? "#" + std::to_string(n) : "");
  }
}

int Verifier::Run() {
  bool repaired = false;
  int result = Verify(/*repair=*/true, &repaired);
  if (!repaired) return result;
  std::printf("verifying again once the repair has gone through the streams\n");
  std::this_thread::sleep_for(std::chrono::seconds(1));
  return Verify(/*repair=*/false, &repaired);
}

}  // namespace

int RunVerify(const VerifyOptions& options) {
  Result<std::unique_ptr<NatsClient>> client = NatsClient::Connect(options.nats);
  if (!client.ok()) {
    std::fprintf(stderr, "marmot verify: %s\n", client.status().message().c_str());
    return kVerifyCannotAsk;
  }
  Verifier verifier(options, client->get());
  return verifier.Run();
}

}  // namespace marmot
