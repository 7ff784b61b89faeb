#!/usr/bin/env python3
"""Workload start -> SVID ready, with the embedded authority (issue 5's goal: <= 20 ms).

One sidecar (`identity.embedded_authority`, kernel attestation, a Workload API Unix socket and the
outbound `default` -> mTLS -> inbound `default` pair of /work/issue5-e2e) and N fresh workload
processes, one after the other, each under uid 1001 (entry spiffe://example.org/frontend). The
workload is bench/lib/svid_workload.c, compiled here with gcc; it takes its own timestamps right
before connect() and right after the answer, so exec and process start are not in the figures.

  outbound  each process makes two connections through the outbound listener, one byte echoed by
            a backend under uid 1002 (entry spiffe://example.org/backend) behind the inbound one.
            The first pays attestation + issuance (keygen, CSR, sign, record) + mTLS + echo; the
            second only mTLS + echo, so first - second isolates attestation + issuance.
  wlapi     each process calls FetchX509SVID twice on fresh connections: until the first
            X509SVIDResponse message has fully arrived.

SVIDs are kept per selector set while any process of it lives, and revoked when the last one
exits; the script waits for that revocation (agent.svids_revoked_on_exit) before the next process,
so every process is a first contact that needs a fresh issuance. The first process of all also
hashes the executable (cached by inode afterwards) and is reported apart as `cold`.

Usage: bench/svid_ready_latency.py [--binary build/proxy/portcullis] [-n 50] [--mode outbound,wlapi]
Needs root (setpriv --reuid), gcc, python3."""
import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

TD = "example.org"
FRONTEND_UID, BACKEND_UID = 1001, 1002
TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
# One thread, no thread per connection: a thread-per-connection Python echo costs ~4 ms per
# connection here (GIL hand-off to the new thread waits for a scheduler tick, HZ=250), which would
# hide the sidecar's own figures.
ECHO = """
import selectors, socket
sel = selectors.DefaultSelector()
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128); s.setblocking(False)
print(s.getsockname()[1], flush=True)
sel.register(s, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is s:
            c, _ = s.accept(); c.setblocking(False); sel.register(c, selectors.EVENT_READ)
            continue
        c = key.fileobj
        try:
            d = c.recv(65536)
        except ConnectionError:
            d = b""
        if d:
            c.sendall(d)
        else:
            sel.unregister(c); c.close()
"""

HOLDER = """
import os, resource, sys, time
n = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 64, n + 64))
held = [os.open("/dev/null", os.O_RDONLY) for _ in range(n)]
print("ready", flush=True)
time.sleep(3600)
"""


def as_uid(uid, cmd):
    return ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups"] + cmd


def sidecar_config(tmp, inbound_port, backend_port, wlapi_sock):
    sds = lambda name: {"name": name}  # noqa: E731  built-in identity: no sds_config
    inbound = {
        "name": "inbound", "address": harness.socket_address(inbound_port),
        "filter_chains": [{
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": TLS + "DownstreamTlsContext", "require_client_certificate": True,
                "common_tls_context": {"tls_certificate_sds_secret_configs": [sds("default")],
                                       "validation_context_sds_secret_config": sds("ROOTCA")}}},
            "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": harness.TCP_PROXY_TYPE, "stat_prefix": "in", "cluster": "backend_app"}}]}]}
    to_backend = harness.static_cluster("to_backend", [inbound_port])
    to_backend["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": TLS + "UpstreamTlsContext",
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [sds("default")],
            "combined_validation_context": {
                "default_validation_context": {"match_typed_subject_alt_names": [
                    {"san_type": "URI", "matcher": {"exact": "spiffe://%s/backend" % TD}}]},
                "validation_context_sds_secret_config": sds("ROOTCA")}}}}
    cfg = harness.bootstrap([harness.tcp_proxy_listener("outbound", "to_backend"), inbound],
                            [to_backend, harness.static_cluster("backend_app", [backend_port])])
    cfg["identity"] = {"trust_domain": TD,
                       "embedded_authority": {"data_dir": os.path.join(tmp, "data"),
                                              "entries_file": os.path.join(tmp, "entries.yaml")},
                       "workload_attestation": {"kernel": {}}}
    cfg["workload_api"] = {"address": {"pipe": {"path": wlapi_sock, "mode": 0o666}}}
    cfg["audit"] = {"sinks": [{"file": {"path": os.path.join(tmp, "audit.log")}}]}
    return cfg


