"""Bytes through the proxy arrive unchanged: 100 MB, one connection, two workers."""

import hashlib
import socket
import threading

import harness
from harness import IntegrationTestCase

MB = 1 << 20


def hashing_echo(server_digests):
    """Upstream that echoes everything and, at EOF, records the sha256 of what it received."""

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
            server_digests.append((h.hexdigest(), total))
        conn.shutdown(socket.SHUT_WR)

    return handle


class DataIntegrityTest(IntegrationTestCase):
    def test_100mb_round_trip_is_byte_identical_at_both_ends(self):
        total = 100 * MB
        stream = harness.PatternStream(total, seed=7)
        upstream_digests = []
        upstream = self.server(hashing_echo(upstream_digests))
        proxy = self.start_proxy(harness.simple_config([upstream.port]), concurrency=2)
        sock = self.connect(proxy.listener_port())

        sent = hashlib.sha256()
        send_error = []

        def sender():
            try:
                for chunk in stream.chunks():
                    sent.update(chunk)
                    sock.sendall(chunk)
                sock.shutdown(socket.SHUT_WR)
            except OSError as e:
                send_error.append(e)

        t = threading.Thread(target=sender, daemon=True)
        t.start()
        received, n = hashlib.sha256(), 0
        sock.settimeout(60)
        while True:
            data = sock.recv(1 << 20)
            if not data:
                break
            received.update(data)
            n += len(data)
        t.join(60)
        self.assertFalse(t.is_alive(), "sender still blocked")
        self.assertEqual(send_error, [])

        expected = stream.sha256()
        self.assertEqual(sent.hexdigest(), expected)
        # What the upstream got, and what came back through the proxy, match what was sent.
        harness.wait_until(lambda: upstream_digests, 10, what="the upstream to see EOF")
        self.assertEqual(upstream_digests, [(expected, total)])
        self.assertEqual(n, total)
        self.assertEqual(received.hexdigest(), expected)
        self.assertServerHealthy(upstream)

        proxy.wait_stat("server.total_connections", 0)
        stats = proxy.stats()
        self.assertEqual(stats["tcp.main.downstream_cx_rx_bytes_total"], total)
        self.assertEqual(stats["tcp.main.downstream_cx_tx_bytes_total"], total)
        self.assertEqual(stats["cluster.backend.upstream_cx_tx_bytes_total"], total)
        self.assertEqual(stats["cluster.backend.upstream_cx_rx_bytes_total"], total)
        self.assertEqual(stats["cluster.backend.upstream_cx_total"], 1)
        self.assertEqual(proxy.stop(), 0)

    def test_50_concurrent_streams_with_small_buffers_arrive_intact(self):
        upstream = self.echo_server()
        # A 1 KiB listener buffer: thousands of partial reads and writes per stream.
        proxy = self.start_proxy(harness.simple_config([upstream.port], buffer_limit=1024), concurrency=2)
        port = proxy.listener_port()
        size, results = 2 * MB, {}

        def client(i):
            data = b"".join(harness.PatternStream(size, seed=100 + i).chunks())
            with harness.connect(port, timeout=60) as s:
                t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)), daemon=True)
                t.start()
                got = harness.recv_until_eof(s, limit=4 * size)
                t.join(30)
            results[i] = hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(results, {i: True for i in range(50)})
        proxy.wait_stat("server.total_connections", 0)
        self.assertEqual(proxy.stat("tcp.main.downstream_cx_rx_bytes_total"), 50 * size)
        self.assertServerHealthy(upstream)

    def test_ipv6_listener_carries_bytes_to_ipv4_upstream(self):
        upstream = self.echo_server()
        cfg = harness.bootstrap([harness.tcp_proxy_listener("v6", "backend", address="::1")],
                                [harness.static_cluster("backend", [upstream.port])])
        proxy = self.start_proxy(cfg)
        address, port = proxy.listeners()["v6"]
        self.assertEqual(address, "::1")
        s = self.connect(port, address="::1")
        data = b"".join(harness.PatternStream(4 * MB, seed=3).chunks())
        t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)), daemon=True)
        t.start()
        s.settimeout(30)
        self.assertEqual(harness.recv_until_eof(s, limit=8 * MB), data)
        t.join(10)


if __name__ == "__main__":
    harness.main()
