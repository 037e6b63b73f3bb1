"""Ground reaction force (GRF) and centre of pressure (CoP) of both feet from kinematics alone.

Physics first
-------------
Newton's second law for the whole body is the only thing that fixes the *total* external force::

    F_ext(t) = m_subject * (a_com(t) - g)                                       (N, world frame, z up)

``a_com`` is the acceleration of the whole-body centre of mass, computed from the model's own mass distribution
(``c = sum_i m_i x_i / sum_i m_i`` over every body with mass, ``x_i`` = ``data.xipos``) and differentiated by a
stated filter (below).  ``g`` is the model's gravity (``model.opt.gravity``, (0, 0, -9.81) m/s^2).  The model's masses
are scaled uniformly by ``s = subject_mass_kg / model_mass_kg`` (geometry unchanged, so the COM is unchanged and every
force and moment scales by ``s``).

MyoLeg (``myo_sim.load_model("myolegs")``, 74.98 kg) is a legs + pelvis model on a *rigid* upper body: sacrum 7.49 kg,
lumbar vertebrae 8.66 kg, torso 18.62 kg (arms lumped in, no arm bodies), neck + head 2.38 kg, all welded to the
free-floating root together with the pelvis (no lumbar joint).  The upper body therefore *is* represented (37.1 kg,
50 % of the mass) but it cannot move relative to the pelvis.  When the input carries the lab's lumbar angles
(Rajagopal ``lumbar_extension/bending/rotation``; :attr:`CoordinatesTrial.lumbar_rad`) the mass of the ``lumbar5``
subtree (29.7 kg) is rotated about the ``lumbar5`` origin (the L5/S1 joint) by ``Rz(ext) Rx(bend) Ry(rot)`` in the
pelvis frame, as Rajagopal's ``back`` joint does.  Without this, pelvic list swings the rigid trunk from side to side
and the medio-lateral GRF is wrong by 8.6-9.7 %BW RMS on the GC5 trials (3.3-4.1 %BW with it).

Filters (stated, :class:`GroundReactionParams`)
    *zero-lag* (``run`` with ``causal=False``): Butterworth low-pass of order ``filter_order`` run forward and backward
    (``scipy.signal.filtfilt``) at an overall -3 dB cut-off ``cutoff_hz`` (default 6 Hz; the single-pass design
    frequency is raised by ``(sqrt(2) - 1) ** (-1 / (2 order))``, Winter 2009 sec. 2.2.4.4), applied to every body's
    COM position and orientation matrix; each end is extended by the quadratic that fits its first/last 0.15 s,
    long enough (computed from the filter's poles) for the start-up transient to decay below 1e-13, so a quadratic
    trajectory (free fall, standing) passes exactly.  Derivatives are second-order central differences.
    *causal* (``step``, and ``run`` with ``causal=True``): the same Butterworth order run forward only (direct form
    II transposed) at ``cutoff_hz`` (no two-pass correction), then
    backward differences ``v[n] = (y[n]-y[n-1])/T``, ``a[n] = (y[n]-2y[n-1]+y[n-2])/T^2``.  Its lag at frequencies
    well below the cut-off is the filter's DC group delay plus one sample for the acceleration:
    :meth:`GroundReactionEstimator.causal_lag_s` (2nd order, 6 Hz: 45.5 ms at 120 Hz, 52.9 ms at 60 Hz).  Frame 0
    primes the filter at rest and frame 1 at the ramp through frames 0 and 1, so a recording that starts
    mid-stride has no start-up transient.  The foot points go through the same causal filter, so every output
    (force, contact, share, CoP) refers to the same instant, ``t - lag``.
    Zero-lag foot points (contact detection) use their own cut-off ``contact_cutoff_hz`` (default 12 Hz).

Splitting F_ext between the feet (rules and sources)
----------------------------------------------------
Contact likelihood, per foot point ``j`` (heel medial/lateral, 1st and 5th metatarsal heads, hallux; MyoLeg sole
points in the ``calcn``/``toes`` frames, :func:`myoleg_feet`)::

    l_j = sigmoid((h0 - h_j) / sh) * sigmoid((v0 - |v_j|) / sv)      h_j: height above the floor, v_j: point velocity

with ``h0 = contact_height_m`` (20 mm), ``sh`` 5 mm, ``v0 = contact_speed_m_s`` (0.8 m/s), ``sv`` 0.15 m/s (the
foot-velocity and height criteria of gait-event detection, e.g. O'Connor et al. 2007 Gait Posture 25:469, combined as
a soft AND).  A foot's likelihood is its largest point likelihood; the foot is in contact with hysteresis (on above
0.6, off below 0.4); the zero-lag path also drops contacts shorter than ``min_contact_s``.

Load share: single support puts all of F_ext on the stance foot.  In double support the share of the trailing foot
falls smoothly from 1 to 0 over the double-support interval (the "smooth transition assumption" of Ren, Jones &
Howard 2008, J Biomech 41:2750-2759)::

    share_trailing(s) = 1 - s,                s = (k - k0 + 1) / (k1 - k0 + 2) in (0, 1)   ("linear", default)
    share_trailing(s) = (1 + cos(pi s)) / 2                                               ("cosine")

for double-support frames ``k0..k1``.  The shape is a choice: Ren et al. let the trailing-foot loads decay smoothly
to zero by toe off, and later users of the assumption chose other shape functions (e.g. Karatsidis et al. 2017,
Sensors 17:75); the half cosine has zero slope at both ends (C1 forces).  On the GC5 trials
(plates under both feet) the measured trailing share falls almost linearly; with the plate-implied mass "linear"
gives 1.5 %BW lower per-foot vertical RMSE than "cosine", with the recorded mass they are within 0.4 %BW (an
in-sample choice: three trials of one subject).  Offline (``causal=False``) ``k0``/``k1`` are the detected heel
strike of the leading foot and toe off of the trailing foot; a double support cut by the start (end) of the
trial is given ``double_support_s`` (0.12 s) of duration.  In real time the end is not known yet: the duration is
predicted as the last completed double support (first one: ``double_support_s``); if the trailing foot lifts early
the share drops to 0 at that frame, if late it stays 0 until it lifts.  Both feet in contact from the same frame
(standing, or a recording that starts in double support) take the rear foot along the COM velocity as the trailing
one when the COM moves faster than 0.2 m/s; otherwise (standing) the split is static: the share follows the COM
between the two CoPs (``share_right = ((c - p_l).(p_r - p_l)) / |p_r - p_l|^2`` on the floor, clipped to [0, 1]),
which is the exact static split.  Neither foot in contact: shares by likelihood ``l_r / (l_r + l_l)`` (0.5 when
both are 0), and ``contact`` is False for both (the force still goes somewhere, so the sum stays exact).

Vertical components: ``F_right,z = share_right * F_ext,z``.  Horizontal components (``horizontal_split``):
``"proportional"`` gives each foot its share of ``F_ext,xy``, which cannot represent double support, where the
trailing foot pushes forward while the leading foot brakes.  ``"pivot"`` (default) directs each foot's force at a
point ``pivot_height_m`` (0.2 m) above the COM, the "virtual pivot point" that walking GRF lines are observed to
cross (Maus et al. 2010, Nat Commun 1:70; the height is our choice), and shares what that leaves of ``F_ext,xy``::

    d_f = F_f,z (pivot - CoP_f)_xy / (pivot - CoP_f)_z,   F_right,xy = d_r + share_right (F_ext,xy - d_r - d_l)

In single support this is exactly ``F_ext``.  On the GC5 trials it lowers the per-foot AP RMSE from 6.4 to 4.4 %BW
(left) and 6.0 to 3.5 %BW (right); pivot heights of 0-1 m all help (an in-sample comparison).  Either way
``F_left = F_ext - F_right``, so the feet sum to F_ext to rounding (one ulp);
:attr:`GroundReactionTrial.residual_force_n` reports it.

CoP, per foot: the weighted mean of the foot points projected onto the floor, each point weighted by its own contact
likelihood ``l_j`` times a prior (heel points 1, metatarsal heads 1, hallux 0.5).  At heel strike only the heel
points are low and slow, in foot-flat all points, after heel-off only the forefoot and hallux: the CoP progresses from
heel to toe along the foot, and a convex combination of the foot's points can never leave the foot's support polygon
(the convex hull of its points on the floor).  A foot that carries force but has no point in contact (missed
detection) puts its CoP under its lowest point.

Moments about the whole-body COM: ``dL/dt`` (rate of change of the whole-body angular momentum about the COM,
``L = sum_i [m_i (x_i - c) x v_i + R_i I_i R_i^T w_i]``, from the filtered body positions and orientations, then
differentiated) must equal ``sum_f (CoP_f - c) x F_f + T_free z``.  ``residual_moment_nm`` reports
``sum_f (CoP_f - c) x F_f + T_free z - dL/dt``.  ``free_moment="zero"`` (default) sets ``T_free = 0``;
``free_moment="balance"`` sets ``T_free = (dL/dt - sum_f (CoP_f - c) x F_f)_z`` (shared between the feet in
proportion to their vertical force), which zeroes the vertical residual.  On the GC5 trials the balance free moment
is mostly the imbalance left by CoP and model errors (RMSE 5.1-5.7 N m against the plates' free moment, whose own RMS
is 1.2-2.2 N m), so zero is the better estimate there; the residual then carries the imbalance and says how far the
rule-based CoPs are from satisfying the angular momentum balance.

Frames and units
----------------
SI units.  World frame: z up, right-handed (MyoLeg faces -y in its neutral pose; a lab trial keeps the lab's
heading: :func:`coordinates_from_lab_ik` maps OpenSim (x fwd, y up, z right) to (x fwd, y left, z up)).  The floor
is the plane ``z = floor_height_m`` (estimated from the trial when not given: :func:`estimate_floor_height`).  Feet are
ordered ``FEET = ("right", "left")``.  For inputs in an unknown frame (markers or landmarks),
:func:`estimate_ground_frame` returns the rotation that makes the floor horizontal and the walking direction +x.

This module is pure computation: numpy, scipy, mujoco and other ``models`` modules.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
from scipy import interpolate, signal

__all__ = [
    "FEET",
    "FootPoint",
    "FootGeometry",
    "myoleg_feet",
    "load_myoleg",
    "GroundReactionParams",
    "CoordinatesTrial",
    "CoordinatesFrame",
    "GroundReactionFrame",
    "GroundReactionTrial",
    "GroundReactionEstimator",
    "GroundFrame",
    "coordinates_from_lab_ik",
    "estimate_floor_height",
    "estimate_ground_frame",
    "cop_inside_support",
]

#: Order of the feet along every ``(..., 2, ...)`` axis.
FEET: tuple[str, str] = ("right", "left")

_TRANSITIONS = ("cosine", "linear")
_FREE_MOMENT = ("balance", "zero")
_HSPLIT = ("pivot", "proportional")


# --------------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------------


def _as_mjmodel(obj: Any) -> mujoco.MjModel:
    if isinstance(obj, mujoco.MjModel):
        return obj
    for name in ("model", "mj_model"):
        inner = getattr(obj, name, None)
        if isinstance(inner, mujoco.MjModel):
            return inner
    raise TypeError(f"expected a mujoco.MjModel or an object with a .model MjModel, got {type(obj).__name__}")


@functools.lru_cache(maxsize=1)
def load_myoleg() -> mujoco.MjModel:
    """MyoLeg, built once per process (about 2 s): ``models.body.registry.load_model("myoleg")`` when that module
    exists, else ``myo_sim.load_model("myolegs")``.  Shared: treat it as read-only."""
    try:
        from models.body.registry import load_model  # type: ignore[import-not-found]
    except ImportError:
        load_model = None
    if load_model is not None:
        return _as_mjmodel(load_model("myoleg"))
    return _myo_sim_myoleg()


def _myo_sim_myoleg() -> mujoco.MjModel:
    import myo_sim

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Attaching a spec with an empty prefix")
        return myo_sim.load_model("myolegs")


# --------------------------------------------------------------------------------------------------
# feet
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FootPoint:
    """A point of a foot's sole: ``body`` name, ``pos_m`` in that body's frame, CoP ``weight`` prior, ``name``."""

    name: str
    body: str
    pos_m: tuple[float, float, float]
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class FootGeometry:
    """The sole points of one foot (at least one).  Their convex hull on the floor is the foot's support polygon."""

    name: str
    points: tuple[FootPoint, ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError(f"FootGeometry {self.name!r}: needs at least one point")
        for p in self.points:
            if not (math.isfinite(p.weight) and p.weight > 0):
                raise ValueError(f"FootGeometry {self.name!r}: point {p.name!r} weight must be > 0, got {p.weight!r}")


def myoleg_feet() -> tuple[FootGeometry, FootGeometry]:
    """MyoLeg sole points (right, left), read off the foot collision capsules (radius 20 mm, sole at y = -0.02 m in
    the ``calcn`` frame: x forward, y up, z right; mirrored in z on the left).

    heel: the posterior ends of the two calcaneal capsules (x = 0.02, z = -/+ 0.02 m); mt1/mt5: the anterior ends of
    the medial (x = 0.175) and lateral (x = 0.141) capsules; hallux: the toe capsules' anterior underside in ``toes``.
    """

    def foot(side: str, sgn: float) -> FootGeometry:
        return FootGeometry(
            name="right" if side == "r" else "left",
            points=(
                FootPoint("heel_medial", f"calcn_{side}", (0.02, -0.02, -0.02 * sgn), 1.0),
                FootPoint("heel_lateral", f"calcn_{side}", (0.02, -0.02, 0.02 * sgn), 1.0),
                FootPoint("mt1_head", f"calcn_{side}", (0.175, -0.02, -0.025 * sgn), 1.0),
                FootPoint("mt5_head", f"calcn_{side}", (0.141, -0.02, 0.03 * sgn), 1.0),
                FootPoint("hallux", f"toes_{side}", (0.05, -0.018, -0.01 * sgn), 0.5),
            ),
        )

    return foot("r", 1.0), foot("l", -1.0)


# --------------------------------------------------------------------------------------------------
# parameters and types
# --------------------------------------------------------------------------------------------------


def _positive(owner: str, name: str, v: Any, *, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{owner}.{name} must be a finite number > 0, got {v!r}") from None
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"{owner}.{name} must be a finite number > 0, got {v!r}")


@dataclass(frozen=True, slots=True)
class GroundReactionParams:
    """Parameters of :class:`GroundReactionEstimator`, validated at construction (``ValueError`` names the field).

    ``subject_mass_kg``: the subject's mass; the model's masses are scaled to it.  ``cutoff_hz``: low-pass cut-off
    for body positions/orientations (overall -3 dB for the zero-lag filter, design cut-off for the causal one);
    ``None`` = no filtering (plain differences).  ``contact_cutoff_hz``: same for the foot points used by contact
    detection in the zero-lag path (the causal path filters them with ``cutoff_hz``, to share the force's lag).
    ``filter_order``: Butterworth order per pass.  ``causal``: :meth:`~GroundReactionEstimator.run` uses
    the causal filters and the real-time phase logic (what :meth:`~GroundReactionEstimator.step` does).
    ``sample_rate_hz``: nominal frame rate, needed by :meth:`~GroundReactionEstimator.step`; ``run`` uses it when
    given (it must agree with the trial's time stamps within 1 %), else the mean rate of the time stamps.
    ``floor_height_m``: z of the floor; ``None`` = estimate from each trial in ``run`` (``step`` needs it given, or
    set by :meth:`~GroundReactionEstimator.reset`).  ``contact_*``: the likelihood of a point being in contact (module
    doc).  ``min_contact_s``: shortest contact kept offline.  ``double_support_s``: double-support duration assumed
    where none is observed.  ``transition``: ``"cosine"`` or ``"linear"``.  ``free_moment``: ``"balance"`` or
    ``"zero"``.  ``horizontal_split``: ``"pivot"`` or ``"proportional"``; ``pivot_height_m``: height of the pivot
    above the COM.  ``max_gap_s``: NaN gaps up to this long are filled by a cubic spline, longer ones are excluded.
    ``use_lumbar``: rotate the upper body by the input's lumbar angles when it has them.
    """

    subject_mass_kg: float
    cutoff_hz: float | None = 6.0
    contact_cutoff_hz: float | None = 12.0
    filter_order: int = 2
    causal: bool = False
    sample_rate_hz: float | None = None
    floor_height_m: float | None = None
    contact_height_m: float = 0.02
    contact_height_scale_m: float = 0.005
    contact_speed_m_s: float = 0.8
    contact_speed_scale_m_s: float = 0.15
    contact_on: float = 0.6
    contact_off: float = 0.4
    min_contact_s: float = 0.04
    double_support_s: float = 0.12
    double_support_range_s: tuple[float, float] = (0.03, 0.4)
    transition: str = "linear"
    free_moment: str = "zero"
    horizontal_split: str = "pivot"
    pivot_height_m: float = 0.2
    max_gap_s: float = 0.1
    use_lumbar: bool = True

    def __post_init__(self) -> None:
        o = "GroundReactionParams"
        _positive(o, "subject_mass_kg", self.subject_mass_kg)
        _positive(o, "cutoff_hz", self.cutoff_hz, allow_none=True)
        _positive(o, "contact_cutoff_hz", self.contact_cutoff_hz, allow_none=True)
        _positive(o, "sample_rate_hz", self.sample_rate_hz, allow_none=True)
        for name in ("contact_height_scale_m", "contact_speed_m_s", "contact_speed_scale_m_s", "double_support_s",
                     "max_gap_s"):
            _positive(o, name, getattr(self, name))
        for name in ("contact_height_m", "min_contact_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{o}.{name} must be a finite number >= 0, got {v!r}")
        if self.floor_height_m is not None and not math.isfinite(float(self.floor_height_m)):
            raise ValueError(f"{o}.floor_height_m must be finite or None, got {self.floor_height_m!r}")
        if int(self.filter_order) != self.filter_order or not 1 <= self.filter_order <= 8:
            raise ValueError(f"{o}.filter_order must be an integer in 1..8, got {self.filter_order!r}")
        if not 0.0 < self.contact_off <= self.contact_on < 1.0:
            raise ValueError(f"{o}: need 0 < contact_off <= contact_on < 1, got contact_off={self.contact_off!r}, "
                             f"contact_on={self.contact_on!r}")
        lo, hi = self.double_support_range_s
        if not 0 < lo < hi:
            raise ValueError(f"{o}.double_support_range_s must be (lo, hi) with 0 < lo < hi, got {(lo, hi)!r}")
        if self.transition not in _TRANSITIONS:
            raise ValueError(f"{o}.transition must be one of {_TRANSITIONS}, got {self.transition!r}")
        if self.free_moment not in _FREE_MOMENT:
            raise ValueError(f"{o}.free_moment must be one of {_FREE_MOMENT}, got {self.free_moment!r}")
        if self.horizontal_split not in _HSPLIT:
            raise ValueError(f"{o}.horizontal_split must be one of {_HSPLIT}, got {self.horizontal_split!r}")
        if not (isinstance(self.pivot_height_m, (int, float)) and math.isfinite(self.pivot_height_m)
                and 0.0 <= self.pivot_height_m <= 2.0):
            raise ValueError(f"{o}.pivot_height_m must be in [0, 2] m, got {self.pivot_height_m!r}")


@dataclass(frozen=True, eq=False)
class CoordinatesTrial:
    """Generalised coordinates of the model over a trial (the input of :meth:`GroundReactionEstimator.run`).

    ``time_s`` (N,) uniformly sampled; ``qpos`` (N, nq) in the model's world frame (z up; free root position m and
    quaternion w, x, y, z; hinges rad); ``lumbar_rad`` (N, 3) or None: Rajagopal ``lumbar_extension``,
    ``lumbar_bending``, ``lumbar_rotation`` (rad), which MyoLeg lacks.  NaN rows mark missing frames.
    Any object with ``time_s`` and ``qpos`` (e.g. ``models.kinematics.inverse_kinematics.IKTrial``) is accepted by ``run``.
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
    the COM, ``residual_force_n`` (3,), ``residual_moment_nm`` (3,) about the COM.  ``valid`` False for a NaN frame
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
    def empty(cls) -> "GroundReactionFrame":
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


# --------------------------------------------------------------------------------------------------
# filters (private; zero-lag with polynomial end extension, causal DF2T)
# --------------------------------------------------------------------------------------------------


def _butter(order: int, cutoff_hz: float, rate_hz: float, two_pass: bool) -> tuple[np.ndarray, np.ndarray]:
    fc = cutoff_hz * ((math.sqrt(2.0) - 1.0) ** (-1.0 / (2 * order)) if two_pass else 1.0)
    if fc >= 0.5 * rate_hz:
        raise ValueError(f"cut-off {cutoff_hz} Hz (design {fc:.3g} Hz) must be below Nyquist ({0.5 * rate_hz} Hz)")
    b, a = signal.butter(order, fc / (0.5 * rate_hz))
    return np.asarray(b, float), np.asarray(a, float)


def _dc_group_delay_samples(b: np.ndarray, a: np.ndarray) -> float:
    k = np.arange(b.size)
    j = np.arange(a.size)
    return float((k @ b) / b.sum() - (j @ a) / a.sum())


def _settle_samples(a: np.ndarray, tol: float = 1e-13) -> int:
    r = float(np.max(np.abs(np.roots(a)))) if a.size > 1 else 0.0
    if r <= 0:
        return 2
    return int(math.ceil(math.log(tol) / math.log(r))) + 2


def _quadratic_extend(x: np.ndarray, n_pad: int, n_fit: int) -> np.ndarray:
    """(N, ...) -> (N + 2 n_pad, ...): each end extended by the least-squares quadratic of its first/last n_fit."""
    n = x.shape[0]
    flat = x.reshape(n, -1)
    nf = max(1, min(n, n_fit))
    deg = min(2, nf - 1)
    out = np.empty((n + 2 * n_pad, flat.shape[1]))
    out[n_pad:n_pad + n] = flat
    for side in (0, 1):
        idx = np.arange(nf) if side == 0 else np.arange(n - nf, n)
        centre = idx.mean()
        v = np.vander(idx - centre, deg + 1)
        coef = np.linalg.lstsq(v, flat[idx], rcond=None)[0]
        tgt = np.arange(-n_pad, 0) if side == 0 else np.arange(n, n + n_pad)
        vals = np.vander(tgt - centre, deg + 1) @ coef
        if side == 0:
            out[:n_pad] = vals
        else:
            out[n_pad + n:] = vals
    return out.reshape((n + 2 * n_pad,) + x.shape[1:])


class _ZeroLag:
    """filtfilt with quadratic end extension; returns the padded smoothed signal and the pad length."""

    def __init__(self, order: int, cutoff_hz: float | None, rate_hz: float) -> None:
        self.rate_hz = rate_hz
        if cutoff_hz is None:
            self.ba = None
            self.n_pad = 2
        else:
            self.ba = _butter(order, cutoff_hz, rate_hz, two_pass=True)
            self.n_pad = max(2, _settle_samples(self.ba[1]))
        self.n_fit = max(3, int(round(0.15 * rate_hz)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xp = _quadratic_extend(x, self.n_pad, self.n_fit)
        if self.ba is None:
            return xp
        b, a = self.ba
        return signal.filtfilt(b, a, xp, axis=0, padtype=None)


class _Causal:
    """Butterworth in direct form II transposed.

    Start-up (both the vectorised :meth:`run` and :class:`_CausalState`): frame 0 primes the filter at the steady
    state of a constant ``x0`` (output ``x0``, derivatives 0); frame 1 re-primes it at the steady state of the ramp
    through ``x0, x1`` (as if the signal had moved at that constant rate forever), so a trial that starts mid-stride
    does not see the filtered COM accelerate from rest.  The backward-difference histories at frames 1 and 2 are the
    ramp's (``y1 - d``, ``y1 - 2 d``, ``d = x1 - x0``).
    """

    def __init__(self, order: int, cutoff_hz: float | None, rate_hz: float) -> None:
        if cutoff_hz is None:
            self.b = np.ones(1)
            self.a = np.ones(1)
        else:
            self.b, self.a = _butter(order, cutoff_hz, rate_hz, two_pass=False)
        self.b = self.b / self.a[0]
        self.a = self.a / self.a[0]
        if self.a.size > 1:
            self.zi = signal.lfilter_zi(self.b, self.a)
            k = _settle_samples(self.a)
            ramp = np.arange(-k, 1, dtype=float)
            _, self.zr = signal.lfilter(self.b, self.a, ramp, zi=self.zi * ramp[0])
        else:
            self.zi = np.zeros(0)
            self.zr = np.zeros(0)
        self.delay_samples = _dc_group_delay_samples(self.b, self.a)

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Filtered y (n, ...) and the backward-difference histories prev (y[k-1]) and prev2 (y[k-2])."""
        n = x.shape[0]
        y = np.array(x, dtype=float, copy=True)
        if n >= 2 and self.a.size > 1:
            shape = (self.zi.size,) + (1,) * (x.ndim - 1)
            d = x[1] - x[0]
            zi = self.zi.reshape(shape) * x[0][None] + self.zr.reshape(shape) * d[None]
            y[1:], _ = signal.lfilter(self.b, self.a, x[1:], axis=0, zi=zi)
        prev = np.empty_like(y)
        prev2 = np.empty_like(y)
        prev[0] = y[0]
        prev2[0] = y[0]
        if n >= 2:
            d = x[1] - x[0]
            prev[1] = y[1] - d
            prev2[1] = y[1] - 2.0 * d
            prev[2:] = y[1:-1]
            if n >= 3:
                prev2[2] = prev[1]
                prev2[3:] = y[1:-2]
        return y, prev, prev2


class _CausalState:
    """Per-frame state of a :class:`_Causal` filter over a fixed channel shape (no allocation in ``step``)."""

    def __init__(self, f: _Causal, shape: tuple[int, ...]) -> None:
        self.f = f
        self.n = f.a.size - 1
        self.z = np.zeros((max(self.n, 1),) + shape)
        self.tmp = np.zeros(shape)
        self.b = [float(v) for v in f.b]
        self.a = [float(v) for v in f.a]
        self.zi = [float(v) for v in f.zi]
        self.zr = [float(v) for v in f.zr]

    def prime(self, x: np.ndarray) -> None:
        for i in range(self.n):
            np.multiply(x, self.zi[i], out=self.z[i])

    def prime_ramp(self, x0: np.ndarray, d: np.ndarray) -> None:
        """State after a ramp that ends at ``x0`` with step ``d`` per sample."""
        for i in range(self.n):
            np.multiply(x0, self.zi[i], out=self.z[i])
            np.multiply(d, self.zr[i], out=self.tmp)
            self.z[i] += self.tmp

    def step(self, x: np.ndarray, y: np.ndarray) -> None:
        n, b, a, z, tmp = self.n, self.b, self.a, self.z, self.tmp
        if n == 0:
            np.copyto(y, x)
            return
        np.multiply(x, b[0], out=y)
        y += z[0]
        for i in range(n - 1):
            np.multiply(x, b[i + 1], out=z[i])
            z[i] += z[i + 1]
            np.multiply(y, a[i + 1], out=tmp)
            z[i] -= tmp
        np.multiply(x, b[n], out=z[n - 1])
        np.multiply(y, a[n], out=tmp)
        z[n - 1] -= tmp


# --------------------------------------------------------------------------------------------------
# small math
# --------------------------------------------------------------------------------------------------


def _rot_zxy(e: float, b: float, r: float, out: np.ndarray) -> None:
    """out = Rz(e) @ Rx(b) @ Ry(r) (body-fixed Z-X-Y, OpenSim's rotation1/2/3 of the pelvis and back joints)."""
    ce, se, cb, sb, cr, sr = math.cos(e), math.sin(e), math.cos(b), math.sin(b), math.cos(r), math.sin(r)
    out[0, 0] = ce * cr - se * sb * sr
    out[0, 1] = -se * cb
    out[0, 2] = ce * sr + se * sb * cr
    out[1, 0] = se * cr + ce * sb * sr
    out[1, 1] = ce * cb
    out[1, 2] = se * sr - ce * sb * cr
    out[2, 0] = -cb * sr
    out[2, 1] = sb
    out[2, 2] = cb * cr


def _sigmoid_(x: np.ndarray) -> np.ndarray:
    """In place: x <- 1 / (1 + exp(-x)), overflow-safe."""
    np.minimum(x, 60.0, out=x)
    np.maximum(x, -60.0, out=x)
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    np.reciprocal(x, out=x)
    return x


def _shape(s: float, kind: str) -> float:
    s = min(max(s, 0.0), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * s)) if kind == "cosine" else 1.0 - s