def run_workload(exe, args):
    p = subprocess.run(as_uid(FRONTEND_UID, [exe] + args), capture_output=True, text=True, timeout=30)
    conns = []
    for line in p.stdout.splitlines():
        f = line.split()
        if f[0] == "error":
            raise RuntimeError("workload: %s (stderr %s)" % (line, p.stderr))
        if f[0] == "conn":
            # elapsed ms (CLOCK_MONOTONIC inside the workload), start and done (CLOCK_REALTIME µs)
            conns.append((int(f[4]) / 1000.0, int(f[2]), int(f[3])))
    if p.returncode != 0 or len(conns) < 2:
        raise RuntimeError("workload exited %d: %s %s" % (p.returncode, p.stdout, p.stderr))
    return conns


def issued_at_us(audit_path, after_us):
    """CLOCK_REALTIME µs of the frontend's first `svid_issued` audit records at or after after_us:
    {"authority": signed by the embedded authority, "identity": stored by the agent}."""
    out = {}
    with open(audit_path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("decision") != "svid_issued" or not r.get("peer_spiffe_id", "").endswith("/frontend"):
                continue
            t = datetime.datetime.strptime(r["time"].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
            us = int(round(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1e6))
            if us >= after_us:
                out.setdefault(r.get("listener"), us)
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def summary(name, xs):
    return "%-34s n=%-3d p50 %6.2f  p90 %6.2f  max %6.2f  min %6.2f ms" % (
        name, len(xs), statistics.median(xs), pct(xs, 0.9), max(xs), min(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "proxy", "portcullis"))
    ap.add_argument("-n", type=int, default=50, help="workload processes per mode")
    ap.add_argument("--mode", default="outbound,wlapi")
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--busy-fds", type=int, default=0, help="model a busier host: a root process holding this "
                    "many open files while the workloads run (the TCP peer lookup walks /proc/*/fd)")
    ap.add_argument("--initial-csrs", type=int, default=0, help="identity.limits.initial_csrs (default: the "
                    "sidecar's, 2): CSRs sent on first contact before the number of matching entries is known")
    ap.add_argument("--raw", action="store_true", help="also print every sample, sorted")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, audit)")
    ap.add_argument("--wrap", default="", help="prefix for the sidecar's command line, e.g. "
                    "'strace -f -tt -T -o /tmp/sidecar.strace' (the figures then include its overhead)")
    ap.add_argument("--perf", default="", help="perf record -g the sidecar (all threads) into this file while the "
                    "workloads run")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: the workloads run under other uids (setpriv --reuid)")
    os.environ["PORTCULLIS_BIN"] = os.path.abspath(args.binary)
    print("load before:", open("/proc/loadavg").read().strip(), "| processes:",
          sum(1 for d in os.listdir("/proc") if d.isdigit()))

    tmp = tempfile.mkdtemp(prefix="portcullis-svid-ready-")
    os.chmod(tmp, 0o755)  # the workloads (other uids) exec the binary and reach the socket
    procs, proxy = [], None
    try:
        exe = os.path.join(tmp, "svid_workload")
        subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(ROOT, "bench", "lib", "svid_workload.c")], check=True)
        with open(os.path.join(tmp, "entries.yaml"), "w") as f:
            f.write("entries:\n- spiffe_id: spiffe://%s/frontend\n  selectors: [\"unix:uid:%d\"]\n"
                    "- spiffe_id: spiffe://%s/backend\n  selectors: [\"unix:uid:%d\"]\n"
                    % (TD, FRONTEND_UID, TD, BACKEND_UID))
        echo = subprocess.Popen(as_uid(BACKEND_UID, [sys.executable, "-c", ECHO]), stdout=subprocess.PIPE, text=True)
        procs.append(echo)
        backend_port = int(echo.stdout.readline())
        sock = os.path.join(tmp, "agent.sock")
        audit_path = os.path.join(tmp, "audit.log")  # sidecar_config puts it there
        cfg = sidecar_config(tmp, harness.closed_port(), backend_port, sock)
        if args.initial_csrs:
            cfg["identity"]["limits"] = {"initial_csrs": args.initial_csrs}
        proxy = harness.Proxy(cfg, concurrency=args.concurrency)
        proxy.args = args.wrap.split() + proxy.args
        proxy.start(timeout=20)
        outbound = proxy.listener_port("outbound")
        if args.busy_fds:
            holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(args.busy_fds)], stdout=subprocess.PIPE, text=True)
            procs.append(holder)
            holder.stdout.readline()
        before = proxy.stats()
        if args.perf:
            perf = subprocess.Popen(["perf", "record", "-F", "4000", "-g", "-p", str(proxy.pid), "-o", args.perf],
                                    stderr=subprocess.DEVNULL)
            procs.append(perf)
            time.sleep(1)  # perf attaches to every thread

        def settle(revoked_before):
            # The process exited; its set's revocation is the sign the sidecar forgot it.
            proxy.wait_stat("agent.svids_revoked_on_exit", lambda v: v > revoked_before, timeout=10)

        modes = {"outbound": ["tcp", "127.0.0.1", str(outbound), "2"], "wlapi": ["wlapi", sock, "2"]}
        results = {}
        for mode in args.mode.split(","):
            firsts, seconds, to_issued, stored, after_issued = [], [], [], [], []
            cold = None
            for i in range(args.n + (1 if not results else 0)):
                revoked = proxy.stat("agent.svids_revoked_on_exit")
                (first, start_us, done_us), (second, _, _) = run_workload(exe, modes[mode])[:2]
                settle(revoked)
                issued = issued_at_us(audit_path, start_us)
                if cold is None and not results:
                    cold = (first, second)  # the backend's SVID and the exe hash are paid here
                    continue
                firsts.append(first)
                if "authority" in issued and "identity" in issued and issued["identity"] <= done_us:
                    to_issued.append((issued["authority"] - start_us) / 1000.0)
                    stored.append((issued["identity"] - issued["authority"]) / 1000.0)
                    after_issued.append((done_us - issued["identity"]) / 1000.0)
                seconds.append(second)
            results[mode] = (firsts, seconds, cold, to_issued, stored, after_issued)
        after = proxy.stats()
        if args.perf:
            perf.send_signal(signal.SIGINT)
            perf.wait(30)
        print("load after: ", open("/proc/loadavg").read().strip())
        for mode, (firsts, seconds, cold, to_issued, stored, after_issued) in results.items():
            print("== %s (%d fresh processes, uid %d)" % (mode, len(firsts), FRONTEND_UID))
            if cold:
                print("cold (first process ever: also the backend's SVID and the exe hash): first %.2f, second %.2f ms"
                      % cold)
            print(summary("first connection (incl. issuance)", firsts))
            print(summary("second connection (already issued)", seconds))
            print(summary("difference per process", [a - b for a, b in zip(firsts, seconds)]))
            if to_issued:  # the first connection split at the two svid_issued audit records
                print(summary("  connect -> authority signed", to_issued))
                print(summary("  signed -> agent stored", stored))
                print(summary("  stored -> answer at workload", after_issued))
            if args.raw:
                print("  first: ", " ".join("%.2f" % x for x in sorted(firsts)))
                print("  second:", " ".join("%.2f" % x for x in sorted(seconds)))
        for k in ("agent.svids_issued", "agent.svids_revoked_on_exit", "agent.unmatched_workloads",
                  "agent.workloads_rejected", "agent.requests_deduplicated", "workload_api.fetch_x509_svid",
                  "workload_attestation.kernel.lookups_tcp_peer", "workload_attestation.kernel.lookups_unix_peer",
                  "workload_attestation.kernel.proc_scans", "workload_attestation.kernel.proc_fds_scanned",
                  "workload_attestation.kernel.inode_cache_hits", "workload_attestation.kernel.exe_hash_computations"):
            if k in after:
                print("stat %-30s %d -> %d" % (k, before.get(k, 0), after[k]))
    finally:
        if proxy is not None:
            if args.keep:
                shutil.copy(proxy.stderr_path, os.path.join(tmp, "sidecar.log"))
            if args.wrap and proxy.alive():
                # The harness kills the wrapper (strace); the sidecar is its child and would stay.
                try:
                    with open("/proc/%d/task/%d/children" % (proxy.pid, proxy.pid)) as f:
                        for child in f.read().split():
                            os.kill(int(child), signal.SIGKILL)
                except OSError:
                    pass
            proxy.close()
        for p in procs:
            p.kill()
            p.wait()
        if args.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, True)


if __name__ == "__main__":
    main()
