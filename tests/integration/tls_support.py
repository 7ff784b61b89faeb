"""mTLS pieces for the integration tests: Envoy-shaped TLS and RBAC config builders, and real TLS
peers driven as subprocesses, each its own TLS stack: `openssl s_client`, `curl` and HAProxy.

The peers follow harness.py's rules: deadlines instead of sleeps, cleanup also on failure
(`TlsTestCase.haproxy()` registers the process; s_client and curl runs are bounded by timeouts).
"""

import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import harness
import pki
from harness import IntegrationTestCase

TLS_SOCKET = "envoy.transport_sockets.tls"
DOWNSTREAM_TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
UPSTREAM_TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
SPIFFE_VALIDATOR = "envoy.tls.cert_validator.spiffe"
SPIFFE_VALIDATOR_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig"
RBAC_FILTER = "envoy.filters.network.rbac"
RBAC_TYPE = "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"

# The names `ssl.fail_verify_spiffe.<reason>` takes (mtls/x509_svid_verifier.cc).
SVID_REJECTIONS = ("no_certificate", "no_uri_san", "multiple_uri_sans", "invalid_spiffe_id", "no_workload_path",
                   "leaf_is_ca", "leaf_key_usage", "unknown_trust_domain", "unknown_ca", "intermediate_not_ca",
                   "expired", "not_yet_valid", "bad_signature", "chain_invalid", "invalid_attested_claims",
                   "san_mismatch", "revoked")


# ---------------------------------------------------------------------------------------------
# Config builders


def data_source(path, inline=False):
    if inline:
        with open(path) as f:
            return {"inline_string": f.read()}
    return {"filename": path}


def common_tls_context(leaf=None, trust_domains=None, trusted_ca=None, san_matchers=None, min_version=None,
                       max_version=None, ecdh_curves=None, alpn=None, inline=False):
    """trust_domains: {name: bundle path} for the SPIFFE validator; trusted_ca: a PEM path.
    san_matchers: [(san_type, {matcher})]."""
    ctx = {}
    params = {}
    if min_version:
        params["tls_minimum_protocol_version"] = min_version
    if max_version:
        params["tls_maximum_protocol_version"] = max_version
    if ecdh_curves:
        params["ecdh_curves"] = list(ecdh_curves)
    if params:
        ctx["tls_params"] = params
    if leaf is not None:
        ctx["tls_certificates"] = [{"certificate_chain": data_source(leaf.cert, inline),
                                    "private_key": data_source(leaf.key, inline)}]
    if alpn:
        ctx["alpn_protocols"] = list(alpn)
    vc = {}
    if trusted_ca:
        vc["trusted_ca"] = data_source(trusted_ca, inline)
    if trust_domains:
        vc["custom_validator_config"] = {
            "name": SPIFFE_VALIDATOR,
            "typed_config": {"@type": SPIFFE_VALIDATOR_TYPE,
                             "trust_domains": [{"name": name, "trust_bundle": data_source(path, inline)}
                                               for name, path in trust_domains.items()]}}
    if san_matchers:
        vc["match_typed_subject_alt_names"] = [{"san_type": t, "matcher": m} for t, m in san_matchers]
    if vc:
        ctx["validation_context"] = vc
    return ctx


def downstream_tls(leaf, require_client_certificate=True, **common):
    return {"name": TLS_SOCKET,
            "typed_config": {"@type": DOWNSTREAM_TLS_TYPE,
                             "require_client_certificate": require_client_certificate,
                             "common_tls_context": common_tls_context(leaf, **common)}}


def upstream_tls(leaf, sni=None, **common):
    tc = {"@type": UPSTREAM_TLS_TYPE}
    if sni:
        tc["sni"] = sni
    tc["common_tls_context"] = common_tls_context(leaf, **common)
    return {"name": TLS_SOCKET, "typed_config": tc}


def rbac_filter(stat_prefix, rules=None, shadow_rules=None):
    tc = {"@type": RBAC_TYPE, "stat_prefix": stat_prefix}
    if rules is not None:
        tc["rules"] = rules
    if shadow_rules is not None:
        tc["shadow_rules"] = shadow_rules
    return {"name": RBAC_FILTER, "typed_config": tc}


