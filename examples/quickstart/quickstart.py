#!/usr/bin/env python3
"""Portcullis quickstart: one sidecar, its embedded authority, kernel-attested workloads.

    frontend (uid 20001) --plain--> [outbound] --mTLS, SVID .../frontend--> [inbound] --plain--> backend echo (uid 20002)
    intruder (uid 20003) --plain--> [outbound]   refused: no registration entry matches it

The workloads are Debian's /usr/bin/python3 run under their own uids (setpriv). Nobody hands them
certificates: the sidecar asks the kernel who is on the other end of each socket (sock_diag ->
socket inode -> process, held by pidfd), the embedded authority matches that process' selectors
(unix:uid, unix:path, unix:sha256, ...) against its registration entries, and signs an SVID for
it on first contact. The outbound listener presents the caller's SVID (`default`), the inbound
listener the backend's, and network RBAC admits only spiffe://example.org/frontend. When a
workload exits, its SVIDs are revoked and a live connection that used them is closed by the peer.
The audit log records all of it in a hash chain that `portcullis audit verify` checks. With a
terminal attached it keeps running until Ctrl-C.

Needs root: running workloads under other uids does (setpriv).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3"
TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
RBAC = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"
TD = "example.org"
FRONTEND, BACKEND, INTRUDER = 20001, 20002, 20003  # uids no distribution hands out
PYTHON = "/usr/bin/python3"
ATTESTED_CLAIMS_OID = bytes.fromhex("060a2b06010401e8f73f0101")  # 1.3.6.1.4.1.1719231.1.1, DER
SKIP = 77  # "cannot run here" (ctest's SKIP_RETURN_CODE), distinct from a failed demo

# The backend: an echo server on an ephemeral port; prints the port, then "accepted" per connection.
ECHO = """
import socket, sys, threading
s = socket.create_server(("127.0.0.1", 0)); print(s.getsockname()[1], flush=True)
def serve(c):
    with c:
        while d := c.recv(65536): c.sendall(d)
while True:
    c, _ = s.accept(); print("accepted", flush=True); threading.Thread(target=serve, args=(c,), daemon=True).start()
"""
# A client: sends argv[2] bytes of pattern, half-closes, prints what came back as JSON.
CLIENT = """
import json, socket, sys, threading, time
t = time.monotonic(); payload = bytes(range(256)) * (int(sys.argv[2]) // 256)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
def send():
    try:
        s.sendall(payload); s.shutdown(socket.SHUT_WR)
    except OSError:  # refused: the sidecar closed the connection
        pass
threading.Thread(target=send, daemon=True).start()
got = bytearray()
try:
    while c := s.recv(65536): got += c
except OSError:
    pass
print(json.dumps({"intact": bytes(got) == payload, "bytes": len(got), "ms": (time.monotonic() - t) * 1000}))
"""
# A long-lived workload: one echo round trip, then hands its connection to the demo (over the
# socketpair end argv[2]) so that the connection outlives it, and sleeps until killed.
LONG_LIVED = """
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"hello"); assert s.recv(5) == b"hello"
socket.send_fds(socket.socket(fileno=int(sys.argv[2])), [b"x"], [s.fileno()]); time.sleep(3600)
"""


def sidecar_config(work, inbound_port, echo_port):
    """One sidecar: embedded authority, an outbound listener that presents the caller's SVID and
    an inbound one that presents the backend's and allows only the frontend."""
    tls_context = {"tls_certificate_sds_secret_configs": [{"name": "default"}]}
    return {
        "node": {"id": "quickstart", "cluster": "quickstart"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "audit": {"sinks": [{"file": {"path": os.path.join(work, "audit.log")}}]},
        "identity": {
            "trust_domain": TD,
            "embedded_authority": {"data_dir": os.path.join(work, "authority"),
                                   "entries_file": os.path.join(work, "entries.yaml")},
            "workload_attestation": {"kernel": {}},
        },
        "static_resources": {
            "listeners": [{
                "name": "outbound",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                    "@type": TCP_PROXY, "stat_prefix": "outbound", "cluster": "backend"}}]}],
            }, {
                "name": "inbound",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": inbound_port}},
                "filter_chains": [{
                    "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                        "@type": f"{TLS}.DownstreamTlsContext", "require_client_certificate": True,
                        "common_tls_context": dict(tls_context, validation_context_sds_secret_config={"name": "ROOTCA"})}},
                    "filters": [
                        {"name": "envoy.filters.network.rbac", "typed_config": {
                            "@type": RBAC, "stat_prefix": "inbound",
                            "rules": {"action": "ALLOW", "policies": {"frontend-may-call-backend": {
                                "permissions": [{"any": True}],
                                "principals": [{"authenticated": {"principal_name": {
                                    "exact": f"spiffe://{TD}/frontend"}}}]}}}}},
                        {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                            "@type": TCP_PROXY, "stat_prefix": "inbound", "cluster": "backend_app"}}]}],
            }],
            "clusters": [
                cluster("backend", inbound_port, {"name": "envoy.transport_sockets.tls", "typed_config": {
                    "@type": f"{TLS}.UpstreamTlsContext",
                    "common_tls_context": dict(tls_context, combined_validation_context={
                        "default_validation_context": {"match_typed_subject_alt_names": [
                            {"san_type": "URI", "matcher": {"exact": f"spiffe://{TD}/backend"}}]},
                        "validation_context_sds_secret_config": {"name": "ROOTCA"}})}}),
                cluster("backend_app", echo_port, None),
            ],
        },
    }


