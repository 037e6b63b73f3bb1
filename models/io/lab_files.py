"""Readers for motion-lab trial files that check units and headers.

Supported formats
-----------------
``.trc``  OpenSim/Vicon marker trajectories (``PathFileType 4``)  -> :func:`models.io.trc.read_trc`
          -> :class:`models.io.marker_trial.MarkerTrial`
``.mot``  OpenSim storage, version 1 (``nRows``, ``nColumns``, ``inDegrees``, ``endheader``)
          -> :func:`models.io.storage.read_mot` -> :class:`models.io.time_series.TimeSeriesTable`
``.sto``  OpenSim storage, old (version 1) or OpenSim 4 style (``version=3``, ``OpenSimVersion``,
          ``DataType``, no title line, ``nRows``/``nColumns`` optional) -> :func:`models.io.storage.read_sto`
``.c3d``  raw lab capture, through the optional package ``ezc3d`` -> :func:`models.io.c3d.read_c3d`
          -> :class:`models.io.c3d.C3DTrial`

This module: :func:`read_trial` dispatches on the suffix, :func:`summarize` returns a JSON-friendly dict and
:func:`shared_data_dir` locates the lab recordings.  Shared reader pieces (warnings, errors, units) are in
:mod:`models.io.reader_support`.

Every error names the file plus the header key (with declared and found values) or the line number,
column and offending value, so a bad export can be fixed without opening a debugger.

Coordinate frames
-----------------
Lab frames are kept exactly as recorded: nothing is rotated on reading.  OpenSim files (``.trc``,
``.mot``) use x forward, **y up**, z right; a raw ``.c3d`` uses whatever the lab set up (the GC5 ``.c3d``
files are z up).  :func:`~models.io.axes.opensim_to_z_up` maps OpenSim's (x fwd, y up, z right) to the right-handed
z-up convention used by MuJoCo/ROS (x fwd, y left, z up) (:mod:`models.io.axes`).

Units
-----
Marker positions are returned in metres, converted from the declared ``Units`` (``.trc``) or
``POINT:UNITS`` (``.c3d``): ``mm``, ``cm`` or ``m``; anything else is a :class:`ValueError`.
Storage tables are returned as written; :meth:`~models.io.time_series.TimeSeriesTable.to_radians` converts angles.

These modules are pure computation: they import numpy (and ezc3d on demand) only.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from models.io.c3d import C3DTrial, read_c3d
from models.io.marker_trial import MarkerTrial
from models.io.storage import read_mot, read_sto
from models.io.time_series import TimeSeriesTable
from models.io.trc import read_trc

__all__ = [
    "SUPPORTED_SUFFIXES",
    "shared_data_dir",
    "read_trial",
    "summarize",
]

SUPPORTED_SUFFIXES: tuple[str, ...] = (".trc", ".mot", ".sto", ".c3d")


def shared_data_dir() -> Path:
    """Folder with the lab recordings: ``$EXO_SHARED_DATA`` or ``../shared/data`` beside the repo root."""
    env = os.environ.get("EXO_SHARED_DATA")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


_READERS = {".trc": read_trc, ".mot": read_mot, ".sto": read_sto, ".c3d": read_c3d}


def read_trial(path: str | os.PathLike[str]) -> MarkerTrial | TimeSeriesTable | C3DTrial:
    """Read any supported lab file, chosen by suffix (case-insensitive); ValueError for others."""
    p = Path(path)
    reader = _READERS.get(p.suffix.lower())
    if reader is None:
        raise ValueError(
            f"{p}: unsupported file suffix {p.suffix!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    return reader(p)


def _f(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _marker_summary(t: MarkerTrial) -> dict[str, Any]:
    return {
        "rate_hz": _f(t.rate_hz),
        "frames": t.n_frames,
        "duration_s": _f(t.duration_s),
        "time_range_s": [_f(t.time_s[0]), _f(t.time_s[-1])] if t.n_frames else None,
        "n_markers": t.n_markers,
        "marker_names": list(t.marker_names),
        "units": t.source_units,
        "returned_units": "m",
        "nan_fraction": _f(t.nan_fraction),
        "zero_samples_masked": t.zero_samples_masked,
    }


def summarize(path: str | os.PathLike[str]) -> dict[str, Any]:
    """JSON-friendly summary of one lab file (plain str/int/float/bool/None/list values).

    Keys: ``path``, ``kind`` (suffix without the dot), ``name``, ``rate_hz``, ``frames``, ``duration_s``,
    ``time_range_s``, ``units`` (declared units: length unit for markers, ``deg``/``rad``/None for
    storage tables from ``inDegrees``) and ``nan_fraction``; markers add ``n_markers``,
    ``marker_names``, ``zero_samples_masked``; tables add ``n_columns``, ``columns``, ``in_degrees``;
    ``.c3d`` adds ``analog_rate_hz``, ``n_analog_channels``, ``analog_labels``, ``force_plates``.
    """
    p = Path(path)
    obj = read_trial(p)
    out: dict[str, Any] = {"path": str(p), "kind": p.suffix.lower().lstrip("."), "name": p.stem}
    if isinstance(obj, MarkerTrial):
        out.update(_marker_summary(obj))
    elif isinstance(obj, C3DTrial):
        out.update(_marker_summary(obj.markers))
        out.update(
            {
                "analog_rate_hz": _f(obj.analog_rate_hz),
                "n_analog_channels": len(obj.analog_labels),
                "analog_labels": list(obj.analog_labels),
                "force_plates": obj.force_plate_count,
            }
        )
    else:
        t = obj
        out.update(
            {
                "name": t.name,
                "rate_hz": _f(t.rate_hz),
                "frames": t.n_rows,
                "duration_s": _f(t.duration_s),
                "time_range_s": [_f(t.time_s[0]), _f(t.time_s[-1])] if t.n_rows else None,
                "n_columns": len(t.columns),
                "columns": list(t.columns),
                "units": None if t.in_degrees is None else ("deg" if t.in_degrees else "rad"),
                "in_degrees": t.in_degrees,
                "nan_fraction": _f(t.nan_fraction),
            }
        )
    return out
