"""Knee adduction and extension moments (KAM, KEM) from inverse dynamics, in N m and in %BW*ht.

Where the numbers come from
---------------------------
MyoLeg's knee (from Rajagopal et al. 2016) has one independent coordinate, ``knee_angle_{r,l}`` (flexion positive),
which drives two knee translations, two knee rotations (ab/adduction and axial rotation) and the patella through
joint-equality polynomials.  Its frontal-plane moment is therefore **not** a generalised force of any free
coordinate: it is carried by the joint structures.  So KAM/KEM are taken from the *net intersegmental wrench* across
the knee: the wrench that the femur side exerts on the tibia subtree (tibia, talus, calcaneus, toes), computed by
:class:`models.dynamics.inverse_dynamics.InverseDynamics` with ``reaction_bodies=("tibia_l",)`` from MuJoCo's ``cfrc_int``
(Newton-Euler of the subtree: its rate of change of momentum minus gravity minus the ground reaction), about the knee
centre (the tibia body origin, where MyoLeg's knee joints are anchored) and expressed in the tibia frame.

Tibia frame (OpenSim's, kept by MyoLeg for both legs): x anterior, y superior (along the shank), z to the right
(lateral for the right leg, medial for the left).  Knee flexion is a rotation about -z (for both legs); tibial
adduction (distal tibia moving medially, varus) is a rotation about +x for the right leg and -x for the left.

Sign conventions (stated once, used everywhere)
-----------------------------------------------
``M_int``: internal moment = the moment the femur side exerts on the tibia subtree.  ``M_ext = -M_int``: the moment
of the external loads and of inertia and gravity of the subtree (the clinical "external moment").

* **KAM, positive = external knee adduction moment** (the clinical convention: positive when the ground reaction
  passes medial to the knee and tends to adduct the tibia into varus):
  ``KAM = M_ext . a_add`` with ``a_add = +x`` (right) or ``-x`` (left).
* **KEM, positive = internal knee extension moment** (= external flexion moment; quadriceps-dominated, as in early
  and mid stance): ``KEM = M_int . z``.
* ``knee_rotation_moment``: ``M_ext . y`` (external moment about the shank axis; positive rotates the tibia to the
  left as seen from above), reported for completeness.
* ``knee_extension_moment_coordinate_nm``: ``-tau(knee_angle)``, the negative of the generalised force of the
  independent knee coordinate (virtual work over the whole coupled knee; OpenSim's inverse-dynamics knee moment),
  a cross-check of KEM: it differs only by the coupled rotations and translations folded into it.

Normalisation: ``%BW*ht = 100 M / (m g h)`` with ``g = 9.80665 m/s^2`` (standard gravity), ``m`` body mass in kg,
``h`` height in m.

Stance summaries (:func:`stance_summaries`): per given stance interval, the first and second peak (maxima in the
first and second half of stance), the overall peak and its time, and the impulse (trapezoidal time integral over the
interval, total and positive part; N m s or %BW*ht*s).

This module is pure computation: numpy and other ``models/`` modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from models.dynamics.inverse_dynamics import InverseDynamics, JointMomentsFrame, JointMomentsTrial

__all__ = [
    "STANDARD_GRAVITY_M_S2",
    "KneeMomentsParams",
    "KneeMomentsFrame",
    "KneeMomentsTrial",
    "KneeMoments",
    "StanceSummary",
    "pct_bw_ht",
    "stance_intervals_from_force",
    "stance_summaries",
]

STANDARD_GRAVITY_M_S2 = 9.80665

Side = Literal["left", "right"]


def pct_bw_ht(moment_nm, body_mass_kg: float, height_m: float):
    """``100 M / (m g h)``, g = 9.80665 m/s^2."""
    return 100.0 * np.asarray(moment_nm) / (body_mass_kg * STANDARD_GRAVITY_M_S2 * height_m)


@dataclass(frozen=True, slots=True)
class KneeMomentsParams:
    """Which knee, and the subject for normalisation.

    ``side``: "left" or "right"; ``tibia_body`` and ``knee_coordinate`` default to MyoLeg's names for that side
    (``tibia_l``, ``knee_angle_l``); ``body_mass_kg`` and ``height_m`` for %BW*ht.
    """

    side: Side
    body_mass_kg: float
    height_m: float
    tibia_body: str = ""
    knee_coordinate: str = ""

    def __post_init__(self) -> None:
        if self.side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', got {self.side!r}")
        for k in ("body_mass_kg", "height_m"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{k} must be a positive finite number, got {v!r}")
        s = "l" if self.side == "left" else "r"
        if not self.tibia_body:
            object.__setattr__(self, "tibia_body", f"tibia_{s}")
        if not self.knee_coordinate:
            object.__setattr__(self, "knee_coordinate", f"knee_angle_{s}")

    @property
    def normaliser_nm(self) -> float:
        """``m g h / 100``: the moment in N m that equals 1 %BW*ht."""
        return self.body_mass_kg * STANDARD_GRAVITY_M_S2 * self.height_m / 100.0


@dataclass(slots=True)
class KneeMomentsFrame:
    """One frame.  Moments in N m (``_nm``) and %BW*ht (``_pct_bw_ht``); signs in the module docstring."""

    external_moment_tibia_nm: np.ndarray  # (3,) M_ext in the tibia frame, about the knee centre
    knee_adduction_moment_nm: float = 0.0
    knee_extension_moment_nm: float = 0.0
    knee_rotation_moment_nm: float = 0.0
    knee_extension_moment_coordinate_nm: float = 0.0
    knee_adduction_moment_pct_bw_ht: float = 0.0
    knee_extension_moment_pct_bw_ht: float = 0.0

    @staticmethod
    def allocate() -> "KneeMomentsFrame":
        return KneeMomentsFrame(np.zeros(3))


@dataclass(frozen=True, eq=False)
class KneeMomentsTrial:
    """A trial of knee moments, (N,) arrays (``external_moment_tibia_nm`` is (N, 3))."""

    external_moment_tibia_nm: np.ndarray
    knee_adduction_moment_nm: np.ndarray
    knee_extension_moment_nm: np.ndarray
    knee_rotation_moment_nm: np.ndarray
    knee_extension_moment_coordinate_nm: np.ndarray
    knee_adduction_moment_pct_bw_ht: np.ndarray
    knee_extension_moment_pct_bw_ht: np.ndarray
    params: KneeMomentsParams
    time_s: np.ndarray | None = None


class KneeMoments:
    """KAM/KEM from a :class:`JointMomentsFrame` of an :class:`InverseDynamics` stage.

    The stage must report the tibia's intersegmental wrench: construct it with ``reaction_bodies`` containing
    ``params.tibia_body`` (``ValueError`` otherwise).  :meth:`step` is per frame (no array allocation),
    :meth:`run` per trial (vectorised), and they agree.
    """

    def __init__(self, inverse_dynamics: InverseDynamics, params: KneeMomentsParams) -> None:
        self.params = params
        if params.tibia_body not in inverse_dynamics.reaction_bodies:
            raise ValueError(
                f"InverseDynamics does not report the intersegmental wrench of {params.tibia_body!r}; construct it "
                f"with InverseDynamicsParams(reaction_bodies=(..., {params.tibia_body!r})); it reports "
                f"{inverse_dynamics.reaction_bodies}"
            )
        self._k = inverse_dynamics.reaction_bodies.index(params.tibia_body)
        try:
            self._c = inverse_dynamics.coordinate_names.index(params.knee_coordinate)
        except ValueError:
            raise KeyError(
                f"no independent coordinate {params.knee_coordinate!r}; available: {inverse_dynamics.coordinate_names}"
            ) from None
        # adduction axis in the tibia frame: +x right, -x left
        self._add_sign = 1.0 if params.side == "right" else -1.0
        self._norm = params.normaliser_nm

    def step(self, joint_moments: JointMomentsFrame, out: KneeMomentsFrame) -> None:
        m_int = joint_moments.reaction_moment_nm[self._k]
        e = out.external_moment_tibia_nm
        np.negative(m_int, out=e)
        out.knee_adduction_moment_nm = float(self._add_sign * e[0])
        out.knee_extension_moment_nm = float(m_int[2])
        out.knee_rotation_moment_nm = float(e[1])
        out.knee_extension_moment_coordinate_nm = -float(joint_moments.coordinate_force[self._c])
        out.knee_adduction_moment_pct_bw_ht = out.knee_adduction_moment_nm / self._norm
        out.knee_extension_moment_pct_bw_ht = out.knee_extension_moment_nm / self._norm

    def run(self, joint_moments: JointMomentsTrial) -> KneeMomentsTrial:
        m_int = joint_moments.reaction_moment_nm[:, self._k, :]
        e = -m_int
        kam = self._add_sign * e[:, 0]
        kem = m_int[:, 2].copy()
        return KneeMomentsTrial(
            external_moment_tibia_nm=e,
            knee_adduction_moment_nm=kam,
            knee_extension_moment_nm=kem,
            knee_rotation_moment_nm=e[:, 1].copy(),
            knee_extension_moment_coordinate_nm=-joint_moments.coordinate_force[:, self._c],
            knee_adduction_moment_pct_bw_ht=kam / self._norm,
            knee_extension_moment_pct_bw_ht=kem / self._norm,
            params=self.params,
            time_s=joint_moments.time_s,
        )


# --------------------------------------------------------------------------------------------------
# stance phases
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StanceSummary:
    """Peaks and impulse of one signal over one stance interval (units of the signal; impulse: units * s)."""

    start_s: float
    end_s: float
    peak: float
    peak_time_s: float
    first_peak: float  # max over the first half of stance
    first_peak_time_s: float
    second_peak: float  # max over the second half of stance
    second_peak_time_s: float
    impulse: float  # trapezoidal integral over the interval
    positive_impulse: float  # integral of max(signal, 0)


def stance_intervals_from_force(
    time_s: np.ndarray, vertical_force_n: np.ndarray, threshold_n: float = 20.0, min_duration_s: float = 0.1
) -> list[tuple[float, float]]:
    """Intervals where ``vertical_force_n >= threshold_n`` for at least ``min_duration_s`` (first and last sample
    times of each run; a run touching the start or end of the record is kept as it is)."""
    t = np.asarray(time_s, dtype=float)
    on = np.asarray(vertical_force_n, dtype=float) >= threshold_n
    out: list[tuple[float, float]] = []
    if not on.any():
        return out
    d = np.diff(np.r_[0, on.astype(np.int8), 0])
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1) - 1
    for s, e in zip(starts, ends):
        if t[e] - t[s] >= min_duration_s:
            out.append((float(t[s]), float(t[e])))
    return out


def stance_summaries(
    time_s: np.ndarray, values: np.ndarray, stance_intervals: Sequence[tuple[float, float]]
) -> list[StanceSummary]:
    """Peaks and impulses of ``values`` (N,) over each ``(start_s, end_s)`` interval (inclusive)."""
    t = np.asarray(time_s, dtype=float)
    v = np.asarray(values, dtype=float)
    if t.shape != v.shape or t.ndim != 1:
        raise ValueError(f"time_s and values must be 1-D of equal length, got {t.shape} and {v.shape}")
    res: list[StanceSummary] = []
    for start, end in stance_intervals:
        if not end > start:
            raise ValueError(f"stance interval ({start}, {end}) is empty or reversed")
        idx = np.flatnonzero((t >= start - 1e-12) & (t <= end + 1e-12))
        if idx.size < 2:
            raise ValueError(f"stance interval ({start}, {end}) holds fewer than 2 samples")
        ts, vs = t[idx], v[idx]
        mid = 0.5 * (start + end)
        first = ts <= mid
        second = ts >= mid
        i_all = int(np.nanargmax(vs))
        i1 = int(np.nanargmax(np.where(first, vs, -np.inf)))
        i2 = int(np.nanargmax(np.where(second, vs, -np.inf)))
        res.append(
            StanceSummary(
                start_s=float(start),
                end_s=float(end),
                peak=float(vs[i_all]),
                peak_time_s=float(ts[i_all]),
                first_peak=float(vs[i1]),
                first_peak_time_s=float(ts[i1]),
                second_peak=float(vs[i2]),
                second_peak_time_s=float(ts[i2]),
                impulse=float(np.trapezoid(vs, ts)),
                positive_impulse=float(np.trapezoid(np.maximum(vs, 0.0), ts)),
            )
        )
    return res
