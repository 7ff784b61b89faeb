"""Kernel-attested identities with the EMBEDDED authority, against the real binary and real
processes under other uids (`setpriv`, Debian's /usr/bin/python3 and node as the workloads).

One sidecar per test: an outbound listener (`default` = the calling process) whose cluster speaks
mTLS to the sidecar's own inbound listener (`default` = the process listening on the upstream
endpoint), RBAC allowing spiffe://example.org/frontend, and an echo server under uid 1002 behind
it. Covered: entry match (uid 1001 reaches the echo, the inbound side presents the backend's SVID)
and mismatch (uid 1003 refused as "unattested caller"); an exe-hash selector matching a copy of
python3 and refusing the same file once its bytes change; the Workload API answering per caller
(frontend for uid 1001, PERMISSION_DENIED for uid 1003); revocation when the workload exits (its
live mTLS connection closed by the peer within 1 s, a new handshake with the SVID refused);
rotation under a connection load loop with zero failures; a PID reused (forced through
ns_last_pid) by another uid never getting the old owner's identity; the audit chain verified each
time. The race of a PID reused between lookup and decision is the kernel unit tests' part
(tests/unit/attest/kernel)."""

import base64
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import harness
from harness import IntegrationTestCase
from tls_files import audit_records, der_serial, serial_hex

HERE = os.path.dirname(os.path.abspath(__file__))
SETPRIV = shutil.which("setpriv")
PYTHON = "/usr/bin/python3"
NODE = shutil.which("node")
WL_CLIENT = os.path.join(os.path.dirname(HERE), "interop", "workload_api_client.js")
SDS_CLIENT = os.path.join(os.path.dirname(HERE), "interop", "sds_client.js")
HAVE_GRPC_JS = bool(NODE) and os.path.isdir(os.path.join(os.path.dirname(WL_CLIENT), "node_modules", "@grpc", "grpc-js"))

TD = "example.org"
FRONTEND = "spiffe://example.org/frontend"
BACKEND = "spiffe://example.org/backend"
FRONTEND_UID, BACKEND_UID, STRANGER_UID = 1001, 1002, 1003
PERMISSION_DENIED = 7

TCP_PROXY_TYPE = harness.TCP_PROXY_TYPE
TLS_SOCKET = "envoy.transport_sockets.tls"
DOWNSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
UPSTREAM_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"

# The workloads' programs: small, standard library only, run by other uids from a 0755 temp dir.
ECHO_SERVER = r"""
import socket, sys, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(256)
print(s.getsockname()[1], flush=True)
def serve(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d: return
            c.sendall(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# One call: connect, send, read the echo back; prints {"ok", "got" | "error"}.
CLIENT = r"""
import json, os, socket, sys
port, msg = int(sys.argv[1]), sys.argv[2].encode()
try:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        d = s.recv(65536)
        if not d: break
        got += d
    print(json.dumps({"ok": got == msg, "got": got.decode("latin-1"), "pid": os.getpid()}))
except OSError as e:
    print(json.dumps({"ok": False, "error": repr(e), "pid": os.getpid()}))
"""

# Calls in a loop for argv[2] seconds, 4 threads; prints {"ok": n, "failed": n, "errors": [...]}.
LOAD_CLIENT = r"""
import json, socket, sys, threading, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + seconds
lock = threading.Lock(); res = {"ok": 0, "failed": 0, "errors": []}
def run(t):
    i = 0
    while time.monotonic() < end:
        i += 1
        msg = ("%d-%d" % (t, i)).encode()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    d = s.recv(65536)
                    if not d: break
                    got += d
            good, why = got == msg, "got %r" % got
        except OSError as e:
            good, why = False, repr(e)
        with lock:
            if good: res["ok"] += 1
            else:
                res["failed"] += 1
                if len(res["errors"]) < 10: res["errors"].append("%.3f %s" % (time.time(), why))
threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(res))
"""


def skip_reason():
    if os.geteuid() != 0:
        return "needs root: workloads run under other uids through setpriv"
    if not SETPRIV:
        return "setpriv (util-linux) not installed"
    if not os.access(PYTHON, os.X_OK):
        return PYTHON + " missing"
    return None


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pem(label, der):
    b64 = base64.encodebytes(der).decode().replace("\n", "")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)


def uri_sans(peer_der):
    """URI SANs of a DER certificate, through openssl (ssl.getpeercert() is empty without
    verification against a hostname-style chain)."""
    p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-ext", "subjectAltName"],
                       input=peer_der, capture_output=True, timeout=10)
    return [t.strip()[4:] for t in p.stdout.decode().replace("\n", ",").split(",") if t.strip().startswith("URI:")]


@unittest.skipIf(skip_reason(), skip_reason() or "")
class AttestationTest(IntegrationTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="portcullis-it-attest-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)  # the workloads (other uids) run programs and reach sockets here
        self.audit_path = os.path.join(self.dir, "audit.log")
        self.entries_path = os.path.join(self.dir, "entries.yaml")
        self.wl_sock = os.path.join(self.dir, "workload.sock")
        self.sds_sock = os.path.join(self.dir, "sds.sock")
        self.scripts = {}
        for name, text in (("echo", ECHO_SERVER), ("client", CLIENT), ("load", LOAD_CLIENT)):
            path = os.path.join(self.dir, name + ".py")
            with open(path, "w") as f:
                f.write(text)
            os.chmod(path, 0o644)
            self.scripts[name] = path

    # -- processes under other uids ------------------------------------------------------------

    def as_uid(self, uid, argv, **kw):
        return subprocess.Popen([SETPRIV, "--reuid", str(uid), "--regid", str(uid), "--clear-groups"] + argv,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

    def as_uid_with_pid(self, uid, argv, pid, attempts=50):
        """as_uid, forcing the child's PID through ns_last_pid (setpriv execs, so the workload
        keeps it). Other processes on the machine may take the PID first: retried, then skipped."""
        for _ in range(attempts):
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pid - 1))
            p = self.as_uid(uid, argv)
            if p.pid == pid:
                return p
            p.kill()
            p.communicate()
        self.skipTest("could not get PID %d for the reuse test (a busy machine took it %d times)" % (pid, attempts))

    def spawn(self, uid, argv):
        p = self.as_uid(uid, argv)

        def stop():
            if p.poll() is None:
                p.kill()
            p.wait()
            p.stdout.close()
            p.stderr.close()

        self.addCleanup(stop)
        return p

    def read_line(self, p, timeout=10.0):
        ready, _, _ = select.select([p.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("no output from pid %d within %.0fs" % (p.pid, timeout))
        line = p.stdout.readline()
        if not line:
            p.wait()
            raise AssertionError("pid %d exited %s: %s" % (p.pid, p.returncode, p.stderr.read().decode()))
        return line.decode()

    def run_as(self, uid, argv, timeout=20.0, pid=None):
        p = self.as_uid_with_pid(uid, argv, pid) if pid else self.as_uid(uid, argv)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise AssertionError("%s under uid %d did not finish within %.0fs" % (argv, uid, timeout))
        self.assertEqual(p.returncode, 0, "%s under uid %d: %s" % (argv, uid, err.decode()))
        return json.loads(out.decode().strip().splitlines()[-1])

    def call(self, uid, port, message, exe=PYTHON, pid=None):
        return self.run_as(uid, [exe, self.scripts["client"], str(port), message], pid=pid)

    # -- the sidecar ---------------------------------------------------------------------------

    def write_entries(self, entries):
        lines = ["entries:"]
        for e in entries:
            lines.append("  - spiffe_id: %s" % e["spiffe_id"])
            lines.append("    selectors: %s" % json.dumps(e["selectors"]))
            if "x509_svid_ttl" in e:
                lines.append("    x509_svid_ttl: %s" % e["x509_svid_ttl"])
        with open(self.entries_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def config(self, inbound_port, echo_port, rotate_at=None):
        identity = {
            "trust_domain": TD,
            "embedded_authority": {"data_dir": os.path.join(self.dir, "data"), "entries_file": self.entries_path},
            "workload_attestation": {"kernel": {}},
        }
        if rotate_at is not None:
            identity["rotate_at"] = rotate_at
        outbound = harness.tcp_proxy_listener("outbound", "to_inbound", stat_prefix="out")
        inbound = harness.tcp_proxy_listener("inbound", "backend_app", port=inbound_port, stat_prefix="in")
        inbound["filter_chains"][0]["transport_socket"] = {"name": TLS_SOCKET, "typed_config": {
            "@type": DOWNSTREAM_TLS,
            "require_client_certificate": True,
            "common_tls_context": {"tls_certificate_sds_secret_configs": [{"name": "default"}],
                                   "validation_context_sds_secret_config": {"name": "ROOTCA"}}}}
        inbound["filter_chains"][0]["filters"].insert(0, {"name": "envoy.filters.network.rbac", "typed_config": {
            "@type": RBAC_TYPE, "stat_prefix": "inbound",
            "rules": {"action": "ALLOW", "policies": {"frontend-may-call-backend": {
                "permissions": [{"any": True}],
                "principals": [{"authenticated": {"principal_name": {"exact": FRONTEND}}}]}}}}})
        to_inbound = harness.static_cluster("to_inbound", [inbound_port])
        to_inbound["transport_socket"] = {"name": TLS_SOCKET, "typed_config": {
            "@type": UPSTREAM_TLS,
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": [{"name": "default"}],
                "combined_validation_context": {
                    "default_validation_context": {"match_typed_subject_alt_names": [
                        {"san_type": "URI", "matcher": {"exact": BACKEND}}]},
                    "validation_context_sds_secret_config": {"name": "ROOTCA"}}}}}
        cfg = harness.bootstrap([outbound, inbound], [to_inbound, harness.static_cluster("backend_app", [echo_port])])
        cfg["identity"] = identity
        cfg["workload_api"] = {"address": {"pipe": {"path": self.wl_sock, "mode": 0o666}}}
        cfg["sds"] = {"address": {"pipe": {"path": self.sds_sock, "mode": 0o666}}}
        cfg["audit"] = {"sinks": [{"file": {"path": self.audit_path}}]}
        return cfg

    def start_sidecar(self, entries, rotate_at=None):
        """The echo under uid 1002, then the sidecar. The inbound listener needs a fixed port
        because the outbound cluster points at it: a free one is picked, and picked again in the
        unlikely case another process takes it before the sidecar binds."""
        self.write_entries(entries)
        echo = self.spawn(BACKEND_UID, [PYTHON, self.scripts["echo"]])
        self.echo_port = int(self.read_line(echo))
        last = None
        for _ in range(3):
            self.inbound_port = harness.closed_port()
            try:
                self.proxy = self.start_proxy(self.config(self.inbound_port, self.echo_port, rotate_at))
                break
            except harness.ProxyExited as e:
                last = e
                if "in use" not in str(e).lower():
                    raise
        else:
            raise last
        self.outbound_port = self.proxy.listener_port("outbound")
        self.assertEqual(self.proxy.listener_port("inbound"), self.inbound_port)
        return self.proxy

    def stat(self, name):
        return self.proxy.stats().get(name, 0)

    def inbound_stat(self, suffix):
        stats = self.proxy.stats()
        hits = {k: v for k, v in stats.items() if k.startswith("listener.") and k.endswith(suffix)
                and not k.startswith("listener.admin")}
        return sum(hits.values())

    def records(self, **match):
        return [r for r in audit_records(self.audit_path) if all(r.get(k) == v for k, v in match.items())]

    def verify_audit_chain(self):
        p = harness.run_portcullis(["audit", "verify", self.audit_path])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def default_entries(self, **extra):
        return [dict(spiffe_id=FRONTEND, selectors=["unix:uid:%d" % FRONTEND_UID], **extra),
                dict(spiffe_id=BACKEND, selectors=["unix:uid:%d" % BACKEND_UID], **extra)]

    # -- Workload API through grpc-js under another uid ----------------------------------------

    def fetch_x509(self, uid, count=1):
        """A workload_api_client.js x509_watch under `uid`; returns (process, first JSON line)."""
        p = self.spawn(uid, [NODE, WL_CLIENT, "unix://" + self.wl_sock, "x509_watch", "--count", str(count)])
        return p, json.loads(self.read_line(p, timeout=15))

    # ------------------------------------------------------------------------------------------

    def test_entry_match_reaches_the_backend_and_a_mismatch_is_refused(self):
        self.start_sidecar(self.default_entries())
        r = self.call(FRONTEND_UID, self.outbound_port, "hello-from-1001")
        self.assertTrue(r["ok"], r)

        allowed = self.records(listener="inbound", decision="allow")
        self.assertEqual([a["peer_spiffe_id"] for a in allowed], [FRONTEND], allowed)
        issued = {r["peer_spiffe_id"] for r in self.records(listener="identity", decision="svid_issued")}
        # The cluster only accepts a server presenting the backend's SVID (SAN matcher), and the
        # inbound side got that SVID for the echo's process (uid 1002).
        self.assertEqual(issued, {FRONTEND, BACKEND})

        refused_before = self.stat("identity.builtin.unattested_callers")
        r = self.call(STRANGER_UID, self.outbound_port, "hello-from-1003")
        self.assertFalse(r["ok"], r)
        self.assertEqual(r.get("got", ""), "", r)
        self.proxy.wait_stat("identity.builtin.unattested_callers", lambda v: v >= refused_before + 1)
        unattested = [a for a in audit_records(self.audit_path) if "unattested caller" in a.get("reason", "")]
        self.assertTrue(unattested, audit_records(self.audit_path))
        self.assertIn("uid %d" % STRANGER_UID, unattested[0]["reason"])
        self.assertEqual(len(self.records(listener="inbound", decision="allow")), 1, "the refused call reached inbound")
        self.verify_audit_chain()

    def test_exe_hash_selector_matches_the_binary_and_not_after_it_changes(self):
        bindir = os.path.join(self.dir, "bin")
        os.mkdir(bindir, 0o755)
        exe = os.path.join(bindir, "python3")
        shutil.copy2(os.path.realpath(PYTHON), exe)
        os.chmod(exe, 0o755)
        digest = sha256_file(exe)
        self.start_sidecar([dict(spiffe_id=FRONTEND, selectors=["unix:sha256:" + digest, "unix:uid:%d" % FRONTEND_UID]),
                            dict(spiffe_id=BACKEND, selectors=["unix:uid:%d" % BACKEND_UID])])

        r = self.call(FRONTEND_UID, self.outbound_port, "copied-binary", exe=exe)
        self.assertTrue(r["ok"], r)
        # The selector is the content, not the path: the original has the same bytes.
        r = self.call(FRONTEND_UID, self.outbound_port, "original-binary")
        self.assertTrue(r["ok"], r)
        # Another uid running the matching binary is still refused: all selectors must match.
        r = self.call(STRANGER_UID, self.outbound_port, "other-uid", exe=exe)
        self.assertFalse(r["ok"], r)

        # Replace the binary's contents in place (trailing bytes after an ELF image keep it
        # runnable): same path, same uid, different hash -> refused.
        with open(exe, "ab") as f:
            f.write(b"\0portcullis-test-tamper\0")
        self.assertNotEqual(sha256_file(exe), digest)
        refused_before = self.stat("identity.builtin.unattested_callers")
        r = self.call(FRONTEND_UID, self.outbound_port, "changed-binary", exe=exe)
        self.assertFalse(r["ok"], r)
        self.proxy.wait_stat("identity.builtin.unattested_callers", lambda v: v >= refused_before + 1)
        refusal = [a["reason"] for a in audit_records(self.audit_path) if "unattested caller" in a.get("reason", "")]
        self.assertEqual(len(refusal), 2, refusal)  # the other uid, then the changed binary
        self.assertIn("uid %d" % FRONTEND_UID, refusal[-1])
        self.assertIn("matches no registration entry", refusal[-1])
        # The hash cache keys on the file (device, inode, mtime, size): the untouched original
        # still matches after the copy changed.
        r = self.call(FRONTEND_UID, self.outbound_port, "original-again")
        self.assertTrue(r["ok"], r)
        allowed = self.records(listener="inbound", decision="allow")
        self.assertEqual(len(allowed), 3, allowed)
        self.verify_audit_chain()

    @unittest.skipUnless(os.access("/proc/sys/kernel/ns_last_pid", os.W_OK), "ns_last_pid not writable")
    def test_a_reused_pid_never_inherits_the_old_identity(self):
        self.start_sidecar(self.default_entries())
        first = self.call(FRONTEND_UID, self.outbound_port, "first-owner")
        self.assertTrue(first["ok"], first)
        pid = first["pid"]
        # The first owner has exited and been reaped; a stranger now gets the very same PID.
        refused_before = self.stat("identity.builtin.unattested_callers")
        second = self.call(STRANGER_UID, self.outbound_port, "second-owner", pid=pid)
        self.assertEqual(second["pid"], pid)
        self.assertFalse(second["ok"], second)
        self.proxy.wait_stat("identity.builtin.unattested_callers", lambda v: v >= refused_before + 1)
        refusal = [a["reason"] for a in audit_records(self.audit_path) if "unattested caller" in a.get("reason", "")]
        self.assertEqual(len(refusal), 1, refusal)
        self.assertIn("pid %d uid %d" % (pid, STRANGER_UID), refusal[0])
        # And the frontend's identity still works for a new process of its own.
        third = self.call(FRONTEND_UID, self.outbound_port, "third-owner", pid=pid)
        self.assertEqual(third["pid"], pid)
        self.assertTrue(third["ok"], third)
        self.assertEqual(len(self.records(listener="inbound", decision="allow")), 2)
        self.verify_audit_chain()

    @unittest.skipUnless(HAVE_GRPC_JS, "grpc-js not installed: run scripts/install-deps.sh test (npm ci in tests/interop)")
    def test_workload_api_answers_per_caller(self):
        self.start_sidecar(self.default_entries())
        _, first = self.fetch_x509(FRONTEND_UID)
        self.assertEqual([s["spiffe_id"] for s in first.get("svids", [])], [FRONTEND], first)
        der = base64.b64decode(first["svids"][0]["x509_svid"])
        self.assertEqual(uri_sans(der), [FRONTEND])

        p, denied = self.fetch_x509(STRANGER_UID)
        self.assertEqual(denied.get("code"), PERMISSION_DENIED, denied)
        self.assertNotIn("svids", denied)
        self.verify_audit_chain()

    @unittest.skipUnless(HAVE_GRPC_JS, "grpc-js not installed: run scripts/install-deps.sh test (npm ci in tests/interop)")
    def test_sds_answers_per_caller(self):
        """Envoy's SDS on a Unix socket: `default` is the calling process's own SVID."""
        self.start_sidecar(self.default_entries())
        out = tempfile.mkdtemp(prefix="sds-", dir=self.dir)
        os.chmod(out, 0o777)

        def fetch(uid):
            p = self.spawn(uid, [NODE, SDS_CLIENT, "unix://" + self.sds_sock, "fetch", out, "default", "ROOTCA"])
            return json.loads(self.read_line(p, timeout=15))

        frontend = fetch(FRONTEND_UID)
        self.assertEqual(frontend.get("code"), 0, frontend)
        kinds = {s["name"]: s.get("kind") for s in frontend["secrets"]}
        self.assertEqual(kinds.get("default"), "tls_certificate", frontend)
        with open(os.path.join(out, "default_chain.pem")) as f:
            leaf = ssl.PEM_cert_to_DER_cert(f.read())
        self.assertEqual(uri_sans(leaf), [FRONTEND])

        stranger = fetch(STRANGER_UID)
        self.assertNotEqual(stranger.get("code"), 0, stranger)
        self.assertNotIn("secrets", stranger)

    @unittest.skipUnless(HAVE_GRPC_JS, "grpc-js not installed: run scripts/install-deps.sh test (npm ci in tests/interop)")
    def test_workload_exit_revokes_its_svid_on_live_connections_within_one_second(self):
        self.start_sidecar(self.default_entries())
        workload, first = self.fetch_x509(FRONTEND_UID, count=1000)  # stays alive, watching
        svid = first["svids"][0]
        self.assertEqual(svid["spiffe_id"], FRONTEND)
        leaf_der = base64.b64decode(svid["x509_svid"])
        serial = serial_hex(der_serial(leaf_der))
        cert, key = os.path.join(self.dir, "frontend.pem"), os.path.join(self.dir, "frontend.key")
        with open(cert, "w") as f:
            f.write(pem("CERTIFICATE", leaf_der))
        with open(key, "w") as f:
            f.write(pem("PRIVATE KEY", base64.b64decode(svid["x509_svid_key"])))

        def handshake():
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.load_verify_locations(cadata=base64.b64decode(svid["bundle"]))
            ctx.load_cert_chain(cert, key)
            raw = socket.create_connection((harness.LOOPBACK, self.inbound_port), timeout=5)
            try:
                return ctx.wrap_socket(raw)
            except BaseException:
                raw.close()
                raise

        # This root process uses the workload's SVID directly against the inbound listener.
        conn = handshake()
        self.addCleanup(conn.close)
        self.assertEqual(uri_sans(conn.getpeercert(binary_form=True)), [BACKEND],
                         "the inbound side presents the backend's SVID")
        harness.echo_roundtrip(conn, b"before-exit")
        self.assertEqual(self.records(listener="inbound", decision="allow")[-1]["cert_serial"], serial)

        killed = time.monotonic()
        workload.send_signal(signal.SIGKILL)
        how, _ = harness.closed_by_peer(conn, timeout=3.0)
        elapsed = time.monotonic() - killed
        self.assertLess(elapsed, 1.0, "live connection closed %.3fs after the workload exited (%s)" % (elapsed, how))
        revoked = harness.wait_until(lambda: self.records(listener="inbound", decision="revoked"), 5,
                                     what="a revoked audit record")
        self.assertEqual(revoked[0]["cert_serial"], serial)
        self.assertEqual(revoked[0]["peer_spiffe_id"], FRONTEND)

        fails_before = self.inbound_stat("ssl.fail_verify_spiffe.revoked")
        with self.assertRaises((ssl.SSLError, ConnectionError)) as ctx:
            again = handshake()
            try:
                # TLS 1.3: the client learns of the server's verdict on its certificate only on read.
                again.settimeout(5)
                again.sendall(b"after-exit")
                self.assertEqual(again.recv(100), b"", "the revoked SVID carried data after the handshake")
                raise ConnectionError("closed without data")
            finally:
                again.close()
        self.assertNotIsInstance(ctx.exception, AssertionError)
        harness.wait_until(lambda: self.inbound_stat("ssl.fail_verify_spiffe.revoked") >= fails_before + 1, 5,
                           what="ssl.fail_verify_spiffe.revoked")
        self.verify_audit_chain()

    def test_rotation_under_a_load_loop_fails_no_connection(self):
        self.start_sidecar(self.default_entries(x509_svid_ttl="6s"), rotate_at=0.5)
        result = self.run_as(FRONTEND_UID, [PYTHON, self.scripts["load"], str(self.outbound_port), "10"], timeout=30)
        self.assertEqual(result["failed"], 0, result)
        self.assertGreater(result["ok"], 50, result)
        self.assertGreaterEqual(self.stat("agent.svids_renewed"), 1, "no SVID renewed during the load loop")
        serials = {r["cert_serial"] for r in self.records(listener="inbound", decision="allow")}
        self.assertGreaterEqual(len(serials), 2, "every call presented the same frontend SVID: %s" % serials)
        self.verify_audit_chain()


if __name__ == "__main__":
    unittest.main(verbosity=2)
