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
