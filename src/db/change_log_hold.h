// ChangeLogHold: keeps change-log entries that `marmot verify` needs from being deleted, and
// tells which of them surely lie before the verify barriers.
//
// Verify compares nodes under write load at a barrier message in each shard stream (docs/VERIFY.md)
// and leaves out the rows a node wrote locally that may reach the streams only after the
// barriers. At "prepare" (before the barriers are published) the responder calls Hold(): every
// change-log entry up to the returned sequence is acknowledged by JetStream already, so it lies
// before the barriers. The publisher's cleanup must not delete the entries after it until the
// verify snapshot is taken (Release): their keys are read from that snapshot. While held, each
// confirmation is recorded with the stream sequences of the messages it confirmed, so that
// LastBefore can move the line up to the last confirmation whose messages all lie before the
// barriers: only the entries after that line are left out.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace marmot {

class ChangeLogHold {
 public:
  // The publisher's side: every entry up to `seq` is in the streams (set, not raised: a restored
  // database starts its log again). `acked`: per stream, the sequence of the newest message this confirmation
  // covers (empty when not known: the entries then count as possibly after any barrier).
  void SetConfirmed(uint64_t seq, const std::map<std::string, uint64_t>& acked);
  // A reader opened (again): `seq` is its persisted confirmation. Nothing is recorded.
  void Reset(uint64_t seq) { confirmed_.store(seq); }

  // Verify's side: entries after the returned sequence are kept until Release(that sequence).
  uint64_t Hold();
  void Release(uint64_t held);
  // The highest entry, at least `held`, up to which every entry lies before `barriers` (stream ->
  // barrier sequence) by the confirmations recorded since the hold.
  uint64_t LastBefore(uint64_t held, const std::map<std::string, uint64_t>& barriers);

  // The cleanup's side: the highest entry it may delete now, given its `confirmed`. No lock is
  // kept while it deletes: a Hold() that comes after this returns at least `confirmed` (which is
  // never above what was set here), so the deletion never reaches an entry it holds.
  uint64_t DeletableUpTo(uint64_t confirmed);

 private:
  std::mutex mu_;
  std::atomic<uint64_t> confirmed_{0};
  std::map<uint64_t, int> holds_;  // held sequence -> how many sessions hold it
  std::atomic<bool> holding_{false};
  struct Confirmation {
    uint64_t seq;
    std::map<std::string, uint64_t> acked;
  };
  std::vector<Confirmation> confirmations_;  // in order, since the oldest hold
  static constexpr size_t kMaxConfirmations = 100000;
};

}  // namespace marmot
