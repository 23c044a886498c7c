#include "snapshot/snapshot_keeper.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "snapshot/progress_log.h"
#include "snapshot/snapshot_file.h"
#include "util/write_file.h"

namespace marmot {

namespace fs = std::filesystem;

namespace {

Result<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IoError("reading " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

SnapshotKeeper::SnapshotKeeper(std::unique_ptr<SnapshotStore> store, std::unique_ptr<SnapshotLease> lease,
                               SnapshotKeeperOptions options)
    : store_(std::move(store)), lease_(std::move(lease)), options_(std::move(options)) {}

Status SnapshotKeeper::PrepareWorkDir() {
  std::error_code ec;
  fs::remove_all(options_.work_dir, ec);
  fs::create_directories(options_.work_dir, ec);
  if (ec)
    return Status::IoError("creating the snapshot work directory " + options_.work_dir + ": " + ec.message());
  return Status();
}

void SnapshotKeeper::Discard() {
  std::error_code ec;
  fs::remove_all(options_.work_dir, ec);
}

Result<SnapshotKeeper::SaveOutcome> SnapshotKeeper::Save(SnapshotManifest* saved) {
  std::unique_ptr<SnapshotLease::Hold> hold;
  if (lease_) {
    Result<std::unique_ptr<SnapshotLease::Hold>> taken = lease_->TryTake(options_.node_id);
    if (!taken.ok()) return taken.status();
    if (!*taken) return SaveOutcome::kLeaseHeld;
    hold = std::move(*taken);
  }
  MARMOT_RETURN_IF_ERROR(PrepareWorkDir());
  struct Cleanup {
    SnapshotKeeper* keeper;
    ~Cleanup() { keeper->Discard(); }
  } cleanup{this};
  uint64_t db_bytes = 0;
  std::error_code ec;
  db_bytes = fs::file_size(options_.db_path, ec);
  LoggedProgress compressing("saving a snapshot of " + options_.db_path, ec ? 0 : db_bytes);
  Result<LocalSnapshot> local =
      WriteSnapshotFile(options_.db_path, options_.work_dir, options_.node_id, &compressing);
  if (!local.ok()) return local.status();
  compressing.Finish();
  MARMOT_RETURN_IF_ERROR(Upload(local->manifest, local->data_path));
  spdlog::info("saved snapshot {} to {}: {} of database in {}, positions{}", local->manifest.id, Describe(),
               LoggedProgress::Bytes(static_cast<double>(local->manifest.db_bytes)),
               LoggedProgress::Bytes(static_cast<double>(local->manifest.object_bytes)), [&] {
                 std::string p;
                 for (const SnapshotPosition& pos : local->manifest.positions)
                   p += fmt::format(" {}={}", pos.stream, pos.seq);
                 return p.empty() ? std::string(" (none)") : p;
               }());
  Status pruned = Prune(local->manifest.id);
  if (!pruned.ok()) spdlog::warn("deleting old snapshots from {}: {}", Describe(), pruned.message());
  if (saved != nullptr) *saved = local->manifest;
  return SaveOutcome::kSaved;
}

Status SnapshotKeeper::Upload(const SnapshotManifest& m, const std::string& data_path) {
  LoggedProgress uploading("uploading " + m.data_object() + " to " + Describe(), m.object_bytes);
  MARMOT_RETURN_IF_ERROR(store_->Put(m.data_object(), data_path, &uploading));
  uploading.Finish();
  std::string manifest_path = options_.work_dir + "/" + m.manifest_object();
  std::string json = ManifestToJson(m);
  MARMOT_RETURN_IF_ERROR(WriteFileWithMode(manifest_path, json, 0644));
  MARMOT_RETURN_IF_ERROR(store_->Put(m.manifest_object(), manifest_path, nullptr));
  // Verified: the store lists both objects, at the sizes written.
  Result<std::vector<StoredObject>> listed = store_->List();
  if (!listed.ok()) return listed.status().WithContext("checking the upload of " + m.id);
  bool data_ok = false, manifest_ok = false;
  for (const StoredObject& o : *listed) {
    if (o.name == m.data_object()) data_ok = o.size == m.object_bytes;
    if (o.name == m.manifest_object()) manifest_ok = o.size == json.size();
  }
  if (!data_ok || !manifest_ok) {
    return Status::Corruption(fmt::format(
        "{}: after uploading snapshot {} the store does not list {} at {} bytes", Describe(), m.id,
        data_ok ? m.manifest_object() : m.data_object(), data_ok ? json.size() : m.object_bytes));
  }
  return Status();
}

Status SnapshotKeeper::Prune(const std::string& newest_id) {
  Result<std::vector<StoredObject>> listed = store_->List();
  if (!listed.ok()) return listed.status();
  std::vector<std::string> ids;
  for (const StoredObject& o : *listed) {
    if (o.name.ends_with(kManifestSuffix))
      ids.push_back(o.name.substr(0, o.name.size() - strlen(kManifestSuffix)));
  }
  std::sort(ids.rbegin(), ids.rend());
  if (std::find(ids.begin(), ids.end(), newest_id) == ids.end()) return Status();  // not listed: keep all
  if (static_cast<int>(ids.size()) <= options_.keep) return Status();
  std::string oldest_kept = ids[static_cast<size_t>(options_.keep) - 1];
  for (size_t i = static_cast<size_t>(options_.keep); i < ids.size(); ++i) {
    MARMOT_RETURN_IF_ERROR(store_->Remove(ids[i] + kManifestSuffix));
    MARMOT_RETURN_IF_ERROR(store_->Remove(ids[i] + ".db.zst"));
    spdlog::info("deleted snapshot {} from {} (keeping the newest {})", ids[i], Describe(), options_.keep);
  }
  // Data objects whose manifest is gone (an upload or a delete cut short), older than what is kept.
  for (const StoredObject& o : *listed) {
    if (o.name.ends_with(".db.zst") && o.name < oldest_kept &&
        std::find(ids.begin(), ids.begin() + options_.keep, o.name.substr(0, o.name.size() - 7)) ==
            ids.begin() + options_.keep) {
      MARMOT_RETURN_IF_ERROR(store_->Remove(o.name));
    }
  }
  return Status();
}

Result<std::optional<SnapshotManifest>> SnapshotKeeper::Newest() {
  Result<std::vector<StoredObject>> listed = store_->List();
  if (!listed.ok()) return listed.status();
  std::vector<std::string> manifests;
  for (const StoredObject& o : *listed) {
    if (o.name.ends_with(kManifestSuffix)) manifests.push_back(o.name);
  }
  if (manifests.empty()) return std::optional<SnapshotManifest>();
  std::sort(manifests.rbegin(), manifests.rend());
  MARMOT_RETURN_IF_ERROR(PrepareWorkDir());
  std::string path = options_.work_dir + "/" + manifests.front();
  MARMOT_RETURN_IF_ERROR(store_->Get(manifests.front(), path, nullptr));
  Result<std::string> json = ReadSmallFile(path);
  if (!json.ok()) return json.status();
  Result<SnapshotManifest> m = ManifestFromJson(*json, Describe() + " " + manifests.front());
  if (!m.ok()) return m.status();
  return std::optional<SnapshotManifest>(std::move(*m));
}

Result<std::string> SnapshotKeeper::Fetch(const SnapshotManifest& m) {
  MARMOT_RETURN_IF_ERROR(PrepareWorkDir());
  std::string object_path = options_.work_dir + "/" + m.data_object();
  LoggedProgress downloading("downloading " + m.data_object() + " from " + Describe(), m.object_bytes);
  Status got = store_->Get(m.data_object(), object_path, &downloading);
  if (!got.ok()) {
    Discard();
    return got;
  }
  downloading.Finish();
  std::string db_path = options_.work_dir + "/" + m.id + ".db";
  LoggedProgress unpacking("checking and decompressing " + m.data_object(), m.object_bytes);
  Status unpacked = UnpackSnapshotFile(object_path, m, db_path, &unpacking);
  std::error_code ec;
  fs::remove(object_path, ec);
  if (!unpacked.ok()) {
    Discard();
    return unpacked;
  }
  unpacking.Finish();
  return db_path;
}

}  // namespace marmot
