"""AES-256-GCM encryption at rest: keys, round trips, tamper and wrong-key detection, the CLI."""
from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runtime.security.aead import (HEADER_LEN, MAGIC, NotEncryptedError, TamperedError, WrongKeyError, decrypt_bytes,
                                   decrypt_file, encrypt_bytes, encrypt_file, is_encrypted)
from runtime.security.keys import (DataKey, KeyError_, KeyMissingError, generate_key_file, key_from_env_or_none,
                                   load_key, read_key_file)

from _support import exo_cmd

KEY = DataKey(bytes(range(32)), "test")
OTHER = DataKey(bytes(range(1, 33)), "other")


def test_key_file_is_private_and_never_printed(tmp_path: Path) -> None:
    path = tmp_path / "k.hex"
    key = generate_key_file(path)
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    assert read_key_file(path) == key
    assert key.material.hex() not in repr(key) and key.material.hex() not in str(key)
    with pytest.raises(FileExistsError):
        generate_key_file(path)
    path.chmod(0o644)
    with pytest.raises(KeyError_, match="mode 0644"):
        read_key_file(path)


def test_key_sources_and_lost_key(tmp_path: Path) -> None:
    assert key_from_env_or_none({}) is None
    assert key_from_env_or_none({"EXO_DATA_KEY": KEY.material.hex()}) == KEY
    with pytest.raises(KeyError_, match="64 hexadecimal"):
        key_from_env_or_none({"EXO_DATA_KEY": "abcd"})
    with pytest.raises(KeyError_, match="not hexadecimal"):
        key_from_env_or_none({"EXO_DATA_KEY": "zz" * 32})
    with pytest.raises(KeyMissingError, match="no data key"):
        load_key(None, {})
    with pytest.raises(KeyMissingError, match="lost key"):
        load_key(tmp_path / "gone.hex")


@pytest.mark.parametrize("size,chunk", [(0, 16), (1, 16), (15, 16), (16, 16), (17, 16), (100, 7), (5000, 1 << 20)])
def test_round_trip_sizes_and_chunking(size: int, chunk: int) -> None:
    data = os.urandom(size)
    blob = encrypt_bytes(data, KEY, chunk_size=chunk)
    assert blob.startswith(MAGIC) and data not in blob[HEADER_LEN:] or size < 4
    assert decrypt_bytes(blob, KEY) == data
    assert encrypt_bytes(data, KEY, chunk_size=chunk) != blob          # fresh nonce prefix per file


def test_format_matches_its_documentation_with_plain_aesgcm() -> None:
    """Chunk 0 opens with cryptography's AESGCM using the documented nonce and associated data."""
    data = b"knee torque log"
    blob = encrypt_bytes(data, KEY, chunk_size=64)
    header = blob[:HEADER_LEN]
    magic, version, chunk_size, key_id, prefix = struct.unpack(">8sB3xI8s8s", header)
    assert (magic, version, chunk_size, key_id) == (MAGIC, 1, 64, KEY.key_id)
    (n,) = struct.unpack(">I", blob[HEADER_LEN:HEADER_LEN + 4])
    ct = blob[HEADER_LEN + 4:HEADER_LEN + 4 + n]
    plain = AESGCM(KEY.material).decrypt(prefix + struct.pack(">I", 0), ct, header + struct.pack(">QB", 0, 1))
    assert plain == data and len(blob) == HEADER_LEN + 4 + n


