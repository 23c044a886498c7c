#include "stream/nats_client.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <cstring>
#include <thread>

#include "stream/nkey.h"
#include "telemetry/logging.h"

namespace marmot {

std::string NatsError(natsStatus s) {
  std::string text = natsStatus_GetText(s);
  // The thread's last error may be left from an earlier call; it explains s only if it is s.
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  if (last == s && detail && *detail && text.find(detail) == std::string::npos) {
    text += " (" + std::string(detail) + ")";
  }
  return text;
}

Status NatsStatus(natsStatus s, const std::string& what) {
  std::string message = what + ": " + NatsError(s);
  switch (s) {
    case NATS_TIMEOUT:
    case NATS_NO_SERVER:
    case NATS_IO_ERROR:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_NO_RESPONDERS:
    case NATS_NOT_YET_CONNECTED:
    case NATS_MISSED_HEARTBEAT:
      return Status::Unavailable(std::move(message));
    case NATS_NOT_FOUND:
      return Status::NotFound(std::move(message));
    case NATS_INVALID_ARG:
    case NATS_INVALID_SUBJECT:
    case NATS_MAX_PAYLOAD:
      return Status::InvalidArgument(std::move(message));
    default:
      return Status::Error(std::move(message));
  }
}

Result<KvStorePtr> OpenKeyValue(jsCtx* js, const kvConfig& config, bool create, const std::string& what) {
  kvStore* raw = nullptr;
  natsStatus s = js_KeyValue(&raw, js, config.Bucket);
  if (s == NATS_NOT_FOUND && create) {
    kvConfig copy = config;
    s = js_CreateKeyValue(&raw, js, &copy);
  }
  if (s != NATS_OK) return NatsStatus(s, "opening " + what + " " + config.Bucket);
  return KvStorePtr(raw);
}

void ClosingSubscription::Close() {
  if (!sub_) return;
  int64_t delivered = 0;
  natsSubscription_GetDelivered(sub_.get(), &delivered);
  if (delivered > 0) {
    // Removes the subscription and sends UNSUB at once; unlike Unsubscribe it does not ask the
    // server to delete a JetStream consumer and wait for the answer (which never comes while a
    // cluster has lost its quorum).
    natsSubscription_AutoUnsubscribe(sub_.get(), 1);
  } else {
    natsSubscription_Unsubscribe(sub_.get());
  }
  if (connection_ != nullptr) natsConnection_FlushTimeout(connection_, 2000);
  sub_.reset();
}

// nats.c calls these on its own callback thread; OnClosed is always the last one.
void NatsClient::OnDisconnected(natsConnection*, void* closure) {
  auto* client = static_cast<NatsClient*>(closure);
  if (client->closing_.load()) return;  // our own Close()
  spdlog::warn("disconnected from NATS; changes wait in the change log");
}

void NatsClient::OnClosed(natsConnection*, void* closure) {
  auto* client = static_cast<NatsClient*>(closure);
  std::lock_guard<std::mutex> lock(client->closed_mu_);
  client->closed_ = true;
  client->closed_cv_.notify_all();
}

namespace {

// What to check when connecting failed, by what the failure says.
std::string ConnectHint(natsStatus s, const std::string& error) {
  if (s == NATS_CONNECTION_AUTH_FAILED || error.find("Authorization Violation") != std::string::npos ||
      error.find("uthentication") != std::string::npos) {
    return "the server refused the credentials: check [nats] user_name/user_password (or seed_file, or the "
           "user:password in the URL) against the server's";
  }
  if (s == NATS_SECURE_CONNECTION_REQUIRED) {
    return "the server requires TLS: set [nats] ca_file to the CA that signed its certificate (and "
           "cert_file, "
           "key_file when it verifies clients)";
  }
  if (s == NATS_SSL_ERROR || error.find("SSL") != std::string::npos ||
      error.find("TLS") != std::string::npos) {
    return "TLS failed: check that [nats] ca_file is set, to the CA that signed the server's certificate, "
           "and "
           "that the certificate names the address dialled (the certificate named may be another server of "
           "the "
           "cluster: the client tries every server the first one told it of)";
  }
  if (s == NATS_PROTOCOL_ERROR && error.find("PONG") != std::string::npos) {
    return "the server closed the connection during the handshake; a server with a CA (TLS verify) requires "
           "a "
           "client certificate: set [nats] cert_file and key_file to one its CA signed. The server's log "
           "says "
           "why";
  }
  return "check [nats] urls and that the servers are running";
}

void OnReconnected(natsConnection* nc, void*) {
  char url[256] = {0};
  natsConnection_GetConnectedUrl(nc, url, sizeof(url));
  spdlog::info("reconnected to NATS at {}", RedactUrl(url));
}

// Errors nats.c reports asynchronously, e.g. an ordered consumer that missed its heartbeats
// (its server went away) and is being recreated, or a slow consumer. `sub` is not used: nats.c 3.4
// posts it without holding a reference, so it may be freed already (a SIGSEGV on stop found by
// tests/e2e/fault_server_loss_test.sh; upstream retains it since 3.7.0, commit 56d3d5e3).
void OnAsyncError(natsConnection*, natsSubscription*, natsStatus err, void*) {
  if (err == NATS_MISSED_HEARTBEAT) {
    spdlog::warn(
        "NATS: a stream consumer missed its heartbeats (the server holding it may be down); nats.c "
        "recreates it after the last message received");
    return;
  }
  spdlog::warn("NATS: {}", NatsError(err));
}

}  // namespace

Result<std::unique_ptr<NatsClient>> NatsClient::Connect(const NatsClientOptions& o) {
  if (o.urls.empty()) return Status::Error("no NATS URL to connect to");
  std::unique_ptr<NatsClient> client(new NatsClient());
  std::string urls_for_log;
  std::vector<const char*> servers;
  for (const std::string& u : o.urls) {
    servers.push_back(u.c_str());
    urls_for_log += (urls_for_log.empty() ? "" : ",") + RedactUrl(u);
  }
  auto check = [&](natsStatus s, const char* what) -> Status {
    return s == NATS_OK ? Status() : Status::Error(std::string(what) + ": " + NatsError(s));
  };
  natsOptions* opts = nullptr;
  MARMOT_RETURN_IF_ERROR(check(natsOptions_Create(&opts), "creating NATS options"));
  client->opts_.reset(opts);
  MARMOT_RETURN_IF_ERROR(
      check(natsOptions_SetServers(opts, servers.data(), static_cast<int>(servers.size())), "[nats] urls"));
  MARMOT_RETURN_IF_ERROR(check(natsOptions_SetName(opts, o.name.c_str()), "client name"));
  MARMOT_RETURN_IF_ERROR(check(natsOptions_SetMaxReconnect(opts, -1), "reconnect policy"));
  MARMOT_RETURN_IF_ERROR(check(natsOptions_SetReconnectWait(opts, o.reconnect_wait.count() * 1000),
                               "[nats] reconnect_wait_seconds"));
  MARMOT_RETURN_IF_ERROR(check(natsOptions_SetReconnectBufSize(opts, 64 * 1024 * 1024), "reconnect buffer"));
  MARMOT_RETURN_IF_ERROR(check(natsOptions_SetMaxPendingMsgs(opts, 1 << 20), "pending limit"));
  // Write each publish to the socket at once instead of leaving it to nats.c's flusher thread,
  // which buffers for throughput: marmot's publishes are already batches of rows, and a lone
  // row should leave without waiting.
  MARMOT_RETURN_IF_ERROR(check(natsOptions_SetSendAsap(opts, true), "send-asap"));
  natsOptions_SetDisconnectedCB(opts, OnDisconnected, client.get());
  natsOptions_SetClosedCB(opts, OnClosed, client.get());
  natsOptions_SetReconnectedCB(opts, OnReconnected, nullptr);
  natsOptions_SetErrorHandler(opts, OnAsyncError, nullptr);
  if (!o.user_name.empty()) {
    MARMOT_RETURN_IF_ERROR(check(natsOptions_SetUserInfo(opts, o.user_name.c_str(), o.user_password.c_str()),
                                 "[nats] user_name/user_password"));
  }
  if (!o.seed_file.empty()) {
    // nats.c signs the nonce with the seed, reading the file again on every (re)connect, so the
    // file must stay readable; it only needs the public key, which we derive (nats.c cannot).
    Result<NKey> key = NKey::FromSeedFile(o.seed_file);
    if (!key.ok()) return key.status();
    MARMOT_RETURN_IF_ERROR(
        check(natsOptions_SetNKeyFromSeed(opts, key->public_key().c_str(), o.seed_file.c_str()),
              ("[nats] seed_file " + o.seed_file).c_str()));
  }
  if (!o.ca_file.empty() || !o.cert_file.empty()) {
    MARMOT_RETURN_IF_ERROR(check(natsOptions_SetSecure(opts, true), "TLS"));
    if (!o.ca_file.empty()) {
      MARMOT_RETURN_IF_ERROR(check(natsOptions_LoadCATrustedCertificates(opts, o.ca_file.c_str()),
                                   ("[nats] ca_file " + o.ca_file).c_str()));
    }
    if (!o.cert_file.empty()) {
      MARMOT_RETURN_IF_ERROR(
          check(natsOptions_LoadCertificatesChain(opts, o.cert_file.c_str(), o.key_file.c_str()),
                ("[nats] cert_file " + o.cert_file + " / key_file " + o.key_file).c_str()));
    }
  }
  natsStatus s = NATS_OK;
  for (int attempt = 0; attempt <= o.connect_retries; ++attempt) {
    s = natsConnection_Connect(&client->conn_, opts);
    if (s == NATS_OK) break;
    spdlog::warn("connecting to NATS at {} failed ({}); attempt {} of {}", urls_for_log, NatsError(s),
                 attempt + 1, o.connect_retries + 1);
    if (attempt < o.connect_retries) std::this_thread::sleep_for(o.reconnect_wait);
  }
  if (s != NATS_OK) {
    std::string error = NatsError(s);
    return Status::Error("cannot connect to NATS at " + urls_for_log + ": " + error + "; " +
                         ConnectHint(s, error));
  }
  jsCtx* js = nullptr;
  MARMOT_RETURN_IF_ERROR(check(natsConnection_JetStream(&js, client->conn_, nullptr), "JetStream context"));
  client->js_.reset(js);
  spdlog::info("connected to NATS at {}", urls_for_log);
  return client;
}

uint64_t NatsClient::reconnects() const {
  natsStatistics* raw = nullptr;
  if (natsStatistics_Create(&raw) != NATS_OK) return 0;
  NatsStatisticsPtr stats(raw);
  uint64_t in_msgs = 0, in_bytes = 0, out_msgs = 0, out_bytes = 0, reconnected = 0;
  if (natsConnection_GetStats(conn_, stats.get()) != NATS_OK) return 0;
  natsStatistics_GetCounts(stats.get(), &in_msgs, &in_bytes, &out_msgs, &out_bytes, &reconnected);
  return reconnected;
}

Status NatsClient::WaitForJetStream(std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  while (true) {
    jsAccountInfo* raw = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetAccountInfo(&raw, js_.get(), nullptr, &jerr);
    JsAccountInfoPtr info(raw);
    if (s == NATS_OK) return Status();
    last = NatsError(s);
    if (std::chrono::steady_clock::now() > deadline) {
      return Status::Unavailable("JetStream is not available after " + std::to_string(timeout.count()) +
                                 " s: " + last +
                                 " (a clustered JetStream needs a majority of its servers up)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

NatsClient::~NatsClient() {
  closing_.store(true);
  js_.reset();
  if (conn_) {
    natsConnection_FlushTimeout(conn_, 2000);
    natsConnection_Close(conn_);
    // Callbacks run on nats.c's thread and point at this object: wait for the last one (closed)
    // before the memory goes away.
    std::unique_lock<std::mutex> lock(closed_mu_);
    closed_cv_.wait_for(lock, std::chrono::seconds(10), [this] { return closed_; });
    lock.unlock();
    natsConnection_Destroy(conn_);
  }
  opts_.reset();
}

}  // namespace marmot
