#!/usr/bin/env bash
# tcp_proxy_vs_haproxy.sh - plaintext TCP proxy efficiency of portcullis against HAProxy, in
# one run on one host, everything on 127.0.0.1:
#
#   iperf3 -c / wrk  --plain-->  proxy (portcullis --concurrency 1 | haproxy mode tcp, nbthread 1)
#                    --plain-->  iperf3 -s / HTTP backend (haproxy mode http, http-request return)
#
# plus a `direct` baseline without a proxy. Metrics:
#   bulk     iperf3 -t 5 with 1 stream, then -P 4: Gbit/s, proxy CPU-s, GB per proxy CPU-second
#   latency  2 s wrk warm-up (discarded), then wrk -t1 -c1 and -c50 for 10 s, HTTP/1.1
#            keep-alive, 100-byte body: req/s, p50/p99, proxy CPU us per request
# Proxy CPU is utime+stime(+cutime+cstime) from /proc/<pid>/stat, summed over the proxy's
# process tree, read just before and just after the load command. Each metric gets a fresh
# proxy instance. With -r N the systems are interleaved and their order rotated every rep; the
# table shows the median and ± half the min-max range in %.
#
# Installs nothing (scripts/install-deps.sh bench installs haproxy, iperf3 and wrk). Every
# process it starts is tracked by PID and stopped by PID (TERM, then KILL after 5 s) from an
# EXIT trap, also on errors, Ctrl-C and TERM.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB=$HERE/lib
ALL_SYSTEMS="direct,haproxy,portcullis"
EXTRA_SYSTEMS="haproxy-splice" # selectable with -p, not in the default set
ALL_METRICS="bulk,latency"

usage() {
  cat <<EOF
usage: $(basename "$0") [options]
  -r, --reps N        repeat every measurement N times, systems interleaved and their order
                      rotated per rep; cells show median ±half-range%  (default 1)
  -s, --short         short mode: bulk 2 s, wrk 3 s, warm-up 1 s (about 1 min per rep)
  -o, --output FILE   also write the table (markdown) and the run metadata to FILE
      --binary PATH   portcullis binary (default: build/proxy/portcullis under the repo root)
  -p, --systems LIST  from $ALL_SYSTEMS,$EXTRA_SYSTEMS and the --variant names
                      (default: $ALL_SYSTEMS and the variants). haproxy-splice is haproxy with
                      option splice-request/splice-response (zero-copy splice(2) forwarding)
      --variant NAME=PATH  also measure another portcullis build as system NAME, e.g. to A/B a
                      change to proxy/ (repeatable; NAME: letters, digits, '-', '_')
  -m, --metrics LIST  from $ALL_METRICS (default: all)
      --raw FILE      also copy the raw TSV results (rep, system, key, value) to FILE
      --port-base N   first 127.0.0.1 port for haproxy and the backends (default
                      \$BENCH_PORT_BASE or 25000; at most 500 ports above it are used).
                      portcullis binds port 0 and reports its ports through its admin API.
      --quiet-wait S  before starting, wait up to S seconds for the host to be quiet
                      (busy < ${QUIET_BUSY}% over 3 s); the busy % is recorded either way (default 0)
      --keep          keep the temp dir (configs, logs, raw tool outputs)
  -h, --help
Environment: BENCH_PROXY_CPUS / BENCH_LOADGEN_CPUS (optional taskset pinning: the proxy on the
  first, iperf3/wrk and the backends on the second, e.g. BENCH_PROXY_CPUS=1 BENCH_LOADGEN_CPUS=0),
  BENCH_READY_TIMEOUT (seconds a proxy gets to listen, default 10),
  BENCH_QUIET_BUSY (busy % threshold for --quiet-wait, default 25).
EOF
}

