"""Raw file references: SHA-256, a readability check for lab files, encryption at rest (Fernet).

Signals stay in their files; the store keeps path, SHA-256, size and whether the file is encrypted.
Encryption uses ``cryptography``'s Fernet (AES-128-CBC + HMAC-SHA256, authenticated): a key file holds the
url-safe base64 key written by :func:`new_key`; :func:`encrypt_file` writes ``<name>.enc`` beside the
plain file and removes the plain copy only when asked.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

LAB_SUFFIXES = (".trc", ".mot", ".sto", ".c3d")


class CorruptFileError(ValueError):
    """A referenced file is missing, unreadable or not a valid file of its kind."""


@dataclass(frozen=True)
class FileRef:
    """A file the session refers to. ``role``: e.g. ``markers``, ``grf``, ``markerset``, ``analysis_csv``."""

    role: str
    path: str
    encrypted: bool = False


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """(hex SHA-256, size in bytes) of a file."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
            n += len(block)
    return h.hexdigest(), n


def check_file(ref: FileRef) -> tuple[str, int]:
    """Hash a referenced file after checking it: it exists and is not empty; lab files (.trc/.mot/.sto/.c3d, not
    encrypted) must parse with :func:`models.io.lab_files.read_trial`. Raises :class:`CorruptFileError` naming the
    role, the path and what is wrong."""
    p = Path(ref.path)
    if not p.is_file():
        raise CorruptFileError(f"raw file {ref.role} = {str(p)!r}: no such file")
    digest, size = sha256_file(p)
    if size == 0:
        raise CorruptFileError(f"raw file {ref.role} = {str(p)!r}: empty file")
    if not ref.encrypted and p.suffix.lower() in LAB_SUFFIXES:
        from models.io.lab_files import read_trial

        try:
            read_trial(p)
        except (ValueError, IndexError, KeyError, UnicodeError) as exc:
            raise CorruptFileError(f"raw file {ref.role} = {str(p)!r}: not a valid {p.suffix} file ({exc})") from None
    return digest, size


def new_key(path: str | Path) -> Path:
    """Write a new Fernet key to ``path`` (mode 0600); refuses to overwrite an existing key."""
    from cryptography.fernet import Fernet

    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(Fernet.generate_key())
    return p


def _fernet(key_path: str | Path):
    from cryptography.fernet import Fernet

    try:
        return Fernet(Path(key_path).read_bytes().strip())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"encryption key {str(key_path)!r}: not a Fernet key ({exc})") from None


def encrypt_file(path: str | Path, key_path: str | Path, *, remove_plain: bool = True) -> Path:
    """Encrypt ``path`` to ``path.enc`` with the key in ``key_path``; returns the encrypted file's path."""
    p = Path(path)
    out = p.with_name(p.name + ".enc")
    token = _fernet(key_path).encrypt(p.read_bytes())
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(token)
    os.replace(tmp, out)
    if remove_plain:
        p.unlink()
    return out


def decrypt_bytes(path: str | Path, key_path: str | Path) -> bytes:
    """Plain bytes of a file written by :func:`encrypt_file` (``InvalidToken`` on a wrong key or tampering)."""
    return _fernet(key_path).decrypt(Path(path).read_bytes())
