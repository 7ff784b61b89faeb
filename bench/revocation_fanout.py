#!/usr/bin/env python3
"""Revocation propagation over N sidecars: workload exit -> every sidecar holds the revoked serial.

One `portcullis authority` and N sidecars, each attested with its own join token (`portcullis
token generate`) and holding the WatchUpdates stream. Sidecar 0 serves the Workload API; a
workload under uid 1001 (bench/lib/svid_workload.c, compiled here) fetches its X509-SVID there
and stays alive. The script SIGKILLs it at T0 and reads when each sidecar had the revocation:

  exit seen    sidecar 0's audit record `svid_revoked` (µs): its pidfd fired, RevokeSvids is sent
  published    the authority's audit record `revoked` (µs): written after the revocation was stored and
               handed to every WatchUpdates stream
  sidecar k    sidecar k's log line `revocations: version V with S serials` (ms resolution; written
               on the publishing thread right after the new set became visible to handshakes)

Times are CLOCK_REALTIME in every process, so no polling error: the script only waits for the
lines to appear. Reported per N: the time until ALL N sidecars had it (p50/max over repetitions),
and each stage.

Usage: bench/revocation_fanout.py [--binary build/proxy/portcullis] [--sidecars 1,4,16] [--reps 10]
Needs root (setpriv --reuid), gcc."""
import argparse
import datetime
import json
import os
import re
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
WORKLOAD_UID = 1001
LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\]\[\d+\]\[info\]\[portcullis\] "
                      r"revocations: version (\d+) with (\d+) serials")


class Authority(harness.Proxy):
    """`portcullis authority`; ready when its HTTP admin says /ready 200 (as tests/integration)."""

    def __init__(self, config, **kw):
        super().__init__(config, **kw)
        self.listen_path = os.path.join(self.dir, "listen_address")
        self.args = [harness.portcullis_bin(), "authority", "-c", self.config_path,
                     "--admin-address-path", self.admin_path, "--listen-address-path", self.listen_path,
                     "--concurrency", "1", "-l", "info"]

    def listen_port(self):
        with open(self.listen_path) as f:
            return int(f.read().strip().rpartition(":")[2])


def as_uid(uid, cmd):
    return ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups"] + cmd


