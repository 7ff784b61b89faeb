#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace portcullis {

// Counter is a monotonically increasing stat. Lock-free; safe from any thread.
class Counter {
 public:
  void inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Gauge is a stat that goes up and down. Lock-free; safe from any thread.
class Gauge {
 public:
  void inc(int64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  void dec(int64_t n = 1) { value_.fetch_sub(n, std::memory_order_relaxed); }
  void set(int64_t v) { value_.store(v, std::memory_order_relaxed); }
  int64_t value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// StatScope names a group of stats the way Envoy does: `family.tag_value.leaf` in /stats (e.g.
// `cluster.backend.upstream_cx_total`), and `envoy_family_leaf{tag_name="tag_value"}` in the
// Prometheus output. A scope without a tag (e.g. `server`) has no label.
struct StatScope {
  std::string family;
  std::string tag_name;
  std::string tag_value;

  std::string prefix() const;
};

// StatsStore owns every stat of the process. Stats are created once (under a mutex) and live as
// long as the store, so components keep plain references and a config reload that re-creates a
// component finds its old stats again by name. Reading and rendering take the mutex; updates
// never do.
class StatsStore {
 public:
  Counter& counter(const StatScope& scope, std::string_view leaf);
  Gauge& gauge(const StatScope& scope, std::string_view leaf);

  // render_text writes Envoy's /stats format: `name: value` lines, sorted by name.
  std::string render_text() const;
  // render_prometheus writes the Prometheus text exposition format (v0.0.4), with names and
  // labels as Envoy's exporter writes them.
  std::string render_prometheus() const;
  // value looks a stat up by its full /stats name; nullopt when it does not exist. For tests.
  std::optional<int64_t> value(std::string_view full_name) const;

 private:
  struct Entry {
    StatScope scope;
    std::string leaf;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
  };
  Entry& find_or_create(const StatScope& scope, std::string_view leaf, bool is_counter);

  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;  // by full name
};

}  // namespace portcullis
