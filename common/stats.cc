#include "common/stats.h"

#include <cctype>
#include <optional>
#include <vector>

namespace portcullis {
namespace {

// Prometheus metric names allow [a-zA-Z0-9_:]; Envoy's exporter maps everything else to '_'.
std::string sanitize_metric_name(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != ':') c = '_';
  }
  return out;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::string StatScope::prefix() const {
  if (tag_value.empty()) return family + ".";
  return family + "." + tag_value + ".";
}

StatsStore::Entry& StatsStore::find_or_create(const StatScope& scope, std::string_view leaf,
                                              bool is_counter) {
  std::string name = scope.prefix();
  name.append(leaf);
  std::lock_guard lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    Entry e{scope, std::string(leaf), nullptr, nullptr};
    it = entries_.emplace(std::move(name), std::move(e)).first;
  }
  Entry& e = it->second;
  // A name registered as the other kind keeps its first kind's object too: both can coexist
  // without breaking the caller, and the renderer prints whichever exists.
  if (is_counter && !e.counter) e.counter = std::make_unique<Counter>();
  if (!is_counter && !e.gauge) e.gauge = std::make_unique<Gauge>();
  return e;
}

Counter& StatsStore::counter(const StatScope& scope, std::string_view leaf) {
  return *find_or_create(scope, leaf, true).counter;
}

Gauge& StatsStore::gauge(const StatScope& scope, std::string_view leaf) {
  return *find_or_create(scope, leaf, false).gauge;
}

std::optional<int64_t> StatsStore::value(std::string_view full_name) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(full_name);
  if (it == entries_.end()) return std::nullopt;
  if (it->second.counter) return static_cast<int64_t>(it->second.counter->value());
  return it->second.gauge->value();
}

std::string StatsStore::render_text() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, e] : entries_) {
    out += name;
    out += ": ";
    out += e.counter ? std::to_string(e.counter->value()) : std::to_string(e.gauge->value());
    out += '\n';
  }
  return out;
}

std::string StatsStore::render_prometheus() const {
  // Group samples by metric family: the exposition format wants one TYPE line per family,
  // followed by all of that family's samples.
  struct Sample {
    std::string labels;
    std::string value;
  };
  struct Family {
    const char* type;
    std::vector<Sample> samples;
  };
  std::map<std::string, Family> families;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, e] : entries_) {
      std::string metric = sanitize_metric_name("envoy_" + e.scope.family + "_" + e.leaf);
      std::string labels;
      if (!e.scope.tag_name.empty()) {
        labels = "{" + e.scope.tag_name + "=\"" + escape_label_value(e.scope.tag_value) + "\"}";
      }
      Family& f = families[metric];
      f.type = e.counter ? "counter" : "gauge";
      f.samples.push_back(Sample{
          std::move(labels),
          e.counter ? std::to_string(e.counter->value()) : std::to_string(e.gauge->value())});
    }
  }
  std::string out;
  for (const auto& [metric, f] : families) {
    out += "# TYPE " + metric + " " + f.type + "\n";
    for (const auto& s : f.samples) out += metric + s.labels + " " + s.value + "\n";
  }
  return out;
}

}  // namespace portcullis
