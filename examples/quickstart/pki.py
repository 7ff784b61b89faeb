"""Mints the quickstart's SPIFFE PKI with the openssl CLI: one root for trust domain example.org and
X.509-SVID leaves (P-256, one URI SAN, digitalSignature, serverAuth+clientAuth)."""
import os
import subprocess


def _run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_root(directory, trust_domain="example.org"):
    key, cert = os.path.join(directory, "root.key"), os.path.join(directory, "root.pem")
    _run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    _run("openssl", "req", "-x509", "-new", "-key", key, "-subj", f"/CN={trust_domain} demo root", "-days", "1",
         "-out", cert, "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-addext", f"subjectAltName=URI:spiffe://{trust_domain}")
    return key, cert


def make_svid(directory, name, spiffe_id, root_key, root_cert):
    raw, key = os.path.join(directory, f"{name}.raw"), os.path.join(directory, f"{name}.key")
    csr, ext, cert = (os.path.join(directory, f"{name}.{s}") for s in ("csr", "ext", "pem"))
    _run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", raw)
    _run("openssl", "pkcs8", "-topk8", "-nocrypt", "-in", raw, "-out", key)
    _run("openssl", "req", "-new", "-key", key, "-subj", f"/CN={name}", "-out", csr)
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                f"extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:{spiffe_id}\n")
    _run("openssl", "x509", "-req", "-in", csr, "-CA", root_cert, "-CAkey", root_key, "-CAcreateserial",
         "-days", "1", "-extfile", ext, "-out", cert)
    return cert, key
