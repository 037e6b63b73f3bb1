"""Inputs and outputs of the ground reaction estimate: coordinates in (a trial, a frame), forces and CoPs out.

World frame, z up, SI units; every ``(..., 2, ...)`` axis is ordered like :data:`models.grf.contact.FEET`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.grf.contact import FEET

__all__ = ["CoordinatesFrame", "CoordinatesTrial", "GroundReactionFrame", "GroundReactionTrial", "TrialArrays"]


@dataclass(frozen=True, eq=False)
class CoordinatesTrial:
    """Generalised coordinates of the model over a trial (the input of :meth:`GroundReactionEstimator.run`).

    ``time_s`` (N,) uniformly sampled; ``qpos`` (N, nq) in the model's world frame (z up; free root position m and
    quaternion w, x, y, z; hinges rad); ``lumbar_rad`` (N, 3) or None: Rajagopal ``lumbar_extension``,
    ``lumbar_bending``, ``lumbar_rotation`` (rad), which MyoLeg lacks.  NaN rows mark missing frames.
    Any object with ``time_s`` and ``qpos`` (e.g. ``models.kinematics.inverse_kinematics.IKTrial``) is accepted by
    ``run``.
    """

    time_s: np.ndarray
    qpos: np.ndarray
    lumbar_rad: np.ndarray | None = None
    source: str = ""

    @property
    def n_frames(self) -> int:
        return int(self.time_s.shape[0])


@dataclass(eq=False)
class CoordinatesFrame:
    """One frame for :meth:`GroundReactionEstimator.step`: ``qpos`` (nq,), optional ``lumbar_rad`` (3,), ``t_s``.
    Any object with ``qpos`` works (``models.kinematics.inverse_kinematics.IKFrame``)."""

    qpos: np.ndarray
    lumbar_rad: np.ndarray | None = None
    t_s: float = math.nan


@dataclass(eq=False)
class GroundReactionFrame:
    """Output of :meth:`GroundReactionEstimator.step` (preallocate with :meth:`GroundReactionEstimator.new_frame`).

    World frame, SI.  ``force_n`` (2, 3) per foot (``FEET``), ``cop_m`` (2, 3) on the floor, ``free_moment_nm`` (2,)
    about the vertical, ``share`` (2,) of F_ext per foot, ``contact`` (2,) bool, ``contact_likelihood`` (2,),
    ``total_force_n`` (3,) = m (a_com - g), ``com_m`` (3,), ``com_acc_m_s2`` (3,), ``ang_mom_rate_nm`` (3,) dL/dt about
    the COM, ``residual_force_n`` (3,) = sum of the feet's forces - F_ext (N), ``residual_moment_nm`` (3,) = their
    moment about the COM (with the free moments) - dL/dt (N m): the dynamic residual, what the (feasible) contact
    forces could not explain (rule split: zero force residual).  ``share`` is the rule-based load share (the
    feasible fit's prior).  ``valid`` False for a NaN frame
    (outputs held from the previous frame), ``t_s`` the frame's time (NaN if the frame had none), ``index`` frames
    since reset.
    """

    force_n: np.ndarray
    cop_m: np.ndarray
    free_moment_nm: np.ndarray
    share: np.ndarray
    contact: np.ndarray
    contact_likelihood: np.ndarray
    total_force_n: np.ndarray
    com_m: np.ndarray
    com_acc_m_s2: np.ndarray
    ang_mom_rate_nm: np.ndarray
    residual_force_n: np.ndarray
    residual_moment_nm: np.ndarray
    valid: bool = False
    t_s: float = math.nan
    index: int = -1

    @classmethod
    def empty(cls) -> GroundReactionFrame:
        nan = np.nan
        return cls(
            force_n=np.full((2, 3), nan), cop_m=np.full((2, 3), nan), free_moment_nm=np.full(2, nan),
            share=np.full(2, nan), contact=np.zeros(2, bool), contact_likelihood=np.zeros(2),
            total_force_n=np.full(3, nan), com_m=np.full(3, nan), com_acc_m_s2=np.full(3, nan),
            ang_mom_rate_nm=np.full(3, nan), residual_force_n=np.full(3, nan), residual_moment_nm=np.full(3, nan),
        )


@dataclass(frozen=True, eq=False)
class GroundReactionTrial:
    """Output of :meth:`GroundReactionEstimator.run` for N frames (world frame, SI; feet ordered ``FEET``).

    Per-frame arrays as in :class:`GroundReactionFrame` with a leading N axis.  ``valid`` (N,): False for frames
    excluded (NaN gaps longer than ``max_gap_s`` or at the ends; their outputs are NaN); ``filled`` (N,): frames
    that were NaN and were filled by the cubic spline.  ``mass_kg`` is the subject mass used, ``model_mass_kg`` the
    model's, ``mass_scale`` their ratio; ``floor_height_m`` the floor used; ``lag_s`` the lag of the acceleration
    estimate (0 for zero-lag, :meth:`GroundReactionEstimator.causal_lag_s` for causal).
    """

    time_s: np.ndarray
    force_n: np.ndarray
    cop_m: np.ndarray
    free_moment_nm: np.ndarray
    share: np.ndarray
    contact: np.ndarray
    contact_likelihood: np.ndarray
    total_force_n: np.ndarray
    com_m: np.ndarray
    com_acc_m_s2: np.ndarray
    ang_mom_rate_nm: np.ndarray
    residual_force_n: np.ndarray
    residual_moment_nm: np.ndarray
    valid: np.ndarray
    filled: np.ndarray
    mass_kg: float
    model_mass_kg: float
    mass_scale: float
    floor_height_m: float
    gravity_m_s2: np.ndarray
    causal: bool
    lag_s: float
    notes: tuple[str, ...] = ()

    @property
    def n_frames(self) -> int:
        return int(self.time_s.shape[0])

    @property
    def body_weight_n(self) -> float:
        return float(self.mass_kg * np.linalg.norm(self.gravity_m_s2))

    def foot(self, name: str) -> int:
        """Index of a foot in ``FEET``."""
        try:
            return FEET.index(name)
        except ValueError:
            raise KeyError(f"no foot {name!r}; feet: {list(FEET)}") from None



class TrialArrays:
    """Per-frame outputs of a trial being filled segment by segment (NaN where not valid); :meth:`freeze` makes
    the read-only :class:`GroundReactionTrial`."""

    def __init__(self, n: int) -> None:
        nan = np.nan
        self.force_n = np.full((n, 2, 3), nan)
        self.cop_m = np.full((n, 2, 3), nan)
        self.free_moment_nm = np.full((n, 2), nan)
        self.share = np.full((n, 2), nan)
        self.contact = np.zeros((n, 2), bool)
        self.contact_likelihood = np.full((n, 2), nan)
        self.total_force_n = np.full((n, 3), nan)
        self.com_m = np.full((n, 3), nan)
        self.com_acc_m_s2 = np.full((n, 3), nan)
        self.ang_mom_rate_nm = np.full((n, 3), nan)
        self.residual_force_n = np.full((n, 3), nan)
        self.residual_moment_nm = np.full((n, 3), nan)
        self.valid = np.zeros(n, bool)

    def freeze(self, t: np.ndarray, filled: np.ndarray, mass: float, model_mass: float, scale: float, floor: float,
               g: np.ndarray, causal: bool, lag: float, notes: tuple[str, ...]) -> GroundReactionTrial:
        def ro(a: np.ndarray) -> np.ndarray:
            a = np.ascontiguousarray(a)
            a.setflags(write=False)
            return a

        return GroundReactionTrial(
            time_s=ro(np.array(t, float)), force_n=ro(self.force_n), cop_m=ro(self.cop_m),
            free_moment_nm=ro(self.free_moment_nm), share=ro(self.share), contact=ro(self.contact),
            contact_likelihood=ro(self.contact_likelihood), total_force_n=ro(self.total_force_n),
            com_m=ro(self.com_m), com_acc_m_s2=ro(self.com_acc_m_s2), ang_mom_rate_nm=ro(self.ang_mom_rate_nm),
            residual_force_n=ro(self.residual_force_n), residual_moment_nm=ro(self.residual_moment_nm),
            valid=ro(self.valid), filled=ro(np.array(filled, bool)), mass_kg=float(mass),
            model_mass_kg=float(model_mass), mass_scale=float(scale), floor_height_m=float(floor),
            gravity_m_s2=ro(np.array(g, float)), causal=bool(causal), lag_s=float(lag), notes=notes,
        )
