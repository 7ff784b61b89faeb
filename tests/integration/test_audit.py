"""The audit log: one JSON line per access decision (allow, deny, handshake_failed,
upstream_handshake_failed), each carrying prev_sha256, the SHA-256 of the line before it, so an
edited, removed or inserted line breaks the chain and `portcullis audit verify` names it.
SIGUSR1 reopens the files after logrotate moved them (the chain continues into the new file), a
restarted proxy continues the chain of the file it appends to, and a reload may not change the
audit block (the running one stays).
"""

import calendar
import json
import os
import shutil
import signal
import socket
import ssl
import tempfile
import time

import harness
import tls_support as ts
from tls_files import GENESIS, audit_lines, audit_records, leaf_serial, sha256_hex
from tls_support import TlsTestCase, principal_is, rbac_rules

TD = "example.org"
FRONTEND = "spiffe://example.org/frontend"
INTRUDER = "spiffe://example.org/intruder"
INBOUND = "spiffe://example.org/inbound"
FIELDS = ["time", "connection_id", "listener", "peer_address", "peer_spiffe_id", "cert_serial", "decision", "policy",
          "reason", "prev_sha256"]
ANY = [{"any": True}]


class AuditTestCase(TlsTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ca = cls.pki.authority(TD)
        cls.rogue_ca = cls.pki.authority("rogue", subject="/O=portcullis-it/CN=example.org root")
        cls.inbound = cls.ca.leaf(INBOUND, name="inbound")
        cls.leaves = {"frontend": cls.ca.leaf(FRONTEND, name="frontend"),
                      "intruder": cls.ca.leaf(INTRUDER, name="intruder"),
                      "rogue": cls.rogue_ca.leaf(FRONTEND, name="rogue-frontend")}
        cls.clients = {who: ts.TlsClient(cls.ca.cert, leaf) for who, leaf in cls.leaves.items()}
        cls.clients["none"] = ts.TlsClient(cls.ca.cert)

    def setUp(self):
        super().setUp()
        self.files = tempfile.mkdtemp(prefix="portcullis-it-audit-")
        self.addCleanup(shutil.rmtree, self.files, True)
        self.audit_path = os.path.join(self.files, "audit.log")
        self.echo = self.echo_server()

    def audited_config(self, audit=None, extra_listeners=()):
        """`open`: mTLS, no policy. `guarded`: mTLS with an RBAC DENY on the intruder."""
        transport = ts.downstream_tls(self.inbound, trust_domains={TD: self.ca.cert})
        rules = rbac_rules("DENY", {"block-intruder": (ANY, [principal_is(INTRUDER)])})
        cfg = harness.bootstrap(
            [ts.tls_listener("open", "echo", transport),
             ts.tls_listener("guarded", "echo", transport, filters=[ts.rbac_filter("guarded_rbac", rules)])]
            + list(extra_listeners),
            [harness.static_cluster("echo", [self.echo.port])])
        cfg["audit"] = audit or {"sinks": [{"file": {"path": self.audit_path}}, {"stdout": {}}], "queue_size": 1024}
        return cfg

    def wait_records(self, count, path=None):
        path = path or self.audit_path
        return harness.wait_until(lambda: len(audit_lines(path)) >= count and audit_records(path), 10,
                                  what="%d audit records in %s" % (count, path))

    def visit(self, proxy, listener, who):
        """Connects as `who` and returns (local address the proxy saw, outcome): "echo" when data
        flowed, "closed" when the proxy ended the connection (RBAC deny or a refused handshake)."""
        raw = socket.create_connection((harness.LOOPBACK, proxy.listener_port(listener)), timeout=5)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local = "%s:%d" % raw.getsockname()[:2]
        try:
            s = self.clients[who].ctx.wrap_socket(raw)
        except (ssl.SSLError, ConnectionError):
            raw.close()
            return local, "closed"
        with s:
            s.settimeout(5)
            try:
                s.sendall(b"hello from %s" % who.encode())
                data = s.recv(64)
            except (ssl.SSLError, ConnectionError):
                return local, "closed"
        return local, "echo" if data else "closed"

    def verify(self, path):
        p = harness.run_portcullis(["audit", "verify", path])
        return p.returncode, p.stdout + p.stderr

    def assertChain(self, lines, first_prev=GENESIS):
        """Checks the chain ourselves: line 1 follows `first_prev`, every other line the one
        before it."""
        self.assertTrue(lines, "no audit lines")
        prevs = [json.loads(line)["prev_sha256"] for line in lines]
        self.assertEqual(prevs[0], first_prev, "line 1's prev_sha256")
        for i in range(1, len(lines)):
            self.assertEqual(prevs[i], sha256_hex(lines[i - 1]), "line %d does not chain to line %d" % (i + 1, i))


class AuditRecordsTest(AuditTestCase):
    def test_each_decision_is_one_chained_record_with_its_fields(self):
        proxy = self.start_proxy(self.audited_config())
        frontend, intruder = leaf_serial(self.leaves["frontend"]), leaf_serial(self.leaves["intruder"])
        visits = [("open", "frontend", "echo"), ("guarded", "intruder", "closed"), ("open", "none", "closed"),
                  ("open", "rogue", "closed"), ("guarded", "frontend", "echo")]
        addresses = []
        for n, (listener, who, outcome) in enumerate(visits, 1):
            local, got = self.visit(proxy, listener, who)
            self.assertEqual(got, outcome, "%s on %s" % (who, listener))
            addresses.append(local)
            self.wait_records(n)  # one at a time, so the records are in visit order
        lines = audit_lines(self.audit_path)
        records = audit_records(self.audit_path)
        self.assertEqual(len(records), len(visits), lines)
        for r in records:
            self.assertEqual(list(r), FIELDS, "field names and order")
            self.assertRegex(r["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
            stamp = calendar.timegm(time.strptime(r["time"][:19], "%Y-%m-%dT%H:%M:%S"))
            self.assertLess(abs(stamp - time.time()), 120, "time %s is not now (UTC)" % r["time"])
            self.assertIsInstance(r["connection_id"], int)
        self.assertEqual(len({r["connection_id"] for r in records}), len(records), "connection ids repeat")
        self.assertEqual([r["peer_address"] for r in records], addresses)
        expected = [
            # listener, peer_spiffe_id, cert_serial, decision, policy
            ("open", FRONTEND, frontend, "allow", ""),
            ("guarded", INTRUDER, intruder, "deny", "block-intruder"),
            ("open", "", "", "handshake_failed", ""),
            ("open", "", "", "handshake_failed", ""),
            ("guarded", FRONTEND, frontend, "allow", ""),
        ]
        self.assertEqual([(r["listener"], r["peer_spiffe_id"], r["cert_serial"], r["decision"], r["policy"])
                          for r in records], expected)
        reasons = [r["reason"] for r in records]
        self.assertEqual(reasons[0], "no policy on this listener")
        self.assertEqual(reasons[1], "rbac DENY: policy matched")
        self.assertTrue(reasons[2].startswith("no_certificate: "), reasons[2])
        self.assertTrue(reasons[3].startswith("unknown_ca: " + FRONTEND), reasons[3])  # the unverified claim
        self.assertEqual(reasons[4], "rbac DENY: no policy matched")
        self.assertChain(lines)
        self.assertEqual(proxy.stat("audit.written"), len(visits))
        self.assertEqual(proxy.stat("audit.dropped"), 0)

        rc, out = self.verify(self.audit_path)
        self.assertEqual((rc, out), (0, "OK: %d records, hash chain intact\n" % len(visits)))
        # The stdout sink carries the same lines (logs go to stderr, so stdout is pure JSON lines).
        self.assertEqual(audit_lines(proxy.stdout_path), lines)

    def test_upstream_handshake_failure_is_recorded_by_the_outbound(self):
        """An outbound whose cluster refuses the inbound's SVID (SAN matcher) records the allowed
        downstream connection, then upstream_handshake_failed on the same connection."""
        inbound = self.start_proxy(harness.bootstrap(
            [ts.tls_listener("in", "echo", ts.downstream_tls(self.inbound, trust_domains={TD: self.ca.cert}))],
            [harness.static_cluster("echo", [self.echo.port])]))
        transport = ts.upstream_tls(self.leaves["frontend"], trust_domains={TD: self.ca.cert},
                                    san_matchers=[("URI", {"exact": "spiffe://example.org/someone-else"})])
        cfg = harness.bootstrap([harness.tcp_proxy_listener("out", "mesh")],
                                [ts.tls_cluster("mesh", [inbound.listener_port("in")], transport)])
        cfg["audit"] = {"sinks": [{"file": {"path": self.audit_path}}]}
        outbound = self.start_proxy(cfg)
        s = self.connect(outbound.listener_port("out"))
        local = "%s:%d" % s.getsockname()[:2]
        s.sendall(b"hello")
        self.assertEqual(harness.closed_by_peer(s)[1], b"")
        allow, failed = self.wait_records(2)
        self.assertEqual((allow["decision"], allow["listener"], allow["peer_address"], allow["peer_spiffe_id"]),
                         ("allow", "out", local, ""))
        self.assertEqual((failed["decision"], failed["connection_id"], failed["listener"], failed["peer_address"]),
                         ("upstream_handshake_failed", allow["connection_id"], "out", local))
        self.assertTrue(failed["reason"].startswith("san_mismatch: "), failed["reason"])
        self.assertEqual(self.verify(self.audit_path)[0], 0)


class AuditChainTest(AuditTestCase):
    def make_records(self, proxy, n, who="frontend"):
        have = len(audit_lines(self.audit_path))
        for i in range(n):
            self.assertEqual(self.visit(proxy, "guarded", who)[1], "echo" if who != "intruder" else "closed")
        return self.wait_records(have + n)

    def tampered_copy(self, name, edit):
        lines = audit_lines(self.audit_path)
        path = os.path.join(self.files, name)
        with open(path, "w") as f:
            f.write("".join(line + "\n" for line in edit(list(lines))))
        return path

    def test_verify_names_the_edited_or_missing_line(self):
        proxy = self.start_proxy(self.audited_config())
        self.make_records(proxy, 2, "frontend")
        self.make_records(proxy, 1, "intruder")
        self.make_records(proxy, 2, "frontend")
        self.assertEqual(self.verify(self.audit_path), (0, "OK: 5 records, hash chain intact\n"))

        def edit_line_2(lines):  # line 2 now blames the intruder
            self.assertIn(FRONTEND, lines[1])
            lines[1] = lines[1].replace(FRONTEND, INTRUDER)
            return lines

        def edit_line_3(lines):  # the intruder was let in, says line 3 now
            self.assertIn('"decision":"deny"', lines[2])
            lines[2] = lines[2].replace('"decision":"deny"', '"decision":"allow"', 1)
            return lines

        cases = {
            "edited line 3": (edit_line_3, 4, "line 3 was changed"),
            "edited line 2": (edit_line_2, 3, "line 2 was changed"),
            "deleted line 2": (lambda lines: lines[:1] + lines[2:], 2, "before line 2"),
            "deleted line 4": (lambda lines: lines[:3] + lines[4:], 4, "before line 4"),
            "inserted copy of line 1": (lambda lines: lines[:2] + lines[:1] + lines[2:], 3, "before line 3"),
            "swapped lines 3 and 4": (lambda lines: lines[:2] + [lines[3], lines[2]] + lines[4:], 3, "before line 3"),
        }
        for name, (edit, bad_line, says) in cases.items():
            with self.subTest(name):
                path = self.tampered_copy(name.replace(" ", "_") + ".log", edit)
                rc, out = self.verify(path)
                self.assertEqual(rc, 1, out)
                self.assertTrue(out.startswith("%s:%d: hash chain broken" % (path, bad_line)), out)
                self.assertIn(says, out)
        path = self.tampered_copy("not_json.log", lambda lines: lines[:2] + ["{oops"] + lines[2:])
        self.assertEqual(self.verify(path), (1, "%s:3: not an audit record\n" % path))
        self.assertEqual(self.verify(self.audit_path)[0], 0, "the original is untouched")

    def test_sigusr1_after_logrotate_continues_the_chain_in_a_new_file(self):
        proxy = self.start_proxy(self.audited_config())
        self.make_records(proxy, 3)
        rotated = self.audit_path + ".1"
        os.rename(self.audit_path, rotated)
        self.make_records_into(proxy, rotated, 1)  # still the open file until SIGUSR1
        proxy.signal(signal.SIGUSR1)
        proxy.wait_stat("audit.reopened", 1)
        self.assertTrue(os.path.exists(self.audit_path), "SIGUSR1 did not create a new file")
        self.make_records(proxy, 2)
        old, new = audit_lines(rotated), audit_lines(self.audit_path)
        self.assertEqual(len(old), 4)
        self.assertEqual(len(new), 2)
        self.assertChain(new, first_prev=sha256_hex(old[-1]))
        self.assertChain(old + new)
        self.assertEqual(self.verify(rotated), (0, "OK: 4 records, hash chain intact\n"))
        self.assertEqual(self.verify(self.audit_path), (0, "OK: 2 records, hash chain intact\n"))
        self.assertEqual(proxy.stat("audit.write_errors"), 0)

    def make_records_into(self, proxy, path, n):
        have = len(audit_lines(path))
        for _ in range(n):
            self.assertEqual(self.visit(proxy, "open", "frontend")[1], "echo")
        self.wait_records(have + n, path)

    def test_restarted_proxy_continues_the_chain_of_its_file(self):
        cfg = self.audited_config()
        first = self.start_proxy(cfg)
        self.make_records(first, 3)
        self.assertEqual(first.stop(), 0)
        before = audit_lines(self.audit_path)
        self.assertEqual(len(before), 3)
        second = self.start_proxy(cfg)
        self.make_records(second, 2, "intruder")
        lines = audit_lines(self.audit_path)
        self.assertEqual(lines[:3], before, "the restart rewrote old records")
        self.assertChain(lines)
        self.assertEqual(self.verify(self.audit_path), (0, "OK: 5 records, hash chain intact\n"))
        self.assertEqual(second.stat("audit.written"), 2)

    def test_reload_that_changes_the_audit_block_is_refused(self):
        proxy = self.start_proxy(self.audited_config())
        self.make_records(proxy, 1)
        elsewhere = os.path.join(self.files, "elsewhere.log")
        changes = {
            "another path": {"sinks": [{"file": {"path": elsewhere}}, {"stdout": {}}], "queue_size": 1024},
            "stdout sink dropped": {"sinks": [{"file": {"path": self.audit_path}}], "queue_size": 1024},
            "queue size": {"sinks": [{"file": {"path": self.audit_path}}, {"stdout": {}}], "queue_size": 2048},
        }
        for n, (name, audit) in enumerate(changes.items(), 1):
            with self.subTest(name):
                proxy.write_config(self.audited_config(audit=audit))
                proxy.signal(signal.SIGHUP)
                proxy.wait_stat("server.config_reload_failure", n)
                self.assertEqual(proxy.stat("server.config_reload_success"), 0)
                self.make_records(proxy, 1)  # still written where the running config says
        self.assertFalse(os.path.exists(elsewhere))
        with open(proxy.stderr_path) as f:
            self.assertEqual(f.read().count("the audit block cannot change on reload"), len(changes))

        # The same audit block with another listener added reloads, and the chain goes on.
        extra = harness.tcp_proxy_listener("plain", "echo")
        proxy.write_config(self.audited_config(extra_listeners=[extra]))
        proxy.signal(signal.SIGHUP)
        proxy.wait_stat("server.config_reload_success", 1)
        s = self.connect(proxy.listener_port("plain"))
        harness.echo_roundtrip(s, b"plaintext is audited too")
        records = self.wait_records(1 + len(changes) + 1)
        self.assertEqual((records[-1]["listener"], records[-1]["decision"], records[-1]["peer_spiffe_id"]),
                         ("plain", "allow", ""))
        self.assertEqual(self.verify(self.audit_path), (0, "OK: %d records, hash chain intact\n" % len(records)))

    def test_unopenable_audit_file_refuses_to_start(self):
        missing_dir = os.path.join(self.files, "no", "such", "dir.log")
        cfg = self.audited_config(audit={"sinks": [{"file": {"path": missing_dir}}]})
        p = harness.Proxy(cfg)
        self.addCleanup(p.close)
        with self.assertRaises(harness.ProxyExited):
            p.start()
        self.assertEqual(p.returncode, 3)
        self.assertIn("cannot open audit log", p.log())


if __name__ == "__main__":
    harness.main()
