// SVID issuance rate per authority core: AuthorityCore over the real CA (ECDSA P-256 keys in a
// temp data_dir) and the real SQLite store (WAL, synchronous=NORMAL, in the same dir), on one
// thread. 1,000 registration entries; each workload matches exactly one of them.
//
//   build/bench/portcullis_authority_issuance_bench --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true [--benchmark_filter=REGEX]   (one command line)
//
// PORTCULLIS_BENCH_DIR picks the parent of the temp dir (default: the system temp dir), so the
// store can be put on the disk the authority's data_dir would really live on.
//
// What each benchmark times (one iteration):
//   BM_SignWorkloadSvid        one SignWorkloadSvids request, one workload, one CSR made in advance:
//                              request checks, CSR parse + signature check, entry match, leaf
//                              signing, INSERT of the issued serial. The authority's cost.
//   BM_AgentMakeCsr            the agent's side alone: P-256 keygen + PKCS#10 build and signature.
//   BM_SignWorkloadSvidWithCsr both, back to back (what one core does if it also makes the CSR, as
//                              the embedded authority's host does).
//   BM_SignWorkloadSvidBatch16 one request carrying 16 workloads (items = SVIDs).
//   BM_MintJwtSvid             one MintJwtSvid request (match + ES256 signature; nothing stored).
//   BM_Part_*                  the steps of BM_SignWorkloadSvid alone, to see where its time goes.
#include <benchmark/benchmark.h>

#include <openssl/mem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "attest/authority/authority_core.h"
#include "attest/authority/authority_messages.h"
#include "attest/authority/csr.h"
#include "common/digest.h"
#include "mtls/cert_minter.h"