def cli(sock, *args):
    p = subprocess.run([harness.portcullis_bin()] + list(args) + ["--admin-socket", sock],
                       capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError("portcullis %s: %s%s" % (" ".join(args), p.stdout, p.stderr))
    return p.stdout


def audit_times(path, decision):
    """{serial: epoch seconds} of the audit records with this decision."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r.get("decision") == decision:
                    t = datetime.datetime.strptime(r["time"].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
                    out[r.get("cert_serial", "")] = t.replace(tzinfo=datetime.timezone.utc).timestamp()
    except FileNotFoundError:
        pass
    return out


def revocation_lines(proxy):
    """[(epoch seconds, version, serials)] from the sidecar's log (local-time timestamps)."""
    out = []
    with open(proxy.stderr_path, errors="replace") as f:
        for line in f:
            m = LOG_LINE.match(line)
            if m:
                t = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%d %H:%M:%S")) + int(m.group(1)[20:]) / 1000.0
                out.append((t, int(m.group(2)), int(m.group(3))))
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def run(n, reps, exe, tmp):
    d = os.path.join(tmp, "n%d" % n)
    os.makedirs(d)
    os.chmod(d, 0o755)
    sock = os.path.join(d, "authority.sock")
    with open(os.path.join(d, "entries.yaml"), "w") as f:
        f.write("entries:\n- spiffe_id: spiffe://%s/workload\n  selectors: [\"unix:uid:%d\"]\n" % (TD, WORKLOAD_UID))
    authority_audit = os.path.join(d, "authority-audit.log")
    authority = Authority({
        "authority": {"trust_domain": TD, "listen": harness.socket_address(0),
                      "admin_socket": {"pipe": {"path": sock}}, "data_dir": os.path.join(d, "data"),
                      "entries_file": os.path.join(d, "entries.yaml")},
        "admin": {"address": harness.socket_address(0)},
        "audit": {"sinks": [{"file": {"path": authority_audit}}]}})
    sidecars = []
    try:
        authority.start(timeout=20)
        bundle = os.path.join(d, "bundle.pem")
        with open(bundle, "w") as f:
            f.write(cli(sock, "bundle", "show", "--format", "pem"))
        port = authority.listen_port()
        wlapi = os.path.join(d, "agent.sock")
        audit0 = os.path.join(d, "sidecar0-audit.log")
        for i in range(n):
            token = json.loads(cli(sock, "token", "generate", "--ttl", "10m", "--format", "json"))["token"]
            cfg = harness.bootstrap([], [], node_id="sidecar-%d" % i)
            cfg["identity"] = {"trust_domain": TD,
                               "authority": {"address": harness.socket_address(port),
                                             "bootstrap_bundle": {"filename": bundle}},
                               "node_attestation": {"join_token": {"token": token}},
                               "workload_attestation": {"kernel": {}}}
            if i == 0:
                cfg["workload_api"] = {"address": {"pipe": {"path": wlapi, "mode": 0o666}}}
                cfg["audit"] = {"sinks": [{"file": {"path": audit0}}]}
            s = harness.Proxy(cfg, concurrency=1)
            sidecars.append(s)
            s.start(timeout=30)
        # Every sidecar attested and streaming: the authority's watch count says so.
        harness.wait_until(lambda: all(s.stats().get("agent.node_attestations", 0) >= 1 for s in sidecars), 30,
                           what="all sidecars attested")
        print("N=%d: authority + %d sidecars up; load %s" % (n, n, open("/proc/loadavg").read().strip()))

        samples = []
        for rep in range(reps):
            seen = [len(revocation_lines(s)) for s in sidecars]
            w = subprocess.Popen(as_uid(WORKLOAD_UID, [exe, "wlapi", wlapi, "1", "hold"]), stdout=subprocess.PIPE,
                                 text=True)
            first = w.stdout.readline()
            if not first.startswith("conn"):
                raise RuntimeError("workload: %s" % first)
            pid = int(w.stdout.readline().split()[1])
            time.sleep(0.2)  # let the issuance's own audit and log lines land; quiet before T0
            t0 = time.time()
            os.kill(pid, signal.SIGKILL)
            w.wait()

            def all_have():
                return all(len(revocation_lines(s)) > seen[i] for i, s in enumerate(sidecars))
            harness.wait_until(all_have, 10, interval=0.02, what="the revocation at every sidecar")
            exits = [t for serial, t in audit_times(audit0, "svid_revoked").items() if t >= t0]
            revoked = [t for serial, t in audit_times(authority_audit, "revoked").items() if t >= t0]
            arrivals = [revocation_lines(s)[seen[i]][0] for i, s in enumerate(sidecars)]
            samples.append({
                "exit": (min(exits) - t0) * 1000 if exits else float("nan"),
                "revoked": (min(revoked) - t0) * 1000 if revoked else float("nan"),
                "first": (min(arrivals) - t0) * 1000,
                "all": (max(arrivals) - t0) * 1000,
            })
            time.sleep(0.1)
        return samples
    finally:
        for s in sidecars:
            s.close()
        authority.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "proxy", "portcullis"))
    ap.add_argument("--sidecars", default="1,4,16")
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: the workload runs under another uid (setpriv --reuid)")
    os.environ["PORTCULLIS_BIN"] = os.path.abspath(args.binary)
    tmp = tempfile.mkdtemp(prefix="portcullis-revocation-fanout-")
    os.chmod(tmp, 0o755)
    try:
        exe = os.path.join(tmp, "svid_workload")
        subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(ROOT, "bench", "lib", "svid_workload.c")], check=True)
        rows = []
        for n in [int(x) for x in args.sidecars.split(",")]:
            s = run(n, args.reps, exe, tmp)
            rows.append((n, s, open("/proc/loadavg").read().split()[:3]))
        print("\nms after SIGKILL of the workload (T0); p50 / max over %d repetitions" % args.reps)
        print("| sidecars | exit seen (sidecar 0 audit) | stored + pushed (authority audit) | first sidecar has it "
              "| **all N have it** | load after |")
        print("|---|---|---|---|---|---|")
        for n, s, load in rows:
            cell = lambda k: "%.1f / %.1f" % (statistics.median([x[k] for x in s]), max(x[k] for x in s))  # noqa
            print("| %d | %s | %s | %s | **%s** | %s |" % (n, cell("exit"), cell("revoked"), cell("first"), cell("all"),
                                                         " ".join(load)))
    finally:
        shutil.rmtree(tmp, True)


if __name__ == "__main__":
    main()
