"""What the downstream sees, and what is counted, when upstreams refuse, hang or rotate."""

import socket
import time

import harness
from harness import IntegrationTestCase


def full_accept_queue():
    """A listening socket (listen(0), never accepting) whose accept queue is full: new SYNs to it
    are dropped, so a connect hangs until the connector gives up. Returns (listener, fillers)."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind((harness.LOOPBACK, 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    for _ in range(16):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.3)
        try:
            s.connect((harness.LOOPBACK, port))
        except (socket.timeout, BlockingIOError):
            s.close()
            return lsock, fillers
        fillers.append(s)
    raise AssertionError("accept queue of a listen(0) socket never filled up")


class UpstreamFailureTest(IntegrationTestCase):
    def test_upstream_down_closes_downstream_and_counts_connect_fail(self):
        dead = harness.closed_port()
        proxy = self.start_proxy(harness.simple_config([dead]))
        s = self.connect(proxy.listener_port())
        # A clean close: FIN, not RST, and not a single byte.
        self.assertEqual(harness.closed_by_peer(s, timeout=5), ("eof", b""))
        proxy.wait_stat("server.total_connections", 0)
        stats = proxy.stats()
        self.assertEqual(stats["cluster.backend.upstream_cx_connect_fail"], 1)
        self.assertEqual(stats["cluster.backend.upstream_cx_connect_attempts_exceeded"], 1)
        self.assertEqual(stats["cluster.backend.upstream_cx_total"], 1)
        self.assertEqual(stats["cluster.backend.upstream_cx_active"], 0)
        self.assertEqual(stats["cluster.backend.upstream_cx_connect_timeout"], 0)

    def test_upstream_accept_queue_full_times_out_and_counts_connect_timeout(self):
        lsock, fillers = full_accept_queue()
        self.addCleanup(lsock.close)
        for f in fillers:
            self.addCleanup(f.close)
        port = lsock.getsockname()[1]
        proxy = self.start_proxy(harness.simple_config([port], connect_timeout="0.2s"))
        s = self.connect(proxy.listener_port())
        start = time.monotonic()
        kind, data = harness.closed_by_peer(s, timeout=5)
        elapsed = time.monotonic() - start
        self.assertEqual(data, b"")
        self.assertIn(kind, ("eof", "reset"))
        self.assertGreaterEqual(elapsed, 0.15, "closed before the 0.2s connect timeout could fire")
        self.assertLess(elapsed, 2.0, "the 0.2s connect timeout did not cut the connect short")
        proxy.wait_stat("server.total_connections", 0)
        stats = proxy.stats()
        self.assertEqual(stats["cluster.backend.upstream_cx_connect_timeout"], 1)
        self.assertEqual(stats["cluster.backend.upstream_cx_connect_attempts_exceeded"], 1)
        self.assertEqual(stats["cluster.backend.upstream_cx_active"], 0)

    def test_retry_on_second_endpoint_when_first_is_down(self):
        dead = harness.closed_port()
        live = self.echo_server()
        cfg = harness.simple_config([dead, live.port], max_connect_attempts=2)
        proxy = self.start_proxy(cfg)
        port = proxy.listener_port()
        for i in range(4):
            with harness.connect(port) as s:
                s.settimeout(5)
                harness.echo_roundtrip(s, b"attempt %d" % i)
        self.assertEqual(live.accepted_count(), 4)
        proxy.wait_stat("server.total_connections", 0)
        stats = proxy.stats()
        # Round robin hands the dead endpoint out first every time; the retry saves the day.
        self.assertEqual(stats["cluster.backend.upstream_cx_connect_fail"], 4)
        self.assertEqual(stats["cluster.backend.upstream_cx_total"], 8)
        self.assertEqual(stats["cluster.backend.upstream_cx_connect_attempts_exceeded"], 0)
        self.assertServerHealthy(live)

    def test_three_attempts_on_a_dead_endpoint_count_three_failures(self):
        proxy = self.start_proxy(harness.simple_config([harness.closed_port()], max_connect_attempts=3))
        s = self.connect(proxy.listener_port())
        self.assertEqual(harness.closed_by_peer(s, timeout=5), ("eof", b""))
        proxy.wait_stat("server.total_connections", 0)
        stats = proxy.stats()
        self.assertEqual(stats["cluster.backend.upstream_cx_total"], 3)
        self.assertEqual(stats["cluster.backend.upstream_cx_connect_fail"], 3)
        self.assertEqual(stats["cluster.backend.upstream_cx_connect_attempts_exceeded"], 1)

    def test_single_attempt_does_not_retry(self):
        dead = harness.closed_port()
        live = self.echo_server()
        proxy = self.start_proxy(harness.simple_config([dead, live.port], max_connect_attempts=1))
        port = proxy.listener_port()
        outcomes = []
        for _ in range(4):
            with harness.connect(port) as s:
                s.settimeout(5)
                s.sendall(b"x")
                try:
                    outcomes.append(s.recv(1) or b"closed")
                except ConnectionResetError:  # the proxy closed with our "x" unread
                    outcomes.append(b"closed")
        # Alternates dead, live, dead, live: a dead pick is not retried.
        self.assertEqual(outcomes, [b"closed", b"x", b"closed", b"x"])
        self.assertEqual(proxy.stat("cluster.backend.upstream_cx_connect_attempts_exceeded"), 2)

    def test_round_robin_splits_connections_evenly_over_two_endpoints(self):
        a = self.echo_server(banner=b"A")
        b = self.echo_server(banner=b"B")
        proxy = self.start_proxy(harness.simple_config([a.port, b.port]), concurrency=2)
        port = proxy.listener_port()
        banners = []
        for _ in range(10):
            with harness.connect(port) as s:
                s.settimeout(5)
                banners.append(harness.recv_exactly(s, 1))
        self.assertEqual(sorted(banners), [b"A"] * 5 + [b"B"] * 5)
        # Strict alternation: every pair of consecutive connections hit both endpoints.
        for i in range(0, 10, 2):
            self.assertEqual(sorted(banners[i:i + 2]), [b"A", b"B"], banners)
        self.assertEqual((a.accepted_count(), b.accepted_count()), (5, 5))


if __name__ == "__main__":
    harness.main()
