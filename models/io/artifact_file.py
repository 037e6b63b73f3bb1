"""One way to write a versioned JSON artefact: kind, version, creation time, payload, provenance, atomically.

Used by the tissue compensator (``controllers/tissue_compensator.py``) and the real-time cuff plant
(``hil/cuff_rom.py``). The file is written to ``<name>.tmp`` and renamed over ``path``, so a reader never sees a
half-written artefact.
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def write_versioned_artifact(path: str | Path, kind: str, version: int | str, payload: Mapping[str, Any],
                             provenance: Mapping[str, Any], regenerate: str) -> Path:
    """Write ``{"artifact": kind, "version", "created_utc", **payload, "provenance": {...}}`` to ``path``.

    ``provenance`` gains the mujoco / numpy / python versions and ``regenerate`` (the command that rebuilds the
    file). Returns the path.
    """
    import mujoco
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"artifact": kind, "version": version,
           "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), **payload,
           "provenance": {**provenance, "mujoco": mujoco.__version__, "numpy": np.__version__,
                          "python": platform.python_version(), "regenerate": regenerate}}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    tmp.replace(path)
    return path


def read_versioned_artifact(path: str | Path, kind: str, version: int | str, label: str, payload_key: str,
                            fields: set[str], regenerate: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read :func:`write_versioned_artifact`'s file: ``(payload, whole document)``.

    ValueError naming ``label`` and the file when it cannot be read, is not JSON, is another kind or version
    (``artifact/version = …, expected …``), or its ``payload_key`` mapping has unknown or missing ``fields``.
    """
    import json

    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise ValueError(f"{label} {path}: cannot read ({e.strerror or e}); regenerate with '{regenerate}'") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{label} {path}: not JSON ({e})") from None
    if doc.get("artifact") != kind or doc.get("version") != version:
        raise ValueError(f"{label} {path}: artifact/version = {doc.get('artifact')!r}/{doc.get('version')!r}, "
                         f"expected {kind!r}/{version}")
    payload = dict(doc.get(payload_key, {}))
    unknown, missing = set(payload) - fields, fields - set(payload)
    if unknown or missing:
        raise ValueError(f"{label} {path}: {payload_key} keys unknown {sorted(unknown)}, missing {sorted(missing)}")
    return payload, doc
