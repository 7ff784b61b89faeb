"""mTLS against independent TLS stacks: openssl s_client and curl as clients, HAProxy as the mTLS
upstream server and as the mTLS downstream client, and two portcullis instances talking to each
other. Every peer is verified as an X.509-SVID; each rejection is checked on the wire (no echo,
no upstream connection) and in its `ssl.*` counter.

Certificates are minted per test class with the openssl CLI (pki.py). HAProxy tests skip when
haproxy is not installed.
"""

import hashlib
import random
import socket
import threading
import time

import harness
import pki
import prometheus
import tls_support as ts
from tls_support import TlsTestCase

TD = "example.org"
FRONTEND = "spiffe://example.org/frontend"
INBOUND = "spiffe://example.org/inbound"
HAPROXY_ID = "spiffe://example.org/haproxy"
MB = 1 << 20


class SvidAuthorities(TlsTestCase):
    """Mints the trust domains every test here uses: example.org (trusted), other.org (trusted,
    for its own IDs only) and a rogue root nobody trusts."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ca = cls.pki.authority(TD)
        cls.other_ca = cls.pki.authority("other.org")
        cls.rogue_ca = cls.pki.authority("rogue", subject="/O=portcullis-it/CN=example.org root")
        cls.inbound = cls.ca.leaf(INBOUND, name="inbound", dns=["inbound.test"])
        cls.frontend = cls.ca.leaf(FRONTEND, name="frontend")

    def trust(self, *domains):
        cas = {TD: self.ca, "other.org": self.other_ca}
        return {d: cas[d].cert for d in (domains or (TD,))}

    def start_inbound(self, upstream_port, trust_domains=None, handshake_timeout=None, filters=(), **tls):
        """portcullis with one mTLS listener `in` in front of `upstream_port` (plaintext)."""
        transport = ts.downstream_tls(self.inbound, trust_domains=trust_domains or self.trust(), **tls)
        cfg = harness.bootstrap(
            [ts.tls_listener("in", "echo", transport, filters=filters, handshake_timeout=handshake_timeout)],
            [harness.static_cluster("echo", [upstream_port])])
        proxy = self.start_proxy(cfg)
        return proxy, proxy.listener_port("in"), proxy.listener_stat_prefix("in") + "ssl."


class DownstreamSClientTest(SvidAuthorities):
    """openssl s_client against a portcullis DownstreamTlsContext listener (SPIFFE validator)."""

    def test_good_svid_handshakes_and_echoes(self):
        upstream = self.echo_server()
        proxy, port, ssl = self.start_inbound(upstream.port)
        r = ts.s_client(port, leaf=self.frontend, cafile=self.ca.cert)
        self.assertEqual(r.received, b"hello over mTLS\n", r)
        self.assertEqual(r.protocol(), "TLSv1.3", r)  # TLS 1.3 only unless configured
        self.assertIn("Verification: OK", r.stderr)  # s_client verified portcullis's SVID too
        proxy.wait_stat(ssl + "handshake", 1)
        self.assertEqual(upstream.accepted_count(), 1)
        stats = proxy.stats()
        for reason in ts.SVID_REJECTIONS:
            self.assertEqual(stats[ssl + "fail_verify_spiffe." + reason], 0, reason)
        for name in ("connection_error", "no_certificate", "fail_verify_error", "fail_verify_san", "handshake_timeout"):
            self.assertEqual(stats[ssl + name], 0, name)

    def test_svid_through_an_intermediate_is_accepted(self):
        intermediate = self.ca.subordinate("example.org-issuing")
        leaf = intermediate.leaf(FRONTEND, name="via-intermediate")
        upstream = self.echo_server()
        proxy, port, ssl = self.start_inbound(upstream.port)
        r = ts.s_client(port, leaf=leaf, cafile=self.ca.cert)
        self.assertEqual(r.received, b"hello over mTLS\n", r)
        proxy.wait_stat(ssl + "handshake", 1)

    def test_each_bad_client_certificate_is_rejected_and_counted_by_reason(self):
        ca, other, rogue = self.ca, self.other_ca, self.rogue_ca
        cases = [
            ("no client certificate", None, "no_certificate", "no_certificate"),
            ("expired", ca.leaf(FRONTEND, not_before="20200101000000Z", not_after="20200201000000Z"), "expired",
             "fail_verify_error"),
            ("not yet valid", ca.leaf(FRONTEND, not_before="20990101000000Z", not_after="20991231000000Z"),
             "not_yet_valid", "fail_verify_error"),
            ("CA:TRUE leaf", ca.leaf(FRONTEND, ca=True), "leaf_is_ca", "fail_verify_error"),
            ("two URI SANs", ca.leaf(uris=[FRONTEND, "spiffe://example.org/admin"]), "multiple_uri_sans",
             "fail_verify_error"),
            ("DNS SAN only", ca.leaf(uris=[], dns=["frontend.example.org"]), "no_uri_san", "fail_verify_error"),
            ("keyCertSign leaf", ca.leaf(FRONTEND, key_usage="critical,digitalSignature,keyCertSign"),
             "leaf_key_usage", "fail_verify_error"),
            ("cRLSign leaf", ca.leaf(FRONTEND, key_usage="critical,digitalSignature,cRLSign"), "leaf_key_usage",
             "fail_verify_error"),
            ("no keyUsage", ca.leaf(FRONTEND, key_usage=None), "leaf_key_usage", "fail_verify_error"),
            ("unknown CA", rogue.leaf(FRONTEND), "unknown_ca", "fail_verify_error"),
            ("other.org's CA signs an example.org ID", other.leaf(FRONTEND), "unknown_ca", "fail_verify_error"),
            ("trust domain without a bundle", ca.leaf("spiffe://elsewhere.org/frontend"), "unknown_trust_domain",
             "fail_verify_error"),
            ("not a SPIFFE ID", ca.leaf("https://example.org/frontend"), "invalid_spiffe_id", "fail_verify_error"),
            ("'..' path segment", ca.leaf("spiffe://example.org/a/../frontend"), "invalid_spiffe_id",
             "fail_verify_error"),
            ("trust domain ID, no workload path", ca.leaf("spiffe://example.org"), "no_workload_path",
             "fail_verify_error"),
            ("intermediate with CA:FALSE", ca.subordinate("not-a-ca", ca=False).leaf(FRONTEND), "intermediate_not_ca",
             "fail_verify_error"),
            ("tampered signature", pki.tamper_signature(ca.leaf(FRONTEND)), "bad_signature", "fail_verify_error"),
        ]
        upstream = self.echo_server()
        proxy, port, ssl = self.start_inbound(upstream.port, trust_domains=self.trust(TD, "other.org"))
        for what, leaf, reason, summary in cases:
            with self.subTest(what):
                before = proxy.stats()
                r = ts.s_client(port, leaf=leaf, cafile=self.ca.cert)
                self.assertEqual(r.received, b"", r)
                self.assertNotEqual(r.returncode, 0, r)
                self.assertStatsDelta(proxy, before, {ssl + "fail_verify_spiffe." + reason: 1, ssl + summary: 1,
                                                      ssl + "handshake": 0, ssl + "connection_error": 0})
        self.assertEqual(upstream.accepted_count(), 0, "a rejected peer reached the upstream")
        self.assertEqual(proxy.stat("cluster.echo.upstream_cx_total"), 0)
        # The per-reason counters are labelled Prometheus series like every other listener stat.
        status, body = proxy.get("/stats/prometheus")
        self.assertEqual((status, prometheus.validate(body)), (200, []))
        tag = proxy.listener_stat_prefix("in")[len("listener."):-1]
        for reason, n in (("unknown_ca", 2), ("leaf_key_usage", 3), ("expired", 1)):
            self.assertIn('envoy_listener_ssl_fail_verify_spiffe_%s{envoy_listener_address="%s"} %d' % (reason, tag, n),
                          body.splitlines())
        # other.org's CA is trusted for other.org IDs, and example.org's still works afterwards.
        r = ts.s_client(port, leaf=other.leaf("spiffe://other.org/frontend"), cafile=self.ca.cert)
        self.assertEqual(r.received, b"hello over mTLS\n", r)
        r = ts.s_client(port, leaf=self.frontend, cafile=self.ca.cert)
        self.assertEqual(r.received, b"hello over mTLS\n", r)
        proxy.wait_stat(ssl + "handshake", 2)

    def test_trusted_ca_from_inline_strings_and_dns_san_matcher(self):
        """validation_context.trusted_ca (not the SPIFFE validator), every data source inline,
        and a DNS match_typed_subject_alt_names entry: an SVID still needs its URI SAN."""
        upstream = self.echo_server()
        transport = ts.downstream_tls(self.inbound, trusted_ca=self.ca.cert, inline=True,
                                      san_matchers=[("DNS", {"suffix": ".clients.test"})])
        proxy = self.start_proxy(harness.bootstrap([ts.tls_listener("in", "echo", transport)],
                                                   [harness.static_cluster("echo", [upstream.port])]))
        port, ssl = proxy.listener_port("in"), proxy.listener_stat_prefix("in") + "ssl."
        good = self.ca.leaf(FRONTEND, dns=["web.clients.test"])
        r = ts.s_client(port, leaf=good, cafile=self.ca.cert)
        self.assertEqual(r.received, b"hello over mTLS\n", r)
        before = proxy.stats()
        r = ts.s_client(port, leaf=self.frontend, cafile=self.ca.cert)  # no DNS SAN at all
        self.assertEqual(r.received, b"", r)
        self.assertStatsDelta(proxy, before, {ssl + "fail_verify_san": 1, ssl + "fail_verify_spiffe.san_mismatch": 1})
        before = proxy.stats()
        r = ts.s_client(port, leaf=self.rogue_ca.leaf(FRONTEND, dns=["web.clients.test"]), cafile=self.ca.cert)
        self.assertEqual(r.received, b"", r)
        self.assertStatsDelta(proxy, before, {ssl + "fail_verify_spiffe.unknown_ca": 1})
        self.assertEqual(upstream.accepted_count(), 1)


class TlsVersionTest(SvidAuthorities):
    def test_tls12_is_refused_unless_configured(self):
        upstream = self.echo_server()
        proxy, port, ssl = self.start_inbound(upstream.port)
        r = ts.s_client(port, leaf=self.frontend, cafile=self.ca.cert, tls_version="tls1_2")
        self.assertEqual(r.received, b"", r)
        self.assertIn("protocol version", r.stderr)
        proxy.wait_stat(ssl + "connection_error", 1)
        c = ts.curl(port, "inbound.test", leaf=self.frontend, cafile=self.ca.cert, extra=["--tlsv1.2", "--tls-max", "1.2"])
        self.assertNotEqual(c.returncode, 0, c)
        proxy.wait_stat(ssl + "connection_error", 2)
        self.assertEqual(proxy.stat(ssl + "handshake"), 0)
        self.assertEqual(upstream.accepted_count(), 0)

    def test_tls12_minimum_accepts_both_and_still_verifies_in_the_handshake(self):
        upstream = self.echo_server()
        proxy, port, ssl = self.start_inbound(upstream.port, min_version="TLSv1_2")
        r = ts.s_client(port, leaf=self.frontend, cafile=self.ca.cert, tls_version="tls1_2")
        self.assertEqual((r.received, r.protocol()), (b"hello over mTLS\n", "TLSv1.2"), r)
        r = ts.s_client(port, leaf=self.frontend, cafile=self.ca.cert)
        self.assertEqual((r.received, r.protocol()), (b"hello over mTLS\n", "TLSv1.3"), r)
        proxy.wait_stat(ssl + "handshake", 2)
        # In TLS 1.2 the client learns of the rejection inside the handshake.
        expired = self.ca.leaf(FRONTEND, not_before="20200101000000Z", not_after="20200201000000Z")
        r = ts.s_client(port, leaf=expired, cafile=self.ca.cert, tls_version="tls1_2")
        self.assertEqual(r.received, b"", r)
        self.assertNotIn("CONNECTION ESTABLISHED", r.stderr)
        self.assertIn("certificate expired", r.stderr)
        proxy.wait_stat(ssl + "fail_verify_spiffe.expired", 1)
        self.assertEqual(upstream.accepted_count(), 2)

    def test_tls12_maximum_refuses_tls13_only_clients(self):
        upstream = self.echo_server()
        proxy, port, ssl = self.start_inbound(upstream.port, min_version="TLSv1_2", max_version="TLSv1_2",
                                              ecdh_curves=["P-256"])
        r = ts.s_client(port, leaf=self.frontend, cafile=self.ca.cert, tls_version="tls1_3")
        self.assertEqual(r.received, b"", r)
        proxy.wait_stat(ssl + "connection_error", 1)
        r = ts.s_client(port, leaf=self.frontend, cafile=self.ca.cert)
        self.assertEqual((r.received, r.protocol()), (b"hello over mTLS\n", "TLSv1.2"), r)
        self.assertIn("Server Temp Key: ECDH, prime256v1", r.stderr)  # ecdh_curves: P-256 only


class HandshakeTimeoutTest(SvidAuthorities):
    def test_silent_and_stalled_clients_are_closed_after_transport_socket_connect_timeout(self):
        upstream = self.echo_server()
        proxy, port, ssl = self.start_inbound(upstream.port, handshake_timeout="0.5s")
        for what, first_bytes in (("sends nothing", b""), ("half a ClientHello header", b"\x16\x03\x01")):
            with self.subTest(what):
                before = proxy.stats()
                s = self.connect(port)
                if first_bytes:
                    s.sendall(first_bytes)
                start = time.monotonic()
                kind, data = harness.closed_by_peer(s, timeout=5)
                waited = time.monotonic() - start
                self.assertEqual(data, b"")
                self.assertGreaterEqual(waited, 0.4, "closed before the 0.5s handshake timeout")
                self.assertLess(waited, 3.0, "outlived its 0.5s handshake timeout by far")
                self.assertStatsDelta(proxy, before, {ssl + "handshake_timeout": 1, ssl + "handshake": 0})
        proxy.wait_stat("server.total_connections", 0)
        self.assertEqual(upstream.accepted_count(), 0)
        # The timeout covers the handshake only: a completed one proxies past it.
        r = ts.s_client(port, leaf=self.frontend, cafile=self.ca.cert)
        self.assertEqual(r.received, b"hello over mTLS\n", r)
        s = self.connect(port)  # and it is still enforced afterwards
        self.assertEqual(harness.closed_by_peer(s, timeout=5)[1], b"")
        proxy.wait_stat(ssl + "handshake_timeout", 3)

    def test_zero_timeout_disables_it_as_in_envoy(self):
        """Envoy: transport_socket_connect_timeout applies "if present and nonzero"."""
        upstream = self.echo_server()
        proxy, port, ssl = self.start_inbound(upstream.port, handshake_timeout="0s")
        r = ts.s_client(port, leaf=self.frontend, cafile=self.ca.cert)
        self.assertEqual(r.received, b"hello over mTLS\n", r)
        s = self.connect(port)
        with self.assertRaises(harness.Timeout):
            harness.closed_by_peer(s, timeout=1.0)  # a silent client is left alone
        self.assertEqual(proxy.stat(ssl + "handshake_timeout"), 0)


class CurlTest(SvidAuthorities):
    """curl (HTTPS, its own name check against the listener's DNS SAN) through an mTLS listener to
    a plaintext HTTP backend."""

    def test_curl_with_and_without_a_client_svid(self):
        backend = self.server(ts.http_handler(b"behind portcullis\n"))
        proxy, port, ssl = self.start_inbound(backend.port, alpn=["http/1.1"])
        c = ts.curl(port, "inbound.test", leaf=self.frontend, cafile=self.ca.cert, extra=["-v"])
        self.assertEqual((c.returncode, c.stdout), (0, "behind portcullis\n"), c.stderr)
        self.assertIn("ALPN: server accepted http/1.1", c.stderr)
        proxy.wait_stat(ssl + "handshake", 1)

        before = proxy.stats()
        c = ts.curl(port, "inbound.test", cafile=self.ca.cert)
        self.assertNotEqual(c.returncode, 0, c)
        self.assertEqual(c.stdout, "")
        self.assertStatsDelta(proxy, before, {ssl + "no_certificate": 1, ssl + "fail_verify_spiffe.no_certificate": 1})

        before = proxy.stats()
        c = ts.curl(port, "inbound.test", leaf=self.ca.leaf(FRONTEND, ca=True), cafile=self.ca.cert)
        self.assertNotEqual(c.returncode, 0, c)
        self.assertStatsDelta(proxy, before, {ssl + "fail_verify_error": 1, ssl + "fail_verify_spiffe.leaf_is_ca": 1})

        # curl refuses portcullis when it does not trust portcullis's CA: nothing reaches the backend.
        before = proxy.stats()
        c = ts.curl(port, "inbound.test", leaf=self.frontend, cafile=self.rogue_ca.cert)
        self.assertEqual(c.returncode, 60, c)  # CURLE_PEER_FAILED_VERIFICATION
        self.assertStatsDelta(proxy, before, {ssl + "connection_error": 1, ssl + "handshake": 0})
        self.assertEqual(backend.accepted_count(), 1)


# ---------------------------------------------------------------------------------------------
# HAProxy


class HAProxyUpstreamTest(SvidAuthorities):
    """portcullis (plaintext listener, cluster with UpstreamTlsContext) -> HAProxy (`bind ... ssl
    verify required`) -> plaintext echo."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.haproxy_leaf = cls.ca.leaf(HAPROXY_ID, name="haproxy")
        cls.client = cls.ca.leaf("spiffe://example.org/portcullis-outbound", name="outbound")

    def start_haproxy(self, echo_port, bind_options=""):
        return self.haproxy(
            "frontend mtls_in\n"
            "  bind 127.0.0.1:{port} ssl crt %s ca-file %s verify required %s\n"
            "  tcp-request content reject if !{ ssl_fc_sni -m str haproxy.test }\n"
            "  default_backend echo\n"
            "backend echo\n"
            "  server echo 127.0.0.1:%d\n" % (self.haproxy_leaf.pem, self.ca.cert, bind_options, echo_port))

    def start_outbound(self, haproxy_port, client=None, san=HAPROXY_ID, sni="haproxy.test", **tls):
        transport = ts.upstream_tls(client or self.client, sni=sni, trust_domains=self.trust(),
                                    san_matchers=[("URI", {"exact": san})], **tls)
        cfg = harness.bootstrap([harness.tcp_proxy_listener("out", "haproxy")],
                                [ts.tls_cluster("haproxy", [haproxy_port], transport)])
        return self.start_proxy(cfg)

    def test_echo_through_haproxy_mtls_server(self):
        echo = self.echo_server()
        hp = self.start_haproxy(echo.port)
        proxy = self.start_outbound(hp.port)
        s = self.connect(proxy.listener_port("out"))
        s.settimeout(5)
        for i in range(3):
            harness.echo_roundtrip(s, b"through haproxy %d " % i * 1000)
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(harness.closed_by_peer(s, timeout=5), ("eof", b""))
        proxy.wait_stat("cluster.haproxy.ssl.handshake", 1)
        self.assertEqual(echo.accepted_count(), 1)
        self.assertEqual(proxy.stat("cluster.haproxy.ssl.fail_verify_error"), 0)

    def test_cluster_sni_reaches_haproxy(self):
        """haproxy rejects any SNI but haproxy.test: the cluster's `sni` is what it sees."""
        echo = self.echo_server()
        hp = self.start_haproxy(echo.port)
        wrong = self.start_outbound(hp.port, sni="payments.test")
        s = self.connect(wrong.listener_port("out"))
        s.sendall(b"must not arrive")
        self.assertEqual(harness.closed_by_peer(s, timeout=5)[1], b"")
        self.assertEqual(echo.accepted_count(), 0)
        right = self.start_outbound(hp.port)
        s = self.connect(right.listener_port("out"))
        s.settimeout(5)
        harness.echo_roundtrip(s, b"with the right SNI")
        self.assertEqual(echo.accepted_count(), 1)

    def test_haproxy_refuses_a_client_svid_from_an_untrusted_ca(self):
        echo = self.echo_server()
        hp = self.start_haproxy(echo.port)
        proxy = self.start_outbound(hp.port, client=self.rogue_ca.leaf("spiffe://example.org/portcullis-outbound"))
        s = self.connect(proxy.listener_port("out"))
        s.sendall(b"must not arrive")
        kind, data = harness.closed_by_peer(s, timeout=5)
        self.assertEqual(data, b"")
        self.assertEqual(echo.accepted_count(), 0, "haproxy let an untrusted client through")
        proxy.wait_stat("server.total_connections", 0)

    def test_outbound_rejects_haproxy_whose_spiffe_id_fails_the_san_matcher(self):
        echo = self.echo_server()
        hp = self.start_haproxy(echo.port)
        proxy = self.start_outbound(hp.port, san="spiffe://example.org/payments")
        s = self.connect(proxy.listener_port("out"))
        s.sendall(b"must not arrive")
        kind, data = harness.closed_by_peer(s, timeout=5)
        self.assertEqual(data, b"")
        proxy.wait_stat("cluster.haproxy.ssl.fail_verify_san", 1)
        stats = proxy.stats()
        self.assertEqual(stats["cluster.haproxy.ssl.fail_verify_spiffe.san_mismatch"], 1)
        self.assertEqual(stats["cluster.haproxy.ssl.handshake"], 0)
        self.assertEqual(stats["cluster.haproxy.upstream_cx_connect_fail"], 1)
        self.assertEqual(echo.accepted_count(), 0)

    def test_tls12_upstream_only_when_configured(self):
        echo = self.echo_server()
        hp = self.start_haproxy(echo.port, bind_options="ssl-max-ver TLSv1.2")
        strict = self.start_outbound(hp.port)  # TLS 1.3 only by default
        s = self.connect(strict.listener_port("out"))
        s.sendall(b"x")
        self.assertEqual(harness.closed_by_peer(s, timeout=5)[1], b"")
        strict.wait_stat("cluster.haproxy.ssl.connection_error", 1)
        self.assertEqual(strict.stat("cluster.haproxy.ssl.handshake"), 0)

        relaxed = self.start_outbound(hp.port, min_version="TLSv1_2")
        s = self.connect(relaxed.listener_port("out"))
        s.settimeout(5)
        harness.echo_roundtrip(s, b"over TLS 1.2")
        relaxed.wait_stat("cluster.haproxy.ssl.handshake", 1)
        self.assertEqual(echo.accepted_count(), 1)


class HAProxyDownstreamTest(SvidAuthorities):
    """client -> HAProxy (`server ... ssl crt ... ca-file ... verify required`) -> portcullis
    DownstreamTlsContext listener -> plaintext echo."""

    def start_haproxy(self, portcullis_port, leaf, cafile):
        return self.haproxy(
            "frontend plain_in\n"
            "  bind 127.0.0.1:{port}\n"
            "  default_backend to_portcullis\n"
            "backend to_portcullis\n"
            "  retries 0\n"
            "  server portcullis 127.0.0.1:%d ssl crt %s ca-file %s verify required\n"
            % (portcullis_port, leaf.pem, cafile))

    def test_haproxy_client_svid_is_accepted_and_data_flows(self):
        echo = self.echo_server()
        proxy, port, ssl = self.start_inbound(echo.port)
        hp = self.start_haproxy(port, self.ca.leaf("spiffe://example.org/haproxy-edge"), self.ca.cert)
        for i in range(2):
            s = self.connect(hp.port)
            s.settimeout(5)
            payload = random.Random(i).randbytes(256 * 1024)
            s.sendall(payload)
            self.assertEqual(hashlib.sha256(harness.recv_exactly(s, len(payload))).hexdigest(),
                             hashlib.sha256(payload).hexdigest())
            s.close()
        proxy.wait_stat(ssl + "handshake", 2)
        self.assertEqual(echo.accepted_count(), 2)

    def test_haproxy_client_svid_from_another_trust_domain_ca_is_rejected(self):
        echo = self.echo_server()
        proxy, port, ssl = self.start_inbound(echo.port, trust_domains=self.trust(TD, "other.org"))
        hp = self.start_haproxy(port, self.other_ca.leaf("spiffe://example.org/haproxy-edge"), self.ca.cert)
        s = self.connect(hp.port)
        s.sendall(b"must not arrive")
        self.assertEqual(harness.closed_by_peer(s, timeout=5)[1], b"")
        proxy.wait_stat(ssl + "fail_verify_spiffe.unknown_ca", 1)
        self.assertEqual(proxy.stat(ssl + "handshake"), 0)
        self.assertEqual(echo.accepted_count(), 0)

    def test_haproxy_refuses_portcullis_when_it_does_not_trust_its_ca(self):
        echo = self.echo_server()
        proxy, port, ssl = self.start_inbound(echo.port)
        hp = self.start_haproxy(port, self.ca.leaf("spiffe://example.org/haproxy-edge"), self.rogue_ca.cert)
        s = self.connect(hp.port)
        s.sendall(b"must not arrive")
        self.assertEqual(harness.closed_by_peer(s, timeout=5)[1], b"")
        proxy.wait_stat(ssl + "connection_error", lambda v: v >= 1)
        self.assertEqual(proxy.stat(ssl + "handshake"), 0)
        self.assertEqual(echo.accepted_count(), 0)


# ---------------------------------------------------------------------------------------------
# Two portcullis instances


def hashing_echo(digests):
    def handle(conn, server):
        h, total = hashlib.sha256(), 0
        while True:
            data = conn.recv(262144)
            if not data:
                break
            h.update(data)
            total += len(data)
            conn.sendall(data)
        with server.lock:
            digests.append((h.hexdigest(), total))
        conn.shutdown(socket.SHUT_WR)

    return handle


class PortcullisPairTest(SvidAuthorities):
    """outbound portcullis (plaintext listener, UpstreamTlsContext cluster) -> mTLS -> inbound
    portcullis (DownstreamTlsContext listener) -> plaintext echo."""

    def start_outbound(self, inbound_port, routes, concurrency=2):
        """routes: {name: san matcher} -> listener out_<name> -> cluster <name>, each verifying
        the inbound's SVID with its own URI matcher (or ("DNS", matcher))."""
        listeners, clusters = [], []
        for name, matcher in routes.items():
            san = matcher if isinstance(matcher, tuple) else ("URI", matcher)
            transport = ts.upstream_tls(self.frontend, sni="inbound.test", trust_domains=self.trust(),
                                        san_matchers=[san])
            listeners.append(harness.tcp_proxy_listener("out_" + name, name))
            clusters.append(ts.tls_cluster(name, [inbound_port], transport))
        return self.start_proxy(harness.bootstrap(listeners, clusters), concurrency=concurrency)

    def test_10mb_intact_through_the_mtls_hop(self):
        digests = []
        echo = self.server(hashing_echo(digests))
        inbound, in_port, in_ssl = self.start_inbound(echo.port)
        outbound = self.start_outbound(in_port, {"mesh": {"exact": INBOUND}})
        total = 10 * MB
        stream = harness.PatternStream(total, seed=11)
        s = self.connect(outbound.listener_port("out_mesh"))
        errors = []

        def sender():
            try:
                for chunk in stream.chunks():
                    s.sendall(chunk)
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        received, n = hashlib.sha256(), 0
        s.settimeout(30)
        while True:
            data = s.recv(1 << 20)
            if not data:
                break
            received.update(data)
            n += len(data)
        t.join(30)
        self.assertEqual(errors, [])
        expected = stream.sha256()
        harness.wait_until(lambda: digests, 10, what="the echo to see EOF")
        self.assertEqual(digests, [(expected, total)])
        self.assertEqual((n, received.hexdigest()), (total, expected))
        outbound.wait_stat("server.total_connections", 0)
        inbound.wait_stat("server.total_connections", 0)
        o, i = outbound.stats(), inbound.stats()
        self.assertEqual(o["cluster.mesh.ssl.handshake"], 1)
        self.assertEqual(i[in_ssl + "handshake"], 1)
        # Plaintext byte counts on both proxies: TLS framing is not counted as payload.
        self.assertEqual(o["cluster.mesh.upstream_cx_tx_bytes_total"], total)
        self.assertEqual(o["cluster.mesh.upstream_cx_rx_bytes_total"], total)
        self.assertEqual(i["tcp.in.downstream_cx_rx_bytes_total"], total)
        self.assertEqual(i["tcp.in.downstream_cx_tx_bytes_total"], total)

    def test_second_connection_resumes_the_tls_session(self):
        echo = self.echo_server()
        inbound, in_port, in_ssl = self.start_inbound(echo.port)
        outbound = self.start_outbound(in_port, {"mesh": {"exact": INBOUND}}, concurrency=1)
        port = outbound.listener_port("out_mesh")
        for i in range(3):
            s = self.connect(port)
            s.settimeout(5)
            harness.echo_roundtrip(s, b"connection %d" % i)
            s.close()
            outbound.wait_stat("cluster.mesh.ssl.handshake", i + 1)
        reused = outbound.stat("cluster.mesh.ssl.session_reused")
        self.assertGreater(reused, 0, "no session was resumed")
        self.assertEqual(reused, 2, "connections 2 and 3 should both resume")
        self.assertEqual(inbound.stat(in_ssl + "handshake"), 3)  # a resumption is still verified

    def test_outbound_san_matchers_accept_and_reject_the_inbound_spiffe_id(self):
        echo = self.echo_server()
        inbound, in_port, in_ssl = self.start_inbound(echo.port)
        accept = {
            "exact": {"exact": INBOUND},
            "prefix": {"prefix": "spiffe://example.org/"},
            "suffix": {"suffix": "/inbound"},
            "contains": {"contains": "example.org/in"},
            "regex": {"safe_regex": {"regex": r"spiffe://example\.org/(inbound|outbound)"}},
            "ignore_case": {"exact": "SPIFFE://EXAMPLE.ORG/INBOUND", "ignore_case": True},
            "dns": ("DNS", {"exact": "inbound.test"}),
        }
        reject = {
            "x_exact": {"exact": "spiffe://example.org/inbound-v2"},
            "x_prefix": {"prefix": "spiffe://other.org/"},
            "x_suffix": {"suffix": "/payments"},
            "x_contains": {"contains": "payments"},
            "x_regex": {"safe_regex": {"regex": r"spiffe://example\.org/in"}},  # must match in full
            "x_case": {"exact": "SPIFFE://EXAMPLE.ORG/INBOUND"},
            "x_dns": ("DNS", {"exact": "payments.test"}),
        }
        outbound = self.start_outbound(in_port, {**accept, **reject})
        for name in accept:
            with self.subTest(accept=name):
                s = self.connect(outbound.listener_port("out_" + name))
                s.settimeout(5)
                harness.echo_roundtrip(s, b"matched by " + name.encode())
                outbound.wait_stat("cluster.%s.ssl.handshake" % name, 1)
        for name in reject:
            with self.subTest(reject=name):
                s = self.connect(outbound.listener_port("out_" + name))
                s.sendall(b"must not arrive")
                kind, data = harness.closed_by_peer(s, timeout=5)
                self.assertEqual(data, b"")
                outbound.wait_stat("cluster.%s.ssl.fail_verify_spiffe.san_mismatch" % name, 1)
                self.assertEqual(outbound.stat("cluster.%s.ssl.fail_verify_san" % name), 1)
                self.assertEqual(outbound.stat("cluster.%s.ssl.handshake" % name), 0)
        self.assertEqual(echo.accepted_count(), len(accept), "a rejected server got the client's bytes upstream")
        inbound.wait_stat(in_ssl + "handshake", len(accept))


if __name__ == "__main__":
    harness.main()
