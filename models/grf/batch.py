"""The whole-trial path of the ground reaction estimate: input checks, NaN frames, and each valid stretch
estimated zero-lag (``filtfilt`` with quadratic end extension, central differences) or causally (the filters and
real-time phase logic of :mod:`models.grf.realtime`, vectorised).  World frame z up, SI units.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from models.grf.smoothing import RampPrimedLowPass, ZeroLagLowPass, fill_short_gaps, true_runs
from models.grf.body import BodyModel
from models.grf.contact import (
    cop_batch,
    cop_weights,
    drop_short,
    hysteresis,
    point_likelihood,
    refine_contact_edges,
)
from models.grf.feasible import FeasibleFit, fit_frames, supporting_feet
from models.grf.load_share import PhaseTracker, offline_share
from models.grf.params import GroundReactionParams
from models.grf.records import TrialArrays

__all__ = ["SegmentEstimator", "feasible_fit", "fill_frames", "segments", "trial_inputs"]


def trial_inputs(trial: Any, nq: int, p: GroundReactionParams
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    """``(time_s, qpos, lumbar_rad or None, rate_hz)`` of a trial, checked: shapes, at least 3 frames, time
    increasing uniformly (1 % tolerance) and agreeing with ``p.sample_rate_hz`` (which is then the rate used)."""
    t = np.asarray(trial.time_s, float).reshape(-1)
    q = np.asarray(trial.qpos, float)
    lum = getattr(trial, "lumbar_rad", None)
    lum = None if lum is None else np.asarray(lum, float)
    n = t.size
    if q.shape != (n, nq):
        raise ValueError(f"trial.qpos must have shape (N, nq) = ({n}, {nq}), got {q.shape}")
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
    return t, q, lum, rate


def fill_frames(t: np.ndarray, q: np.ndarray, lum: np.ndarray | None, max_gap_s: float, model: mujoco.MjModel
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
    """NaN frames (any non-finite coordinate or lumbar angle): interior gaps of at most ``max_gap_s`` filled by a
    cubic spline in time (:func:`models.grf.smoothing.fill_short_gaps`), free/ball quaternions renormalised.  Returns
    ``(qpos, lumbar, bad, valid, filled)``: ``bad`` frames were NaN, ``valid`` = not bad or filled."""
    bad = ~np.all(np.isfinite(q), axis=1)
    if lum is not None:
        bad |= ~np.all(np.isfinite(lum), axis=1)
    q, filled = fill_short_gaps(t, q, bad, max_gap_s)
    if lum is not None:
        lum, _ = fill_short_gaps(t, lum, bad, max_gap_s)
    if filled.any():
        for j in range(model.njnt):
            jt = int(model.jnt_type[j])
            if jt in (int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_BALL)):
                adr = int(model.jnt_qposadr[j]) + (3 if jt == int(mujoco.mjtJoint.mjJNT_FREE) else 0)
                qq = q[filled, adr:adr + 4]
                q[filled, adr:adr + 4] = qq / np.linalg.norm(qq, axis=1, keepdims=True)
    return q, lum, bad, ~bad | filled, filled


def feasible_fit(body: BodyModel, p: GroundReactionParams, gravity_m_s2: np.ndarray) -> FeasibleFit:
    """The feasible contact fit of ``p`` (:mod:`models.grf.feasible`) for ``body``'s sole points."""
    return FeasibleFit(body.n_points, float(p.subject_mass_kg * np.linalg.norm(gravity_m_s2)), mu=p.friction_mu,
                       n_edges=int(p.friction_edges), moment_length_m=p.feasible_moment_length_m,
                       prior_weight=p.feasible_prior_weight, cop_weight=p.feasible_cop_weight,
                       ridge=p.feasible_ridge)