# --------------------------------------------------------------------------------------------------
# the estimator
# --------------------------------------------------------------------------------------------------


class GroundReactionEstimator:
    """GRF and CoP of both feet from the model's kinematics (module doc: the physics, the rules and their sources).

    ``run(trial)`` processes a whole trial (zero-lag by default); ``step(frame, out)`` one frame in real time
    (causal, allocation-free after :meth:`reset`).  ``run`` with ``params.causal=True`` gives what ``step`` gives.
    """

    def __init__(self, params: GroundReactionParams, model: Any = None,
                 feet: tuple[FootGeometry, FootGeometry] | None = None, *,
                 trunk_body: str | None = "lumbar5", pelvis_body: str = "pelvis") -> None:
        if not isinstance(params, GroundReactionParams):
            raise TypeError(f"params must be GroundReactionParams, got {type(params).__name__}")
        self.params = params
        self.model = load_myoleg() if model is None else _as_mjmodel(model)
        m = self.model
        self._data = mujoco.MjData(m)
        d = self._data  # views cached once: each attribute access of MjData builds a new array object
        self._d_qpos, self._d_xipos, self._d_ximat = d.qpos, d.xipos, d.ximat
        self._d_xpos, self._d_xmat = d.xpos, d.xmat
        self.feet = myoleg_feet() if feet is None else tuple(feet)
        if len(self.feet) != 2:
            raise ValueError(f"feet must be (right, left), got {len(self.feet)} feet")

        # massive bodies, upper body (rotated by the lumbar angles) first so it is a contiguous slice
        mass = np.asarray(m.body_mass, float)
        massive = [b for b in range(1, m.nbody) if mass[b] > 0]
        upper: list[int] = []
        self._pelvis_id = -1
        self._trunk_id = -1
        if trunk_body is not None and mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, trunk_body) >= 0:
            tid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, trunk_body)
            pid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, pelvis_body)
            if pid < 0:
                raise ValueError(f"pelvis_body {pelvis_body!r} not in the model")
            upper = [b for b in massive if self._is_descendant(b, tid)]
            if any(m.body_dofnum[b] for b in upper) or self._has_joint_between(tid, pid):
                upper = []  # the upper body has its own joints: nothing to graft
            else:
                self._trunk_id, self._pelvis_id = tid, pid
        rest = [b for b in massive if b not in upper]
        self._bodies = np.array(upper + rest, dtype=np.intp)
        self._n_upper = len(upper)
        self.model_mass_kg = float(mass[self._bodies].sum())
        if not self.model_mass_kg > 0:
            raise ValueError("the model has no mass")
        self.mass_scale = float(params.subject_mass_kg) / self.model_mass_kg
        self._m = mass[self._bodies].copy()  # model masses (kg); subject = mass_scale * these
        self._inertia = np.asarray(m.body_inertia, float)[self._bodies].copy()  # principal, inertial frame
        self.gravity_m_s2 = np.array(m.opt.gravity, float)

        # foot points
        names = [(f, p) for f in self.feet for p in f.points]
        self._n_pts = [len(f.points) for f in self.feet]
        if self._n_pts[0] != self._n_pts[1]:
            raise ValueError(f"both feet need the same number of points, got {self._n_pts}")
        self._P = self._n_pts[0]
        pb = []
        for f, p in names:
            bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, p.body)
            if bid < 0:
                raise ValueError(f"foot {f.name!r} point {p.name!r}: body {p.body!r} not in the model")
            pb.append(bid)
        self._pt_body = np.array(pb, dtype=np.intp)
        self._pt_local = np.array([p.pos_m for _, p in names], float).reshape(-1, 3, 1)
        self._pt_weight = np.array([p.weight for _, p in names], float).reshape(2, self._P)

        self._xmat_pelvis = self._d_xmat[max(self._pelvis_id, 0)]
        self._xpos_trunk = self._d_xpos[max(self._trunk_id, 0)]
        self._step_ready = False
        self._floor: float | None = params.floor_height_m
        self._build_step_buffers()

    # ---- model helpers ---------------------------------------------------------------------------
    def _is_descendant(self, b: int, root: int) -> bool:
        while b > 0:
            if b == root:
                return True
            b = int(self.model.body_parentid[b])
        return b == root

    def _has_joint_between(self, b: int, anc: int) -> bool:
        m = self.model
        # joints on the path from b up to the common ancestor with anc
        path_b = []
        x = b
        while x > 0:
            path_b.append(x)
            x = int(m.body_parentid[x])
        path_a = set()
        x = anc
        while x > 0:
            path_a.add(x)
            x = int(m.body_parentid[x])
        for x in path_b:
            if x in path_a:
                break
            if m.body_jntnum[x] > 0:
                return True
        x = anc
        while x > 0 and x not in path_b:
            if m.body_jntnum[x] > 0:
                return True
            x = int(m.body_parentid[x])
        return False

    @property
    def body_weight_n(self) -> float:
        return float(self.params.subject_mass_kg * np.linalg.norm(self.gravity_m_s2))

    @property
    def floor_height_m(self) -> float | None:
        return self._floor

    def causal_lag_s(self, rate_hz: float | None = None) -> float:
        """Lag (s) of the causal COM acceleration at low frequency: DC group delay of the filter + one sample."""
        rate = rate_hz or self.params.sample_rate_hz
        if rate is None:
            raise ValueError("GroundReactionParams.sample_rate_hz is None: give rate_hz")
        f = _Causal(self.params.filter_order, self.params.cutoff_hz, float(rate))
        return (f.delay_samples + 1.0) / float(rate)

    # ---- kinematics of one frame -----------------------------------------------------------------
    def _pose(self, qpos: np.ndarray, lumbar: np.ndarray | None, buf: "_Buffers") -> None:
        """Fill ``buf.x`` (nb, 3) body COM positions, ``buf.r`` (nb, 9) inertial-frame rotations and ``buf.pts``
        (2P, 3) foot points of one pose (no allocation)."""
        np.copyto(self._d_qpos, qpos)
        mujoco.mj_kinematics(self.model, self._data)
        np.take(self._d_xipos, self._bodies, axis=0, out=buf.x, mode="clip")
        np.take(self._d_ximat, self._bodies, axis=0, out=buf.r, mode="clip")
        np.take(self._d_xpos, self._pt_body, axis=0, out=buf.pt_pos, mode="clip")
        np.take(self._d_xmat, self._pt_body, axis=0, out=buf.pt_mat9, mode="clip")
        np.matmul(buf.pt_mat33, self._pt_local, out=buf.pt_tmp)
        np.add(buf.pt_pos, buf.pt_tmp0, out=buf.pts)
        if lumbar is not None and self._n_upper and self.params.use_lumbar:
            _rot_zxy(float(lumbar[0]), float(lumbar[1]), float(lumbar[2]), buf.rl)
            np.copyto(buf.rp9, self._xmat_pelvis)
            np.matmul(buf.rp, buf.rl, out=buf.t33)
            np.matmul(buf.t33, buf.rpT, out=buf.rw)  # world rotation about the L5/S1 joint
            pj = self._xpos_trunk
            np.subtract(buf.xu, pj, out=buf.xu_tmp)
            np.matmul(buf.xu_tmp, buf.rwT, out=buf.xu)
            buf.xu += pj
            np.copyto(buf.ru_tmp, buf.ru)
            np.matmul(buf.rw, buf.ru_tmp, out=buf.ru)

    # ---- angular momentum ------------------------------------------------------------------------
    def _ang_mom(self, x: np.ndarray, v: np.ndarray, r9: np.ndarray, rd9: np.ndarray, c: np.ndarray,
                 cv: np.ndarray, out: np.ndarray) -> None:
        """Vectorised L about the COM (model masses): x, v (..., nb, 3); r9, rd9 (..., nb, 9); c, cv (..., 3)."""
        r = r9.reshape(r9.shape[:-1] + (3, 3))
        rd = rd9.reshape(rd9.shape[:-1] + (3, 3))
        w_skew = rd @ np.swapaxes(r, -1, -2)
        w = 0.5 * np.stack([w_skew[..., 2, 1] - w_skew[..., 1, 2], w_skew[..., 0, 2] - w_skew[..., 2, 0],
                            w_skew[..., 1, 0] - w_skew[..., 0, 1]], axis=-1)
        wl = np.einsum("...ji,...j->...i", r, w)  # body (inertial) frame
        spin = np.einsum("...ij,...j->...i", r, wl * self._inertia)
        orb = np.cross(x - c[..., None, :], v - cv[..., None, :])
        out[...] = np.einsum("b,...bi->...i", self._m, orb) + spin.sum(axis=-2)

    # ---- batch -----------------------------------------------------------------------------------
    def run(self, trial: Any) -> GroundReactionTrial:
        """Whole trial: zero-lag (default) or causal (``params.causal``, equal to replaying :meth:`step`).

        ``trial``: :class:`CoordinatesTrial` or any object with ``time_s`` (N,) and ``qpos`` (N, nq) (and optionally
        ``lumbar_rad`` (N, 3)).  Time must increase uniformly (1 % tolerance).  NaN frames: gaps of at most
        ``max_gap_s`` inside the trial are filled by a cubic spline (flag ``filled``); longer gaps and gaps at either
        end are excluded (``valid`` False, outputs NaN) and the valid stretches are processed independently.
        """
        p = self.params
        m = self.model
        t = np.asarray(trial.time_s, float).reshape(-1)
        q = np.asarray(trial.qpos, float)
        lum = getattr(trial, "lumbar_rad", None)
        lum = None if lum is None else np.asarray(lum, float)
        n = t.size
        if q.shape != (n, m.nq):
            raise ValueError(f"trial.qpos must have shape (N, nq) = ({n}, {m.nq}), got {q.shape}")
        if lum is not None and lum.shape != (n, 3):
            raise ValueError(f"trial.lumbar_rad must have shape (N, 3) = ({n}, 3), got {lum.shape}")
        if n < 3:
            raise ValueError(f"trial needs at least 3 frames, got {n}")
        if not np.all(np.isfinite(t)):
            raise ValueError("trial.time_s has non-finite values")
        dt = np.diff(t)
        h = float((t[-1] - t[0]) / (n - 1))
        if not h > 0 or np.any(np.abs(dt - h) > 0.01 * h):
            k = int(np.argmax(np.abs(dt - h))) if h > 0 else 0
            raise ValueError(f"trial.time_s must increase uniformly (1 % tolerance): step {k} is {dt[k]!r} s, "
                             f"mean {h!r} s")
        rate = 1.0 / h
        if p.sample_rate_hz is not None:
            # the nominal rate (time stamps in lab files are rounded); it must agree with the time stamps
            if abs(rate / float(p.sample_rate_hz) - 1.0) > 0.01:
                raise ValueError(f"trial.time_s implies {rate:.4g} Hz but GroundReactionParams.sample_rate_hz is "
                                 f"{p.sample_rate_hz!r}")
            rate = float(p.sample_rate_hz)

        bad = ~np.all(np.isfinite(q), axis=1)
        if lum is not None:
            bad |= ~np.all(np.isfinite(lum), axis=1)
        q, lum, valid, filled = _fill_gaps(t, q, lum, bad, p.max_gap_s, m)

        out = _TrialArrays(n)
        out.valid[:] = False
        notes: list[str] = []
        if bad.any():
            notes.append(f"{int(bad.sum())} NaN frames: {int(filled.sum())} filled (gaps <= {p.max_gap_s} s), "
                         f"{int((bad & ~filled).sum())} excluded")

        # kinematics of every valid frame
        nb, np2 = self._bodies.size, 2 * self._P
        X = np.full((n, nb, 3), np.nan)
        R = np.full((n, nb, 9), np.nan)
        PTS = np.full((n, np2, 3), np.nan)
        buf = _Buffers(nb, np2, self._n_upper)
        for k in np.flatnonzero(valid):
            self._pose(q[k], None if lum is None else lum[k], buf)
            X[k], R[k], PTS[k] = buf.x, buf.r, buf.pts

        floor = self._floor
        if floor is None:
            floor = estimate_floor_height(PTS[valid].reshape(-1, 2, self._P, 3), rate,
                                          speed_m_s=0.5 * p.contact_speed_m_s)
            notes.append(f"floor estimated at z = {floor:.4f} m")
        segments = _segments(valid, min_len=3)
        for a, b in segments:
            sl = slice(a, b)
            if p.causal:
                self._run_causal(t[sl], X[sl], R[sl], PTS[sl], rate, floor, out, sl)
            else:
                self._run_zero_lag(t[sl], X[sl], R[sl], PTS[sl], rate, floor, out, sl)
            out.valid[sl] = True
        lag = 0.0 if not p.causal else self.causal_lag_s(rate)
        return out.freeze(t, filled & out.valid, p.subject_mass_kg, self.model_mass_kg, self.mass_scale, floor,
                          self.gravity_m_s2, p.causal, lag, tuple(notes))

    def _com(self, X: np.ndarray) -> np.ndarray:
        return np.einsum("b,...bi->...i", self._m, X) / self.model_mass_kg

    def _likelihood(self, pts: np.ndarray, vel: np.ndarray, floor: float) -> np.ndarray:
        """Point contact likelihood (..., 2P) from positions and velocities (..., 2P, 3)."""
        p = self.params
        hh = (p.contact_height_m - (pts[..., 2] - floor)) / p.contact_height_scale_m
        vv = (p.contact_speed_m_s - np.linalg.norm(vel, axis=-1)) / p.contact_speed_scale_m_s
        return _sigmoid_(hh) * _sigmoid_(vv)

    def _cop_batch(self, pts: np.ndarray, lik_pt: np.ndarray, floor: float) -> np.ndarray:
        """CoP (N, 2, 3) per foot: likelihood x prior weighted mean of the points on the floor."""
        n = pts.shape[0]
        P = self._P
        pp = pts.reshape(n, 2, P, 3)
        w = lik_pt.reshape(n, 2, P) * self._pt_weight
        ws = w.sum(axis=-1)
        cop = np.empty((n, 2, 3))
        safe = ws > 1e-9
        wn = np.where(safe[..., None], w / np.where(safe, ws, 1.0)[..., None], 0.0)
        lowest = np.argmin(pp[..., 2], axis=-1)  # (n, 2)
        onehot = np.zeros_like(w)
        np.put_along_axis(onehot, lowest[..., None], 1.0, axis=-1)
        wn = np.where(safe[..., None], wn, onehot)
        cop[..., :2] = np.einsum("nfp,nfpi->nfi", wn, pp[..., :2])
        cop[..., 2] = floor
        return cop

    def _finish(self, F: np.ndarray, c: np.ndarray, dl: np.ndarray, cop: np.ndarray, share_r: np.ndarray,
                out: "_TrialArrays", sl: slice) -> None:
        """Forces, free moments and residuals from F_ext (n, 3), COM, dL/dt (subject-scaled), CoP, share."""
        fr = share_r[:, None] * F
        if self.params.horizontal_split == "pivot":
            # each foot's horizontal force points at the virtual pivot, the remainder is shared; sum stays F
            piv = c + np.array([0.0, 0.0, self.params.pivot_height_m])
            sl_ = 1.0 - share_r
            vr = piv - cop[:, 0]
            vl = piv - cop[:, 1]
            dr = (share_r * F[:, 2] / vr[:, 2])[:, None] * vr[:, :2]
            dlf = (sl_ * F[:, 2] / vl[:, 2])[:, None] * vl[:, :2]
            fr[:, :2] = dr + share_r[:, None] * (F[:, :2] - dr - dlf)
        fl = F - fr
        forces = np.stack([fr, fl], axis=1)
        mom = np.cross(cop - c[:, None, :], forces).sum(axis=1)
        tz = np.zeros(F.shape[0])
        if self.params.free_moment == "balance":
            tz = dl[:, 2] - mom[:, 2]
        fz = forces[..., 2]
        fzt = fz.sum(axis=1)
        vs = np.where(np.abs(fzt) > 1e-9, fz[:, 0] / np.where(np.abs(fzt) > 1e-9, fzt, 1.0), share_r)
        free = np.stack([vs * tz, tz - vs * tz], axis=1)
        res_m = mom - dl
        res_m[:, 2] += free.sum(axis=1)
        out.force_n[sl] = forces
        out.cop_m[sl] = cop
        out.free_moment_nm[sl] = free
        out.share[sl] = np.stack([share_r, 1.0 - share_r], axis=1)
        out.total_force_n[sl] = F
        out.com_m[sl] = c
        out.ang_mom_rate_nm[sl] = dl
        out.residual_force_n[sl] = forces.sum(axis=1) - F
        out.residual_moment_nm[sl] = res_m

    def _run_zero_lag(self, t, X, R, PTS, rate, floor, out, sl) -> None:
        p = self.params
        h = 1.0 / rate
        n = t.size
        zl = _ZeroLag(p.filter_order, p.cutoff_hz, rate)
        zc = _ZeroLag(p.filter_order, p.contact_cutoff_hz, rate)
        xr = zl(np.concatenate([X, R], axis=2))  # (n + 2 pad, nb, 12)
        Xs, Rs = xr[..., :3], xr[..., 3:]
        k0 = zl.n_pad
        # central differences on the padded signal, cropped to frames k0-1 .. k0+n (for dL/dt)
        i = np.arange(k0 - 1, k0 + n + 1)
        Xv = (Xs[i + 1] - Xs[i - 1]) / (2 * h)
        Rv = (Rs[i + 1] - Rs[i - 1]) / (2 * h)
        cs = self._com(Xs)
        acc = (cs[k0 + 1:k0 + n + 1] - 2 * cs[k0:k0 + n] + cs[k0 - 1:k0 + n - 1]) / (h * h)
        cv = self._com(Xv)
        L = np.empty((i.size, 3))
        self._ang_mom(Xs[i], Xv, Rs[i], Rv, cs[i], cv, L)
        dl = (L[2:] - L[:-2]) / (2 * h) * self.mass_scale
        c = cs[k0:k0 + n]
        F = self.params.subject_mass_kg * (acc - self.gravity_m_s2)
        # contact
        pts = zc(PTS)
        kc = zc.n_pad
        pv = (pts[kc + 1:kc + n + 1] - pts[kc - 1:kc + n - 1]) / (2 * h)
        pts = pts[kc:kc + n]
        lik_pt = self._likelihood(pts, pv, floor)
        lik = lik_pt.reshape(n, 2, self._P).max(axis=-1)
        contact = _hysteresis(lik, p.contact_on, p.contact_off)
        contact = _drop_short(contact, max(1, int(round(p.min_contact_s * rate))))
        cop = self._cop_batch(PTS, lik_pt, floor)
        cvel = self._com(Xv[1:-1])
        share_r = _offline_share(contact, lik, cop, c, cvel, p, rate)
        out.contact[sl] = contact
        out.contact_likelihood[sl] = lik
        out.com_acc_m_s2[sl] = acc
        self._finish(F, c, dl, cop, share_r, out, sl)

    def _run_causal(self, t, X, R, PTS, rate, floor, out, sl) -> None:
        p = self.params
        h = 1.0 / rate
        n = t.size
        fl = _Causal(p.filter_order, p.cutoff_hz, rate)
        fc = fl  # causal: the feet share the body filter, so every output refers to t - lag
        xr, xr1, xr2 = fl.run(np.concatenate([X, R], axis=2))
        Xs, Rs = xr[..., :3], xr[..., 3:]
        Xv = (Xs - xr1[..., :3]) / h
        Rv = (Rs - xr1[..., 3:]) / h
        cs = self._com(Xs)
        acc = self._com(Xs - 2.0 * xr1[..., :3] + xr2[..., :3]) / (h * h)
        cv = self._com(Xv)
        L = np.empty((n, 3))
        self._ang_mom(Xs, Xv, Rs, Rv, cs, cv, L)
        dl = np.zeros((n, 3))
        dl[2:] = (L[2:] - L[1:-1]) / h * self.mass_scale
        F = p.subject_mass_kg * (acc - self.gravity_m_s2)
        pts, pts1, _ = fc.run(PTS)
        pv = (pts - pts1) / h
        lik_pt = self._likelihood(pts, pv, floor)
        lik = lik_pt.reshape(n, 2, self._P).max(axis=-1)
        cop = self._cop_batch(PTS, lik_pt, floor)
        tracker = _PhaseTracker(p, rate)
        share_r = np.empty(n)
        contact = np.zeros((n, 2), bool)
        for k in range(n):
            share_r[k] = tracker.update(float(t[k]), float(lik[k, 0]), float(lik[k, 1]), cs[k], cv[k], cop[k])
            contact[k, 0], contact[k, 1] = tracker.contact
        out.contact[sl] = contact
        out.contact_likelihood[sl] = lik
        out.com_acc_m_s2[sl] = acc
        self._finish(F, cs, dl, cop, share_r, out, sl)

    # ---- real time -------------------------------------------------------------------------------
    def _build_step_buffers(self) -> None:
        nb, np2, P = self._bodies.size, 2 * self._P, self._P
        self._buf = _Buffers(nb, np2, self._n_upper)
        z = np.zeros
        self._xs, self._rs, self._pts = self._buf.x, self._buf.r, self._buf.pts  # raw pose of this frame
        self._xf, self._rf = z((nb, 3)), z((nb, 9))  # filtered
        self._xf1, self._rf1 = z((nb, 3)), z((nb, 9))  # filtered, previous frame
        self._xv, self._rv = z((nb, 3)), z((nb, 9))  # backward differences
        self._pts_f, self._pts_f1, self._pts_v = z((np2, 3)), z((np2, 3)), z((np2, 3))
        self._xs0, self._rs0, self._pts0 = z((nb, 3)), z((nb, 9)), z((np2, 3))
        self._dxs, self._drs, self._dpts = z((nb, 3)), z((nb, 9)), z((np2, 3))
        self._c, self._c1, self._c2, self._cv, self._acc = z(3), z(3), z(3), z(3), z(3)
        self._L, self._L1, self._dl, self._F, self._mom = z(3), z(3), z(3), z(3), z(3)
        self._lik_pt, self._tmp_pt, self._tmp_pt3 = z(np2), z(np2), z((np2, 3))
        self._w, self._ws = z((2, P)), z(2)
        self._cop, self._forces, self._rel, self._mom2 = z((2, 3)), z((2, 3)), z((2, 3)), z((2, 3))
        # views made once
        self._pf_z = self._pts_f[:, 2]
        self._lik_feet = (self._lik_pt[:P], self._lik_pt[P:])
        self._lik2 = self._lik_pt.reshape(2, P)
        self._foot_views = [(self._w[f], self._pts[f * P:(f + 1) * P, 0], self._pts[f * P:(f + 1) * P, 1],
                             self._pts[f * P:(f + 1) * P, 2]) for f in range(2)]
        self._f0, self._f1 = self._forces[0], self._forces[1]
        self._cross_mom = _Cross(self._rel, self._forces, self._mom2)
        # angular momentum (one frame)
        self._dx, self._dv, self._orb = z((nb, 3)), z((nb, 3)), z((nb, 3))
        self._cross_orb = _Cross(self._dx, self._dv, self._orb)
        self._wsk, self._rt, self._w3 = z((nb, 3, 3)), z((nb, 3, 3)), z((nb, 3))
        self._wl1, self._wl, self._sp1, self._l3 = z((nb, 3, 1)), z((nb, 3)), z((nb, 3, 1)), z(3)
        self._rf33 = self._rf.reshape(nb, 3, 3)
        self._rf33T = self._rf33.transpose(0, 2, 1)
        self._rv33 = self._rv.reshape(nb, 3, 3)
        w, wsk = self._w3, self._wsk
        self._omega_terms = [(wsk[:, 2, 1], wsk[:, 1, 2], w[:, 0]), (wsk[:, 0, 2], wsk[:, 2, 0], w[:, 1]),
                             (wsk[:, 1, 0], wsk[:, 0, 1], w[:, 2])]
        self._w31 = w.reshape(nb, 3, 1)
        self._wl10 = self._wl1[:, :, 0]
        self._wl31 = self._wl.reshape(nb, 3, 1)
        self._sp10 = self._sp1[:, :, 0]
        self._seg_k = 0
        self._k = -1
        self._last_t = math.nan

    def reset(self, floor_height_m: float | None = None) -> None:
        """Start a new real-time sequence (filters re-primed on the next valid frame).  ``floor_height_m``
        overrides the floor (``params.floor_height_m`` otherwise; one of the two must be given before ``step``)."""
        if floor_height_m is not None:
            if not math.isfinite(float(floor_height_m)):
                raise ValueError(f"floor_height_m must be finite, got {floor_height_m!r}")
            self._floor = float(floor_height_m)
        rate = self.params.sample_rate_hz
        if rate is None:
            raise ValueError("GroundReactionParams.sample_rate_hz is None: step() needs the frame rate")
        if self._floor is None:
            raise ValueError("GroundReactionParams.floor_height_m is None: give reset(floor_height_m=...) "
                             "(e.g. from estimate_floor_height or a run() result) before step()")
        p = self.params
        self._h = 1.0 / float(rate)
        fb = _Causal(p.filter_order, p.cutoff_hz, float(rate))
        self._fs_x = _CausalState(fb, self._xs.shape)
        self._fs_r = _CausalState(fb, self._rs.shape)
        self._fs_pts = _CausalState(fb, self._pts.shape)
        self._tracker = _PhaseTracker(p, float(rate))
        self._primed = False
        self._seg_k = 0
        self._gap_frames = 0
        self._k = -1
        self._last_t = math.nan
        self._step_ready = True

    def new_frame(self) -> GroundReactionFrame:
        """A preallocated output for :meth:`step`."""
        return GroundReactionFrame.empty()

    def step(self, frame: Any, out: GroundReactionFrame) -> None:
        """One frame, causal, no array allocation: fills ``out`` (see :class:`GroundReactionFrame`).

        ``frame.qpos`` (nq,) and optionally ``frame.lumbar_rad`` (3,) and ``frame.t_s`` (else time advances by
        1 / ``sample_rate_hz``).  Frames are assumed evenly spaced.  A frame with NaN is flagged (``out.valid``
        False, other outputs held from the last valid frame, filters not updated); after more than ``max_gap_s`` of
        such frames the filters are re-primed on the next valid frame.  Every output lags by :meth:`causal_lag_s`.
        """
        if not self._step_ready:
            self.reset()
        p = self.params
        h = self._h
        self._k += 1
        t = getattr(frame, "t_s", math.nan)
        t = float(t) if t is not None else math.nan
        if not math.isfinite(t):
            t = (self._last_t + h) if math.isfinite(self._last_t) else 0.0
        self._last_t = t
        out.t_s = t
        out.index = self._k
        qpos = frame.qpos
        lum = getattr(frame, "lumbar_rad", None)
        # NaN/inf check without a temporary array (a finite frame has a finite dot product with itself)
        ok = math.isfinite(float(np.dot(qpos, qpos))) and (lum is None or math.isfinite(float(np.dot(lum, lum))))
        if not ok:
            out.valid = False
            self._gap_frames += 1
            if self._gap_frames * h > p.max_gap_s:
                self._primed = False
            return
        self._gap_frames = 0
        seg_k = self._seg_k if self._primed else 0
        xs, rs, pts = self._xs, self._rs, self._pts
        self._pose(qpos, lum, self._buf)
        xf, rf, pf = self._xf, self._rf, self._pts_f
        c, c1, c2, acc = self._c, self._c1, self._c2, self._acc
        inv_h = 1.0 / h
        if seg_k == 0:  # constant steady state: y = x, derivatives 0
            self._fs_x.prime(xs)
            self._fs_r.prime(rs)
            self._fs_pts.prime(pts)
            self._tracker.reset()
            np.copyto(self._xs0, xs)
            np.copyto(self._rs0, rs)
            np.copyto(self._pts0, pts)
        elif seg_k == 1:  # ramp steady state through frames 0 and 1
            np.subtract(xs, self._xs0, out=self._dxs)
            np.subtract(rs, self._rs0, out=self._drs)
            np.subtract(pts, self._pts0, out=self._dpts)
            self._fs_x.prime_ramp(self._xs0, self._dxs)
            self._fs_r.prime_ramp(self._rs0, self._drs)
            self._fs_pts.prime_ramp(self._pts0, self._dpts)
        self._fs_x.step(xs, xf)
        self._fs_r.step(rs, rf)
        self._fs_pts.step(pts, pf)
        np.dot(self._m, xf, out=c)
        c *= 1.0 / self.model_mass_kg
        if seg_k == 0:
            np.copyto(self._xf1, xf)
            np.copyto(self._rf1, rf)
            np.copyto(self._pts_f1, pf)
            np.copyto(c1, c)
            np.copyto(c2, c)
        elif seg_k == 1:
            np.subtract(xf, self._dxs, out=self._xf1)
            np.subtract(rf, self._drs, out=self._rf1)
            np.subtract(pf, self._dpts, out=self._pts_f1)
            np.dot(self._m, self._dxs, out=c2)
            c2 *= 1.0 / self.model_mass_kg  # c(d)
            np.subtract(c, c2, out=c1)
            c2 *= -2.0
            c2 += c
        np.subtract(xf, self._xf1, out=self._xv)
        self._xv *= inv_h
        np.subtract(rf, self._rf1, out=self._rv)
        self._rv *= inv_h
        np.subtract(pf, self._pts_f1, out=self._pts_v)
        self._pts_v *= inv_h
        np.multiply(c1, -2.0, out=acc)
        acc += c
        acc += c2
        acc *= inv_h * inv_h
        np.dot(self._m, self._xv, out=self._cv)
        self._cv *= 1.0 / self.model_mass_kg
        self._ang_mom_step(c, self._cv, self._L)
        if seg_k <= 1:
            np.copyto(self._L1, self._L)
        np.subtract(self._L, self._L1, out=self._dl)
        self._dl *= self.mass_scale * inv_h
        F = self._F
        np.subtract(acc, self.gravity_m_s2, out=F)
        F *= p.subject_mass_kg
        # contact likelihood of each point (filtered points), foot likelihood
        floor = self._floor
        lik, tp = self._lik_pt, self._tmp_pt
        np.subtract(self._pf_z, floor, out=lik)
        np.subtract(p.contact_height_m, lik, out=lik)
        lik *= 1.0 / p.contact_height_scale_m
        _sigmoid_(lik)
        np.multiply(self._pts_v, self._pts_v, out=self._tmp_pt3)
        np.sum(self._tmp_pt3, axis=1, out=tp)
        np.sqrt(tp, out=tp)
        np.subtract(p.contact_speed_m_s, tp, out=tp)
        tp *= 1.0 / p.contact_speed_scale_m_s
        _sigmoid_(tp)
        lik *= tp
        lr = float(self._lik_feet[0].max())
        ll = float(self._lik_feet[1].max())
        # CoP per foot: weighted mean of the raw points (so inside the foot's support polygon)
        cop = self._cop
        np.multiply(self._lik2, self._pt_weight, out=self._w)
        np.sum(self._w, axis=1, out=self._ws)
        for f in range(2):
            wf, px, py, pz = self._foot_views[f]
            ws = float(self._ws[f])
            if ws > 1e-9:
                cop[f, 0] = float(np.dot(wf, px)) / ws
                cop[f, 1] = float(np.dot(wf, py)) / ws
            else:
                j = int(np.argmin(pz))
                cop[f, 0] = px[j]
                cop[f, 1] = py[j]
            cop[f, 2] = floor
        share = self._tracker.update(t, lr, ll, c, self._cv, cop)
        # forces, free moments, residuals
        f0, f1 = self._f0, self._f1
        np.multiply(F, share, out=f0)
        if p.horizontal_split == "pivot":
            zp = c[2] + p.pivot_height_m
            kr = share * F[2] / (zp - cop[0, 2])
            kl = (1.0 - share) * F[2] / (zp - cop[1, 2])
            for i in range(2):
                dr = kr * (c[i] - cop[0, i])
                dli = kl * (c[i] - cop[1, i])
                f0[i] = dr + share * (F[i] - dr - dli)
        np.subtract(F, f0, out=f1)
        np.subtract(cop, c, out=self._rel)
        self._cross_mom()
        np.sum(self._mom2, axis=0, out=self._mom)
        dl = self._dl
        tz = float(dl[2] - self._mom[2]) if p.free_moment == "balance" else 0.0
        fzt = float(f0[2] + f1[2])
        vs = float(f0[2]) / fzt if abs(fzt) > 1e-9 else share
        out.free_moment_nm[0] = vs * tz
        out.free_moment_nm[1] = tz - vs * tz
        np.subtract(self._mom, dl, out=out.residual_moment_nm)
        out.residual_moment_nm[2] += tz
        np.copyto(out.force_n, self._forces)
        np.copyto(out.cop_m, cop)
        out.share[0] = share
        out.share[1] = 1.0 - share
        out.contact[0], out.contact[1] = self._tracker.contact
        out.contact_likelihood[0] = lr
        out.contact_likelihood[1] = ll
        np.copyto(out.total_force_n, F)
        np.copyto(out.com_m, c)
        np.copyto(out.com_acc_m_s2, acc)
        np.copyto(out.ang_mom_rate_nm, dl)
        np.add(f0, f1, out=out.residual_force_n)
        out.residual_force_n -= F
        out.valid = True
        # histories
        np.copyto(self._xf1, xf)
        np.copyto(self._rf1, rf)
        np.copyto(self._pts_f1, pf)
        np.copyto(c2, c1)
        np.copyto(c1, c)
        np.copyto(self._L1, self._L)
        self._primed = True
        self._seg_k = seg_k + 1

    def _ang_mom_step(self, c: np.ndarray, cv: np.ndarray, out: np.ndarray) -> None:
        """Allocation-free twin of :meth:`_ang_mom` for the current filtered frame (model masses)."""
        np.subtract(self._xf, c, out=self._dx)
        np.subtract(self._xv, cv, out=self._dv)
        self._cross_orb()
        np.dot(self._m, self._orb, out=out)
        np.copyto(self._rt, self._rf33T)
        np.matmul(self._rv33, self._rt, out=self._wsk)
        for a_, b_, o_ in self._omega_terms:
            np.subtract(a_, b_, out=o_)
        self._w3 *= 0.5
        np.matmul(self._rt, self._w31, out=self._wl1)
        np.multiply(self._wl10, self._inertia, out=self._wl)
        np.matmul(self._rf33, self._wl31, out=self._sp1)
        np.sum(self._sp10, axis=0, out=self._l3)
        out += self._l3


