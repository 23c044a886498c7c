#include "snapshot/manifest.h"

#include <fmt/format.h>

#include <ctime>
#include <nlohmann/json.hpp>

namespace marmot {

uint64_t SnapshotManifest::PositionOf(const std::string& stream) const {
  for (const SnapshotPosition& p : positions) {
    if (p.stream == stream) return p.seq;
  }
  return 0;
}

std::string NewSnapshotId(std::chrono::system_clock::time_point now, uint64_t node_id) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&secs, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &utc);
  return fmt::format("snapshot-{}{:03d}Z-{:016x}", stamp, static_cast<int>(ms % 1000), node_id);
}

std::string ManifestToJson(const SnapshotManifest& m) {
  nlohmann::json j;
  j["format"] = m.format;
  j["id"] = m.id;
  j["node_id"] = m.node_id;
  j["created_unix_ms"] = m.created_unix_ms;
  j["marmot_version"] = m.marmot_version;
  j["page_size"] = m.page_size;
  j["db_bytes"] = m.db_bytes;
  j["object"] = m.data_object();
  j["object_bytes"] = m.object_bytes;
  j["sha256"] = m.sha256;
  j["positions"] = nlohmann::json::array();
  for (const SnapshotPosition& p : m.positions) {
    j["positions"].push_back({{"stream", p.stream}, {"seq", p.seq}, {"stream_created_ns", p.created_ns}});
  }
  j["tables"] = nlohmann::json::array();
  for (const SnapshotTable& t : m.tables) j["tables"].push_back({{"name", t.name}, {"rows", t.rows}});
  return j.dump(2) + "\n";
}

Result<SnapshotManifest> ManifestFromJson(const std::string& json, const std::string& what) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption(what + ": not a JSON object");
  SnapshotManifest m;
  try {
    m.format = j.at("format").get<int>();
    if (m.format != 1) {
      return Status::InvalidArgument(
          fmt::format("{}: snapshot format {} is newer than this marmot understands (1); upgrade marmot",
                      what, m.format));
    }
    m.id = j.at("id").get<std::string>();
    m.node_id = j.at("node_id").get<uint64_t>();
    m.created_unix_ms = j.at("created_unix_ms").get<int64_t>();
    m.marmot_version = j.value("marmot_version", "");
    m.page_size = j.at("page_size").get<int64_t>();
    m.db_bytes = j.at("db_bytes").get<uint64_t>();
    m.object_bytes = j.at("object_bytes").get<uint64_t>();
    m.sha256 = j.at("sha256").get<std::string>();
    for (const nlohmann::json& p : j.at("positions")) {
      m.positions.push_back({p.at("stream").get<std::string>(), p.at("seq").get<uint64_t>(),
                             p.value("stream_created_ns", int64_t{0})});
    }
    for (const nlohmann::json& t : j.at("tables")) {
      m.tables.push_back({t.at("name").get<std::string>(), t.at("rows").get<int64_t>()});
    }
  } catch (const nlohmann::json::exception& e) {
    return Status::Corruption(what + ": " + e.what());
  }
  if (m.sha256.size() != 64) return Status::Corruption(what + ": sha256 is not 64 hex digits");
  return m;
}

}  // namespace marmot
