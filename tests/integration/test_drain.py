"""SIGTERM drain: stop accepting, let live connections finish, close stragglers at the deadline."""

import signal
import socket
import time

import harness
from harness import IntegrationTestCase


class DrainTest(IntegrationTestCase):
    def test_sigterm_stops_accepting_lets_live_connection_finish_then_exits_0(self):
        upstream = self.echo_server()
        proxy = self.start_proxy(harness.simple_config([upstream.port]), drain_time_s=60)
        port = proxy.listener_port()
        live = self.connect(port)
        live.settimeout(5)
        harness.echo_roundtrip(live, b"before SIGTERM")

        proxy.signal(signal.SIGTERM)
        harness.wait_until(lambda: proxy.ready_status() == 503, 5, what="/ready to answer 503 while draining")
        harness.wait_until(lambda: harness.refuses_connections(port), 5, what="the listener to refuse new connections")
        status, body = proxy.get("/server_info")
        self.assertEqual(status, 200)
        self.assertIn('"DRAINING"', body)

        # The live connection keeps working for as long as it likes within the drain time.
        for i in range(5):
            harness.echo_roundtrip(live, b"during the drain %d" % i)
        self.assertTrue(proxy.alive(), "exited with a connection still open and drain time left")

        live.shutdown(socket.SHUT_WR)
        self.assertEqual(harness.recv_until_eof(live), b"")
        ended = time.monotonic()
        self.assertEqual(proxy.wait_exit(5), 0)
        self.assertLess(time.monotonic() - ended, 3.0, "did not exit promptly once the last connection ended")

    def test_sigterm_closes_lingering_connection_after_drain_time_and_exits_0(self):
        upstream = self.echo_server()
        proxy = self.start_proxy(harness.simple_config([upstream.port]), drain_time_s=1)
        lingering = self.connect(proxy.listener_port())
        lingering.settimeout(5)
        harness.echo_roundtrip(lingering, b"I will never hang up")

        start = time.monotonic()
        proxy.signal(signal.SIGTERM)
        kind, data = harness.closed_by_peer(lingering, timeout=5)
        closed_after = time.monotonic() - start
        self.assertEqual(data, b"")
        self.assertEqual(proxy.wait_exit(5), 0)
        exited_after = time.monotonic() - start
        self.assertGreaterEqual(closed_after, 0.9, "closed before the 1s drain time was up")
        self.assertLess(exited_after, 1.0 + 1.5, "took %.2fs to exit with --drain-time-s 1" % exited_after)

    def test_sigterm_with_no_connections_exits_0_at_once(self):
        upstream = self.echo_server()
        proxy = self.start_proxy(harness.simple_config([upstream.port]), drain_time_s=60)
        start = time.monotonic()
        proxy.signal(signal.SIGTERM)
        self.assertEqual(proxy.wait_exit(5), 0)
        self.assertLess(time.monotonic() - start, 2.0)

    def test_sigterm_after_admin_drain_listeners_still_drains_and_exits_0(self):
        # The Kubernetes pattern: a preStop hook POSTs /drain_listeners, then the kubelet sends
        # SIGTERM. The SIGTERM must still end the process.
        upstream = self.echo_server()
        proxy = self.start_proxy(harness.simple_config([upstream.port]), drain_time_s=1)
        port = proxy.listener_port()
        live = self.connect(port)
        live.settimeout(5)
        harness.echo_roundtrip(live, b"before")
        self.assertEqual(proxy.post("/drain_listeners")[0], 200)
        harness.wait_until(lambda: harness.refuses_connections(port), 5, what="the listener to close")
        harness.echo_roundtrip(live, b"after /drain_listeners")

        start = time.monotonic()
        proxy.signal(signal.SIGTERM)
        self.assertEqual(proxy.wait_exit(5), 0)
        self.assertLess(time.monotonic() - start, 1.0 + 1.5)
        self.assertEqual(harness.closed_by_peer(live, timeout=1)[1], b"")

    def test_sigint_drains_like_sigterm(self):
        upstream = self.echo_server()
        proxy = self.start_proxy(harness.simple_config([upstream.port]), drain_time_s=60)
        live = self.connect(proxy.listener_port())
        live.settimeout(5)
        harness.echo_roundtrip(live, b"before SIGINT")
        proxy.signal(signal.SIGINT)
        harness.wait_until(lambda: proxy.ready_status() == 503, 5, what="/ready 503")
        harness.echo_roundtrip(live, b"during the drain")
        live.close()
        self.assertEqual(proxy.wait_exit(5), 0)


if __name__ == "__main__":
    harness.main()
