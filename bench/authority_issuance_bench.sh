#!/bin/sh
# Runs each authority issuance benchmark in its own process with 3 repetitions, printing the load
# average next to each (the bench host is shared) and the medians. Usage:
#   bench/authority_issuance_bench.sh [build dir] > out.txt
set -eu
build=${1:-build}
bin="$build/bench/portcullis_authority_issuance_bench"
for b in SignWorkloadSvid AgentMakeCsr SignWorkloadSvidWithCsr SignWorkloadSvidBatch16 MintJwtSvid \
         Part_Match Part_MatchIndexed Part_CsrParseVerify Part_CaSign Part_RecordIssued; do
  printf '%s\tload %s\n' "$b" "$(cut -d' ' -f1-3 /proc/loadavg)"
  "$bin" --benchmark_filter="^BM_$b\$" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
    2>/dev/null | grep -E '_(median|mean)' || true
done
