"""Sidecars against a standalone `portcullis authority`, all real binaries: join-token node
attestation (and a token that cannot be used twice); the authority killed with -9 and restarted
(entries intact, the sidecar's update stream reconnects, new workloads get SVIDs); the authority
down for longer than a rotation (the sidecar keeps serving its unexpired SVIDs, then fails closed at
their expiry, and recovers when the authority is back); a workload exit behind one sidecar reaching
another sidecar's revocation set within a second.

Workloads are Debian's /usr/bin/python3 under other uids (setpriv): the echo app as uid 1002
(spiffe://example.org/backend), callers as uid 1001 (spiffe://example.org/frontend). A caller is a
long-lived driver process taking commands on stdin, because a workload's SVIDs are revoked when
its last process exits: keeping one SVID across several calls needs one process making them."""

import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness
from harness import IntegrationTestCase
from test_authority import Authority

TD = "example.org"
FRONTEND, BACKEND = "spiffe://%s/frontend" % TD, "spiffe://%s/backend" % TD
CALLER_UID, APP_UID, NEWCOMER_UID, LATECOMER_UID = 1001, 1002, 1003, 1004
SETPRIV = shutil.which("setpriv")
PYTHON = "/usr/bin/python3"
TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.%sTlsContext"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"

# The app behind the inbound listener: echoes, on a port it picks and prints.
ECHO_APP = r"""
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(64)
print(s.getsockname()[1], flush=True)
def h(c):
    while True:
        d = c.recv(65536)
        if not d: break
        c.sendall(d)
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=h, args=(c,), daemon=True).start()
"""

# A caller workload: one JSON line of answer per command line.
#   call PORT  -> {"ok": true} when "hello" came back through the proxies, else what happened
#   hold PORT  -> a call whose connection is handed to a forked child that waits for the peer to
#                 close it; {"child": pid}. The child never connects itself, so it is not a
#                 process the sidecar attested: when this driver exits, the SVID dies with it.
DRIVER = r"""
import json, os, socket, sys
def call(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"hello")
        got = s.recv(100)
    except OSError as e:
        s.close()
        return None, {"ok": False, "detail": type(e).__name__}
    if got != b"hello":
        s.close()
        return None, {"ok": False, "detail": "got %r" % got}
    return s, {"ok": True}
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "call":
        s, out = call(int(arg))
        if s: s.close()
    elif cmd == "hold":
        s, out = call(int(arg))
        if s:
            pid = os.fork()
            if pid == 0:
                s.settimeout(30)
                try:
                    while s.recv(100): pass
                except OSError:
                    pass
                os._exit(0)
            s.close()
            out["child"] = pid
    else:
        break
    print(json.dumps(out), flush=True)
"""


def as_uid(uid, code):
    return [SETPRIV, "--reuid", str(uid), "--regid", str(uid), "--clear-groups", PYTHON, "-c", code]


class Sidecar(harness.Proxy):
    """A sidecar that may be started without waiting for /ready 200 (a node that cannot attest)."""

    _accept_any_ready = False

    def start_unready(self, timeout=10.0):
        self._accept_any_ready = True
        try:
            return self.start(timeout)
        finally:
            self._accept_any_ready = False

    def ready_status(self):
        status = super().ready_status()
        return 200 if self._accept_any_ready and status is not None else status

    def ready(self):
        try:
            return self.get("/ready", timeout=2.0)
        except OSError as e:
            return None, str(e)