def cluster(name, port, transport_socket):
    c = {"name": name, "connect_timeout": "1s", "type": "STATIC", "load_assignment": {
        "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}
    if transport_socket:
        c["transport_socket"] = transport_socket
    return c


def entries_yaml():
    return (f"entries:\n"
            f"  - spiffe_id: spiffe://{TD}/frontend\n    selectors: [\"unix:uid:{FRONTEND}\"]\n"
            f"  - spiffe_id: spiffe://{TD}/backend\n    selectors: [\"unix:uid:{BACKEND}\"]\n")


def as_uid(uid, code, *args, **popen):
    """Debian's python3 running `code` as uid:gid `uid`, no supplementary groups."""
    # A session of its own: Ctrl-C on the terminal stops the demo, which then stops its workloads.
    return subprocess.Popen(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", PYTHON, "-c", code,
                             *map(str, args)], cwd="/", stdout=subprocess.PIPE, text=True, start_new_session=True,
                            **popen)


def run_client(uid, port, size):
    out, _ = as_uid(uid, CLIENT, port, size).communicate(timeout=20)
    return json.loads(out)


def free_port():
    # The inbound port goes into the outbound cluster before the sidecar binds it; the kernel
    # will not hand this one out again at once.
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def http(method, url):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Sidecar:
    def __init__(self, binary, work, config):
        self.config_path = os.path.join(work, "sidecar.yaml")
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=1)  # JSON is YAML
        self.audit_path = config["audit"]["sinks"][0]["file"]["path"]
        admin_file = os.path.join(work, "sidecar.admin")
        self.proc = subprocess.Popen([binary, "-c", self.config_path, "--admin-address-path", admin_file,
                                      "--concurrency", "2", "--drain-time-s", "5",
                                      "--log-path", os.path.join(work, "sidecar.log")])
        self.admin = self._wait_ready(admin_file)
        listeners = json.loads(http("GET", self.admin + "/listeners?format=json")[1])["listener_statuses"]
        self.ports = {l["name"]: l["local_address"]["socket_address"]["port_value"] for l in listeners}

    def _wait_ready(self, admin_file):
        end, why = time.time() + 15, "no admin address"
        while time.time() < end:
            if self.proc.poll() is not None:
                sys.exit(f"the sidecar exited early with code {self.proc.returncode} (see its log)")
            if os.path.exists(admin_file) and open(admin_file).read().strip():
                admin = "http://" + open(admin_file).read().strip()
                try:
                    code, why = http("GET", admin + "/ready")
                    if code == 200:
                        return admin
                except OSError:
                    pass
            time.sleep(0.05)
        sys.exit(f"the sidecar did not become ready: {why.strip()}")

    def stats(self):
        return dict(line.split(": ", 1) for line in http("GET", self.admin + "/stats")[1].splitlines())

    def audit(self, until=lambda records: True, timeout=5):
        """The audit records so far, waiting (bounded) until `until` holds. SIGUSR1 (reopen) is a flush point."""
        end = time.time() + timeout
        while True:
            os.kill(self.proc.pid, signal.SIGUSR1)
            time.sleep(0.05)
            records = [json.loads(l) for l in open(self.audit_path)] if os.path.exists(self.audit_path) else []
            if until(records) or time.time() > end:
                return records

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)


