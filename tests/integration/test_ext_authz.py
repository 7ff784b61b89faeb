"""The ext_authz server (envoy.service.auth.v3.Authorization/Check) in the real binary, called by an
independent gRPC client (@grpc/grpc-js with our api/ protos) over a Unix socket and TCP: decisions
as the rules say, grpc.health.v1 SERVING, a SIGHUP reload that changes a decision (and one that
tries to move the address, refused), audit records and /stats."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

import harness
from harness import IntegrationTestCase, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP = os.path.join(os.path.dirname(HERE), "interop")
NODE = shutil.which("node")
HAVE_GRPC_JS = NODE and os.path.isdir(os.path.join(INTEROP, "node_modules", "@grpc", "grpc-js"))
SKIP_JS = "grpc-js not installed: run scripts/install-deps.sh test (npm ci in tests/interop)"
AUTHZ = "envoy.service.auth.v3.Authorization"
FRONTEND = "spiffe://example.org/frontend"


def rules(method="GET"):
    return {"action": "ALLOW", "policies": {
        "frontend-reads-api": {
            "permissions": [{"and_rules": {"rules": [
                {"header": {"name": ":method", "string_match": {"exact": method}}},
                {"url_path": {"path": {"prefix": "/api/"}}}]}}],
            "principals": [{"authenticated": {"principal_name": {"exact": FRONTEND}}}]}}}


def http_check(principal, method, path, headers=None):
    return {"attributes": {
        "source": {"principal": principal,
                   "address": {"socket_address": {"address": "10.0.0.7", "port_value": 40000}}},
        "destination": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 8080}}},
        "request": {"http": {"method": method, "path": path, "host": "api.internal", "scheme": "https",
                             "headers": headers or {}}}}}


def js(target, mode, *args):
    out = subprocess.run([NODE, os.path.join(INTEROP, "ext_authz_client.js"), target, mode] + list(args),
                         capture_output=True, text=True, timeout=60)
    if not out.stdout.strip():
        raise AssertionError("grpc-js client printed nothing: " + out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


@unittest.skipUnless(HAVE_GRPC_JS, SKIP_JS)
class ExtAuthzTest(IntegrationTestCase):
    def setUp(self):
        self.files = tempfile.mkdtemp(prefix="portcullis-it-authz-")
        self.addCleanup(shutil.rmtree, self.files, True)
        self.sock = os.path.join(self.files, "authz.sock")
        self.audit_path = os.path.join(self.files, "audit.log")

    def config(self, address=None, method="GET"):
        return {
            "admin": {"address": harness.socket_address(0)},
            "audit": {"sinks": [{"file": {"path": self.audit_path}}]},
            "ext_authz_server": {
                "address": address or {"pipe": {"path": self.sock}},
                "stat_prefix": "it",
                "rules": rules(method),
                "shadow_rules": {"action": "DENY", "policies": {"outsiders": {
                    "permissions": [{"any": True}],
                    "principals": [{"not_id": {"authenticated": {"principal_name": {"prefix": "spiffe://example.org/"}}}}]}}},
            },
        }

    def check(self, target, principal, method, path):
        r = js(target, "check", json.dumps(http_check(principal, method, path)))
        self.assertEqual(r["grpc_code"], 0, r)  # a decision is never a gRPC error
        return r["response"]

    def assertAllowed(self, response):
        self.assertEqual(response, {"status": {}, "ok_response": {}})

    def assertDenied(self, response):
        self.assertEqual(response, {"status": {"code": 7},
                                    "denied_response": {"status": {"code": 403}, "body": "RBAC: access denied"}})

    def test_check_allows_and_denies_as_the_rules_say_over_unix_socket(self):
        proxy = self.start_proxy(self.config())
        target = "unix://" + self.sock
        self.assertEqual(js(target, "health"), {"grpc_code": 0, "status": 1})
        self.assertEqual(js(target, "health", AUTHZ), {"grpc_code": 0, "status": 1})
        self.assertAllowed(self.check(target, FRONTEND, "GET", "/api/items?page=2"))
        self.assertDenied(self.check(target, FRONTEND, "DELETE", "/api/items"))
        self.assertDenied(self.check(target, "spiffe://evil.org/frontend", "GET", "/api/items"))
        stats = proxy.stats()
        self.assertEqual((stats["ext_authz_server.it.allowed"], stats["ext_authz_server.it.denied"]), (1, 2))
        self.assertEqual((stats["ext_authz_server.it.shadow_allowed"], stats["ext_authz_server.it.shadow_denied"]), (2, 1))
        self.assertEqual(stats["grpc_server.ext_authz.calls_finished_OK"], 5)

        wait_until(lambda: len(self.audit_records()) == 3, what="3 audit records")
        allow, deny, outsider = self.audit_records()
        self.assertEqual((allow["listener"], allow["decision"], allow["policy"], allow["peer_spiffe_id"],
                          allow["peer_address"]),
                         ("ext_authz_server.it", "allow", "frontend-reads-api", FRONTEND, "10.0.0.7:40000"))
        self.assertIn("destination 10.0.0.1:8080; GET api.internal/api/items", allow["reason"])
        self.assertNotIn("page=2", allow["reason"])
        self.assertEqual((deny["decision"], deny["policy"]), ("deny", ""))
        self.assertEqual(outsider["peer_spiffe_id"], "spiffe://evil.org/frontend")
        out = harness.run_portcullis(["audit", "verify", self.audit_path])
        self.assertEqual(out.returncode, 0, out)

    def test_check_over_tcp(self):
        proxy = self.start_proxy(self.config(address={"socket_address": {"address": "127.0.0.1", "port_value": 0}}))
        target = self.grpc_address(proxy)
        self.assertEqual(js(target, "health"), {"grpc_code": 0, "status": 1})
        self.assertAllowed(self.check(target, FRONTEND, "GET", "/api/x"))
        self.assertDenied(self.check(target, "", "GET", "/api/x"))

    @unittest.skipUnless(shutil.which("h2load"), "h2load not installed (nghttp2-client): scripts/install-deps.sh test")
    def test_h2load_sends_load_to_check_and_every_call_is_decided(self):
        """nghttp2's h2load as a second independent HTTP/2 client: 2,000 Check calls on 4
        connections with 16 streams each, a gRPC-framed CheckRequest built by grpc-js."""
        proxy = self.start_proxy(self.config(address={"socket_address": {"address": "127.0.0.1", "port_value": 0}}))
        body = os.path.join(self.files, "check.bin")
        js("-", "encode", json.dumps(http_check(FRONTEND, "GET", "/api/items")), body)
        target = self.grpc_address(proxy)
        out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "16", "-d", body,
                              "-H", "content-type: application/grpc", "-H", "te: trailers",
                              "http://%s/%s/Check" % (target, AUTHZ)],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stdout, r"requests: 2000 total, 2000 started, 2000 done, 2000 succeeded")
        self.assertRegex(out.stdout, r"status codes: 2000 2xx")
        wait_until(lambda: proxy.stat("ext_authz_server.it.allowed") == 2000, what="2000 allowed decisions")

    def test_reload_changes_a_decision_and_refuses_a_new_address(self):
        proxy = self.start_proxy(self.config())
        target = "unix://" + self.sock
        self.assertDenied(self.check(target, FRONTEND, "POST", "/api/items"))
        proxy.write_config(self.config(method="POST"))
        proxy.signal(signal.SIGHUP)
        proxy.wait_stat("server.config_reload_success", lambda v: v == 1)
        self.assertAllowed(self.check(target, FRONTEND, "POST", "/api/items"))
        self.assertDenied(self.check(target, FRONTEND, "GET", "/api/items"))
        self.assertEqual(proxy.stat("ext_authz_server.it.policy_updates"), 1)

        proxy.write_config(self.config(address={"pipe": {"path": os.path.join(self.files, "other.sock")}}))
        proxy.signal(signal.SIGHUP)
        proxy.wait_stat("server.config_reload_failure", lambda v: v == 1)
        self.assertIn("only rules and shadow_rules can change on reload", proxy.log())
        self.assertAllowed(self.check(target, FRONTEND, "POST", "/api/items"))  # still the running config

    def test_drain_listeners_stops_serving_then_sigterm_exits(self):
        proxy = self.start_proxy(self.config(), drain_time_s=5)
        target = "unix://" + self.sock
        self.assertEqual(js(target, "health", AUTHZ)["status"], 1)
        proxy.post("/drain_listeners")
        wait_until(lambda: js(target, "health", AUTHZ).get("grpc_code") != 0, what="the server to stop accepting")
        proxy.signal(signal.SIGTERM)
        self.assertEqual(proxy.wait_exit(), 0)

    def test_bind_failure_is_a_startup_failure(self):
        blocker = os.path.join(self.files, "not-a-socket")
        with open(blocker, "w") as f:
            f.write("x")
        proxy = harness.Proxy(self.config(address={"pipe": {"path": blocker}}))
        self.addCleanup(proxy.close)
        with self.assertRaises(harness.ProxyExited):
            proxy.start()
        self.assertEqual(proxy.returncode, 3)
        self.assertIn("gRPC server 'ext_authz'", proxy.log())

    def grpc_address(self, proxy):
        def found():
            m = re.search(r"gRPC server 'ext_authz' listening on (\S+)", proxy.log())
            return m and m.group(1)
        return wait_until(found, what="the ext_authz address in the log")

    def audit_records(self):
        try:
            with open(self.audit_path) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []


if __name__ == "__main__":
    harness.main()