# ---------------------------------------------------------------- options
REPS=1 SHORT=0 OUTPUT="" RAW="" KEEP=0 QUIET_WAIT=0
BINARY=$ROOT/build/proxy/portcullis
SYSTEMS="" METRICS=$ALL_METRICS
declare -A VARIANT_BIN=()
VARIANTS=()
PORT_BASE=${BENCH_PORT_BASE:-25000}
READY_TIMEOUT=${BENCH_READY_TIMEOUT:-10}
QUIET_BUSY=${BENCH_QUIET_BUSY:-25}
CMDLINE="$0 $*"
for v in BENCH_PROXY_CPUS BENCH_LOADGEN_CPUS BENCH_PORT_BASE; do [[ -n ${!v:-} ]] && CMDLINE="$v=${!v} $CMDLINE"; done
while (($#)); do
  case $1 in
    -r|--reps) REPS=${2:?$1 needs a value}; shift 2 ;;
    -s|--short) SHORT=1; shift ;;
    -o|--output) OUTPUT=${2:?$1 needs a value}; shift 2 ;;
    --binary) BINARY=${2:?$1 needs a value}; shift 2 ;;
    --variant)
      v=${2:?$1 needs a value}
      [[ $v =~ ^([A-Za-z0-9_-]+)=(.+)$ ]] || { echo "--variant needs NAME=PATH" >&2; exit 2; }
      [[ ,$ALL_SYSTEMS,$EXTRA_SYSTEMS, == *",${BASH_REMATCH[1]},"* ]] && { echo "--variant name '${BASH_REMATCH[1]}' is taken" >&2; exit 2; }
      VARIANT_BIN[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}; VARIANTS+=("${BASH_REMATCH[1]}")
      shift 2 ;;
    -p|--systems) SYSTEMS=${2:?$1 needs a value}; shift 2 ;;
    -m|--metrics) METRICS=${2:?$1 needs a value}; shift 2 ;;
    --raw) RAW=${2:?$1 needs a value}; shift 2 ;;
    --port-base) PORT_BASE=${2:?$1 needs a value}; shift 2 ;;
    --quiet-wait) QUIET_WAIT=${2:?$1 needs a value}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done

die() { echo "tcp_proxy_vs_haproxy.sh: $*" >&2; exit 1; }
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
isint() { [[ $1 =~ ^[0-9]+$ ]]; }

