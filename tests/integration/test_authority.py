"""`portcullis authority` and its operator commands against the real binary: join tokens and
registration entries created, listed, shown, updated and deleted through the CLI over the admin
socket; the bundle in PEM and SPIFFE form (checked by openssl and against each other); the
Authority's TLS server presenting spiffe://<td>/portcullis/authority under that bundle; the admin
socket refusing a uid that is not an admin (the CLI run under setpriv); kill -9 and a restart
keeping entries and the CA; SIGTERM exiting 0; config errors with file:line:column."""

import base64
import json
import os
import shutil
import signal
import ssl
import socket
import subprocess
import tempfile
import unittest

import harness
from harness import IntegrationTestCase

TD = "example.org"
EXIT_OK, EXIT_BAD_CONFIG, EXIT_USAGE, EXIT_STARTUP = 0, 1, 2, 3
EXIT_UNREACHABLE, EXIT_REFUSED = 5, 6
ADMIN_UID = 1235      # listed in admin_uids
STRANGER_UID = 1234   # not listed
SETPRIV = shutil.which("setpriv")


class Authority(harness.Proxy):
    """One `portcullis authority` process; ready when its HTTP admin says /ready 200."""

    def __init__(self, config, **kw):
        super().__init__(config, **kw)
        self.listen_path = os.path.join(self.dir, "listen_address")
        self.args = [harness.portcullis_bin(), "authority", "-c", self.config_path,
                     "--admin-address-path", self.admin_path, "--listen-address-path", self.listen_path,
                     "--concurrency", "2", "--drain-time-s", "2", "-l", "debug"]

    def listen_address(self):
        with open(self.listen_path) as f:
            host, _, port = f.read().strip().rpartition(":")
        return host, int(port)


