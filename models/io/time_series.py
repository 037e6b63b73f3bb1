"""An OpenSim storage table (``.mot`` / ``.sto``, read by :mod:`models.io.storage`) and its angle-column heuristic.

Values as written; :meth:`TimeSeriesTable.to_radians` converts the angle columns.  Pure numpy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable

import numpy as np

from models.io.reader_support import close_matches_error, frozen

__all__ = ["TimeSeriesTable", "is_rotational_column"]


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
        return replace(self, data=frozen(data), in_degrees=False, header=header)
