// Flags: Go's `flag` syntax as Marmot v0.8 takes it, and errors that name the flag.
#include "config/flags.h"

#include <gtest/gtest.h>

namespace marmot {
namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(FlagsTest, NothingGivenMeansNothingSet) {
  Result<CommandLine> cl = ParseFlags({});
  ASSERT_TRUE(cl.ok()) << cl.status().message();
  EXPECT_EQ(cl->config_path, "");
  EXPECT_FALSE(cl->cleanup);
  EXPECT_FALSE(cl->save_snapshot);
  EXPECT_FALSE(cl->version);
  EXPECT_FALSE(cl->help);
  EXPECT_FALSE(cl->cluster_addr.has_value());
  EXPECT_TRUE(cl->cluster_peers.empty());
  EXPECT_TRUE(cl->leaf_servers.empty());
  EXPECT_FALSE(cl->node_id.has_value());
}

TEST(FlagsTest, AllFourSpellingsWork) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"-config", "a.toml", "-cluster-addr", "h:1", "-cluster-peers", "nats://x:1/,dns://y:2/",
            "-leaf-servers", "nats://l:1", "-node-id", "12"},
           {"--config", "a.toml", "--cluster-addr", "h:1", "--cluster-peers", "nats://x:1/,dns://y:2/",
            "--leaf-servers", "nats://l:1", "--node-id", "12"},
           {"-config=a.toml", "-cluster-addr=h:1", "-cluster-peers=nats://x:1/,dns://y:2/",
            "-leaf-servers=nats://l:1", "-node-id=12"},
           {"--config=a.toml", "--cluster-addr=h:1", "--cluster-peers=nats://x:1/,dns://y:2/",
            "--leaf-servers=nats://l:1", "--node-id=12"},
       }) {
    Result<CommandLine> cl = ParseFlags(args);
    ASSERT_TRUE(cl.ok()) << args[0] << ": " << cl.status().message();
    EXPECT_EQ(cl->config_path, "a.toml");
    EXPECT_EQ(cl->cluster_addr, "h:1");
    EXPECT_EQ(cl->cluster_peers, (std::vector<std::string>{"nats://x:1/", "dns://y:2/"}));
    EXPECT_EQ(cl->leaf_servers, (std::vector<std::string>{"nats://l:1"}));
    EXPECT_EQ(cl->node_id, 12u);
  }
}

TEST(FlagsTest, ValuesMayContainEqualsSignsAndDashes) {
  // Only the first '=' splits; a separate value is taken as is, even when it starts with '-'.
  Result<CommandLine> cl =
      ParseFlags({"-cluster-peers=dns://n:4248/?min=2&interval_ms=500", "-config", "-odd-name.toml"});
  ASSERT_TRUE(cl.ok()) << cl.status().message();
  EXPECT_EQ(cl->cluster_peers, (std::vector<std::string>{"dns://n:4248/?min=2&interval_ms=500"}));
  EXPECT_EQ(cl->config_path, "-odd-name.toml");
}

TEST(FlagsTest, BooleansTakeNoValueOrAnExplicitOne) {
  Result<CommandLine> cl = ParseFlags({"-cleanup", "--save-snapshot", "-version", "--help"});
  ASSERT_TRUE(cl.ok()) << cl.status().message();
  EXPECT_TRUE(cl->cleanup);
  EXPECT_TRUE(cl->save_snapshot);
  EXPECT_TRUE(cl->version);
  EXPECT_TRUE(cl->help);

  EXPECT_TRUE(ParseFlags({"-h"})->help);
  EXPECT_TRUE(ParseFlags({"-cleanup=true"})->cleanup);
  EXPECT_TRUE(ParseFlags({"--cleanup=1"})->cleanup);
  EXPECT_TRUE(ParseFlags({"-cleanup=T"})->cleanup);
  EXPECT_FALSE(ParseFlags({"-cleanup=false"})->cleanup);
  EXPECT_FALSE(ParseFlags({"-cleanup", "-cleanup=0"})->cleanup);  // the last one wins
  EXPECT_FALSE(ParseFlags({"--save-snapshot=False"})->save_snapshot);
  // A boolean does not swallow the next argument: the next flag is still parsed.
  Result<CommandLine> next = ParseFlags({"-cleanup", "-config", "c.toml"});
  ASSERT_TRUE(next.ok()) << next.status().message();
  EXPECT_TRUE(next->cleanup);
  EXPECT_EQ(next->config_path, "c.toml");
}

