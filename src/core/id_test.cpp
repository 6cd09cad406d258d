#include "core/id.h"

#include <gtest/gtest.h>

#include <set>

namespace meridian {
namespace {

TEST(Id, EachKindHasItsOwnPrefix) {
  const IdKind kinds[] = {IdKind::kRun, IdKind::kAgent, IdKind::kAllocation};
  for (IdKind a : kinds) {
    for (IdKind b : kinds) {
      if (a == b) continue;
      EXPECT_FALSE(NewId(a).starts_with(IdPrefix(b))) << IdPrefix(a) << " vs " << IdPrefix(b);
    }
  }
  EXPECT_EQ(NewId(IdKind::kRun).size(), 2u + 12u);
  EXPECT_EQ(NewId(IdKind::kAgent).size(), 3u + 12u);
  EXPECT_EQ(NewId(IdKind::kAllocation).size(), 2u + 16u);
  const std::string id = NewId(IdKind::kAllocation);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 2), std::string::npos) << id;
}

TEST(Id, RandomHex) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(RandomHex(8));
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_EQ(RandomHex(32).size(), 64u);
  const unsigned char bytes[] = {0x00, 0x0f, 0xa5, 0xff};
  EXPECT_EQ(Hex(bytes, sizeof bytes), "000fa5ff");
}

}  // namespace
}  // namespace meridian
