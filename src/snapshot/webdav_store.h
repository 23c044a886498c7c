// WebDAV snapshot store ([snapshot] store = "webdav"): objects are files in one collection
// (directory) of a WebDAV server, reached with libcurl.
//
// snapshot.webdav.url keeps v0.8's form
//   https://host/path?dir=/snapshots&login=USER&secret=PASS      (http:// works too)
// The query parameters are taken out of the URL: `dir` is the collection under the base URL that
// holds the objects (https://host/path/snapshots/ above; empty or missing: the base URL itself),
// `login` and `secret` are sent as HTTP basic authentication (a user:password in the URL works
// as well). What is left is the base URL, which must already exist on the server; the levels of
// `dir` are created with MKCOL on the first upload.
//
// Requests: Put is a PUT to "<name>.partial" then a MOVE to "<name>" (Overwrite: T), so a
// half-written object only ever exists under a .partial name, which List skips. List is one
// PROPFIND (Depth: 1); a collection that does not exist yet lists as empty (nothing was uploaded).
// Get is a GET streamed into the local file; Remove a DELETE. HTTP answers become codes as the
// SnapshotStore contract says: 401/403 kInvalidArgument ("wrong credentials"), 404 on an object
// kNotFound, 507 kIoError ("disk full"), connection failures kUnavailable.
//
// Not done: TLS settings beyond libcurl's defaults (system CA store, peer verification on), and
// retries (the snapshot layer decides whether to try again).
#pragma once

#include <memory>

#include "config/config.h"
#include "snapshot/snapshot_store.h"
#include "util/status.h"

namespace marmot {

// Parses and checks snapshot.webdav.url (errors name the key and what is wrong; they never show
// the secret). Does not contact the server.
Result<std::unique_ptr<SnapshotStore>> OpenWebDavStore(const WebDavSnapshotConfig& config);

}  // namespace marmot
