"""Connections come and go without leaking: gauges return to zero, fds to their baseline; and a
FIN in one direction is passed on without ending the other direction."""

import os
import queue
import socket
import time

import harness
from harness import IntegrationTestCase


class ConnectionChurnTest(IntegrationTestCase):
    def setUp(self):
        self.upstream = self.echo_server()
        self.proxy = self.start_proxy(harness.simple_config([self.upstream.port]), concurrency=2)
        self.port = self.proxy.listener_port()
        self.listener = self.proxy.listener_stat_prefix()
        self.fd_baseline = self.proxy.fd_count()

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
        harness.wait_until(lambda: p.fd_count() == self.fd_baseline, 10,
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
