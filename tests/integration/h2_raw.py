"""A deliberately tiny HTTP/2 client for the gRPC transport tests: it sends exactly the frames a
test asks for (well-formed or not) and reads back frames, so malformed input, ping floods,
unread streams and GOAWAY can be exercised byte for byte. Standard library only."""

import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0, 1, 7, 8, 11


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id) + payload


def _hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack(headers):
    """Literal header fields without indexing, no Huffman: always valid, never stateful."""
    out = b""
    for name, value in headers:
        n, v = name.encode(), value.encode() if isinstance(value, str) else value
        out += b"\x00" + _hpack_int(len(n), 7) + n + _hpack_int(len(v), 7) + v
    return out


def pb_varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def echo_request(text="", count=0, status=0, hang=False, payload=b""):
    """portcullis.test.EchoRequest, encoded by hand."""
    out = b""
    if text:
        out += b"\x0a" + pb_varint(len(text)) + text.encode()
    if count:
        out += b"\x10" + pb_varint(count & 0xFFFFFFFFFFFFFFFF)
    if status:
        out += b"\x18" + pb_varint(status)
    if hang:
        out += b"\x20\x01"
    if payload:
        out += b"\x2a" + pb_varint(len(payload)) + payload
    return out


def grpc_message(body, compressed=False):
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(body)) + body


def request_headers(path, content_type="application/grpc", extra=()):
    return [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "test"),
            ("te", "trailers"), ("content-type", content_type)] + list(extra)


class Conn:
    def __init__(self, family, address, settings=b""):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(address)
        self.buf = b""
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))

    def send(self, data):
        self.sock.sendall(data)

    def headers(self, stream_id, headers, end_stream=False):
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end_stream else 0), stream_id, hpack(headers)))

    def data(self, stream_id, payload, end_stream=True):
        self.send(frame(DATA, END_STREAM if end_stream else 0, stream_id, payload))

    def call(self, stream_id, path, body, **kw):
        self.headers(stream_id, request_headers(path, **kw))
        self.data(stream_id, grpc_message(body))

    def read_frame(self, timeout=5.0):
        """(type, flags, stream, payload), or None on EOF. Raises socket.timeout."""
        self.sock.settimeout(timeout)
        while len(self.buf) < 9 or len(self.buf) < 9 + struct.unpack(">I", b"\0" + self.buf[:3])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        length = struct.unpack(">I", b"\0" + self.buf[:3])[0]
        ftype, flags = self.buf[3], self.buf[4]
        sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
        payload = self.buf[9:9 + length]
        self.buf = self.buf[9 + length:]
        if ftype == SETTINGS and not flags & ACK:
            try:
                self.send(frame(SETTINGS, ACK, 0))
            except OSError:
                pass  # the server may already have closed (e.g. right after its GOAWAY)
        return ftype, flags, sid, payload

    def frames_until(self, predicate, timeout=5.0):
        """Reads frames until predicate(frame) is true (returns all read) or EOF/timeout."""
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                f = self.read_frame(max(0.01, deadline - time.monotonic()))
            except socket.timeout:
                break
            if f is None:
                out.append(None)
                break
            out.append(f)
            if predicate(f):
                break
        return out

    def close(self):
        self.sock.close()


def goaway_fields(payload):
    last, code = struct.unpack(">II", payload[:8])
    return last & 0x7FFFFFFF, code, payload[8:]

