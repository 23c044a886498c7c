#!/usr/bin/env bash
# Installs every Debian package that building, testing and running the demo need, then builds
# marmot in Release into build/. Safe to run again: packages already present are skipped and the
# build directory is reused.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates openssl python3 procps
  python3-cbor2 python3-zstandard  # the e2e tests decode messages with Debian's /usr/bin/python3
  python3-boto3 rclone openssh-server openssh-client  # snapshot store tests: S3 cross-check, WebDAV/SFTP servers
  clang-format clang-tidy clang libclang-rt-14-dev  # lint; libFuzzer targets (scripts/fuzz.sh)
  sqlite3 libsqlite3-dev
  nats-server libnats-dev
  libzstd-dev libcurl4-openssl-dev libssl-dev libxxhash-dev
  libtomlplusplus-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcbor-dev
  libcpp-httplib-dev prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  prometheus  # the metrics test scrapes a cluster with a real Prometheus (promtool too)
  chromium    # the status page test opens the page in headless Chromium
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${MARMOT_BUILD_DIR:-$root/build}"
build_type="${MARMOT_BUILD_TYPE:-Release}"
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" -DCMAKE_INSTALL_PREFIX=/usr ${MARMOT_CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j"${MARMOT_JOBS:-2}"
