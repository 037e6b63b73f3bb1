"""AES-256-GCM encryption at rest, in authenticated chunks (logs, recorded trials, model files).

File layout (all integers big-endian)::

    header, 32 bytes:  magic b"EXOGCM1\\0" | version u8 (1) | 3 zero bytes | chunk_size u32
                       | key_id 8 bytes (see DataKey.key_id) | nonce_prefix 8 random bytes
    chunks:            length u32 | ciphertext of <= chunk_size plaintext bytes + 16-byte GCM tag

Chunk *i* uses the 96-bit nonce ``nonce_prefix || i`` (u32) and the associated data
``header || i (u64) || final (u8)``; the last chunk (possibly empty) has ``final = 1``. So a
changed byte anywhere (header included), reordered, dropped or appended chunks and a cut
file are all detected (:class:`TamperedError` naming the chunk), and a different key is told
apart from tampering by the key id (:class:`WrongKeyError`). Decryption to a file goes through
a temporary file, so no unauthenticated plaintext is left behind on failure.
"""
from __future__ import annotations

import io
import os
import secrets
import struct
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runtime.security.keys import DataKey

MAGIC = b"EXOGCM1\x00"
VERSION = 1
HEADER = struct.Struct(">8sB3xI8s8s")
HEADER_LEN = HEADER.size            # 32
TAG_LEN = 16
DEFAULT_CHUNK = 1 << 20             # plaintext bytes per chunk
MAX_CHUNK = 1 << 26
SUFFIX = ".enc"


class DecryptionError(ValueError):
    """Base class: an encrypted file could not be decrypted."""


class NotEncryptedError(DecryptionError):
    """The input is not an exo_runtime encrypted file (wrong magic)."""


class WrongKeyError(DecryptionError):
    """The file was encrypted with another key (key ids differ)."""


class TamperedError(DecryptionError):
    """Authentication failed: the file was modified, truncated or extended after encryption."""


def is_encrypted(path: str | Path) -> bool:
    """True if *path* starts with the encrypted-file magic."""
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + struct.pack(">QB", index, 1 if final else 0)


def encrypt_stream(src: BinaryIO, dst: BinaryIO, key: DataKey, *, chunk_size: int = DEFAULT_CHUNK) -> int:
    """Encrypt everything readable from *src* into *dst*; returns the plaintext length in bytes."""
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk_size = {chunk_size}: allowed 1..{MAX_CHUNK} bytes")
    header = HEADER.pack(MAGIC, VERSION, chunk_size, key.key_id, secrets.token_bytes(8))
    prefix = header[-8:]
    aes = AESGCM(key.material)
    dst.write(header)
    total = 0
    index = 0
    block = src.read(chunk_size)
    while True:
        nxt = src.read(chunk_size) if len(block) == chunk_size else b""
        final = not nxt
        if index >= 1 << 32:
            raise ValueError("file too large for one nonce prefix (2^32 chunks)")
        ct = aes.encrypt(prefix + struct.pack(">I", index), block, _aad(header, index, final))
        dst.write(struct.pack(">I", len(ct)))
        dst.write(ct)
        total += len(block)
        index += 1
        if final:
            return total
        block = nxt


