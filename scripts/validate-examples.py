#!/usr/bin/env python3
"""Runs `portcullis --mode validate` on every config we ship (docker/, examples/), including the
ones embedded in Kubernetes ConfigMaps, so the examples cannot rot.  Usage: validate-examples.py BINARY"""
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
for c in configs:
    r = subprocess.run([binary, "-c", c, "--mode", "validate"], capture_output=True, text=True)
    ok = r.returncode == 0 and r.stdout.strip() == "OK"
    print(("ok      " if ok else "FAILED  ") + c + ("" if ok else "\n" + r.stdout + r.stderr))
    failed += not ok
print(f"{len(configs) - failed} passed, {failed} failed")
sys.exit(1 if failed or len(configs) < 2 else 0)
