"""Inverse kinematics from BlazePose's 33 landmarks (world frame, z up, metres) onto a leg model.

Glue between a landmark trajectory and :class:`models.kinematics.inverse_kinematics.InverseKinematics`
(damped Gauss-Newton, MuJoCo Jacobians, joint limits, warm start, per-frame residual): the
landmarks are turned into a z-up :class:`~models.io.lab_files.MarkerTrial` named after BlazePose,
low-visibility landmarks are set missing (NaN), and the marker set of
:mod:`models.body.landmark_markerset` places them on the model.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from models.kinematics.ik_types import IKParams, IKTrial
from models.kinematics.inverse_kinematics import InverseKinematics
from models.io.marker_trial import MarkerTrial
from models.body.landmark_markerset import blazepose_markerset, landmark_ik_params
from models.body.blazepose import BLAZEPOSE_33
from models.body.markerset import MarkerSet

__all__ = ["BLAZEPOSE_33", "landmark_trial", "solve_landmark_ik"]

def landmark_trial(time_s: np.ndarray, landmarks_m: np.ndarray, visibility: np.ndarray | None = None, *,
                   min_visibility: float = 0.5, source: str = "landmarks") -> MarkerTrial:
    """(N, 33, 3) world landmarks (z up, m) -> a :class:`MarkerTrial` (NaN where ``visibility`` < ``min_visibility``)."""
    t = np.asarray(time_s, dtype=float).reshape(-1)
    p = np.array(landmarks_m, dtype=float)
    if p.ndim != 3 or p.shape[1:] != (33, 3):
        raise ValueError(f"landmarks_m must have shape (frames, 33, 3), got {p.shape}")
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"time_s has {t.shape[0]} samples for {p.shape[0]} landmark frames")
    if t.size >= 2 and not np.all(np.diff(t) > 0):
        raise ValueError("time_s must be strictly increasing")
    if not 0.0 <= min_visibility <= 1.0:
        raise ValueError(f"min_visibility must lie in 0..1, got {min_visibility!r}")
    if visibility is not None:
        v = np.asarray(visibility, dtype=float)
        if v.shape != p.shape[:2]:
            raise ValueError(f"visibility must have shape {p.shape[:2]}, got {v.shape}")
        p[~(v >= min_visibility)] = np.nan
    rate = float((t.size - 1) / (t[-1] - t[0])) if t.size >= 2 else 0.0
    return MarkerTrial(time_s=t, frame=np.arange(1, t.size + 1), marker_names=BLAZEPOSE_33, positions_m=p,
                       rate_hz=rate, source_units="m", path=source)


def solve_landmark_ik(model: Any, time_s: np.ndarray, landmarks_m: np.ndarray, visibility: np.ndarray | None = None,
                      *, markerset: MarkerSet | None = None, params: IKParams | None = None,
                      min_visibility: float = 0.5) -> IKTrial:
    """IK of a landmark trajectory ``(N, 33, 3)`` (world, z up, m) on ``model``; returns the :class:`IKTrial`
    (coordinates in rad/m named by ``coordinate_names``, per-frame residual, status flags)."""
    mset = markerset if markerset is not None else blazepose_markerset(model)
    if params is None:
        params = landmark_ik_params()
    names = set(mset.names)
    if set(params.marker_weights) - names:
        import dataclasses

        params = dataclasses.replace(params, marker_weights={k: v for k, v in params.marker_weights.items() if k in names})
    trial = landmark_trial(time_s, landmarks_m, visibility, min_visibility=min_visibility)
    return InverseKinematics(model, mset, params).run(trial, source_frame="z_up")

