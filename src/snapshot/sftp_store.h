// SFTP snapshot store ([snapshot] store = "sftp"): objects are files in one directory of an SSH
// server, reached with libcurl's SFTP (libssh2).
//
// snapshot.sftp.url keeps v0.8's form and adds query parameters for key files:
//   sftp://user:password@host:port/path                  password login (port defaults to 22)
//   sftp://user@host:port/path?key=/home/me/.ssh/id_ed25519
//   sftp://user@host/path?key=/k/id_rsa&passphrase=PASS&known_hosts=/home/me/.ssh/known_hosts
// `path` is the directory that holds the objects: absolute ("/srv/snapshots"), or under the
// user's home with "/~/" ("sftp://me@host/~/snapshots"). Missing levels are created on the first
// upload. `key` is a private key file (its public half is derived from it), `passphrase` unlocks
// an encrypted key. Values are percent-decoded (a '+' stays a '+').
//
// Host keys: with `known_hosts` the server's host key must be listed in that file (OpenSSH
// format, e.g. "[host]:2222 ssh-ed25519 AAAA..."), or nothing is sent. WITHOUT `known_hosts` THE
// SERVER'S HOST KEY IS NOT CHECKED (libcurl's CURLOPT_SSH_KNOWNHOSTS unset): anyone who can
// intercept the connection can pose as the server and read the password and the snapshots.
//
// Operations: Put uploads to "<name>.partial" and then renames it to "<name>", so a half-written
// object only ever exists under a .partial name, which List skips. SFTP v3 (OpenSSH) refuses to
// rename onto an existing file and libcurl offers no posix-rename, so an existing "<name>" is
// removed just before the rename: while an object is being replaced, that name is briefly
// missing, never half-written. List reads the long directory listing (sizes from its "ls -l"
// columns); a directory that does not exist yet lists as empty. Get downloads straight into the
// local file; Remove is an SFTP "rm". Codes: kInvalidArgument for a rejected login, kNotFound for
// a missing object, kUnavailable when the server cannot be reached.
#pragma once

#include <memory>

#include "config/config.h"
#include "snapshot/snapshot_store.h"
#include "util/status.h"

namespace marmot {

// Parses and checks snapshot.sftp.url (errors name the key and what is wrong, never the password)
// and that the key and known_hosts files can be read. Does not contact the server.
Result<std::unique_ptr<SnapshotStore>> OpenSftpStore(const SftpSnapshotConfig& config);

}  // namespace marmot
