// The requests `marmot verify` sends to the nodes and what they answer (docs/VERIFY.md): JSON on
// core NATS subject VerifySubject(stream_prefix), which every node subscribes to. Every request
// goes to all nodes; each answers on the request's reply inbox. Every answer carries "node" (the
// node_id) and "instance" (random per process: two nodes may share a node_id).
//
//   {"op":"prepare","session":S,"hold_ms":H}
//                                    every node: {"op":"prepared","node":N}; its consumers will stop
//                                    at the session's barriers (for at most H ms), and the
//                                    change-log entries not yet surely in the streams are kept.
//   (verify then publishes a barrier message, header Marmot-Verify-Barrier: S, into each shard stream)
//   {"op":"digest","session":S,"wait_ms":W}
//                                    every prepared node: {"op":"hello","node":N} at once; once its
//                                    consumers are at the barriers (at most W ms), one read
//                                    transaction that stays open for the session:
//                                    {"op":"digest","node":N,"positions":{stream:seq},"gaps":G,
//                                     "tables":[{"name","rows","sum"}],"schema":{...},
//                                     "local":{table:[key,...]}} (rows written here that may reach
//                                    the streams after the barriers)
//   {"op":"exclude","session":S,"keys":{table:[key,...]}}
//                                    takes those rows out of the session's digests:
//                                    {"node":N,"tables":[{"name","rows","sum"}]}
//   {"op":"buckets","session":S,"table":T}
//                                    {"node":N,"buckets":[[index,rows,"sum"],...]} (non-empty ones)
//   {"op":"rows","session":S,"table":T,"buckets":[i,...]}
//                                    {"node":N,"rows":[{"key":[...],"hash":"sum"},...]}
//   {"op":"end","session":S}         no answer; the read transaction ends
//   {"op":"repair","instance":I,"table":T,"keys":[[...],...]}
//                                    the node with instance I only: logs each key as changed, so its
//                                    publisher sends the row as it is there (or a delete when it has none):
//                                    {"node":N,"logged":K}
//   {"op":"whois"}                   every node: {"op":"whois","node":N,"db_path","host"}; a
//                                    starting node asks it to warn about a node_id in use
// A node that cannot do what is asked answers {"node":N,"error":"..."}.
#pragma once

#include <chrono>
#include <string>

namespace marmot {

// Where a node with an embedded nats-server writes that server's URL while it runs, so that
// `marmot verify` with the same config finds it: "<db_path>-marmot.nats-url".
inline std::string NodeNatsUrlPath(const std::string& db_path) { return db_path + "-marmot.nats-url"; }

inline std::string VerifySubject(const std::string& stream_prefix) { return stream_prefix + "-verify"; }

// The header of a barrier message (verify/verify_barriers.h).
inline constexpr char kVerifyBarrierHeader[] = "Marmot-Verify-Barrier";

// A session's read transaction ends this long after its last request.
inline constexpr std::chrono::seconds kVerifySessionIdle{120};

}  // namespace marmot
