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
0.6, off below 0.4); the zero-lag path also drops contacts shorter than ``min_contact_s`` and moves each contact's
edges to where the likelihood crossed ``contact_onset_level`` (0.3, start moved back) and ``contact_offset_level``
(0.5, end moved forward): the hysteresis alone confirmed heel strikes 17 ms (PS) and 16 ms (DM) after the plates on
average, in the kinematics' time base; both levels are chosen on PS's event times alone and held out on DM
(+3 / +4 ms there), :func:`models.grf.contact.refine_contact_edges`.  This lowers DM's knee-side vertical RMSE from
8.6 / 5.3 / 5.7 / 5.6 / 6.7 to 7.0 / 4.2 / 4.4 / 4.4 / 5.6 %BW; PS's rises from 13.0-13.7 to 14.4-15.8 against its
plates, which lag the markers by 17 ms and carry 10 % more than the recorded mass (:mod:`models.grf.plate_check`).

The trunk: MyoLeg's upper body is welded to the pelvis; given lumbar angles (``CoordinatesTrial.lumbar_rad``) it is
rotated about L5/S1.  The offline chain can take them from the thorax markers (:mod:`models.grf.trunk`,
``AnalyzeParams.grf_trunk``): on PS the single-support medio-lateral force error falls from 3.6-5.2 %BW (mean) to
1.1-1.7 and the KAM RMSE from 0.79-0.91 to 0.51-0.60 %BW ht (DM 0.82-1.06 -> 0.74-0.99).

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
:attr:`~models.grf.records.GroundReactionTrial.residual_force_n` reports it.

Feasible contact forces (``contact_solver="feasible"``, the default; :mod:`models.grf.feasible`)
----------------------------------------------------------------------------------------------
The rule-based split above can ask a foot to pull on the floor (vertical GRF down to -1000 N on monocular input),
push outside its friction cone or put its CoP outside the sole.  By default the per-foot forces are instead the
per-frame non-negative least-squares fit of :mod:`models.grf.feasible`: each sole point of a foot in contact
(contact state as below, with hysteresis) carries a non-negative combination of the edges of a friction pyramid
inscribed in the cone of ``friction_mu`` (0.7: shoe on a dry lab floor, 0.6-0.8, Redfern et al. 2001, Ergonomics
44:1138), so Fz >= 0, the cone and the CoP-in-polygon constraint hold by construction; a foot in swing carries
exactly nothing.  The fit is closest to the measured dynamics, F_ext *and* dL/dt about the COM (the same filters
and differences as above, both paths), with the rule-based forces and CoPs (single support, smooth double-support
transition, virtual pivot, likelihood-weighted CoP) as soft priors.  What the feasible forces cannot explain is the
per-frame dynamic residual (``residual_force_n`` N, ``residual_moment_nm`` N m).  On the eight shared lab trials
(kinematics-only chain from markers vs inverse dynamics with the plates, 2026-12-07) it lowers the knee-of-interest
vertical GRF RMSE from 8.7-14.9 to 5.3-8.6 %BW on DM and the KAM RMSE from 1.5-2.2 to 0.78-1.06 %BW ht on all
eight; on PS the vertical RMSE rises from 10.4-12.3 to 13.0-13.7 %BW (recorded 75 kg against 82.9 kg implied by the
plates; with 82.9 kg: 5.5-8.2 rule, 9.4-9.6 feasible).  ``contact_solver="share"`` gives the rule-based split alone.
The parameters ``free_moment`` and ``horizontal_split`` shape the prior (``free_moment`` only acts on the rule split:
the fit's free moment is the one its point forces make).

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
heading: OpenSim's (x fwd, y up, z right) becomes (x fwd, y left, z up); the tests' ``coordinates_from_lab_ik`` in
``tests/_grf_helpers.py`` does this for the lab IK).  The floor is the plane ``z = floor_height_m`` (estimated from
the trial when not given: :func:`models.grf.floor.estimate_floor_height`).  Feet are ordered
``FEET = ("right", "left")`` (:data:`models.grf.contact.FEET`).

Modules (``models/grf/``): :mod:`~models.grf.params` (parameters), :mod:`~models.grf.records` (inputs, outputs),
:mod:`~models.grf.contact` (feet, contact likelihood, CoP), :mod:`~models.grf.load_share` (split between the feet),
:mod:`~models.grf.body` (mass model, poses, angular momentum), :mod:`~models.grf.fk` (body frames of all
frames in one compiled pass), :mod:`~models.grf.floor` (floor height),
:mod:`~models.grf.feasible` (the feasible contact fit), :mod:`~models.grf.trunk` (lumbar angles from torso
markers), :mod:`~models.grf.plate_check` (is a plate reference consistent with the kinematics),
:mod:`~models.grf.batch` (whole trials), :mod:`~models.grf.realtime` (one frame), :mod:`~models.grf.model` (MyoLeg);
the filters are :mod:`~models.grf.smoothing`'s (``ZeroLagLowPass``, ``RampPrimedLowPass``, ``fill_short_gaps``).

