"""Back-pressure: a peer that stops reading stalls the other side instead of growing the
proxy's memory, in both directions, and the stream is intact once it reads again."""

import hashlib
import socket
import threading
import time

import harness
from harness import IntegrationTestCase

MB = 1 << 20
TOTAL = 200 * MB
RSS_GROWTH_LIMIT = 32 * MB
PIECE = 64 * 1024


class RssMonitor:
    """Samples the proxy's VmRSS every 20 ms in a thread; .peak is the largest sample."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.peak = proxy.rss_bytes()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_event.wait(0.02):
            try:
                self.peak = max(self.peak, self.proxy.rss_bytes())
            except (OSError, AssertionError):
                return

    def stop(self):
        self.stop_event.set()
        self.thread.join(5)
        return self.peak


class Progress:
    """A byte counter shared between a pumping thread and the test."""

    def __init__(self):
        self.lock = threading.Lock()
        self.value = 0
        self.error = None
        self.done = threading.Event()

    def add(self, n):
        with self.lock:
            self.value += n

    def get(self):
        with self.lock:
            return self.value


def send_stream(sock, stream, progress):
    """Sends `stream` in PIECE-sized writes, counting each; then half-closes."""
    try:
        for chunk in stream.chunks():
            for i in range(0, len(chunk), PIECE):
                sock.sendall(chunk[i:i + PIECE])
                progress.add(min(PIECE, len(chunk) - i))
        sock.shutdown(socket.SHUT_WR)
    except OSError as e:
        progress.error = e
    finally:
        progress.done.set()


def read_all(sock, digest_out):
    h, n = hashlib.sha256(), 0
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        h.update(data)
        n += len(data)
    digest_out.append((h.hexdigest(), n))


def wait_stalled(progress, quiet=0.5, timeout=20.0):
    """Waits until `progress` stops moving for `quiet` seconds (the writer is blocked)."""
    state = {"value": -1, "since": time.monotonic()}

    def stalled():
        v = progress.get()
        now = time.monotonic()
        if v != state["value"]:
            state["value"], state["since"] = v, now
            return False
        return v > 0 and now - state["since"] >= quiet

    harness.wait_until(stalled, timeout, interval=0.05, what="the writer to block on back-pressure")
    return progress.get()


class FlowControlTest(IntegrationTestCase):
    def start(self, upstream_handler):
        upstream = self.server(upstream_handler)
        proxy = self.start_proxy(harness.simple_config([upstream.port]), concurrency=2)
        return upstream, proxy

    def test_slow_upstream_reader_pauses_downstream_reading_and_bounds_memory(self):
        go = threading.Event()
        upstream_digest = []

        def lazy_reader(conn, server):
            if not go.wait(60):  # read nothing until the test says so
                return
            read_all(conn, upstream_digest)

        upstream, proxy = self.start(lazy_reader)
        baseline = proxy.rss_bytes()
        monitor = RssMonitor(proxy)
        self.addCleanup(monitor.stop)

        stream = harness.PatternStream(TOTAL, seed=11)
        sock = self.connect(proxy.listener_port(), timeout=60)
        progress = Progress()
        threading.Thread(target=send_stream, args=(sock, stream, progress), daemon=True).start()

        stalled_at = wait_stalled(progress)
        # Only socket buffers' worth got in: the proxy stopped reading instead of buffering.
        self.assertLess(stalled_at, 64 * MB, "the client pushed %d MB into a proxy whose upstream reads nothing"
                        % (stalled_at // MB))
        proxy.wait_stat("tcp.main.downstream_flow_control_paused_reading_total", lambda v: v > 0)
        self.assertLess(proxy.rss_bytes() - baseline, RSS_GROWTH_LIMIT)

        go.set()
        self.assertTrue(progress.done.wait(60), "sender never finished after the upstream started reading")
        self.assertIsNone(progress.error)
        harness.wait_until(lambda: upstream_digest, 30, what="the upstream to read everything")
        peak = monitor.stop()
        self.assertEqual(upstream_digest, [(stream.sha256(), TOTAL)])
        self.assertLess(peak - baseline, RSS_GROWTH_LIMIT,
                        "proxy RSS grew by %.1f MB" % ((peak - baseline) / MB))
        self.assertGreater(proxy.stat("tcp.main.downstream_flow_control_resumed_reading_total"), 0)
        self.assertServerHealthy(upstream)

    def test_slow_downstream_reader_stalls_upstream_and_bounds_memory(self):
        stream = harness.PatternStream(TOTAL, seed=13)
        upstream_progress = Progress()

        def firehose(conn, server):
            send_stream(conn, stream, upstream_progress)
            harness.recv_until_eof(conn)

        upstream, proxy = self.start(firehose)
        baseline = proxy.rss_bytes()
        monitor = RssMonitor(proxy)
        self.addCleanup(monitor.stop)

        sock = self.connect(proxy.listener_port(), timeout=60)
        # Read nothing: the upstream must end up blocked, with the proxy holding little.
        stalled_at = wait_stalled(upstream_progress)
        self.assertLess(stalled_at, 64 * MB, "the upstream pushed %d MB to a client that reads nothing"
                        % (stalled_at // MB))
        self.assertLess(proxy.rss_bytes() - baseline, RSS_GROWTH_LIMIT)

        digest = []
        read_all(sock, digest)
        sock.shutdown(socket.SHUT_WR)
        peak = monitor.stop()
        self.assertTrue(upstream_progress.done.wait(10))
        self.assertIsNone(upstream_progress.error)
        self.assertEqual(digest, [(stream.sha256(), TOTAL)])
        self.assertLess(peak - baseline, RSS_GROWTH_LIMIT,
                        "proxy RSS grew by %.1f MB" % ((peak - baseline) / MB))
        proxy.wait_stat("server.total_connections", 0)
        self.assertServerHealthy(upstream)


if __name__ == "__main__":
    harness.main()
