#include "snapshot/open_store.h"

#include "snapshot/nats_object_store.h"
#include "snapshot/s3_store.h"
#include "snapshot/sftp_store.h"
#include "snapshot/webdav_store.h"

namespace marmot {

Result<std::unique_ptr<SnapshotStore>> OpenSnapshotStore(const SnapshotConfig& config,
                                                         const std::string& nats_bucket, NatsClient* client) {
  if (config.store == "s3") return OpenS3Store(config.s3);
  if (config.store == "webdav") return OpenWebDavStore(config.webdav);
  if (config.store == "sftp") return OpenSftpStore(config.sftp);
  if (config.store == "nats") {
    if (client == nullptr) return Status::InvalidArgument("snapshot store nats needs a NATS connection");
    return OpenNatsObjectStore(client, nats_bucket, static_cast<int>(config.nats.replicas));
  }
  return Status::InvalidArgument("snapshot.store = \"" + config.store +
                                 "\" must be one of nats, s3, webdav, sftp");
}

}  // namespace marmot
