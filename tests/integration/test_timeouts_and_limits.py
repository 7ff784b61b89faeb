"""tcp_proxy idle_timeout and the per-listener connection limit from layered_runtime."""

import time

import harness
from harness import IntegrationTestCase


class IdleTimeoutTest(IntegrationTestCase):
    def test_idle_timeout_closes_idle_connection_and_counts_idle_timeout(self):
        upstream = self.echo_server()
        proxy = self.start_proxy(harness.simple_config([upstream.port], idle_timeout="0.5s"))
        s = self.connect(proxy.listener_port())
        s.settimeout(5)
        harness.echo_roundtrip(s, b"hello")
        last_activity = time.monotonic()
        kind, data = harness.closed_by_peer(s, timeout=5)
        idle_for = time.monotonic() - last_activity
        self.assertEqual((kind, data), ("eof", b""))
        self.assertGreaterEqual(idle_for, 0.4, "closed before the connection was idle for 0.5s")
        self.assertLess(idle_for, 2.0, "idle connection outlived its 0.5s idle timeout by far")
        proxy.wait_stat("tcp.main.idle_timeout", 1)
        proxy.wait_stat("server.total_connections", 0)
        proxy.wait_stat("cluster.backend.upstream_cx_active", 0)

    def test_traffic_keeps_connection_past_idle_timeout(self):
        upstream = self.echo_server()
        proxy = self.start_proxy(harness.simple_config([upstream.port], idle_timeout="0.5s"))
        s = self.connect(proxy.listener_port())
        s.settimeout(5)
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < 1.5:  # three idle timeouts long, never idle for one
            harness.echo_roundtrip(s, b"tick %d" % i)
            i += 1
            time.sleep(0.1)
        self.assertEqual(proxy.stat("tcp.main.idle_timeout"), 0)
        self.assertEqual(proxy.stat("server.total_connections"), 1)


class ConnectionLimitTest(IntegrationTestCase):
    def test_listener_connection_limit_closes_extra_connections_and_counts_overflow(self):
        upstream = self.echo_server()
        runtime = {"envoy.resource_limits.listener.limited.connection_limit": 3}
        cfg = harness.simple_config([upstream.port], name="limited", runtime=runtime)
        proxy = self.start_proxy(cfg, concurrency=2)
        port = proxy.listener_port("limited")
        prefix = proxy.listener_stat_prefix("limited")

        admitted = [self.connect(port) for _ in range(3)]
        for i, s in enumerate(admitted):
            s.settimeout(5)
            harness.echo_roundtrip(s, b"admitted %d" % i)
        proxy.wait_stat(prefix + "downstream_cx_active", 3)

        for i in range(2):
            extra = self.connect(port)
            kind, data = harness.closed_by_peer(extra, timeout=5)
            self.assertEqual(data, b"", "an over-limit connection got data")
        proxy.wait_stat(prefix + "downstream_cx_overflow", 2)
        self.assertEqual(proxy.stat(prefix + "downstream_cx_active"), 3)
        self.assertEqual(upstream.accepted_count(), 3, "over-limit connections reached the upstream")

        # The admitted ones are unaffected, and a freed slot admits a new connection.
        for i, s in enumerate(admitted):
            harness.echo_roundtrip(s, b"still here %d" % i)
        admitted.pop().close()
        proxy.wait_stat(prefix + "downstream_cx_active", 2)
        s = self.connect(port)
        s.settimeout(5)
        harness.echo_roundtrip(s, b"took the freed slot")
        self.assertEqual(proxy.stat(prefix + "downstream_cx_overflow"), 2)

    def test_global_connection_limit_closes_extra_connections_and_counts_overflow(self):
        upstream = self.echo_server()
        cfg = harness.bootstrap(
            [harness.tcp_proxy_listener("a", "backend"), harness.tcp_proxy_listener("b", "backend")],
            [harness.static_cluster("backend", [upstream.port])],
            runtime={"overload.global_downstream_max_connections": 2})
        proxy = self.start_proxy(cfg)
        ports = proxy.listeners()
        sa = self.connect(ports["a"][1])
        sb = self.connect(ports["b"][1])
        for s in (sa, sb):
            s.settimeout(5)
            harness.echo_roundtrip(s, b"within the global limit")
        extra = self.connect(ports["b"][1])
        self.assertEqual(harness.closed_by_peer(extra, timeout=5)[1], b"")
        proxy.wait_stat(proxy.listener_stat_prefix("b") + "downstream_global_cx_overflow", 1)
        self.assertEqual(proxy.stat("server.total_connections"), 2)


if __name__ == "__main__":
    harness.main()
