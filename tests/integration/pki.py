"""Certificates for the mTLS integration tests, minted per test with the `openssl` CLI.

Everything is P-256. A `CertAuthority` is a self-signed root (CA:TRUE, keyCertSign + cRLSign);
`CertAuthority.leaf()` issues an X.509-SVID (keyUsage critical digitalSignature, EKU serverAuth
+ clientAuth, exactly one URI SAN) or, through its keyword arguments, one of the bad variants the
proxy must reject: expired or not yet valid (`openssl ca` with explicit -startdate/-enddate, so no
clock faking is needed), CA:TRUE, extra or missing URI SANs, keyCertSign.

    pki = Pki(tmpdir)
    ca = pki.authority("example.org")
    good = ca.leaf("spiffe://example.org/frontend")
    expired = ca.leaf("spiffe://example.org/frontend", not_after="20200201000000Z",
                      not_before="20200101000000Z")

A `Leaf` has `.cert`, `.key` and `.pem` (cert + key in one file, as HAProxy wants it).
"""

import os
import shutil
import subprocess
import threading


class PkiError(AssertionError):
    pass


def have_openssl():
    return shutil.which("openssl") is not None


def _run(args, cwd=None):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, timeout=30)
    if p.returncode != 0:
        raise PkiError("openssl %s failed (%d):\n%s%s" % (" ".join(args), p.returncode,
                                                          p.stdout.decode("utf-8", "replace"),
                                                          p.stderr.decode("utf-8", "replace")))
    return p.stdout.decode("utf-8", "replace")


def _ec_key(path):
    _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path])


class Leaf:
    """`cert` holds the leaf followed by its intermediates (what a peer presents); `extra_chain`
    the intermediates alone (for s_client -cert_chain), or None; `pem` is cert + key."""

    def __init__(self, name, cert, key, intermediates=()):
        self.name = name
        self.cert = cert
        self.key = key
        self.extra_chain = None
        if intermediates:
            self.extra_chain = cert[:-len(".crt")] + ".chain.crt"
            with open(self.extra_chain, "w") as out:
                for path in intermediates:
                    with open(path) as f:
                        out.write(f.read())
            with open(cert, "a") as out, open(self.extra_chain) as f:
                out.write(f.read())
        self.pem = cert[:-len(".crt")] + ".pem"
        with open(cert) as c, open(key) as k, open(self.pem, "w") as out:
            out.write(c.read())
            out.write(k.read())

    def text(self):
        return _run(["x509", "-in", self.cert, "-noout", "-text"])


