#!/usr/bin/env bash
# ext_authz Check throughput and latency on ONE worker, measured with h2load (nghttp2).
#
#   bench/ext_authz_bench.sh [BUILD_DIR]     (default: build; needs h2load, node + tests/interop deps)
#
# Starts portcullis --concurrency 1 pinned to CPU 0 with an ext_authz_server on TCP, h2load pinned
# to CPU 1. The request body is a prebuilt gRPC message (5-byte prefix + a serialized CheckRequest
# as Envoy's HTTP filter sends it: principal, addresses, method/path/host/scheme, 8 headers), sent
# with content-type application/grpc and te: trailers. Three runs:
#   1. saturation: 4 connections x 32 streams, 10 s -> Check/s (and its p50/p99);
#   2. half of that rate (h2load --rps) -> p50/p99/p99.9 latency at a sustainable load;
#   3. the same as 1 with the audit log on (one hash-chained record per decision).
# Latency percentiles come from h2load's --log-file (per-request microseconds). Every response is
# checked to be HTTP 200; the Check decision mix is read from /stats.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
bin=$build/proxy/portcullis
work=$(mktemp -d /tmp/portcullis-authz-bench.XXXXXX)
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

body=$work/check.bin
node "$root/tests/interop/ext_authz_client.js" - encode '{"attributes":{
  "source":{"principal":"spiffe://example.org/ns/web/sa/frontend","address":{"socket_address":{"address":"10.1.0.7","port_value":41234}}},
  "destination":{"address":{"socket_address":{"address":"10.1.0.9","port_value":8080}}},
  "request":{"http":{"id":"1234","method":"GET","path":"/api/v1/items?page=2","host":"api.internal","scheme":"https","protocol":"HTTP/2",
    "headers":{":method":"GET",":path":"/api/v1/items?page=2",":authority":"api.internal",":scheme":"https","user-agent":"bench/1.0",
               "accept":"application/json","x-request-id":"4f1c2d3e-aaaa-bbbb-cccc-0123456789ab","x-tenant":"acme"}}}}}' "$body" >/dev/null

config() {  # $1: yes to add an audit log
  cat <<YAML
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
$([[ $1 == yes ]] && echo "audit: {sinks: [{file: {path: $work/audit.log}}]}")
ext_authz_server:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
  stat_prefix: bench
  limits: {max_concurrent_streams: 1000}
  rules:
    action: ALLOW
    policies:
      admins-anything:
        permissions: [{any: true}]
        principals: [{authenticated: {principal_name: {prefix: "spiffe://example.org/ns/ops/"}}}]
      frontend-reads-api:
        permissions:
        - and_rules:
            rules:
            - header: {name: ":method", string_match: {exact: GET}}
            - url_path: {path: {prefix: /api/}}
            - header: {name: x-tenant, present_match: true}
        principals: [{authenticated: {principal_name: {exact: "spiffe://example.org/ns/web/sa/frontend"}}}]
  shadow_rules:
    action: DENY
    policies:
      outsiders:
        permissions: [{any: true}]
        principals: [{not_id: {authenticated: {principal_name: {prefix: "spiffe://example.org/"}}}}]
YAML
}

start() {
  config "$1" >"$work/c.yaml"
  rm -f "$work/admin"
  taskset -c 0 "$bin" -c "$work/c.yaml" --concurrency 1 -l info --admin-address-path "$work/admin" \
    2>"$work/log" &
  pid=$!
  for _ in $(seq 100); do [[ -s $work/admin ]] && break; sleep 0.05; done
  admin=$(cat "$work/admin")
  port=$(grep -o "gRPC server 'ext_authz' listening on [0-9.]*:[0-9]*" "$work/log" | sed 's/.*://')
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

h2() {  # extra h2load args...
  rm -f "$work/req.log"
  taskset -c 1 h2load "$@" -d "$body" -H 'content-type: application/grpc' -H 'te: trailers' \
    --log-file "$work/req.log" "http://127.0.0.1:$port/envoy.service.auth.v3.Authorization/Check" >"$work/h2load.out"
  grep -E "^finished in|^requests:|^status codes:" "$work/h2load.out" | sed 's/^/    /'
  python3 - "$work/req.log" <<'PY'
import sys
rows = [l.split("\t") for l in open(sys.argv[1]) if l.strip()]
bad = sum(1 for r in rows if r[1] != "200")
lat = sorted(int(r[2]) for r in rows)
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0
print("    latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (%d requests, %d not HTTP 200)"
      % (pct(.5), pct(.9), pct(.99), pct(.999), lat[-1] / 1000.0, len(lat), bad))
PY
}

rate() { awk '/^finished in/ {gsub(",", "", $4); print int($4)}' "$work/h2load.out"; }

echo "== portcullis $("$bin" --version | head -1), h2load $(h2load --version | awk '{print $2}'), $(nproc) cores"
start no
echo "== 1. saturation: 1 worker (CPU 0), h2load on CPU 1: -c 4 -m 32, 2 s warm-up + 10 s"
h2 -c 4 -m 32 -D 10 --warm-up-time 2
full=$(rate)
echo "    Check/s: $full"
half=$((full / 2))
echo "== 2. half that rate: $half Check/s (-c 8, --rps $((half / 8)) per connection), 10 s"
h2 -c 8 -m 8 --rps $((half / 8)) -D 10 --warm-up-time 1
echo "    decisions: $(curl -s "http://$admin/stats" | grep -E 'ext_authz_server.bench.(allowed|denied|shadow_allowed)' | tr '\n' ' ')"
stop
start yes
echo "== 3. saturation with the audit log on"
h2 -c 4 -m 32 -D 10 --warm-up-time 2
echo "    Check/s: $(rate); audit: $(curl -s "http://$admin/stats" | grep -E '^audit.(written|dropped)' | tr '\n' ' ')"
stop