for v in "${VARIANTS[@]}"; do ALL_SYSTEMS+=",$v"; done
[[ -n $SYSTEMS ]] || SYSTEMS=$ALL_SYSTEMS
ALL_SYSTEMS+=",$EXTRA_SYSTEMS"
IFS=, read -ra SYS_LIST <<<"$SYSTEMS"
IFS=, read -ra MET_LIST <<<"$METRICS"
((${#SYS_LIST[@]})) || die "no systems selected"
for s in "${SYS_LIST[@]}"; do [[ ,$ALL_SYSTEMS, == *",$s,"* ]] || die "unknown system '$s' (from $ALL_SYSTEMS)"; done
for m in "${MET_LIST[@]}"; do [[ ,$ALL_METRICS, == *",$m,"* ]] || die "unknown metric '$m' (from $ALL_METRICS)"; done
has_sys() { [[ ,$SYSTEMS, == *",$1,"* ]]; }
has_metric() { [[ ,$METRICS, == *",$1,"* ]]; }
for v in REPS PORT_BASE READY_TIMEOUT QUIET_WAIT QUIET_BUSY; do isint "${!v}" || die "$v must be a non-negative integer"; done
((REPS >= 1 && REPS <= 20)) || die "--reps must be 1..20"
((PORT_BASE >= 1024 && PORT_BASE + 500 < 32768)) || die "--port-base must keep ports in 1024..32767 (below the ephemeral range)"

if ((SHORT)); then BULK_T=2 WRK_T=3 WARM_T=1
else               BULK_T=5 WRK_T=10 WARM_T=2; fi

# ---------------------------------------------------------------- tool check (installs nothing)
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 (Debian package: $2)"); }
need haproxy haproxy   # the HTTP backend is a haproxy instance even when haproxy is not compared
need python3 python3
need ss iproute2
need ps procps
need timeout coreutils
has_metric bulk && need iperf3 iperf3
has_metric latency && need wrk wrk
[[ -n ${BENCH_PROXY_CPUS:-}${BENCH_LOADGEN_CPUS:-} ]] && need taskset util-linux
if ((${#missing[@]})); then
  echo "tcp_proxy_vs_haproxy.sh: missing tools:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  echo "install them with: scripts/install-deps.sh bench   (or: apt-get install haproxy iperf3 wrk iproute2 procps python3)" >&2
  exit 1
fi
abspath() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
if has_sys portcullis; then
  [[ -x $BINARY ]] || die "portcullis binary '$BINARY' not found or not executable; build it
  (cmake -S $ROOT -B $ROOT/build -G Ninja -DCMAKE_BUILD_TYPE=Release && ninja -C $ROOT/build portcullis)
  or pass --binary PATH"
  BINARY=$(abspath "$BINARY")
fi
for v in "${VARIANTS[@]}"; do
  [[ -x ${VARIANT_BIN[$v]} ]] || die "--variant $v: '${VARIANT_BIN[$v]}' not found or not executable"
  VARIANT_BIN[$v]=$(abspath "${VARIANT_BIN[$v]}")
done

PROXY_PFX=() LOADGEN_PFX=()
[[ -n ${BENCH_PROXY_CPUS:-} ]] && PROXY_PFX=(taskset -c "$BENCH_PROXY_CPUS")
[[ -n ${BENCH_LOADGEN_CPUS:-} ]] && LOADGEN_PFX=(taskset -c "$BENCH_LOADGEN_CPUS")
ulimit -n "$(ulimit -Hn)" 2>/dev/null

# ---------------------------------------------------------------- process tracking
PIDS=()
WORK=""
track() { PIDS+=("$1"); }
untrack() { local i; for i in "${!PIDS[@]}"; do [[ ${PIDS[i]} == "$1" ]] && unset 'PIDS[i]'; done; }
alive() { # running and not a zombie
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  [[ ${s:0:1} != Z ]]
}
descendants() { local c; for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do echo "$c"; descendants "$c"; done; }
tree() { echo "$1"; descendants "$1"; }
stop_pid() { # stop a process we started and its descendants, by PID: TERM, then KILL after 5 s
  local pid=$1 all p i any
  [[ -n $pid ]] || return 0
  all=$(tree "$pid")
  for p in $all; do kill -TERM "$p" 2>/dev/null; done
  for ((i = 0; i < 50; i++)); do
    any=0
    for p in $all; do alive "$p" && any=1; done
    ((any)) || break
    sleep 0.1
  done
  for p in $all; do alive "$p" && kill -KILL "$p" 2>/dev/null; done
  wait "$pid" 2>/dev/null
  untrack "$pid"
  return 0
}
cleanup() {
  local rc=$? i idx
  trap - EXIT INT TERM
  idx=("${!PIDS[@]}")
  for ((i = ${#idx[@]} - 1; i >= 0; i--)); do [[ -n ${PIDS[${idx[i]}]:-} ]] && stop_pid "${PIDS[${idx[i]}]}"; done
  if [[ -n $WORK && -d $WORK ]]; then
    if ((KEEP)); then log "kept work dir: $WORK"; else rm -rf "$WORK"; fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

cpu_ticks() { # utime+stime+cutime+cstime over the process tree (all threads included)
  local p s t=0 a
  for p in $(tree "$1"); do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    s=${s##*) }
    read -ra a <<<"$s"
    t=$((t + a[11] + a[12] + a[13] + a[14]))
  done
  echo "$t"
}
host_cpu() { # "total_ticks idle_ticks" from /proc/stat
  local _c u n sy i w irq sirq st _rest
  read -r _c u n sy i w irq sirq st _rest </proc/stat
  echo "$((u + n + sy + i + w + irq + sirq + st)) $((i + w))"
}
HZ=$(getconf CLK_TCK)
own_ticks() { # sets OWN: CPU ticks of everything this script ran and reaped (bash `times`)
  # `times` must run in this shell, not in a $(...) subshell, to see this shell's children.
  times >"$WORK/times.txt"
  OWN=$(python3 -c 'import re,sys
t = open(sys.argv[1]).read().splitlines()[-1]  # "XmY.YYYs XmY.YYYs": reaped children, user sys
print(round(sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", t)) * int(sys.argv[2])))' \
    "$WORK/times.txt" "$HZ")
}
ksoftirqd_ticks() { # softirq work deferred to ksoftirqd threads is charged to them, not to the proxy
  local p s t=0 a
  for p in $(pgrep -x 'ksoftirqd/[0-9]+' 2>/dev/null); do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    s=${s##*) }
    read -ra a <<<"$s"
    t=$((t + a[11] + a[12]))
  done
  echo "$t"
}

# ---------------------------------------------------------------- ports
NEXT_PORT=$PORT_BASE
alloc_port() { # sets PORT to an unused 127.0.0.1 port, a fresh one per instance
  local p
  while ((NEXT_PORT < PORT_BASE + 500)); do
    p=$NEXT_PORT
    NEXT_PORT=$((NEXT_PORT + 1))
    if [[ -z $(ss -Htan "sport = :$p" 2>/dev/null) ]]; then PORT=$p; return 0; fi
  done
  die "no free port left in $PORT_BASE..$((PORT_BASE + 500))"
}
wait_listen() { # PORT PID TIMEOUT_S
  local i
  for ((i = 0; i < $3 * 20; i++)); do
    [[ -n $(ss -Hltn "src 127.0.0.1 and sport = :$1" 2>/dev/null) ]] && return 0
    alive "$2" || return 1
    sleep 0.05
  done
  return 1
}

# ---------------------------------------------------------------- setup
WORK=$(mktemp -d /tmp/tcp-proxy-bench.XXXXXX) || die "mktemp failed"
RESULTS=$WORK/results.tsv
META=$WORK/meta.txt
mkdir -p "$WORK/run" "$WORK/out"
: >"$RESULTS"
log "work dir $WORK"

# quiet check: how busy is the machine before we add load?
BUSY0=$(python3 "$LIB/tcpbench.py" host-busy 3)
if ((QUIET_WAIT > 0)); then
  t_end=$((SECONDS + QUIET_WAIT))
  while ((BUSY0 >= QUIET_BUSY && SECONDS < t_end)); do
    log "host is ${BUSY0}% busy (threshold ${QUIET_BUSY}%): waiting"
    sleep 7
    BUSY0=$(python3 "$LIB/tcpbench.py" host-busy 3)
  done
fi
log "host busy before start: ${BUSY0}% (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
((BUSY0 >= QUIET_BUSY)) && log "WARNING: the host is busy; results will be noisier (see the host rows)"

# start_proxy SYSTEM UPSTREAM_PORT TAG -> PROXY_PID PROXY_PORT
start_proxy() {
  local sys=$1 uport=$2 tag=$3 rdir=$WORK/run/$3
  mkdir -p "$rdir"
  case $sys in
    haproxy|haproxy-splice)
      alloc_port; PROXY_PORT=$PORT
      local splice=""
      [[ $sys == haproxy-splice ]] && splice=$'\n    option splice-request\n    option splice-response'
      cat >"$rdir/haproxy.cfg" <<EOF
# proxy under test: plain TCP, one thread, Debian defaults otherwise (bufsize 16 KiB, no splice
# unless haproxy-splice)
global
    nbthread 1
    maxconn 4000
defaults
    mode tcp$splice
    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend fe_tcp
    bind 127.0.0.1:$PROXY_PORT
    default_backend be_tcp
backend be_tcp
    server upstream 127.0.0.1:$uport
EOF
      haproxy -c -q -f "$rdir/haproxy.cfg" >"$rdir/check.log" 2>&1 || { cat "$rdir/check.log" >&2; die "bad haproxy config"; }
      "${PROXY_PFX[@]}" haproxy -db -f "$rdir/haproxy.cfg" >"$rdir/stdout.log" 2>&1 </dev/null &
      PROXY_PID=$!; track "$PROXY_PID"
      if ! wait_listen "$PROXY_PORT" "$PROXY_PID" "$READY_TIMEOUT"; then
        log "ERROR: $tag did not listen on 127.0.0.1:$PROXY_PORT within ${READY_TIMEOUT}s"; tail -n 15 "$rdir/stdout.log" >&2
        stop_pid "$PROXY_PID"; return 1
      fi
      ;;
    *)
      local bin=$BINARY
      [[ $sys != portcullis ]] && bin=${VARIANT_BIN[$sys]:-}
      [[ -n $bin ]] || die "start_proxy: unknown system $sys"
      cat >"$rdir/portcullis.yaml" <<EOF
# proxy under test: plain TCP proxy, defaults otherwise (64 KiB per-connection buffers).
# Admin and listener bind port 0; the harness reads the bound ports from the admin API.
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: 0 }
static_resources:
  listeners:
  - name: bench
    address:
      socket_address: { address: 127.0.0.1, port_value: 0 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: bench
          cluster: upstream
  clusters:
  - name: upstream
    connect_timeout: 5s
    type: STATIC
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: $uport }
EOF
      "${PROXY_PFX[@]}" "$bin" --config-path "$rdir/portcullis.yaml" --concurrency 1 --log-level warning \
        --admin-address-path "$rdir/admin.addr" >"$rdir/stdout.log" 2>&1 </dev/null &
      PROXY_PID=$!; track "$PROXY_PID"
      if ! PROXY_PORT=$(python3 "$LIB/tcpbench.py" admin-port "$rdir/admin.addr" bench "$READY_TIMEOUT" "$PROXY_PID" 2>"$rdir/ready.log"); then
        log "ERROR: $tag did not come up: $(cat "$rdir/ready.log")"; tail -n 15 "$rdir/stdout.log" >&2
        stop_pid "$PROXY_PID"; return 1
      fi
      ;;
  esac
}
stop_proxy() { stop_pid "$PROXY_PID"; PROXY_PID=""; }

# backends: iperf3 server (bulk) and a one-thread haproxy answering every HTTP request with a
# 100-byte body (latency)
BODY_100=$(printf 'a%.0s' {1..100})
alloc_port; HTTP_PORT=$PORT
mkdir -p "$WORK/run/backend-http"
cat >"$WORK/run/backend-http/haproxy.cfg" <<EOF
# HTTP backend: 200 with a 100-byte text/plain body for every request, keep-alive
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout client 600s
    timeout http-request 600s
    timeout http-keep-alive 600s
frontend backend_http
    bind 127.0.0.1:$HTTP_PORT
    http-request return status 200 content-type text/plain string "$BODY_100"
EOF
"${LOADGEN_PFX[@]}" haproxy -db -f "$WORK/run/backend-http/haproxy.cfg" >"$WORK/run/backend-http/stdout.log" 2>&1 </dev/null &
HTTP_PID=$!; track "$HTTP_PID"
wait_listen "$HTTP_PORT" "$HTTP_PID" 10 || { cat "$WORK/run/backend-http/stdout.log" >&2; die "HTTP backend failed to start"; }
[[ $(python3 "$LIB/tcpbench.py" http-check "$HTTP_PORT") == "200 100" ]] || die "HTTP backend does not answer 200 with a 100-byte body"
if has_metric bulk; then
  alloc_port; IPERF_PORT=$PORT
  "${LOADGEN_PFX[@]}" iperf3 -s -B 127.0.0.1 -p "$IPERF_PORT" >"$WORK/run/iperf3-server.log" 2>&1 </dev/null &
  IPERF_PID=$!; track "$IPERF_PID"
  wait_listen "$IPERF_PORT" "$IPERF_PID" 10 || die "iperf3 server failed to start"
fi

backend_ticks() { # CPU of the long-running backends (not reaped yet, so not in `times`)
  local t=0
  [[ -n ${HTTP_PID:-} ]] && t=$((t + $(cpu_ticks "$HTTP_PID")))
  [[ -n ${IPERF_PID:-} ]] && t=$((t + $(cpu_ticks "$IPERF_PID")))
  echo "$t"
}

# ---------------------------------------------------------------- results
REP=0 CUR=""
rec() { printf '%s\t%s\t%s\t%s\n' "$REP" "$CUR" "$1" "$2" >>"$RESULTS"; }
recpy() { python3 "$LIB/tcpbench.py" "$@" | while IFS=$'\t' read -r k v; do rec "$k" "$v"; done; }

# ---------------------------------------------------------------- checks (once per system)
check_system() {
  local sys=$1 res
  if [[ $sys == direct ]]; then
    res=$(python3 "$LIB/tcpbench.py" http-check "$HTTP_PORT")
  else
    start_proxy "$sys" "$HTTP_PORT" "$sys-check" || { rec chk_http "FAIL: proxy did not start"; return 1; }
    res=$(python3 "$LIB/tcpbench.py" http-check "$PROXY_PORT")
    stop_proxy
  fi
  if [[ $res == "200 100" ]]; then rec chk_http ok; else rec chk_http "FAIL($res)"; fi
  log "  $sys: GET / through the proxy: $res"
  [[ $res == "200 100" ]]
}

# ---------------------------------------------------------------- metrics
m_bulk() {
  local sys=$1 target n f t0=0 t1=0 k0 k1 tag=$1-bulk-r$REP
  if [[ $sys == direct ]]; then target=$IPERF_PORT
  else start_proxy "$sys" "$IPERF_PORT" "$tag" || { rec bulk1_error "proxy failed to start"; return; }; target=$PROXY_PORT; fi
  for n in 1 4; do
    f=$WORK/out/$tag-P$n.json
    [[ $sys != direct ]] && t0=$(cpu_ticks "$PROXY_PID")
    k0=$(ksoftirqd_ticks)
    timeout $((BULK_T + 30)) "${LOADGEN_PFX[@]}" iperf3 -c 127.0.0.1 -p "$target" -t "$BULK_T" -P "$n" -J >"$f" 2>&1
    k1=$(ksoftirqd_ticks)
    rec "bulk${n}_ksoftirqd_s" "$(python3 -c "print(($k1 - $k0) / $HZ)")"
    if [[ $sys != direct ]]; then
      t1=$(cpu_ticks "$PROXY_PID")
      alive "$PROXY_PID" || { rec "bulk${n}_error" "the proxy exited during the run"; break; }
      recpy iperf3 "$f" "bulk$n" $((t1 - t0))
    else
      recpy iperf3 "$f" "bulk$n" -
    fi
  done
  [[ $sys != direct ]] && stop_proxy
}

run_wrk() { # PREFIX TARGET_PORT CONNS DURATION
  local prefix=$1 port=$2 c=$3 t=$4 f t0=0 t1=0 k0 k1
  f=$WORK/out/$CUR-$prefix-r$REP.txt
  [[ $CUR != direct ]] && t0=$(cpu_ticks "$PROXY_PID")
  k0=$(ksoftirqd_ticks)
  timeout $((t + 30)) "${LOADGEN_PFX[@]}" wrk -t1 -c"$c" -d"${t}s" --latency "http://127.0.0.1:$port/" >"$f" 2>&1
  k1=$(ksoftirqd_ticks)
  rec "${prefix}_ksoftirqd_s" "$(python3 -c "print(($k1 - $k0) / $HZ)")"
  if [[ $CUR != direct ]]; then
    t1=$(cpu_ticks "$PROXY_PID")
    alive "$PROXY_PID" || { rec "${prefix}_error" "the proxy exited during the run"; return; }
    recpy wrk "$f" "$prefix" $((t1 - t0))
  else
    recpy wrk "$f" "$prefix" -
  fi
}

m_latency() {
  local sys=$1 target
  if [[ $sys == direct ]]; then target=$HTTP_PORT
  else start_proxy "$sys" "$HTTP_PORT" "$sys-lat-r$REP" || { rec lat1_error "proxy failed to start"; return; }; target=$PROXY_PORT; fi
  timeout $((WARM_T + 30)) "${LOADGEN_PFX[@]}" wrk -t1 -c50 -d"${WARM_T}s" "http://127.0.0.1:$target/" >/dev/null 2>&1 # warm-up, discarded
  run_wrk lat1 "$target" 1 "$WRK_T"
  run_wrk lat50 "$target" 50 "$WRK_T"
  [[ $sys != direct ]] && stop_proxy
}

# ---------------------------------------------------------------- metadata
{
  echo "date=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "command=$CMDLINE"
  echo "host=$(uname -srm); $(nproc) CPUs ($(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)); $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo); virt: $(systemd-detect-virt 2>/dev/null || echo unknown)"
  echo "host busy before start=${BUSY0}% over 3 s (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
  if has_sys portcullis; then
    echo "portcullis=$("$BINARY" version 2>/dev/null | head -1) ($BINARY)"
  fi
  for v in "${VARIANTS[@]}"; do
    has_sys "$v" && echo "$v=$("${VARIANT_BIN[$v]}" version 2>/dev/null | head -1) (${VARIANT_BIN[$v]}, a portcullis variant)"
  done
  echo "haproxy=$(haproxy -v | head -1)"
  has_metric bulk && echo "iperf3=$(iperf3 --version | head -1)"
  has_metric latency && echo "wrk=$(wrk -v 2>&1 | head -1)"
  echo "python3=$(python3 --version 2>&1)"
  echo "mode=$( ((SHORT)) && echo short || echo full), reps=$REPS, systems=$SYSTEMS, metrics=$METRICS"
  echo "bulk_t=$BULK_T"; echo "wrk_t=$WRK_T"; echo "warm_t=$WARM_T"
  echo "workers=1 (portcullis --concurrency 1; haproxy nbthread 1)"
  echo "pinning=proxy:${BENCH_PROXY_CPUS:-none} loadgen:${BENCH_LOADGEN_CPUS:-none}"
} >"$META"

# ---------------------------------------------------------------- run
T_START=$SECONDS
log "systems: $SYSTEMS; metrics: $METRICS; reps: $REPS; $( ((SHORT)) && echo short || echo full) mode"
declare -A OK=()
for sys in "${SYS_LIST[@]}"; do
  CUR=$sys REP=1
  if check_system "$sys"; then OK[$sys]=1; else OK[$sys]=0; log "  $sys failed its check: skipping it"; fi
done
NSYS=${#SYS_LIST[@]}
for ((REP = 1; REP <= REPS; REP++)); do
  for ((j = 0; j < NSYS; j++)); do # rotate the order every rep
    sys=${SYS_LIST[$(((j + REP - 1) % NSYS))]}
    ((OK[$sys])) || continue
    CUR=$sys
    for m in "${MET_LIST[@]}"; do
      log "rep $REP/$REPS  $sys  $m"
      own_ticks; o0=$((OWN + $(backend_ticks))); k0=$(ksoftirqd_ticks)
      read -r h_t0 h_i0 <<<"$(host_cpu)"
      "m_$m" "$sys"
      read -r h_t1 h_i1 <<<"$(host_cpu)"
      own_ticks; o1=$((OWN + $(backend_ticks))); k1=$(ksoftirqd_ticks)
      if ((h_t1 > h_t0)); then
        busy=$((h_t1 - h_t0 - (h_i1 - h_i0)))
        rec "host_${m}_busy" $((100 * busy / (h_t1 - h_t0)))
        # what the machine did besides this benchmark (other users' builds, ...): busy time
        # not accounted to our processes (proxy, backends, load generators, helpers) or ksoftirqd
        other=$((busy - (o1 - o0) - (k1 - k0)))
        ((other < 0)) && other=0
        rec "host_${m}_other" $((100 * other / (h_t1 - h_t0)))
        rec "host_${m}_ksoftirqd" $((100 * (k1 - k0) / (h_t1 - h_t0)))
      fi
    done
  done
done
log "done in $((SECONDS - T_START)) s"

# ---------------------------------------------------------------- report
echo
sed 's/^/# /; s/=/: /' "$META"
echo
python3 "$LIB/tcpbench.py" report "$RESULTS" --meta "$META" --systems "$SYSTEMS"
if [[ -n $OUTPUT ]]; then
  {
    echo "Run metadata:"; echo
    sed 's/^/- /; s/=/: /' "$META"
    echo
    python3 "$LIB/tcpbench.py" report "$RESULTS" --meta "$META" --systems "$SYSTEMS" --md
  } >"$OUTPUT"
  log "wrote $OUTPUT"
fi
[[ -n $RAW ]] && cp "$RESULTS" "$RAW" && log "wrote $RAW"
exit 0
