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


if __name__ == "__main__":
    harness.main()
