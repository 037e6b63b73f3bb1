"""External loads for inverse dynamics: one body's wrench for a frame or over a trial (world frame, z up; N, m, N m).

Pure computation: numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ExternalWrench", "ExternalWrenchTrial"]


@dataclass(frozen=True, slots=True)
class ExternalWrench:
    """One external load on one body for one frame; all vectors in the world frame (z up).

    ``force_n`` (3,) N; ``point_m`` (3,) m, the point on the line of action (the centre of pressure for a foot);
    ``free_moment_nm`` (3,) N m, the couple on top of the force (a force plate's free moment is vertical).
    The arrays may be updated in place frame after frame (the object is frozen, its arrays are not).  A wrench
    whose force and moment are both exactly zero is skipped (so ``point_m`` may be NaN while unloaded).
    """

    body: str
    force_n: np.ndarray
    point_m: np.ndarray
    free_moment_nm: np.ndarray

    @staticmethod
    def zeros(body: str) -> "ExternalWrench":
        return ExternalWrench(body, np.zeros(3), np.zeros(3), np.zeros(3))


@dataclass(frozen=True, eq=False)
class ExternalWrenchTrial:
    """External load on one body over a trial: ``force_n``, ``point_m``, ``free_moment_nm`` are (N, 3), world frame."""

    body: str
    force_n: np.ndarray
    point_m: np.ndarray
    free_moment_nm: np.ndarray
    time_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = np.shape(self.force_n)[0] if np.ndim(self.force_n) == 2 else -1
        for k in ("force_n", "point_m", "free_moment_nm"):
            a = getattr(self, k)
            if np.ndim(a) != 2 or np.shape(a) != (n, 3):
                raise ValueError(f"ExternalWrenchTrial({self.body!r}).{k} must be (N, 3) like force_n, "
                                 f"got {np.shape(a)}")

    @property
    def n_frames(self) -> int:
        return int(self.force_n.shape[0])

    def moment_about_origin_nm(self) -> np.ndarray:
        """(N, 3) moment of the load about the world origin: ``p x F + T`` (unloaded frames give 0)."""
        p = np.where(np.isnan(self.point_m), 0.0, self.point_m)
        return np.cross(p, self.force_n) + self.free_moment_nm