def segments(valid: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of valid frames at least ``min_len`` long."""
    return [(a, b) for a, b in true_runs(valid) if b - a >= min_len]


class SegmentEstimator:
    """Estimates of valid stretches of one trial into a :class:`TrialArrays`: body COMs ``X`` (n, nb, 3),
    orientations ``R`` (n, nb, 9) and foot points ``PTS`` (n, 2P, 3) of every frame in, forces and CoPs out."""

    def __init__(self, body: BodyModel, p: GroundReactionParams, mass_scale: float, gravity_m_s2: np.ndarray,
                 rate: float, floor: float, out: TrialArrays) -> None:
        self.body, self.p, self.mass_scale, self.gravity_m_s2 = body, p, mass_scale, gravity_m_s2
        self.rate, self.floor, self.out = rate, floor, out
        self.fit = feasible_fit(body, p, gravity_m_s2) if p.contact_solver == "feasible" else None

    def zero_lag(self, t: np.ndarray, X: np.ndarray, R: np.ndarray, PTS: np.ndarray, sl: slice) -> None:
        """Zero-lag estimate of the frames ``sl`` (offline contact detection and load share)."""
        p, body, floor = self.p, self.body, self.floor
        rate = self.rate
        h = 1.0 / rate
        n = t.size
        zl = ZeroLagLowPass(p.filter_order, p.cutoff_hz, rate)
        zc = ZeroLagLowPass(p.filter_order, p.contact_cutoff_hz, rate)
        xr = zl(np.concatenate([X, R], axis=2))  # (n + 2 pad, nb, 12)
        Xs, Rs = xr[..., :3], xr[..., 3:]
        k0 = zl.n_pad
        # central differences on the padded signal, cropped to frames k0-1 .. k0+n (for dL/dt)
        i = np.arange(k0 - 1, k0 + n + 1)
        Xv = (Xs[i + 1] - Xs[i - 1]) / (2 * h)
        Rv = (Rs[i + 1] - Rs[i - 1]) / (2 * h)
        cs = body.com(Xs)
        acc = (cs[k0 + 1:k0 + n + 1] - 2 * cs[k0:k0 + n] + cs[k0 - 1:k0 + n - 1]) / (h * h)
        cv = body.com(Xv)
        L = np.empty((i.size, 3))
        body.angular_momentum(Xs[i], Xv, Rs[i], Rv, cs[i], cv, L)
        dl = (L[2:] - L[:-2]) / (2 * h) * self.mass_scale
        c = cs[k0:k0 + n]
        F = p.subject_mass_kg * (acc - self.gravity_m_s2)
        # contact
        pts = zc(PTS)
        kc = zc.n_pad
        pv = (pts[kc + 1:kc + n + 1] - pts[kc - 1:kc + n - 1]) / (2 * h)
        pts = pts[kc:kc + n]
        lik_pt = point_likelihood(pts, pv, floor, p)
        lik = lik_pt.reshape(n, 2, body.n_points).max(axis=-1)
        contact = hysteresis(lik, p.contact_on, p.contact_off)
        contact = refine_contact_edges(contact, lik, p.contact_onset_level, p.contact_offset_level,
                                       max(1, round(p.contact_edge_max_s * rate)))
        contact = drop_short(contact, max(1, round(p.min_contact_s * rate)))
        cop = cop_batch(PTS, lik_pt, body.point_weight, floor)
        cvel = body.com(Xv[1:-1])
        share_r = offline_share(contact, lik, cop, c, cvel, p, rate)
        self.out.contact[sl] = contact
        self.out.contact_likelihood[sl] = lik
        self.out.com_acc_m_s2[sl] = acc
        self._finish(F, c, dl, cop, share_r, sl)
        self._feasible(PTS, lik_pt, contact, F, c, dl, sl)

    def causal(self, t: np.ndarray, X: np.ndarray, R: np.ndarray, PTS: np.ndarray, sl: slice) -> None:
        """Causal estimate of the frames ``sl``: what :class:`models.grf.realtime.StepEstimator` gives."""
        p, body, floor = self.p, self.body, self.floor
        h = 1.0 / self.rate
        n = t.size
        fl = RampPrimedLowPass(p.filter_order, p.cutoff_hz, self.rate)
        fc = fl  # causal: the feet share the body filter, so every output refers to t - lag
        xr, xr1, xr2 = fl.run(np.concatenate([X, R], axis=2))
        Xs, Rs = xr[..., :3], xr[..., 3:]
        Xv = (Xs - xr1[..., :3]) / h
        Rv = (Rs - xr1[..., 3:]) / h
        cs = body.com(Xs)
        acc = body.com(Xs - 2.0 * xr1[..., :3] + xr2[..., :3]) / (h * h)
        cv = body.com(Xv)
        L = np.empty((n, 3))
        body.angular_momentum(Xs, Xv, Rs, Rv, cs, cv, L)
        dl = np.zeros((n, 3))
        dl[2:] = (L[2:] - L[1:-1]) / h * self.mass_scale
        F = p.subject_mass_kg * (acc - self.gravity_m_s2)
        pts, pts1, _ = fc.run(PTS)
        pv = (pts - pts1) / h
        lik_pt = point_likelihood(pts, pv, floor, p)
        lik = lik_pt.reshape(n, 2, body.n_points).max(axis=-1)
        cop = cop_batch(PTS, lik_pt, body.point_weight, floor)
        tracker = PhaseTracker(p, self.rate)
        share_r = np.empty(n)
        contact = np.zeros((n, 2), bool)
        for k in range(n):
            share_r[k] = tracker.update(float(t[k]), float(lik[k, 0]), float(lik[k, 1]), cs[k], cv[k], cop[k])
            contact[k, 0], contact[k, 1] = tracker.contact
        self.out.contact[sl] = contact
        self.out.contact_likelihood[sl] = lik
        self.out.com_acc_m_s2[sl] = acc
        self._finish(F, cs, dl, cop, share_r, sl)
        self._feasible(PTS, lik_pt, contact, F, cs, dl, sl)

    def _feasible(self, PTS: np.ndarray, lik_pt: np.ndarray, contact: np.ndarray, F: np.ndarray, c: np.ndarray,
                  dl: np.ndarray, sl: slice) -> None:
        """Replace the rule-based forces of ``sl`` (already in ``out``, the fit's prior) by the feasible fit."""
        if self.fit is None:
            return
        out, n, P = self.out, PTS.shape[0], self.body.n_points
        pxy = PTS.reshape(n, 2, P, 3)[..., :2]
        cw = cop_weights(PTS, lik_pt, self.body.point_weight)
        low = PTS.reshape(n, 2, P, 3)[..., 2].min(axis=-1) - self.floor
        active = supporting_feet(contact, low, self.p.feasible_fallback_reach_m)
        force, cop, free, res_f, res_m = fit_frames(self.fit, pxy, active, c, F, dl, out.force_n[sl], cw,
                                                    self.floor)
        out.force_n[sl] = force
        out.cop_m[sl] = cop
        out.free_moment_nm[sl] = free
        out.residual_force_n[sl] = res_f
        out.residual_moment_nm[sl] = res_m

    def _finish(self, F: np.ndarray, c: np.ndarray, dl: np.ndarray, cop: np.ndarray, share_r: np.ndarray,
                sl: slice) -> None:
        """Forces, free moments and residuals from F_ext (n, 3), COM, dL/dt (subject-scaled), CoP, share."""
        out = self.out
        fr = share_r[:, None] * F
        if self.p.horizontal_split == "pivot":
            # each foot's horizontal force points at the virtual pivot, the remainder is shared; sum stays F
            piv = c + np.array([0.0, 0.0, self.p.pivot_height_m])
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
        if self.p.free_moment == "balance":
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