# --------------------------------------------------------------------------------------------------
# step buffers, trial arrays
# --------------------------------------------------------------------------------------------------


class _Buffers:
    """Pose outputs and scratch of :meth:`GroundReactionEstimator._pose`, with their views made once."""

    def __init__(self, nb: int, np2: int, nu: int) -> None:
        z = np.zeros
        self.x, self.r, self.pts = z((nb, 3)), z((nb, 9)), z((np2, 3))
        self.pt_pos, self.pt_mat9, self.pt_tmp = z((np2, 3)), z((np2, 9)), z((np2, 3, 1))
        self.pt_mat33 = self.pt_mat9.reshape(np2, 3, 3)
        self.pt_tmp0 = self.pt_tmp[:, :, 0]
        self.rl, self.rp, self.rw, self.t33 = z((3, 3)), z((3, 3)), z((3, 3)), z((3, 3))
        self.rp9, self.rpT, self.rwT = self.rp.reshape(9), self.rp.T, self.rw.T
        self.xu = self.x[:nu]
        self.ru = self.r[:nu].reshape(nu, 3, 3)
        self.xu_tmp = z((nu, 3))
        self.ru_tmp = z((nu, 3, 3))


class _Cross:
    """out = a x b over the last axis of fixed (..., 3) buffers, views made once (no allocation per call)."""

    def __init__(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        self.terms = [(a[..., j], b[..., k], a[..., k], b[..., j], out[..., i])
                      for i, j, k in ((0, 1, 2), (1, 2, 0), (2, 0, 1))]
        self.tmp = np.zeros(out.shape[:-1])

    def __call__(self) -> None:
        tmp = self.tmp
        for aj, bk, ak, bj, oi in self.terms:
            np.multiply(aj, bk, out=oi)
            np.multiply(ak, bj, out=tmp)
            oi -= tmp


class _TrialArrays:
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

    def freeze(self, t, filled, mass, model_mass, scale, floor, g, causal, lag, notes) -> GroundReactionTrial:
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


# --------------------------------------------------------------------------------------------------
# gaps, segments, contact phases
# --------------------------------------------------------------------------------------------------


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def _segments(valid: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    return [(a, b) for a, b in _runs(valid) if b - a >= min_len]


def _fill_gaps(t, q, lum, bad, max_gap_s, model):
    """Cubic-spline fill of interior NaN gaps of at most max_gap_s; returns q, lum, valid, filled."""
    n = t.size
    valid = ~bad
    filled = np.zeros(n, bool)
    if not bad.any():
        return q, lum, valid, filled
    h = float((t[-1] - t[0]) / (n - 1))
    good = np.flatnonzero(~bad)
    to_fill = []
    for a, b in _runs(bad):
        if a == 0 or b == n:
            continue  # nothing to interpolate from on one side
        if (b - a) * h <= max_gap_s + 1e-9 * h:
            to_fill.append((a, b))
    if to_fill and good.size >= 2:
        q = np.array(q, float, copy=True)
        cs = interpolate.CubicSpline(t[good], q[good], axis=0)
        lcs = None
        if lum is not None:
            lum = np.array(lum, float, copy=True)
            lcs = interpolate.CubicSpline(t[good], lum[good], axis=0)
        for a, b in to_fill:
            q[a:b] = cs(t[a:b])
            if lcs is not None:
                lum[a:b] = lcs(t[a:b])
            filled[a:b] = True
            valid[a:b] = True
        # renormalise free-joint quaternions
        for j in range(model.njnt):
            if int(model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_FREE):
                adr = int(model.jnt_qposadr[j]) + 3
                qq = q[filled, adr:adr + 4]
                q[filled, adr:adr + 4] = qq / np.linalg.norm(qq, axis=1, keepdims=True)
            elif int(model.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_BALL):
                adr = int(model.jnt_qposadr[j])
                qq = q[filled, adr:adr + 4]
                q[filled, adr:adr + 4] = qq / np.linalg.norm(qq, axis=1, keepdims=True)
    return q, lum, valid, filled


def _hysteresis(lik: np.ndarray, on: float, off: float) -> np.ndarray:
    n = lik.shape[0]
    out = np.zeros(lik.shape, bool)
    for f in range(lik.shape[1]):
        state = bool(lik[0, f] >= 0.5)
        for k in range(n):
            v = lik[k, f]
            if state and v < off:
                state = False
            elif not state and v > on:
                state = True
            out[k, f] = state
    return out


def _drop_short(contact: np.ndarray, min_frames: int) -> np.ndarray:
    c = contact.copy()
    n = c.shape[0]
    for f in range(c.shape[1]):
        for a, b in _runs(c[:, f]):
            if b - a < min_frames and not (a == 0 or b == n):
                c[a:b, f] = False
    return c


def _rear_foot(com_vel: np.ndarray, cop: np.ndarray, min_speed_m_s: float = 0.2) -> int:
    """Index of the foot whose CoP is further back along the horizontal COM velocity; -1 if slower than
    ``min_speed_m_s`` (standing: no trailing foot)."""
    vx, vy = float(com_vel[0]), float(com_vel[1])
    sp = math.hypot(vx, vy)
    if sp < min_speed_m_s:
        return -1
    dr = (cop[0, 0] - cop[1, 0]) * vx + (cop[0, 1] - cop[1, 1]) * vy
    return 0 if dr < 0 else 1


def _static_share(c: np.ndarray, cop: np.ndarray) -> float:
    """Share of the right foot that balances the COM statically between the two CoPs (floor plane)."""
    dx = cop[0, 0] - cop[1, 0]
    dy = cop[0, 1] - cop[1, 1]
    d2 = dx * dx + dy * dy
    if d2 < 1e-12:
        return 0.5
    s = ((c[0] - cop[1, 0]) * dx + (c[1] - cop[1, 1]) * dy) / d2
    return min(max(s, 0.0), 1.0)


def _offline_share(contact: np.ndarray, lik: np.ndarray, cop: np.ndarray, com: np.ndarray, com_vel: np.ndarray,
                   p: GroundReactionParams, rate: float) -> np.ndarray:
    """Right-foot share of F_ext per frame, knowing the whole segment (zero-lag path)."""
    n = contact.shape[0]
    share = np.empty(n)
    cr, cl = contact[:, 0], contact[:, 1]
    share[cr & ~cl] = 1.0
    share[cl & ~cr] = 0.0
    none = ~cr & ~cl
    tot = lik[:, 0] + lik[:, 1]
    share[none] = np.where(tot[none] > 1e-12, lik[none, 0] / np.where(tot[none] > 1e-12, tot[none], 1.0), 0.5)
    n_def = max(1, int(round(p.double_support_s * rate)))
    starts = [_run_starts(contact[:, f]) for f in (0, 1)]
    for a, b in _runs(cr & cl):
        k1 = b - 1
        # trailing foot: its contact started earlier; else the one that lifts first at the end
        sr, sl_ = starts[0][a], starts[1][a]
        trail = -1
        if sr != sl_:
            trail = 0 if sr < sl_ else 1
        elif b < n:
            trail = 0 if not cr[b] else (1 if not cl[b] else -1)
        if trail < 0:
            trail = _rear_foot(com_vel[a], cop[a])
        if trail < 0:
            for k in range(a, b):
                share[k] = _static_share(com[k], cop[k])
            continue
        k0 = a
        if a == 0 and b < n:
            k0 = min(a, k1 + 1 - n_def)
        if b == n and a > 0:
            k1 = max(k1, a - 1 + n_def)
        for k in range(a, b):
            s = (k - k0 + 1) / (k1 - k0 + 2)
            st = _shape(s, p.transition)
            share[k] = st if trail == 0 else 1.0 - st
    return share


def _run_starts(mask: np.ndarray) -> np.ndarray:
    """For each frame, the index where the current run of True began (n for False frames)."""
    n = mask.size
    out = np.full(n, n, dtype=np.intp)
    start = -1
    for k in range(n):
        if mask[k]:
            if start < 0:
                start = k
            out[k] = start
        else:
            start = -1
    return out


class _PhaseTracker:
    """Real-time contact phases and load share (causal; module doc)."""

    def __init__(self, p: GroundReactionParams, rate: float) -> None:
        self.p = p
        self.h = 1.0 / rate
        self.reset()

    def reset(self) -> None:
        self.contact = [False, False]
        self.start = [math.nan, math.nan]
        self.first = True
        self.ds = False
        self.ds_t0 = 0.0
        self.trail = -1
        self.t_pred = self.p.double_support_s

    def update(self, t: float, lr: float, ll: float, com: np.ndarray, com_vel: np.ndarray, cop: np.ndarray) -> float:
        p = self.p
        for f, v in ((0, lr), (1, ll)):
            st = self.contact[f]
            if self.first:
                new = v >= 0.5
            elif st:
                new = not (v < p.contact_off)
            else:
                new = v > p.contact_on
            if new and not st:
                self.start[f] = t
            self.contact[f] = new
        self.first = False
        cr, cl = self.contact
        if cr and cl:
            if not self.ds:
                self.ds = True
                self.ds_t0 = t
                a, b = self.start
                self.trail = -1 if a == b else (0 if a < b else 1)
            if self.trail < 0:  # both landed together (start of a recording): the rear foot, if walking
                self.trail = _rear_foot(com_vel, cop)
            if self.trail < 0:
                return _static_share(com, cop)
            s = (t - self.ds_t0 + self.h) / (self.t_pred + self.h)
            st = _shape(s, p.transition)
            return st if self.trail == 0 else 1.0 - st
        if self.ds:
            if self.trail >= 0:
                dur = t - self.ds_t0
                lo, hi = p.double_support_range_s
                if lo <= dur <= hi:
                    self.t_pred = dur
            self.ds = False
        if cr:
            return 1.0
        if cl:
            return 0.0
        tot = lr + ll
        return lr / tot if tot > 1e-12 else 0.5


# --------------------------------------------------------------------------------------------------
# lab IK -> MyoLeg coordinates
# --------------------------------------------------------------------------------------------------

#: OpenSim lab axes (x fwd, y up, z right) -> z-up world (x fwd, y left, z up); same as lab_files.opensim_to_z_up.
_C_OS_TO_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

_PELVIS_COLUMNS = ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz")
_LUMBAR_COLUMNS = ("lumbar_extension", "lumbar_bending", "lumbar_rotation")


def coordinates_from_lab_ik(table: Any, model: Any = None, *, pelvis_body: str = "pelvis") -> CoordinatesTrial:
    """Map an OpenSim IK table (Rajagopal coordinates, e.g. ``GC5_PS/ik/*_kinematics.mot`` read by
    ``models.io.lab_files.read_mot``) onto MyoLeg generalised coordinates.

    * Pelvis: OpenSim's ``ground_pelvis`` places the pelvis at ``(tx, ty, tz)`` with orientation
      ``Rz(tilt) Rx(list) Ry(rotation)`` in the lab (y up).  The MyoLeg root is a free joint whose child frame
      carries the pelvis at a fixed offset and rotation (read from the model: the pelvis faces -y when the root
      quaternion is the identity), so ``R_root = C R_pelvis R_pelvis_in_root^T`` and
      ``p_root = C p_pelvis - R_root o_pelvis_in_root`` with ``C`` the y-up -> z-up rotation (x fwd, y left, z up).
    * Other coordinates: by name (hips, ``knee_angle_*``, ankles, subtalar, mtp); degrees converted to radians when
      ``table.in_degrees``.  Coupled knee coordinates (translations, rotations, patella) follow MyoLeg's joint
      equality polynomials of ``knee_angle_*``; Rajagopal's ``knee_angle_*_beta`` is not used.
    * Lumbar angles (absent from MyoLeg) go to :attr:`CoordinatesTrial.lumbar_rad` when the table has them.
    """
    m = load_myoleg() if model is None else _as_mjmodel(model)
    cols = tuple(table.columns)
    missing = [c for c in _PELVIS_COLUMNS if c not in cols]
    if missing:
        raise KeyError(f"{getattr(table, 'path', '') or 'table'}: IK table lacks pelvis columns {missing}")
    deg = bool(getattr(table, "in_degrees", True))
    ang = (math.pi / 180.0) if deg else 1.0
    col = table.column
    n = int(np.asarray(col("pelvis_tx")).shape[0])
    q = np.tile(np.asarray(m.qpos0, float), (n, 1))
    # pelvis pose relative to the root
    if m.njnt == 0 or int(m.jnt_type[0]) != int(mujoco.mjtJoint.mjJNT_FREE):
        raise ValueError("model has no free root joint")
    d = mujoco.MjData(m)
    d.qpos[:] = m.qpos0
    d.qpos[0:3] = 0.0
    d.qpos[3:7] = (1.0, 0.0, 0.0, 0.0)
    mujoco.mj_kinematics(m, d)
    pid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, pelvis_body)
    if pid < 0:
        raise ValueError(f"pelvis_body {pelvis_body!r} not in the model")
    rp0 = d.xmat[pid].reshape(3, 3).copy()
    op0 = d.xpos[pid].copy()
    tilt, lst, rot = (np.asarray(col(c), float) * ang for c in _PELVIS_COLUMNS[:3])
    pos = np.stack([np.asarray(col(c), float) for c in _PELVIS_COLUMNS[3:]], axis=1) @ _C_OS_TO_ZUP.T
    rz = np.zeros((3, 3))
    quat = np.zeros(4)
    for k in range(n):
        _rot_zxy(float(tilt[k]), float(lst[k]), float(rot[k]), rz)
        rr = _C_OS_TO_ZUP @ rz @ rp0.T
        mujoco.mju_mat2Quat(quat, rr.reshape(-1))
        q[k, 3:7] = quat
        q[k, 0:3] = pos[k] - rr @ op0
    jadr = int(m.jnt_qposadr[0])
    assert jadr == 0
    for j in range(1, m.njnt):
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
        jt = int(m.jnt_type[j])
        if name in cols and jt in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
            scale = ang if jt == int(mujoco.mjtJoint.mjJNT_HINGE) else 1.0
            q[:, m.jnt_qposadr[j]] = np.asarray(col(name), float) * scale
    for i in range(m.neq):
        if int(m.eq_type[i]) != int(mujoco.mjtEq.mjEQ_JOINT) or m.eq_obj2id[i] < 0:
            continue
        a1 = int(m.jnt_qposadr[m.eq_obj1id[i]])
        a2 = int(m.jnt_qposadr[m.eq_obj2id[i]])
        x = q[:, a2] - m.qpos0[a2]
        c = m.eq_data[i][:5]
        q[:, a1] = m.qpos0[a1] + c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * c[4])))
    lum = None
    if all(c in cols for c in _LUMBAR_COLUMNS):
        lum = np.stack([np.asarray(col(c), float) * ang for c in _LUMBAR_COLUMNS], axis=1)
    return CoordinatesTrial(time_s=np.asarray(table.time_s, float).copy(), qpos=q, lumbar_rad=lum,
                            source=str(getattr(table, "path", "")))


