"""Certificate files on disk the way operators and Kubernetes rotate them, and what the proxy
reports about the material it serves: helpers for test_rotation and test_audit.

    d = CertDir(tmp, "server", leaf)          # tmp/server/tls.crt, tls.key: regular files
    d.rotate(new_leaf)                        # atomic rename of the cert, then of the key
    k = KubeSecretDir(tmp, "k8s", leaf)       # tls.crt -> ..data/tls.crt, ..data -> ..2026_..
    k.swap(new_leaf)                          # new timestamped dir, then ..data renamed over

Serial numbers are compared as the proxy prints them (`serial_hex`: BoringSSL's BN_bn2hex,
lowercased: whole bytes, so 0x100 is "0100"). `peer_serial` reads the serial a live handshake
presents, from the DER certificate Python's ssl module returns (`der_serial` walks the DER).
"""

import hashlib
import json
import os
import shutil
import socket
import ssl
import time

import harness


# ---------------------------------------------------------------------------------------------
# Serial numbers


def _der_header(der, i):
    """(tag, start of value, length) of the DER TLV at offset i."""
    tag = der[i]
    length = der[i + 1]
    i += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(der[i:i + n], "big")
        i += n
    return tag, i, length


def der_serial(der):
    """The serialNumber INTEGER of a DER X.509 certificate."""
    tag, i, _ = _der_header(der, 0)          # Certificate ::= SEQUENCE
    assert tag == 0x30, "not a DER certificate"
    tag, i, _ = _der_header(der, i)          # tbsCertificate ::= SEQUENCE
    assert tag == 0x30, "not a DER certificate"
    tag, j, n = _der_header(der, i)
    if tag == 0xA0:                          # [0] EXPLICIT version
        tag, j, n = _der_header(der, j + n)
    assert tag == 0x02, "no serialNumber INTEGER (tag %#x)" % tag
    return int.from_bytes(der[j:j + n], "big", signed=True)


def serial_hex(value):
    """A serial as the proxy prints it in /certs and the audit log."""
    text = "%x" % value
    return "0" + text if len(text) % 2 else text


def pem_serial(pem_path):
    """serial_hex of the first certificate in a PEM file."""
    with open(pem_path) as f:
        text = f.read()
    end = "-----END CERTIFICATE-----"
    first = text[:text.index(end) + len(end)] + "\n"
    return serial_hex(der_serial(ssl.PEM_cert_to_DER_cert(first)))


def leaf_serial(leaf):
    return pem_serial(leaf.cert)


def tls_connect(client, port, timeout=5.0):
    """client.ctx (a tls_support.TlsClient's) over a TCP_NODELAY socket: without it Nagle holds
    the first application record until the handshake flight is acknowledged (a delayed ACK,
    40 ms), which would cap a load loop at ~25 connections a second."""
    raw = socket.create_connection((harness.LOOPBACK, port), timeout=timeout)
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client.ctx.wrap_socket(raw)
    except BaseException:
        raw.close()
        raise


def peer_serial(client, port, message=b"which certificate?"):
    """Handshakes with `client` (a tls_support.TlsClient), checks an echo round trip and returns
    the serial of the certificate the proxy presented."""
    s = tls_connect(client, port)
    try:
        serial = serial_hex(der_serial(s.getpeercert(binary_form=True)))
        harness.echo_roundtrip(s, message)
        return serial
    finally:
        s.close()


def certs(proxy):
    """GET /certs, parsed: one entry per TLS context (listeners in config order, then clusters)."""
    status, body = proxy.get("/certs")
    assert status == 200, (status, body)
    return json.loads(body)["certificates"]


def chain_serials(proxy):
    """{certificate_chain path: serial of the certificate in use} from GET /certs."""
    return {c["path"]: c["serial_number"] for ctx in certs(proxy) for c in ctx["cert_chain"]}


def ca_serials(proxy):
    """[[CA serials] per TLS context] from GET /certs."""
    return [[c["serial_number"] for c in ctx["ca_cert"]] for ctx in certs(proxy)]


