// LocalNats: a real nats-server (the embedded one marmot runs) on a random loopback port with a
// connected client and JetStream ready, for unit tests that talk to NATS.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "stream/nats_client.h"
#include "stream/nats_server.h"

namespace marmot::test {

struct LocalNats {
  std::unique_ptr<EmbeddedNatsServer> server;
  std::unique_ptr<NatsClient> client;

  // Starts the server with its store under `work_dir` and connects; fails the test on error
  // (check HasFatalFailure() after calling it from SetUp).
  void Start(const std::string& name, const std::string& work_dir) {
    EmbeddedNatsOptions so;
    so.server_name = name;
    so.work_dir = work_dir;
    Result<std::unique_ptr<EmbeddedNatsServer>> started = EmbeddedNatsServer::Start(so);
    ASSERT_TRUE(started.ok()) << started.status().message();
    server = std::move(*started);
    NatsClientOptions co;
    co.urls = {server->client_url()};
    Result<std::unique_ptr<NatsClient>> connected = NatsClient::Connect(co);
    ASSERT_TRUE(connected.ok()) << connected.status().message();
    client = std::move(*connected);
    ASSERT_TRUE(client->WaitForJetStream(std::chrono::seconds(10)).ok());
  }
};

}  // namespace marmot::test
