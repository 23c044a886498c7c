// NatsClient: one NATS connection plus its JetStream context, with marmot's connection policy.
//
// Connects to any of `urls` (retrying `connect_retries` times, `reconnect_wait` apart), then
// reconnects forever: while NATS is away, publishes fail, changes stay in the change log and go
// out after the reconnect, so nothing is lost. Credentials: user + password, or TLS client
// certificates with a CA, or an NKey seed file. URLs are logged with passwords redacted.
//
// Thread-safe as nats.c is: the connection and JetStream context may be used from several threads.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "stream/nats_handles.h"
#include "util/status.h"

namespace marmot {

struct NatsClientOptions {
  std::vector<std::string> urls;
  std::string name = "marmot";
  std::string user_name, user_password;
  std::string seed_file;  // NKey user seed for nkey authentication
  std::string ca_file, cert_file, key_file;
  int connect_retries = 5;
  std::chrono::seconds reconnect_wait{2};
};

// A natsStatus as text, with nats.c's last error detail when there is one.
std::string NatsError(natsStatus s);

// A failed Status "<what>: <NatsError(s)>" with the code mapped from `s`: timeouts, lost or closed
// connections and missing responders -> kUnavailable, NATS_NOT_FOUND -> kNotFound, bad arguments
// -> kInvalidArgument, others -> kUnknown. `s` must not be NATS_OK.
Status NatsStatus(natsStatus s, const std::string& what);

// The key-value bucket `config.Bucket`, created with `config` when it does not exist and `create`
// is set; `what` names it in errors ("the status bucket").
Result<KvStorePtr> OpenKeyValue(jsCtx* js, const kvConfig& config, bool create, const std::string& what);

// A subscription that is closed safely: unsubscribed (a JetStream consumer is left to the server,
// which drops an ephemeral one when idle), then one round trip, then freed. nats.c 3.4 (Debian 12)
// looks a message's subscription up and then uses it without holding a reference, so freeing a
// subscription while messages or heartbeats still arrive for it can leave nats.c's reader thread
// on freed memory: it hangs (every later request of the connection times out) or aborts. Fixed
// upstream in nats.c 3.6.1 (commit 0a7dd28b). After the round trip the reader has passed everything
// the server sent before the UNSUB. Closing waits at most ~2 s. Move-only.
class ClosingSubscription {
 public:
  ClosingSubscription() = default;
  ClosingSubscription(natsConnection* connection, natsSubscription* sub)
      : connection_(connection), sub_(sub) {}
  ~ClosingSubscription() { Close(); }
  ClosingSubscription(ClosingSubscription&&) = default;
  ClosingSubscription& operator=(ClosingSubscription&& other) noexcept {
    if (this != &other) {
      Close();
      connection_ = other.connection_;
      sub_ = std::move(other.sub_);
    }
    return *this;
  }

  natsSubscription* get() const { return sub_.get(); }
  explicit operator bool() const { return sub_ != nullptr; }
  void Close();

 private:
  natsConnection* connection_ = nullptr;
  NatsSubscriptionPtr sub_;
};

class NatsClient {
 public:
  static Result<std::unique_ptr<NatsClient>> Connect(const NatsClientOptions& options);
  ~NatsClient();
  NatsClient(const NatsClient&) = delete;
  NatsClient& operator=(const NatsClient&) = delete;

  natsConnection* connection() const { return conn_; }
  jsCtx* jetstream() const { return js_.get(); }
  // Largest payload the server accepts (headers included).
  int64_t max_payload() const { return natsConnection_GetMaxPayload(conn_); }

  // Waits until JetStream answers (a clustered JetStream needs an elected meta leader first).
  Status WaitForJetStream(std::chrono::seconds timeout);

  // True while the connection is up (not reconnecting, not closed).
  bool connected() const { return natsConnection_Status(conn_) == NATS_CONN_STATUS_CONNECTED; }
  // How many times the connection was re-established since it was made.
  uint64_t reconnects() const;

 private:
  NatsClient() = default;
  static void OnDisconnected(natsConnection* nc, void* closure);
  static void OnClosed(natsConnection* nc, void* closure);

  std::atomic<bool> closing_{false};  // set before our own Close(): no "disconnected" warning
  std::mutex closed_mu_;
  std::condition_variable closed_cv_;
  bool closed_ = false;  // the closed callback ran: no callback will touch this object again
  NatsOptionsPtr opts_;
  natsConnection* conn_ = nullptr;  // closed by the destructor, which waits for the closed callback
  JsCtxPtr js_;
};

}  // namespace marmot
