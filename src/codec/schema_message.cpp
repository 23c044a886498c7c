#include "codec/schema_message.h"

#include <nlohmann/json.hpp>

namespace marmot {
namespace {

constexpr int kVersion = 1;

nlohmann::json OptionalText(const std::optional<std::string>& text) {
  return text ? nlohmann::json(*text) : nlohmann::json(nullptr);
}

std::optional<std::string> ReadOptionalText(const nlohmann::json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<std::string>();
}

}  // namespace

std::string ObjectTransition::Key() const {
  // Lengths first, so that no two different transitions give the same key.
  std::string key = type + ":" + std::to_string(name.size()) + ":" + name;
  for (const std::optional<std::string>* sql : {&before, &after}) {
    key += *sql ? ":" + std::to_string((*sql)->size()) + ":" + **sql : std::string(":-");
  }
  return key;
}

std::string EncodeSchemaChange(const SchemaChange& change) {
  nlohmann::json objects = nlohmann::json::array();
  for (const ObjectTransition& o : change.objects) {
    objects.push_back({{"type", o.type},
                       {"name", o.name},
                       {"tbl_name", o.tbl_name},
                       {"before", OptionalText(o.before)},
                       {"after", OptionalText(o.after)}});
  }
  nlohmann::json renames = nlohmann::json::array();
  for (const SchemaRename& r : change.renames) {
    renames.push_back({{"table", r.table}, {"from", r.from}, {"to", r.to}, {"column", r.column}});
  }
  return nlohmann::json{{"version", kVersion},
                        {"origin_node", std::to_string(change.origin_node)},
                        {"objects", objects},
                        {"renames", renames}}
      .dump();
}

Result<SchemaChange> DecodeSchemaChange(std::string_view payload) {
  try {
    nlohmann::json j = nlohmann::json::parse(payload);
    int version = j.at("version").get<int>();
    if (version != kVersion) {
      return Status::Corruption("schema message of version " + std::to_string(version) +
                                ": this marmot reads version " + std::to_string(kVersion) +
                                " (upgrade every node to the same version)");
    }
    SchemaChange change;
    change.origin_node = std::stoull(j.at("origin_node").get<std::string>());
    for (const nlohmann::json& o : j.at("objects")) {
      ObjectTransition t;
      t.type = o.at("type").get<std::string>();
      t.name = o.at("name").get<std::string>();
      t.tbl_name = o.at("tbl_name").get<std::string>();
      t.before = ReadOptionalText(o.at("before"));
      t.after = ReadOptionalText(o.at("after"));
      change.objects.push_back(std::move(t));
    }
    for (const nlohmann::json& r : j.at("renames")) {
      change.renames.push_back({r.at("table").get<std::string>(), r.at("from").get<std::string>(),
                                r.at("to").get<std::string>(), r.at("column").get<bool>()});
    }
    return change;
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("undecodable schema message: ") + e.what());
  }
}

}  // namespace marmot