# ---------------------------------------------------------------------------------------------
# Files


def replace_file(path, data):
    """Writes `data` (bytes or str) to a temp file next to `path`, then renames it over `path`:
    a reader sees the old file or the new one, never half of one."""
    tmp = os.path.join(os.path.dirname(path), ".%s.tmp" % os.path.basename(path))
    with open(tmp, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.replace(tmp, path)


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


class CertDir:
    """tls.crt and tls.key as regular files in their own directory (watched by the proxy)."""

    def __init__(self, parent, name, leaf):
        self.dir = os.path.join(parent, name)
        os.makedirs(self.dir)
        self.cert = os.path.join(self.dir, "tls.crt")
        self.key = os.path.join(self.dir, "tls.key")
        self.rotate(leaf)

    def rotate(self, leaf):
        """cert-manager / an operator's script: rename the new cert in, then the new key.
        Returns the seconds between the two renames (on a loaded machine this thread can be
        descheduled in between, and a gap past the proxy's debounce is a real mismatch)."""
        cert, key = read(leaf.cert), read(leaf.key)
        self.replace_cert(cert)
        renamed = time.monotonic()
        self.replace_key(key)
        return time.monotonic() - renamed

    def replace_cert(self, data):
        replace_file(self.cert, data)

    def replace_key(self, data):
        replace_file(self.key, data)

    def leaf(self):
        """A stand-in for pki.Leaf (cert/key paths) for config builders."""
        return _Paths(self.cert, self.key)


class _Paths:
    def __init__(self, cert, key):
        self.cert = cert
        self.key = key
        self.extra_chain = None


class KubeSecretDir:
    """A Kubernetes secret volume: the kubelet writes each version into a timestamped directory,
    points `..data` at it by renaming a fresh symlink over `..data` (one atomic step for all
    files), and the visible names are symlinks through `..data`:

        tls.crt -> ..data/tls.crt      ..data -> ..2026_01_01_00_00_00.000000001
    """

    def __init__(self, parent, name, leaf, extra_files=None):
        self.dir = os.path.join(parent, name)
        os.makedirs(self.dir)
        self.version = 0
        self.current = None
        self._write_version(leaf, extra_files)
        os.symlink(self.current, os.path.join(self.dir, "..data"))
        for f in ("tls.crt", "tls.key") + tuple(extra_files or ()):
            os.symlink(os.path.join("..data", f), os.path.join(self.dir, f))
        self.cert = os.path.join(self.dir, "tls.crt")
        self.key = os.path.join(self.dir, "tls.key")

    def _write_version(self, leaf, extra_files):
        self.version += 1
        name = "..2026_01_01_00_00_00.%09d" % self.version
        path = os.path.join(self.dir, name)
        os.mkdir(path)
        shutil.copyfile(leaf.cert, os.path.join(path, "tls.crt"))
        shutil.copyfile(leaf.key, os.path.join(path, "tls.key"))
        for f, data in (extra_files or {}).items():
            with open(os.path.join(path, f), "w") as out:
                out.write(data)
        self.current = name

    def swap(self, leaf, extra_files=None, remove_old=True):
        """The kubelet's update: new timestamped dir, `ln -s` it as ..data_tmp, rename that over
        ..data, then delete the old version."""
        old = self.current
        self._write_version(leaf, extra_files)
        tmp = os.path.join(self.dir, "..data_tmp")
        os.symlink(self.current, tmp)
        os.rename(tmp, os.path.join(self.dir, "..data"))
        if remove_old:
            shutil.rmtree(os.path.join(self.dir, old))

    def leaf(self):
        return _Paths(self.cert, self.key)


# ---------------------------------------------------------------------------------------------
# Audit log


GENESIS = "0" * 64


def sha256_hex(text):
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def audit_lines(path):
    """The audit file's complete lines (without newlines); [] while it does not exist. A line
    the writer thread is still appending is left out: the next poll sees it whole."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return data[:data.rfind(b"\n") + 1].decode("utf-8").splitlines()


def audit_records(path):
    return [json.loads(line) for line in audit_lines(path)]
