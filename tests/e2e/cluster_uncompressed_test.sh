#!/usr/bin/env bash
# The cluster test with COMPRESS=false.
COMPRESS=false exec bash "$(dirname "${BASH_SOURCE[0]}")/cluster_test.sh" "$@"
