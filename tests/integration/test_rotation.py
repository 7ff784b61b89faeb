"""Hitless TLS rotation: the proxy watches the directories of every certificate_chain,
private_key, trust_bundle and trusted_ca file a TLS transport_socket names (inotify), waits
50 ms for a burst of changes to settle, rebuilds the TLS contexts whose files changed, and new
handshakes use the new material while live connections keep theirs. A broken or mismatched
file keeps the old material and is counted in server.tls_rotation_failure once per distinct
failure; a rotation that took effect counts in server.tls_rotation_success. GET /certs shows the
material in use.

Files are rotated the ways they are in production (tls_files.py): an atomic rename of the new
cert and then the new key, and a Kubernetes secret volume's `..data` symlink swap.
"""

import os
import shutil
import signal
import ssl
import tempfile
import threading
import time

import harness
import tls_files
import tls_support as ts
from tls_files import CertDir, KubeSecretDir, leaf_serial, peer_serial
from tls_support import TlsTestCase

TD = "example.org"
FRONTEND = "spiffe://example.org/frontend"
INBOUND = "spiffe://example.org/inbound"

# How soon after the files change new handshakes must present the new material (the proxy
# debounces for 50 ms; the rest is slack for a loaded machine).
ROTATION_DEADLINE_S = 1.0

KEPT_OLD_MATERIAL = "TLS rotation kept the previous material"


