#!/usr/bin/env python3
"""Portcullis quickstart: a TCP proxy in front of a small echo service, all on loopback.

Starts an echo service, writes an Envoy-shaped config for portcullis in front of it, starts
portcullis, sends traffic through it and prints what that proved: bytes arrive intact, the admin
API reports them, a broken config is rejected with a located error, SIGTERM drains cleanly.
With a terminal attached it then keeps running until Ctrl-C so you can try it yourself.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CONFIG = """\
node: {{id: quickstart-sidecar, cluster: quickstart}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: echo_ingress
    address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: echo
          cluster: echo_service
          idle_timeout: 60s
  clusters:
  - name: echo_service
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: echo_service
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {echo_port}}}}}}}
"""


def start_echo_service():
    srv = socket.create_server(("127.0.0.1", 0))

    def serve(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept_loop():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    return srv, srv.getsockname()[1]


def http(method, url):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_ready(admin_file, proc, deadline=10):
    end = time.time() + deadline
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"portcullis exited early with code {proc.returncode}")
        if os.path.exists(admin_file) and open(admin_file).read().strip():
            admin = "http://" + open(admin_file).read().strip()
            try:
                if http("GET", admin + "/ready")[0] == 200:
                    return admin
            except OSError:
                pass
        time.sleep(0.05)
    sys.exit("portcullis did not become ready in time")


def say(ok, text):
    print(("  [ok] " if ok else "  [FAILED] ") + text)
    if not ok:
        raise SystemExit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--no-wait", action="store_true", help="exit after the demo even on a terminal")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="portcullis-quickstart-")
    echo_srv, echo_port = start_echo_service()
    config_path = os.path.join(work, "portcullis.yaml")
    with open(config_path, "w") as f:
        f.write(CONFIG.format(echo_port=echo_port))
    admin_file = os.path.join(work, "admin-address")
    log_path = os.path.join(work, "portcullis.log")

    print(f"== portcullis quickstart (files in {work})")
    print(f"   echo service on 127.0.0.1:{echo_port}")
    out = subprocess.run([args.binary, "-c", config_path, "--mode", "validate"], capture_output=True, text=True)
    say(out.returncode == 0 and out.stdout.strip() == "OK", f"config validates: {out.stdout.strip()}")

    proc = subprocess.Popen([args.binary, "-c", config_path, "--admin-address-path", admin_file,
                             "--concurrency", "2", "--drain-time-s", "5", "--log-path", log_path])
    try:
        admin = wait_ready(admin_file, proc)
        listeners = json.loads(http("GET", admin + "/listeners?format=json")[1])
        port = listeners["listener_statuses"][0]["local_address"]["socket_address"]["port_value"]
        print(f"   portcullis pid {proc.pid}: listener echo_ingress on 127.0.0.1:{port}, admin on {admin}")

        payload = os.urandom(1 << 20)
        with socket.create_connection(("127.0.0.1", port)) as s:
            threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)), daemon=True).start()
            got = bytearray()
            while chunk := s.recv(65536):
                got += chunk
        say(bytes(got) == payload, f"1 MiB went client -> portcullis -> echo -> portcullis -> client intact, "
                                   f"half-close passed through")

        stats = dict(line.split(": ", 1) for line in http("GET", admin + "/stats")[1].splitlines())
        say(int(stats["tcp.echo.downstream_cx_rx_bytes_total"]) == len(payload),
            f"/stats counts it: tcp.echo.downstream_cx_rx_bytes_total = {stats['tcp.echo.downstream_cx_rx_bytes_total']}, "
            f"cluster.echo_service.upstream_cx_total = {stats['cluster.echo_service.upstream_cx_total']}")
        status, _ = http("GET", admin + "/quitquitquit")
        say(status == 400, "admin refuses a GET on the POST-only /quitquitquit (400)")

        bad = os.path.join(work, "typo.yaml")
        with open(bad, "w") as f:
            f.write(CONFIG.format(echo_port=echo_port).replace("cluster: echo_service\n          idle",
                                                              "clustr: echo_service\n          idle"))
        out = subprocess.run([args.binary, "-c", bad, "--mode", "validate"], capture_output=True, text=True)
        lines = out.stdout.strip().splitlines()
        say(out.returncode == 1 and lines and all("typo.yaml:" in l for l in lines),
            "a typo ('clustr') is rejected with every error located:\n         " + "\n         ".join(lines))

        if sys.stdin.isatty() and not args.no_wait:
            print(f"\nportcullis is running. Try:  python3 -c \"import socket;s=socket.create_connection(('127.0.0.1',{port}));"
                  f"s.sendall(b'hi');print(s.recv(9))\"")
            print(f"                            curl {admin}/stats")
            print("Stop it with Ctrl-C (or: curl -X POST " + admin + "/quitquitquit).")
            try:
                proc.wait()
            except KeyboardInterrupt:
                pass
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        say(rc == 0, "SIGTERM drained and stopped portcullis (exit code 0)")
        print("\nDone. To run it again: scripts/quickstart.sh; tests: scripts/test.sh")
    finally:
        if proc.poll() is None:
            proc.kill()
        echo_srv.close()


if __name__ == "__main__":
    main()
