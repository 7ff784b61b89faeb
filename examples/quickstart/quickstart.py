#!/usr/bin/env python3
"""Portcullis quickstart: two sidecars on loopback speaking SPIFFE mTLS, with network RBAC.

    frontend --plain--> [outbound sidecar, SVID .../sa/frontend] --mTLS--> [inbound sidecar] --plain--> echo
    intruder --plain--> [outbound sidecar, SVID .../sa/intruder] --mTLS--> [inbound sidecar]  (denied by RBAC)

It mints a demo trust domain (example.org) with openssl, starts the echo service and three
portcullis processes, sends traffic, and prints what that proved: bytes arrive intact through
mTLS, the inbound side allows the frontend and refuses the intruder before a byte reaches the app,
/certs shows the SVID in use, and the audit log records every decision in a hash chain that
`portcullis audit verify` checks. With a terminal attached it keeps running until Ctrl-C.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pki  # noqa: E402

TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3"
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
RBAC = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"


def spiffe_validation(root, match):
    return {"match_typed_subject_alt_names": [{"san_type": "URI", "matcher": match}],
            "custom_validator_config": {"name": "envoy.tls.cert_validator.spiffe", "typed_config": {
                "@type": f"{TLS}.SPIFFECertValidatorConfig",
                "trust_domains": [{"name": "example.org", "trust_bundle": {"filename": root}}]}}}


def inbound_config(cert, key, root, app_port, audit_path):
    return {
        "node": {"id": "backend-sidecar", "cluster": "backend"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "audit": {"sinks": [{"file": {"path": audit_path}}]},
        "static_resources": {
            "listeners": [{
                "name": "inbound",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{
                    "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                        "@type": f"{TLS}.DownstreamTlsContext", "require_client_certificate": True,
                        "common_tls_context": {
                            "tls_certificates": [{"certificate_chain": {"filename": cert}, "private_key": {"filename": key}}],
                            "validation_context": spiffe_validation(root, {"prefix": "spiffe://example.org/"})}}},
                    "filters": [
                        {"name": "envoy.filters.network.rbac", "typed_config": {
                            "@type": RBAC, "stat_prefix": "inbound",
                            "rules": {"action": "ALLOW", "policies": {"frontend-may-call-backend": {
                                "permissions": [{"any": True}],
                                "principals": [{"authenticated": {"principal_name": {
                                    "exact": "spiffe://example.org/ns/demo/sa/frontend"}}}]}}}}},
                        {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                            "@type": TCP_PROXY, "stat_prefix": "inbound", "cluster": "app"}}]}]}],
            "clusters": [{"name": "app", "connect_timeout": "1s", "type": "STATIC", "load_assignment": {
                "cluster_name": "app", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                    "socket_address": {"address": "127.0.0.1", "port_value": app_port}}}}]}]}}]}}


def outbound_config(name, cert, key, root, inbound_port):
    return {
        "node": {"id": f"{name}-sidecar", "cluster": name},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "outbound",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                    "@type": TCP_PROXY, "stat_prefix": "outbound", "cluster": "backend"}}]}]}],
            "clusters": [{
                "name": "backend", "connect_timeout": "1s", "type": "STATIC",
                "load_assignment": {"cluster_name": "backend", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": inbound_port}}}}]}]},
                "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                    "@type": f"{TLS}.UpstreamTlsContext", "sni": "backend.example.org",
                    "common_tls_context": {
                        "tls_certificates": [{"certificate_chain": {"filename": cert}, "private_key": {"filename": key}}],
                        "validation_context": spiffe_validation(
                            root, {"exact": "spiffe://example.org/ns/demo/sa/backend"})}}}}]}}


def start_echo_service():
    srv = socket.create_server(("127.0.0.1", 0))
    seen = []

    def serve(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept_loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            seen.append(time.time())
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return srv, srv.getsockname()[1], seen


def http(method, url):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Sidecar:
    def __init__(self, binary, work, name, config):
        self.name = name
        self.config_path = os.path.join(work, f"{name}.yaml")
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=1)  # JSON is YAML
        self.admin_file = os.path.join(work, f"{name}.admin")
        self.proc = subprocess.Popen([binary, "-c", self.config_path, "--admin-address-path", self.admin_file,
                                      "--concurrency", "1", "--drain-time-s", "5",
                                      "--log-path", os.path.join(work, f"{name}.log")])
        self.admin = self._wait_ready()
        listeners = json.loads(http("GET", self.admin + "/listeners?format=json")[1])
        self.port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]

    def _wait_ready(self):
        end = time.time() + 10
        while time.time() < end:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} sidecar exited early with code {self.proc.returncode}")
            if os.path.exists(self.admin_file) and open(self.admin_file).read().strip():
                admin = "http://" + open(self.admin_file).read().strip()
                try:
                    if http("GET", admin + "/ready")[0] == 200:
                        return admin
                except OSError:
                    pass
            time.sleep(0.05)
        sys.exit(f"{self.name} sidecar did not become ready")

    def stats(self):
        return dict(line.split(": ", 1) for line in http("GET", self.admin + "/stats")[1].splitlines())

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=10)


def exchange(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)), daemon=True).start()
        got = bytearray()
        try:
            while chunk := s.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass
        return bytes(got)


def say(ok, text):
    print(("  [ok] " if ok else "  [FAILED] ") + text)
    if not ok:
        raise SystemExit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--no-wait", action="store_true", help="exit after the demo even on a terminal")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="portcullis-quickstart-")
    print(f"== portcullis quickstart: two sidecars, SPIFFE mTLS, network RBAC (files in {work})")
    root_key, root = pki.make_root(work)
    svids = {n: pki.make_svid(work, n, f"spiffe://example.org/ns/demo/sa/{n}", root_key, root)
             for n in ("backend", "frontend", "intruder")}
    print("   minted trust domain example.org and SVIDs for sa/backend, sa/frontend, sa/intruder")
    echo, echo_port, app_connections = start_echo_service()
    audit_path = os.path.join(work, "audit.log")
    sidecars = []
    try:
        inbound = Sidecar(args.binary, work, "inbound", inbound_config(*svids["backend"], root, echo_port, audit_path))
        sidecars.append(inbound)
        frontend = Sidecar(args.binary, work, "frontend", outbound_config("frontend", *svids["frontend"], root, inbound.port))
        intruder = Sidecar(args.binary, work, "intruder", outbound_config("intruder", *svids["intruder"], root, inbound.port))
        sidecars += [frontend, intruder]
        print(f"   inbound sidecar 127.0.0.1:{inbound.port} (admin {inbound.admin}) -> echo 127.0.0.1:{echo_port}")
        print(f"   frontend sidecar 127.0.0.1:{frontend.port}, intruder sidecar 127.0.0.1:{intruder.port}")

        payload = os.urandom(1 << 20)
        say(exchange(frontend.port, payload) == payload,
            "frontend -> outbound sidecar -> mTLS -> inbound sidecar -> echo: 1 MiB back intact, half-close passed on")
        out_stats = frontend.stats()
        say(out_stats.get("cluster.backend.ssl.handshake") == "1",
            "the frontend's sidecar verified the backend's SPIFFE ID spiffe://example.org/ns/demo/sa/backend")

        before = len(app_connections)
        got = exchange(intruder.port, b"let me in")
        time.sleep(0.2)
        in_stats = inbound.stats()
        say(got == b"" and len(app_connections) == before and in_stats["inbound.rbac.denied"] == "1",
            "the intruder (a valid SVID, but not an allowed one) was refused by RBAC: no byte reached the app")

        certs = json.loads(http("GET", inbound.admin + "/certs")[1])
        leaf = certs["certificates"][0]["cert_chain"][0]
        say(leaf["subject_alt_names"] == [{"uri": "spiffe://example.org/ns/demo/sa/backend"}],
            f"/certs shows the SVID in use: serial {leaf['serial_number']}, expires {leaf['expiration_time']}")

        os.kill(inbound.proc.pid, signal.SIGUSR1)  # reopen = flush point for the demo
        deadline = time.time() + 5
        while time.time() < deadline and (not os.path.exists(audit_path) or len(open(audit_path).readlines()) < 2):
            time.sleep(0.05)
        lines = [json.loads(l) for l in open(audit_path)]
        for rec in lines:
            print(f"         audit: {rec['decision']:5} {rec['peer_spiffe_id']} policy={rec['policy'] or '-'} "
                  f"({rec['reason']})")
        say([r["decision"] for r in lines] == ["allow", "deny"], "the audit log has one record per decision")
        out = subprocess.run([args.binary, "audit", "verify", audit_path], capture_output=True, text=True)
        say(out.returncode == 0, f"portcullis audit verify: {out.stdout.strip()}")

        if sys.stdin.isatty() and not args.no_wait:
            print(f"\nRunning. Try:  python3 -c \"import socket;s=socket.create_connection(('127.0.0.1',{frontend.port}));"
                  f"s.sendall(b'hi');print(s.recv(9))\"")
            print(f"               curl {inbound.admin}/stats; curl {inbound.admin}/certs; cat {audit_path}")
            print("Stop with Ctrl-C.")
            try:
                inbound.proc.wait()
            except KeyboardInterrupt:
                pass
        codes = [s.stop() for s in sidecars]
        say(codes == [0, 0, 0], "SIGTERM drained and stopped all three sidecars (exit code 0)")
        print("\nDone. Run it again: scripts/quickstart.sh   Tests: scripts/test.sh")
    finally:
        for s in sidecars:
            if s.proc.poll() is None:
                s.proc.kill()
        echo.close()


if __name__ == "__main__":
    main()
