#include "mtls/revocation_set.h"

#include <algorithm>

namespace portcullis::mtls {
namespace {

char lower(char c) { return c >= 'A' && c <= 'F' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string_view strip_zeros(std::string_view hex) {
  while (hex.size() > 1 && hex.front() == '0') hex.remove_prefix(1);
  return hex;
}

// Order by (length, digits): for canonical hex that is numeric order, and it lets a lookup
// compare a query in any case without building a canonical copy of it.
int compare(std::string_view canonical, std::string_view query) {
  if (canonical.size() != query.size()) return canonical.size() < query.size() ? -1 : 1;
  for (size_t i = 0; i < query.size(); ++i) {
    char q = lower(query[i]);
    if (canonical[i] != q) return canonical[i] < q ? -1 : 1;
  }
  return 0;
}

}  // namespace

Result<std::string> canonical_serial_hex(std::string_view hex) {
  if (hex.empty()) return make_error(ErrorCode::kInvalidArgument, "empty serial number");
  if (hex.size() > kMaxSerialHexDigits) {
    return make_error(ErrorCode::kInvalidArgument, "serial number longer than " +
                                                       std::to_string(kMaxSerialHexDigits) + " hex digits");
  }
  std::string out(strip_zeros(hex));
  for (char& c : out) {
    c = lower(c);
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return make_error(ErrorCode::kInvalidArgument, "serial number '" + std::string(hex) + "' is not hex");
    }
  }
  return out;
}

RevocationSet::RevocationSet(std::vector<RevokedSerial> entries, uint64_t version)
    : entries_(std::move(entries)), version_(version) {
  for (const auto& e : entries_) earliest_expiry_ = std::min(earliest_expiry_, e.expires_at);
}

std::shared_ptr<const RevocationSet> RevocationSet::empty() {
  static const std::shared_ptr<const RevocationSet> set(new RevocationSet({}, 0));
  return set;
}

Result<std::shared_ptr<const RevocationSet>> RevocationSet::create(std::vector<RevokedSerial> entries, uint64_t version,
                                                                   int64_t now) {
  for (auto& e : entries) {
    auto canonical = canonical_serial_hex(e.serial_hex);
    if (!canonical.ok()) return canonical.error();
    e.serial_hex = std::move(canonical.value());
  }
  std::erase_if(entries, [now](const RevokedSerial& e) { return e.expires_at <= now; });
  std::sort(entries.begin(), entries.end(), [](const RevokedSerial& a, const RevokedSerial& b) {
    int c = compare(a.serial_hex, b.serial_hex);
    return c != 0 ? c < 0 : a.expires_at > b.expires_at;  // the later expiry first: it survives unique()
  });
  entries.erase(std::unique(entries.begin(), entries.end(),
                            [](const RevokedSerial& a, const RevokedSerial& b) { return a.serial_hex == b.serial_hex; }),
                entries.end());
  return std::shared_ptr<const RevocationSet>(new RevocationSet(std::move(entries), version));
}

const RevokedSerial* RevocationSet::find(std::string_view serial_hex) const {
  std::string_view query = strip_zeros(serial_hex);
  auto it = std::lower_bound(entries_.begin(), entries_.end(), query,
                             [](const RevokedSerial& e, std::string_view q) { return compare(e.serial_hex, q) < 0; });
  return it != entries_.end() && compare(it->serial_hex, query) == 0 ? &*it : nullptr;
}

RevocationPublisher::RevocationPublisher(StatsStore& stats)
    : stats_(RevocationStats::create(stats)), set_(RevocationSet::empty()) {}

Status RevocationPublisher::replace(std::vector<RevokedSerial> entries, int64_t now) {
  uint64_t version;
  {
    std::lock_guard lock(publish_mu_);
    if (Status s = publish_locked(std::move(entries), now); !s.ok()) return s;
    version = current()->version();
  }
  watchers_.notify(version);
  return {};
}

Status RevocationPublisher::add(std::vector<RevokedSerial> entries, int64_t now) {
  uint64_t version;
  {
    std::lock_guard lock(publish_mu_);
    auto old = current();
    entries.insert(entries.end(), old->entries().begin(), old->entries().end());
    if (Status s = publish_locked(std::move(entries), now); !s.ok()) return s;
    version = current()->version();
  }
  watchers_.notify(version);
  return {};
}

size_t RevocationPublisher::prune(int64_t now) {
  uint64_t version;
  size_t dropped;
  {
    std::lock_guard lock(publish_mu_);
    auto old = current();
    if (old->earliest_expiry() > now) return 0;
    size_t before = old->size();
    if (!publish_locked(old->entries(), now).ok()) return 0;  // canonical already: cannot fail
    dropped = before - current()->size();
    version = current()->version();
  }
  watchers_.notify(version);
  return dropped;
}

Status RevocationPublisher::publish_locked(std::vector<RevokedSerial> entries, int64_t now) {
  const auto expired = std::count_if(entries.begin(), entries.end(), [now](const RevokedSerial& e) { return e.expires_at <= now; });
  auto next = RevocationSet::create(std::move(entries), current()->version() + 1, now);
  if (!next.ok()) {
    stats_.rejected_updates.inc();
    return make_error(next.error().code, "revocation update rejected, keeping version " +
                                             std::to_string(current()->version()) + ": " + next.error().message);
  }
  size_t kept = (*next)->size();
  stats_.pruned.inc(static_cast<uint64_t>(expired));
  stats_.updates.inc();
  stats_.serials.set(static_cast<int64_t>(kept));
  stats_.version.set(static_cast<int64_t>((*next)->version()));
  set_.store(std::move(next.value()), std::memory_order_release);
  return {};
}

}  // namespace portcullis::mtls
