// Micro-benchmarks for the control-plane paths that run at startup, on reload and on every
// admin scrape: loading + validating a bootstrap, parsing durations, and rendering /stats.
//
//   build-bench/bench/portcullis_config_bench [--benchmark_filter=REGEX]
//
// All inputs are generated here; the bootstrap goes to a temp file that is removed afterwards.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>
#include <spdlog/spdlog.h>

#include "common/stats.h"
#include "config/errors.h"
#include "config/node.h"
#include "config/yaml_file.h"
#include "filters/network/tcp_proxy/tcp_proxy_config.h"
#include "proxy/cluster.h"
#include "proxy/listener.h"
#include "proxy/server_config.h"
#include "proxy/server_stats.h"

namespace {

using namespace portcullis;

// A realistic sidecar bootstrap: node, admin, a layered runtime with per-listener connection
// limits, and `n` listeners each proxying (tcp_proxy, idle timeout, connect attempts) to its own
// STATIC cluster with two endpoints.
std::string make_bootstrap(int n) {
  std::string y;
  y.reserve(static_cast<size_t>(n) * 1400 + 1024);
  y += "node:\n  id: sidecar-0\n  cluster: payments\n  metadata: {team: payments, env: bench}\n";
  y += "admin:\n  address:\n    socket_address: {address: 127.0.0.1, port_value: 9901}\n";
  y += "layered_runtime:\n  layers:\n  - name: static\n    static_layer:\n";
  y += "      overload.global_downstream_max_connections: 50000\n";
  for (int i = 0; i < n; ++i) {
    y += "      envoy.resource_limits.listener.ingress_" + std::to_string(i) + ".connection_limit: 1000\n";
  }
  y += "static_resources:\n  listeners:\n";
  for (int i = 0; i < n; ++i) {
    std::string idx = std::to_string(i);
    y += "  - name: ingress_" + idx + "\n";
    y += "    address:\n      socket_address:\n        address: 127.0.0.1\n";
    y += "        port_value: " + std::to_string(20000 + i) + "\n";
    y += "    per_connection_buffer_limit_bytes: 32768\n";
    y += "    filter_chains:\n    - filters:\n      - name: envoy.filters.network.tcp_proxy\n";
    y += "        typed_config:\n";
    y += "          \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n";
    y += "          stat_prefix: ingress_" + idx + "\n";
    y += "          cluster: service_" + idx + "\n";
    y += "          idle_timeout: 300s\n";
    y += "          max_connect_attempts: 3\n";
  }
  y += "  clusters:\n";
  for (int i = 0; i < n; ++i) {
    std::string idx = std::to_string(i);
    y += "  - name: service_" + idx + "\n";
    y += "    connect_timeout: 0.25s\n    type: STATIC\n    lb_policy: ROUND_ROBIN\n";
    y += "    per_connection_buffer_limit_bytes: 32768\n";
    y += "    load_assignment:\n      cluster_name: service_" + idx + "\n      endpoints:\n";
    y += "      - lb_endpoints:\n";
    for (int e = 0; e < 2; ++e) {
      y += "        - endpoint:\n            address:\n              socket_address:\n";
      y += "                address: 127.0.0." + std::to_string(1 + e) + "\n";
      y += "                port_value: " + std::to_string(30000 + i) + "\n";
    }
  }
  return y;
}

// TempFile writes `text` to a fresh file under $TMPDIR (or /tmp) and removes it on destruction.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    const char* dir = std::getenv("TMPDIR");
    std::string tmpl = std::string(dir && *dir ? dir : "/tmp") + "/portcullis-bench-XXXXXX.yaml";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    int fd = ::mkstemps(buf.data(), 5);
    if (fd < 0) return;
    path_ = buf.data();
    size_t off = 0;
    while (off < text.size()) {
      ssize_t n = ::write(fd, text.data() + off, text.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    ::close(fd);
    ok_ = off == text.size();
  }
  ~TempFile() {
    if (!path_.empty()) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  bool ok() const { return ok_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool ok_ = false;
};

// Full load as main() does it: read the file, parse YAML, validate the bootstrap, build every
// listener's filter chain (which registers its stats). A fresh StatsStore each time, as at
// startup.
void BM_LoadServerConfig(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const std::string text = make_bootstrap(n);
  TempFile file(text);
  if (!file.ok()) {
    state.SkipWithError("cannot write temp config");
    return;
  }
  {  // the generated config must be valid, or we would be timing the error path
    StatsStore stats;
    config::ErrorList errors;
    if (!proxy::load_server_config(file.path(), config::kDefaultMaxConfigBytes, {}, stats, errors)) {
      state.SkipWithError(("generated config is invalid: " + errors.format()).c_str());
      return;
    }
  }
  for (auto _ : state) {
    StatsStore stats;
    config::ErrorList errors;
    auto cfg = proxy::load_server_config(file.path(), config::kDefaultMaxConfigBytes, {}, stats, errors);
    benchmark::DoNotOptimize(cfg);
  }
  state.counters["listeners"] = n;
  state.counters["config_bytes"] = static_cast<double>(text.size());
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_LoadServerConfig)->Arg(1)->Arg(10)->Arg(100)->Unit(benchmark::kMicrosecond);

// The same config, only the YAML step (text -> yaml-cpp tree), to split the load time into
// parsing and validation.
void BM_LoadYamlTextOnly(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const std::string text = make_bootstrap(n);
  for (auto _ : state) {
    config::ErrorList errors;
    auto root = config::load_yaml_text(text, "bench.yaml", errors);
    benchmark::DoNotOptimize(root);
  }
  state.counters["listeners"] = n;
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_LoadYamlTextOnly)->Arg(1)->Arg(10)->Arg(100)->Unit(benchmark::kMicrosecond);

// parse_duration over the forms a config uses, plus the rejected ones (the error path matters:
// a bad value is parsed once per unit suffix before it is refused).
const std::vector<std::string_view> kDurations = {
    "1s", "0.25s", "250ms", "300s", "1.000000001s", "1h", "15m", "500us", "100ns", "bogus", "-1s", "99999999999h",
};

void BM_ParseDuration(benchmark::State& state) {
  const std::string_view text = kDurations[static_cast<size_t>(state.range(0))];
  state.SetLabel(std::string(text));
  for (auto _ : state) {
    std::string_view in = text;
    benchmark::DoNotOptimize(in);
    auto d = config::parse_duration(in);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_ParseDuration)->DenseRange(0, static_cast<int>(kDurations.size()) - 1);

// A mixed batch, one call per form, for a single "per parse" figure.
void BM_ParseDurationMix(benchmark::State& state) {
  for (auto _ : state) {
    for (std::string_view text : kDurations) {
      benchmark::DoNotOptimize(text);
      auto d = config::parse_duration(text);
      benchmark::DoNotOptimize(d);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(kDurations.size()));
}
BENCHMARK(BM_ParseDurationMix);

// A store shaped like a running sidecar's: server stats plus, per service, the listener,
// tcp_proxy and cluster stats (7 + 7 + 10 = 24). 42 services give 1015 stats. Values non-zero,
// so number formatting is exercised.
size_t fill_stats(StatsStore& store, int services) {
  proxy::ServerStats server = proxy::ServerStats::create(store);
  server.concurrency.set(2);
  server.live.set(1);
  for (int i = 0; i < services; ++i) {
    std::string idx = std::to_string(i);
    auto l = proxy::ListenerStats::create(store, "127.0.0.1_" + std::to_string(20000 + i));
    auto t = filters::TcpProxyStats::create(store, "ingress_" + idx);
    auto c = proxy::ClusterStats::create(store, "service_" + idx);
    l.downstream_cx_total.inc(1000003 + static_cast<uint64_t>(i));
    l.downstream_cx_active.set(17);
    t.downstream_cx_rx_bytes_total.inc(987654321012ull);
    t.downstream_cx_tx_bytes_total.inc(123456789012ull);
    c.upstream_cx_total.inc(1000003);
    c.upstream_cx_rx_bytes_total.inc(123456789012ull);
    c.upstream_cx_active.set(17);
    c.membership_total.set(2);
  }
  std::string text = store.render_text();
  size_t lines = 0;
  for (char ch : text) lines += ch == '\n';
  return lines;
}

void BM_StatsRenderText(benchmark::State& state) {
  StatsStore store;
  size_t n = fill_stats(store, static_cast<int>(state.range(0)));
  size_t bytes = 0;
  for (auto _ : state) {
    std::string out = store.render_text();
    bytes = out.size();
    benchmark::DoNotOptimize(out);
  }
  state.counters["stats"] = static_cast<double>(n);
  state.counters["out_bytes"] = static_cast<double>(bytes);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
}
BENCHMARK(BM_StatsRenderText)->Arg(42)->Arg(420)->Unit(benchmark::kMicrosecond);

void BM_StatsRenderPrometheus(benchmark::State& state) {
  StatsStore store;
  size_t n = fill_stats(store, static_cast<int>(state.range(0)));
  size_t bytes = 0;
  for (auto _ : state) {
    std::string out = store.render_prometheus();
    bytes = out.size();
    benchmark::DoNotOptimize(out);
  }
  state.counters["stats"] = static_cast<double>(n);
  state.counters["out_bytes"] = static_cast<double>(bytes);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(n));
}
BENCHMARK(BM_StatsRenderPrometheus)->Arg(42)->Arg(420)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::off);  // config code may warn; keep the timing loop quiet
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