def rbac_rules(action, policies):
    """policies: {name: (permissions, principals)}."""
    return {"action": action,
            "policies": {name: {"permissions": perms, "principals": principals}
                         for name, (perms, principals) in policies.items()}}


def principal_is(spiffe_id):
    return {"authenticated": {"principal_name": {"exact": spiffe_id}}}


def tls_listener(name, cluster, transport_socket=None, filters=(), port=0, handshake_timeout=None,
                 stat_prefix=None):
    """A tcp_proxy listener whose chain has `transport_socket` and `filters` before tcp_proxy."""
    listener = harness.tcp_proxy_listener(name, cluster, port=port, stat_prefix=stat_prefix)
    chain = listener["filter_chains"][0]
    chain["filters"] = list(filters) + chain["filters"]
    if transport_socket is not None:
        chain["transport_socket"] = transport_socket
    if handshake_timeout is not None:
        chain["transport_socket_connect_timeout"] = handshake_timeout
    return listener


def tls_cluster(name, ports, transport_socket=None, connect_timeout="2s"):
    c = harness.static_cluster(name, ports, connect_timeout)
    if transport_socket is not None:
        c["transport_socket"] = transport_socket
    return c


# ---------------------------------------------------------------------------------------------
# openssl s_client


class SClientResult:
    def __init__(self, returncode, received, stderr):
        self.returncode = returncode
        self.received = received
        self.stderr = stderr

    def protocol(self):
        for line in self.stderr.splitlines():
            if line.startswith("Protocol version:"):
                return line.split(":", 1)[1].strip()
        return None

    def __repr__(self):
        return "SClientResult(rc=%r, received=%r, stderr=%r)" % (self.returncode, self.received[:64],
                                                                  self.stderr[-600:])


def s_client(port, message=b"hello over mTLS\n", leaf=None, cafile=None, tls_version=None, servername=None,
             timeout=5.0, extra=()):
    """Connects with `openssl s_client`, sends `message` and reads until the same number of bytes
    came back (an echo upstream), the connection ends or `timeout` passes. -brief prints the
    negotiated protocol on stderr; -verify_return_error makes a bad server certificate fatal."""
    args = ["openssl", "s_client", "-connect", "%s:%d" % (harness.LOOPBACK, port), "-brief",
            "-verify_return_error"]
    if cafile:
        args += ["-CAfile", cafile]
    if leaf is not None:
        args += ["-cert", leaf.cert, "-key", leaf.key]
        if leaf.extra_chain:
            args += ["-cert_chain", leaf.extra_chain]
    if tls_version:
        args += ["-" + tls_version]  # tls1_2 / tls1_3
    args += ["-servername", servername] if servername else ["-noservername"]
    args += list(extra)
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    received = b""
    try:
        try:
            p.stdin.write(message)
            p.stdin.flush()
        except BrokenPipeError:
            pass  # it already gave up
        deadline = time.monotonic() + timeout
        fd = p.stdout.fileno()
        while len(received) < len(message):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            received += chunk
    finally:
        if p.poll() is None and len(received) >= len(message):
            p.terminate()  # done: it would otherwise wait for the server to close
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        stderr = p.stderr.read().decode("utf-8", "replace")
        for f in (p.stdin, p.stdout, p.stderr):
            try:
                f.close()
            except BrokenPipeError:
                pass
    return SClientResult(p.returncode, received, stderr)


# ---------------------------------------------------------------------------------------------
# Python's ssl module, for tests that need socket-level control (EOF vs echo, resumption)


class TlsClient:
    """One client SSLContext (so a session from one connection can be offered on the next):
    presents `leaf` if given, verifies the server against `cafile` (chain only: the proxy's
    own name check is the SAN matchers' business, tested elsewhere)."""

    def __init__(self, cafile, leaf=None):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.check_hostname = False
        self.ctx.load_verify_locations(cafile)
        if leaf is not None:
            self.ctx.load_cert_chain(leaf.cert, leaf.key)

    def connect(self, port, sni=None, session=None, timeout=5.0, address=harness.LOOPBACK):
        raw = socket.create_connection((address, port), timeout=timeout)
        try:
            return self.ctx.wrap_socket(raw, server_hostname=sni, session=session)
        except BaseException:
            raw.close()
            raise


