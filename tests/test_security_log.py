"""Encrypted telemetry logs: encrypted on close, read back with the key, tampering and wrong keys reported."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from runtime.telemetry import schema as ts
from runtime.security.aead import TamperedError, WrongKeyError
from runtime.security.keys import DataKey, KeyMissingError, generate_key_file
from runtime.telemetry.log import TelemetryLog, bag_mcap_path, encrypted_mcap_path
from runtime.telemetry.read import is_complete, is_encrypted_log, iter_messages, recover, resolve_log

from _support import exo_cmd

T0 = 1_700_000_000_000_000_000
NAMES = ["knee_r"]


def _write_log(out: Path, key: DataKey | None, n: int = 50) -> None:
    log = TelemetryLog(out, encryption_key=key, chunk_period_s=0.05)
    log.register("/exo/torque/command", "exo_runtime/msg/TorqueCommand",
                 lambda i: ts.make("exo_runtime/msg/TorqueCommand", stamp=T0 + i * 2_000_000, joint_names=NAMES,
                                   requested_torque_nm=[0.1 * i], commanded_torque_nm=[0.05 * i], command_age_s=0.01,
                                   fade_gain=1.0, state="ACTIVE", stale=False))
    with log:
        for i in range(n):
            log.write("/exo/torque/command", T0 + i * 2_000_000, i)


@pytest.fixture
def key() -> DataKey:
    return DataKey(os.urandom(32), "test")


def test_encrypted_on_close_and_read_back_with_the_key(tmp_path: Path, key: DataKey, monkeypatch) -> None:
    monkeypatch.delenv("EXO_DATA_KEY", raising=False)
    monkeypatch.delenv("EXO_DATA_KEY_FILE", raising=False)
    out = tmp_path / "telemetry"
    _write_log(out, key)
    plain, enc = bag_mcap_path(out), encrypted_mcap_path(bag_mcap_path(out))
    assert not plain.exists() and enc.exists() and b"TorqueCommand" not in enc.read_bytes()
    assert resolve_log(out) == (out, enc) and is_encrypted_log(out)
    assert "AES-256-GCM" in (out / "metadata.yaml").read_text() and key.key_id.hex() in (out / "metadata.yaml").read_text()
    msgs = list(iter_messages(out, key))
    assert [round(float(m.commanded_torque_nm[0]), 6) for _t, _ty, _ns, m in msgs] == [round(0.05 * i, 6) for i in range(50)]
    assert is_complete(enc, key)
    monkeypatch.setenv("EXO_DATA_KEY", key.material.hex())
    assert len(list(iter_messages(out))) == 50 and recover(out).messages == 50


def test_same_messages_as_an_unencrypted_log(tmp_path: Path, key: DataKey) -> None:
    _write_log(tmp_path / "a", None)
    _write_log(tmp_path / "b", key)
    a = [(t, ns, ts.serialize(m)) for t, _ty, ns, m in iter_messages(tmp_path / "a")]
    b = [(t, ns, ts.serialize(m)) for t, _ty, ns, m in iter_messages(tmp_path / "b", key)]
    assert a == b and len(a) == 50


def test_missing_wrong_key_and_tampering_are_explicit(tmp_path: Path, key: DataKey, monkeypatch) -> None:
    monkeypatch.delenv("EXO_DATA_KEY", raising=False)
    monkeypatch.delenv("EXO_DATA_KEY_FILE", raising=False)
    out = tmp_path / "telemetry"
    _write_log(out, key)
    with pytest.raises(KeyMissingError, match="encrypted"):
        list(iter_messages(out))
    with pytest.raises(WrongKeyError):
        list(iter_messages(out, DataKey(os.urandom(32), "other")))
    enc = resolve_log(out)[1]
    raw = bytearray(enc.read_bytes())
    raw[len(raw) // 2] ^= 0x04
    enc.write_bytes(bytes(raw))
    with pytest.raises(TamperedError, match="modified"):
        list(iter_messages(out, key))


def test_exo_report_reads_an_encrypted_log_with_the_key_file(tmp_path: Path) -> None:
    keyfile = tmp_path / "k.hex"
    key = generate_key_file(keyfile)
    run = tmp_path / "run"
    _write_log(run / "telemetry", key, n=200)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXO_DATA_KEY")}
    cmd = [*exo_cmd(), "report", str(run), "--json", "--no-plots"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "EXO_DATA_KEY_FILE" in r.stderr
    r = subprocess.run(cmd, capture_output=True, text=True, env={**env, "EXO_DATA_KEY_FILE": str(keyfile)}, timeout=120)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["recovered"] is False                  # read as a complete log after authentication
    assert "9.95" in r.stdout                             # the logged peak commanded torque, 0.05 * 199 N*m
    assert key.material.hex() not in r.stdout + r.stderr


def test_exo_run_encrypts_its_log_when_enabled(tmp_path: Path) -> None:
    keyfile = tmp_path / "k.hex"
    key = generate_key_file(keyfile)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXO_DATA_KEY")}
    env["EXO_ENCRYPT_AT_REST"] = "1"
    r = subprocess.run([*exo_cmd(), "run", "--seconds", "1", "--out", str(tmp_path / "nokey")], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 2 and "no data key" in r.stderr          # refused before anything runs
    env["EXO_DATA_KEY_FILE"] = str(keyfile)
    out = tmp_path / "run"
    r = subprocess.run([*exo_cmd(), "run", "--seconds", "1.5", "--out", str(out)], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    tel = out / "telemetry"
    assert sorted(p.name for p in tel.iterdir()) == ["metadata.yaml", "telemetry_0.mcap.enc"]
    topics = {t for t, _ty, _ns, _m in iter_messages(tel, key)}
    assert {"/exo/torque/command", "/exo/joint_states", "/exo/estimation/timing"} <= topics
    assert key.material.hex() not in r.stdout + r.stderr
