"""The SDS server (envoy.service.secret.v3.SecretDiscoveryService) against the real binary, with
@grpc/grpc-js as the independent client (tests/interop/sds_client.js, our api/ protos):
FetchSecrets returns `default` and `ROOTCA` that OpenSSL accepts (chain verifies against the
bundle, key matches the certificate), in legacy (trusted_ca) and SPIFFE-validator form; unknown
names fail as SPIRE fails them; a StreamSecrets stream gets a new version with the new serial
after the identity files rotate (the push latency from the rename is printed); `sds` without
`identity` is a config error."""

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
import pki
import tls_files
from tls_files import CertDir
from tls_support import TlsTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP = os.path.join(os.path.dirname(HERE), "interop")
SDS_CLIENT = os.path.join(INTEROP, "sds_client.js")
NODE = shutil.which("node")
HAVE_GRPC_JS = NODE and os.path.isdir(os.path.join(INTEROP, "node_modules", "@grpc", "grpc-js"))
SKIP_JS = "grpc-js not installed: run scripts/install-deps.sh test (npm ci in tests/interop)"
TD = "example.org"
WORKLOAD = "spiffe://example.org/workload"
EXIT_BAD_CONFIG = 1


def openssl(*args):
    return subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=30)


class SdsTest(TlsTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ca = cls.pki.authority(TD)

    def setUp(self):
        super().setUp()
        self.files = tempfile.mkdtemp(prefix="portcullis-it-sds-")
        self.addCleanup(shutil.rmtree, self.files, True)
        self.out = os.path.join(self.files, "out")
        os.makedirs(self.out)
        self.sock = os.path.join(self.files, "sds.sock")
        self.first_leaf = self.ca.leaf(WORKLOAD)
        self.svid = CertDir(self.files, "svid", self.first_leaf)

    def config(self, sds=True):
        cfg = harness.bootstrap([], [])
        cfg["identity"] = {
            "trust_domain": TD,
            "static": {
                "certificate_chain": {"filename": self.svid.cert},
                "private_key": {"filename": self.svid.key},
                "trust_bundle": {"filename": self.ca.cert},
            },
        }
        if sds:
            cfg["sds"] = {"address": {"pipe": {"path": self.sock}}}
        return cfg

    def start(self):
        proxy = self.start_proxy(self.config())
        harness.wait_until(lambda: os.path.exists(self.sock), what="the SDS socket")
        return proxy

    def client(self, mode, *args, timeout=20, target=None):
        p = subprocess.run([NODE, SDS_CLIENT, target or "unix://" + self.sock, mode, self.out] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout.strip().splitlines()[-1])

    def path(self, name):
        return os.path.join(self.out, name)

    def assertOpensslAccepts(self, ca_file, chain_file, key_file):
        v = openssl("verify", "-CAfile", ca_file, chain_file)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn(": OK", v.stdout)
        cert_pub = openssl("x509", "-in", chain_file, "-noout", "-pubkey")
        key_pub = openssl("pkey", "-in", key_file, "-pubout")
        self.assertEqual(cert_pub.returncode, 0, cert_pub.stderr)
        self.assertEqual(key_pub.returncode, 0, key_pub.stderr)
        self.assertEqual(cert_pub.stdout, key_pub.stdout, "the private key does not match the certificate")

    @unittest.skipUnless(HAVE_GRPC_JS, SKIP_JS)
    def test_fetch_secrets_default_and_rootca_pass_openssl(self):
        proxy = self.start()
        # Envoy 1.17 gets what SPIRE gives it: ROOTCA as plain trusted_ca.
        r = self.client("fetch", "default", "ROOTCA", "--build-version", "1.17")
        self.assertEqual(r["code"], 0, r)
        self.assertEqual((r["version_info"], r["nonce"]), ("", ""))  # FetchSecrets, as SPIRE
        self.assertEqual(r["type_url"], "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret")
        by_name = {s["name"]: s for s in r["secrets"]}
        self.assertEqual(sorted(by_name), ["ROOTCA", "default"])
        self.assertEqual(by_name["default"]["kind"], "tls_certificate")
        self.assertEqual(by_name["default"]["key_header"], "-----BEGIN PRIVATE KEY-----")
        self.assertEqual(by_name["default"]["serial"], tls_files.pem_serial(self.first_leaf.cert))
        self.assertEqual(by_name["ROOTCA"]["kind"], "trusted_ca")
        self.assertOpensslAccepts(self.path("ROOTCA.pem"), self.path("default_chain.pem"), self.path("default_key.pem"))

        # A current Envoy (or none said) gets the SPIFFE validator, one trust domain.
        r = self.client("fetch", "ROOTCA", WORKLOAD)
        self.assertEqual(r["code"], 0, r)
        rootca, svid = r["secrets"]
        self.assertEqual(rootca["kind"], "spiffe_validator")
        self.assertEqual(rootca["validator"], "envoy.tls.cert_validator.spiffe")
        self.assertEqual(rootca["typed_config"],
                         "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig")
        self.assertEqual(rootca["trust_domains"], [TD])
        self.assertEqual(svid["name"], WORKLOAD)
        safe_id = WORKLOAD.replace(":", "_").replace("/", "_")
        self.assertOpensslAccepts(self.path("ROOTCA_example.org.pem"), self.path(safe_id + "_chain.pem"),
                                  self.path(safe_id + "_key.pem"))
        self.assertEqual(proxy.stat("sds.responses_sent"), 2)

    @unittest.skipUnless(HAVE_GRPC_JS, SKIP_JS)
    def test_fetch_secrets_over_tcp(self):
        cfg = self.config()
        cfg["sds"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}
        proxy = self.start_proxy(cfg)

        def bound():
            m = re.search(r"gRPC server 'sds' listening on (\S+)", proxy.log())
            return m and m.group(1)
        target = harness.wait_until(bound, what="the SDS address in the log")
        r = self.client("fetch", "default", "ROOTCA", "--build-version", "1.17", target=target)
        self.assertEqual(r["code"], 0, r)
        self.assertEqual(sorted(s["name"] for s in r["secrets"]), ["ROOTCA", "default"])
        self.assertOpensslAccepts(self.path("ROOTCA.pem"), self.path("default_chain.pem"), self.path("default_key.pem"))

    @unittest.skipUnless(HAVE_GRPC_JS, SKIP_JS)
    def test_unknown_name_is_invalid_argument(self):
        proxy = self.start()
        r = self.client("fetch", "default", "spiffe://example.org/someone-else")
        self.assertEqual(r["code"], 3, r)
        self.assertEqual(r["details"],
                         'workload is not authorized for the requested identities ["spiffe://example.org/someone-else"]')
        self.assertEqual(proxy.stat("sds.unknown_resource_errors"), 1)

    @unittest.skipUnless(HAVE_GRPC_JS, SKIP_JS)
    def test_stream_pushes_a_new_version_after_rotation(self):
        proxy = self.start()
        client = subprocess.Popen([NODE, SDS_CLIENT, "unix://" + self.sock, "stream", self.out, "default",
                                   "--responses", "2", "--timeout", "15000"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(client.stderr.close)
        self.addCleanup(client.stdout.close)
        self.addCleanup(lambda: client.poll() is None and (client.kill(), client.wait()))
        first = json.loads(client.stdout.readline())
        self.assertEqual(first["version_info"], "1")
        self.assertEqual(first["secrets"][0]["serial"], tls_files.pem_serial(self.first_leaf.cert))
        proxy.wait_stat("sds.acks", 1)

        leaf = self.ca.leaf(WORKLOAD)
        self.svid.rotate(leaf)
        renamed = time.time()  # the key: the file that completes the new pair
        line = client.stdout.readline()
        self.assertTrue(line, client.stderr.read() if client.poll() is not None else "no push")
        pushed = json.loads(line)
        latency_ms = pushed["at_ms"] - renamed * 1000
        print("\nSDS push latency (key file rename -> StreamSecrets response at grpc-js): %.1f ms" % latency_ms)
        self.assertEqual(pushed["version_info"], "2")
        self.assertEqual(pushed["secrets"][0]["serial"], tls_files.pem_serial(leaf.cert))
        self.assertNotEqual(pushed["nonce"], first["nonce"])
        self.assertLess(latency_ms, 1000)
        self.assertOpensslAccepts(self.ca.cert, self.path("default_chain.pem"), self.path("default_key.pem"))
        final = json.loads(client.stdout.readline())
        self.assertEqual(final["code"], 0, final)
        client.wait(10)
        self.assertEqual(proxy.stat("sds.rotation_pushes"), 1)
        proxy.wait_stat("sds.streams_active", 0)

    @unittest.skipUnless(HAVE_GRPC_JS, SKIP_JS)
    def test_health_serving_and_reload_refuses_a_changed_sds_block(self):
        proxy = self.start()
        p = subprocess.run([NODE, os.path.join(INTEROP, "grpc_client.js"), "unix://" + self.sock, "health"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(json.loads(p.stdout), {"code": 0, "details": "", "status": 1}, p.stderr)  # SERVING
        cfg = self.config()
        cfg["sds"]["default_bundle_name"] = "null"
        proxy.write_config(cfg)
        proxy.signal(signal.SIGHUP)
        proxy.wait_stat("server.config_reload_failure", 1)
        self.assertIn("the sds block cannot change on reload", proxy.log())
        self.assertEqual(self.client("fetch", "ROOTCA")["code"], 0)

    def test_sds_without_identity_is_a_config_error(self):
        path = os.path.join(self.files, "sidecar.yaml")
        cfg = self.config()
        del cfg["identity"]
        with open(path, "w") as f:
            f.write(harness.to_yaml(cfg))
        p = harness.run_portcullis(["-c", path, "--mode", "validate"])
        self.assertEqual(p.returncode, EXIT_BAD_CONFIG, p.stdout + p.stderr)
        self.assertIn("sds: requires the identity block (SDS serves its SVID and bundles)", p.stdout)


if __name__ == "__main__":
    harness.main()
