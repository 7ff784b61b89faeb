"""Connections come and go without leaking: gauges return to zero, fds to their baseline; and a
FIN in one direction is passed on without ending the other direction."""

import queue
import socket
import struct
import time

import harness
from harness import IntegrationTestCase


class ConnectionChurnTest(IntegrationTestCase):
    def setUp(self):
        self.upstream = self.echo_server()
        self.proxy = self.start_proxy(harness.simple_config([self.upstream.port]), concurrency=2)
        self.port = self.proxy.listener_port()
        self.listener = self.proxy.listener_stat_prefix()
        self.fd_baseline = self.proxy.settled_fd_count()

    def assert_everything_released(self, expected_total):
        p = self.proxy
        p.wait_stat(self.listener + "downstream_cx_active", 0)
        p.wait_stat("server.total_connections", 0)
        p.wait_stat("cluster.backend.upstream_cx_active", 0)
        stats = p.stats()
        self.assertEqual(stats[self.listener + "downstream_cx_total"], expected_total)
        self.assertEqual(stats[self.listener + "downstream_cx_destroy"], expected_total)
        self.assertEqual(stats["cluster.backend.upstream_cx_total"], expected_total)
        self.assertEqual(stats["cluster.backend.upstream_cx_destroy"], expected_total)
        self.assertEqual(stats["cluster.backend.upstream_cx_connect_fail"], 0)
        # Sockets are closed, not just forgotten by the gauges.
        harness.wait_until(lambda: p.fd_count() <= self.fd_baseline, 10,
                           what="fd count back to baseline %d (now %d)" % (self.fd_baseline, p.fd_count()))
        self.assertServerHealthy(self.upstream)

    def test_1000_sequential_connections_release_gauges_and_fds(self):
        for i in range(1000):
            with harness.connect(self.port) as s:
                harness.echo_roundtrip(s, b"sequential %d\n" % i)
                s.shutdown(socket.SHUT_WR)
                self.assertEqual(harness.recv_until_eof(s), b"")
        self.assert_everything_released(1000)

    def test_200_concurrent_connections_release_gauges_and_fds(self):
        socks = []
        try:
            for i in range(200):
                socks.append(harness.connect(self.port))
            # All 200 are open at the same time, each with a live upstream.
            for i, s in enumerate(socks):
                s.sendall(b"concurrent %d\n" % i)
            for i, s in enumerate(socks):
                msg = b"concurrent %d\n" % i
                self.assertEqual(harness.recv_exactly(s, len(msg)), msg)
            self.proxy.wait_stat(self.listener + "downstream_cx_active", 200)
            self.proxy.wait_stat("cluster.backend.upstream_cx_active", 200)
            self.assertEqual(self.proxy.stat("server.total_connections"), 200)
            self.assertGreaterEqual(self.proxy.fd_count(), self.fd_baseline + 400)
        finally:
            for s in socks:
                s.close()
        self.assert_everything_released(200)