class Caller:
    """A long-lived uid-1001 workload making calls on command."""

    def __init__(self, test, uid=CALLER_UID):
        self.proc = subprocess.Popen(as_uid(uid, DRIVER), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        test.addCleanup(self.close)

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise AssertionError("caller driver exited (rc %s)" % self.proc.poll())
        return json.loads(answer)

    def call(self, port):
        return self.command("call %d" % port)

    def exit(self):
        self.proc.stdin.close()
        return self.proc.wait(10)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass


@unittest.skipUnless(os.geteuid() == 0 and SETPRIV and os.access(PYTHON, os.X_OK),
                     "needs root, setpriv and /usr/bin/python3 to run workloads under other uids")
class AuthoritySidecarTest(IntegrationTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="portcullis-it-authsc-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)
        self.data_dir = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "admin.sock")
        self.bundle_path = os.path.join(self.dir, "bundle.pem")
        self.authority_port = 0
        self.authority = None

    # -- authority ----------------------------------------------------------------------------

    def start_authority(self, **extra):
        config = {
            "authority": {
                "trust_domain": TD,
                "listen": harness.socket_address(self.authority_port),
                "admin_socket": {"pipe": {"path": self.sock}},
                "data_dir": self.data_dir,
                "node_attestors": {"join_token": {}},
                **extra,
            },
            "admin": {"address": harness.socket_address(0)},
        }
        authority = Authority(config)
        self.addCleanup(authority.close)
        self.addCleanup(self._dump_log_if_failed, authority)
        authority.start(timeout=20.0)
        self.authority = authority
        # A restart must come back where the sidecars look for it.
        self.authority_port = authority.listen_address()[1]
        return authority

    def cli(self, *args):
        return subprocess.run([harness.portcullis_bin()] + list(args) + ["--admin-socket", self.sock],
                              capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)

    def ok(self, *args):
        p = self.cli(*args)
        self.assertEqual(p.returncode, 0, "%s failed: %s%s" % (args, p.stdout, p.stderr))
        return p.stdout

    def bootstrap(self):
        with open(self.bundle_path, "w") as f:
            f.write(self.ok("bundle", "show", "--format", "pem"))

    def join_token(self):
        return json.loads(self.ok("token", "generate", "--ttl", "10m", "--format", "json"))

    def create_entry(self, spiffe_id, uid, *extra):
        return json.loads(self.ok("entry", "create", "--spiffe-id", spiffe_id, "--selector", "unix:uid:%d" % uid,
                                  "--format", "json", *extra))

    def entries(self, *extra):
        """frontend (uid 1001) and backend (uid 1002), for any attested node."""
        return [self.create_entry(FRONTEND, CALLER_UID, *extra), self.create_entry(BACKEND, APP_UID, *extra)]

    # -- sidecars and workloads ---------------------------------------------------------------

    def start_echo_app(self):
        proc = subprocess.Popen(as_uid(APP_UID, ECHO_APP), stdout=subprocess.PIPE, text=True)

        def stop():
            proc.kill()
            proc.wait()
            proc.stdout.close()

        self.addCleanup(stop)
        return int(proc.stdout.readline())

    def sidecar_config(self, token, audit_path, outbound_to=None, inbound_port=None, app_port=None):
        """outbound (port 0, `default` = the calling process) → mTLS → outbound_to; inbound
        (`default` = the app on app_port, RBAC: frontend only) → app_port."""
        listeners, clusters = [], []
        if outbound_to is not None:
            listeners.append(harness.tcp_proxy_listener("outbound", "to_backend", stat_prefix="out"))
            cluster = harness.static_cluster("to_backend", [outbound_to])
            cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": TLS_TYPE % "Upstream",
                "common_tls_context": {
                    "tls_certificate_sds_secret_configs": [{"name": "default"}],
                    "combined_validation_context": {
                        "default_validation_context": {"match_typed_subject_alt_names": [
                            {"san_type": "URI", "matcher": {"exact": BACKEND}}]},
                        "validation_context_sds_secret_config": {"name": "ROOTCA"}}}}}
            clusters.append(cluster)
        if app_port is not None:
            inbound = harness.tcp_proxy_listener("inbound", "backend_app", port=inbound_port or 0, stat_prefix="in")
            chain = inbound["filter_chains"][0]
            chain["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": TLS_TYPE % "Downstream",
                "require_client_certificate": True,
                "common_tls_context": {
                    "tls_certificate_sds_secret_configs": [{"name": "default"}],
                    "validation_context_sds_secret_config": {"name": "ROOTCA"}}}}
            chain["filters"].insert(0, {"name": "envoy.filters.network.rbac", "typed_config": {
                "@type": RBAC_TYPE, "stat_prefix": "inbound",
                "rules": {"action": "ALLOW", "policies": {"frontend-may-call-backend": {
                    "permissions": [{"any": True}],
                    "principals": [{"authenticated": {"principal_name": {"exact": FRONTEND}}}]}}}}})
            listeners.append(inbound)
            clusters.append(harness.static_cluster("backend_app", [app_port]))
        config = harness.bootstrap(listeners, clusters)
        config["audit"] = {"sinks": [{"file": {"path": audit_path}}]}
        config["identity"] = {
            "trust_domain": TD,
            "authority": {"address": harness.socket_address(self.authority_port),
                          "bootstrap_bundle": {"filename": self.bundle_path}},
            "node_attestation": {"join_token": {"token": token}},
            "workload_attestation": {"kernel": {}},
            "rotate_at": 0.5,
            # Quick reconnects keep the restart scenarios short; the defaults are tested elsewhere.
            "limits": {"backoff_initial": "100ms", "backoff_max": "500ms"},
        }
        return config

    def start_sidecar(self, config, ready=True):
        sidecar = Sidecar(config)
        self.addCleanup(sidecar.close)
        self.addCleanup(self._dump_log_if_failed, sidecar)
        if ready:
            sidecar.start(timeout=15.0)
        else:
            sidecar.start_unready()
        return sidecar

    def single_sidecar(self, token, name="a"):
        """The one-host topology: caller → outbound → mTLS → inbound → echo app (uid 1002)."""
        app_port = self.start_echo_app()
        inbound_port = harness.closed_port()
        audit = os.path.join(self.dir, "audit-%s.log" % name)
        sidecar = self.start_sidecar(self.sidecar_config(token, audit, outbound_to=inbound_port,
                                                         inbound_port=inbound_port, app_port=app_port))
        sidecar.audit_path = audit
        return sidecar, sidecar.listener_port("outbound")

    def audit_records(self, sidecar):
        try:
            with open(sidecar.audit_path) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def wait_records(self, sidecar, predicate, what):
        """The sidecar's audit records matching predicate, once there are any (the log is written
        asynchronously)."""
        return harness.wait_until(lambda: [r for r in self.audit_records(sidecar) if predicate(r)], what=what)

    def wait_call_ok(self, caller, port, timeout=10.0):
        harness.wait_until(lambda: caller.call(port)["ok"], timeout=timeout, interval=0.1,
                           what="a call through the sidecar to succeed")

    # -----------------------------------------------------------------------------------------

    def test_join_token_attests_the_node_once(self):
        authority = self.start_authority()
        self.bootstrap()
        self.entries()
        token = self.join_token()
        sidecar, port = self.single_sidecar(token["token"])
        self.assertEqual(sidecar.stat("agent.node_attestations"), 1)
        self.assertEqual(sidecar.stat("agent.authority_reachable"), 1)
        node_id = "spiffe://%s/node/join_token/%s" % (TD, token["token_id"])
        self.wait_records(sidecar, lambda r: r["decision"] == "node_attested" and r["peer_spiffe_id"] == node_id,
                          "the node_attested record")

        caller = Caller(self)
        self.assertEqual(caller.call(port), {"ok": True})
        self.assertEqual(sidecar.stat("agent.svids_issued"), 2, "frontend for the caller, backend for the app")
        harness.wait_until(lambda: {r["peer_spiffe_id"] for r in self.audit_records(sidecar)
                                 if r["decision"] == "svid_issued"} == {FRONTEND, BACKEND},
                           what="svid_issued records for frontend and backend")

        # The same token on a second sidecar: refused by the authority, and that sidecar says so.
        second = self.start_sidecar(self.sidecar_config(token["token"], os.path.join(self.dir, "audit-b.log"),
                                                        app_port=self.start_echo_app()), ready=False)
        def not_ready_with_reason():
            status, body = second.ready()
            return body if status == 503 and ":" in body else None
        body = harness.wait_until(not_ready_with_reason, what="the second sidecar's NOT_READY with a reason")
        self.assertIn("waiting for node attestation: ", body)
        self.assertIn("join token", body.lower())
        self.assertEqual(second.stat("agent.node_attestations"), 0)
        self.assertGreaterEqual(authority.stat("authority.node_attest_denied"), 1)
        self.assertEqual(authority.stat("authority.node_attested"), 1)
        self.assertEqual(sidecar.ready()[0], 200, "the first node is unaffected")
        self.assertEqual(caller.call(port), {"ok": True})


    def test_authority_kill9_and_restart(self):
        authority = self.start_authority()
        self.bootstrap()
        ids = sorted(e["id"] for e in self.entries() + [self.create_entry(FRONTEND, LATECOMER_UID)])
        sidecar, port = self.single_sidecar(self.join_token()["token"])
        # One revocation before the crash: it must survive in the store, since the reconnected
        # stream starts with the full set and replaces the sidecar's.
        first = Caller(self)
        self.assertEqual(first.call(port), {"ok": True})
        self.assertEqual(first.exit(), 0)
        sidecar.wait_stat("revocation.serials", 1)
        caller = Caller(self)
        self.assertEqual(caller.call(port), {"ok": True})
        harness.wait_until(lambda: authority.stat("authority.watchers") == 1, what="the sidecar's update stream")
        reconnects = sidecar.stat("agent.stream_reconnects")
        updates = sidecar.stat("revocation.updates")

        authority.proc.kill()
        authority.proc.wait()
        sidecar.wait_stat("agent.authority_reachable", 0)
        status, body = sidecar.ready()
        self.assertEqual(status, 200, body)
        self.assertIn("authority unreachable since", body)
        self.assertEqual(caller.call(port), {"ok": True}, "a caller holding SVIDs does not need the authority")
        # Its exit now cannot be told to the authority yet: the revocation waits for it.
        self.assertEqual(caller.exit(), 0)
        sidecar.wait_stat("agent.svids_revoked_on_exit", 2)
        self.assertEqual(sidecar.stat("revocation.serials"), 1)
        # A workload first seen now cannot get SVIDs: refused, not left hanging or served a fallback.
        latecomer = Caller(self, uid=LATECOMER_UID)
        self.assertEqual(latecomer.call(port)["ok"], False)
        denies = self.wait_records(sidecar, lambda r: r["decision"] == "deny", "the latecomer's refusal")
        self.assertEqual(len(denies), 1, denies)
        self.assertEqual(denies[0]["listener"], "outbound")
        self.assertRegex(denies[0]["reason"], r"^unattested caller: pid \d+ uid %d " % LATECOMER_UID)

        authority = self.start_authority()
        self.assertEqual(sorted(e["id"] for e in json.loads(self.ok("entry", "list", "--format", "json"))), ids,
                         "entries survive kill -9")
        sidecar.wait_stat("agent.stream_reconnects", lambda v: v > reconnects)
        sidecar.wait_stat("agent.authority_reachable", 1)
        harness.wait_until(lambda: authority.stat("authority.watchers") == 1, what="the stream on the new authority")
        harness.wait_until(lambda: sidecar.ready() == (200, "LIVE\n"), what="/ready without a reason")
        self.assertEqual(sidecar.stat("agent.node_attestations"), 1, "the node SVID outlives the restart")
        # The exit above, delivered late and pushed back, next to the one from before the crash.
        sidecar.wait_stat("revocation.serials", 2)
        self.assertEqual(authority.stat("authority.revocations"), 1)
        self.assertGreater(sidecar.stat("revocation.updates"), updates)
        self.wait_call_ok(latecomer, port)  # the same process, asking again once the authority is back

        # A workload the sidecar never saw, with an entry created after the restart.
        self.create_entry(FRONTEND, NEWCOMER_UID)
        issued = sidecar.stat("agent.svids_issued")
        self.assertEqual(Caller(self, uid=NEWCOMER_UID).call(port), {"ok": True})
        self.assertEqual(sidecar.stat("agent.svids_issued"), issued + 1)
        self.assertEqual(Caller(self).call(port), {"ok": True}, "uid 1001 again, in a new process")
        self.assertEqual(sidecar.stat("agent.svids_issued"), issued + 2)
        self.assertEqual(authority.stat("authority.workload_svids_issued"), 3)
        self.assertEqual(sidecar.stat("revocation.serials"), 2)

    def test_authority_down_longer_than_a_rotation(self):
        ttl = 4  # seconds: rotation at 2 s (rotate_at 0.5); the entry TTL has no floor, the CA's default has 60 s
        authority = self.start_authority()
        self.bootstrap()
        self.entries("--x509-svid-ttl", "%ds" % ttl)
        sidecar, port = self.single_sidecar(self.join_token()["token"])
        caller = Caller(self)
        self.assertEqual(caller.call(port), {"ok": True})
        # Both SVIDs (the caller's and the app's) renewed once: the authority goes down with a
        # full lifetime ahead of them, so their next rotation falls in the outage.
        sidecar.wait_stat("agent.svids_renewed", lambda v: v >= 2, timeout=ttl * 2)
        authority.proc.kill()
        authority.proc.wait()

        sidecar.wait_stat("agent.authority_reachable", 0)
        def failed_renewals():
            return [r for r in self.audit_records(sidecar) if r["decision"] == "svid_request_failed"]
        harness.wait_until(lambda: len(failed_renewals()) >= 2, timeout=ttl, interval=0.05,
                           what="both renewals failing while the authority is down")
        self.assertEqual(caller.call(port), {"ok": True}, "served with the unexpired SVID after a missed rotation")
        status, body = sidecar.ready()
        self.assertEqual(status, 200, body)
        valid_until = re.search(r"authority unreachable since \S+, SVIDs valid until (\S+)", body)
        self.assertTrue(valid_until, body)
        expiry = datetime.datetime.strptime(valid_until.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()  # whole seconds, rounded down

        # Calls keep working until the SVIDs expire, then this sidecar refuses them.
        harness.wait_until(lambda: not caller.call(port)["ok"], timeout=ttl + 3, interval=0.1,
                           what="the first refused call")
        self.assertGreaterEqual(sidecar.stat("agent.svids_expired"), 1)
        denies = self.wait_records(sidecar, lambda r: r["decision"] == "deny", "the refusal's audit record")
        self.assertEqual(len(denies), 1, denies)
        # Whichever SVID's expiry came first: the caller's (outbound) or the app's (inbound).
        self.assertIn(denies[0]["listener"], ("outbound", "inbound"))
        self.assertTrue(denies[0]["reason"].startswith("unattested caller: "), denies[0])
        denied_at = datetime.datetime.strptime(denies[0]["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        self.assertGreaterEqual(denied_at, expiry, "refused only once the SVIDs expired")
        sidecar.wait_stat("agent.svids_expired", 2, timeout=2.0)
        # Refused before any handshake: an expired certificate never reached the inbound side.
        self.assertEqual(sidecar.stat(sidecar.listener_stat_prefix("inbound") + "ssl.fail_verify_spiffe.expired"), 0)
        self.assertEqual(sidecar.stat("cluster.to_backend.ssl.fail_verify_spiffe.expired"), 0)
        self.assertEqual(caller.call(port)["ok"], False)
        # Still ready (the node SVID is valid), but not as if every SVID were.
        def ready_naming_the_expired():
            status, body = sidecar.ready()
            return (status, body) if "2 workload(s) expired" in body else None
        status, body = harness.wait_until(ready_naming_the_expired, what="/ready naming the expired workloads")
        self.assertEqual(status, 200, body)
        self.assertRegex(body, r"authority unreachable since \S+, SVIDs valid until \S+; the SVIDs of 2 workload\(s\) "
                               r"expired meanwhile: their callers are refused until the authority is back")

        self.start_authority()
        self.wait_call_ok(caller, port)
        self.assertEqual(sidecar.stat("agent.authority_reachable"), 1)
        self.assertEqual(sidecar.stat("agent.svids_issued"), 4, "both workloads issued again")
        harness.wait_until(lambda: sidecar.ready() == (200, "LIVE\n"), what="/ready without a reason")

    def test_workload_exit_reaches_the_other_sidecar_within_a_second(self):
        self.start_authority()
        self.bootstrap()
        self.entries()
        # Two nodes: caller → A (outbound) → mTLS → B (inbound) → echo app.
        b_audit, a_audit = os.path.join(self.dir, "audit-b.log"), os.path.join(self.dir, "audit-a.log")
        b = self.start_sidecar(self.sidecar_config(self.join_token()["token"], b_audit, app_port=self.start_echo_app()))
        b.audit_path = b_audit
        a = self.start_sidecar(self.sidecar_config(self.join_token()["token"], a_audit,
                                                   outbound_to=b.listener_port("inbound")))
        a.audit_path = a_audit
        port = a.listener_port("outbound")

        caller = Caller(self)
        held = caller.command("hold %d" % port)
        self.assertTrue(held["ok"], held)
        child = held["child"]
        self.addCleanup(lambda: os.path.exists("/proc/%d" % child) and os.kill(child, signal.SIGKILL))
        issued = self.wait_records(a, lambda r: r["decision"] == "svid_issued", "the caller's svid_issued record")
        self.assertEqual([r["peer_spiffe_id"] for r in issued], [FRONTEND])
        serial = issued[0]["cert_serial"]
        seen_by_b = self.wait_records(b, lambda r: r["listener"] == "inbound" and r["decision"] == "allow",
                                      "B's record of the caller's connection")
        self.assertEqual([r["cert_serial"] for r in seen_by_b], [serial], "B authenticated the caller's SVID")
        self.assertEqual(b.stat("revocation.serials"), 0)
        self.assertEqual(b.stat("revocation.connections_closed"), 0)

        started = time.monotonic()
        self.assertEqual(caller.exit(), 0)
        b.wait_stat("revocation.serials", 1, timeout=5.0)
        propagated = time.monotonic() - started
        b.wait_stat("revocation.connections_closed", 1, timeout=5.0)
        closed = time.monotonic() - started
        print("\n  [measured] workload exit -> serial in B's revocation set: %.0f ms; B closed its live connection: %.0f ms"
              % (propagated * 1000, closed * 1000))
        self.assertLess(propagated, 1.0)
        self.assertLess(closed, 1.0)
        self.assertEqual(a.stat("agent.svids_revoked_on_exit"), 1)
        revoked_by_a = self.wait_records(a, lambda r: r["decision"] == "svid_revoked", "A's svid_revoked record")
        self.assertEqual([(r["cert_serial"], r["reason"]) for r in revoked_by_a], [(serial, "workload exited")])
        revoked = self.wait_records(b, lambda r: r["decision"] == "revoked", "B's record of the connection it closed")
        self.assertEqual([(r["listener"], r["cert_serial"]) for r in revoked], [("inbound", serial)])

        def exited(pid):
            try:
                with open("/proc/%d/stat" % pid) as f:
                    return f.read().rpartition(")")[2].split()[0] == "Z"
            except FileNotFoundError:
                return True
        harness.wait_until(lambda: exited(child), what="the connection's holder to see it closed")

if __name__ == "__main__":
    harness.main()