def say(ok, text):
    print(("  [ok] " if ok else "  [FAILED] ") + text)
    if not ok:
        raise SystemExit(1)


def der_item(data, i):
    """One DER TLV at data[i]: (tag, value start, value end)."""
    tag, length, i = data[i], data[i + 1], i + 2
    if length & 0x80:
        n = length & 0x7F
        length, i = int.from_bytes(data[i:i + n], "big"), i + n
    return tag, i, i + length


def attested_claims(der):
    """The claims in the attested-claims extension (a SEQUENCE of UTF8Strings in an OCTET STRING)."""
    at = der.find(ATTESTED_CLAIMS_OID)
    if at < 0:
        return []
    tag, start, end = der_item(der, at + len(ATTESTED_CLAIMS_OID))
    if tag == 0x01:  # critical flag
        tag, start, end = der_item(der, end)
    _, i, seq_end = der_item(der, start)  # OCTET STRING -> SEQUENCE
    claims = []
    while i < seq_end:
        _, s, e = der_item(der, i)
        claims.append(der[s:e].decode())
        i = e
    return claims


def presented_svid(port):
    """What a TLS client sees on `port`: the leaf's SPIFFE ID, serial, validity and attested claims."""
    hello = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}"], input="",
                           capture_output=True, text=True, timeout=10).stdout
    pem = hello[hello.find("-----BEGIN CERTIFICATE-----"):hello.find("-----END CERTIFICATE-----") + 25]
    text = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-serial", "-dates", "-issuer"],
                          input=pem, capture_output=True, text=True).stdout
    der = subprocess.run(["openssl", "x509", "-outform", "DER"], input=pem.encode(), capture_output=True).stdout
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    uri = next((l.strip() for l in text.splitlines() if "URI:" in l), "?")
    return (f"{uri} serial={fields.get('serial', '?').lower()} issuer={fields.get('issuer', '?').strip()}\n"
            f"         valid {fields.get('notBefore', '?')} .. {fields.get('notAfter', '?')}\n"
            f"         attested claims: {', '.join(attested_claims(der))}")


def check_prerequisites():
    if os.geteuid() != 0:
        print("The quickstart runs its demo workloads under their own uids (setpriv --reuid), which needs root.\n"
              "Run it as root (sudo scripts/quickstart.sh); the build itself does not need root.", file=sys.stderr)
        sys.exit(SKIP)
    for tool in ("setpriv", PYTHON):
        if not shutil.which(tool):
            print(f"{tool} is missing (Debian: util-linux, python3)", file=sys.stderr)
            sys.exit(SKIP)


