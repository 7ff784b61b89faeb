#pragma once

#include "common/stats.h"

// A component declares its stats once, as a sorted X-macro list:
//
//   #define MY_STATS(COUNTER, GAUGE) COUNTER(bytes_total) GAUGE(cx_active)
//   struct MyStats { MY_STATS(PORTCULLIS_DECLARE_COUNTER, PORTCULLIS_DECLARE_GAUGE) };
//   MyStats s{MY_STATS(PORTCULLIS_MAKE_COUNTER, PORTCULLIS_MAKE_GAUGE)};  // needs `store`, `scope`
//
// The same list builds the struct and registers the names, so the two cannot drift apart.
#define PORTCULLIS_DECLARE_COUNTER(name) ::portcullis::Counter& name;
#define PORTCULLIS_DECLARE_GAUGE(name) ::portcullis::Gauge& name;
#define PORTCULLIS_MAKE_COUNTER(name) store.counter(scope, #name),
#define PORTCULLIS_MAKE_GAUGE(name) store.gauge(scope, #name),

// Variants that put a fixed leaf prefix (a local `prefix` string, e.g. "ssl.") before each name,
// for Envoy stats such as `listener.<addr>.ssl.handshake`.
#define PORTCULLIS_MAKE_PREFIXED_COUNTER(name) store.counter(scope, prefix + #name),
#define PORTCULLIS_MAKE_PREFIXED_GAUGE(name) store.gauge(scope, prefix + #name),
