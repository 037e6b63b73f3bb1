"""Model files verified by SHA-256 against a manifest before they are loaded.

A manifest is JSON::

    {"format": "exo_runtime model manifest v1",
     "files": {"pose_landmark_full.onnx": {"sha256": "<64 hex>", "size_bytes": 123}}}

keyed by file name (no directories: a model is identified by its name wherever it is
installed). The digest is of the **plaintext** model, so the same manifest verifies a
model stored encrypted at rest (:func:`read_verified_model` decrypts, authenticates and
then checks the digest). Whoever loads a model calls :func:`verify_model_file` (or
:func:`read_verified_model` and loads from the returned bytes, so the bytes checked are
the bytes used).
"""
from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runtime.security.aead import decrypt_path_to_bytes, is_encrypted
from runtime.security.keys import DataKey

FORMAT = "exo_runtime model manifest v1"
_BLOCK = 1 << 20


class ModelIntegrityError(ValueError):
    """A model file is not the one the manifest names (digest or size differs, or it is not listed)."""


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of the file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(paths: Iterable[str | Path], out: str | Path) -> dict[str, Any]:
    """Hash plaintext model files *paths* into the manifest *out*; returns the manifest mapping."""
    files: dict[str, dict[str, Any]] = {}
    for p in map(Path, paths):
        if is_encrypted(p):
            raise ValueError(f"write_manifest: {p} is encrypted; hash the plaintext model before encrypting it")
        if p.name in files:
            raise ValueError(f"write_manifest: two files named {p.name!r}")
        files[p.name] = {"sha256": sha256_file(p), "size_bytes": p.stat().st_size}
    doc = {"format": FORMAT, "files": files}
    Path(out).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return doc


def load_manifest(manifest: str | Path | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``files`` mapping of a manifest given as a path or an already-parsed mapping."""
    if isinstance(manifest, Mapping):
        doc = dict(manifest)
        where = "manifest"
    else:
        where = str(manifest)
        try:
            doc = json.loads(Path(manifest).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ModelIntegrityError(f"{where}: not valid JSON ({exc})") from None
    if doc.get("format") != FORMAT or not isinstance(doc.get("files"), dict):
        raise ModelIntegrityError(f"{where}: format = {doc.get('format')!r}: expected {FORMAT!r} with a 'files' mapping")
    for name, entry in doc["files"].items():
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise ModelIntegrityError(f"{where}: files.{name}.sha256 = {digest!r}: expected 64 lowercase hex characters")
    return doc["files"]


def _check(name: str, digest: str, size: int, files: Mapping[str, Mapping[str, Any]], where: str) -> str:
    entry = files.get(name)
    if entry is None:
        raise ModelIntegrityError(f"{where}: model {name!r} is not in the manifest (listed: {sorted(files)}); "
                                  "refusing to load an unlisted model")
    want_size = entry.get("size_bytes")
    if want_size is not None and int(want_size) != size:
        raise ModelIntegrityError(f"{where}: size {size} bytes, manifest says {want_size}: the model file was changed")
    if not hmac.compare_digest(digest, entry["sha256"]):
        raise ModelIntegrityError(f"{where}: SHA-256 {digest} does not match the manifest's {entry['sha256']}: "
                                  "the model file was changed or corrupted; refusing to load it")
    return digest


def verify_model_file(path: str | Path, manifest: str | Path | Mapping[str, Any],
                      key: DataKey | None = None) -> str:
    """Check *path* against *manifest* before loading it; returns the hex SHA-256 of the plaintext.

    An encrypted model needs *key* (decrypted in memory, authenticated, then hashed).
    Raises :class:`ModelIntegrityError` on any mismatch or an unlisted name.
    """
    p = Path(path)
    files = load_manifest(manifest)
    if is_encrypted(p):
        data = read_verified_model(p, files_manifest(files), key)
        return hashlib.sha256(data).hexdigest()
    return _check(p.name, sha256_file(p), p.stat().st_size, files, str(p))


def files_manifest(files: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest mapping around an already-loaded ``files`` mapping."""
    return {"format": FORMAT, "files": dict(files)}


def read_verified_model(path: str | Path, manifest: str | Path | Mapping[str, Any],
                        key: DataKey | None = None) -> bytes:
    """The model's plaintext bytes after verification (decrypting ``*.enc`` files with *key*).

    The manifest names the plaintext file, so ``model.onnx.enc`` is checked as ``model.onnx``.
    """
    p = Path(path)
    files = load_manifest(manifest)
    if is_encrypted(p):
        if key is None:
            raise ModelIntegrityError(f"{p}: the model is encrypted; a data key is needed to verify and load it")
        data = decrypt_path_to_bytes(p, key)
        name = p.name[:-4] if p.name.endswith(".enc") else p.name
    else:
        data = p.read_bytes()
        name = p.name
    _check(name, hashlib.sha256(data).hexdigest(), len(data), files, str(p))
    return data


__all__ = ["FORMAT", "ModelIntegrityError", "load_manifest", "read_verified_model", "sha256_file",
           "verify_model_file", "write_manifest"]
