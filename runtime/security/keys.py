"""256-bit data keys for encryption at rest: from a file or an environment variable, never logged.

A key file holds the key as 64 hexadecimal characters (optionally followed by a newline) and
must not be readable by group or others (mode 0600), like an SSH private key. The environment
variable ``EXO_DATA_KEY`` may hold the same 64 hex characters; ``EXO_DATA_KEY_FILE`` may name a
key file. A :class:`DataKey` never shows its bytes in ``repr``/``str``; it is identified by a
key id (the first 8 bytes of SHA-256 over a domain label and the key), which reveals nothing
usable about the key but tells a wrong key from a tampered file.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import stat
from pathlib import Path

ENV_KEY = "EXO_DATA_KEY"
ENV_KEY_FILE = "EXO_DATA_KEY_FILE"
KEY_BYTES = 32
_ID_LABEL = b"exo_runtime data key id v1\x00"


class KeyError_(ValueError):
    """A key could not be read: bad format, bad permissions (never includes key material)."""


class KeyMissingError(KeyError_):
    """No key where one was required: the file or variable is absent (a lost key)."""


class DataKey:
    """A 32-byte AES-256 key. ``bytes`` are only reachable through :attr:`material`."""

    __slots__ = ("_key", "source")

    def __init__(self, material: bytes, source: str) -> None:
        if not isinstance(material, (bytes, bytearray)) or len(material) != KEY_BYTES:
            raise KeyError_(f"{source}: a data key is {KEY_BYTES} bytes (64 hex characters), "
                            f"got {len(material) if isinstance(material, (bytes, bytearray)) else type(material).__name__}")
        self._key = bytes(material)
        self.source = source

    @property
    def material(self) -> bytes:
        """The raw key bytes (pass to the cipher; never print or log them)."""
        return self._key

    @property
    def key_id(self) -> bytes:
        """8-byte identifier stored in encrypted files (SHA-256 of a label and the key, truncated)."""
        return hashlib.sha256(_ID_LABEL + self._key).digest()[:8]

    def __repr__(self) -> str:
        return f"DataKey(id={self.key_id.hex()}, source={self.source!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataKey) and secrets.compare_digest(self._key, other._key)

    def __hash__(self) -> int:
        return hash(self.key_id)


def _parse_hex(text: str, source: str) -> DataKey:
    s = text.strip()
    if len(s) != 2 * KEY_BYTES:
        raise KeyError_(f"{source}: expected {2 * KEY_BYTES} hexadecimal characters, got {len(s)} characters")
    try:
        raw = bytes.fromhex(s)
    except ValueError:
        raise KeyError_(f"{source}: not hexadecimal (expected {2 * KEY_BYTES} characters 0-9a-f)") from None
    return DataKey(raw, source)


def generate_key_file(path: str | Path, *, overwrite: bool = False) -> DataKey:
    """Write a fresh random key to *path* (mode 0600, 64 hex chars); refuses to overwrite unless asked."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise FileExistsError(f"key file {p} exists; refusing to overwrite a key (data encrypted with it would be lost)")
    key = DataKey(secrets.token_bytes(KEY_BYTES), str(p))
    p.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(p, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, key.material.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def read_key_file(path: str | Path) -> DataKey:
    """Read a key file; refuses one readable by group/others (the key would be exposed)."""
    p = Path(path)
    if not p.is_file():
        raise KeyMissingError(f"key file {p} not found: data encrypted with a lost key cannot be recovered")
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        raise KeyError_(f"key file {p} has mode {mode:04o}: must not be accessible by group or others (chmod 600 {p})")
    return _parse_hex(p.read_text(encoding="ascii", errors="replace"), f"key file {p}")


def key_from_env_or_none(environ: dict[str, str] | None = None) -> DataKey | None:
    """The key from ``EXO_DATA_KEY`` (hex) or ``EXO_DATA_KEY_FILE`` (path), or None if neither is set."""
    env = os.environ if environ is None else environ
    if env.get(ENV_KEY):
        return _parse_hex(env[ENV_KEY], f"${ENV_KEY}")
    if env.get(ENV_KEY_FILE):
        return read_key_file(env[ENV_KEY_FILE])
    return None


def load_key(key_file: str | Path | None = None, environ: dict[str, str] | None = None) -> DataKey:
    """The data key from *key_file* if given, else from the environment; :class:`KeyMissingError` if none."""
    if key_file is not None:
        return read_key_file(key_file)
    key = key_from_env_or_none(environ)
    if key is None:
        raise KeyMissingError(f"no data key: give a key file or set ${ENV_KEY} (64 hex characters) or "
                              f"${ENV_KEY_FILE}; 'exo secure keygen KEYFILE' makes one")
    return key


__all__ = ["DataKey", "ENV_KEY", "ENV_KEY_FILE", "KeyError_", "KeyMissingError", "generate_key_file",
           "key_from_env_or_none", "load_key", "read_key_file"]