TEST(FlagsTest, NodeIdTakesTheWholeUint64Range) {
  EXPECT_EQ(ParseFlags({"-node-id", "1"})->node_id, 1u);
  EXPECT_EQ(ParseFlags({"-node-id", "18446744073709551615"})->node_id, 18446744073709551615ULL);

  Config config = DefaultConfig();
  ApplyFlags(*ParseFlags({"-node-id", "77"}), &config);
  EXPECT_EQ(config.node_id, 77u);
  Config untouched = DefaultConfig();
  ApplyFlags(*ParseFlags({"-cleanup"}), &untouched);
  EXPECT_EQ(untouched.node_id, DefaultNodeId());
}

TEST(FlagsTest, DoubleDashEndsTheFlags) {
  EXPECT_TRUE(ParseFlags({"-cleanup", "--"}).ok());
  Result<CommandLine> after = ParseFlags({"--", "x"});
  ASSERT_FALSE(after.ok());
  EXPECT_TRUE(Contains(after.status().message(), "unexpected argument 'x'")) << after.status().message();
}

TEST(FlagsTest, ErrorsNameTheFlag) {
  struct Bad {
    std::vector<std::string> args;
    const char* expect;
  };
  const std::vector<Bad> cases = {
      {{"-nope"}, "unknown flag -nope"},
      {{"--nope=1"}, "unknown flag -nope"},
      {{"-pprof", ":6060"}, "unknown flag -pprof"},
      {{"-config"}, "flag -config needs a value"},
      {{"-cleanup", "-cluster-addr"}, "flag -cluster-addr needs a value"},
      {{"--leaf-servers"}, "flag -leaf-servers needs a value"},
      {{"-node-id"}, "flag -node-id needs a value"},
      {{"-node-id", "abc"}, "flag -node-id: \"abc\" is not a node id"},
      {{"-node-id", "0"}, "flag -node-id: \"0\""},
      {{"-node-id", "-5"}, "flag -node-id: \"-5\""},
      {{"-node-id", "12x"}, "flag -node-id: \"12x\""},
      {{"-node-id", " 12"}, "flag -node-id"},
      {{"-node-id=18446744073709551616"}, "flag -node-id: \"18446744073709551616\""},
      {{"-node-id="}, "flag -node-id: \"\""},
      {{"-cleanup=maybe"}, "flag -cleanup takes true or false, not 'maybe'"},
      {{"-version="}, "flag -version takes true or false"},
      {{"stray"}, "unexpected argument 'stray'"},
      {{"-cleanup", "false"}, "unexpected argument 'false'"},
      {{"-"}, "unexpected argument '-'"},
      {{"---config", "x"}, "bad flag syntax: ---config"},
      {{"-=x"}, "bad flag syntax: -=x"},
  };
  for (const Bad& bad : cases) {
    Result<CommandLine> r = ParseFlags(bad.args);
    ASSERT_FALSE(r.ok()) << "accepted: " << bad.args[0];
    EXPECT_TRUE(Contains(r.status().message(), bad.expect))
        << "got: " << r.status().message() << "\nwant: " << bad.expect;
  }
}

TEST(FlagsTest, UsageListsEveryFlag) {
  const std::string usage = FlagUsage();
  for (const char* flag :
       {"-config PATH", "-node-id N", "-cleanup", "-save-snapshot", "-cluster-addr HOST:PORT",
        "-cluster-peers LIST", "-leaf-servers LIST", "-version", "-help, -h"}) {
    EXPECT_TRUE(Contains(usage, std::string("  ") + flag)) << flag << " missing from:\n" << usage;
  }
}

TEST(FlagsTest, ClusterAddrIsCheckedWhereItIsGiven) {
  for (const char* ok : {"127.0.0.1:4221", ":4221", "[::1]:4221", "h:65534"}) {
    Result<CommandLine> cl = ParseFlags({"-cluster-addr", ok});
    ASSERT_TRUE(cl.ok()) << ok << ": " << cl.status().message();
    EXPECT_EQ(cl->cluster_addr, ok);
  }
  // Not host:port (util/host_port.h says why), or no fixed port for the routes and port + 1.
  for (const char* bad : {"h", "h:x", "::1:4221", "nats://h:4221", "h:-1", "h:0", "h:65535", "h:70000"}) {
    Result<CommandLine> cl = ParseFlags({"-cluster-addr", bad});
    ASSERT_FALSE(cl.ok()) << "accepted: " << bad;
    EXPECT_TRUE(Contains(cl.status().message(), std::string("flag -cluster-addr: ")))
        << cl.status().message();
    EXPECT_TRUE(Contains(cl.status().message(), bad)) << cl.status().message();
  }
}

