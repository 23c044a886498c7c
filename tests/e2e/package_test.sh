#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` on the build tree makes a .deb whose control file depends on
# nats-server and the shared libraries the binary links; it holds the binary, the commented sample
# configuration (a conffile), the systemd unit pointing at both, and the docs; the packaged binary
# prints its version and commit. With CI=true (a throwaway machine, as root) the .deb is also
# installed with apt, `marmot -version` run from the PATH, and the package removed again.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
BUILD="$(cd "$(dirname "$MARMOT")" && pwd)"
command -v cpack >/dev/null && command -v dpkg-deb >/dev/null || fail "cpack or dpkg-deb missing"

(cd "$WORK" && cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/pkg" >"$WORK/cpack.log" 2>&1) ||
  fail "cpack failed: $(tail -20 "$WORK/cpack.log")"
deb=$(find "$WORK/pkg" -maxdepth 1 -name 'marmot_*.deb' | head -1)
[ -n "$deb" ] || fail "cpack made no marmot_*.deb: $(ls "$WORK/pkg")"

info=$(dpkg-deb -f "$deb" Package Version Architecture Depends)
echo "$info"
grep -q "^Package: marmot" <<<"$info" || fail "wrong package name"
depends=$(dpkg-deb -f "$deb" Depends)
for dep in nats-server libsqlite3 libnats libzstd libcurl libprometheus-cpp-core libcpp-httplib; do
  grep -q "$dep" <<<"$depends" || fail "Depends lacks $dep: $depends"
done
dpkg-deb -e "$deb" "$WORK/control"
grep -qx "/etc/marmot/config.toml" "$WORK/control/conffiles" || fail "the configuration is not a conffile"

dpkg-deb -x "$deb" "$WORK/root"
for f in usr/bin/marmot etc/marmot/config.toml lib/systemd/system/marmot.service usr/share/doc/marmot/README.md \
  usr/share/doc/marmot/docs/OPERATIONS.md; do
  [ -e "$WORK/root/$f" ] || [ -e "$WORK/root/usr/$f" ] || fail "the package lacks /$f"
done
unit="$WORK/root/usr/lib/systemd/system/marmot.service"
[ -f "$unit" ] || unit="$WORK/root/lib/systemd/system/marmot.service"
grep -qx "ExecStart=/usr/bin/marmot -config /etc/marmot/config.toml" "$unit" || fail "unit: $(grep ExecStart "$unit")"

version=$("$WORK/root/usr/bin/marmot" -version)
echo "$version"
[[ "$version" =~ ^marmot\ [0-9]+\.[0-9]+\.[0-9]+\ \(commit\ [0-9a-f]{12}(-dirty)?\)$ ]] ||
  [[ "$version" =~ \(commit\ unknown\)$ ]] || fail "unexpected -version output: $version"

# The sample configuration is valid as shipped (only db_path changed to a scratch file).
sed "s|^db_path = .*|db_path = \"$WORK/sample.db\"|" "$WORK/root/etc/marmot/config.toml" >"$WORK/sample.toml"
"$WORK/root/usr/bin/marmot" -config "$WORK/sample.toml" -cleanup >"$WORK/sample.log" 2>&1 && true
grep -q "does not exist" "$WORK/sample.log" || fail "the sample configuration is rejected: $(cat "$WORK/sample.log")"

if [ "${CI:-}" = true ] && [ "$(id -u)" = 0 ] && ! dpkg-query -W marmot >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >"$WORK/apt.log" 2>&1 || fail "apt install: $(tail "$WORK/apt.log")"
  installed=$(marmot -version)
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq marmot >>"$WORK/apt.log" 2>&1 || fail "apt purge failed"
  [ "$installed" = "$version" ] || fail "installed marmot says '$installed', expected '$version'"
  echo "installed with apt and ran: $installed"
fi
pass "the .deb holds binary, conffile, unit and docs, and depends on what the binary needs"
