"""The real-time path of the ground reaction estimate: one frame per :meth:`StepEstimator.step`, causal, with no
array allocation after construction (every buffer and view is made once).

Each frame: pose -> ramp-primed causal Butterworth of body COMs, orientations and foot points
(:class:`models.grf.smoothing.RampPrimedLowPassState`) -> backward differences (COM acceleration, dL/dt) -> point
contact likelihoods and CoPs -> load share (:class:`models.grf.load_share.PhaseTracker`) -> rule-based per-foot
forces, free moments and residuals -> (``contact_solver="feasible"``) the feasible contact fit of
:mod:`models.grf.feasible` with the rule-based forces as its prior.  Every output refers to ``t - lag`` (:meth:`GroundReactionEstimator.causal_lag_s`).  It
gives what ``GroundReactionEstimator.run`` gives with ``params.causal=True`` to 1e-9 BW (the two differ only in the
order of floating-point operations).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from models.grf.smoothing import RampPrimedLowPass, RampPrimedLowPassState
from models.grf.body import BodyModel
from models.grf.batch import feasible_fit
from models.grf.contact import sigmoid_
from models.grf.load_share import PhaseTracker
from models.grf.params import GroundReactionParams
from models.grf.records import GroundReactionFrame

__all__ = ["StepEstimator"]


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


#: Still-foot samples kept by the online floor refinement (about 4 s of single support at 60 Hz).
_FLOOR_RING = 512


class StepEstimator:
    """Per-frame state of the causal estimate for one :class:`BodyModel` (subject-scaled by ``mass_scale``).

    :meth:`reset` (frame rate, floor) before the first :meth:`step`.
    """

    def __init__(self, body: BodyModel, params: GroundReactionParams, mass_scale: float,
                 gravity_m_s2: np.ndarray) -> None:
        self.body = body
        self.params = params
        self.mass_scale = mass_scale
        self.gravity_m_s2 = gravity_m_s2
        self._m = body.masses_kg
        self._inv_mass = 1.0 / body.model_mass_kg
        self._inertia = body.inertia
        self._pt_weight = body.point_weight
        body.mj_data()  # mj_kinematics per frame: its MjData made here, not in step
        self._build_buffers()
        self._build_ang_mom_buffers()
        self._fit = feasible_fit(body, params, gravity_m_s2) if params.contact_solver == "feasible" else None
        self._seg_k = 0
        self._k = -1
        self._last_t = math.nan

    def _build_buffers(self) -> None:
        nb, np2, P = self.body.bodies.size, 2 * self.body.n_points, self.body.n_points
        self._buf = self.body.new_buffers()
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
        self._lik_pt, self._tmp_pt, self._tmp_pt3, self._speed2_pt = z(np2), z(np2), z((np2, 3)), z(np2)
        self._w, self._ws = z((2, P)), z(2)
        self._cw, self._pxy = z((2, P)), z((2, P, 2))  # CoP weights (rows sum to 1), sole points on the floor
        self._pts_xy = self._pts.reshape(2, P, 3)[:, :, :2]
        self._pz_feet = (self._pts[:P, 2], self._pts[P:, 2])
        self._active = np.zeros(2, bool)
        self._cop, self._forces, self._rel, self._mom2 = z((2, 3)), z((2, 3)), z((2, 3)), z((2, 3))
        # views made once
        self._pf_z = self._pts_f[:, 2]
        self._lik_feet = (self._lik_pt[:P], self._lik_pt[P:])
        self._lik2 = self._lik_pt.reshape(2, P)
        self._foot_views = [(self._w[f], self._pts[f * P:(f + 1) * P, 0], self._pts[f * P:(f + 1) * P, 1],
                             self._pts[f * P:(f + 1) * P, 2]) for f in range(2)]
        self._f0, self._f1 = self._forces[0], self._forces[1]
        # online floor refinement (params.floor_adapt_max_m): ring of still-foot lowest points, median by partition
        self._floor_ring, self._floor_sort = np.zeros(_FLOOR_RING), np.zeros(_FLOOR_RING)
        self._speed2_feet = (self._speed2_pt[:P], self._speed2_pt[P:])
        self._pfz_feet = (self._pf_z[:P], self._pf_z[P:])
        self._floor0, self._floor_n = 0.0, 0
        self._cross_mom = _Cross(self._rel, self._forces, self._mom2)

    def _build_ang_mom_buffers(self) -> None:
        nb = self.body.bodies.size
        z = np.zeros
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

    def reset(self, rate_hz: float, floor_height_m: float) -> None:
        """Start a new sequence at ``rate_hz`` frames per second on the floor ``z = floor_height_m`` (m)."""
        p = self.params
        self._floor = self._floor0 = float(floor_height_m)
        self._floor_n = 0
        self._h = 1.0 / float(rate_hz)
        fb = RampPrimedLowPass(p.filter_order, p.cutoff_hz, float(rate_hz))
        self._fs_x = RampPrimedLowPassState(fb, self._xs.shape)
        self._fs_r = RampPrimedLowPassState(fb, self._rs.shape)
        self._fs_pts = RampPrimedLowPassState(fb, self._pts.shape)
        self._tracker = PhaseTracker(p, float(rate_hz))
        if self._fit is not None:
            self._fit.reset()  # a new sequence starts the fit's warm start afresh, as the batch path does
        self._primed = False
        self._seg_k = 0
        self._gap_frames = 0
        self._k = -1
        self._last_t = math.nan

    def step(self, frame: Any, out: GroundReactionFrame) -> None:
        """One frame (``frame.qpos``, optional ``lumbar_rad`` and ``t_s``) into ``out``; see
        :meth:`GroundReactionEstimator.step`."""
        self._k += 1
        t = self._frame_time(frame)
        out.t_s = t
        out.index = self._k
        qpos = frame.qpos
        lum = getattr(frame, "lumbar_rad", None)
        # NaN/inf check without a temporary array (a finite frame has a finite dot product with itself)
        ok = math.isfinite(float(np.dot(qpos, qpos))) and (lum is None or math.isfinite(float(np.dot(lum, lum))))
        if not ok:
            out.valid = False
            self._gap_frames += 1
            if self._gap_frames * self._h > self.params.max_gap_s:
                self._primed = False
            return
        self._gap_frames = 0
        seg_k = self._seg_k if self._primed else 0
        self.body.pose(qpos, lum, self._buf)
        self._filter(seg_k)
        self._kinematics(seg_k)
        if seg_k > 0 and self.params.floor_adapt_max_m > 0.0:
            self._adapt_floor()
        lr, ll = self._contact_likelihood()
        self._cop_of_feet()
        share = self._tracker.update(t, lr, ll, self._c, self._cv, self._cop)
        self._split_forces(share)
        self._write(out, share, lr, ll)
        if self._fit is None:
            self._write_rule_split(share, out)
        else:  # the fit writes the forces, CoPs, free moments and residuals; the rule split is its prior
            np.copyto(self._pxy, self._pts_xy)
            act = self._active
            act[0], act[1] = self._tracker.contact
            if not (act[0] or act[1]):  # missed detection: feet near the floor may carry force (supporting_feet)
                reach = self._floor + self.params.feasible_fallback_reach_m
                act[0] = float(self._pz_feet[0].min()) < reach
                act[1] = float(self._pz_feet[1].min()) < reach
            self._fit.frame(self._pxy, act, self._c, self._F, self._dl, self._forces, self._cw,
                            self._floor, out.force_n, out.cop_m, out.free_moment_nm, out.residual_force_n,
                            out.residual_moment_nm)
        self._advance(seg_k)

    def _frame_time(self, frame: Any) -> float:
        """The frame's ``t_s``, else the last time plus one period (0 for the first frame)."""
        t = getattr(frame, "t_s", math.nan)
        t = float(t) if t is not None else math.nan
        if not math.isfinite(t):
            t = (self._last_t + self._h) if math.isfinite(self._last_t) else 0.0
        self._last_t = t
        return t

    def _filter(self, seg_k: int) -> None:
        """Prime (frame 0: constant, frame 1: ramp through frames 0 and 1) and run the causal filters."""
        xs, rs, pts = self._xs, self._rs, self._pts
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
        self._fs_x.step(xs, self._xf)
        self._fs_r.step(rs, self._rf)
        self._fs_pts.step(pts, self._pts_f)

    def _kinematics(self, seg_k: int) -> None:
        """COM, its acceleration and velocity, dL/dt (subject-scaled), F_ext = m (a - g) and the squared foot-point
        speeds of the filtered frame."""
        xf, rf, pf = self._xf, self._rf, self._pts_f
        c, c1, c2, acc = self._c, self._c1, self._c2, self._acc
        inv_h = 1.0 / self._h
        np.dot(self._m, xf, out=c)
        c *= self._inv_mass
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
            c2 *= self._inv_mass  # c(d)
            np.subtract(c, c2, out=c1)
            c2 *= -2.0
            c2 += c
        np.subtract(xf, self._xf1, out=self._xv)
        self._xv *= inv_h
        np.subtract(rf, self._rf1, out=self._rv)
        self._rv *= inv_h
        np.subtract(pf, self._pts_f1, out=self._pts_v)
        self._pts_v *= inv_h
        np.multiply(self._pts_v, self._pts_v, out=self._tmp_pt3)  # squared point speeds: floor and contact
        np.sum(self._tmp_pt3, axis=1, out=self._speed2_pt)
        np.multiply(c1, -2.0, out=acc)
        acc += c
        acc += c2
        acc *= inv_h * inv_h
        np.dot(self._m, self._xv, out=self._cv)
        self._cv *= self._inv_mass
        self._ang_mom(c, self._cv, self._L)
        if seg_k <= 1:
            np.copyto(self._L1, self._L)
        np.subtract(self._L, self._L1, out=self._dl)
        self._dl *= self.mass_scale * inv_h
        np.subtract(acc, self.gravity_m_s2, out=self._F)
        self._F *= self.params.subject_mass_kg

    def _ang_mom(self, c: np.ndarray, cv: np.ndarray, out: np.ndarray) -> None:
        """Allocation-free twin of :meth:`BodyModel.angular_momentum` for the filtered frame (model masses)."""
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

    def _adapt_floor(self) -> None:
        """Refine ``_floor`` from the still feet of this frame (``GroundReactionParams.floor_adapt_max_m``)."""
        p = self.params
        still2 = p.floor_still_speed_m_s * p.floor_still_speed_m_s
        added = False
        for f in range(2):
            if float(self._speed2_feet[f].max()) < still2:
                z = float(self._pfz_feet[f].min())
                if abs(z - self._floor0) <= p.floor_adapt_max_m:
                    self._floor_ring[self._floor_n % _FLOOR_RING] = z
                    self._floor_n += 1
                    added = True
        if added and self._floor_n >= p.floor_adapt_min_samples:
            n = min(self._floor_n, _FLOOR_RING)
            buf = self._floor_sort[:n]
            np.copyto(buf, self._floor_ring[:n])
            buf.partition(n // 2)
            self._floor = float(buf[n // 2])

    @property
    def floor_height_m(self) -> float:
        """The floor this estimate uses now (m, z up): the one given to :meth:`reset`, or its online refinement."""
        return self._floor

    def _contact_likelihood(self) -> tuple[float, float]:
        """Point likelihoods of the filtered foot points (into ``_lik_pt``); returns the feet's (right, left)."""
        p = self.params
        lik, tp = self._lik_pt, self._tmp_pt
        np.subtract(self._pf_z, self._floor, out=lik)
        np.subtract(p.contact_height_m, lik, out=lik)
        lik *= 1.0 / p.contact_height_scale_m
        sigmoid_(lik)
        np.sqrt(self._speed2_pt, out=tp)
        np.subtract(p.contact_speed_m_s, tp, out=tp)
        tp *= 1.0 / p.contact_speed_scale_m_s
        sigmoid_(tp)
        lik *= tp
        return float(self._lik_feet[0].max()), float(self._lik_feet[1].max())

    def _cop_of_feet(self) -> None:
        """CoP per foot: weighted mean of the raw points (so inside the foot's support polygon), on the floor."""
        cop = self._cop
        np.multiply(self._lik2, self._pt_weight, out=self._w)
        np.sum(self._w, axis=1, out=self._ws)
        for f in range(2):
            wf, px, py, pz = self._foot_views[f]
            ws = float(self._ws[f])
            cwf = self._cw[f]
            if ws > 1e-9:
                cop[f, 0] = float(np.dot(wf, px)) / ws
                cop[f, 1] = float(np.dot(wf, py)) / ws
                np.multiply(wf, 1.0 / ws, out=cwf)
            else:
                j = int(np.argmin(pz))
                cop[f, 0] = px[j]
                cop[f, 1] = py[j]
                cwf.fill(0.0)
                cwf[j] = 1.0
            cop[f, 2] = self._floor

    def _split_forces(self, share: float) -> None:
        """Rule-based per-foot forces (``_forces``) from the load share."""
        p = self.params
        F, c, cop = self._F, self._c, self._cop
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

    def _write_rule_split(self, share: float, out: GroundReactionFrame) -> None:
        """The rule-based split as the estimate (``contact_solver="share"``): forces, CoPs, free moments and the
        residuals into ``out``."""
        p = self.params
        F, c, cop = self._F, self._c, self._cop
        f0, f1 = self._f0, self._f1
        np.copyto(out.force_n, self._forces)
        np.copyto(out.cop_m, cop)
        np.add(f0, f1, out=out.residual_force_n)
        out.residual_force_n -= F
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

    def _write(self, out: GroundReactionFrame, share: float, lr: float, ll: float) -> None:
        """What either contact solver reports alike: load share, contact, likelihoods, F_ext, COM, dL/dt."""
        out.share[0] = share
        out.share[1] = 1.0 - share
        out.contact[0], out.contact[1] = self._tracker.contact
        out.contact_likelihood[0] = lr
        out.contact_likelihood[1] = ll
        np.copyto(out.total_force_n, self._F)
        np.copyto(out.com_m, self._c)
        np.copyto(out.com_acc_m_s2, self._acc)
        np.copyto(out.ang_mom_rate_nm, self._dl)
        out.valid = True

    def _advance(self, seg_k: int) -> None:
        """Shift the histories: this frame becomes the previous one."""
        np.copyto(self._xf1, self._xf)
        np.copyto(self._rf1, self._rf)
        np.copyto(self._pts_f1, self._pts_f)
        np.copyto(self._c2, self._c1)
        np.copyto(self._c1, self._c)
        np.copyto(self._L1, self._L)
        self._primed = True
        self._seg_k = seg_k + 1
