// S3 store: snapshots as objects in a bucket of any S3-compatible service (AWS S3, MinIO, Ceph,
// s3rver, ...), reached with path-style URLs: http(s)://<endpoint>/<bucket>/<path>/<name>.
//
// Requests are signed by libcurl's own AWS SigV4 (CURLOPT_AWS_SIGV4; no signing code here) with
// access_key/secret; session_token goes in x-amz-security-token. An empty access_key sends
// unsigned (anonymous) requests. libcurl 7.88 signs the payload hash given in
// x-amz-content-sha256: uploads streamed from a file send "UNSIGNED-PAYLOAD", small in-memory
// bodies their real SHA-256. The region starts as S3StoreOptions::region; when AWS answers
// AuthorizationHeaderMalformed naming the bucket's region, the request is signed again for it.
//
// Put sends one PUT up to S3StoreOptions::multipart_threshold bytes and a multipart upload above
// it, each part streamed from the file at its offset (memory does not grow with the object). S3
// shows an object only once its PUT or CompleteMultipartUpload finished, so a half-done upload is
// never listed; a failed multipart upload is aborted so its parts do not linger (and cost).
// List uses ListObjectsV2 under "<path>/" and returns names relative to it, skipping deeper keys.
//
// Errors (see snapshot_store.h) read "<Describe()>: <operation> <object>: <reason>", with S3's
// error code: NoSuchBucket is "no such bucket <b>" (kNotFound), InvalidAccessKeyId,
// SignatureDoesNotMatch and AccessDenied are "wrong credentials" (kInvalidArgument), a server
// that cannot be reached is "server unreachable" (kUnavailable).
//
// Thread safety: one thread at a time (SnapshotStore's rule).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "config/config.h"
#include "snapshot/snapshot_store.h"
#include "util/status.h"

namespace marmot {

struct S3StoreOptions {
  // Files larger than this go up as a multipart upload.
  uint64_t multipart_threshold = 64ull << 20;
  // Bytes per part (S3 needs >= 5 MiB for all but the last part); raised when a file would need
  // more than S3's 10,000 parts.
  uint64_t part_size = 64ull << 20;
  // Keys asked for per ListObjectsV2 page (S3 caps it at 1000).
  int list_page_size = 1000;
  // SigV4 region used until the server names another one.
  std::string region = "us-east-1";
};

// Checks the [snapshot.s3] settings (endpoint and bucket required, endpoint is host[:port]) and
// returns the store; does not contact the server. Errors name the key, e.g. "snapshot.s3.bucket".
Result<std::unique_ptr<SnapshotStore>> OpenS3Store(const S3SnapshotConfig& config);
Result<std::unique_ptr<SnapshotStore>> OpenS3Store(const S3SnapshotConfig& config,
                                                   const S3StoreOptions& options);

}  // namespace marmot