# --------------------------------------------------------------------------------------------------
# floor and ground frame
# --------------------------------------------------------------------------------------------------


def estimate_floor_height(foot_points_m: np.ndarray, rate_hz: float, *, speed_m_s: float = 0.4,
                          cutoff_hz: float = 12.0) -> float:
    """Floor height (m, z up) from foot sole points (N, 2, P, 3): the median, over frames where a foot is still
    (every point slower than ``speed_m_s``), of that foot's lowest point.  A foot flat on the floor has its lowest
    sole point on the floor; the median ignores the toe rolling into the floor at push-off (MyoLeg's toes are rigid
    in the lab IK, whose ``mtp_angle`` is locked at 0).  Falls back to the 5th percentile of the lowest points when
    no foot is ever still."""
    p = np.asarray(foot_points_m, float)
    if p.ndim != 4 or p.shape[1] != 2 or p.shape[-1] != 3:
        raise ValueError(f"foot_points_m must have shape (N, 2, P, 3), got {p.shape}")
    ok = np.all(np.isfinite(p), axis=(1, 2, 3))
    p = p[ok]
    if p.shape[0] < 3:
        raise ValueError("need at least 3 finite frames of foot points to estimate the floor")
    zl = _ZeroLag(2, cutoff_hz if cutoff_hz < 0.45 * rate_hz else None, rate_hz)
    ps = zl(p)
    k0 = zl.n_pad
    n = p.shape[0]
    v = (ps[k0 + 1:k0 + n + 1] - ps[k0 - 1:k0 + n - 1]) * (0.5 * rate_hz)
    speed = np.linalg.norm(v, axis=-1).max(axis=-1)  # (n, 2)
    low = p[..., 2].min(axis=-1)  # (n, 2)
    still = speed < speed_m_s
    if still.any():
        return float(np.median(low[still]))
    return float(np.percentile(low, 5))