namespace {

namespace authority = portcullis::attest::authority;
namespace v1 = authority::v1;

constexpr int kEntries = 1000;
constexpr int kCsrPool = 64;  // distinct keys, so no request re-signs the very same CSR twice in a row
constexpr const char* kTrustDomain = "example.org";

std::string hash_of(int i) { return "unix:sha256:" + portcullis::sha256_hex("/usr/bin/w" + std::to_string(i)); }

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

// Entries as a busy host registers them: each pins a uid and an executable hash (a third also a
// cgroup path); a quarter are scoped to one of 16 nodes, one of which is the node under test.
std::vector<authority::RegistrationEntry> make_entries(const std::string& our_node) {
  std::vector<authority::RegistrationEntry> out;
  for (int i = 0; i < kEntries; ++i) {
    authority::RegistrationEntry e;
    e.spiffe_id = "spiffe://example.org/workload/" + std::to_string(i);
    e.selectors = {"unix:uid:" + std::to_string(1000 + i % 5000), hash_of(i)};
    if (i % 3 == 0) e.selectors.push_back("cgroup:path:/system.slice/w" + std::to_string(i) + ".service");
    if (i % 4 == 0) {
      e.parent_id = i % 16 == 0 ? our_node : "spiffe://example.org/node/join_token/other" + std::to_string(i % 16);
    }
    out.push_back(std::move(e));
  }
  return out;
}

// The k-th workload whose entry applies on our node (entries scoped to other nodes are skipped).
int matching_workload(int k) {
  int i = 0;
  for (int seen = -1;; ++i) {
    if (i % 4 != 0 || i % 16 == 0) ++seen;
    if (seen == k) return i;
  }
}

// make_csr is what the agent does per workload SVID: a fresh P-256 key (kept in memory) and a
// PKCS#10 request signed with it.
std::string make_csr() {
  auto key = portcullis::mtls::generate_p256_key();
  if (!key.ok()) std::abort();
  bssl::UniquePtr<X509_REQ> req(X509_REQ_new());
  if (!X509_REQ_set_version(req.get(), 0) || !X509_REQ_set_pubkey(req.get(), key->get()) ||
      !X509_REQ_sign(req.get(), key->get(), EVP_sha256())) {
    std::abort();
  }
  uint8_t* der = nullptr;
  int len = i2d_X509_REQ(req.get(), &der);
  if (len <= 0) std::abort();
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

v1::WorkloadCsrs workload_request(int i, std::string csr) {
  v1::WorkloadCsrs w;
  w.set_workload_key("pid-" + std::to_string(10000 + i));
  for (const auto& s : workload_selectors(i)) *w.add_selectors() = authority::selector_proto(s);
  w.add_csrs(std::move(csr));
  return w;
}

// Bench is one authority as the product opens it (store and CA in data_dir), shared by every
// benchmark of the run so the entries are seeded once. Issued-serial rows accumulate across
// benchmarks, as they do in an authority until prune().
class Bench {
 public:
  static Bench& get() {
    static Bench bench;
    return bench;
  }

  authority::AuthorityCore& core() { return *core_; }
  const std::string& node_id() const { return node_id_; }
  const std::string& csr(size_t n) const { return csrs_[n % csrs_.size()]; }

 private:
  Bench() {
    const char* parent = std::getenv("PORTCULLIS_BENCH_DIR");
    std::random_device rd;
    dir_ = std::filesystem::path(parent ? parent : std::filesystem::temp_directory_path().string()) /
           ("pc-issuance-bench-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    authority::AuthorityStoreOptions store_options;
    store_options.trust_domain = kTrustDomain;
    auto store = authority::AuthorityStore::open((dir_ / "authority.db").string(), stats_, store_options);
    if (!store.ok()) fail("store", store.error().message);
    authority::CaOptions ca_options;
    ca_options.trust_domain = kTrustDomain;
    ca_options.data_dir = dir_.string();
    ca_options.stats = &stats_;
    auto ca = authority::CertificateAuthority::open(ca_options);
    if (!ca.ok()) fail("ca", ca.error().message);
    authority::AuthorityCoreOptions options;
    options.trust_domain = kTrustDomain;
    core_ = std::make_unique<authority::AuthorityCore>(std::move(options), std::move(ca.value()),
                                                       std::move(store.value()), stats_, nullptr);
    attest_node();
    auto seeded = core_->store().seed_entries(make_entries(node_id_));
    if (!seeded.ok() || seeded->created != kEntries) fail("seed", seeded.ok() ? "not all created" : seeded.error().message);
    for (int i = 0; i < kCsrPool; ++i) csrs_.push_back(make_csr());
  }
  ~Bench() {
    core_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // attest_node runs the join-token flow, so the workloads' node is a real attested node.
  void attest_node() {
    auto token = core_->generate_join_token(0);
    if (!token.ok()) fail("join token", token.error().message);
    v1::AttestNodeRequest req;
    req.set_join_token(token->token());
    req.set_csr(make_csr());
    auto resp = core_->attest_node(req);
    if (!resp.ok()) fail("attest_node", resp.error().message);
    node_id_ = resp->svid().spiffe_id();
  }

  [[noreturn]] static void fail(const char* what, const std::string& message) {
    fprintf(stderr, "authority issuance bench setup: %s: %s\n", what, message.c_str());
    std::abort();
  }

  std::filesystem::path dir_;
  portcullis::StatsStore stats_;
  std::unique_ptr<authority::AuthorityCore> core_;
  std::string node_id_;
  std::vector<std::string> csrs_;
};

// check_response stops the benchmark unless every workload got exactly one SVID.
bool check_response(benchmark::State& state, const portcullis::Result<v1::SignWorkloadSvidsResponse>& r, int workloads) {
  if (!r.ok()) {
    state.SkipWithError(r.error().message.c_str());
    return false;
  }
  if (r->workloads_size() != workloads) {
    state.SkipWithError("wrong number of workloads answered");
    return false;
  }
  for (const auto& w : r->workloads()) {
    if (w.svids_size() != 1 || w.matched_entries() != 1) {
      state.SkipWithError("a workload did not get exactly one SVID");
      return false;
    }
  }
  return true;
}

void BM_SignWorkloadSvid(benchmark::State& state) {
  Bench& b = Bench::get();
  v1::SignWorkloadSvidsRequest request;
  *request.add_workloads() = workload_request(matching_workload(7), "");
  size_t n = 0;
  for (auto _ : state) {
    request.mutable_workloads(0)->set_csrs(0, b.csr(n++));
    auto r = b.core().sign_workload_svids(b.node_id(), request);
    if (!check_response(state, r, 1)) break;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SignWorkloadSvid);

void BM_AgentMakeCsr(benchmark::State& state) {
  for (auto _ : state) {
    std::string csr = make_csr();
    benchmark::DoNotOptimize(csr.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AgentMakeCsr);

void BM_SignWorkloadSvidWithCsr(benchmark::State& state) {
  Bench& b = Bench::get();
  v1::SignWorkloadSvidsRequest request;
  *request.add_workloads() = workload_request(matching_workload(7), "");
  for (auto _ : state) {
    request.mutable_workloads(0)->set_csrs(0, make_csr());
    auto r = b.core().sign_workload_svids(b.node_id(), request);
    if (!check_response(state, r, 1)) break;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SignWorkloadSvidWithCsr);

void BM_SignWorkloadSvidBatch16(benchmark::State& state) {
  constexpr int kBatch = 16;
  Bench& b = Bench::get();
  v1::SignWorkloadSvidsRequest request;
  for (int k = 0; k < kBatch; ++k) *request.add_workloads() = workload_request(matching_workload(k), "");
  size_t n = 0;
  for (auto _ : state) {
    for (int k = 0; k < kBatch; ++k) request.mutable_workloads(k)->set_csrs(0, b.csr(n++));
    auto r = b.core().sign_workload_svids(b.node_id(), request);
    if (!check_response(state, r, kBatch)) break;
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_SignWorkloadSvidBatch16);

void BM_MintJwtSvid(benchmark::State& state) {
  Bench& b = Bench::get();
  v1::MintJwtSvidRequest request;
  for (const auto& s : workload_selectors(matching_workload(7))) *request.add_selectors() = authority::selector_proto(s);
  request.add_audience("spiffe://example.org/backend");
  for (auto _ : state) {
    auto r = b.core().mint_jwt_svid(b.node_id(), request);
    if (!r.ok()) {
      state.SkipWithError(r.error().message.c_str());
      break;
    }
    benchmark::DoNotOptimize(r->token().data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MintJwtSvid);

// --- The steps of BM_SignWorkloadSvid, each alone ---

// Matching: the linear scan over every entry (AuthorityStore::match) and the store's index
// (EntryMatcher), which the core uses.
void BM_Part_Match(benchmark::State& state) {
  Bench& b = Bench::get();
  auto selectors = workload_selectors(matching_workload(7));
  for (auto _ : state) {
    auto entries = b.core().store().entries();
    auto m = authority::AuthorityStore::match(*entries, b.node_id(), selectors);
    if (m.size() != 1) {
      state.SkipWithError("expected exactly one match");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Part_Match);

void BM_Part_MatchIndexed(benchmark::State& state) {
  Bench& b = Bench::get();
  auto selectors = workload_selectors(matching_workload(7));
  for (auto _ : state) {
    auto matcher = b.core().store().matcher();
    auto m = matcher->match(b.node_id(), selectors);
    if (m.size() != 1) {
      state.SkipWithError("expected exactly one match");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Part_MatchIndexed);

void BM_Part_CsrParseVerify(benchmark::State& state) {
  Bench& b = Bench::get();
  size_t n = 0;
  for (auto _ : state) {
    authority::CsrError error;
    auto key = authority::csr_public_key(b.csr(n++), authority::CsrLimits{}, &error);
    if (!key) {
      state.SkipWithError(error.message.c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Part_CsrParseVerify);

// CA signing includes the CSR check above plus building and signing the leaf.
void BM_Part_CaSign(benchmark::State& state) {
  Bench& b = Bench::get();
  authority::X509SvidRequest request{"", "spiffe://example.org/workload/7", {}, std::chrono::hours(1),
                                     {"node:attestation:join_token", "node:id:" + b.node_id(), "entry:id:x",
                                      hash_of(7)}};
  size_t n = 0;
  for (auto _ : state) {
    request.csr_der = b.csr(n++);
    auto svid = b.core().ca().sign_x509_svid(request);
    if (!svid.ok()) {
      state.SkipWithError(svid.error().message.c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Part_CaSign);

void BM_Part_RecordIssued(benchmark::State& state) {
  Bench& b = Bench::get();
  authority::IssuedSvid record{"", "spiffe://example.org/workload/7", "entry", b.node_id(), 4102444800};
  for (auto _ : state) {
    record.serial = authority::random_hex(16);  // the CA's serials are 128-bit random too
    auto s = b.core().store().record_issued(record);
    if (!s.ok()) {
      state.SkipWithError(s.error().message.c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Part_RecordIssued);

}  // namespace

BENCHMARK_MAIN();
