"""OpenSim/Vicon ``.trc`` marker files (``PathFileType 4``) -> :class:`~models.io.marker_trial.MarkerTrial`.

Positions in metres (from the declared ``Units``), lab frame kept as recorded (OpenSim: x forward, y up, z right).
Pure computation: the standard library and numpy.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from models.io.marker_trial import MarkerTrial
from models.io.reader_support import (LabFileWarning, check_increasing, frozen, length_scale, read_lines,
                                      split_cells)

__all__ = ["read_trc"]

_TRC_REQUIRED = ("DataRate", "NumFrames", "NumMarkers", "Units")

#: Relative tolerance between a ``.trc`` ``DataRate`` and the rate implied by its Time column.
_RATE_RTOL = 0.01


def read_trc(path: str | os.PathLike[str], *, zeros_as_missing: bool = True) -> MarkerTrial:
    """Read an OpenSim/Vicon ``.trc`` marker file (``PathFileType 4``).

    Layout: line 1 ``PathFileType 4 (X/Y/Z) name``; line 2 header keys (``DataRate``, ``CameraRate``,
    ``NumFrames``, ``NumMarkers``, ``Units``, ``OrigDataRate``, ...); line 3 their values; line 4
    ``Frame# Time name1 <blank> <blank> name2 ...``; line 5 ``X1 Y1 Z1 X2 ...``; then (after optional
    blank lines) one row per frame.

    Positions are converted to metres from ``Units`` (mm/cm/m, else ``ValueError`` naming the file,
    the key ``Units`` and its value).  Lab frames are kept as recorded (OpenSim: x forward, y up,
    z right; see :func:`models.io.axes.opensim_to_z_up`).

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
    lines = read_lines(p)
    if len(lines) < 5:
        raise ValueError(f"{where}: too short for a .trc file ({len(lines)} lines, need at least 5 header lines)")
    header = _header(lines, where)
    rate = _header_number(header, "DataRate", float, where)
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"{where}: header key 'DataRate' must be positive, found {header['DataRate']!r}")
    declared_frames = _header_number(header, "NumFrames", int, where)
    declared_markers = _header_number(header, "NumMarkers", int, where)
    units = header["Units"]
    scale = length_scale(units, where, "Units")
    names = _marker_names(lines, declared_markers, where)

    m = len(names)
    width = 2 + 3 * m
    arr, line_numbers = _data_block(lines, names, width, where)
    n = arr.shape[0]
    if n == 0:
        raise ValueError(f"{where}: no data rows after the 5 header lines")
    frame = arr[:, 0]
    if not np.all(frame == np.round(frame)):
        j = int(np.flatnonzero(frame != np.round(frame))[0])
        raise ValueError(f"{where}: line {line_numbers[j]}, column 'Frame#': not an integer: {frame[j]!r}")
    time_s = arr[:, 1]
    check_increasing(time_s, line_numbers, where)
    _check_counts_and_rate(n, declared_frames, time_s, rate, where)

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
        time_s=frozen(time_s.copy()),
        frame=frozen(frame.astype(np.int64)),
        marker_names=names,
        positions_m=frozen(pos),
        rate_hz=float(rate),
        source_units=units,
        path=where,
        header=header,
        zero_samples_masked=masked,
    )


