#!/usr/bin/env python3
"""SDS push latency after a rotation: the real portcullis serves `sds` over a Unix socket, one
grpc-js StreamSecrets stream (tests/interop/sds_client.js) asks for `default` and ACKs every
response, and the identity files are rotated N times (cert renamed in, then key, as cert-manager
does). Each sample is the time from the key's rename to the new version arriving at the client.
The proxy debounces file events for 50 ms after the last one (proxy/server.cc, kRotationDebounce)
so a cert/key pair is read together; the rest is reload + push.
Usage: bench/sds_push_latency.py [--binary build/proxy/portcullis] [--rotations 20]"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
import pki  # noqa: E402
from tls_files import CertDir  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--binary", default=os.path.join(ROOT, "build", "proxy", "portcullis"))
ap.add_argument("--rotations", type=int, default=20)
ap.add_argument("--gap", type=float, default=0.3, help="seconds between rotations")
args = ap.parse_args()
os.environ["PORTCULLIS_BIN"] = args.binary

tmp = tempfile.mkdtemp(prefix="portcullis-sds-bench-")
try:
    ca = pki.Pki(tmp).authority("example.org")
    leaves = [ca.leaf("spiffe://example.org/web") for _ in range(args.rotations + 1)]
    svid = CertDir(tmp, "svid", leaves[0])
    sock = os.path.join(tmp, "sds.sock")
    cfg = harness.bootstrap([], [])
    cfg["identity"] = {"trust_domain": "example.org",
                       "static": {"certificate_chain": {"filename": svid.cert}, "private_key": {"filename": svid.key},
                                  "trust_bundle": {"filename": ca.cert}}}
    cfg["sds"] = {"address": {"pipe": {"path": sock}}}
    proxy = harness.Proxy(cfg)
    proxy.start()
    harness.wait_until(lambda: os.path.exists(sock))
    out = os.path.join(tmp, "out")
    os.makedirs(out)
    client = subprocess.Popen(["node", os.path.join(ROOT, "tests", "interop", "sds_client.js"), "unix://" + sock,
                               "stream", out, "default", "--responses", str(args.rotations + 1),
                               "--timeout", str(int((args.rotations + 5) * (args.gap + 2) * 1000))],
                              stdout=subprocess.PIPE, text=True)
    json.loads(client.stdout.readline())
    samples = []
    for leaf in leaves[1:]:
        time.sleep(args.gap)
        svid.rotate(leaf)
        renamed = time.time()
        msg = json.loads(client.stdout.readline())
        samples.append(msg["at_ms"] - renamed * 1000)
    client.wait(10)
    stats = proxy.stats()
    proxy.close()
    samples.sort()
    print("rotations %d, pushes %d" % (len(samples), stats.get("sds.rotation_pushes", -1)))
    print("push latency ms (key rename -> response at client): min %.1f p50 %.1f p90 %.1f max %.1f"
          % (samples[0], statistics.median(samples), samples[int(0.9 * (len(samples) - 1))], samples[-1]))
    print("after the 50 ms debounce (proxy/server.cc kRotationDebounce): p50 %.1f ms" % (statistics.median(samples) - 50))
finally:
    shutil.rmtree(tmp, True)
