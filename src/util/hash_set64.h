// HashSet64: a set of 64-bit hashes (open addressing, linear probing) that keeps its memory when
// cleared, for per-batch bookkeeping on the hot path without an allocation per element.
//
// REQUIRES: external synchronization.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace marmot {

class HashSet64 {
 public:
  // Empties the set, keeping its memory.
  void Clear() {
    std::fill(slots_.begin(), slots_.end(), kEmpty);
    size_ = 0;
    has_empty_marker_ = false;
  }

  // Adds `h`; returns false when it was already there.
  bool Insert(uint64_t h) {
    if (h == kEmpty) return has_empty_marker_ ? false : (has_empty_marker_ = true);
    if (2 * (size_ + 1) > slots_.size()) Grow();
    uint64_t& slot = slots_[Find(h)];
    if (slot == h) return false;
    slot = h;
    ++size_;
    return true;
  }

  bool Contains(uint64_t h) const {
    if (h == kEmpty) return has_empty_marker_;
    if (slots_.empty()) return false;
    return slots_[Find(h)] == h;
  }

 private:
  static constexpr uint64_t kEmpty = 0;

  // The index of the slot holding `h`, or of the empty slot where it would go (the table is never
  // full). Starts at the top bits of h times a large odd constant, so hashes whose low bits
  // agree still spread.
  size_t Find(uint64_t h) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = static_cast<size_t>((h * 0x9e3779b97f4a7c15ULL) >> (64 - log2_size_));;
         i = (i + 1) & mask) {
      if (slots_[i] == h || slots_[i] == kEmpty) return i;
    }
  }

  void Grow() {
    std::vector<uint64_t> old;
    old.swap(slots_);
    log2_size_ = std::max(6, log2_size_ + 1);
    slots_.assign(size_t{1} << log2_size_, kEmpty);
    for (uint64_t h : old) {
      if (h != kEmpty) slots_[Find(h)] = h;
    }
  }

  std::vector<uint64_t> slots_;  // power-of-two size; kEmpty marks a free slot
  int log2_size_ = 0;
  size_t size_ = 0;  // elements in slots_ (kEmpty itself is tracked apart)
  bool has_empty_marker_ = false;
};

}  // namespace marmot
