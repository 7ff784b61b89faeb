"""The `identity:` block against the real binary: --mode validate checks its files together (the
leaf must be an SVID of the trust domain whose key matches), the running proxy rotates the files
like the TLS files (identity.rotations, identity.version), a broken set keeps the old identity
(identity.rotation_failures), and a reload may not change the block."""

import os
import shutil
import signal
import tempfile
import unittest

import harness
import pki
import tls_files
from tls_files import CertDir
from tls_support import TlsTestCase

TD = "example.org"
WORKLOAD = "spiffe://example.org/workload"
EXIT_BAD_CONFIG = 1


class IdentityTest(TlsTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ca = cls.pki.authority(TD)
        cls.jwt_key = os.path.join(cls.tmp, "jwt.key")
        pki._ec_key(cls.jwt_key)

    def setUp(self):
        super().setUp()
        self.files = tempfile.mkdtemp(prefix="portcullis-it-identity-")
        self.addCleanup(shutil.rmtree, self.files, True)
        self.svid = CertDir(self.files, "svid", self.ca.leaf(WORKLOAD))

    def config(self):
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
        return cfg

    def test_validate_checks_the_identity_files_together(self):
        path = os.path.join(self.files, "sidecar.yaml")
        with open(path, "w") as f:
            f.write(harness.to_yaml(self.config()))
        self.assertEqual(harness.run_portcullis(["-c", path, "--mode", "validate"]).stdout, "OK\n")
        other = self.ca.leaf(WORKLOAD)
        self.svid.replace_key(tls_files.read(other.key))
        p = harness.run_portcullis(["-c", path, "--mode", "validate"])
        self.assertEqual(p.returncode, EXIT_BAD_CONFIG)
        self.assertIn("identity: %s: the private key does not match" % self.svid.key, p.stdout)

    def test_files_rotate_and_a_broken_set_keeps_the_old_identity(self):
        proxy = self.start_proxy(self.config())
        self.assertEqual(proxy.stat("identity.version"), 1)
        gap = self.svid.rotate(self.ca.leaf(WORKLOAD))
        proxy.wait_stat("identity.rotations", 1)
        self.assertEqual(proxy.stat("identity.version"), 2)
        # A key renamed in more than the 50 ms debounce after its cert is a real mismatch.
        self.assertLessEqual(proxy.stat("identity.rotation_failures"), 1 if gap >= 0.045 else 0)
        failures = proxy.stat("identity.rotation_failures")

        self.svid.replace_cert("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        proxy.wait_stat("identity.rotation_failures", failures + 1)
        self.assertEqual(proxy.stat("identity.version"), 2)
        self.assertIn("identity rotation kept the previous SVID", proxy.log())

    def test_reload_refuses_a_changed_identity_block(self):
        proxy = self.start_proxy(self.config())
        cfg = self.config()
        cfg["identity"]["jwt_svid"] = {"ttl": "60s"}
        proxy.write_config(cfg)
        proxy.signal(signal.SIGHUP)
        proxy.wait_stat("server.config_reload_failure", 1)
        self.assertIn("the identity block cannot change on reload", proxy.log())


if __name__ == "__main__":
    unittest.main()