def _read_exact(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    return data if data is not None else b""


def decrypt_stream(src: BinaryIO, dst: BinaryIO, key: DataKey, *, name: str = "<stream>") -> int:
    """Authenticate and decrypt *src* into *dst*; returns the plaintext length.

    Raises :class:`NotEncryptedError`, :class:`WrongKeyError` or :class:`TamperedError`
    (naming *name* and the chunk). Plaintext of chunks before a failing one has already
    been written to *dst*: callers writing files use :func:`decrypt_file`, which discards it.
    """
    header = _read_exact(src, HEADER_LEN)
    if not header[:8] == MAGIC[: len(header[:8])] or not header:
        raise NotEncryptedError(f"{name}: not an encrypted exo_runtime file (starts with {header[:8]!r})")
    if len(header) < HEADER_LEN:
        raise TamperedError(f"{name}: truncated inside the header ({len(header)} of {HEADER_LEN} bytes)")
    _magic, version, chunk_size, key_id, prefix = HEADER.unpack(header)
    if version != VERSION:
        raise NotEncryptedError(f"{name}: encrypted-file version {version} is not supported (this reader: {VERSION})")
    if key_id != key.key_id:
        raise WrongKeyError(f"{name}: encrypted with key id {key_id.hex()}, the key given has id "
                            f"{key.key_id.hex()} ({key.source}); wrong or lost key")
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise TamperedError(f"{name}: header chunk size {chunk_size} out of range")
    aes = AESGCM(key.material)
    total = 0
    index = 0
    while True:
        raw_len = _read_exact(src, 4)
        if len(raw_len) < 4:
            raise TamperedError(f"{name}: truncated at chunk {index} (no final chunk): the file was cut or damaged")
        (n,) = struct.unpack(">I", raw_len)
        if not TAG_LEN <= n <= chunk_size + TAG_LEN:
            raise TamperedError(f"{name}: chunk {index} has an impossible length {n}")
        ct = _read_exact(src, n)
        if len(ct) < n:
            raise TamperedError(f"{name}: truncated inside chunk {index} ({len(ct)} of {n} bytes)")
        nonce = prefix + struct.pack(">I", index)
        final = len(ct) - TAG_LEN < chunk_size
        plain = None
        for candidate in ((final,) if final else (False, True)):
            try:
                plain = aes.decrypt(nonce, ct, _aad(header, index, candidate))
                final = candidate
                break
            except InvalidTag:
                continue
        if plain is None:
            raise TamperedError(f"{name}: authentication failed at chunk {index} (bytes "
                                f"{HEADER_LEN}+): the file was modified after encryption")
        dst.write(plain)
        total += len(plain)
        index += 1
        if final:
            if _read_exact(src, 1):
                raise TamperedError(f"{name}: data appended after the final chunk {index - 1}")
            return total


def encrypt_bytes(data: bytes, key: DataKey, *, chunk_size: int = DEFAULT_CHUNK) -> bytes:
    """Encrypted form of *data* (same layout as a file)."""
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(data), out, key, chunk_size=chunk_size)
    return out.getvalue()


def decrypt_bytes(blob: bytes, key: DataKey, *, name: str = "<bytes>") -> bytes:
    """Authenticated plaintext of *blob*; raises a :class:`DecryptionError` subclass."""
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(blob), out, key, name=name)
    return out.getvalue()


def decrypt_path_to_bytes(path: str | Path, key: DataKey) -> bytes:
    """Authenticated plaintext of the encrypted file *path* (in memory)."""
    with open(path, "rb") as f:
        out = io.BytesIO()
        decrypt_stream(f, out, key, name=str(path))
        return out.getvalue()


def _atomic_write(dst: Path, fill) -> None:
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def encrypt_file(src: str | Path, dst: str | Path | None = None, key: DataKey | None = None, *,
                 remove_plaintext: bool = False, chunk_size: int = DEFAULT_CHUNK) -> Path:
    """Encrypt *src* to *dst* (default ``src + '.enc'``), atomically; optionally delete *src* afterwards.

    Deleting is an unlink, not a secure erase (flash storage cannot promise one); encrypt on
    an encrypted file system too where plaintext must never touch the disk.
    """
    if key is None:
        raise ValueError("encrypt_file: key is required")
    s = Path(src)
    d = Path(dst) if dst is not None else s.with_name(s.name + SUFFIX)
    if d.resolve() == s.resolve():
        raise ValueError(f"encrypt_file: destination {d} is the source")
    with open(s, "rb") as f:
        _atomic_write(d, lambda out: encrypt_stream(f, out, key, chunk_size=chunk_size))
    if remove_plaintext:
        s.unlink()
    return d


def decrypt_file(src: str | Path, dst: str | Path | None = None, key: DataKey | None = None) -> Path:
    """Decrypt *src* into *dst* (default: *src* without ``.enc``); nothing is written if authentication fails."""
    if key is None:
        raise ValueError("decrypt_file: key is required")
    s = Path(src)
    if dst is None:
        if not s.name.endswith(SUFFIX):
            raise ValueError(f"decrypt_file: {s} does not end in {SUFFIX}; give the output path")
        d = s.with_name(s.name[: -len(SUFFIX)])
    else:
        d = Path(dst)
    if d.resolve() == s.resolve():
        raise ValueError(f"decrypt_file: destination {d} is the source")
    with open(s, "rb") as f:
        _atomic_write(d, lambda out: decrypt_stream(f, out, key, name=str(s)))
    return d


__all__ = ["DEFAULT_CHUNK", "DecryptionError", "HEADER_LEN", "MAGIC", "NotEncryptedError", "SUFFIX", "TamperedError",
           "WrongKeyError", "decrypt_bytes", "decrypt_file", "decrypt_path_to_bytes", "decrypt_stream",
           "encrypt_bytes", "encrypt_file", "encrypt_stream", "is_encrypted"]
