#!/usr/bin/env python3
"""Runs `portcullis --mode validate` on every config we ship (docker/, examples/), including the
ones embedded in Kubernetes ConfigMaps, so the examples cannot rot: sidecar configs with
`portcullis --mode validate`, authority configs (authority*.yaml) with `portcullis authority --mode
validate`, and registration entry seeds (entries*.yaml) by seeding a real authority with them and
listing what it stored. For examples/envoy/ it mints a
throwaway identity (openssl) for portcullis.yaml's files and checks that envoy.yaml parses and
takes `default` and `ROOTCA` over SDS from a pipe cluster with HTTP/2.
Usage: validate-examples.py BINARY"""
import glob
import os
import json
import re
import signal
import subprocess
import sys
import tempfile
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = sys.argv[1]
configs = [os.path.join(root, "docker", "sidecar.yaml")]
authority_configs, entries_files = [], []
tmp = tempfile.mkdtemp(prefix="portcullis-examples-")
for manifest in sorted(glob.glob(os.path.join(root, "examples", "kubernetes", "*.yaml"))):
    text = open(manifest).read()
    for i, m in enumerate(re.finditer(r"^  (\S+\.yaml): \|\n((?:    .*\n|\n)+)", text, re.M)):
        path = os.path.join(tmp, f"{os.path.basename(manifest)}-{i}-{m.group(1)}")
        with open(path, "w") as f:
            f.write("".join(line[4:] + "\n" for line in m.group(2).splitlines()))
        name = m.group(1)
        (authority_configs if name.startswith("authority") else
         entries_files if name.startswith("entries") else configs).append(path)
failed = 0


def report(ok, path, detail):
    global failed
    print(("ok      " if ok else "FAILED  ") + path + ("" if ok else "\n" + detail))
    failed += not ok


def check_entries(path):
    """Seeds a throwaway authority with `path` and checks it stored one entry per spiffe_id."""
    work = tempfile.mkdtemp(dir=tmp)
    sock, listen_file = os.path.join(work, "admin.sock"), os.path.join(work, "listen")
    config = os.path.join(work, "authority.yaml")
    with open(config, "w") as f:
        json.dump({"authority": {"trust_domain": "example.org", "data_dir": os.path.join(work, "data"),
                                 "listen": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                                 "admin_socket": {"pipe": {"path": sock}}, "entries_file": path}}, f)
    proc = subprocess.Popen([binary, "authority", "-c", config, "--listen-address-path", listen_file],
                            stderr=subprocess.PIPE, text=True)
    try:
        end = time.time() + 20
        while not (os.path.exists(listen_file) and os.path.getsize(listen_file)) and proc.poll() is None:
            if time.time() > end:
                return False, "the authority did not start"
            time.sleep(0.05)
        if proc.poll() is not None:
            return False, proc.stderr.read()
        out = subprocess.run([binary, "entry", "list", "--format", "json", "--admin-socket", sock],
                             capture_output=True, text=True)
        if out.returncode != 0:
            return False, out.stdout + out.stderr
        stored = sorted(e["spiffe_id"] for e in json.loads(out.stdout))
        wanted = sorted(re.findall(r"spiffe_id:\s*(\S+)", open(path).read()))
        return stored == wanted, f"stored {stored}, the file names {wanted}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def mint_identity(directory):
    """A CA and an SVID for spiffe://example.org/web, with the openssl CLI; returns their paths."""
    def run(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=directory)
    ext = os.path.join(directory, "leaf.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=URI:spiffe://example.org/web\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n")
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
        "-out", "ca.crt", "-subj", "/CN=example.org CA", "-days", "1",
        "-addext", "subjectAltName=URI:spiffe://example.org", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tls.key.sec1",
        "-out", "leaf.csr", "-subj", "/CN=web")
    run("pkcs8", "-topk8", "-nocrypt", "-in", "tls.key.sec1", "-out", "tls.key")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-extfile", ext, "-out", "tls.crt")
    return {"/etc/portcullis/svid/tls.crt": os.path.join(directory, "tls.crt"),
            "/etc/portcullis/svid/tls.key": os.path.join(directory, "tls.key"),
            "/etc/portcullis/bundle/ca.crt": os.path.join(directory, "ca.crt"),
            "/run/portcullis/sds.sock": os.path.join(directory, "sds.sock")}


def check_envoy_bootstrap(path):
    """envoy.yaml is Envoy's config, not ours: check it parses and wires SDS as wire facts §3.6 says."""
    text = open(path).read()
    try:
        import yaml  # PyYAML, when present; the string checks below run either way
        doc = yaml.safe_load(text)
        clusters = {c["name"]: c for c in doc["static_resources"]["clusters"]}
        sds = clusters["portcullis_sds"]
        assert sds["type"] == "STATIC"
        pipe = sds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]["path"]
        assert pipe == "/run/portcullis/sds.sock", pipe
        opts = sds["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        assert "http2_protocol_options" in opts["explicit_http_config"]
    except ImportError:
        pass
    for needle in ("name: default", "name: ROOTCA", "cluster_name: portcullis_sds", "api_type: GRPC",
                   "transport_api_version: V3", "http2_protocol_options: {}"):
        assert needle in text, needle


envoy_dir = os.path.join(root, "examples", "envoy")
if os.path.isdir(envoy_dir):
    try:
        check_envoy_bootstrap(os.path.join(envoy_dir, "envoy.yaml"))
        print("ok      " + os.path.join(envoy_dir, "envoy.yaml") + " (Envoy bootstrap: parses, SDS wired)")
    except Exception as e:  # noqa: BLE001 - report any failure as this example's
        print("FAILED  " + os.path.join(envoy_dir, "envoy.yaml") + "\n" + repr(e))
        failed += 1
    files = mint_identity(tmp)
    text = open(os.path.join(envoy_dir, "portcullis.yaml")).read()
    for shipped, minted in files.items():
        text = text.replace(shipped, minted)
    path = os.path.join(tmp, "envoy-portcullis.yaml")
    with open(path, "w") as f:
        f.write(text)
    configs.append(path)

for prefix, paths in (([], configs), (["authority"], authority_configs)):
    for c in paths:
        r = subprocess.run([binary] + prefix + ["-c", c, "--mode", "validate"], capture_output=True, text=True)
        report(r.returncode == 0 and r.stdout.strip() == "OK", c, r.stdout + r.stderr)
for path in entries_files:
    ok, detail = check_entries(path)
    report(ok, path + " (seeded into a real authority)", detail)
total = len(configs) + len(authority_configs) + len(entries_files)
print(f"{total - failed} passed, {failed} failed")
sys.exit(1 if failed or len(configs) < 2 else 0)