# ---------------------------------------------------------------------------------------------
# curl


def curl(port, host, leaf=None, cafile=None, path="/", extra=(), timeout=10):
    """HTTPS GET https://host:port/path with host resolved to 127.0.0.1 (so SNI and the
    certificate name check use `host`). Returns CompletedProcess (text)."""
    args = ["curl", "--silent", "--show-error", "--max-time", "5", "--resolve", "%s:%d:%s" % (host, port, harness.LOOPBACK),
            "https://%s:%d%s" % (host, port, path)]
    if cafile:
        args += ["--cacert", cafile]
    if leaf is not None:
        args += ["--cert", leaf.cert, "--key", leaf.key]
    args += list(extra)
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def http_handler(body=b"hello from the backend\n"):
    """A backend answering one HTTP/1.1 request with 200 and `body`, then closing."""

    def handle(conn, server):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        conn.shutdown(socket.SHUT_WR)

    return handle


# ---------------------------------------------------------------------------------------------
# HAProxy


def have_haproxy():
    return shutil.which("haproxy") is not None


HAPROXY_PREAMBLE = """global
  maxconn 200
  nbthread 1
  log stderr format raw local0 info
defaults
  mode tcp
  log global
  option tcplog
  timeout connect 2s
  timeout client 20s
  timeout server 20s
"""


def listening(port):
    """True when some socket on this host listens on TCP `port` (from /proc/net/tcp)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                        return True
        except OSError:
            continue
    return False


class HAProxy:
    """haproxy -db with `body` (frontends and backends) after a common preamble. `{port}` in
    body is replaced by a free port, which `self.port` holds once started."""

    def __init__(self, body):
        self.dir = tempfile.mkdtemp(prefix="portcullis-it-haproxy-")
        self.body = body
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.dir, "haproxy.log")

    def start(self, attempts=3):
        for _ in range(attempts):
            self.port = harness.closed_port()
            cfg = os.path.join(self.dir, "haproxy.cfg")
            with open(cfg, "w") as f:
                f.write(HAPROXY_PREAMBLE + self.body.replace("{port}", str(self.port)))
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=self._log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            harness._live_processes.add(self.proc)

            def up():
                # Not a probe connection: through a frontend that one would reach the backend.
                if self.proc.poll() is not None:
                    return "exited"
                return "up" if listening(self.port) else None

            state = harness.wait_until(up, 10, what="haproxy to listen on %d" % self.port)
            if state == "up":
                return self
            self._log.close()
            harness._live_processes.discard(self.proc)  # lost the port race: try another
        raise AssertionError("haproxy did not start:\n%s" % self.log())

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-20000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            harness._live_processes.discard(self.proc)
            self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# unittest glue


class TlsTestCase(IntegrationTestCase):
    """Skips without the openssl CLI; gives each test class a Pki in a temp dir."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not pki.have_openssl():
            raise unittest.SkipTest("the openssl CLI is not installed (scripts/install-deps.sh test)")
        cls.tmp = tempfile.mkdtemp(prefix="portcullis-it-pki-")
        cls.pki = pki.Pki(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def haproxy(self, body):
        if not have_haproxy():
            self.skipTest("haproxy is not installed (apt-get install haproxy, or scripts/install-deps.sh test)")
        hp = HAProxy(body)
        self.addCleanup(hp.close)
        self.addCleanup(self._dump_haproxy_log_if_failed, hp)
        hp.start()
        return hp

    def _dump_haproxy_log_if_failed(self, hp):
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and not outcome.success:
            print("\n===== haproxy log for %s =====\n%s" % (self.id(), hp.log()))

    def assertStatsDelta(self, proxy, before, expected):
        """Each stat in `expected` moved by exactly that much since `before` (a stats() dict);
        waits for the counters, which a worker bumps after the client already saw the close."""
        def done():
            now = proxy.stats()
            return all(now.get(k, 0) - before.get(k, 0) == v for k, v in expected.items()) and now

        try:
            now = harness.wait_until(done, 5, what="stats deltas %r" % expected)
        except harness.Timeout:
            now = proxy.stats()
            got = {k: now.get(k, 0) - before.get(k, 0) for k in expected}
            self.assertEqual(got, expected, "stat deltas")
        return now