class RotationTestCase(TlsTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ca = cls.pki.authority(TD)
        cls.other_ca = cls.pki.authority("other.org")
        cls.frontend = cls.ca.leaf(FRONTEND, name="frontend")
        cls.client = ts.TlsClient(cls.ca.cert, cls.frontend)

    def setUp(self):
        super().setUp()
        self.files = tempfile.mkdtemp(prefix="portcullis-it-rotation-")
        self.addCleanup(shutil.rmtree, self.files, True)
        self.rename_gaps = []

    def rotate(self, cert_dir, leaf):
        self.rename_gaps.append(cert_dir.rotate(leaf))

    def assertNoRotationFailure(self, proxy):
        """No tls_rotation_failure, except one per rotation whose key rename came more than the
        50 ms debounce after its cert rename (this thread descheduled on a loaded machine):
        then the proxy really did see the new cert with the old key, and kept the old pair."""
        slow = sum(1 for g in self.rename_gaps if g >= 0.045)
        self.assertLessEqual(proxy.stat("server.tls_rotation_failure"), slow,
                             "rotation failures (gaps between cert and key renames: %r)" % self.rename_gaps)

    def bundle_file(self, name, *authorities):
        """A trust bundle file in its own directory (so it is watched on its own)."""
        d = os.path.join(self.files, name)
        os.makedirs(d)
        path = os.path.join(d, "bundle.pem")
        tls_files.replace_file(path, "".join(tls_files.read(a.cert) for a in authorities))
        return path

    def mtls_listener(self, name, cert_dir, bundle=None, trusted_ca=None):
        if trusted_ca is not None:
            transport = ts.downstream_tls(cert_dir.leaf(), trusted_ca=trusted_ca)
        else:
            transport = ts.downstream_tls(cert_dir.leaf(), trust_domains={TD: bundle or self.ca.cert})
        return ts.tls_listener(name, "echo", transport)

    def start_inbound(self, listeners, audit_path=None, **kw):
        self.echo = self.echo_server()
        cfg = harness.bootstrap(listeners, [harness.static_cluster("echo", [self.echo.port])])
        if audit_path:
            cfg["audit"] = {"sinks": [{"file": {"path": audit_path}}]}
        return self.start_proxy(cfg, **kw)

    def assertServing(self, proxy, port, cert_dir, serial):
        """New handshakes present `serial`, and /certs says it is the one in use."""
        self.assertEqual(peer_serial(self.client, port), serial, "serial presented by a new handshake")
        self.assertEqual(tls_files.chain_serials(proxy)[cert_dir.cert], serial, "serial in /certs")

    def live_connection(self, port, client=None):
        s = (client or self.client).connect(port)
        self.addCleanup(s.close)
        s.settimeout(5)
        harness.echo_roundtrip(s, b"opened before the rotation")
        return s

    def wait_for_serial(self, port, serial, changed_at):
        """Probes with new handshakes until one presents `serial`; returns how long after
        `changed_at` (a monotonic time) that handshake started."""
        started = [None]

        def probe():
            started[0] = time.monotonic()
            return peer_serial(self.client, port) == serial

        harness.wait_until(probe, 10, interval=0.02, what="new handshakes to present serial %s" % serial)
        return started[0] - changed_at


class LoadLoop:
    """A client thread opening short mTLS connections (handshake, echo, close) round robin over
    `ports` ({listener: port}) until stopped, recording (listener, start time, serial) or the
    failure of each."""

    def __init__(self, client, ports):
        self.client = client
        self.ports = list(ports.items())
        self.records = []
        self.failures = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.started_at = None

    def start(self):
        self.started_at = time.monotonic()
        self.thread.start()
        return self

    def _run(self):
        i = 0
        while not self.stopping.is_set():
            name, port = self.ports[i % len(self.ports)]
            i += 1
            started = time.monotonic()
            try:
                serial = peer_serial(self.client, port, b"load %d" % i)
            except Exception as e:  # noqa: BLE001 - every failure is reported by the test
                with self.lock:
                    self.failures.append((name, round(started - self.started_at, 3), repr(e)))
                continue
            with self.lock:
                self.records.append((name, started, serial))

    def count(self, name=None, serial=None):
        with self.lock:
            return sum(1 for n, _, s in self.records if (name is None or n == name) and (serial is None or s == serial))

    def stop(self):
        self.stopping.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the load loop did not stop"


class HitlessRotationTest(RotationTestCase):
    def test_rotations_under_load_fail_no_connection(self):
        """A client keeps opening mTLS connections to two listeners while one's certificate is
        renamed over three times and the other's Kubernetes secret volume is swapped: not one
        connection fails, new handshakes present the new serial within a second, and connections
        opened before a rotation keep working on their old material."""
        files_leaves = [self.ca.leaf(INBOUND, name="files-%d" % i) for i in range(4)]
        kube_leaves = [self.ca.leaf(INBOUND, name="kube-%d" % i) for i in range(2)]
        files = CertDir(self.files, "files", files_leaves[0])
        kube = KubeSecretDir(self.files, "kube", kube_leaves[0])
        proxy = self.start_inbound([self.mtls_listener("files", files), self.mtls_listener("kube", kube)])
        ports = {"files": proxy.listener_port("files"), "kube": proxy.listener_port("kube")}
        self.assertServing(proxy, ports["files"], files, leaf_serial(files_leaves[0]))
        self.assertServing(proxy, ports["kube"], kube, leaf_serial(kube_leaves[0]))

        load = LoadLoop(ts.TlsClient(self.ca.cert, self.frontend), ports).start()
        self.addCleanup(load.stop)
        harness.wait_until(lambda: load.count() >= 20 or load.failures, 10, what="the load loop to get going")

        live = []        # (connection, serial it handshook with), one opened before each rotation
        rotations = []   # (listener, monotonic time the files changed, new serial)
        delays = []
        plan = [("files", leaf) for leaf in files_leaves[1:]] + [("kube", kube_leaves[1])]
        for n, (name, leaf) in enumerate(plan, 1):
            live.append((self.live_connection(ports[name]), name))
            serial = leaf_serial(leaf)
            if name == "files":
                self.rotate(files, leaf)
            else:
                kube.swap(leaf)
            changed_at = time.monotonic()
            rotations.append((name, changed_at, serial))
            delays.append(self.wait_for_serial(ports[name], serial, changed_at))
            proxy.wait_stat("server.tls_rotation_success", n)
            # Let the load loop make a few connections on the new material before the next one.
            harness.wait_until(lambda: load.count(name, serial) >= 5 or load.failures, 10,
                               what="load connections presented %s" % serial)

        harness.wait_until(lambda: time.monotonic() - load.started_at >= 3.0, 5, interval=0.05,
                           what="three seconds of load")
        load.stop()

        self.assertEqual(load.failures, [], "connections failed during rotation")
        self.assertGreater(load.count(), 100, "the load loop made too few connections to mean anything")
        for delay, (name, _, serial) in zip(delays, rotations):
            self.assertLessEqual(delay, ROTATION_DEADLINE_S, "%s: serial %s took %.2fs" % (name, serial, delay))
        # Every load connection that started more than a second after a rotation (and before
        # the next one on that listener) presented the rotated serial.
        for i, (name, at, serial) in enumerate(rotations):
            until = min([t for n, t, _ in rotations[i + 1:] if n == name] + [float("inf")])
            stale = [(round(t - at, 3), s) for n, t, s in load.records
                     if n == name and at + ROTATION_DEADLINE_S < t < until and s != serial]
            self.assertEqual(stale, [], "%s: old serials presented more than 1s after rotating to %s" % (name, serial))

        # The connections opened before each rotation still carry data.
        for i, (conn, name) in enumerate(live):
            harness.echo_roundtrip(conn, b"still here after %d rotations" % len(rotations))
        self.assertServing(proxy, ports["files"], files, leaf_serial(files_leaves[-1]))
        self.assertServing(proxy, ports["kube"], kube, leaf_serial(kube_leaves[-1]))
        stats = proxy.stats()
        self.assertEqual(stats["server.tls_rotation_success"], len(plan))
        # A rename of the cert, then of the key, is one change once debounced.
        self.assertNoRotationFailure(proxy)
        for name in ports:
            self.assertEqual(stats[proxy.listener_stat_prefix(name) + "ssl.connection_error"], 0)

    def test_certs_endpoint_describes_the_certificate_in_use(self):
        """GET /certs after a rotation: Envoy's Certificates JSON with the new certificate."""
        first, second = self.ca.leaf(INBOUND, name="certs-1"), self.ca.leaf(INBOUND, name="certs-2", days=3)
        files = CertDir(self.files, "server", first)
        proxy = self.start_inbound([self.mtls_listener("in", files)])
        self.rotate(files, second)
        harness.wait_until(lambda: tls_files.chain_serials(proxy).get(files.cert) == leaf_serial(second), 10,
                           what="/certs to show the rotated certificate")
        contexts = tls_files.certs(proxy)
        self.assertEqual(len(contexts), 1)
        (chain,) = contexts[0]["cert_chain"]
        self.assertEqual(set(chain), {"path", "serial_number", "subject_alt_names", "days_until_expiration",
                                      "valid_from", "expiration_time"})
        self.assertEqual(chain["path"], files.cert)
        self.assertEqual(chain["serial_number"], leaf_serial(second))
        self.assertRegex(chain["serial_number"], r"^[0-9a-f]+$")
        self.assertEqual(chain["subject_alt_names"], [{"uri": INBOUND}])
        self.assertIsInstance(chain["days_until_expiration"], str)
        self.assertIn(chain["days_until_expiration"], ("2", "3"))  # 3 days, less the seconds since minting
        for field in ("valid_from", "expiration_time"):
            self.assertRegex(chain[field], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual([c["serial_number"] for c in contexts[0]["ca_cert"]], [tls_files.pem_serial(self.ca.cert)])


class RotationAfterReloadTest(RotationTestCase):
    def test_a_reload_that_moves_the_certificate_moves_the_watch(self):
        """SIGHUP to a config naming certificates in another directory: rotations there take
        effect, and the old directory no longer matters."""
        a = [self.ca.leaf(INBOUND, name="a-%d" % i) for i in range(2)]
        b = [self.ca.leaf(INBOUND, name="b-%d" % i) for i in range(3)]
        dir_a, dir_b = CertDir(self.files, "a", a[0]), CertDir(self.files, "b", b[0])
        proxy = self.start_inbound([self.mtls_listener("in", dir_a)])
        port = proxy.listener_port("in")
        live = self.live_connection(port)
        cfg = harness.bootstrap([self.mtls_listener("in", dir_b)], [harness.static_cluster("echo", [self.echo.port])])
        proxy.write_config(cfg)
        proxy.signal(signal.SIGHUP)
        proxy.wait_stat("server.config_reload_success", 1)
        self.assertServing(proxy, port, dir_b, leaf_serial(b[0]))

        self.rotate(dir_b, b[1])
        self.assertLessEqual(self.wait_for_serial(port, leaf_serial(b[1]), time.monotonic()), ROTATION_DEADLINE_S)
        proxy.wait_stat("server.tls_rotation_success", 1)
        # A change in the old directory, no longer named by the config, changes nothing.
        self.rotate(dir_a, a[1])
        self.rotate(dir_b, b[2])
        self.wait_for_serial(port, leaf_serial(b[2]), time.monotonic())
        proxy.wait_stat("server.tls_rotation_success", 2)
        self.assertEqual(tls_files.chain_serials(proxy), {dir_b.cert: leaf_serial(b[2])})
        harness.echo_roundtrip(live, b"made before the reload and both rotations")
        self.assertNoRotationFailure(proxy)


class BusyDirectoryTest(RotationTestCase):
    def test_other_writes_in_the_certificate_directory_do_not_postpone_rotation(self):
        """The proxy watches whole directories, so writes to other files there (its own audit
        log, kept next to the certificates and written on every connection, and an application
        log) are events too. Under steady traffic they never leave 50 ms of quiet, and a
        debounce that restarts on every event would postpone the rotation for as long as the
        traffic lasts: it must still take effect within the deadline."""
        old, new = self.ca.leaf(INBOUND, name="busy-old"), self.ca.leaf(INBOUND, name="busy-new")
        files = CertDir(self.files, "server", old)
        proxy = self.start_inbound([self.mtls_listener("in", files)], audit_path=os.path.join(files.dir, "audit.log"))
        port = proxy.listener_port("in")

        stop = threading.Event()

        def app_log():
            with open(os.path.join(files.dir, "app.log"), "a") as f:
                while not stop.wait(0.01):
                    f.write("%f another line\n" % time.time())
                    f.flush()

        writer = threading.Thread(target=app_log, daemon=True)
        writer.start()
        self.addCleanup(writer.join, 5)
        self.addCleanup(stop.set)
        load = LoadLoop(ts.TlsClient(self.ca.cert, self.frontend), {"in": port}).start()
        self.addCleanup(load.stop)
        harness.wait_until(lambda: proxy.stat("audit.written") >= 20 or load.failures, 10,
                           what="traffic writing the audit log")

        self.rotate(files, new)
        delay = self.wait_for_serial(port, leaf_serial(new), time.monotonic())
        self.assertLessEqual(delay, ROTATION_DEADLINE_S, "rotation postponed by unrelated writes")
        load.stop()
        stop.set()
        self.assertEqual(load.failures, [])
        self.assertEqual(proxy.stat("server.tls_rotation_success"), 1)


class BrokenMaterialTest(RotationTestCase):
    def test_broken_and_mismatched_files_keep_the_old_certificate(self):
        """Garbage in the cert file, then a good cert whose key has not arrived yet, then the key
        file missing: each keeps the old certificate serving, counts one tls_rotation_failure
        and logs once, however many file events it gets. The matching key completes the
        rotation."""
        old, new = self.ca.leaf(INBOUND, name="old"), self.ca.leaf(INBOUND, name="new")
        files = CertDir(self.files, "server", old)
        # A second listener whose trust bundle rotations (one rename each, so they cannot fail)
        # prove the proxy has handled the file events before them.
        sentinel = CertDir(self.files, "sentinel", self.ca.leaf(INBOUND, name="sentinel"))
        sentinel_bundle = self.bundle_file("sentinel-bundle", self.ca)
        proxy = self.start_inbound([self.mtls_listener("in", files),
                                    self.mtls_listener("sentinel", sentinel, bundle=sentinel_bundle)])
        port = proxy.listener_port("in")
        live = self.live_connection(port)
        self.assertServing(proxy, port, files, leaf_serial(old))
        sentinel_rotations = [0]

        def same_failure_again(rewrite):
            """Rewrites the same broken state, then rotates the sentinel: once that took effect,
            the rewrite has been seen too, and must not have been counted again."""
            rewrite()
            sentinel_rotations[0] += 1
            authorities = (self.ca, self.other_ca) if sentinel_rotations[0] % 2 else (self.ca,)
            tls_files.replace_file(sentinel_bundle, "".join(tls_files.read(a.cert) for a in authorities))
            proxy.wait_stat("server.tls_rotation_success", sentinel_rotations[0])

        garbage = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
        steps = [
            ("garbage in the cert file", lambda: files.replace_cert(garbage)),
            ("a new cert with the old key", lambda: files.replace_cert(tls_files.read(new.cert))),
            ("the key file missing", lambda: os.unlink(files.key)),
        ]
        for failures, (what, change) in enumerate(steps, 1):
            with self.subTest(what):
                change()
                proxy.wait_stat("server.tls_rotation_failure", failures)
                self.assertServing(proxy, port, files, leaf_serial(old))
                if what == "the key file missing":
                    same_failure_again(lambda: tls_files.replace_file(files.cert + ".unrelated", "x"))
                else:
                    same_failure_again(change)
                self.assertEqual(proxy.stat("server.tls_rotation_failure"), failures, "counted twice")
                self.assertServing(proxy, port, files, leaf_serial(old))

        files.replace_key(tls_files.read(new.key))
        proxy.wait_stat("server.tls_rotation_success", sentinel_rotations[0] + 1)
        self.assertServing(proxy, port, files, leaf_serial(new))
        self.assertEqual(proxy.stat("server.tls_rotation_failure"), len(steps))
        harness.echo_roundtrip(live, b"the connection from before all this")
        with open(proxy.stderr_path) as f:
            logged = [line for line in f if KEPT_OLD_MATERIAL in line]
        self.assertEqual(len(logged), len(steps), "one log line per distinct failure:\n" + "".join(logged))
        self.assertIn("does not match", logged[1])
        self.assertIn(files.key, logged[2])

    def test_a_broken_file_at_startup_still_refuses_to_start(self):
        """Rotation keeps old material; with no old material there is nothing to serve."""
        files = CertDir(self.files, "server", self.ca.leaf(INBOUND, name="startup"))
        files.replace_cert("not a certificate\n")
        cfg = harness.bootstrap([self.mtls_listener("in", files)], [harness.static_cluster("echo", [1])])
        p = harness.Proxy(cfg)
        self.addCleanup(p.close)
        with self.assertRaises(harness.ProxyExited):
            p.start()
        self.assertNotEqual(p.returncode, 0)


class TrustBundleRotationTest(RotationTestCase):
    def handshake_rejected(self, port, session=None):
        """True when the proxy refuses our client certificate: with TLS 1.3 the client's side of
        the handshake completes first, and the alert arrives on the first read. With `session`,
        the client offers that session for resumption."""
        try:
            s = self.client.connect(port, session=session)
        except (ssl.SSLError, ConnectionError):
            return True
        with s:
            s.settimeout(5)
            try:
                s.sendall(b"let me in")
                return s.recv(64) == b""
            except (ssl.SSLError, ConnectionError):
                return True

    def test_bundle_that_stops_trusting_the_client_ca_rejects_new_handshakes_only(self):
        """The trust bundle (SPIFFE validator) and trusted_ca files are replaced with ones that
        no longer hold the clients' CA: new client handshakes fail as unknown_ca, connections
        made before keep working; putting the CA back lets clients in again."""
        server = CertDir(self.files, "server", self.ca.leaf(INBOUND, name="inbound"))
        bundle = self.bundle_file("spiffe-bundle", self.ca)
        trusted_ca = self.bundle_file("trusted-ca", self.ca)
        proxy = self.start_inbound([self.mtls_listener("spiffe", server, bundle=bundle),
                                    self.mtls_listener("trusted_ca", server, trusted_ca=trusted_ca)])
        names = ("spiffe", "trusted_ca")
        ports = {n: proxy.listener_port(n) for n in names}
        unknown_ca = {n: proxy.listener_stat_prefix(n) + "ssl.fail_verify_spiffe.unknown_ca" for n in names}
        live = {n: self.live_connection(ports[n]) for n in names}
        sessions = {n: live[n].session for n in names}  # tickets arrived with the echo
        for n in names:
            self.assertIsNotNone(sessions[n], "no session ticket to offer later")
        ca, other = tls_files.pem_serial(self.ca.cert), tls_files.pem_serial(self.other_ca.cert)
        self.assertEqual(tls_files.ca_serials(proxy), [[ca], [ca]])

        for path in (bundle, trusted_ca):
            tls_files.replace_file(path, tls_files.read(self.other_ca.cert))
        harness.wait_until(lambda: tls_files.ca_serials(proxy) == [[other], [other]], 10,
                           what="/certs to show the new bundles")
        before = proxy.stats()
        for n in names:
            with self.subTest("rejected", listener=n):
                self.assertTrue(self.handshake_rejected(ports[n]), "a client of the removed CA got in")
                # Resuming a session from before the change must not get around it either.
                self.assertTrue(self.handshake_rejected(ports[n], session=sessions[n]),
                                "a client of the removed CA got in by resuming its session")
        self.assertStatsDelta(proxy, before, {unknown_ca["spiffe"]: 2, unknown_ca["trusted_ca"]: 2})
        self.assertEqual(self.echo.accepted_count(), 2, "a rejected client reached the upstream")
        for n in names:
            harness.echo_roundtrip(live[n], b"verified before the bundle changed")

        successes = proxy.stat("server.tls_rotation_success")
        for path in (bundle, trusted_ca):
            tls_files.replace_file(path, tls_files.read(self.ca.cert) + tls_files.read(self.other_ca.cert))
        harness.wait_until(lambda: tls_files.ca_serials(proxy) == [[ca, other], [ca, other]], 10,
                           what="/certs to show the restored bundles")
        self.assertGreater(proxy.stat("server.tls_rotation_success"), successes)
        before = proxy.stats()
        for n in names:
            with self.subTest("accepted again", listener=n):
                self.assertEqual(peer_serial(self.client, ports[n]), leaf_serial(server))
        self.assertStatsDelta(proxy, before, {unknown_ca["spiffe"]: 0, unknown_ca["trusted_ca"]: 0})
        for n in names:
            harness.echo_roundtrip(live[n], b"and after it changed back")
        self.assertEqual(proxy.stat("server.tls_rotation_failure"), 0)


class UpstreamRotationTest(RotationTestCase):
    def test_rotated_client_certificate_reaches_the_inbound_audit_log(self):
        """outbound portcullis (UpstreamTlsContext cert from files) -> inbound portcullis (mTLS
        listener, audit log). After the outbound's client certificate is rotated, the inbound's
        audit records show the new serial for new connections, not a resumed old session, and a
        connection opened before the rotation keeps its upstream."""
        audit_path = os.path.join(self.files, "inbound-audit.log")
        server = CertDir(self.files, "inbound", self.ca.leaf(INBOUND, name="inbound"))
        first, second = self.ca.leaf(FRONTEND, name="client-1"), self.ca.leaf(FRONTEND, name="client-2")
        client_dir = CertDir(self.files, "outbound", first)
        inbound = self.start_inbound([self.mtls_listener("in", server)], audit_path=audit_path)
        transport = ts.upstream_tls(client_dir.leaf(), trust_domains={TD: self.ca.cert},
                                    san_matchers=[("URI", {"exact": INBOUND})])
        outbound = self.start_proxy(harness.bootstrap(
            [harness.tcp_proxy_listener("out", "mesh")],
            [ts.tls_cluster("mesh", [inbound.listener_port("in")], transport)]), concurrency=1)
        out_port = outbound.listener_port("out")

        def connect_through(message):
            s = self.connect(out_port)
            s.settimeout(5)
            harness.echo_roundtrip(s, message)
            return s

        def allow_records():
            return [r for r in tls_files.audit_records(audit_path) if r["decision"] == "allow"]

        live = connect_through(b"first")
        connect_through(b"second").close()  # resumes the first one's session
        harness.wait_until(lambda: len(allow_records()) == 2, 10, what="two allow records")
        self.assertEqual([r["cert_serial"] for r in allow_records()], [leaf_serial(first)] * 2)
        self.assertGreater(outbound.stat("cluster.mesh.ssl.session_reused"), 0)

        self.rotate(client_dir, second)
        outbound.wait_stat("server.tls_rotation_success", 1)
        self.assertEqual(tls_files.chain_serials(outbound)[client_dir.cert], leaf_serial(second))
        for i in range(3):
            connect_through(b"after rotation %d" % i).close()
        harness.wait_until(lambda: len(allow_records()) == 5, 10, what="three more allow records")
        records = allow_records()
        self.assertEqual([r["cert_serial"] for r in records[2:]], [leaf_serial(second)] * 3)
        self.assertEqual({r["peer_spiffe_id"] for r in records}, {FRONTEND})
        harness.echo_roundtrip(live, b"the upstream connection from before the rotation")
        self.assertNoRotationFailure(outbound)


if __name__ == "__main__":
    harness.main()
