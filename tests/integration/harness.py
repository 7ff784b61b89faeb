"""Shared helpers for the Portcullis integration tests (Python 3 standard library only).

The tests run the real binary (PORTCULLIS_BIN) against small threaded TCP backends on
127.0.0.1. Everything binds port 0: the proxy's admin address comes back through
--admin-address-path and listener ports through GET /listeners?format=json, so tests can run
in parallel with anything else on the machine.

Rules the helpers follow, and tests should too:
  * wait on conditions with a deadline (wait_until, Proxy.wait_stat), never bare sleeps;
  * every process and socket a test creates is cleaned up, also when the test fails
    (IntegrationTestCase registers cleanups; Proxy.__del__ and atexit are the last resort).
"""

import atexit
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
LOOPBACK = "127.0.0.1"


def portcullis_bin():
    """The binary under test: $PORTCULLIS_BIN (set by ctest), else the usual build dirs."""
    env = os.environ.get("PORTCULLIS_BIN")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(HERE))
    for build in ("build-it", "build"):
        candidate = os.path.join(root, build, "proxy", "portcullis")
        if os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("set PORTCULLIS_BIN to the portcullis binary")


# ---------------------------------------------------------------------------------------------
# Waiting


class Timeout(AssertionError):
    pass


def wait_until(predicate, timeout=10.0, interval=0.01, what=None):
    """Polls predicate() until it returns a truthy value, which is returned. Raises Timeout
    (an AssertionError, so a test fails rather than errors) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Timeout("timed out after %.1fs waiting for %s (last value: %r)"
                          % (timeout, what or getattr(predicate, "__name__", "condition"), last))
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# YAML: a minimal block-style emitter, so configs look like the ones operators write.


def _yaml_scalar(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(value, indent=0):
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        out = []
        for k, v in value.items():
            key = _yaml_scalar(k) if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", str(k)) else str(k)
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:\n%s" % (pad, key, to_yaml(v, indent + 2)))
            else:
                out.append("%s%s: %s\n" % (pad, key, to_yaml(v, 0).strip()))
        return "".join(out)
    if isinstance(value, list):
        if not value:
            return pad + "[]\n"
        out = []
        for item in value:
            body = to_yaml(item, indent + 2)
            out.append("%s- %s" % (pad, body[indent + 2:]))
        return "".join(out)
    return pad + _yaml_scalar(value) + "\n"


# ---------------------------------------------------------------------------------------------
# Config builders (Envoy bootstrap shapes)

TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def socket_address(port, address=LOOPBACK):
    return {"socket_address": {"address": address, "port_value": port}}


def tcp_proxy_listener(name, cluster, port=0, stat_prefix=None, idle_timeout=None,
                       max_connect_attempts=None, buffer_limit=None, address=LOOPBACK):
    tp = {"@type": TCP_PROXY_TYPE, "stat_prefix": stat_prefix or name, "cluster": cluster}
    if idle_timeout is not None:
        tp["idle_timeout"] = idle_timeout
    if max_connect_attempts is not None:
        tp["max_connect_attempts"] = max_connect_attempts
    listener = {"name": name, "address": socket_address(port, address)}
    if buffer_limit is not None:
        listener["per_connection_buffer_limit_bytes"] = buffer_limit
    listener["filter_chains"] = [{"filters": [{"name": "envoy.filters.network.tcp_proxy",
                                               "typed_config": tp}]}]
    return listener


def static_cluster(name, ports, connect_timeout="1s"):
    return {
        "name": name,
        "connect_timeout": connect_timeout,
        "type": "STATIC",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": socket_address(p)}}
                                            for p in ports]}],
        },
    }


def bootstrap(listeners, clusters, runtime=None, admin=True, node_id="it-node", node_cluster="it"):
    cfg = {"node": {"id": node_id, "cluster": node_cluster}}
    if admin:
        cfg["admin"] = {"address": socket_address(0)}
    cfg["static_resources"] = {"listeners": listeners, "clusters": clusters}
    if runtime:
        cfg["layered_runtime"] = {"layers": [{"name": "static", "static_layer": runtime}]}
    return cfg


def simple_config(upstream_ports, name="main", cluster="backend", runtime=None, connect_timeout="1s",
                  **listener_kwargs):
    """One listener on port 0 proxying to one STATIC cluster."""
    return bootstrap([tcp_proxy_listener(name, cluster, **listener_kwargs)],
                     [static_cluster(cluster, upstream_ports, connect_timeout)], runtime=runtime)


# ---------------------------------------------------------------------------------------------
# The proxy process

_live_processes = set()


@atexit.register
def _kill_leftovers():
    for p in list(_live_processes):
        if p.poll() is None:
            p.kill()
            p.wait()


class ProxyExited(AssertionError):
    pass


class Proxy:
    """One portcullis process serving `config` (a dict, rendered as YAML, or YAML text).

    Usage: `proxy = Proxy(cfg).start()` (or as a context manager). Logs go to files in a
    private temp dir, shown by `log()`; the dir is removed by `close()`.
    """

    def __init__(self, config, concurrency=2, drain_time_s=None, extra_args=(), log_level="info",
                 rlimit_nofile=None):
        self.dir = tempfile.mkdtemp(prefix="portcullis-it-")
        self.config_path = os.path.join(self.dir, "portcullis.yaml")
        self.admin_path = os.path.join(self.dir, "admin_address")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.write_config(config)
        self.args = [portcullis_bin(), "-c", self.config_path, "--admin-address-path", self.admin_path,
                     "--concurrency", str(concurrency), "-l", log_level]
        if drain_time_s is not None:
            self.args += ["--drain-time-s", str(drain_time_s)]
        self.args += list(extra_args)
        self.rlimit_nofile = rlimit_nofile
        self.proc = None
        self.admin = None  # (host, port)
        self.returncode = None

    # -- lifecycle ---------------------------------------------------------------------------

    def write_config(self, config):
        text = config if isinstance(config, (str, bytes)) else to_yaml(config)
        mode = "wb" if isinstance(text, bytes) else "w"
        tmp = self.config_path + ".tmp"
        with open(tmp, mode) as f:
            f.write(text)
        os.replace(tmp, self.config_path)  # a reload must never see a half-written file

    def start(self, timeout=10.0):
        if os.path.exists(self.admin_path):
            os.unlink(self.admin_path)
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        preexec = None
        if self.rlimit_nofile is not None:
            import resource
            limit = self.rlimit_nofile
            preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))  # noqa: E731
        self.proc = subprocess.Popen(self.args, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                     preexec_fn=preexec)
        _live_processes.add(self.proc)

        def admin_known():
            self._check_alive("before writing its admin address")
            try:
                with open(self.admin_path) as f:
                    text = f.read()
            except FileNotFoundError:
                return None
            if not text.endswith("\n"):
                return None  # still being written
            host, _, port = text.strip().rpartition(":")
            return host, int(port)

        self.admin = wait_until(admin_known, timeout, what="the admin address file")
        wait_until(lambda: self._check_alive("before /ready") or self.ready_status() == 200, timeout,
                   what="GET /ready == 200")
        return self

    def _check_alive(self, when):
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            raise ProxyExited("portcullis exited with %s %s\n%s" % (self.proc.returncode, when, self.log()))
        return False

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, signo):
        self.proc.send_signal(signo)

    def wait_exit(self, timeout=10.0):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Timeout("portcullis did not exit within %.1fs\n%s" % (timeout, self.log()))
        _live_processes.discard(self.proc)
        return self.returncode

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit code (SIGKILL if it does not exit in time)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        _live_processes.discard(self.proc)
        return self.returncode

    def close(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc is not None:
                _live_processes.discard(self.proc)
        finally:
            for f in (getattr(self, "_out", None), getattr(self, "_err", None)):
                if f:
                    f.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.close()

    def log(self, limit=20000):
        out = []
        for path in (self.stdout_path, self.stderr_path):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            out.append("--- %s ---\n%s" % (os.path.basename(path), data[-limit:].decode("utf-8", "replace")))
        return "\n".join(out)

    # -- admin -------------------------------------------------------------------------------

    def request(self, method, path, timeout=5.0, body=None):
        """One admin request: returns (status, body text)."""
        conn = http.client.HTTPConnection(self.admin[0], self.admin[1], timeout=timeout)
        try:
            conn.request(method, path, body=body)
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def ready_status(self):
        try:
            return self.get("/ready", timeout=2.0)[0]
        except OSError:
            return None

    def listeners(self):
        """{name: (address, port)} from GET /listeners?format=json."""
        status, body = self.get("/listeners?format=json")
        assert status == 200, (status, body)
        out = {}
        for l in json.loads(body)["listener_statuses"]:
            sa = l["local_address"]["socket_address"]
            out[l["name"]] = (sa["address"], sa["port_value"])
        return out

    def listener_port(self, name="main"):
        return self.listeners()[name][1]

    def listener_stat_prefix(self, name="main"):
        address, port = self.listeners()[name]
        return "listener.%s_%d." % (address, port)

    def stats(self):
        """All stats as {name: int} from GET /stats."""
        status, body = self.get("/stats")
        assert status == 200, (status, body)
        out = {}
        for line in body.splitlines():
            name, sep, value = line.rpartition(": ")
            assert sep, "malformed stats line %r" % line
            out[name] = int(value)
        # Every stat here counts something: a negative one is a gauge decremented twice.
        negative = {k: v for k, v in out.items() if v < 0}
        assert not negative, "negative stats: %r" % negative
        return out

    def stat(self, name):
        stats = self.stats()
        if name not in stats:
            raise AssertionError("no stat %r; have: %s" % (name, ", ".join(sorted(stats))))
        return stats[name]

    def wait_stat(self, name, predicate, timeout=10.0):
        """Waits until predicate(value of stat `name`) holds; returns the value. A plain value
        instead of a predicate means equality."""
        check = predicate if callable(predicate) else (lambda v: v == predicate)
        seen = []

        def ok():
            v = self.stat(name)
            seen[:] = [v]
            return check(v)

        try:
            wait_until(ok, timeout, interval=0.02, what="stat %s" % name)
        except Timeout as e:
            raise Timeout("%s (last %s = %r)" % (e, name, seen[0] if seen else None)) from None
        return seen[0]

    # -- process resources -------------------------------------------------------------------

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def settled_fd_count(self, samples=5, timeout=5.0):
        """fd_count once it has read the same for `samples` reads 20 ms apart: the admin
        connection of a request we just made closes on the proxy's side only after we have the
        response, so an immediate count can include it."""
        history = []

        def settled():
            history.append(self.fd_count())
            tail = history[-samples:]
            return len(tail) == samples and len(set(tail)) == 1

        wait_until(settled, timeout, interval=0.02, what="a stable fd count (%r)" % history[-samples:])
        return history[-1]

    def rss_bytes(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS for pid %d" % self.pid)


def run_portcullis(args, timeout=30.0, input_bytes=None):
    """Runs the binary to completion: returns CompletedProcess (stdout/stderr as text)."""
    p = subprocess.run([portcullis_bin()] + list(args), capture_output=True, timeout=timeout,
                       input=input_bytes, stdin=None if input_bytes is not None else subprocess.DEVNULL)
    p.stdout = p.stdout.decode("utf-8", "replace")
    p.stderr = p.stderr.decode("utf-8", "replace")
    return p


# ---------------------------------------------------------------------------------------------
# Backends


class TcpServer:
    """A threaded TCP server on 127.0.0.1:0 (or `address`) that runs handler(conn, server) in a
    thread per accepted connection. Tracks accepted connections; close() stops everything."""

    def __init__(self, handler, backlog=1024, address=LOOPBACK):
        self.handler = handler
        self.sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = 0
        self.errors = []
        self.conns = set()
        self.closed = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if self.closed:
                    conn.close()
                    return
                self.accepted += 1
                self.conns.add(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.handler(conn, self)
        except OSError:
            pass  # the peer went away: the test will notice from its own end
        except Exception as e:  # noqa: BLE001 - surfaced to the test through .errors
            with self.lock:
                self.errors.append(e)
        finally:
            with self.lock:
                self.conns.discard(conn)
            conn.close()

    def accepted_count(self):
        with self.lock:
            return self.accepted

    def close(self):
        with self.lock:
            self.closed = True
            conns = list(self.conns)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def echo_handler(banner=b""):
    """Sends `banner` first, then echoes until EOF, then half-closes (shutdown(SHUT_WR))."""

    def handle(conn, server):
        if banner:
            conn.sendall(banner)
        while True:
            data = conn.recv(262144)
            if not data:
                break
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)

    return handle


def EchoServer(banner=b""):
    return TcpServer(echo_handler(banner))


def closed_port():
    """A 127.0.0.1 port with nothing listening on it (connects are refused)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((LOOPBACK, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------------------------
# Clients


def connect(port, timeout=10.0, address=LOOPBACK):
    s = socket.create_connection((address, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def refuses_connections(port):
    """True when a connect to 127.0.0.1:port is refused (nothing listens there)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def abort(sock):
    """Closes `sock` with an RST instead of a FIN (SO_LINGER with a zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def recv_exactly(sock, n):
    chunks = []
    while n > 0:
        data = sock.recv(min(n, 1 << 20))
        if not data:
            raise AssertionError("connection closed with %d bytes still expected" % n)
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def recv_until_eof(sock, limit=1 << 24):
    chunks, total = [], 0
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
        total += len(data)
        if total > limit:
            raise AssertionError("more than %d bytes before EOF" % limit)


def echo_roundtrip(sock, message):
    sock.sendall(message)
    got = recv_exactly(sock, len(message))
    assert got == message, (got[:64], message[:64])
    return got


def closed_by_peer(sock, timeout=5.0):
    """Waits for the peer to end the connection. Returns ("eof", data) for a clean FIN (data
    received before it), ("reset", data) for an RST; raises Timeout if it stays open."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return "eof", data
            data += chunk
    except ConnectionResetError:
        return "reset", data
    except socket.timeout:
        raise Timeout("connection still open after %.1fs (received %r)" % (timeout, data[:64])) from None


class PatternStream:
    """A deterministic, non-repeating byte stream: chunk i is random bytes seeded by (seed, i),
    so reordered, duplicated or dropped chunks change the digest."""

    CHUNK = 1 << 20

    def __init__(self, total, seed=1):
        self.total = total
        self.seed = seed

    def chunks(self):
        left, i = self.total, 0
        while left > 0:
            n = min(left, self.CHUNK)
            yield random.Random(self.seed * 1000003 + i).randbytes(n)
            left -= n
            i += 1

    def sha256(self):
        h = hashlib.sha256()
        for c in self.chunks():
            h.update(c)
        return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# unittest glue


class IntegrationTestCase(unittest.TestCase):
    """Adds helpers that register their own cleanup, so a failing test leaks nothing."""

    maxDiff = None

    def start_proxy(self, config, **kw):
        proxy = Proxy(config, **kw)
        self.addCleanup(proxy.close)
        self.addCleanup(self._dump_log_if_failed, proxy)  # cleanups run LIFO: before close
        try:
            proxy.start()
        except BaseException:
            proxy.close()
            raise
        self._last_proxy = proxy
        return proxy

    def server(self, handler_or_server):
        srv = handler_or_server if isinstance(handler_or_server, TcpServer) else TcpServer(handler_or_server)
        self.addCleanup(srv.close)
        return srv

    def echo_server(self, banner=b""):
        return self.server(EchoServer(banner))

    def connect(self, port, timeout=10.0, address=LOOPBACK):
        s = connect(port, timeout, address)
        self.addCleanup(s.close)
        return s

    def assertServerHealthy(self, *servers):
        for s in servers:
            self.assertEqual(s.errors, [], "backend handler raised")

    def _dump_log_if_failed(self, proxy):
        # Without the proxy's log a failure says what went wrong, not why.
        outcome = getattr(self, "_outcome", None)
        if outcome is not None and not outcome.success:
            print("\n===== portcullis log for %s =====\n%s" % (self.id(), proxy.log()))


def main():
    unittest.main(verbosity=2)
