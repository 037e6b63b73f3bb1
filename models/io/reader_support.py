"""What every lab-file reader shares: its warning and error types, close-match lookups, length units, text lines.

Errors name the file plus the header key (declared and found values) or the line number, column and offending
value (see :mod:`models.io.lab_files`).  Pure computation: the standard library and numpy.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

__all__ = [
    "LabFileWarning",
    "OptionalDependencyError",
    "LENGTH_UNITS_TO_M",
    "close_matches_error",
    "frozen",
    "length_scale",
    "read_lines",
    "split_cells",
    "check_increasing",
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


class LabFileWarning(UserWarning):
    """A lab file is readable but something in it disagrees with its header."""


class OptionalDependencyError(ImportError):
    """An optional third-party package needed for one file format is not installed."""


def frozen(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous read-only array."""
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


def length_scale(units: str, path: str, key: str) -> float:
    """Factor from the declared length unit (header ``key`` of ``path``) to metres; ValueError for others."""
    try:
        return LENGTH_UNITS_TO_M[units.strip().lower()]
    except KeyError:
        raise ValueError(
            f"{path}: unsupported length unit in header key {key!r}: {units!r} (supported: mm, cm, m)"
        ) from None


def read_lines(path: Path) -> list[str]:
    """The file's lines (UTF-8, undecodable bytes replaced, any newline convention)."""
    with open(path, "r", encoding="utf-8", errors="replace", newline=None) as fh:
        return fh.read().split("\n")


def split_cells(line: str) -> list[str]:
    """Tab-separated when the line has tabs (keeps blank cells), else whitespace-separated."""
    return line.split("\t") if "\t" in line else line.split()


def check_increasing(time_s: np.ndarray, line_numbers: list[int], where: str) -> None:
    """ValueError naming the first line whose time (s) does not increase strictly."""
    if time_s.size < 2:
        return
    bad = np.flatnonzero(~(np.diff(time_s) > 0))
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(
            f"{where}: line {line_numbers[i]} (data row {i + 1}): time {time_s[i]!r} does not increase "
            f"after {time_s[i - 1]!r} on line {line_numbers[i - 1]}; time must increase strictly"
        )
