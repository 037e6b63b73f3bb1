"""Marker trajectories of one trial (what :func:`models.io.trc.read_trc` and :func:`models.io.c3d.read_c3d` return).

Positions in metres, lab frame as recorded (OpenSim ``.trc``: x forward, y up, z right; see
:func:`models.io.axes.opensim_to_z_up`).  Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from models.io.reader_support import close_matches_error

__all__ = ["MarkerTrial"]


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
