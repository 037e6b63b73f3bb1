"""OpenSim storage files (``.mot``, ``.sto``; version 1 and OpenSim 4 headers) -> :class:`~models.io.time_series
.TimeSeriesTable`.

Values are returned as written (see :meth:`~models.io.time_series.TimeSeriesTable.to_radians`).  Pure computation:
the standard library and numpy.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from models.io.reader_support import check_increasing, frozen, read_lines, split_cells
from models.io.time_series import TimeSeriesTable

__all__ = ["read_mot", "read_sto"]


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
    lines = read_lines(p)
    end = _endheader_line(lines, where)
    name, header, comments = _header(lines, end, p.stem)
    labels = _column_labels(lines, end, header, where)
    body, line_numbers = _body(lines, end)
    arr = _parse_body(body, line_numbers, labels, where)
    _check_declared_count(header, "nRows", arr.shape[0], f"the file has {arr.shape[0]} data rows", "rows", where)

    time_s = arr[:, 0].copy()
    if np.isnan(time_s).any():
        i = int(np.flatnonzero(np.isnan(time_s))[0])
        raise ValueError(f"{where}: line {line_numbers[i]}, column 'time': value is NaN")
    check_increasing(time_s, line_numbers, where)

    in_degrees = _parse_bool(header["inDegrees"], "inDegrees", where) if "inDegrees" in header else None
    return TimeSeriesTable(
        name=name,
        time_s=frozen(time_s),
        columns=tuple(labels[1:]),
        data=frozen(arr[:, 1:]),
        in_degrees=in_degrees,
        header=header,
        path=where,
        comments=tuple(comments),
    )


def _endheader_line(lines: list[str], where: str) -> int:
    """Index of the ``endheader`` line; ValueError when there is none."""
    for i, line in enumerate(lines):
        if line.strip().lower() == "endheader":
            return i
    raise ValueError(f"{where}: no 'endheader' line; not an OpenSim storage (.mot/.sto) file")


def _header(lines: list[str], end: int, default_name: str) -> tuple[str, dict[str, str], list[str]]:
    """The title (first line without ``=``, else ``default_name``), ``key=value`` lines and free-text comments."""
    header: dict[str, str] = {}
    comments: list[str] = []
    name = default_name
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
    return name, header, comments


def _column_labels(lines: list[str], end: int, header: dict[str, str], where: str) -> list[str]:
    """The label line after ``endheader`` (``time`` first, none blank), checked against ``nColumns``."""
    if end + 1 >= len(lines) or not lines[end + 1].strip():
        raise ValueError(f"{where}: line {end + 2}: expected the column labels after 'endheader'")
    label_line = lines[end + 1].rstrip()
    labels = [c.strip() for c in split_cells(label_line)]
    while labels and not labels[-1]:
        labels.pop()
    if not labels or labels[0].lower() != "time":
        raise ValueError(f"{where}: line {end + 2}: first column label should be 'time', found {labels[:1]}")
    if any(not c for c in labels):
        raise ValueError(f"{where}: line {end + 2}: blank column label at position {labels.index('') + 1}")
    _check_declared_count(header, "nColumns", len(labels), f"line {end + 2} has {len(labels)} labels (time included)",
                          "columns", where)
    return labels


def _check_declared_count(header: dict[str, str], key: str, found: int, found_text: str, what: str,
                          where: str) -> None:
    """ValueError when the header's ``key`` (``nRows``/``nColumns``) is not an integer or is not ``found``."""
    if key not in header:
        return
    try:
        declared = int(header[key])
    except ValueError:
        raise ValueError(f"{where}: header key {key!r} is not an integer: {header[key]!r}") from None
    if declared != found:
        raise ValueError(f"{where}: header key {key!r} declares {declared} {what} but {found_text}")


def _body(lines: list[str], end: int) -> tuple[list[str], list[int]]:
    """The non-blank data lines after the labels, and their 1-based line numbers."""
    body: list[str] = []
    line_numbers: list[int] = []
    for idx in range(end + 2, len(lines)):
        raw = lines[idx].rstrip("\r\n")
        if raw.strip():
            body.append(raw)
            line_numbers.append(idx + 1)
    return body, line_numbers


def _parse_body(body: list[str], line_numbers: list[int], labels: list[str], where: str) -> np.ndarray:
    """(rows, columns) floats: one numpy conversion when every row splits cleanly, else cell by cell."""
    ncols = len(labels)
    arr: np.ndarray | None = None
    split = [r.split() for r in body]
    if all(len(r) == ncols for r in split):
        try:
            arr = np.array(split, dtype=float).reshape(len(body), ncols)
        except ValueError:
            arr = None
    if arr is None:
        arr = _slow_parse(body, line_numbers, labels, where)
    return arr


def _slow_parse(body: list[str], line_numbers: list[int], labels: list[str], where: str) -> np.ndarray:
    """Cell-by-cell parse that reports the first bad cell precisely."""
    ncols = len(labels)
    out = np.empty((len(body), ncols), dtype=float)
    for r, (raw, lineno) in enumerate(zip(body, line_numbers)):
        cells = split_cells(raw)
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
