"""envoy.filters.network.rbac in front of tcp_proxy: ALLOW / DENY / LOG rules and shadow rules by
SPIFFE ID (the peer's verified X.509-SVID), principal combinators and addresses, and permissions
on destination port, address and SNI.

A denied peer completes its TLS handshake (RBAC needs the verified identity) and then gets EOF
with zero bytes; the upstream never sees a connection. Counters: `<stat_prefix>.rbac.{allowed,
denied,logged,shadow_allowed,shadow_denied}` and `listener.<addr>.downstream_cx_filter_denied`.
"""

import socket

import harness
import tls_support as ts
from tls_support import TlsTestCase, principal_is, rbac_rules

TD = "example.org"
FRONTEND = "spiffe://example.org/frontend"
ADMIN = "spiffe://example.org/admin"
INTRUDER = "spiffe://example.org/intruder"
TEAM_A_WEB = "spiffe://example.org/team-a/web"
INBOUND = "spiffe://example.org/inbound"
ANY = [{"any": True}]

ALLOWED = "allowed"
DENIED = "denied"


class RbacTestCase(TlsTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ca = cls.pki.authority(TD)
        cls.inbound = cls.ca.leaf(INBOUND, name="inbound", dns=["inbound.test"])
        cls.leaves = {who: cls.ca.leaf(spiffe_id, name=who) for who, spiffe_id in
                      (("frontend", FRONTEND), ("admin", ADMIN), ("intruder", INTRUDER), ("team_a_web", TEAM_A_WEB))}
        # "none" presents no certificate (the listeners here do not require one).
        cls.clients = {who: ts.TlsClient(cls.ca.cert, leaf) for who, leaf in cls.leaves.items()}
        cls.clients["none"] = ts.TlsClient(cls.ca.cert)

    def start_rbac_proxy(self, listeners, tls=True, ports=None):
        """listeners: {name: rbac filter}; each listener `name` proxies to one echo upstream.
        With tls, the listener verifies SVIDs but does not require one (so "none" gets in)."""
        self.echo = self.echo_server()
        transport = ts.downstream_tls(self.inbound, require_client_certificate=False,
                                      trust_domains={TD: self.ca.cert}) if tls else None
        cfg = harness.bootstrap(
            [ts.tls_listener(name, "echo", transport, filters=[f] if f else [], port=(ports or {}).get(name, 0))
             for name, f in listeners.items()],
            [harness.static_cluster("echo", [self.echo.port])])
        self.proxy = self.start_proxy(cfg)
        return self.proxy

    def attempt(self, listener, who, expected, sni=None):
        """Connects to `listener` as `who` (None: plaintext, no TLS) and checks `expected`:
        ALLOWED means an echo comes back; DENIED means EOF with zero bytes right after the
        handshake (nothing is sent first: a denied connection closed with our bytes unread would
        end in an RST instead)."""
        port = self.proxy.listener_port(listener)
        s = harness.connect(port) if who is None else self.clients[who].connect(port, sni=sni)
        self.addCleanup(s.close)
        s.settimeout(5)
        if expected == ALLOWED:
            harness.echo_roundtrip(s, b"ping from %s" % (who or "plaintext").encode())
        else:
            try:
                data = s.recv(1024)
            except (socket.timeout, TimeoutError):
                self.fail("%s was not closed: RBAC let it through" % who)
            self.assertEqual(data, b"", "a denied connection must get EOF and no bytes")

    def assertDecisions(self, listener, stat_prefix, table, sni=None):
        """table: {who: ALLOWED|DENIED}; checks each outcome, its rbac counter, and that denied
        peers never reached the upstream."""
        listener_prefix = self.proxy.listener_stat_prefix(listener)
        for who, expected in table.items():
            with self.subTest(listener=listener, who=who):
                before = self.proxy.stats()
                accepted = self.echo.accepted_count()
                self.attempt(listener, who, expected, sni=sni)
                if expected == ALLOWED:
                    self.assertStatsDelta(self.proxy, before, {stat_prefix + ".rbac.allowed": 1,
                                                               stat_prefix + ".rbac.denied": 0})
                    self.assertEqual(self.echo.accepted_count(), accepted + 1)
                else:
                    self.assertStatsDelta(self.proxy, before, {
                        stat_prefix + ".rbac.allowed": 0, stat_prefix + ".rbac.denied": 1,
                        listener_prefix + "downstream_cx_filter_denied": 1, "cluster.echo.upstream_cx_total": 0})
                    self.assertEqual(self.echo.accepted_count(), accepted, "a denied peer reached the upstream")


class RbacBySpiffeIdTest(RbacTestCase):
    def test_allow_policy_admits_only_the_named_spiffe_id(self):
        rules = rbac_rules("ALLOW", {"frontend-only": (ANY, [principal_is(FRONTEND)])})
        proxy = self.start_rbac_proxy({"in": ts.rbac_filter("in_rbac", rules)})
        self.assertDecisions("in", "in_rbac", {"frontend": ALLOWED, "intruder": DENIED, "admin": DENIED,
                                               "none": DENIED})
        # A denied peer that starts talking at once (s_client sends right after its handshake):
        # still nothing reaches the upstream, and the handshake counted as one.
        ssl_prefix = proxy.listener_stat_prefix("in") + "ssl."
        before = proxy.stats()
        r = ts.s_client(proxy.listener_port("in"), message=b"GET /secrets\n" * 100,
                        leaf=self.leaves["intruder"], cafile=self.ca.cert)
        self.assertEqual(r.received, b"", r)
        self.assertStatsDelta(proxy, before, {"in_rbac.rbac.denied": 1, ssl_prefix + "handshake": 1,
                                              "cluster.echo.upstream_cx_total": 0})
        self.assertEqual(self.echo.accepted_count(), 1)

    def test_deny_policy_refuses_only_the_named_spiffe_id(self):
        rules = rbac_rules("DENY", {"block-intruder": (ANY, [principal_is(INTRUDER)])})
        self.start_rbac_proxy({"in": ts.rbac_filter("in_rbac", rules)})
        self.assertDecisions("in", "in_rbac", {"intruder": DENIED, "frontend": ALLOWED, "admin": ALLOWED,
                                               "none": ALLOWED})

    def test_shadow_rules_are_counted_but_not_enforced(self):
        enforced = rbac_rules("ALLOW", {"any-authenticated": (ANY, [{"authenticated": {}}])})
        shadow = rbac_rules("ALLOW", {"frontend-only": (ANY, [principal_is(FRONTEND)])})
        self.start_rbac_proxy({"in": ts.rbac_filter("in_rbac", enforced, shadow),
                               "shadow_only": ts.rbac_filter("shadow_rbac", shadow_rules=shadow)})
        before = self.proxy.stats()
        for who in ("frontend", "intruder", "admin"):
            self.attempt("in", who, ALLOWED)
        # Envoy: authenticated{} without principal_name matches every TLS connection, with or
        # without a client certificate; a TLS client without one is allowed here too.
        self.attempt("in", "none", ALLOWED)
        self.assertStatsDelta(self.proxy, before, {"in_rbac.rbac.allowed": 4, "in_rbac.rbac.denied": 0,
                                                   "in_rbac.rbac.shadow_allowed": 1, "in_rbac.rbac.shadow_denied": 3})
        # Shadow rules alone never close anything.
        before = self.proxy.stats()
        for who in ("frontend", "intruder", "none"):
            self.attempt("shadow_only", who, ALLOWED)
        self.assertStatsDelta(self.proxy, before, {"shadow_rbac.rbac.shadow_allowed": 1,
                                                   "shadow_rbac.rbac.shadow_denied": 2,
                                                   "shadow_rbac.rbac.allowed": 0, "shadow_rbac.rbac.denied": 0})

    def test_log_action_lets_everyone_through_and_counts_matches(self):
        rules = rbac_rules("LOG", {"watch-intruder": (ANY, [principal_is(INTRUDER)])})
        self.start_rbac_proxy({"in": ts.rbac_filter("in_rbac", rules)})
        before = self.proxy.stats()
        for who in ("intruder", "frontend", "intruder"):
            self.attempt("in", who, ALLOWED)
        self.assertStatsDelta(self.proxy, before, {"in_rbac.rbac.logged": 2, "in_rbac.rbac.denied": 0})
        self.assertEqual(self.echo.accepted_count(), 3)

    def test_principal_matchers_and_combinators(self):
        example = {"authenticated": {"principal_name": {"prefix": "spiffe://example.org/"}}}
        listeners = {
            "or_ids": (ANY, [{"or_ids": {"ids": [principal_is(FRONTEND), principal_is(ADMIN)]}}]),
            "and_ids": (ANY, [{"and_ids": {"ids": [example, {"not_id": principal_is(INTRUDER)}]}}]),
            "unauthenticated": (ANY, [{"not_id": {"authenticated": {}}}]),
            "authenticated": (ANY, [{"authenticated": {}}]),
            "prefix": (ANY, [{"authenticated": {"principal_name": {"prefix": "spiffe://example.org/team-a/"}}}]),
            "regex": (ANY, [{"authenticated": {"principal_name": {"safe_regex": {"regex": r"spiffe://example\.org/(frontend|admin)"}}}}]),
            "loopback": (ANY, [{"direct_remote_ip": {"address_prefix": "127.0.0.0", "prefix_len": 8}}]),
            "ten_net": (ANY, [{"remote_ip": {"address_prefix": "10.0.0.0", "prefix_len": 8}}]),
            "two_principals": (ANY, [principal_is(ADMIN), {"remote_ip": {"address_prefix": "127.0.0.1", "prefix_len": 32}}]),
        }
        self.start_rbac_proxy({name: ts.rbac_filter(name, rbac_rules("ALLOW", {"p": rule}))
                               for name, rule in listeners.items()})
        A, D = ALLOWED, DENIED
        expect = {  # frontend, admin, intruder, team_a_web, none
            "or_ids": (A, A, D, D, D),
            "and_ids": (A, A, D, A, D),
            # authenticated{} matches any TLS connection (Envoy), so a TLS client without a
            # certificate ("none") is "authenticated" too; name a principal to require an SVID.
            "unauthenticated": (D, D, D, D, D),
            "authenticated": (A, A, A, A, A),
            "prefix": (D, D, D, A, D),
            "regex": (A, A, D, D, D),
            "loopback": (A, A, A, A, A),
            "ten_net": (D, D, D, D, D),
            "two_principals": (A, A, A, A, A),  # principals are OR-ed
        }
        for name, outcomes in expect.items():
            self.assertDecisions(name, name, dict(zip(("frontend", "admin", "intruder", "team_a_web", "none"),
                                                      outcomes)))

    def test_permissions_on_destination_port_address_and_sni(self):
        # Port rules need to know the port a listener binds, so three listeners get fixed ports.
        port, range_port, edge_port = (harness.closed_port() for _ in range(3))
        listeners = {
            "port": [{"destination_port": port}],
            "port_elsewhere": [{"destination_port": port}],  # listens on another port
            "not_port": [{"not_rule": {"destination_port": port}}],
            "range": [{"destination_port_range": {"start": range_port, "end": range_port + 1}}],
            "range_end_exclusive": [{"destination_port_range": {"start": edge_port - 100, "end": edge_port}}],
            "dest_ip": [{"destination_ip": {"address_prefix": "127.0.0.1", "prefix_len": 32}}],
            "dest_ip_v6": [{"destination_ip": {"address_prefix": "::1", "prefix_len": 128}}],
            "sni": [{"requested_server_name": {"exact": "inbound.test"}}],
            "and_rules": [{"and_rules": {"rules": [{"destination_ip": {"address_prefix": "127.0.0.0", "prefix_len": 8}},
                                                   {"requested_server_name": {"suffix": ".test"}}]}}],
            "or_rules": [{"or_rules": {"rules": [{"destination_port": port},
                                                 {"requested_server_name": {"prefix": "inbound."}}]}}],
        }
        self.start_rbac_proxy({name: ts.rbac_filter(name, rbac_rules("ALLOW", {"p": (perms, ANY)}))
                               for name, perms in listeners.items()},
                              ports={"port": port, "range": range_port, "range_end_exclusive": edge_port})
        A, D = ALLOWED, DENIED
        for name, sni, expected in [
                ("port", None, A), ("port_elsewhere", None, D), ("not_port", None, A),
                ("range", None, A), ("range_end_exclusive", None, D),
                ("dest_ip", None, A), ("dest_ip_v6", None, D),
                ("sni", "inbound.test", A), ("sni", "other.test", D), ("sni", None, D),
                ("and_rules", "inbound.test", A), ("and_rules", "inbound.example", D),
                ("or_rules", "inbound.example", A), ("or_rules", "edge.test", D)]:
            self.assertDecisions(name, name, {"frontend": expected}, sni=sni)
        self.assertDecisions("port", "port", {"none": ALLOWED})  # permissions only: no identity needed

    def test_plaintext_listener_has_no_identity(self):
        self.start_rbac_proxy({
            "authn": ts.rbac_filter("authn", rbac_rules("ALLOW", {"p": (ANY, [{"authenticated": {}}])})),
            "anyone": ts.rbac_filter("anyone", rbac_rules("ALLOW", {"p": (ANY, [{"any": True}])})),
            "by_ip": ts.rbac_filter("by_ip", rbac_rules("DENY", {"p": (ANY, [{"direct_remote_ip": {"address_prefix": "127.0.0.1", "prefix_len": 32}}])})),
        }, tls=False)
        self.assertDecisions("authn", "authn", {None: DENIED})
        self.assertDecisions("anyone", "anyone", {None: ALLOWED})
        self.assertDecisions("by_ip", "by_ip", {None: DENIED})


class RbacResumptionTest(RbacTestCase):
    """A resumed TLS session must carry the same verified identity as a full handshake."""

    def test_resumed_sessions_between_two_portcullis_keep_the_spiffe_id(self):
        rules = rbac_rules("ALLOW", {"frontend-only": (ANY, [principal_is(FRONTEND)])})
        inbound = self.start_rbac_proxy({"in": ts.rbac_filter("in_rbac", rules)})
        transport = ts.upstream_tls(self.leaves["frontend"], sni="inbound.test", trust_domains={TD: self.ca.cert},
                                    san_matchers=[("URI", {"exact": INBOUND})])
        outbound = self.start_proxy(harness.bootstrap(
            [harness.tcp_proxy_listener("out", "mesh")],
            [ts.tls_cluster("mesh", [inbound.listener_port("in")], transport)]), concurrency=1)
        for i in range(3):
            s = self.connect(outbound.listener_port("out"))
            s.settimeout(5)
            harness.echo_roundtrip(s, b"mesh call %d" % i)
            s.close()
            outbound.wait_stat("cluster.mesh.ssl.handshake", i + 1)
        self.assertEqual(outbound.stat("cluster.mesh.ssl.session_reused"), 2)
        self.assertEqual(inbound.stat("in_rbac.rbac.allowed"), 3)
        self.assertEqual(inbound.stat("in_rbac.rbac.denied"), 0)

    def test_resumption_does_not_bypass_a_deny_policy(self):
        """The intruder may use public.test but not admin.test. It gets a ticket on public.test
        and resumes it with SNI admin.test: the DENY policy must still see who it is."""
        rules = rbac_rules("DENY", {"intruder-not-admin": (
            [{"requested_server_name": {"exact": "admin.test"}}], [principal_is(INTRUDER)])})
        proxy = self.start_rbac_proxy({"in": ts.rbac_filter("in_rbac", rules)})
        port = proxy.listener_port("in")
        client = self.clients["intruder"]
        s = client.connect(port, sni="public.test")
        s.settimeout(5)
        harness.echo_roundtrip(s, b"public")  # reading the echo takes in the session tickets
        session = s.session
        s.close()
        self.assertTrue(session is not None and session.has_ticket, "no resumable session from public.test")

        before = proxy.stats()
        s = client.connect(port, sni="admin.test", session=session)
        self.addCleanup(s.close)
        self.assertTrue(s.session_reused, "the client did not resume; the test proves nothing")
        s.settimeout(5)
        try:
            data = s.recv(1024)
        except (socket.timeout, TimeoutError):
            self.fail("the resumed intruder connection was let through: DENY bypassed by resumption")
        self.assertEqual(data, b"")
        self.assertStatsDelta(proxy, before, {"in_rbac.rbac.denied": 1, "in_rbac.rbac.allowed": 0})
        self.assertEqual(self.echo.accepted_count(), 1)


if __name__ == "__main__":
    harness.main()
