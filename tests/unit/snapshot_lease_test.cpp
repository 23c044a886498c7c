// SnapshotLease on a real nats-server: one holder at a time, free again once released.
#include <gtest/gtest.h>

#include "local_nats.h"
#include "snapshot/lease.h"
#include "test_util.h"

namespace marmot {
namespace {

TEST(SnapshotLeaseTest, OneHolderAtATime) {
  test::TempDir dir;
  test::LocalNats nats;
  nats.Start("lease-test", dir.File("nats"));
  ASSERT_FALSE(HasFatalFailure());
  Result<std::unique_ptr<SnapshotLease>> a = SnapshotLease::Open(nats.client.get(), "test-lease", 1);
  ASSERT_TRUE(a.ok()) << a.status().message();
  Result<std::unique_ptr<SnapshotLease>> b =
      SnapshotLease::Open(nats.client.get(), "test-lease", 1);  // exists now
  ASSERT_TRUE(b.ok()) << b.status().message();

  Result<std::unique_ptr<SnapshotLease::Hold>> first = (*a)->TryTake(1);
  ASSERT_TRUE(first.ok()) << first.status().message();
  ASSERT_TRUE(*first);
  Result<std::unique_ptr<SnapshotLease::Hold>> second = (*b)->TryTake(2);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_FALSE(*second) << "two nodes held the lease at once";

  first->reset();  // released
  Result<std::unique_ptr<SnapshotLease::Hold>> third = (*b)->TryTake(2);
  ASSERT_TRUE(third.ok()) << third.status().message();
  EXPECT_TRUE(*third);
}

}  // namespace
}  // namespace marmot