def _header(lines: list[str], where: str) -> dict[str, str]:
    """Lines 1-3: the ``PathFileType`` line, then the header keys and their values (the required ones checked)."""
    first = split_cells(lines[0].rstrip())
    if not first or first[0].strip() != "PathFileType":
        raise ValueError(f"{where}: line 1 should start with 'PathFileType', found {lines[0][:40]!r}")
    if len(first) > 1 and first[1].strip() != "4":
        warnings.warn(
            LabFileWarning(f"{where}: PathFileType is {first[1].strip()!r}, expected '4'; reading it as 4"),
            stacklevel=3,
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
    return header


def _header_number(header: dict[str, str], key: str, kind: type, where: str) -> Any:
    """The header value of ``key`` as a float, or (``kind is int``) as a non-negative count."""
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


def _marker_names(lines: list[str], declared_markers: int, where: str) -> tuple[str, ...]:
    """Line 4's marker names, checked against ``NumMarkers`` (and for duplicates) and against line 5's X/Y/Z."""
    name_cells = split_cells(lines[3].rstrip("\r\n"))
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
    coord_labels = [c.strip() for c in split_cells(lines[4].rstrip("\r\n")) if c.strip()]
    if coord_labels and len(coord_labels) != 3 * len(names):
        raise ValueError(
            f"{where}: line 5 has {len(coord_labels)} coordinate labels (X1/Y1/Z1...), expected "
            f"3 x NumMarkers = {3 * len(names)}"
        )
    return names


def _data_block(lines: list[str], names: tuple[str, ...], width: int, where: str) -> tuple[np.ndarray, list[int]]:
    """The numeric rows after line 5 (blank lines skipped) as an (n, ``width``) array, and their 1-based line
    numbers.  Rows with ``width`` non-blank cells (trailing tabs dropped) are parsed together (``np.loadtxt``);
    the others (gaps, short or long rows) and every row of a block with a bad value go one by one through
    :func:`_parse_row`, which pads, checks and names the line and column of a bad cell."""
    numbered = [(idx + 1, lines[idx].rstrip("\r\n")) for idx in range(5, len(lines)) if lines[idx].strip()]
    line_numbers = [k for k, _ in numbered]
    arr = np.full((len(numbered), width), np.nan)
    tabs = sum("\t" in raw for _, raw in numbered)
    clean: list[int] = []
    block: list[str] = []
    if tabs in (0, len(numbered)):
        for i, (_, raw) in enumerate(numbered):
            # trailing tabs (Cortex ends every row with one) are blank cells past the last value
            r = raw.rstrip("\t") if tabs else raw
            if (r.count("\t") == width - 1 and "\t\t" not in r and r[:1] != "\t") if tabs else len(r.split()) == width:
                clean.append(i)
                block.append(r)
    if block:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                vals = np.loadtxt(block, dtype=float, delimiter="\t" if tabs else None, comments=None, ndmin=2)
        except (ValueError, Warning):        # a non-numeric or blank-looking cell: the row path names it
            clean = []
        else:
            if vals.shape != (len(block), width) or np.isnan(vals[:, :2]).any():
                clean = []
            else:
                arr[clean] = vals
    rest = np.ones(len(numbered), dtype=bool)
    rest[clean] = False
    for i in np.flatnonzero(rest):
        lineno, raw = numbered[i]
        arr[i] = _parse_row(raw, lineno, names, width, where)
    return arr, line_numbers


def _parse_row(raw: str, lineno: int, names: tuple[str, ...], width: int, where: str) -> list[float]:
    """One data line -> ``width`` floats (blank cells NaN); ValueError naming the line and column of a bad cell."""
    m = len(names)
    nan = float("nan")
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
    return row


def _check_counts_and_rate(n: int, declared_frames: int, time_s: np.ndarray, rate: float, where: str) -> None:
    """Warn (:class:`LabFileWarning`) when ``NumFrames`` or ``DataRate`` (Hz) disagree with the data rows."""
    if n != declared_frames:
        warnings.warn(
            LabFileWarning(
                f"{where}: header key 'NumFrames' declares {declared_frames} frames but the file has {n} data rows"
            ),
            stacklevel=3,
        )
    if n >= 3:
        implied = (n - 1) / float(time_s[-1] - time_s[0])
        if abs(implied - rate) > _RATE_RTOL * rate:
            warnings.warn(
                LabFileWarning(
                    f"{where}: header key 'DataRate' declares {rate:g} Hz but the Time column implies "
                    f"{implied:.6g} Hz"
                ),
                stacklevel=3,
            )