class AbnormalEndingsTest(IntegrationTestCase):
    def test_client_data_sent_right_before_close_is_delivered(self):
        got = queue.Queue()
        upstream = self.server(lambda conn, server: got.put(harness.recv_until_eof(conn)))
        proxy = self.start_proxy(harness.simple_config([upstream.port]))
        port = proxy.listener_port()
        for i in range(20):
            # Send and close at once: the bytes and the FIN reach the proxy before its upstream
            # connect completes, and must still be forwarded.
            with socket.create_connection((harness.LOOPBACK, port)) as s:
                s.sendall(b"fire and forget %d" % i)
        received = sorted(got.get(timeout=5) for _ in range(20))
        self.assertEqual(received, sorted(b"fire and forget %d" % i for i in range(20)))
        proxy.wait_stat("server.total_connections", 0)

    def test_client_reset_releases_the_upstream_connection(self):
        upstream_done = queue.Queue()

        def watch(conn, server):
            conn.sendall(b"hello")
            try:
                upstream_done.put(harness.recv_until_eof(conn))
            except ConnectionResetError:
                upstream_done.put("reset")

        upstream = self.server(watch)
        proxy = self.start_proxy(harness.simple_config([upstream.port]))
        s = harness.connect(proxy.listener_port())
        self.assertEqual(harness.recv_exactly(s, 5), b"hello")
        harness.abort(s)
        self.assertIn(upstream_done.get(timeout=5), (b"", "reset"))  # the upstream learns of it
        proxy.wait_stat("server.total_connections", 0)
        proxy.wait_stat("cluster.backend.upstream_cx_active", 0)

    def test_upstream_reset_closes_the_downstream_connection(self):
        def reset_after_first_bytes(conn, server):
            conn.recv(16)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST

        upstream = self.server(reset_after_first_bytes)
        proxy = self.start_proxy(harness.simple_config([upstream.port]))
        s = self.connect(proxy.listener_port())
        s.sendall(b"trigger")
        kind, data = harness.closed_by_peer(s, timeout=5)
        self.assertEqual(data, b"")
        proxy.wait_stat("server.total_connections", 0)
        proxy.wait_stat("cluster.backend.upstream_cx_active", 0)

    def test_fd_exhaustion_fails_excess_connections_cleanly_and_recovers(self):
        upstream = self.echo_server()
        proxy = self.start_proxy(harness.simple_config([upstream.port]), concurrency=1, rlimit_nofile=48)
        port = proxy.listener_port()
        baseline = proxy.settled_fd_count()
        socks = [self.connect(port) for _ in range(40)]  # needs 80 fds in the proxy: far too many
        served = failed = 0
        for s in socks:
            s.settimeout(5)
            s.sendall(b"x")
            try:
                reply = s.recv(1)
            except ConnectionResetError:
                reply = b""
            if reply == b"x":
                served += 1
            else:
                failed += 1
        self.assertGreater(served, 0)
        self.assertGreater(failed, 0, "40 connections fit into 48 fds?")
        self.assertTrue(proxy.alive())
        self.assertLessEqual(proxy.fd_count(), 48)
        for s in socks:
            s.close()
        proxy.wait_stat("server.total_connections", 0)
        harness.wait_until(lambda: proxy.fd_count() <= baseline, 5, what="fds back to baseline")
        # Recovered: every new connection is served again.
        for i in range(10):
            with harness.connect(port) as s:
                s.settimeout(5)
                harness.echo_roundtrip(s, b"after the storm %d" % i)


class HalfCloseTest(IntegrationTestCase):
    def test_client_half_close_still_receives_late_server_reply(self):
        got = queue.Queue()

        def late_replier(conn, server):
            data = harness.recv_until_eof(conn)  # the client's FIN arrives through the proxy
            got.put(data)
            time.sleep(0.2)  # reply well after the FIN: the proxy must keep this direction open
            conn.sendall(b"late reply to " + data)
            conn.shutdown(socket.SHUT_WR)

        upstream = self.server(late_replier)
        proxy = self.start_proxy(harness.simple_config([upstream.port]))
        s = self.connect(proxy.listener_port())
        s.sendall(b"request")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(got.get(timeout=5), b"request")
        s.settimeout(5)
        self.assertEqual(harness.recv_until_eof(s), b"late reply to request")
        proxy.wait_stat("server.total_connections", 0)
        self.assertServerHealthy(upstream)

    def test_server_half_close_still_receives_late_client_data(self):
        got = queue.Queue()

        def banner_then_listen(conn, server):
            conn.sendall(b"banner")
            conn.shutdown(socket.SHUT_WR)  # the server is done talking, but keeps listening
            got.put(harness.recv_until_eof(conn))

        upstream = self.server(banner_then_listen)
        proxy = self.start_proxy(harness.simple_config([upstream.port]))
        s = self.connect(proxy.listener_port())
        s.settimeout(5)
        self.assertEqual(harness.recv_until_eof(s), b"banner")  # the server's FIN reached us
        time.sleep(0.2)  # talk well after the FIN: the proxy must keep this direction open
        s.sendall(b"late data after the server's FIN")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(got.get(timeout=5), b"late data after the server's FIN")
        proxy.wait_stat("server.total_connections", 0)
        self.assertServerHealthy(upstream)


if __name__ == "__main__":
    harness.main()