@dataclass(frozen=True)
class GroundFrame:
    """Result of :func:`estimate_ground_frame`.

    ``rotation`` (3, 3): maps input coordinates to a frame with z up (floor normal) and x along the walking
    direction (``p_new = rotation @ p_in``).  ``floor_height_m``: z of the floor in the new frame (of the points
    used, which sit at their own height above the true floor if they are markers).  ``up_in``/``forward_in``: the
    two directions in input coordinates.  ``n_points``: samples fitted; ``rms_m``: their RMS distance to the plane.
    """

    rotation: np.ndarray
    floor_height_m: float
    up_in: np.ndarray
    forward_in: np.ndarray
    n_points: int
    rms_m: float


def estimate_ground_frame(foot_points_m: np.ndarray, pelvis_m: np.ndarray, rate_hz: float, *,
                          speed_m_s: float = 0.25, cutoff_hz: float = 8.0) -> GroundFrame:
    """Floor plane and walking direction of landmarks given in an unknown frame (the seed's R_adapt).

    ``foot_points_m`` (N, 2, P, 3): P landmarks on each foot (right, left), the same landmark type at the same index
    on both feet (e.g. heel, toe, lateral midfoot markers, or model sole points); ``pelvis_m`` (N, 3): a pelvis point
    (e.g. the mean of the pelvis markers).  NaN samples are ignored.

    1. forward ``f``: the principal axis of the pelvis path (least-squares line; its vertical bob and lateral sway
       are small and average out), pointing along the net displacement;
    2. floor samples: every landmark sample slower than ``speed_m_s`` (a foot flat on the floor, or the toe during
       push-off; speeds from a zero-lag ``cutoff_hz`` low-pass, rotation invariant);
    3. the floor normal ``n``: least squares over those samples with one height offset per landmark type (shared by
       the two feet): the smallest principal direction, perpendicular to ``f``, of the samples centred per type.
       ``n`` must be perpendicular to ``f`` for level walking, which leaves one angle (the roll about ``f``) to the
       feet, set by the lateral spread between left and right placements; it is oriented toward the pelvis;
    4. ``rotation`` rows: ``f``, ``n x f`` (left), ``n``.
    The method is equivariant: rotating the input rotates the result (a rotated trial is recovered to rounding).
    Its absolute accuracy is limited by how level the floor samples are: marker heights that differ between the left
    and right shoe tilt the roll by about (height difference) / (step width).
    Raises ``ValueError`` with too few samples, no net pelvis travel (standing) or floor samples from one foot only.
    """
    fp = np.asarray(foot_points_m, float)
    pel = np.asarray(pelvis_m, float)
    if fp.ndim != 4 or fp.shape[1] != 2 or fp.shape[-1] != 3:
        raise ValueError(f"foot_points_m must have shape (N, 2, P, 3), got {fp.shape}")
    if pel.shape != (fp.shape[0], 3):
        raise ValueError(f"pelvis_m must have shape (N, 3) = ({fp.shape[0]}, 3), got {pel.shape}")
    n = fp.shape[0]
    okp = np.all(np.isfinite(pel), axis=1)
    if okp.sum() < 5:
        raise ValueError(f"need at least 5 finite pelvis samples, got {int(okp.sum())}")
    # 1. forward
    pp = pel[okp]
    u, sv, vt = np.linalg.svd(pp - pp.mean(axis=0), full_matrices=False)
    f = vt[0]
    disp = pp[-1] - pp[0]
    if np.linalg.norm(disp) < 0.05:
        raise ValueError("the pelvis travels less than 5 cm: walking direction undefined (standing?)")
    if np.dot(f, disp) < 0:
        f = -f
    # 2. still landmark samples (speed per landmark)
    speed = np.full(fp.shape[:3], np.inf)
    okf = np.all(np.isfinite(fp), axis=-1)  # (n, 2, P)
    for foot in range(2):
        for j in range(fp.shape[2]):
            for a, b in _runs(okf[:, foot, j]):
                if b - a < 3:
                    continue
                zl = _ZeroLag(2, cutoff_hz if cutoff_hz < 0.45 * rate_hz else None, rate_hz)
                sm = zl(fp[a:b, foot, j])
                k0 = zl.n_pad
                m_ = b - a
                v = (sm[k0 + 1:k0 + m_ + 1] - sm[k0 - 1:k0 + m_ - 1]) * (0.5 * rate_hz)
                speed[a:b, foot, j] = np.linalg.norm(v, axis=-1)
    still = speed < speed_m_s
    feet_used = still.any(axis=(0, 2))
    if not feet_used.all():
        raise ValueError(f"floor samples from one foot only (still samples per foot: "
                         f"{still.sum(axis=(0, 2)).tolist()}): the roll about the walking direction is undefined")
    # 3. normal: per-type centring, perpendicular to f
    cen = []
    for j in range(fp.shape[2]):
        sj = fp[:, :, j][still[:, :, j]]
        if sj.shape[0] >= 2:
            cen.append(sj - sj.mean(axis=0))
    if not cen:
        raise ValueError("fewer than 2 still samples of any landmark type")
    d = np.concatenate(cen)
    d = d - np.outer(d @ f, f)
    # basis of the plane perpendicular to f
    e1 = np.cross(f, [1.0, 0.0, 0.0])
    if np.linalg.norm(e1) < 0.5:
        e1 = np.cross(f, [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(f, e1)
    b2 = np.stack([e1, e2])  # (2, 3)
    c2 = (d @ b2.T)
    w, v = np.linalg.eigh(c2.T @ c2)
    nrm = v[:, 0] @ b2
    nrm /= np.linalg.norm(nrm)
    feet_mean = np.nanmean(fp[still], axis=0)
    if np.dot(np.nanmean(pp, axis=0) - feet_mean, nrm) < 0:
        nrm = -nrm
    left = np.cross(nrm, f)
    rot = np.stack([f, left, nrm])
    # floor height (of the type-0 landmark plane... of all still samples, per-type offsets averaged)
    hs = fp[still] @ nrm
    floor = float(np.median(hs))
    resid = d @ nrm
    return GroundFrame(rotation=rot, floor_height_m=floor, up_in=nrm.copy(), forward_in=f.copy(),
                       n_points=int(d.shape[0]), rms_m=float(np.sqrt(np.mean(resid ** 2))))


def cop_inside_support(trial: GroundReactionTrial, estimator: GroundReactionEstimator, q: np.ndarray,
                       tol_m: float = 1e-9) -> np.ndarray:
    """(N, 2) bool: is each foot's CoP inside the convex hull of its points on the floor (for checking)?"""
    from scipy.spatial import Delaunay

    m, d = estimator.model, mujoco.MjData(estimator.model)
    n = trial.n_frames
    out = np.ones((n, 2), bool)
    P = estimator._P
    for k in range(n):
        if not trial.valid[k]:
            continue
        d.qpos[:] = q[k]
        mujoco.mj_kinematics(m, d)
        pts = d.xpos[estimator._pt_body] + np.einsum("pij,pj->pi", d.xmat[estimator._pt_body].reshape(-1, 3, 3),
                                                     estimator._pt_local[:, :, 0])
        for f in range(2):
            xy = pts[f * P:(f + 1) * P, :2]
            c = trial.cop_m[k, f, :2]
            try:
                tri = Delaunay(xy)
                inside = tri.find_simplex(c, tol=tol_m) >= 0
            except Exception:  # degenerate hull (collinear points)
                inside = bool(np.min(np.linalg.norm(xy - c, axis=1)) < 1e-6)
            out[k, f] = inside
    return out
