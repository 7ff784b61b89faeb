"""The gRPC transport (proxy/grpc) against real, independent peers: @grpc/grpc-js (unary,
server-streaming, bidi, deadlines, unknown method, size limit, health, mTLS identity), curl
(HTTP 415, 431), and a byte-level HTTP/2 client for what well-behaved clients never send
(malformed frames, ping floods, unread streams, unanswered keepalives, too many streams) and for
drain's two GOAWAYs. The server is tests/integration/grpc_test_server."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import h2_raw as h2
import pki

HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP = os.path.join(os.path.dirname(HERE), "interop")
NODE = shutil.which("node")
HAVE_GRPC_JS = NODE and os.path.isdir(os.path.join(INTEROP, "node_modules", "@grpc", "grpc-js"))
SKIP_JS = "grpc-js not installed: run scripts/install-deps.sh test (npm ci in tests/interop)"
ECHO = "/portcullis.test.Test/Echo"
STREAM = "/portcullis.test.Test/Stream"


def server_bin():
    env = os.environ.get("GRPC_TEST_SERVER_BIN")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(HERE))
    return os.path.join(root, "build", "tests", "integration", "grpc_test_server")


class Server:
    def __init__(self, *args, tls=None, tcp=False):
        self.dir = tempfile.mkdtemp(prefix="portcullis-grpc-")
        self.sock = os.path.join(self.dir, "grpc.sock")
        cmd = [server_bin(), "--unix", self.sock] + list(args)
        if tcp or tls:
            cmd += ["--tcp", "127.0.0.1:0"]
        if tls:
            cmd += ["--tls"] + list(tls)
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("server did not start: " + self.log())
        self.addresses = json.loads(line)
        self.conns = []

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        return self.proc.returncode

    def stats(self):
        """Stats the server prints on exit: {leaf name: value}."""
        out = {}
        for line in self.log().splitlines():
            if line.startswith("grpc_server.") and ": " in line:
                name, value = line.split(": ", 1)
                out[name.split(".", 2)[2] if name.count(".") >= 2 else name] = out.get(name, 0) + int(value)
        return out

    def close(self):
        for c in self.conns:
            c.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()
        self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def raw(self, settings=b""):
        c = h2.Conn(socket.AF_UNIX, self.sock, settings)
        self.conns.append(c)
        return c


def js(target, scenario, *extra):
    out = subprocess.run([NODE, os.path.join(INTEROP, "grpc_client.js"), target, scenario] + list(extra),
                         capture_output=True, text=True, timeout=60)
    if not out.stdout.strip():
        raise AssertionError("grpc-js client printed nothing: " + out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


class GrpcTestCase(unittest.TestCase):
    def server(self, *args, **kw):
        s = Server(*args, **kw)
        self.addCleanup(s.close)
        return s


@unittest.skipUnless(HAVE_GRPC_JS, SKIP_JS)
class GrpcJsInteropTest(GrpcTestCase):
    def check_call_shapes(self, target, *extra):
        r = js(target, "unary", *extra)
        self.assertEqual(r["code"], 0, r)
        self.assertEqual(r["replies"][0]["text"], "hi")
        r = js(target, "unary_status", *extra)
        self.assertEqual((r["code"], r["details"]), (7, "nope: 100% \u00e9"))  # percent-encoded on the wire
        self.assertEqual(js(target, "stream", *extra)["replies"], [0, 1, 2, 3, 4])
        self.assertEqual(js(target, "bidi", *extra)["replies"], ["a:0", "b:1", "c:2"])
        self.assertEqual(js(target, "unknown", *extra)["code"], 12)
        self.assertEqual(js(target, "health", *extra), {"code": 0, "details": "", "status": 1})
        self.assertEqual(js(target, "health_unknown", *extra)["code"], 5)

    def test_call_shapes_over_unix_socket_with_peer_credentials(self):
        s = self.server()
        self.check_call_shapes("unix://" + s.sock)
        peer = js("unix://" + s.sock, "unary")["replies"][0]["peer"]
        self.assertIn("uid=%d" % os.getuid(), peer)
        self.assertIn("x-test=hello", peer)  # custom metadata reaches the handler

    def test_call_shapes_over_tcp(self):
        s = self.server(tcp=True)
        self.check_call_shapes(s.addresses["tcp"])

    def test_mtls_peer_spiffe_id_reaches_handler(self):
        d = tempfile.mkdtemp(prefix="portcullis-grpc-pki-")
        self.addCleanup(shutil.rmtree, d, True)
        ca = pki.Pki(d).authority("root")
        server_leaf = ca.leaf(uri="spiffe://example.org/grpc-server", dns=["localhost"], name="server")
        client_leaf = ca.leaf(uri="spiffe://example.org/ns/default/sa/client", name="client")
        s = self.server(tls=(server_leaf.cert, server_leaf.key, ca.cert))
        tls = ["--tls", ca.cert, client_leaf.cert, client_leaf.key]
        r = js(s.addresses["tls"], "unary", *tls)
        self.assertEqual(r["code"], 0, r)
        self.assertEqual(r["replies"][0]["peer"], "spiffe://example.org/ns/default/sa/client")
        self.assertEqual(js(s.addresses["tls"], "bidi", *tls)["replies"], ["a:0", "b:1", "c:2"])
        # A client without a certificate never gets a call through.
        r = js(s.addresses["tls"], "unary", "--tls", ca.cert, "-", "-")
        self.assertEqual(r["code"], 14, r)

    def test_deadline_exceeded(self):
        s = self.server()
        started = time.monotonic()
        self.assertEqual(js("unix://" + s.sock, "deadline", "--arg", "300")["code"], 4)
        self.assertLess(time.monotonic() - started, 10)
        s.stop()
        self.assertGreaterEqual(s.stats().get("calls_deadline_exceeded", 0) + s.stats().get("calls_cancelled", 0), 1)

    def test_message_over_limit_is_resource_exhausted(self):
        s = self.server("--max-message-bytes", "65536")
        r = js("unix://" + s.sock, "too_large", "--arg", "70000")
        self.assertEqual(r["code"], 8, r)
        self.assertIn("exceeds the limit of 65536", r["details"])
        self.assertEqual(js("unix://" + s.sock, "too_large", "--arg", "60000")["code"], 0)
        s.stop()
        self.assertEqual(s.stats()["messages_too_large"], 1)

    def test_many_concurrent_calls_and_cancel(self):
        s = self.server()
        self.assertEqual(js("unix://" + s.sock, "many_unary", "--arg", "300")["failed"], 0)
        self.assertEqual(js("unix://" + s.sock, "stream_cancel")["code"], 1)
        s.stop()
        st = s.stats()
        self.assertEqual(st["calls_finished_OK"], 300)
        self.assertEqual(st["calls_cancelled"], 1)
        self.assertEqual(st["streams_active"], 0)


class GrpcHttpTest(GrpcTestCase):
    def curl(self, s, *args):
        if not shutil.which("curl"):
            self.skipTest("curl not installed")
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--http2-prior-knowledge",
                              "--unix-socket", s.sock, "-X", "POST", "--data-binary", "@/dev/null"] + list(args)
                             + ["http://x" + ECHO], capture_output=True, timeout=30)
        return out.stdout.decode()

    def test_non_grpc_content_type_is_415(self):
        s = self.server()
        self.assertEqual(self.curl(s, "-H", "content-type: application/json"), "415")
        self.assertEqual(self.curl(s, "-H", "content-type: application/grpcfoo"), "415")
        self.assertEqual(self.curl(s, "-H", "content-type: application/grpc+proto"), "200")

    def test_header_list_over_limit_is_431(self):
        s = self.server()
        self.assertEqual(self.curl(s, "-H", "content-type: application/grpc", "-H", "x-big: " + "a" * 9000), "431")

    def test_malformed_frames_close_the_connection_not_the_server(self):
        s = self.server()
        for garbage in [h2.frame(h2.DATA, 0, 0, b"x"),              # DATA on stream 0
                        h2.frame(h2.HEADERS, h2.END_HEADERS, 2, b"\xff\xff"),  # even id, bad HPACK
                        h2.frame(h2.WINDOW_UPDATE, 0, 0, b"\0\0\0\0"),       # zero increment
                        b"\x00\x00\x01\xff" + b"\x00" * 20]:                  # junk
            c = s.raw()
            c.send(garbage)
            frames = c.frames_until(lambda f: f[0] == h2.GOAWAY)
            self.assertTrue(frames and frames[-1] is not None and frames[-1][0] == h2.GOAWAY, frames)
            self.assertNotEqual(h2.goaway_fields(frames[-1][3])[1], h2.NO_ERROR)
            c.close()
        c = socket.socket(socket.AF_UNIX)
        c.connect(s.sock)
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # not HTTP/2 at all
        c.settimeout(5)
        while c.recv(4096):
            pass
        c.close()
        self.assertIsNone(s.proc.poll())
        c = s.raw()
        c.call(1, ECHO, h2.echo_request(text="still here"))
        frames = c.frames_until(lambda f: f[0] == h2.HEADERS and f[1] & h2.END_STREAM)
        self.assertTrue(any(f and f[0] == h2.DATA and b"still here" in f[3] for f in frames), frames)

    def test_bad_grpc_framing_gets_status_not_crash(self):
        s = self.server()
        c = s.raw()
        c.headers(1, h2.request_headers(ECHO))
        c.data(1, h2.grpc_message(h2.echo_request(text="x"), compressed=True))  # no grpc-encoding
        c.headers(3, h2.request_headers(ECHO))
        c.data(3, b"\x00\x00\x00\x00\x10abc")  # truncated message at END_STREAM
        c.headers(5, h2.request_headers(ECHO))
        c.data(5, b"\x07\x00\x00\x00\x00")  # bad flag
        c.headers(7, h2.request_headers(ECHO))
        c.data(7, h2.grpc_message(b"") * 2)  # two messages on a unary call
        done = set()
        frames = c.frames_until(lambda f: f[0] == h2.HEADERS and f[1] & h2.END_STREAM and done.add(f[2]) is None
                                and len(done) == 4)
        self.assertEqual(done, {1, 3, 5, 7}, frames)
        c.close()
        s.stop()
        st = s.stats()
        self.assertEqual(st["calls_finished_INTERNAL"], 3)
        self.assertEqual(st["calls_finished_UNIMPLEMENTED"], 1)

    def test_too_many_pings_get_enhance_your_calm(self):
        s = self.server("--min-ping-interval-ms", "60000")
        c = s.raw()
        # One write: the server may close right after its GOAWAY, before later pings arrive.
        c.send(b"".join(h2.frame(h2.PING, 0, 0, b"%08d" % i) for i in range(5)))
        frames = c.frames_until(lambda f: f is None or f[0] == h2.GOAWAY)
        goaway = [f for f in frames if f and f[0] == h2.GOAWAY]
        self.assertTrue(goaway, frames)
        _, code, debug = h2.goaway_fields(goaway[0][3])
        self.assertEqual((code, debug), (h2.ENHANCE_YOUR_CALM, b"too_many_pings"))

    def test_unanswered_keepalive_closes_connection(self):
        s = self.server("--keepalive-time-ms", "200", "--keepalive-timeout-ms", "300")
        c = s.raw()
        started = time.monotonic()
        frames = c.frames_until(lambda f: f is None, timeout=5)  # never ACK the server's PING
        self.assertTrue(any(f and f[0] == h2.PING and not f[1] & h2.ACK for f in frames), frames)
        self.assertIsNone(frames[-1])  # EOF
        self.assertLess(time.monotonic() - started, 3)
        s.stop()
        self.assertEqual(s.stats()["keepalive_timeout"], 1)

    def test_client_that_does_not_read_is_bounded(self):
        s = self.server("--max-buffered", "1048576")
        c = s.raw()
        # 2000 x 16 KB = 32 MB of responses; the client's window is 64 KiB and it never reads.
        c.call(1, STREAM, h2.echo_request(count=2000, payload=b"z" * 16000))
        time.sleep(1)
        frames = c.frames_until(lambda f: f[0] == h2.RST_STREAM)
        rst = [f for f in frames if f and f[0] == h2.RST_STREAM]
        self.assertTrue(rst, [f[:3] for f in frames if f])
        self.assertEqual(int.from_bytes(rst[0][3], "big"), h2.ENHANCE_YOUR_CALM)
        s.stop()
        self.assertEqual(s.stats()["output_buffer_overflow"], 1)

    def test_streams_over_the_limit_are_refused(self):
        s = self.server("--max-streams", "2")
        c = s.raw()
        for sid in (1, 3, 5):
            c.call(sid, ECHO, h2.echo_request(hang=True))
        frames = c.frames_until(lambda f: f[0] == h2.RST_STREAM)
        rst = [f for f in frames if f and f[0] == h2.RST_STREAM]
        self.assertEqual([(f[2], int.from_bytes(f[3], "big")) for f in rst], [(5, h2.REFUSED_STREAM)])

    def test_drain_sends_two_goaways_and_lets_calls_finish(self):
        s = self.server("--drain-ms", "1500")
        c = s.raw()
        c.call(1, ECHO, h2.echo_request(hang=True), extra=[("grpc-timeout", "1S")])
        c.frames_until(lambda f: f[0] == h2.SETTINGS and f[1] & h2.ACK, timeout=1)
        s.proc.send_signal(signal.SIGTERM)
        frames = c.frames_until(lambda f: f is None, timeout=10)
        goaways = [h2.goaway_fields(f[3]) for f in frames if f and f[0] == h2.GOAWAY]
        self.assertEqual([(g[0], g[1]) for g in goaways], [(2**31 - 1, h2.NO_ERROR), (1, h2.NO_ERROR)])
        # The in-flight call still ended with its own status (the deadline), in trailers.
        self.assertTrue(any(f and f[0] == h2.HEADERS and f[2] == 1 and f[1] & h2.END_STREAM for f in frames))
        self.assertEqual(s.stop(), 0)

    def test_unix_socket_lifecycle(self):
        d = tempfile.mkdtemp(prefix="portcullis-grpc-sock-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "grpc.sock")
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(path)  # bound, never listening: a crashed server's leftover
        stale.close()
        proc = subprocess.Popen([server_bin(), "--unix", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertTrue(proc.stdout.readline())
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o666)
        second = subprocess.run([server_bin(), "--unix", path], capture_output=True, text=True, timeout=10)
        self.assertEqual(second.returncode, 3)
        self.assertIn("address in use", second.stderr)
        proc.send_signal(signal.SIGINT)
        self.assertEqual(proc.wait(timeout=10), 0)
        proc.stdout.close()
        proc.stderr.close()
        self.assertFalse(os.path.exists(path))


if __name__ == "__main__":
    unittest.main()