class CertAuthority:
    """A self-signed P-256 root for one trust domain."""

    def __init__(self, pki, name, subject=None, parent=None, ca=True):
        """A root, or with `parent` an intermediate signed by it (`ca=False` gives the bad
        intermediate: CA:FALSE but still signing)."""
        self.pki = pki
        self.name = name
        self.parent = parent
        self.dir = os.path.join(pki.dir, "ca-" + name)
        os.makedirs(os.path.join(self.dir, "issued"))
        self.key = os.path.join(self.dir, "ca.key")
        self.cert = os.path.join(self.dir, "ca.crt")
        _ec_key(self.key)
        subject = subject or "/O=portcullis-it/CN=%s %s" % (name, "intermediate" if parent else "root")
        exts = ["basicConstraints=critical,CA:%s" % ("TRUE" if ca else "FALSE"),
                "keyUsage=critical,keyCertSign,cRLSign", "subjectKeyIdentifier=hash"]
        if parent is None:
            args = ["req", "-x509", "-new", "-key", self.key, "-out", self.cert, "-days", "30", "-sha256",
                    "-subj", subject]
            for e in exts:
                args += ["-addext", e]
            _run(args)
        else:
            csr, ext = os.path.join(self.dir, "ca.csr"), os.path.join(self.dir, "ca.ext")
            _run(["req", "-new", "-key", self.key, "-out", csr, "-subj", subject])
            with open(ext, "w") as f:
                f.write("\n".join(exts + ["authorityKeyIdentifier=keyid"]) + "\n")
            _run(["x509", "-req", "-in", csr, "-CA", parent.cert, "-CAkey", parent.key, "-set_serial",
                  str(parent._next_serial()), "-days", "30", "-sha256", "-extfile", ext, "-out", self.cert])
        # `openssl ca` state, used for the leaves with explicit validity dates.
        with open(os.path.join(self.dir, "index.txt"), "w"):
            pass
        with open(os.path.join(self.dir, "ca.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca = it\n[it]\n"
                    "database = %(d)s/index.txt\nnew_certs_dir = %(d)s/issued\nserial = %(d)s/serial\n"
                    "default_md = sha256\npolicy = any\nunique_subject = no\ncopy_extensions = none\n"
                    "[any]\ncommonName = optional\norganizationName = optional\n" % {"d": self.dir})
        self._serial = 0x1000
        self._lock = threading.Lock()

    def intermediates(self):
        """Certificate files a leaf of this CA presents after itself (not the root)."""
        out, ca = [], self
        while ca.parent is not None:
            out.append(ca.cert)
            ca = ca.parent
        return out

    def subordinate(self, name, ca=True):
        return CertAuthority(self.pki, name, parent=self, ca=ca)

    def _next_serial(self):
        with self._lock:
            self._serial += 1
            return self._serial

    def leaf(self, uri="spiffe://example.org/workload", name=None, uris=None, dns=(), ca=False,
             key_usage="critical,digitalSignature", eku="serverAuth,clientAuth", not_before=None,
             not_after=None, days=7):
        """Issues a leaf. `uri` is the single URI SAN; `uris` (a list, possibly empty) replaces it
        for the multiple/no URI SAN cases. `ca=True` makes a CA:TRUE "leaf"; `key_usage` is the
        keyUsage extension value (None leaves it out); not_before/not_after ("YYYYMMDDHHMMSSZ")
        give explicit validity dates."""
        serial = self._next_serial()
        name = name or "leaf-%x" % serial
        base = os.path.join(self.pki.dir, "%s-%s" % (self.name, name))
        key, csr, cert, ext = base + ".key", base + ".csr", base + ".crt", base + ".ext"
        _ec_key(key)
        _run(["req", "-new", "-key", key, "-out", csr, "-subj", "/O=portcullis-it/CN=%s" % name])
        sans = ["URI:%s" % u for u in ([uri] if uris is None else uris)] + ["DNS:%s" % d for d in dns]
        lines = ["basicConstraints=critical,CA:%s" % ("TRUE" if ca else "FALSE")]
        if key_usage:
            lines.append("keyUsage=%s" % key_usage)
        if eku:
            lines.append("extendedKeyUsage=%s" % eku)
        if sans:
            lines.append("subjectAltName=%s" % ",".join(sans))
        lines.append("subjectKeyIdentifier=hash")
        lines.append("authorityKeyIdentifier=keyid")
        with open(ext, "w") as f:
            f.write("\n".join(lines) + "\n")
        if not_before or not_after:
            with open(os.path.join(self.dir, "serial"), "w") as f:
                f.write("%X\n" % serial)
            _run(["ca", "-batch", "-config", os.path.join(self.dir, "ca.cnf"), "-cert", self.cert,
                  "-keyfile", self.key, "-in", csr, "-out", cert, "-notext", "-extfile", ext,
                  "-startdate", not_before or "20200101000000Z", "-enddate", not_after or "20991231235959Z"])
        else:
            _run(["x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-set_serial", str(serial),
                  "-days", str(days), "-sha256", "-extfile", ext, "-out", cert])
        return Leaf(name, cert, key, self.intermediates())


def tamper_signature(leaf):
    """A copy of `leaf` whose certificate signature no longer verifies (last signature byte
    flipped; the certificate still parses and its key still matches)."""
    import base64
    with open(leaf.cert) as f:
        text = f.read()
    first = text.split("-----END CERTIFICATE-----")[0]
    body = "".join(first.split("-----BEGIN CERTIFICATE-----")[1].split())
    der = bytearray(base64.b64decode(body))
    der[-1] ^= 0x01  # the signature BIT STRING is the last element of the Certificate SEQUENCE
    b64 = base64.b64encode(bytes(der)).decode()
    pem = "-----BEGIN CERTIFICATE-----\n%s\n-----END CERTIFICATE-----\n" % "\n".join(
        b64[i:i + 64] for i in range(0, len(b64), 64))
    cert = leaf.cert[:-len(".crt")] + "-tampered.crt"
    with open(cert, "w") as f:
        f.write(pem)
    key = leaf.key[:-len(".key")] + "-tampered.key"
    shutil.copyfile(leaf.key, key)
    return Leaf(leaf.name + "-tampered", cert, key)


class Pki:
    """All certificates of one test, under `directory` (the caller removes it)."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(self.dir, exist_ok=True)

    def authority(self, name, subject=None):
        return CertAuthority(self, name, subject)

    def bundle(self, name, *authorities):
        """One PEM file holding several roots."""
        path = os.path.join(self.dir, "bundle-%s.pem" % name)
        with open(path, "w") as out:
            for a in authorities:
                with open(a.cert) as f:
                    out.write(f.read())
        return path
