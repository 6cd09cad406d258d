#include "envpool/registry.h"

#include <gtest/gtest.h>

#include "envpool/runner.h"

namespace meridian::envpool {
namespace {

constexpr const char* kGood = R"(pools:
  aws:
    max_duration: 2h
    cleanup: ./nuke.sh
    cleanup_timeout: 5m
    credentials: { command: [assume-role, --json], revoke: "echo revoked" }
  stacks:
    grow: { max: 4, create: [create-stack] }
environments:
  - { id: aws-1, pool: aws, region: us-east-1, account: "1234", capabilities: { gpu: "yes", size: large } }
  - { id: aws-2, pool: aws, region: eu-west-1, capabilities: { size: small }, cleanup: [special-clean] }
)";

TEST(Registry, ParsesPoolsAndEnvironments) {
  auto r = ParseRegistry(kGood, "envs.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->pools.size(), 2u);
  const PoolSpec& aws = r->pools[0];
  EXPECT_EQ(aws.name, "aws");
  EXPECT_EQ(aws.max_duration_ns, 2 * 3600 * 1'000'000'000LL);
  EXPECT_EQ(aws.default_duration_ns, 3600 * 1'000'000'000LL);
  EXPECT_EQ(aws.cleanup.argv, (std::vector<std::string>{"/bin/sh", "-c", "./nuke.sh"}));
  EXPECT_EQ(aws.cleanup.timeout_ns, 300 * 1'000'000'000LL);
  EXPECT_EQ(aws.credentials.command.argv, (std::vector<std::string>{"assume-role", "--json"}));
  EXPECT_EQ(r->pools[1].grow_max, 4u);
  ASSERT_EQ(r->environments.size(), 2u);
  EXPECT_EQ(r->environments[0].capabilities.at("gpu"), "yes");
  ASSERT_TRUE(r->environments[1].cleanup.has_value());
  EXPECT_EQ(r->environments[1].cleanup->timeout_ns, aws.cleanup.timeout_ns);

  // The stored JSON round-trips.
  auto pool = PoolFromJson("aws", PoolJson(aws).dump());
  ASSERT_TRUE(pool.ok());
  EXPECT_EQ(pool->cleanup.argv, aws.cleanup.argv);
  EXPECT_EQ(pool->credentials.revoke.argv, aws.credentials.revoke.argv);
  auto env = EnvironmentFromJson("aws-2", "aws", EnvironmentJson(r->environments[1]).dump());
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(env->region, "eu-west-1");
  EXPECT_EQ(env->cleanup->argv, (std::vector<std::string>{"special-clean"}));
}

void ExpectError(const std::string& text, const std::string& fragment) {
  auto r = ParseRegistry(text, "envs.yaml");
  ASSERT_FALSE(r.ok()) << "accepted:\n" << text;
  EXPECT_NE(r.error().message.find(fragment), std::string::npos) << r.error().message;
}

TEST(Registry, ErrorsNameFileLineAndField) {
  ExpectError("pools: { a: {} }\nenvironments:\n  - { id: e1, pool: b }\n",
              "envs.yaml:3:21: environments[0].pool: 'b' is not a pool of this file (pools: a)");
  ExpectError("pools: { a: {} }\nenvironments:\n  - { id: e1, pool: a }\n  - { id: e1, pool: a }\n",
              "envs.yaml:4:11: environments[1].id: 'e1' is registered twice");
  ExpectError("pools: { a: { max_durations: 3h } }\n", "envs.yaml:1:15: pools.a.max_durations: unknown key");
  ExpectError("pools: { a: { max_duration: 1h, default_duration: 2h } }\n",
              "pools.a.default_duration: must not exceed max_duration");
  ExpectError("pools: { a: { grow: { create: x } } }\n", "pools.a.grow.max: is required");
  ExpectError("pools: { a: { credentials: {} } }\n", "pools.a.credentials.command: give a command");
  ExpectError("pools: { a: {} }\nenvironments:\n  - { pool: a }\n", "environments[0].id: is required");
  ExpectError("pools: { a: {} }\nenvironments:\n  - { id: 'a b', pool: a }\n",
              "environments[0].id: use letters");
  ExpectError("pools: { a: { cleanup_timeout: soon } }\n", "pools.a.cleanup_timeout");
  ExpectError("pools: [\n", "envs.yaml:2:");
}

// Text that is not strictly UTF-8 (a lone surrogate escape, or raw bytes of an overlong form, which the old,
// lenient check let through) is refused by field: the registry fuzzer found the server dying on such bytes
// when the pool's settings went to JSON. An empty registry parses (the sync refuses it).
TEST(Registry, EscapedBytesAreRefusedAndEmptinessIsExplicit) {
  auto r = ParseRegistry("pools:\n  p: {}\nenvironments:\n  - { id: e1, pool: p, region: \"a\\ud800b\" }\n",
                         "envs.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("envs.yaml:4:"), std::string::npos) << r.error().message;
  auto overlong = ParseRegistry(
      "pools:\n  p: {}\nenvironments:\n  - { id: e1, pool: p, region: a\xe0\x8b\x80"
      "b }\n",
      "envs.yaml");
  ASSERT_FALSE(overlong.ok());
  EXPECT_NE(overlong.error().message.find("not valid UTF-8"), std::string::npos) << overlong.error().message;
  auto unicode = ParseRegistry(
      "pools:\n  p: {}\nenvironments:\n  - { id: e1, pool: p, region: \"\\u00ff\" }\n", "envs.yaml");
  ASSERT_TRUE(unicode.ok()) << unicode.error().message;
  EXPECT_EQ(unicode->environments[0].region, "\xc3\xbf");
  auto empty = ParseRegistry("", "envs.yaml");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->pools.empty());
  EXPECT_FALSE(empty->allow_empty);
  auto meant = ParseRegistry("allow_empty: true\n", "envs.yaml");
  ASSERT_TRUE(meant.ok());
  EXPECT_TRUE(meant->allow_empty);
}

TEST(Registry, RequirementsMatchCapabilitiesRegionAndAccount) {
  EnvironmentSpec e;
  e.id = "e";
  e.region = "us-east-1";
  e.account = "42";
  e.capabilities = {{"gpu", "yes"}, {"size", "large"}};
  EXPECT_TRUE(Matches(e, {}));
  EXPECT_TRUE(Matches(e, {{"gpu", {"yes"}}}));
  EXPECT_TRUE(Matches(e, {{"size", {"small", "large"}}, {"region", {"us-east-1"}}}));
  EXPECT_FALSE(Matches(e, {{"size", {"small"}}}));
  EXPECT_FALSE(Matches(e, {{"zone", {"a"}}}));
  EXPECT_FALSE(Matches(e, {{"account", {"7"}}}));

  auto a = ParseRequirement("size=large");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->first, "size");
  EXPECT_EQ(a->second, (std::vector<std::string>{"large"}));
  auto b = ParseRequirement("region in [us-east-1, eu-west-1]");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->second, (std::vector<std::string>{"us-east-1", "eu-west-1"}));
  auto c = ParseRequirement("size=small,large");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->second.size(), 2u);
  EXPECT_FALSE(ParseRequirement("size").ok());
  EXPECT_FALSE(ParseRequirement("size in large").ok());
}

TEST(Runner, FeedsStdinCapturesOutputAndEnforcesTheDeadline) {
  Command cat{{"/bin/sh", "-c", "cat; echo \"id=$MERIDIAN_ENV_ID\" >&2; exit 3"}, 5'000'000'000};
  CommandResult r = RunCommand(cat, "{\"id\":\"e1\"}", {{"MERIDIAN_ENV_ID", "e1"}});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "{\"id\":\"e1\"}");
  EXPECT_NE(r.log.find("id=e1"), std::string::npos) << r.log;
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.Describe(), "exit 3");

  Command slow{{"sleep", "30"}, 300'000'000};
  CommandResult t = RunCommand(slow, "", {});
  EXPECT_TRUE(t.timed_out);
  EXPECT_EQ(t.signal, SIGTERM);
  EXPECT_LT(t.duration_ns, 10'000'000'000);
  EXPECT_NE(t.Describe().find("timed out"), std::string::npos);

  CommandResult missing = RunCommand(Command{{"no-such-command-here"}, 0}, "", {});
  EXPECT_NE(missing.error.find("command not found"), std::string::npos);
}

}  // namespace
}  // namespace meridian::envpool
