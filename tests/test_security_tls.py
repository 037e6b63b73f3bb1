"""Network telemetry over TLS 1.3 only: records arrive over TLS 1.3; a TLS 1.2 client is refused."""
from __future__ import annotations

import ssl
import time
from pathlib import Path

import pytest

from runtime.telemetry import schema as ts
from runtime.security.tls import (TelemetryStreamClient, TelemetryStreamServer, client_context, generate_self_signed,
                                  server_context)


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    return generate_self_signed(d / "cert.pem", d / "key.pem", "localhost")


def _wait(pred, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_tls13_client_receives_telemetry_records(cert) -> None:
    certfile, keyfile = cert
    assert oct(keyfile.stat().st_mode & 0o777) == oct(0o600)
    msg = ts.make("sensor_msgs/msg/JointState", header=ts.make("std_msgs/msg/Header", stamp=123, frame_id=""),
                  name=["knee_r"], position=[0.5], velocity=[0.1], effort=[2.0])
    data = ts.serialize(msg)
    with TelemetryStreamServer(server_context(certfile, keyfile)) as server:
        host, port = server.address
        with TelemetryStreamClient(host, port, client_context(certfile)) as client:
            assert client.version == "TLSv1.3"
            assert _wait(lambda: server.client_count == 1)
            for _ in range(3):
                server.publish("/exo/joint_states", "sensor_msgs/msg/JointState", data)
            got = [client.recv() for _ in range(3)]
    assert all(g == ("/exo/joint_states", "sensor_msgs/msg/JointState", data) for g in got)
    back = ts.deserialize(got[0][2], "sensor_msgs/msg/JointState")
    assert list(back.name) == ["knee_r"] and back.effort.tolist() == [2.0]


def test_tls12_client_is_refused(cert) -> None:
    certfile, keyfile = cert
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    old.load_verify_locations(str(certfile))
    with TelemetryStreamServer(server_context(certfile, keyfile)) as server:
        host, port = server.address
        with pytest.raises((ssl.SSLError, ConnectionError)):
            TelemetryStreamClient(host, port, old)
        assert _wait(lambda: server.handshake_failures == 1)
        assert "VERSION" in server.last_handshake_error.upper() or "PROTOCOL" in server.last_handshake_error.upper()
        assert server.client_count == 0


def test_contexts_pin_tls13_and_verify_the_server(cert, tmp_path: Path) -> None:
    certfile, keyfile = cert
    for ctx in (server_context(certfile, keyfile), client_context(certfile)):
        assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3 == ctx.maximum_version
    assert client_context(certfile).verify_mode == ssl.CERT_REQUIRED
    lax = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(ValueError, match="TLS 1.3"):
        TelemetryStreamServer(lax)
    # a client trusting another certificate refuses the server
    other_cert, _ = generate_self_signed(tmp_path / "o.pem", tmp_path / "o.key", "localhost")
    with TelemetryStreamServer(server_context(certfile, keyfile)) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            TelemetryStreamClient(*server.address, client_context(other_cert))