def test_every_modified_byte_is_detected() -> None:
    data = os.urandom(100)
    blob = encrypt_bytes(data, KEY, chunk_size=32)       # 4 chunks
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises((TamperedError, WrongKeyError, NotEncryptedError)):
            decrypt_bytes(bytes(bad), KEY)
    # flipped key-id bytes look like another key; everything after the magic else is tampering
    for i in range(HEADER_LEN, len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x80
        with pytest.raises(TamperedError):
            decrypt_bytes(bytes(bad), KEY)


def test_truncation_extension_and_reordering_are_detected() -> None:
    blob = encrypt_bytes(os.urandom(96), KEY, chunk_size=32)     # chunks of 32, 32, 32 and an empty final one
    for cut in (HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + 3, HEADER_LEN + 10, len(blob) - 24, len(blob) - 1):
        with pytest.raises(TamperedError):
            decrypt_bytes(blob[:cut], KEY)
    with pytest.raises(TamperedError, match="appended"):
        decrypt_bytes(blob + b"\x00", KEY)
    rec = 4 + 32 + 16
    c0, c1 = blob[HEADER_LEN:HEADER_LEN + rec], blob[HEADER_LEN + rec:HEADER_LEN + 2 * rec]
    swapped = blob[:HEADER_LEN] + c1 + c0 + blob[HEADER_LEN + 2 * rec:]
    with pytest.raises(TamperedError, match="chunk 0"):
        decrypt_bytes(swapped, KEY)
    dropped = blob[:HEADER_LEN] + blob[HEADER_LEN + rec:]
    with pytest.raises(TamperedError):
        decrypt_bytes(dropped, KEY)


def test_wrong_key_and_not_encrypted() -> None:
    blob = encrypt_bytes(b"x" * 10, KEY)
    with pytest.raises(WrongKeyError, match=OTHER.key_id.hex()):
        decrypt_bytes(blob, OTHER)
    with pytest.raises(NotEncryptedError):
        decrypt_bytes(b"\x89MCAP0\r\n" + b"\x00" * 40, KEY)


def test_decrypt_file_writes_nothing_when_authentication_fails(tmp_path: Path) -> None:
    src = tmp_path / "trial.trc"
    src.write_bytes(os.urandom(3000))
    enc = encrypt_file(src, None, KEY, remove_plaintext=True, chunk_size=1024)
    assert enc.name == "trial.trc.enc" and not src.exists() and is_encrypted(enc)
    assert oct(enc.stat().st_mode & 0o777) == oct(0o600)
    out = decrypt_file(enc, None, KEY)
    assert out == src and len(out.read_bytes()) == 3000
    out.unlink()
    raw = bytearray(enc.read_bytes())
    raw[-5] ^= 1                                   # damage the last chunk: earlier chunks authenticate fine
    enc.write_bytes(bytes(raw))
    with pytest.raises(TamperedError):
        decrypt_file(enc, None, KEY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trial.trc.enc"]


def test_cli_keygen_encrypt_decrypt_and_errors(tmp_path: Path) -> None:
    exo = exo_cmd()

    def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        e = {k: v for k, v in os.environ.items() if not k.startswith("EXO_DATA_KEY")}
        e.update(env or {})
        return subprocess.run([*exo, "secure", *args], cwd=tmp_path, capture_output=True, text=True, env=e, timeout=60)

    key = tmp_path / "k.hex"
    r = run("keygen", str(key))
    assert r.returncode == 0 and key.read_text().strip() not in r.stdout + r.stderr
    (tmp_path / "m.bin").write_bytes(b"model bytes")
    assert run("encrypt", "m.bin", "--key-file", str(key), "--remove-plaintext").returncode == 0
    assert not (tmp_path / "m.bin").exists()
    r = run("decrypt", "m.bin.enc", "--out", "back.bin", env={"EXO_DATA_KEY_FILE": str(key)})
    assert r.returncode == 0 and (tmp_path / "back.bin").read_bytes() == b"model bytes"
    r = run("decrypt", "m.bin.enc", "--out", "x.bin")
    assert r.returncode == 2 and "no data key" in r.stderr
    run("keygen", "k2.hex")
    r = run("decrypt", "m.bin.enc", "--out", "x.bin", "--key-file", "k2.hex")
    assert r.returncode == 2 and "wrong or lost key" in r.stderr
    raw = bytearray((tmp_path / "m.bin.enc").read_bytes())
    raw[HEADER_LEN + 6] ^= 1
    (tmp_path / "m.bin.enc").write_bytes(bytes(raw))
    r = run("decrypt", "m.bin.enc", "--out", "x.bin", "--key-file", str(key))
    assert r.returncode == 1 and "TAMPERED" in r.stderr and not (tmp_path / "x.bin").exists()
