"""Network telemetry over TLS 1.3 only.

* :func:`server_context` / :func:`client_context`: ``ssl`` contexts with
  ``minimum_version = maximum_version = TLSv1_3`` — a TLS 1.2 (or older) peer fails the handshake;
  the client verifies the server certificate and host name;
* :func:`generate_self_signed`: an ECDSA P-256 certificate for a host name (tests, the HIL rig);
  on a device, use a certificate from the clinic's own CA;
* :class:`TelemetryStreamServer` / :class:`TelemetryStreamClient`: length-prefixed telemetry
  records (topic, ROS 2 type name, CDR bytes) to every connected client. ``publish`` never
  blocks the caller: records go through a bounded queue to a sender thread.

Wire record (big-endian): ``u16 topic_len | topic | u16 type_len | type | u32 data_len | data``.
"""
from __future__ import annotations

import collections
import datetime as _dt
import ipaddress
import socket
import ssl
import struct
import threading
from pathlib import Path

TLS_VERSION = ssl.TLSVersion.TLSv1_3


def generate_self_signed(cert_path: str | Path, key_path: str | Path, hostname: str = "localhost",
                         days: int = 30) -> tuple[Path, Path]:
    """Write a self-signed ECDSA P-256 certificate for *hostname* (and 127.0.0.1) and its key (mode 0600)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = _dt.datetime.now(_dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - _dt.timedelta(minutes=5))
            .not_valid_after(now + _dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cp, kp = Path(cert_path), Path(key_path)
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.touch(mode=0o600, exist_ok=True)
    kp.chmod(0o600)
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return cp, kp


def server_context(certfile: str | Path, keyfile: str | Path) -> ssl.SSLContext:
    """Server-side context accepting TLS 1.3 only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSION
    ctx.maximum_version = TLS_VERSION
    ctx.load_cert_chain(str(certfile), str(keyfile))
    return ctx


def client_context(cafile: str | Path) -> ssl.SSLContext:
    """Client-side context: TLS 1.3 only, server certificate verified against *cafile*, host name checked."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = TLS_VERSION
    ctx.maximum_version = TLS_VERSION
    ctx.load_verify_locations(str(cafile))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def encode_record(topic: str, msgtype: str, data: bytes) -> bytes:
    """One wire record (see the module docstring)."""
    t, m = topic.encode(), msgtype.encode()
    if len(t) > 0xFFFF or len(m) > 0xFFFF:
        raise ValueError(f"topic/type name too long: {len(t)}, {len(m)} bytes (max 65535)")
    return struct.pack(">H", len(t)) + t + struct.pack(">H", len(m)) + m + struct.pack(">I", len(data)) + bytes(data)


class TelemetryStreamServer:
    """Accepts TLS 1.3 clients on (host, port) and sends every published record to each of them.

    ``handshake_failures`` counts refused connections (e.g. a TLS 1.2 client); the last reason is
    in ``last_handshake_error``. Bind to 127.0.0.1 unless the device really serves a network.
    """

    def __init__(self, context: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0,
                 queue_capacity: int = 10_000) -> None:
        if context.minimum_version != TLS_VERSION:
            raise ValueError(f"context.minimum_version = {context.minimum_version!r}: telemetry requires TLS 1.3 "
                             "(use runtime.security.tls.server_context)")
        self._ctx = context
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.1)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._clients: list[ssl.SSLSocket] = []
        self._queue: collections.deque[bytes] = collections.deque()
        self._capacity = queue_capacity
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self.dropped = 0
        self.sent = 0
        self.handshake_failures = 0
        self.last_handshake_error = ""
        self._threads = [threading.Thread(target=self._accept, name="tls-accept", daemon=True),
                         threading.Thread(target=self._send, name="tls-send", daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def publish(self, topic: str, msgtype: str, data: bytes) -> bool:
        """Queue a record for every client; False (counted in ``dropped``) when the queue is full."""
        if len(self._queue) >= self._capacity:
            self.dropped += 1
            return False
        self._queue.append(encode_record(topic, msgtype, data))
        with self._wake:
            self._wake.notify()
        return True

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _addr = self._sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            raw.settimeout(5.0)
            try:
                conn = self._ctx.wrap_socket(raw, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                self.handshake_failures += 1
                self.last_handshake_error = f"{type(exc).__name__}: {exc}"
                raw.close()
                continue
            self._clients.append(conn)

    def _send(self) -> None:
        while not self._stop.is_set() or self._queue:
            with self._wake:
                if not self._queue:
                    self._wake.wait(0.05)
            while self._queue:
                rec = self._queue.popleft()
                for c in list(self._clients):
                    try:
                        c.sendall(rec)
                    except OSError:
                        self._clients.remove(c)
                        c.close()
                self.sent += 1
            if self._stop.is_set():
                break

    def close(self) -> None:
        """Send what is queued, then close every connection and the listening socket."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for t in self._threads:
            t.join(timeout=2.0)
        for c in self._clients:
            try:
                c.close()
            except OSError:
                pass
        self._sock.close()

    def __enter__(self) -> TelemetryStreamServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TelemetryStreamClient:
    """Connects to a :class:`TelemetryStreamServer` over TLS 1.3 and reads records."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, server_hostname: str = "localhost",
                 timeout_s: float = 5.0) -> None:
        raw = socket.create_connection((host, port), timeout=timeout_s)
        try:
            self._sock = context.wrap_socket(raw, server_hostname=server_hostname)
        except BaseException:
            raw.close()
            raise
        self.version = self._sock.version()

    def _exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            part = self._sock.recv(n - len(buf))
            if not part:
                raise ConnectionError("telemetry stream closed by the server")
            buf += part
        return bytes(buf)

    def recv(self) -> tuple[str, str, bytes]:
        """The next ``(topic, msgtype, cdr_bytes)`` record (blocks up to the timeout)."""
        (n,) = struct.unpack(">H", self._exact(2))
        topic = self._exact(n).decode()
        (n,) = struct.unpack(">H", self._exact(2))
        msgtype = self._exact(n).decode()
        (n,) = struct.unpack(">I", self._exact(4))
        return topic, msgtype, self._exact(n)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> TelemetryStreamClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["TLS_VERSION", "TelemetryStreamClient", "TelemetryStreamServer", "client_context", "encode_record",
           "generate_self_signed", "server_context"]
