#include "attest/authority/entry_matcher.h"

#include <algorithm>

namespace portcullis::attest::authority {

EntryMatcher::EntryMatcher(std::shared_ptr<const std::vector<RegistrationEntry>> entries)
    : entries_(std::move(entries)) {
  std::unordered_map<std::string_view, uint32_t> popularity;
  for (const auto& e : *entries_) {
    for (const auto& s : e.selectors) ++popularity[s];
  }
  for (uint32_t i = 0; i < entries_->size(); ++i) {
    const auto& selectors = (*entries_)[i].selectors;
    if (selectors.empty()) continue;  // the store never holds one; it could match nothing useful
    auto key = std::min_element(selectors.begin(), selectors.end(), [&](const std::string& a, const std::string& b) {
      return popularity[a] < popularity[b];
    });
    by_key_[*key].push_back(i);
  }
}

std::vector<const RegistrationEntry*> EntryMatcher::match(std::string_view node_id,
                                                          const std::vector<std::string>& selectors) const {
  std::vector<std::string> normalized;
  const std::vector<std::string>* have = &selectors;
  if (std::adjacent_find(selectors.begin(), selectors.end(), std::greater_equal<>()) != selectors.end()) {
    // Unsorted or repeated: a repeated selector would visit its entries twice.
    normalized = selectors;
    std::sort(normalized.begin(), normalized.end());
    normalized.erase(std::unique(normalized.begin(), normalized.end()), normalized.end());
    have = &normalized;
  }
  std::vector<uint32_t> hits;
  for (const auto& s : *have) {
    auto it = by_key_.find(s);
    if (it == by_key_.end()) continue;
    for (uint32_t i : it->second) {
      const RegistrationEntry& e = (*entries_)[i];
      if (e.selectors.size() > have->size()) continue;
      if (!e.parent_id.empty() && e.parent_id != node_id) continue;
      if (std::includes(have->begin(), have->end(), e.selectors.begin(), e.selectors.end())) hits.push_back(i);
    }
  }
  // Entries are sorted by id, so index order is id order.
  std::sort(hits.begin(), hits.end());
  std::vector<const RegistrationEntry*> out;
  out.reserve(hits.size());
  for (uint32_t i : hits) out.push_back(&(*entries_)[i]);
  return out;
}

}  // namespace portcullis::attest::authority
