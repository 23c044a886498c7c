// NatsObjectStore: a SnapshotStore kept in a NATS JetStream object store bucket ([snapshot] store =
// "nats"), written in the object store protocol of the official clients (NATS ADR-20, as nats.go
// and @nats-io/obj implement it), so their tools can list and download marmot's snapshots and
// marmot can read objects they wrote. nats.c has no object store API; this speaks the protocol
// with plain JetStream streams, publishes and consumers.
//
// Layout of bucket B: stream "OBJ_B" (file storage, discard new, rollup headers and direct get
// allowed, no size or age limit, `replicas` copies) with two subject spaces:
//   $O.B.C.<nuid>             the chunks of one upload, in order (128 KiB each, the last shorter);
//                             every upload gets a fresh nuid, so a replacement never mixes chunks
//   $O.B.M.<base64url(name)>  the object's meta: JSON {name, bucket, nuid, size, mtime, chunks,
//                             digest "SHA-256=<base64url>", options {max_chunk_size}}, published
//                             with "Nats-Rollup: sub" so only the newest meta per name is kept
// Put publishes the chunks (at most 16 unacknowledged at a time, so memory does not grow with the
// object), then, once every chunk is acknowledged, the meta: an object is listed only once it is
// complete. Replacing an object purges the old chunks after the new meta is stored; a failed
// upload purges its own chunks. Remove publishes a meta with "deleted": true and purges the
// chunks. Get streams the chunks to the file through an ordered consumer and checks the size,
// chunk count and SHA-256 digest against the meta (kCorruption when they differ).
//
// Not supported (the protocol has them, marmot does not need them): links to other objects or
// buckets, headers and metadata on objects, TTL and compression settings of the bucket.
//
// Thread safety: one thread at a time (SnapshotStore); the NatsClient may be shared.
#pragma once

#include <memory>
#include <string>

#include "snapshot/snapshot_store.h"
#include "util/status.h"

namespace marmot {

class NatsClient;

// Opens bucket `bucket` (letters, digits, '-', '_') over `client`, which must outlive the store.
// Creates the bucket's stream with `replicas` copies when it does not exist; an existing bucket is
// used as it is (its replica count is not changed). Errors name the bucket: kUnavailable when
// NATS or JetStream does not answer, kInvalidArgument for a bad name or a stream "OBJ_<bucket>"
// that is not an object store, others as the server says.
Result<std::unique_ptr<SnapshotStore>> OpenNatsObjectStore(NatsClient* client, const std::string& bucket,
                                                           int replicas);

}  // namespace marmot
