// ChangeSource: what the publisher needs from the change log (implemented by ChangeReader).
//
// A seam so the publisher's loop can be driven in unit tests; ChangeReader's header has the
// semantics of each call.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "db/publish_state.h"
#include "db/value.h"
#include "util/status.h"

namespace marmot {

struct ChangeBatch {
  uint64_t first_seq = 0;  // first change-log entry covered (0 when empty)
  uint64_t last_seq = 0;   // last change-log entry covered; confirm this when done
  size_t entries = 0;      // log entries read (>= changes.size() because of coalescing)
  RowChangeList changes;

  bool empty() const { return entries == 0; }
  void Clear() {
    first_seq = last_seq = 0;
    entries = 0;
    changes.clear();
  }
};

class ChangeSource {
 public:
  virtual ~ChangeSource() = default;

  virtual Status ReadBatch(size_t max_entries, ChangeBatch* batch) = 0;
  virtual Status ReadRange(uint64_t first, uint64_t last, ChangeBatch* batch) = 0;
  virtual void SkipTo(uint64_t seq) = 0;
  virtual uint64_t cursor() const = 0;
  virtual Result<uint64_t> LastLoggedSeq() = 0;

  // "table NUL key bytes" of the row `change` touches (its key columns found by name), or nullopt
  // when the table or a key column is unknown here. Equal exactly for changes of the same row.
  virtual Result<std::optional<std::string>> RowIdentity(const RowChange& change) = 0;

  virtual const PublishState& publish_state() const = 0;
  virtual void Confirm(uint64_t seq, const std::map<std::string, uint64_t>& acked) = 0;
  virtual void SetSessions(std::vector<std::string> sessions) = 0;
  virtual Status PersistPublishState() = 0;
  virtual Result<size_t> DeleteConfirmed() = 0;
};

}  // namespace marmot
