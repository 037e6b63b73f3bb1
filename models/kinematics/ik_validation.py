"""IK against a reference: RMSE (deg) of angular coordinates against an OpenSim IK ``.mot`` table.

Pure computation: numpy.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from models.kinematics.ik_types import IKTrial

__all__ = ["rmse_against_reference"]


def rmse_against_reference(trial: IKTrial, reference: Any, coordinates: Sequence[str]) -> dict[str, float]:
    """RMSE, in degrees, of angular ``coordinates`` of ``trial`` against a reference table in degrees
    (a :class:`~models.io.time_series.TimeSeriesTable` from an OpenSim IK ``.mot``: ``time_s``, ``column()``),
    interpolated onto the trial's time; frames where either is NaN are skipped."""
    if getattr(reference, "in_degrees", True) is False:
        raise ValueError("reference table is in radians; pass the .mot as read (degrees)")
    out: dict[str, float] = {}
    for c in coordinates:
        ours = trial.coordinate_deg(c)
        ref = np.interp(trial.time_s, reference.time_s, reference.column(c))
        ok = np.isfinite(ours) & np.isfinite(ref)
        out[c] = float(np.sqrt(np.mean((ours[ok] - ref[ok]) ** 2))) if ok.any() else math.nan
    return out
