"""The SPIFFE Workload API against the real binary, with @grpc/grpc-js as the independent client
(tests/interop/workload_api_client.js, our api/ protos): FetchX509SVID over the Unix socket and
TCP receives the SVID and then a push after the identity files rotate (atomic rename) with the
new serial, `openssl verify` accepts the returned DER against the returned bundle, FetchJWTSVID +
ValidateJWTSVID round trip, calls without the security header get INVALID_ARGUMENT, and the
audit log names the caller's pid and uid."""

import base64
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
import unittest

import harness
import pki
from tls_files import CertDir, audit_records, der_serial, leaf_serial, serial_hex
from tls_support import TlsTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(os.path.dirname(HERE), "interop", "workload_api_client.js")
NODE = shutil.which("node")
HAVE_GRPC_JS = NODE and os.path.isdir(os.path.join(os.path.dirname(CLIENT), "node_modules", "@grpc", "grpc-js"))
SKIP_JS = "grpc-js not installed: run scripts/install-deps.sh test (npm ci in tests/interop)"
TD = "example.org"
WORKLOAD = "spiffe://example.org/workload"
INVALID_ARGUMENT = 3


class Client:
    """One workload_api_client.js process; lines() yields its JSON lines as they come."""

    def __init__(self, target, *args):
        self.proc = subprocess.Popen([NODE, CLIENT, target] + list(args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def line(self, timeout=10.0):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise AssertionError("no output from the Workload API client within %.0fs" % timeout)
        text = self.proc.stdout.readline()
        if not text:
            raise AssertionError("client exited: " + self.proc.stderr.read())
        return json.loads(text)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@unittest.skipUnless(HAVE_GRPC_JS, SKIP_JS)
class WorkloadApiTest(TlsTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ca = cls.pki.authority(TD)
        cls.jwt_key = os.path.join(cls.tmp, "jwt.key")
        pki._ec_key(cls.jwt_key)

    def setUp(self):
        super().setUp()
        self.files = tempfile.mkdtemp(prefix="portcullis-it-wlapi-")
        self.addCleanup(shutil.rmtree, self.files, True)
        self.svid = CertDir(self.files, "svid", self.ca.leaf(WORKLOAD))
        self.sock = os.path.join(self.files, "agent.sock")
        self.audit_path = os.path.join(self.files, "audit.log")

    def config(self, address=True):
        cfg = harness.bootstrap([], [])
        cfg["identity"] = {
            "trust_domain": TD,
            "static": {
                "certificate_chain": {"filename": self.svid.cert},
                "private_key": {"filename": self.svid.key},
                "trust_bundle": {"filename": self.ca.cert},
                "jwt_signing_key": {"filename": self.jwt_key},
            },
        }
        cfg["workload_api"] = {"address": {"pipe": {"path": self.sock}}} if address else {}
        cfg["audit"] = {"sinks": [{"file": {"path": self.audit_path}}]}
        return cfg

    def client(self, target, *args):
        c = Client(target, *args)
        self.addCleanup(c.close)
        return c

    def tcp_target(self, proxy):
        m = re.search(r"gRPC server 'workload_api' listening on (127\.0\.0\.1:\d+)", proxy.log())
        self.assertIsNotNone(m, proxy.log())
        return m.group(1)

    def check_push_after_rotation(self, proxy, target):
        watch = self.client(target, "x509_watch", "--count", "2")
        first = watch.line()
        self.assertEqual([s["spiffe_id"] for s in first["svids"]], [WORKLOAD])
        der = base64.b64decode(first["svids"][0]["x509_svid"])
        self.assertEqual(serial_hex(der_serial(der)), leaf_serial(self.svid.leaf()))
        self.verify_with_openssl(first["svids"][0])

        pushes = proxy.stat("workload_api.pushes")
        rotated = self.ca.leaf(WORKLOAD)
        self.svid.rotate(rotated)
        second = watch.line()
        new_der = base64.b64decode(second["svids"][0]["x509_svid"])
        self.assertEqual(serial_hex(der_serial(new_der)), leaf_serial(rotated))
        self.assertNotEqual(new_der, der)
        self.verify_with_openssl(second["svids"][0])
        proxy.wait_stat("workload_api.pushes", lambda v: v >= pushes + 1)

    def verify_with_openssl(self, svid):
        """openssl verify: the DER SVID chains to the DER bundle the same response carried."""
        d = tempfile.mkdtemp(dir=self.files)
        leaf_der, bundle_der = os.path.join(d, "leaf.der"), os.path.join(d, "bundle.der")
        with open(leaf_der, "wb") as f:
            f.write(base64.b64decode(svid["x509_svid"]))
        with open(bundle_der, "wb") as f:
            f.write(base64.b64decode(svid["bundle"]))
        pems = []
        for src in (leaf_der, bundle_der):
            out = src[:-4] + ".pem"
            subprocess.run(["openssl", "x509", "-inform", "DER", "-in", src, "-out", out], check=True,
                           capture_output=True)
            pems.append(out)
        p = subprocess.run(["openssl", "verify", "-CAfile", pems[1], pems[0]], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        key = subprocess.run(["openssl", "pkey", "-inform", "DER", "-noout"],
                             input=base64.b64decode(svid["x509_svid_key"]), capture_output=True)
        self.assertEqual(key.returncode, 0, key.stderr)

    def test_fetch_x509_svid_over_unix_socket_pushes_after_rotation(self):
        proxy = self.start_proxy(self.config())
        self.check_push_after_rotation(proxy, "unix://" + self.sock)

    def test_fetch_x509_svid_over_tcp_from_the_flag(self):
        proxy = self.start_proxy(self.config(address=False),
                                 extra_args=["--workload-api-socket", "tcp://127.0.0.1:0"])
        self.check_push_after_rotation(proxy, self.tcp_target(proxy))

    def test_spiffe_endpoint_socket_env_gives_the_address(self):
        os.environ["SPIFFE_ENDPOINT_SOCKET"] = "unix://" + self.sock
        self.addCleanup(os.environ.pop, "SPIFFE_ENDPOINT_SOCKET")
        self.start_proxy(self.config(address=False))
        c = self.client("unix://" + self.sock, "x509_watch")
        self.assertEqual(c.line()["svids"][0]["spiffe_id"], WORKLOAD)

    def test_jwt_svid_round_trips_through_validate(self):
        self.start_proxy(self.config())
        r = self.client("unix://" + self.sock, "jwt", "--audience", "db", "--audience", "cache").line()
        self.assertEqual(r["code"], 0, r)
        self.assertEqual(r["fetched_id"], WORKLOAD)
        self.assertEqual(r["spiffe_id"], WORKLOAD)
        claims = r["claims"]["fields"]
        self.assertEqual(claims["sub"]["stringValue"], WORKLOAD)
        self.assertEqual([v["stringValue"] for v in claims["aud"]["listValue"]["values"]], ["db", "cache"])
        self.assertEqual(claims["exp"]["numberValue"] - claims["iat"]["numberValue"], 300)
        header = json.loads(base64.urlsafe_b64decode(r["token"].split(".")[0] + "=="))
        self.assertEqual((header["alg"], header["typ"]), ("ES256", "JWT"))
        self.assertTrue(header["kid"])

    def test_bundles_are_keyed_by_trust_domain_id(self):
        self.start_proxy(self.config())
        r = self.client("unix://" + self.sock, "bundles").line()
        self.assertEqual(r["code"], 0, r)
        self.assertEqual(list(r["x509"]), ["spiffe://example.org"])
        self.assertEqual([k["use"] for k in r["jwt"]["spiffe://example.org"]["keys"]], ["jwt-svid"])

    def test_calls_without_the_security_header_are_invalid_argument(self):
        proxy = self.start_proxy(self.config())
        for method in ("FetchX509SVID", "FetchX509Bundles", "FetchJWTSVID", "FetchJWTBundles", "ValidateJWTSVID"):
            r = self.client("unix://" + self.sock, "call", method, "--no-header").line()
            self.assertEqual(r, {"code": INVALID_ARGUMENT, "details": "security header missing from request"}, method)
        self.assertEqual(proxy.stat("workload_api.security_header_missing"), 5)

    def test_audit_log_names_the_caller(self):
        self.start_proxy(self.config())
        c = self.client("unix://" + self.sock, "x509_watch")
        c.line()
        pid = c.proc.pid
        records = harness.wait_until(
            lambda: [r for r in audit_records(self.audit_path) if r.get("policy") == "x509_svid"], 10,
            what="an x509_svid audit record")
        r = records[0]
        self.assertEqual(r["caller_pid"], pid)
        self.assertEqual(r["caller_uid"], os.getuid())
        self.assertEqual(r["caller_gid"], os.getgid())
        self.assertEqual(r["peer_spiffe_id"], WORKLOAD)
        self.assertEqual(r["cert_serial"], leaf_serial(self.svid.leaf()))
        self.assertEqual(r["decision"], "issue")


if __name__ == "__main__":
    unittest.main()