TEST(FlagsTest, VerifyIsACommandWithItsOwnFlags) {
  Result<CommandLine> cl = ParseFlags({"verify", "-config", "a.toml", "-repair", "--from=2", "-nodes", "3",
                                       "-wait", "5", "-nats-url", "nats://h:1"});
  ASSERT_TRUE(cl.ok()) << cl.status().message();
  EXPECT_TRUE(cl->verify);
  EXPECT_EQ(cl->config_path, "a.toml");
  EXPECT_TRUE(cl->repair);
  EXPECT_EQ(cl->repair_from, 2u);
  EXPECT_EQ(cl->verify_nodes, 3u);
  EXPECT_EQ(cl->verify_wait, 5u);
  EXPECT_EQ(cl->nats_url, "nats://h:1");
  EXPECT_FALSE(ParseFlags({}).value().verify);

  struct Bad {
    std::vector<std::string> args;
    const char* expect;
  };
  for (const Bad& bad : std::vector<Bad>{
           {{"-repair"}, "flag -repair belongs to the verify command"},
           {{"-config", "a", "verify"}, "unexpected argument 'verify'"},
           {{"verify", "-repair"}, "flag -repair needs -from N"},
           {{"verify", "-from", "1"}, "flag -from goes with -repair"},
           {{"verify", "-repair", "-from", "0"}, "flag -from: \"0\" is not a node id"},
           {{"verify", "-nodes", "x"}, "flag -nodes: \"x\" is not a node count"},
           {{"verify", "-wait", "-1"}, "flag -wait: \"-1\" is not a number of seconds"},
       }) {
    Result<CommandLine> r = ParseFlags(bad.args);
    ASSERT_FALSE(r.ok()) << "accepted: " << bad.args[0];
    EXPECT_TRUE(Contains(r.status().message(), bad.expect))
        << "got: " << r.status().message() << "\nwant: " << bad.expect;
  }
  EXPECT_TRUE(Contains(FlagUsage(), "marmot verify"));
  EXPECT_TRUE(Contains(FlagUsage(), "  -repair"));
}

TEST(FlagsTest, DeadLetterIsACommandWithAnActionAndItsOwnFlags) {
  Result<CommandLine> cl =
      ParseFlags({"dead-letter", "list", "-config", "a.toml", "-table", "items", "-limit", "9"});
  ASSERT_TRUE(cl.ok()) << cl.status().message();
  EXPECT_EQ(cl->command, "dead-letter");
  EXPECT_EQ(cl->dead_letter_action, "list");
  EXPECT_EQ(cl->dead_letter_table, "items");
  EXPECT_EQ(cl->dead_letter_limit, 9u);
  EXPECT_FALSE(cl->verify);
  cl = ParseFlags({"dead-letter", "replay", "-id", "4"});
  ASSERT_TRUE(cl.ok()) << cl.status().message();
  EXPECT_EQ(cl->dead_letter_id, 4u);
  cl = ParseFlags({"dead-letter", "drop", "-all"});
  ASSERT_TRUE(cl.ok()) << cl.status().message();
  EXPECT_TRUE(cl->dead_letter_all);

  struct Bad {
    std::vector<std::string> args;
    const char* expect;
  };
  for (const Bad& bad : std::vector<Bad>{
           {{"dead-letter"}, "marmot dead-letter needs an action: list, replay or drop"},
           {{"dead-letter", "show"}, "needs an action"},
           {{"dead-letter", "replay"}, "needs exactly one of -id N, -table NAME or -all"},
           {{"dead-letter", "drop", "-all", "-id", "3"}, "needs exactly one of"},
           {{"dead-letter", "list", "-all"}, "takes -table NAME and -limit N"},
           {{"-table", "x"}, "flag -table belongs to the dead-letter command"},
           {{"verify", "-id", "1"}, "flag -id belongs to the dead-letter command"},
           {{"dead-letter", "list", "-repair"}, "flag -repair belongs to the verify command"},
           {{"dead-letter", "drop", "-id", "0"}, "flag -id: \"0\" is not a dead-letter id"},
       }) {
    Result<CommandLine> r = ParseFlags(bad.args);
    ASSERT_FALSE(r.ok()) << "accepted: " << bad.args[0];
    EXPECT_TRUE(Contains(r.status().message(), bad.expect))
        << "got: " << r.status().message() << "\nwant: " << bad.expect;
  }
  EXPECT_TRUE(Contains(FlagUsage(), "marmot dead-letter list"));
}

}  // namespace
}  // namespace marmot