def demo(args, work, procs):
    print(f"== portcullis quickstart: embedded authority, kernel-attested per-caller SVIDs (files in {work})")
    with open(os.path.join(work, "entries.yaml"), "w") as f:
        f.write(entries_yaml())
    print(f"   entries: spiffe://{TD}/frontend <- unix:uid:{FRONTEND}, spiffe://{TD}/backend <- unix:uid:{BACKEND};"
          f" uid {INTRUDER} has none")
    echo = as_uid(BACKEND, ECHO)
    procs.append(echo)
    echo_port = int(echo.stdout.readline())
    accepted = []
    threading.Thread(target=lambda: [accepted.append(l) for l in echo.stdout], daemon=True).start()
    sidecar = Sidecar(args.binary, work, sidecar_config(work, free_port(), echo_port))
    procs.append(sidecar.proc)
    out_port = sidecar.ports["outbound"]
    print(f"   sidecar ready (admin {sidecar.admin}): outbound 127.0.0.1:{out_port} -> mTLS -> inbound "
          f"127.0.0.1:{sidecar.ports['inbound']} -> backend echo 127.0.0.1:{echo_port} (uid {BACKEND})")

    r = run_client(FRONTEND, out_port, 1 << 20)
    issued = lambda rs: {x["peer_spiffe_id"] for x in rs if x["decision"] == "svid_issued" and x["listener"] == "identity"}
    both = {f"spiffe://{TD}/frontend", f"spiffe://{TD}/backend"}
    say(r["intact"] and issued(sidecar.audit(lambda rs: issued(rs) >= both)) >= both,
        f"frontend (uid {FRONTEND}) -> outbound -> mTLS -> inbound -> echo: 1 MiB back intact in "
        f"{r['ms']:.0f} ms, SVIDs for both ends issued on first contact")
    stats = sidecar.stats()
    say(stats.get("inbound.rbac.allowed") == "1", f"the inbound side saw spiffe://{TD}/frontend and RBAC allowed it")

    before = len(accepted)
    r = run_client(INTRUDER, out_port, 4096)
    records = sidecar.audit(lambda rs: any("unattested caller" in x.get("reason", "") for x in rs))
    refused = [x for x in records if "unattested caller" in x.get("reason", "")]
    say(r["bytes"] == 0 and len(accepted) == before and refused,
        f"the intruder (uid {INTRUDER}, no entry) was refused at the outbound listener, nothing reached the backend: "
        f"\"{refused[0]['reason'] if refused else ''}\"")

    left, right = socket.socketpair()
    worker = as_uid(FRONTEND, LONG_LIVED, out_port, right.fileno(), pass_fds=(right.fileno(),))
    procs.append(worker)
    _, fds, _, _ = socket.recv_fds(left, 1, 1)
    held = socket.socket(fileno=fds[0])
    right.close()
    print(f"   a long-lived frontend workload (pid {worker.pid}) made a connection and handed it to this script")
    killed = time.monotonic()
    worker.kill()
    worker.wait()
    held.settimeout(5)
    try:
        closed = held.recv(1) == b""
    except OSError:
        closed = True
    closed_ms = (time.monotonic() - killed) * 1000
    held.close()
    by_peer = lambda rs: [x for x in rs if x["decision"] == "revoked" and x["listener"] == "inbound"]
    records = sidecar.audit(lambda rs: by_peer(rs))
    say(closed and by_peer(records), f"killed it: its SVID was revoked and the inbound side closed the live connection "
        f"that used it, {closed_ms:.0f} ms after the kill")

    svid = presented_svid(sidecar.ports["inbound"])
    print(f"   the backend's SVID as the inbound listener presents it (openssl s_client; /certs lists file-based "
          f"certificates only;\n   openssl has no SVID, so the inbound side refuses its handshake: the last audit record):\n         {svid}")

    records = sidecar.audit()
    print("   the audit log (listener, decision, SPIFFE ID, serial, reason):")
    for x in records:
        print(f"         {x['listener']:<9} {x['decision']:<16} {x['peer_spiffe_id'] or '-':<30} "
              f"{x['cert_serial'][:8] or '-':<8} {x['reason'][:70]}")
    say(any(x["decision"] == "svid_revoked" for x in records) and any(x["decision"] == "revoked" for x in records),
        "each exited frontend's SVID was revoked: svid_revoked (agent), revoked (authority; the peer closing a live "
        "connection)")
    out = subprocess.run([args.binary, "audit", "verify", sidecar.audit_path], capture_output=True, text=True)
    say(out.returncode == 0, f"portcullis audit verify: {out.stdout.strip()}")

    print(f"   /ready: {http('GET', sidecar.admin + '/ready')[1].strip()}")
    stats = sidecar.stats()
    for name in sorted(stats):
        if name.startswith(("agent.", "identity.builtin.", "revocation.")) and stats[name] != "0":
            print(f"   stat {name}: {stats[name]}")

    if sys.stdin.isatty() and not args.no_wait:
        print(f"\nRunning. Try, as root:\n"
              f"  setpriv --reuid {FRONTEND} --regid {FRONTEND} --clear-groups {PYTHON} -c \"import socket;"
              f"s=socket.create_connection(('127.0.0.1',{out_port}));s.sendall(b'hi');print(s.recv(9))\"\n"
              f"  (with --reuid {INTRUDER} it is refused)   curl {sidecar.admin}/stats   cat {sidecar.audit_path}")
        print("Stop with Ctrl-C.")
        try:
            sidecar.proc.wait()
        except KeyboardInterrupt:
            pass
    say(sidecar.stop() == 0, "SIGTERM drained and stopped the sidecar (exit code 0)")
    print("\nDone. Run it again: scripts/quickstart.sh   Tests: scripts/test.sh")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--no-wait", action="store_true", help="exit after the demo even on a terminal")
    args = ap.parse_args()
    check_prerequisites()
    work = tempfile.mkdtemp(prefix="portcullis-quickstart-")
    procs = []
    try:
        demo(args, work, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