This module is pure computation: numpy, scipy, numba, mujoco and other ``models`` modules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.grf.smoothing import RampPrimedLowPass
from models.grf.batch import SegmentEstimator, fill_frames, segments, trial_inputs
from models.grf.body import BodyModel
from models.grf.contact import FootGeometry, myoleg_feet
from models.grf.floor import estimate_floor_height
from models.grf.model import as_mjmodel, load_myoleg
from models.grf.params import GroundReactionParams
from models.grf.realtime import StepEstimator
from models.grf.records import GroundReactionFrame, GroundReactionTrial, TrialArrays

__all__ = ["GroundReactionEstimator"]


class GroundReactionEstimator:
    """GRF and CoP of both feet from the model's kinematics (module doc: the physics, the rules and their sources).

    ``run(trial)`` processes a whole trial (zero-lag by default); ``step(frame, out)`` one frame in real time
    (causal, allocation-free after :meth:`reset`).  ``run`` with ``params.causal=True`` gives what ``step`` gives.
    ``body`` is the :class:`~models.grf.body.BodyModel` (bodies with mass, foot points) both paths share.
    """

    def __init__(self, params: GroundReactionParams, model: Any = None,
                 feet: tuple[FootGeometry, FootGeometry] | None = None, *,
                 trunk_body: str | None = "lumbar5", pelvis_body: str = "pelvis") -> None:
        if not isinstance(params, GroundReactionParams):
            raise TypeError(f"params must be GroundReactionParams, got {type(params).__name__}")
        self.params = params
        self.model = load_myoleg() if model is None else as_mjmodel(model)
        self.body = BodyModel(self.model, myoleg_feet() if feet is None else tuple(feet),
                              use_lumbar=params.use_lumbar, trunk_body=trunk_body, pelvis_body=pelvis_body)
        self.feet = self.body.feet
        self.model_mass_kg = self.body.model_mass_kg
        self.mass_scale = float(params.subject_mass_kg) / self.model_mass_kg
        self.gravity_m_s2 = np.array(self.model.opt.gravity, float)
        self._floor: float | None = params.floor_height_m
        self._step_ready = False
        self._rt_obj: StepEstimator | None = None  # the real-time state, made on first use (run needs none)

    @property
    def _rt(self) -> StepEstimator:
        """The per-frame state of :meth:`step` (:class:`~models.grf.realtime.StepEstimator`)."""
        if self._rt_obj is None:
            self._rt_obj = StepEstimator(self.body, self.params, self.mass_scale, self.gravity_m_s2)
        return self._rt_obj

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
        f = RampPrimedLowPass(self.params.filter_order, self.params.cutoff_hz, float(rate))
        return (f.delay_samples + 1.0) / float(rate)

    # ---- batch -----------------------------------------------------------------------------------
    def run(self, trial: Any) -> GroundReactionTrial:
        """Whole trial: zero-lag (default) or causal (``params.causal``, equal to replaying :meth:`step`).

        ``trial``: :class:`CoordinatesTrial` or any object with ``time_s`` (N,) and ``qpos`` (N, nq) (and optionally
        ``lumbar_rad`` (N, 3)).  Time must increase uniformly (1 % tolerance).  NaN frames: gaps of at most
        ``max_gap_s`` inside the trial are filled by a cubic spline (flag ``filled``); longer gaps and gaps at either
        end are excluded (``valid`` False, outputs NaN) and the valid stretches are processed independently.
        """
        p = self.params
        t, q, lum, rate = trial_inputs(trial, self.model.nq, p)
        q, lum, bad, valid, filled = fill_frames(t, q, lum, p.max_gap_s, self.model)
        n = t.size
        out = TrialArrays(n)
        notes: list[str] = []
        if bad.any():
            notes.append(f"{int(bad.sum())} NaN frames: {int(filled.sum())} filled (gaps <= {p.max_gap_s} s), "
                         f"{int((bad & ~filled).sum())} excluded")
        X, R, PTS = self.body.poses(q, lum, valid)
        floor = self._floor
        if floor is None:
            floor = estimate_floor_height(PTS[valid].reshape(-1, 2, self.body.n_points, 3), rate,
                                          speed_m_s=0.5 * p.contact_speed_m_s)
            notes.append(f"floor estimated at z = {floor:.4f} m")
        seg = SegmentEstimator(self.body, p, self.mass_scale, self.gravity_m_s2, rate, floor, out)
        for a, b in segments(valid, min_len=3):
            sl = slice(a, b)
            (seg.causal if p.causal else seg.zero_lag)(t[sl], X[sl], R[sl], PTS[sl], sl)
            out.valid[sl] = True
        lag = 0.0 if not p.causal else self.causal_lag_s(rate)
        return out.freeze(t, filled & out.valid, p.subject_mass_kg, self.model_mass_kg, self.mass_scale, floor,
                          self.gravity_m_s2, p.causal, lag, tuple(notes))

    # ---- real time -------------------------------------------------------------------------------
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
        self._rt.reset(float(rate), self._floor)
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
        self._rt.step(frame, out)
