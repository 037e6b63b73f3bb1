"""Readers for motion-lab trial files that check units and headers.

Supported formats
-----------------
``.trc``  OpenSim/Vicon marker trajectories (``PathFileType 4``)  -> :func:`read_trc` -> :class:`MarkerTrial`
``.mot``  OpenSim storage, version 1 (``nRows``, ``nColumns``, ``inDegrees``, ``endheader``)
          -> :func:`read_mot` -> :class:`TimeSeriesTable`
``.sto``  OpenSim storage, old (version 1) or OpenSim 4 style (``version=3``, ``OpenSimVersion``,
          ``DataType``, no title line, ``nRows``/``nColumns`` optional) -> :func:`read_sto`
``.c3d``  raw lab capture, through the optional package ``ezc3d`` -> :func:`read_c3d` -> :class:`C3DTrial`

:func:`read_trial` dispatches on the suffix and :func:`summarize` returns a JSON-friendly dict.

Every error names the file plus the header key (with declared and found values) or the line number,
column and offending value, so a bad export can be fixed without opening a debugger.

Coordinate frames
-----------------
Lab frames are kept exactly as recorded: nothing is rotated on reading.  OpenSim files (``.trc``,
``.mot``) use x forward, **y up**, z right; a raw ``.c3d`` uses whatever the lab set up (the GC5 ``.c3d``
files are z up).  :func:`opensim_to_z_up` maps OpenSim's (x fwd, y up, z right) to the right-handed
z-up convention used by MuJoCo/ROS (x fwd, y left, z up).

Units
-----
Marker positions are returned in metres, converted from the declared ``Units`` (``.trc``) or
``POINT:UNITS`` (``.c3d``): ``mm``, ``cm`` or ``m``; anything else is a :class:`ValueError`.
Storage tables are returned as written; :meth:`TimeSeriesTable.to_radians` converts angles.

This module is pure computation: it imports numpy (and ezc3d on demand) only.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = [
    "LabFileWarning",
    "OptionalDependencyError",
    "MarkerTrial",
    "TimeSeriesTable",
    "C3DTrial",
    "SUPPORTED_SUFFIXES",
    "shared_data_dir",
    "read_trc",
    "read_mot",
    "read_sto",
    "read_c3d",
    "read_trial",
    "summarize",
    "opensim_to_z_up",
    "is_rotational_column",
]

#: Length units accepted in ``.trc`` ``Units`` and ``.c3d`` ``POINT:UNITS`` -> factor to metres.
LENGTH_UNITS_TO_M: Mapping[str, float] = {
    "mm": 1e-3,
    "millimeter": 1e-3,
    "millimeters": 1e-3,
    "millimetre": 1e-3,
    "millimetres": 1e-3,
    "cm": 1e-2,
    "centimeter": 1e-2,
    "centimeters": 1e-2,
    "centimetre": 1e-2,
    "centimetres": 1e-2,
    "m": 1.0,
    "meter": 1.0,
    "meters": 1.0,
    "metre": 1.0,
    "metres": 1.0,
}

SUPPORTED_SUFFIXES: tuple[str, ...] = (".trc", ".mot", ".sto", ".c3d")

#: Relative tolerance between a ``.trc`` ``DataRate`` and the rate implied by its Time column.
_RATE_RTOL = 0.01


class LabFileWarning(UserWarning):
    """A lab file is readable but something in it disagrees with its header."""


class OptionalDependencyError(ImportError):
    """An optional third-party package needed for one file format is not installed."""


# --------------------------------------------------------------------------------------------------
# locating the shared data
# --------------------------------------------------------------------------------------------------


def shared_data_dir() -> Path:
    """Folder with the lab recordings: ``$EXO_SHARED_DATA`` or ``../shared/data`` beside the repo root."""
    env = os.environ.get("EXO_SHARED_DATA")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


# --------------------------------------------------------------------------------------------------
# result types
# --------------------------------------------------------------------------------------------------


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def close_matches_error(what: str, name: str, candidates: Iterable[str], where: str) -> KeyError:
    """A KeyError naming what was looked up, where, and the closest valid names (or the available ones)."""
    candidates = list(candidates)
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    if close:
        hint = f"close matches: {close}"
    else:
        shown = candidates[:12]
        more = f" ... ({len(candidates)} in all)" if len(candidates) > len(shown) else ""
        hint = f"no close match; available: {shown}{more}"
    return KeyError(f"{where}: no {what} {name!r}; {hint}")


@dataclass(frozen=True, eq=False)
class MarkerTrial:
    """Marker trajectories of one trial, positions in metres, frame as recorded.

    ``positions_m[i, j]`` is marker ``marker_names[j]`` at ``time_s[i]``; missing samples are NaN.
    Arrays are read-only.
    """

    time_s: np.ndarray  # (N,)
    frame: np.ndarray  # (N,) int, frame numbers as recorded (1-based in .trc and .c3d)
    marker_names: tuple[str, ...]  # (M,)
    positions_m: np.ndarray  # (N, M, 3), metres, lab frame as recorded
    rate_hz: float
    source_units: str  # the declared length unit, e.g. "mm"
    path: str = ""
    header: dict[str, str] = field(default_factory=dict)
    #: number of (frame, marker) samples that were exactly (0, 0, 0) and were set to NaN
    zero_samples_masked: int = 0

    @property
    def n_frames(self) -> int:
        return int(self.positions_m.shape[0])

    @property
    def n_markers(self) -> int:
        return int(self.positions_m.shape[1])

    @property
    def duration_s(self) -> float:
        return float(self.time_s[-1] - self.time_s[0]) if self.n_frames else 0.0

    @property
    def nan_fraction(self) -> float:
        """Fraction of (frame, marker) samples that are missing."""
        if self.positions_m.size == 0:
            return 0.0
        return float(np.isnan(self.positions_m).any(axis=2).mean())

    def marker(self, name: str) -> np.ndarray:
        """(N, 3) trajectory of one marker in metres; KeyError lists close matches."""
        try:
            j = self.marker_names.index(name)
        except ValueError:
            raise close_matches_error("marker", name, self.marker_names, self.path or "trial") from None
        return self.positions_m[:, j, :]


#: Column names treated as translations by :meth:`TimeSeriesTable.to_radians`.
_TRANSLATION_RE = re.compile(r"_t[xyz]$")
#: Column names treated as kinetics (forces, torques, centres of pressure) by ``to_radians``.
_KINETIC_RE = re.compile(r"force|torque|moment", re.IGNORECASE)


def is_rotational_column(name: str) -> bool:
    """Heuristic used by :meth:`TimeSeriesTable.to_radians`: is this column an angle?

    A column is taken as rotational unless its name ends in ``_tx``, ``_ty`` or ``_tz`` (OpenSim's
    translational coordinates, e.g. ``pelvis_tx``) or contains ``force``, ``torque`` or ``moment``
    (force-plate columns such as ``ground_force_vx``/``_px`` and ``ground_torque_y``: OpenSim writes
    ``inDegrees=yes`` into many GRF files where it means nothing).  The heuristic cannot see
    coordinates that a model couples and stores in radians even in a degree file (e.g. Rajagopal's
    ``knee_angle_r_beta``); pass those to ``to_radians(exclude=...)``.
    """
    return not (_TRANSLATION_RE.search(name) or _KINETIC_RE.search(name))


@dataclass(frozen=True, eq=False)
class TimeSeriesTable:
    """An OpenSim storage table (``.mot`` / ``.sto``).

    ``columns`` excludes ``time``; ``data`` is ``(N, len(columns))``.  ``in_degrees`` is the header's
    ``inDegrees`` (``None`` where the header has none, as in OpenSim 4 ``.sto`` files).  ``header`` holds
    the ``key=value`` lines as strings; free-text header lines are in ``comments``.  Arrays are read-only.
    """

    name: str
    time_s: np.ndarray  # (N,)
    columns: tuple[str, ...]
    data: np.ndarray  # (N, C)
    in_degrees: bool | None
    header: dict[str, str]
    path: str = ""
    comments: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return int(self.data.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.time_s[-1] - self.time_s[0]) if self.n_rows else 0.0

    @property
    def rate_hz(self) -> float | None:
        """Mean sample rate from the time column (robust to rounded time stamps); None under 2 rows."""
        if self.n_rows < 2 or self.duration_s <= 0:
            return None
        return float((self.n_rows - 1) / self.duration_s)

    @property
    def nan_fraction(self) -> float:
        return float(np.isnan(self.data).mean()) if self.data.size else 0.0

    def column(self, name: str) -> np.ndarray:
        """One column (``"time"`` gives ``time_s``); KeyError lists close matches."""
        if name == "time":
            return self.time_s
        try:
            j = self.columns.index(name)
        except ValueError:
            raise close_matches_error("column", name, self.columns, self.path or self.name) from None
        return self.data[:, j]

    def rotational_columns(self, exclude: Iterable[str] = ()) -> tuple[str, ...]:
        """Columns that :meth:`to_radians` converts (see :func:`is_rotational_column`)."""
        excl = set(exclude)
        return tuple(c for c in self.columns if c not in excl and is_rotational_column(c))

    def to_radians(self, exclude: Iterable[str] = ()) -> "TimeSeriesTable":
        """Copy with rotational columns in radians (``in_degrees=False``, header ``inDegrees=no``).

        Which columns are rotational is a name heuristic, see :func:`is_rotational_column`:
        translations (``*_tx/_ty/_tz``) and force/torque/moment columns are left untouched, every other
        column is multiplied by pi/180.  ``exclude`` names further columns to leave as they are (e.g.
        ``("knee_angle_r_beta", "knee_angle_l_beta")`` for Rajagopal-2016 IK output, which stores those
        coupled coordinates in radians although the file says ``inDegrees=yes``).

        A table already in radians is returned unchanged; one whose header has no ``inDegrees`` raises
        ``ValueError`` because its angle unit is unknown.
        """
        exclude = tuple(exclude)
        for name in exclude:
            if name not in self.columns:
                raise close_matches_error("column", name, self.columns, self.path or self.name)
        if self.in_degrees is False:
            return self
        if self.in_degrees is None:
            raise ValueError(
                f"{self.path or self.name}: header has no 'inDegrees' key, so the angle unit is unknown; "
                "cannot convert to radians"
            )
        rot = set(self.rotational_columns(exclude))
        mask = np.array([c in rot for c in self.columns], dtype=bool)
        data = np.array(self.data, dtype=float, copy=True)
        data[:, mask] = np.deg2rad(data[:, mask])
        header = dict(self.header)
        header["inDegrees"] = "no"
        return replace(self, data=_frozen(data), in_degrees=False, header=header)


@dataclass(frozen=True, eq=False)
class C3DTrial:
    """A raw ``.c3d`` capture: markers (metres, lab frame as recorded) and analog channels as recorded."""

    markers: MarkerTrial
    analog_labels: tuple[str, ...]
    analog_units: tuple[str, ...]  # per channel, "" where the file declares none
    analog_rate_hz: float
    analogs: np.ndarray  # (N_analog, C), values as recorded (e.g. N, N.mm, V)
    force_plate_count: int
    force_plate_types: tuple[int, ...] = ()
    path: str = ""

    @property
    def analog_time_s(self) -> np.ndarray:
        t0 = float(self.markers.time_s[0]) if self.markers.n_frames else 0.0
        if self.analog_rate_hz <= 0:
            return np.zeros(self.analogs.shape[0])
        return t0 + np.arange(self.analogs.shape[0]) / self.analog_rate_hz

    def analog(self, label: str) -> np.ndarray:
        """One analog channel by label; KeyError lists close matches."""
        try:
            j = self.analog_labels.index(label)
        except ValueError:
            raise close_matches_error("analog channel", label, self.analog_labels, self.path) from None
        return self.analogs[:, j]


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def opensim_to_z_up(p: np.ndarray) -> np.ndarray:
    """Map points from OpenSim axes (x forward, y up, z right) to z-up (x forward, y left, z up).

    Works on any array whose last axis has length 3 (a proper rotation, NaN preserved):
    ``(x, y, z) -> (x, -z, y)``.
    """
    p = np.asarray(p, dtype=float)
    if p.shape[-1:] != (3,):
        raise ValueError(f"opensim_to_z_up expects a last axis of length 3, got shape {p.shape}")
    out = np.empty_like(p)
    out[..., 0] = p[..., 0]
    out[..., 1] = -p[..., 2]
    out[..., 2] = p[..., 1]
    return out


def _length_scale(units: str, path: str, key: str) -> float:
    try:
        return LENGTH_UNITS_TO_M[units.strip().lower()]
    except KeyError:
        raise ValueError(
            f"{path}: unsupported length unit in header key {key!r}: {units!r} (supported: mm, cm, m)"
        ) from None


def _read_lines(path: Path) -> list[str]:
    with open(path, "r", encoding="utf-8", errors="replace", newline=None) as fh:
        return fh.read().split("\n")


def _split_cells(line: str) -> list[str]:
    """Tab-separated when the line has tabs (keeps blank cells), else whitespace-separated."""
    return line.split("\t") if "\t" in line else line.split()


# --------------------------------------------------------------------------------------------------
# .trc
# --------------------------------------------------------------------------------------------------

_TRC_REQUIRED = ("DataRate", "NumFrames", "NumMarkers", "Units")


def read_trc(path: str | os.PathLike[str], *, zeros_as_missing: bool = True) -> MarkerTrial:
    """Read an OpenSim/Vicon ``.trc`` marker file (``PathFileType 4``).

    Layout: line 1 ``PathFileType 4 (X/Y/Z) name``; line 2 header keys (``DataRate``, ``CameraRate``,
    ``NumFrames``, ``NumMarkers``, ``Units``, ``OrigDataRate``, ...); line 3 their values; line 4
    ``Frame# Time name1 <blank> <blank> name2 ...``; line 5 ``X1 Y1 Z1 X2 ...``; then (after optional
    blank lines) one row per frame.

    Positions are converted to metres from ``Units`` (mm/cm/m, else ``ValueError`` naming the file,
    the key ``Units`` and its value).  Lab frames are kept as recorded (OpenSim: x forward, y up,
    z right; see :func:`opensim_to_z_up`).

    Missing markers: blank cells become NaN; rows shorter than the marker row are padded with NaN.
    With ``zeros_as_missing`` (default) samples that are exactly (0, 0, 0) also become NaN, because
    Motion Analysis/Cortex exports (the GC6 DM files) write gaps and unused markers as zeros; a real
    marker at the lab origin (e.g. a virtual ``Oglobal``) is lost that way, and the count is kept in
    ``zero_samples_masked``.

    Checks: ``NumMarkers`` against the marker-name row and the X/Y/Z row (``ValueError``: a wrong
    marker count shifts every column); ``NumFrames`` against the data rows (``LabFileWarning`` only,
    since trimmed exports often leave it stale); ``DataRate`` against the Time column (warning when
    they disagree by more than 1 %); non-numeric cells and non-increasing time (``ValueError`` with the
    line number).
    """
    p = Path(path)
    where = str(p)
    lines = _read_lines(p)
    if len(lines) < 5:
        raise ValueError(f"{where}: too short for a .trc file ({len(lines)} lines, need at least 5 header lines)")

    first = _split_cells(lines[0].rstrip())
    if not first or first[0].strip() != "PathFileType":
        raise ValueError(f"{where}: line 1 should start with 'PathFileType', found {lines[0][:40]!r}")
    if len(first) > 1 and first[1].strip() != "4":
        warnings.warn(
            LabFileWarning(f"{where}: PathFileType is {first[1].strip()!r}, expected '4'; reading it as 4"),
            stacklevel=2,
        )

    keys = [k.strip() for k in lines[1].rstrip("\r\n").split("\t")]
    vals = [v.strip() for v in lines[2].rstrip("\r\n").split("\t")]
    if "\t" not in lines[1]:
        keys, vals = lines[1].split(), lines[2].split()
    while keys and not keys[-1]:
        keys.pop()
    while vals and not vals[-1]:
        vals.pop()
    if len(keys) != len(vals):
        raise ValueError(
            f"{where}: line 2 has {len(keys)} header keys but line 3 has {len(vals)} values"
        )
    header = dict(zip(keys, vals))
    for k in _TRC_REQUIRED:
        if k not in header:
            raise ValueError(f"{where}: header key {k!r} missing (line 2 has {keys})")

    def _num(key: str, kind: type) -> Any:
        raw = header[key]
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{where}: header key {key!r} is not a number: {raw!r}") from None
        if kind is int:
            if value != int(value) or value < 0:
                raise ValueError(f"{where}: header key {key!r} is not a count: {raw!r}")
            return int(value)
        return value

    rate = _num("DataRate", float)
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"{where}: header key 'DataRate' must be positive, found {header['DataRate']!r}")
    declared_frames = _num("NumFrames", int)
    declared_markers = _num("NumMarkers", int)
    units = header["Units"]
    scale = _length_scale(units, where, "Units")

    name_cells = _split_cells(lines[3].rstrip("\r\n"))
    if len(name_cells) < 2 or name_cells[0].strip() != "Frame#":
        raise ValueError(f"{where}: line 4 should start with 'Frame#', found {lines[3][:40]!r}")
    names = tuple(c.strip() for c in name_cells[2:] if c.strip())
    if len(names) != declared_markers:
        raise ValueError(
            f"{where}: header key 'NumMarkers' declares {declared_markers} markers but line 4 names "
            f"{len(names)}"
        )
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{where}: line 4 names markers more than once: {dup}")
    coord_labels = [c.strip() for c in _split_cells(lines[4].rstrip("\r\n")) if c.strip()]
    if coord_labels and len(coord_labels) != 3 * len(names):
        raise ValueError(
            f"{where}: line 5 has {len(coord_labels)} coordinate labels (X1/Y1/Z1...), expected "
            f"3 x NumMarkers = {3 * len(names)}"
        )

    m = len(names)
    width = 2 + 3 * m
    frames: list[float] = []
    rows: list[list[float]] = []
    line_numbers: list[int] = []
    nan = float("nan")
    for idx in range(5, len(lines)):
        raw = lines[idx].rstrip("\r\n")
        if not raw.strip():
            continue
        lineno = idx + 1
        cells = raw.split("\t") if "\t" in raw else raw.split()
        if len(cells) > width:
            extra = [c for c in cells[width:] if c.strip()]
            if extra:
                raise ValueError(
                    f"{where}: line {lineno} has {len(cells)} cells, more than Frame# + Time + 3 x "
                    f"{m} markers = {width} (extra values {extra[:3]})"
                )
            cells = cells[:width]
        elif len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        try:
            row = [float(c) if c.strip() else nan for c in cells]
        except ValueError:
            for j, c in enumerate(cells):
                if not c.strip():
                    continue
                try:
                    float(c)
                except ValueError:
                    col = "Frame#" if j == 0 else "Time" if j == 1 else f"{names[(j - 2) // 3]}.{'XYZ'[(j - 2) % 3]}"
                    raise ValueError(
                        f"{where}: line {lineno}, column {col!r}: non-numeric value {c!r}"
                    ) from None
            raise  # pragma: no cover - float() failed on a cell that parses alone
        for j, col in ((0, "Frame#"), (1, "Time")):
            if math.isnan(row[j]):
                raise ValueError(f"{where}: line {lineno}, column {col!r}: blank value ''")
        frames.append(row[0])
        rows.append(row)
        line_numbers.append(lineno)

    n = len(rows)
    if n == 0:
        raise ValueError(f"{where}: no data rows after the 5 header lines")
    arr = np.asarray(rows, dtype=float).reshape(n, width)
    frame = arr[:, 0]
    if not np.all(frame == np.round(frame)):
        j = int(np.flatnonzero(frame != np.round(frame))[0])
        raise ValueError(f"{where}: line {line_numbers[j]}, column 'Frame#': not an integer: {frame[j]!r}")
    time_s = arr[:, 1]
    _check_increasing(time_s, line_numbers, where)

    if n != declared_frames:
        warnings.warn(
            LabFileWarning(
                f"{where}: header key 'NumFrames' declares {declared_frames} frames but the file has {n} data rows"
            ),
            stacklevel=2,
        )
    if n >= 3:
        implied = (n - 1) / float(time_s[-1] - time_s[0])
        if abs(implied - rate) > _RATE_RTOL * rate:
            warnings.warn(
                LabFileWarning(
                    f"{where}: header key 'DataRate' declares {rate:g} Hz but the Time column implies "
                    f"{implied:.6g} Hz"
                ),
                stacklevel=2,
            )

    pos = arr[:, 2:].reshape(n, m, 3)
    masked = 0
    if zeros_as_missing and m:
        zero = np.all(pos == 0.0, axis=2)
        masked = int(zero.sum())
        if masked:
            pos = pos.copy()
            pos[zero] = np.nan
    pos = pos * scale

    return MarkerTrial(
        time_s=_frozen(time_s.copy()),
        frame=_frozen(frame.astype(np.int64)),
        marker_names=names,
        positions_m=_frozen(pos),
        rate_hz=float(rate),
        source_units=units,
        path=where,
        header=header,
        zero_samples_masked=masked,
    )


def _check_increasing(time_s: np.ndarray, line_numbers: list[int], where: str) -> None:
    if time_s.size < 2:
        return
    bad = np.flatnonzero(~(np.diff(time_s) > 0))
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(
            f"{where}: line {line_numbers[i]} (data row {i + 1}): time {time_s[i]!r} does not increase "
            f"after {time_s[i - 1]!r} on line {line_numbers[i - 1]}; time must increase strictly"
        )


# --------------------------------------------------------------------------------------------------
# .mot / .sto
# --------------------------------------------------------------------------------------------------


def _parse_bool(raw: str, key: str, where: str) -> bool:
    v = raw.strip().lower()
    if v in ("yes", "true", "1"):
        return True
    if v in ("no", "false", "0"):
        return False
    raise ValueError(f"{where}: header key {key!r} should be yes or no, found {raw!r}")


def _read_storage(path: str | os.PathLike[str]) -> TimeSeriesTable:
    p = Path(path)
    where = str(p)
    lines = _read_lines(p)

    end = None
    for i, line in enumerate(lines):
        if line.strip().lower() == "endheader":
            end = i
            break
    if end is None:
        raise ValueError(f"{where}: no 'endheader' line; not an OpenSim storage (.mot/.sto) file")

    header: dict[str, str] = {}
    comments: list[str] = []
    name = p.stem
    for i, line in enumerate(lines[:end]):
        text = line.strip()
        if not text:
            continue
        if "=" in text:
            key, _, value = text.partition("=")
            header[key.strip()] = value.strip()
        elif i == 0:
            name = text
        else:
            comments.append(text)

    if end + 1 >= len(lines) or not lines[end + 1].strip():
        raise ValueError(f"{where}: line {end + 2}: expected the column labels after 'endheader'")
    label_line = lines[end + 1].rstrip()
    labels = [c.strip() for c in _split_cells(label_line)]
    while labels and not labels[-1]:
        labels.pop()
    if not labels or labels[0].lower() != "time":
        raise ValueError(f"{where}: line {end + 2}: first column label should be 'time', found {labels[:1]}")
    if any(not c for c in labels):
        raise ValueError(f"{where}: line {end + 2}: blank column label at position {labels.index('') + 1}")
    ncols = len(labels)

    if "nColumns" in header:
        try:
            declared_c = int(header["nColumns"])
        except ValueError:
            raise ValueError(f"{where}: header key 'nColumns' is not an integer: {header['nColumns']!r}") from None
        if declared_c != ncols:
            raise ValueError(
                f"{where}: header key 'nColumns' declares {declared_c} columns but line {end + 2} has "
                f"{ncols} labels (time included)"
            )

    body: list[str] = []
    line_numbers: list[int] = []
    for idx in range(end + 2, len(lines)):
        raw = lines[idx].rstrip("\r\n")
        if raw.strip():
            body.append(raw)
            line_numbers.append(idx + 1)

    arr: np.ndarray | None = None
    split = [r.split() for r in body]
    if all(len(r) == ncols for r in split):
        try:
            arr = np.array(split, dtype=float).reshape(len(body), ncols)
        except ValueError:
            arr = None
    if arr is None:
        arr = _slow_parse(body, line_numbers, labels, where)

    if "nRows" in header:
        try:
            declared_r = int(header["nRows"])
        except ValueError:
            raise ValueError(f"{where}: header key 'nRows' is not an integer: {header['nRows']!r}") from None
        if declared_r != arr.shape[0]:
            raise ValueError(
                f"{where}: header key 'nRows' declares {declared_r} rows but the file has {arr.shape[0]} data rows"
            )

    time_s = arr[:, 0].copy()
    if np.isnan(time_s).any():
        i = int(np.flatnonzero(np.isnan(time_s))[0])
        raise ValueError(f"{where}: line {line_numbers[i]}, column 'time': value is NaN")
    _check_increasing(time_s, line_numbers, where)

    in_degrees = _parse_bool(header["inDegrees"], "inDegrees", where) if "inDegrees" in header else None
    return TimeSeriesTable(
        name=name,
        time_s=_frozen(time_s),
        columns=tuple(labels[1:]),
        data=_frozen(arr[:, 1:]),
        in_degrees=in_degrees,
        header=header,
        path=where,
        comments=tuple(comments),
    )


def _slow_parse(body: list[str], line_numbers: list[int], labels: list[str], where: str) -> np.ndarray:
    """Cell-by-cell parse that reports the first bad cell precisely."""
    ncols = len(labels)
    out = np.empty((len(body), ncols), dtype=float)
    for r, (raw, lineno) in enumerate(zip(body, line_numbers)):
        cells = _split_cells(raw)
        if "\t" in raw:
            # tolerate trailing tabs/blank cells past the last column
            while len(cells) > ncols and not cells[-1].strip():
                cells.pop()
        if len(cells) != ncols:
            raise ValueError(
                f"{where}: line {lineno} has {len(cells)} cells but there are {ncols} column labels"
            )
        for j, c in enumerate(cells):
            try:
                out[r, j] = float(c)
            except ValueError:
                raise ValueError(
                    f"{where}: line {lineno}, column {labels[j]!r}: non-numeric value {c!r}"
                ) from None
    return out


def read_mot(path: str | os.PathLike[str]) -> TimeSeriesTable:
    """Read an OpenSim ``.mot`` storage file (version 1 header).

    Header lines up to ``endheader``: an optional title line (becomes ``name``), ``key=value`` lines
    (``version``, ``nRows``, ``nColumns`` (time included), ``inDegrees=yes|no``) and free text (kept in
    ``comments``); then a tab-separated label row starting with ``time`` and numeric rows.

    ``ValueError`` (naming the file) when ``nRows``/``nColumns`` disagree with the data (key, declared,
    found), for a non-numeric cell (line number, column name, value), or when time does not increase
    strictly (first offending line).  Files without ``nRows``/``nColumns`` are accepted.
    Values are returned as written; see :meth:`TimeSeriesTable.to_radians`.
    """
    return _read_storage(path)


def read_sto(path: str | os.PathLike[str]) -> TimeSeriesTable:
    """Read an OpenSim ``.sto`` storage file: old version-1 layout (as :func:`read_mot`) or OpenSim 4
    (``version=3``, ``OpenSimVersion=...``, ``DataType=double``, no title line, ``nRows``/``nColumns``
    possibly absent; ``in_degrees`` is then ``None``).  Same checks as :func:`read_mot`.
    """
    return _read_storage(path)


# --------------------------------------------------------------------------------------------------
# .c3d (optional, ezc3d)
# --------------------------------------------------------------------------------------------------


def _param(params: Mapping[str, Any], group: str, name: str, default: Any = None) -> Any:
    try:
        return params[group][name]["value"]
    except (KeyError, TypeError):
        return default


def read_c3d(path: str | os.PathLike[str], *, zeros_as_missing: bool = True) -> C3DTrial:
    """Read a ``.c3d`` capture with the optional package ``ezc3d``.

    Markers are converted to metres from ``POINT:UNITS`` (mm/cm/m, else ``ValueError``), samples that
    ezc3d flags invalid are NaN, and with ``zeros_as_missing`` exact (0, 0, 0) samples too (as in
    :func:`read_trc`).  The lab frame is kept as recorded (often z up in a raw capture).  ``frame`` is
    the 1-based c3d frame number and ``time_s = (frame - 1) / rate`` (time since capture start).
    Analog channels keep their recorded values (ezc3d applies the SCALE/OFFSET parameters) and units.

    Raises :class:`OptionalDependencyError` (an ``ImportError``) when ezc3d is not installed.
    """
    p = Path(path)
    where = str(p)
    try:
        import ezc3d  # type: ignore[import-not-found]
    except ImportError as exc:
        raise OptionalDependencyError(
            f"{where}: reading .c3d files needs the optional package 'ezc3d' "
            "(pip install ezc3d, or install this project's 'models' extra); .trc/.mot/.sto need nothing extra"
        ) from exc
    if not p.is_file():
        raise FileNotFoundError(where)

    c = ezc3d.c3d(where)
    params = c["parameters"]
    hdr = c["header"]

    units_v = _param(params, "POINT", "UNITS", None)
    if units_v is None or len(units_v) == 0:
        raise ValueError(f"{where}: header key 'POINT:UNITS' missing")
    units = str(units_v[0]).strip()
    scale = _length_scale(units, where, "POINT:UNITS")

    points = np.asarray(c["data"]["points"], dtype=float)  # (4, M, N)
    m, n = points.shape[1], points.shape[2]
    labels = [str(s).strip() for s in (_param(params, "POINT", "LABELS", []) or [])]
    k = 2
    while len(labels) < m and _param(params, "POINT", f"LABELS{k}") is not None:
        labels += [str(s).strip() for s in _param(params, "POINT", f"LABELS{k}")]
        k += 1
    if len(labels) < m:
        raise ValueError(f"{where}: header key 'POINT:LABELS' names {len(labels)} points but the data has {m}")
    labels = labels[:m]

    rate_v = _param(params, "POINT", "RATE", None)
    rate = float(rate_v[0]) if rate_v is not None and len(rate_v) else float(hdr["points"]["frame_rate"])
    first = int(hdr["points"]["first_frame"]) + 1

    pos = np.transpose(points[:3], (2, 1, 0)).copy()  # (N, M, 3)
    masked = 0
    if zeros_as_missing and m:
        zero = np.all(pos == 0.0, axis=2)
        masked = int(zero.sum())
        pos[zero] = np.nan
    pos *= scale
    frame = first + np.arange(n, dtype=np.int64)
    time_s = (frame - 1) / rate if rate > 0 else np.zeros(n)

    header = {"POINT:UNITS": units, "POINT:RATE": f"{rate:g}", "first_frame": str(first)}
    markers = MarkerTrial(
        time_s=_frozen(time_s.astype(float)),
        frame=_frozen(frame),
        marker_names=tuple(labels),
        positions_m=_frozen(pos),
        rate_hz=rate,
        source_units=units,
        path=where,
        header=header,
        zero_samples_masked=masked,
    )

    analogs = np.asarray(c["data"]["analogs"], dtype=float)  # (1, C, Na)
    n_ch = analogs.shape[1] if analogs.ndim == 3 else 0
    analog_2d = analogs[0].T.copy() if n_ch else np.zeros((0, 0))
    a_labels = [str(s).strip() for s in (_param(params, "ANALOG", "LABELS", []) or [])][:n_ch]
    a_labels += [f"analog_{i + 1}" for i in range(len(a_labels), n_ch)]
    a_units = [str(s).strip() for s in (_param(params, "ANALOG", "UNITS", []) or [])][:n_ch]
    a_units += [""] * (n_ch - len(a_units))
    a_rate_v = _param(params, "ANALOG", "RATE", None)
    a_rate = float(a_rate_v[0]) if a_rate_v is not None and len(a_rate_v) else float(hdr["analogs"]["frame_rate"])
    used = _param(params, "FORCE_PLATFORM", "USED", None)
    fp_count = int(used[0]) if used is not None and len(used) else 0
    types = _param(params, "FORCE_PLATFORM", "TYPE", None)
    fp_types = tuple(int(t) for t in types[:fp_count]) if types is not None else ()

    return C3DTrial(
        markers=markers,
        analog_labels=tuple(a_labels),
        analog_units=tuple(a_units),
        analog_rate_hz=a_rate,
        analogs=_frozen(analog_2d),
        force_plate_count=fp_count,
        force_plate_types=fp_types,
        path=where,
    )


# --------------------------------------------------------------------------------------------------
# dispatch and summary
# --------------------------------------------------------------------------------------------------

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
