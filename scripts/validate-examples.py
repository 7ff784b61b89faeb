#!/usr/bin/env python3
"""Runs `portcullis --mode validate` on every config we ship (docker/, examples/), including the
ones embedded in Kubernetes ConfigMaps, so the examples cannot rot; for examples/envoy/ it mints a
throwaway identity (openssl) for portcullis.yaml's files and checks that envoy.yaml parses and
takes `default` and `ROOTCA` over SDS from a pipe cluster with HTTP/2.
Usage: validate-examples.py BINARY"""
import glob
import os
import re
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = sys.argv[1]
configs = [os.path.join(root, "docker", "sidecar.yaml")]
tmp = tempfile.mkdtemp(prefix="portcullis-examples-")
for manifest in glob.glob(os.path.join(root, "examples", "kubernetes", "*.yaml")):
    text = open(manifest).read()
    for i, m in enumerate(re.finditer(r"^  (\S+\.yaml): \|\n((?:    .*\n|\n)+)", text, re.M)):
        path = os.path.join(tmp, f"{os.path.basename(manifest)}-{i}-{m.group(1)}")
        with open(path, "w") as f:
            f.write("".join(line[4:] + "\n" for line in m.group(2).splitlines()))
        configs.append(path)
failed = 0


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

for c in configs:
    r = subprocess.run([binary, "-c", c, "--mode", "validate"], capture_output=True, text=True)
    ok = r.returncode == 0 and r.stdout.strip() == "OK"
    print(("ok      " if ok else "FAILED  ") + c + ("" if ok else "\n" + r.stdout + r.stderr))
    failed += not ok
print(f"{len(configs) - failed} passed, {failed} failed")
sys.exit(1 if failed or len(configs) < 2 else 0)
