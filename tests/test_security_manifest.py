"""Model files verified by SHA-256 against a manifest before loading (plain and encrypted at rest)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from runtime.security.aead import TamperedError, encrypt_file
from runtime.security.keys import DataKey
from runtime.security.manifest import ModelIntegrityError, read_verified_model, verify_model_file, write_manifest

from _support import exo_cmd

KEY = DataKey(bytes(range(32)), "test")


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, Path]:
    m = tmp_path / "pose_landmark_full.onnx"
    m.write_bytes(os.urandom(4096))
    man = tmp_path / "manifest.json"
    write_manifest([m], man)
    return m, man


def test_manifest_digest_is_sha256_of_the_file(model) -> None:
    m, man = model
    doc = json.loads(man.read_text())
    assert doc["files"][m.name] == {"sha256": hashlib.sha256(m.read_bytes()).hexdigest(), "size_bytes": 4096}
    assert verify_model_file(m, man) == hashlib.sha256(m.read_bytes()).hexdigest()
    assert read_verified_model(m, doc) == m.read_bytes()


def test_a_changed_byte_or_size_or_name_is_refused(model, tmp_path: Path) -> None:
    m, man = model
    raw = bytearray(m.read_bytes())
    raw[1000] ^= 0xFF
    m.write_bytes(bytes(raw))
    with pytest.raises(ModelIntegrityError, match="does not match"):
        verify_model_file(m, man)
    m.write_bytes(bytes(raw) + b"\x00")
    with pytest.raises(ModelIntegrityError, match="size 4097"):
        verify_model_file(m, man)
    other = tmp_path / "other.onnx"
    other.write_bytes(b"x")
    with pytest.raises(ModelIntegrityError, match="not in the manifest"):
        verify_model_file(other, man)
    with pytest.raises(ModelIntegrityError, match="sha256"):
        verify_model_file(other, {"format": "exo_runtime model manifest v1", "files": {"other.onnx": {"sha256": "12"}}})


def test_encrypted_model_is_decrypted_authenticated_and_hashed(model) -> None:
    m, man = model
    plain = m.read_bytes()
    enc = encrypt_file(m, None, KEY, remove_plaintext=True)
    assert read_verified_model(enc, man, KEY) == plain
    assert verify_model_file(enc, man, KEY) == hashlib.sha256(plain).hexdigest()
    with pytest.raises(ModelIntegrityError, match="data key"):
        read_verified_model(enc, man)
    raw = bytearray(enc.read_bytes())
    raw[100] ^= 1
    enc.write_bytes(bytes(raw))
    with pytest.raises(TamperedError):
        read_verified_model(enc, man, KEY)


def test_cli_manifest_and_verify(model, tmp_path: Path) -> None:
    m, _ = model
    exo = exo_cmd()
    r = subprocess.run([*exo, "secure", "manifest", str(m), "--out", str(tmp_path / "man2.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and hashlib.sha256(m.read_bytes()).hexdigest() in r.stdout
    r = subprocess.run([*exo, "secure", "verify", str(m), "--manifest", str(tmp_path / "man2.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("OK")
    raw = bytearray(m.read_bytes())
    raw[-1] ^= 0x01
    m.write_bytes(bytes(raw))
    r = subprocess.run([*exo, "secure", "verify", str(m), "--manifest", str(tmp_path / "man2.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "MISMATCH" in r.stderr