class AuthorityTest(IntegrationTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="portcullis-it-authority-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        os.chmod(self.dir, 0o755)  # other uids must reach the admin socket (its own checks apply)
        self.data_dir = os.path.join(self.dir, "data")
        self.sock = os.path.join(self.dir, "admin.sock")
        self.audit_path = os.path.join(self.dir, "audit.log")

    def config(self):
        return {
            "authority": {
                "trust_domain": TD,
                "listen": harness.socket_address(0),
                "admin_socket": {"pipe": {"path": self.sock, "mode": 0o666}},
                "admin_uids": [ADMIN_UID],
                "data_dir": self.data_dir,
                "default_x509_svid_ttl": "1h",
                **getattr(self, "extra_authority", {}),
            },
            "admin": {"address": harness.socket_address(0)},
            "audit": {"sinks": [{"file": {"path": self.audit_path}}]},
        }

    def start_authority(self):
        authority = Authority(self.config())
        self.addCleanup(authority.close)
        self.addCleanup(self._dump_log_if_failed, authority)
        authority.start(timeout=20.0)
        return authority

    def cli(self, *args, uid=None):
        cmd = [harness.portcullis_bin()] + list(args) + ["--admin-socket", self.sock]
        if uid is not None:
            cmd = [SETPRIV, "--reuid", str(uid), "--regid", str(uid), "--clear-groups"] + cmd
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        return p

    def ok(self, *args, **kw):
        p = self.cli(*args, **kw)
        self.assertEqual(p.returncode, EXIT_OK, "%s failed: %s%s" % (args, p.stdout, p.stderr))
        return p.stdout

    def audit_records(self):
        try:
            with open(self.audit_path) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def create_entry(self, spiffe_id, *selectors, extra=()):
        args = ["entry", "create", "--spiffe-id", spiffe_id, "--format", "json"]
        for s in selectors:
            args += ["--selector", s]
        return json.loads(self.ok(*args, *extra))

    # -----------------------------------------------------------------------------------------

    def test_join_token_and_entry_lifecycle_through_the_cli(self):
        authority = self.start_authority()
        token = json.loads(self.ok("token", "generate", "--ttl", "10m", "--format", "json"))
        self.assertEqual(len(token["token"]), 64, token)
        self.assertTrue(token["token_id"])
        self.assertNotEqual(token["token"], token["token_id"])
        text = self.ok("token", "generate")
        self.assertRegex(text, r"Token:\s+[0-9a-f]{64}\n")

        sha = "ab" * 32
        entry = self.create_entry("spiffe://example.org/web", "unix:uid:1000", "unix:sha256:" + sha,
                                  extra=["--x509-svid-ttl", "30m", "--dns-name", "web.local"])
        self.assertEqual(entry["selectors"], ["unix:sha256:" + sha, "unix:uid:1000"])
        self.assertEqual(entry["x509_svid_ttl_seconds"], 1800)
        self.assertEqual(entry["dns_names"], ["web.local"])
        self.assertEqual(entry["revision"], 1)
        eid = entry["id"]

        dup = self.cli("entry", "create", "--spiffe-id", "spiffe://example.org/web", "--selector", "unix:uid:1000",
                       "--selector", "unix:sha256:" + sha)
        self.assertEqual(dup.returncode, EXIT_REFUSED, dup.stderr)
        self.assertIn("ALREADY_EXISTS", dup.stderr)
        bad = self.cli("entry", "create", "--spiffe-id", "spiffe://example.org/x", "--selector", "uid1000")
        self.assertEqual(bad.returncode, EXIT_USAGE, bad.stderr)
        self.assertIn("TYPE:KEY:VALUE", bad.stderr)
        foreign = self.cli("entry", "create", "--spiffe-id", "spiffe://other.org/x", "--selector", "unix:uid:1")
        self.assertEqual(foreign.returncode, EXIT_REFUSED, foreign.stderr)
        self.assertIn("INVALID_ARGUMENT", foreign.stderr)

        listed = json.loads(self.ok("entry", "list", "--format", "json"))
        self.assertEqual([e["id"] for e in listed], [eid])
        table = self.ok("entry", "list", "--format", "table")
        self.assertIn(eid, table)
        self.assertIn("1 entry", table)
        shown = self.ok("entry", "show", eid)
        self.assertRegex(shown, r"SPIFFE ID:\s+spiffe://example.org/web\n")
        self.assertRegex(shown, r"X509-SVID TTL:\s+1800s\n")

        updated = json.loads(self.ok("entry", "update", eid, "--selector", "unix:uid:2000", "--jwt-svid-ttl", "2m",
                                     "--format", "json"))
        self.assertEqual(updated["selectors"], ["unix:uid:2000"])
        self.assertEqual(updated["jwt_svid_ttl_seconds"], 120)
        self.assertEqual(updated["x509_svid_ttl_seconds"], 1800, "fields not given keep their value")
        self.assertEqual(updated["revision"], 2)

        self.assertIn("Deleted entry " + eid, self.ok("entry", "delete", eid))
        gone = self.cli("entry", "show", eid)
        self.assertEqual(gone.returncode, EXIT_REFUSED)
        self.assertIn("NOT_FOUND", gone.stderr)
        self.assertEqual(json.loads(self.ok("entry", "list", "--format", "json")), [])

        stats = authority.stats()
        self.assertEqual(stats["authority.join_tokens_created"], 2)
        self.assertEqual(stats["authority_store.entries"], 0)
        wanted = {"join_token_created", "entry_created", "entry_updated", "entry_deleted"}
        harness.wait_until(lambda: wanted <= {r["decision"] for r in self.audit_records()},
                           what="audit records for " + ", ".join(sorted(wanted)))
        with open(self.audit_path) as f:
            self.assertNotIn(token["token"], f.read(), "the join token is a secret")

    def test_node_evict_through_the_cli(self):
        authority = self.start_authority()
        eid = self.create_entry("spiffe://example.org/web", "unix:uid:1000")["id"]
        token = json.loads(self.ok("token", "generate", "--format", "json"))
        node_id = "spiffe://example.org/node/join_token/" + token["token_id"]
        out = self.ok("node", "evict", node_id, "--reason", "stolen laptop")
        self.assertIn("Evicted node " + node_id + " (0 SVID serials revoked)", out)
        self.assertEqual(authority.stat("authority.nodes_evicted"), 1)
        self.assertEqual(authority.stat("authority_store.nodes_evicted"), 1)
        listed = json.loads(self.ok("entry", "list", "--format", "json"))
        self.assertEqual([e["id"] for e in listed], [eid], "the admin API goes on after an eviction")

        for bad in ("spiffe://example.org/web", "spiffe://other.org/node/join_token/x", "nonsense"):
            p = self.cli("node", "evict", bad)
            self.assertEqual(p.returncode, EXIT_REFUSED, "%s: %s%s" % (bad, p.stdout, p.stderr))
            self.assertIn("INVALID_ARGUMENT", p.stderr)
            self.assertIn("not a node SPIFFE ID", p.stderr)
        missing = self.cli("node", "evict")
        self.assertEqual(missing.returncode, EXIT_USAGE, missing.stderr)
        self.assertEqual(authority.stat("authority.nodes_evicted"), 1)
        harness.wait_until(lambda: any(r["decision"] == "node_evicted" and r["peer_spiffe_id"] == node_id
                                       and r["reason"] == "stolen laptop" for r in self.audit_records()),
                           what="a node_evicted audit record")

    def test_bundle_show_pem_and_spiffe_agree(self):
        self.start_authority()
        pem = self.ok("bundle", "show", "--format", "pem")
        self.assertTrue(pem.startswith("-----BEGIN CERTIFICATE-----"), pem)
        x509 = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True, text=True)
        self.assertEqual(x509.returncode, 0, x509.stderr)
        self.assertIn("CA:TRUE", x509.stdout)
        self.assertIn("URI:spiffe://example.org", x509.stdout)
        bundle = json.loads(self.ok("bundle", "show", "--format", "spiffe"))
        uses = sorted(k["use"] for k in bundle["keys"])
        self.assertIn("x509-svid", uses)
        self.assertIn("jwt-svid", uses)
        self.assertGreaterEqual(bundle["spiffe_sequence"], 1)
        x5c = [k["x5c"][0] for k in bundle["keys"] if k["use"] == "x509-svid"]
        der = ssl.PEM_cert_to_DER_cert(pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
        self.assertIn(base64.b64encode(der).decode(), x5c)

    def test_authority_tls_presents_its_spiffe_id(self):
        authority = self.start_authority()
        bundle = os.path.join(self.dir, "bundle.pem")
        with open(bundle, "w") as f:
            f.write(self.ok("bundle", "show"))
        ctx = ssl.create_default_context(cafile=bundle)
        ctx.check_hostname = False
        ctx.set_alpn_protocols(["h2"])
        host, port = authority.listen_address()
        with socket.create_connection((host, port), timeout=10) as raw:
            with ctx.wrap_socket(raw) as tls:  # no client certificate: allowed at the TLS level
                self.assertEqual(tls.selected_alpn_protocol(), "h2")
                sans = tls.getpeercert()["subjectAltName"]
        self.assertIn(("URI", "spiffe://example.org/portcullis/authority"), sans)

    def test_server_svid_is_renewed_before_it_expires(self):
        self.extra_authority = {"server_svid_ttl": "4s"}
        authority = self.start_authority()
        bundle = os.path.join(self.dir, "bundle.pem")
        with open(bundle, "w") as f:
            f.write(self.ok("bundle", "show"))
        ctx = ssl.create_default_context(cafile=bundle)
        ctx.check_hostname = False
        ctx.set_alpn_protocols(["h2"])

        def served_certificate():
            with socket.create_connection(authority.listen_address(), timeout=10) as raw:
                with ctx.wrap_socket(raw) as tls:  # verified under the bundle, or this raises
                    return tls.getpeercert(binary_form=True)

        first = served_certificate()
        harness.wait_until(lambda: served_certificate() != first, timeout=10.0, interval=0.2,
                           what="a renewed server certificate")
        self.assertGreaterEqual(authority.stat("authority.ca.server_certificates_issued"), 2)

    @unittest.skipUnless(os.geteuid() == 0 and SETPRIV, "needs root and setpriv to run the CLI as other uids")
    def test_admin_socket_refuses_a_uid_that_is_not_an_admin(self):
        authority = self.start_authority()
        denied = self.cli("token", "generate", uid=STRANGER_UID)
        self.assertEqual(denied.returncode, EXIT_REFUSED, denied.stdout + denied.stderr)
        self.assertIn("PERMISSION_DENIED", denied.stderr)
        self.assertIn("uid %d" % STRANGER_UID, denied.stderr)
        self.assertEqual(authority.stat("authority_service.admin_denied"), 1)
        self.assertEqual(authority.stat("authority.join_tokens_created"), 0)
        allowed = json.loads(self.ok("entry", "list", "--format", "json", uid=ADMIN_UID))
        self.assertEqual(allowed, [])
        harness.wait_until(lambda: any(r["decision"] == "deny" for r in self.audit_records()), what="a deny record")
        records = self.audit_records()
        denies = [r for r in records if r["decision"] == "deny"]
        self.assertEqual(len(denies), 1, records)
        self.assertEqual(denies[0]["caller_uid"], STRANGER_UID)

    def test_kill9_and_restart_keep_entries_and_the_ca(self):
        first = self.start_authority()
        eid = self.create_entry("spiffe://example.org/db", "unix:uid:999")["id"]
        pem = self.ok("bundle", "show")
        first.proc.kill()
        first.proc.wait()
        second = self.start_authority()
        listed = json.loads(self.ok("entry", "list", "--format", "json"))
        self.assertEqual([(e["id"], e["spiffe_id"]) for e in listed], [(eid, "spiffe://example.org/db")])
        self.assertEqual(self.ok("bundle", "show"), pem, "the CA is the same after the restart")
        self.assertEqual(second.stop(), EXIT_OK, "SIGTERM drains and exits 0")
        unreachable = self.cli("entry", "list")
        self.assertEqual(unreachable.returncode, EXIT_UNREACHABLE, unreachable.stderr)

    def test_entries_file_seeds_once(self):
        seed = os.path.join(self.dir, "entries.yaml")
        with open(seed, "w") as f:
            f.write("entries:\n- spiffe_id: spiffe://example.org/seeded\n  selectors: [\"unix:uid:1001\"]\n"
                    "  x509_svid_ttl: 15m\n")
        self.extra_authority = {"entries_file": seed}
        first = self.start_authority()
        listed = json.loads(self.ok("entry", "list", "--format", "json"))
        self.assertEqual([(e["spiffe_id"], e["x509_svid_ttl_seconds"]) for e in listed],
                         [("spiffe://example.org/seeded", 900)])
        self.assertEqual(first.stop(), EXIT_OK)
        self.start_authority()
        again = json.loads(self.ok("entry", "list", "--format", "json"))
        self.assertEqual([e["id"] for e in again], [listed[0]["id"]], "re-seeding on restart is idempotent")

    def test_config_errors_name_file_line_and_column(self):
        path = os.path.join(self.dir, "authority.yaml")
        with open(path, "w") as f:
            f.write("authority:\n  trust_domain: example.org\n  listen: {socket_address: {address: 127.0.0.1, "
                    "port_value: 0}}\n  admin_socket: {pipe: {path: /tmp/x.sock}}\n  data_dir: /tmp/x\n"
                    "  default_x509_svid_ttl: 5s\n")
        p = harness.run_portcullis(["authority", "-c", path, "--mode", "validate"])
        self.assertEqual(p.returncode, EXIT_BAD_CONFIG, p.stdout + p.stderr)
        self.assertIn("authority.yaml:6:26: authority.default_x509_svid_ttl: must be whole seconds between 60s",
                      p.stdout)
        p = harness.run_portcullis(["authority", "-c", path])
        self.assertEqual(p.returncode, EXIT_BAD_CONFIG)


if __name__ == "__main__":
    harness.main()
