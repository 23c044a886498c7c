#!/usr/bin/env bash
# Fault suite, conflict torture across a leaf connection (issue 10): fault_conflict_test.sh with
# node 3 joined only by -leaf-servers to node 1. Its embedded server has no JetStream of its own
# and uses the hub's (docs/CLUSTER.md), so every stream has one order for all three nodes, and the
# concurrent writes to the same keys on both sides of the leaf connection end identical.
CONFLICT_LEAF=1
source "$(dirname "${BASH_SOURCE[0]}")/fault_conflict_test.sh"
