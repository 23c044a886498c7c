// SnapshotStore: where snapshots are kept. One interface, four implementations chosen by
// [snapshot] store: a NATS object store bucket (nats_object_store.h), an S3-compatible bucket
// (s3_store.h), a WebDAV directory (webdav_store.h) and an SFTP directory (sftp_store.h).
//
// A store holds flat objects by name (letters, digits, '-', '_', '.'; no '/'). The snapshot layer
// (snapshot.h) writes each snapshot as two objects, the compressed database and then its small
// manifest, and lists manifests only, so a snapshot whose upload did not finish is never seen.
// Stores add their own guarantee where the protocol allows it: an object is visible under its
// name only once it was uploaded completely (S3 and NATS by protocol, WebDAV and SFTP by
// uploading to a temporary name and renaming).
//
// Errors: every failed Status names the store (Describe(), never with secrets), the object and
// the operation, and the cause in the user's words ("unreachable", "wrong credentials", "no such
// bucket", "disk full" where the server says so). Codes: kNotFound for a missing object or
// bucket, kUnavailable when the server cannot be reached, kInvalidArgument for rejected
// credentials or settings, kIoError for local file trouble, kUnknown otherwise.
//
// Thread safety: a store is used by one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/status.h"

namespace marmot {

// Told the bytes of a long transfer as they go (upload, download), from the transferring thread.
class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  virtual void Advance(uint64_t bytes) = 0;
};

struct StoredObject {
  std::string name;
  uint64_t size = 0;
};

class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;

  // "s3 store http://127.0.0.1:9000/bucket/prefix", "sftp store sftp://user@host:22/dir", ...:
  // names the store in messages, without passwords, secrets or tokens.
  virtual std::string Describe() const = 0;

  // Uploads the file at `local_path` as object `name`, replacing an object of that name. The
  // object is listed only once complete. `progress` may be null.
  virtual Status Put(const std::string& name, const std::string& local_path, ProgressSink* progress) = 0;

  // Downloads object `name` into the file at `local_path` (created or truncated). kNotFound when
  // there is no such object. On failure the local file may hold part of the object.
  virtual Status Get(const std::string& name, const std::string& local_path, ProgressSink* progress) = 0;

  // Every complete object in the store, in no particular order.
  virtual Result<std::vector<StoredObject>> List() = 0;

  // Deletes object `name`; a missing object is not an error.
  virtual Status Remove(const std::string& name) = 0;
};

}  // namespace marmot
