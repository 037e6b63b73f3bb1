"""Force plates of an OpenSim ``.mot`` (y up) -> :class:`~models.dynamics.wrenches.ExternalWrenchTrial` (z up).

Units: N, m, N m; the CoP recomputed on the plate plane.  Pure computation: numpy and other ``models/`` modules.
"""

from __future__ import annotations

import numpy as np

from models.dynamics.wrenches import ExternalWrenchTrial
from models.filters import smooth_derivatives
from models.io.axes import opensim_to_z_up
from models.io.time_series import TimeSeriesTable

__all__ = ["external_wrench_from_opensim_grf"]


def _columns(table: TimeSeriesTable, identifier: str) -> np.ndarray:
    cols = []
    for axis in "xyz":
        for cand in (f"{identifier}{axis}", f"{identifier}_{axis}"):
            if cand in table.columns:
                cols.append(table.column(cand))
                break
        else:
            table.column(f"{identifier}{axis}")  # KeyError with close matches
    return np.stack(cols, axis=1)


def external_wrench_from_opensim_grf(
    table: TimeSeriesTable,
    body: str,
    *,
    force_identifier: str = "1_ground_force_v",
    point_identifier: str = "1_ground_force_p",
    torque_identifier: str = "1_ground_torque",
    time_s: np.ndarray | None = None,
    cutoff_hz: float | None = None,
    threshold_n: float = 20.0,
) -> ExternalWrenchTrial:
    """One force plate of an OpenSim ``.mot`` (identifiers as in an ``ExternalForce`` of the ExternalLoads XML) ->
    :class:`ExternalWrenchTrial` in the z-up world.

    1. Force ``F``, CoP ``p`` and free moment ``T`` are rotated from OpenSim's y-up ground to z up.
    2. The plate wrench is carried as ``F`` and its moment about the origin ``M = p x F + T`` (well defined also
       where the CoP is not), optionally low-passed with zero lag at ``cutoff_hz`` (``filtfilt``, same design as the
       kinematics, as Kristianslund et al. 2012, J Biomech 45:666, recommend for joint moments), and linearly
       interpolated at ``time_s`` (default: the table's own times).
    3. The CoP is recomputed on the plate plane ``z = h`` (``h``: median CoP height while loaded):
       ``px = (h Fx - My) / Fz``, ``py = (Mx + h Fy) / Fz``; the free moment keeps its vertical part
       ``Tz = Mz - (px Fy - py Fx)``.
    4. Where ``Fz < threshold_n`` the load is set to zero and the point to NaN (unloaded; skipped by the stage).
    """
    t_src = np.asarray(table.time_s, dtype=float)
    F = opensim_to_z_up(_columns(table, force_identifier))
    P = opensim_to_z_up(_columns(table, point_identifier))
    T = opensim_to_z_up(_columns(table, torque_identifier))
    loaded_src = F[:, 2] >= threshold_n
    h = float(np.median(P[loaded_src, 2])) if loaded_src.any() else 0.0
    M = np.cross(np.where(np.isfinite(P), P, 0.0), F) + T
    W = np.hstack([F, M])
    if cutoff_hz is not None:
        rate = (t_src.size - 1) / (t_src[-1] - t_src[0])
        W = smooth_derivatives(W, rate, cutoff_hz=cutoff_hz).position
    t = t_src if time_s is None else np.asarray(time_s, dtype=float)
    Wi = np.stack([np.interp(t, t_src, W[:, j]) for j in range(6)], axis=1)
    F, M = Wi[:, :3], Wi[:, 3:]
    loaded = F[:, 2] >= threshold_n
    point = np.full_like(F, np.nan)
    free = np.zeros_like(F)
    fz = np.where(loaded, F[:, 2], 1.0)
    point[:, 0] = (h * F[:, 0] - M[:, 1]) / fz
    point[:, 1] = (M[:, 0] + h * F[:, 1]) / fz
    point[:, 2] = h
    free[:, 2] = M[:, 2] - (point[:, 0] * F[:, 1] - point[:, 1] * F[:, 0])
    F = np.where(loaded[:, None], F, 0.0)
    free = np.where(loaded[:, None], free, 0.0)
    point = np.where(loaded[:, None], point, np.nan)
    return ExternalWrenchTrial(body=body, force_n=F, point_m=point, free_moment_nm=free, time_s=t)
