#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "attest/authority/registration_entry.h"

namespace portcullis::attest::authority {

// EntryMatcher is an immutable snapshot of the registration entries plus an index for matching
// them, built once per store write and then shared by every issuing thread without a lock.
//
// The index files each entry under one of its own selectors, the one fewest entries share (its
// "key"). An entry can only match a workload whose selectors include all of the entry's, so in
// particular its key: a lookup checks only the entries filed under the workload's own selectors
// instead of scanning every entry. match() returns exactly what match_entries() returns.
class EntryMatcher {
 public:
  // `entries` must be sorted by id (AuthorityStore keeps them so). The matcher keeps them alive.
  explicit EntryMatcher(std::shared_ptr<const std::vector<RegistrationEntry>> entries);
  EntryMatcher(const EntryMatcher&) = delete;
  EntryMatcher& operator=(const EntryMatcher&) = delete;

  const std::shared_ptr<const std::vector<RegistrationEntry>>& entries() const { return entries_; }

  // match: the entries whose parent_id is empty or `node_id` and whose selectors are all in
  // `selectors`, sorted by id. Pointers live as long as entries(). Thread-safe (const).
  std::vector<const RegistrationEntry*> match(std::string_view node_id,
                                              const std::vector<std::string>& selectors) const;

 private:
  std::shared_ptr<const std::vector<RegistrationEntry>> entries_;
  // key selector -> indexes into *entries_, ascending. The string_views point into *entries_.
  std::unordered_map<std::string_view, std::vector<uint32_t>> by_key_;
};

}  // namespace portcullis::attest::authority
