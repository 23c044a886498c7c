#!/usr/bin/env bash
# The cluster test with SHARDS=4.
SHARDS=4 exec bash "$(dirname "${BASH_SOURCE[0]}")/cluster_test.sh" "$@"
