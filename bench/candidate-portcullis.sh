#!/usr/bin/env bash
# Candidate adapter for ../shared/bench/peers.sh (its README, "Candidate hook"): renders a portcullis
# config from the BENCH_* environment and execs the binary in the foreground.
#   role out: plaintext listener -> mTLS cluster (client SVID, server's SPIFFE ID checked)
#   role in:  mTLS listener (client SVID required and checked) -> plaintext upstream
# Usage (from the repository root, after a Release build):
#   CANDIDATE_NAME=portcullis PORTCULLIS_BIN=$PWD/build/proxy/portcullis \
#   CANDIDATE_CMD="$PWD/bench/candidate-portcullis.sh" ../shared/bench/peers.sh -r 3
set -euo pipefail
: "${BENCH_ROLE:?}" "${BENCH_LISTEN_ADDR:?}" "${BENCH_LISTEN_PORT:?}" "${BENCH_UPSTREAM_ADDR:?}" \
  "${BENCH_UPSTREAM_PORT:?}" "${BENCH_CA_FILE:?}" "${BENCH_CERT_FILE:?}" "${BENCH_KEY_FILE:?}" \
  "${BENCH_PEER_SPIFFE_ID:?}" "${BENCH_TRUST_DOMAIN:?}" "${BENCH_RUN_DIR:?}"
bin=${PORTCULLIS_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/proxy/portcullis}
cfg=$BENCH_RUN_DIR/portcullis-$BENCH_ROLE.yaml
tls=type.googleapis.com/envoy.extensions.transport_sockets.tls.v3

common_tls() {  # indent, then the common_tls_context body
  local pad=$1
  cat <<EOT
${pad}common_tls_context:
${pad}  tls_params: {tls_minimum_protocol_version: TLSv1_3}
${pad}  tls_certificates: [{certificate_chain: {filename: "$BENCH_CERT_FILE"}, private_key: {filename: "$BENCH_KEY_FILE"}}]
${pad}  validation_context:
${pad}    match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "$BENCH_PEER_SPIFFE_ID"}}]
${pad}    custom_validator_config:
${pad}      name: envoy.tls.cert_validator.spiffe
${pad}      typed_config:
${pad}        "@type": $tls.SPIFFECertValidatorConfig
${pad}        trust_domains: [{name: "$BENCH_TRUST_DOMAIN", trust_bundle: {filename: "$BENCH_CA_FILE"}}]
EOT
}

{
  cat <<EOT
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: bench_$BENCH_ROLE
    address: {socket_address: {address: "$BENCH_LISTEN_ADDR", port_value: $BENCH_LISTEN_PORT}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: bench
          cluster: upstream
EOT
  if [[ $BENCH_ROLE == in ]]; then
    cat <<EOT
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": $tls.DownstreamTlsContext
          require_client_certificate: true
EOT
    common_tls "          "
  fi
  cat <<EOT
  clusters:
  - name: upstream
    connect_timeout: 5s
    load_assignment:
      cluster_name: upstream
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: "$BENCH_UPSTREAM_ADDR", port_value: $BENCH_UPSTREAM_PORT}}}}]}]
EOT
  if [[ $BENCH_ROLE == out ]]; then
    cat <<EOT
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": $tls.UpstreamTlsContext
EOT
    common_tls "        "
  fi
} > "$cfg"
"$bin" -c "$cfg" --mode validate >/dev/null
exec "$bin" -c "$cfg" --concurrency "${BENCH_WORKERS:-1}" -l warning
