// Registration-entry matching, the lookup the attestation authority runs for every workload SVID
// it signs: AuthorityStore::match (linear scan) and EntryMatcher::match (indexed) over an immutable
// snapshot of N entries.
//
//   build/bench/portcullis_authority_match_bench [--benchmark_filter=REGEX]
//
// The entries are generated here the way a busy host registers workloads: each entry pins a uid
// and an executable hash (some also a cgroup path), a quarter are scoped to one of 16 nodes. The
// query is one workload's full kernel selector set (8 selectors), which matches exactly one entry.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <string>
#include <vector>

#include "attest/authority/authority_store.h"
#include "attest/authority/registration_entry.h"
#include "common/digest.h"

namespace {

using portcullis::attest::authority::AuthorityStore;
using portcullis::attest::authority::EntryMatcher;
using portcullis::attest::authority::RegistrationEntry;

std::string node_id(int n) { return "spiffe://example.org/node/join_token/" + std::to_string(n); }
std::string hash_of(int i) { return "unix:sha256:" + portcullis::sha256_hex("/usr/bin/w" + std::to_string(i)); }

std::vector<RegistrationEntry> make_entries(int n) {
  std::vector<RegistrationEntry> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    RegistrationEntry e;
    e.id = portcullis::attest::authority::random_hex(16);
    e.spiffe_id = "spiffe://example.org/workload/" + std::to_string(i);
    e.selectors = {"unix:uid:" + std::to_string(1000 + i % 5000), hash_of(i)};
    if (i % 3 == 0) e.selectors.push_back("cgroup:path:/system.slice/w" + std::to_string(i) + ".service");
    if (i % 4 == 0) e.parent_id = node_id(i % 16);
    std::sort(e.selectors.begin(), e.selectors.end());
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

// The selectors the kernel attestor reports for workload `i` (entry i matches them).
std::vector<std::string> workload_selectors(int i) {
  std::vector<std::string> s = {"unix:uid:" + std::to_string(1000 + i % 5000),
                                "unix:gid:" + std::to_string(1000 + i % 5000),
                                "unix:user:w" + std::to_string(i),
                                "unix:group:w" + std::to_string(i),
                                "unix:path:/usr/bin/w" + std::to_string(i),
                                hash_of(i),
                                "cgroup:path:/system.slice/w" + std::to_string(i) + ".service",
                                "unix:supplementary_gid:100"};
  std::sort(s.begin(), s.end());
  return s;
}

void BM_Match(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto entries = make_entries(n);
  const int workload = 4;  // its entry is scoped to node 4
  auto selectors = workload_selectors(workload);
  const std::string node = node_id(workload % 16);
  size_t matched = 0;
  for (auto _ : state) {
    auto m = AuthorityStore::match(entries, node, selectors);
    matched = m.size();
    benchmark::DoNotOptimize(m.data());
  }
  if (matched != 1) state.SkipWithError("expected exactly one match");
  state.SetItemsProcessed(state.iterations());
  state.counters["entries"] = n;
}
BENCHMARK(BM_Match)->Arg(100)->Arg(1000)->Arg(10000);

// The same lookup through the store's EntryMatcher (the issuance path).
void BM_MatchIndexed(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  EntryMatcher matcher(std::make_shared<const std::vector<RegistrationEntry>>(make_entries(n)));
  const int workload = 4;
  auto selectors = workload_selectors(workload);
  const std::string node = node_id(workload % 16);
  size_t matched = 0;
  for (auto _ : state) {
    auto m = matcher.match(node, selectors);
    matched = m.size();
    benchmark::DoNotOptimize(m.data());
  }
  if (matched != 1) state.SkipWithError("expected exactly one match");
  state.SetItemsProcessed(state.iterations());
  state.counters["entries"] = n;
}
BENCHMARK(BM_MatchIndexed)->Arg(100)->Arg(1000)->Arg(10000);

// Building the index, which the store does once per entry write.
void BM_BuildMatcher(benchmark::State& state) {
  auto entries = std::make_shared<const std::vector<RegistrationEntry>>(make_entries(static_cast<int>(state.range(0))));
  for (auto _ : state) {
    EntryMatcher matcher(entries);
    benchmark::DoNotOptimize(&matcher);
  }
}
BENCHMARK(BM_BuildMatcher)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
