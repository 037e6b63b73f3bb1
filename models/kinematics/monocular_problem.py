"""The least-squares problem of model-based monocular fitting over a window of frames, and its solver.

Unknowns: the coordinates ``X`` (F, n) of F consecutive frames (see :mod:`models.kinematics.monocular_model`);
up to two earlier frames may be given as fixed context (the live fixed-lag window, the per-frame
initialisation).  Residual rows, each normalised by its sigma (:class:`MonocularFitParams`):

* reprojection, 2 per landmark and frame: ``sqrt(score w_l) (pi(p_l(x_k)) - u_lk) / sigma_px`` (px / px),
  Huber loss on each landmark's 2-vector norm (IRLS);
* contact, per stance foot: height of its contact landmark minus ``contact_height_m`` (1 row), and its
  horizontal displacement since the previous frame over ``slide_sigma_m_s dt`` when that frame had the same
  contact point (2 rows);
* velocity and acceleration of every coordinate (finite differences on the actual time steps);
* hip adduction and rotation towards 0 (weak: out of the image plane of a side-on camera);
* optionally a weak prior: sites relative to the hip-landmark midpoint against BlazePose's world landmarks
  relative to theirs (3 rows per landmark).

Solver: Levenberg-Marquardt on the normal equations ``(J^T W J + lambda diag) dx = -J^T W r`` with the sparse
(block-banded) ``J`` (dense up to 48 unknowns, SuperLU above), steps projected onto the joint limits, a step
kept only if the robust cost falls.  :func:`solve_scipy` solves the same problem with
``scipy.optimize.least_squares`` (TRF, the same Jacobian, IRLS weights refreshed per outer round) for
comparison.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from models.kinematics.monocular_camera import PinholeCamera
from models.kinematics.monocular_model import LandmarkModel
from models.kinematics.monocular_params import MonocularFitParams
from models.kinematics.monocular_shape import SHAPE_NAMES, apply_shape, shape_matrices

__all__ = ["WindowData", "Window", "LMResult", "solve_lm", "solve_scipy"]

#: Unknowns up to which J and the normal equations are dense (one frame: the per-frame fits); above it sparse
#: (CSR products and SuperLU stay single-threaded: measured on this shared 2-core CPU under load, a dense
#: 128 x 128 LAPACK solve took 20-40 ms from thread contention in OpenBLAS, the sparse one 0.8 ms).
_DENSE_MAX = 48
#: Converged also when an accepted step lowers the cost by less than this fraction.
_FTOL = 1e-7


@dataclass
class WindowData:
    """Inputs of one window (E = C + F frames: C fixed context frames, then F unknown frames).

    ``time_s`` (E,); ``uv`` (F, M, 2) px in the landmark order of the model (NaN where missing); ``weight``
    (F, M) score x landmark weight (0 = unused); ``contact`` (E, 2) contact landmark index per foot into the
    model's landmarks (-1 none); ``context`` (C, n) fixed coordinates; ``prior`` (F, M, 3) or None;
    ``shape`` (G,) the segment-length corrections (:mod:`models.kinematics.monocular_shape`; None = 0), the
    starting point when the window estimates them.
    """

    time_s: np.ndarray
    uv: np.ndarray
    weight: np.ndarray
    contact: np.ndarray
    context: np.ndarray
    prior: np.ndarray | None = None
    shape: np.ndarray | None = None


class Window:
    """Residuals and the sparse Jacobian of one window (see the module docstring).  With ``estimate_shape``
    the G segment-length corrections are unknowns too (after the F x n coordinates; no context frames)."""

    def __init__(self, lm: LandmarkModel, camera: PinholeCamera, params: MonocularFitParams, data: WindowData,
                 estimate_shape: bool = False) -> None:
        self.lm, self.cam, self.p, self.d = lm, camera, params, data
        n, M = lm.n, len(lm.landmark_names)
        self.C = int(data.context.shape[0])
        self.F = int(data.uv.shape[0])
        self.E = self.C + self.F
        if data.time_s.shape != (self.E,) or data.contact.shape != (self.E, 2):
            raise ValueError("WindowData: time_s and contact must cover the context and the unknown frames")
        if estimate_shape and self.C:
            raise ValueError("Window: the segment-length corrections are estimated only without context frames")
        self.B = shape_matrices(lm.landmark_names)
        G = len(SHAPE_NAMES) if estimate_shape else 0
        self.s0 = np.zeros(len(SHAPE_NAMES)) if data.shape is None else np.asarray(data.shape, dtype=float).copy()
        if self.s0.shape != (len(SHAPE_NAMES),):
            raise ValueError(f"WindowData.shape must have {len(SHAPE_NAMES)} values {SHAPE_NAMES}, got {self.s0.shape}")
        self.n, self.M, self.G = n, M, G
        self._ng = n + G
        self._gcols = self.F * n + np.arange(G)
        self._isig_shape = 1.0 / np.asarray(params.shape_sigma, dtype=float)
        self._uv = np.nan_to_num(data.uv)
        self._sw = np.sqrt(np.where(np.isfinite(data.uv).all(axis=-1), data.weight, 0.0)) / params.pixel_sigma_px
        sig_acc = np.concatenate([[params.accel_sigma_pelvis_rad_s2] * 3, [params.accel_sigma_pelvis_m_s2] * 3,
                                  [params.accel_sigma_joint_rad_s2] * (n - 6)])
        sig_vel = np.concatenate([[params.velocity_sigma_rad_s] * 3, [params.velocity_sigma_m_s] * 3,
                                  [params.velocity_sigma_rad_s] * (n - 6)])
        self._ia, self._iv = 1.0 / sig_acc, 1.0 / sig_vel
        t = data.time_s
        dt = np.diff(t)
        # second differences on uneven steps: a_k = 2[(x_k - x_{k-1})/h2 - (x_{k-1} - x_{k-2})/h1]/(h1 + h2)
        self._acc = [(k, 2.0 / (dt[k - 2] * (dt[k - 2] + dt[k - 1])), -2.0 / (dt[k - 2] * dt[k - 1]),
                      2.0 / (dt[k - 1] * (dt[k - 2] + dt[k - 1]))) for k in range(max(2, self.C), self.E)]
        self._vel = [(k, -1.0 / dt[k - 1], 1.0 / dt[k - 1]) for k in range(max(1, self.C), self.E)]
        self._slide = [(k, f, int(data.contact[k, f])) for k in range(max(1, self.C), self.E) for f in range(2)
                       if data.contact[k, f] >= 0 and data.contact[k, f] == data.contact[k - 1, f]]
        self._dt = np.concatenate([[np.nan], dt])
        self._ctx_sites = [apply_shape(self.B, self.s0, lm.sites(x))[0] for x in data.context]
        hips = [lm.landmark_names.index(s) for s in ("left_hip", "right_hip")]
        self._hips = hips
        self._neutral = np.array([i for i, c in enumerate(lm.coordinate_names)
                                  if c.startswith(("hip_adduction", "hip_rotation"))], dtype=np.int64)
        self.n_reproj = 2 * M * self.F
        # sparsity of the reprojection block: row (k, landmark, axis) depends on the n coordinates of frame k
        # (and on the G shape corrections)
        self._rp_rows = np.repeat(np.arange(2 * M * self.F), self._ng)
        self._rp_cols = np.concatenate([np.repeat(np.arange(self.F), 2 * M)[:, None] * n + np.arange(n)[None],
                                        np.broadcast_to(self._gcols, (2 * M * self.F, G))], axis=1).reshape(-1)
        self.groups = np.repeat(np.arange(M * self.F), 2)

    def _cols(self, k: int) -> np.ndarray:
        """Unknown columns of frame k's sites: its n coordinates, then the G shape corrections."""
        return np.concatenate([k * self.n + np.arange(self.n), self._gcols])

    @property
    def n_unknowns(self) -> int:
        """F x n coordinates plus G shape corrections."""
        return self.F * self.n + self.G

    # -- residuals -----------------------------------------------------------------------------------------

    def evaluate(self, X: np.ndarray, jac: bool = True, shape: np.ndarray | None = None
                 ) -> tuple[np.ndarray, Any, np.ndarray]:
        """Residual vector, Jacobian with respect to ``X.ravel()`` then the G shape corrections (dense up to 48
        unknowns, else CSR; None without ``jac``), and the sites (F, M, 3); ``shape`` (default ``s0``)."""
        lm, cam, p, d = self.lm, self.cam, self.p, self.d
        n, M, C, F, G = self.n, self.M, self.C, self.F, self.G
        s = self.s0 if shape is None else np.asarray(shape, dtype=float)
        P = np.empty((F, M, 3))
        Js = np.empty((F, M, 3, n + G)) if jac else None
        for k in range(F):
            if jac:
                P0, J0 = lm.cached_sites_jacobian(X[k])
                P[k], Js[k, :, :, :n], dS = apply_shape(self.B, s, P0, J0)
                Js[k, :, :, n:] = dS[:, :, :G]
            else:
                P[k] = apply_shape(self.B, s, lm.sites(X[k]))[0]
        res: list[np.ndarray] = []
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        r0 = 0
        # reprojection (all frames at once; rows frame-major, landmark, u/v)
        if jac:
            uv, dpix = cam.project_jacobian(P.reshape(-1, 3))
            Jr = np.einsum("mab,mbn->man", dpix, Js.reshape(-1, 3, n + G)) * self._sw.reshape(-1)[:, None, None]
            rows.append(self._rp_rows)
            cols.append(self._rp_cols)
            vals.append(Jr.reshape(-1))
        else:
            uv = cam.project(P.reshape(-1, 3))
        rp = (uv.reshape(F, M, 2) - self._uv) * self._sw[:, :, None]
        res.append(rp.reshape(-1))
        r0 += 2 * M * F
        # contact height
        h = lm.contact_height_m if p.contact_height_m is None else np.full(M, p.contact_height_m)
        cz = np.zeros((F, 2))
        for k in range(F):
            for f in range(2):
                i = int(d.contact[C + k, f])
                if i >= 0:
                    cz[k, f] = (P[k, i, 2] - h[i]) / p.contact_sigma_m
                    if jac:
                        rows.append(np.full(n + G, r0 + 2 * k + f))
                        cols.append(self._cols(k))
                        vals.append(Js[k, i, 2] / p.contact_sigma_m)
        res.append(cz.reshape(-1))
        r0 += 2 * F
        # no slide
        sl = np.zeros((len(self._slide), 2))
        for j, (k, f, i) in enumerate(self._slide):
            sc = 1.0 / (p.slide_sigma_m_s * self._dt[k])
            kk = k - C
            prev = self._ctx_sites[k - 1][i] if k - 1 < C else P[kk - 1, i]
            sl[j] = (P[kk, i, :2] - prev[:2]) * sc
            if jac:
                for a in range(2):
                    rows.append(np.full(n, r0 + 2 * j + a))
                    cols.append(kk * n + np.arange(n))
                    vals.append(Js[kk, i, a, :n] * sc)
                    if k - 1 >= C:
                        rows.append(np.full(n, r0 + 2 * j + a))
                        cols.append((kk - 1) * n + np.arange(n))
                        vals.append(-Js[kk - 1, i, a, :n] * sc)
                    if G:  # the slide of a shaped site depends on the shape through both frames
                        rows.append(np.full(G, r0 + 2 * j + a))
                        cols.append(self._gcols)
                        vals.append((Js[kk, i, a, n:] - Js[kk - 1, i, a, n:]) * sc)
        res.append(sl.reshape(-1))
        r0 += sl.size
        # velocity and acceleration of the coordinates
        Xall = np.vstack([d.context, X]) if C else X
        ar = np.arange(n)
        for terms, inv in ((self._vel, self._iv), (self._acc, self._ia)):
            out = np.zeros((len(terms), n))
            for j, term in enumerate(terms):
                k, coef = term[0], term[1:]
                ks = range(k - len(coef) + 1, k + 1)
                out[j] = sum(c * Xall[kk] for c, kk in zip(coef, ks)) * inv
                if jac:
                    for c, kk in zip(coef, ks):
                        if kk >= C:
                            rows.append(r0 + j * n + ar)
                            cols.append((kk - C) * n + ar)
                            vals.append(c * inv)
            res.append(out.reshape(-1))
            r0 += out.size
        # weak pull of the out-of-plane coordinates to neutral
        nz = np.zeros((F, self._neutral.size))
        for k in range(F):
            nz[k] = X[k, self._neutral] / p.neutral_sigma_rad
            if jac:
                rows.append(r0 + k * self._neutral.size + np.arange(self._neutral.size))
                cols.append(k * n + self._neutral)
                vals.append(np.full(self._neutral.size, 1.0 / p.neutral_sigma_rad))
        res.append(nz.reshape(-1))
        r0 += nz.size
        # weak prior on BlazePose's world landmarks (pelvis-relative)
        if d.prior is not None:
            lh, rh = self._hips
            pr = np.zeros((F, M, 3))
            for k in range(F):
                ok = np.isfinite(d.prior[k]).all(axis=1) & np.isfinite(d.prior[k, [lh, rh]]).all()
                rel = P[k] - 0.5 * (P[k, lh] + P[k, rh])
                ref = d.prior[k] - 0.5 * (d.prior[k, lh] + d.prior[k, rh])
                pr[k] = np.where(ok[:, None], rel - ref, 0.0) / p.prior_sigma_m
                if jac:
                    Jr = (Js[k] - 0.5 * (Js[k, lh] + Js[k, rh])[None]) * (ok[:, None, None] / p.prior_sigma_m)
                    rows.append(np.repeat(r0 + k * 3 * M + np.arange(3 * M), n + G))
                    cols.append(np.tile(self._cols(k), 3 * M))
                    vals.append(Jr.reshape(-1))
            res.append(pr.reshape(-1))
            r0 += pr.size
        # prior of the shape corrections (the scaled model's lengths, within their regression error)
        if G:
            res.append(s[:G] * self._isig_shape[:G])
            if jac:
                rows.append(r0 + np.arange(G))
                cols.append(self._gcols)
                vals.append(self._isig_shape[:G].copy())
            r0 += G
        r = np.concatenate(res)
        J: np.ndarray | sp.csr_matrix | None = None
        if jac:
            ri, ci, vi = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
            nu = self.n_unknowns
            if nu <= _DENSE_MAX:  # one frame: dense is cheaper than building CSR
                J = np.zeros((r.size, nu))
                J[ri, ci] = vi  # (row, column) pairs are unique
            else:
                J = sp.csr_matrix((vi, (ri, ci)), shape=(r.size, nu))
        return r, J, P

    # -- robust cost -------------------------------------------------------------------------------------

    def robust(self, r: np.ndarray) -> tuple[float, np.ndarray]:
        """Half the robust cost and the IRLS row weights (Huber on each landmark's 2-D reprojection norm)."""
        k = self.p.huber_k
        rp = r[:self.n_reproj].reshape(-1, 2)
        e = np.sqrt(np.einsum("ij,ij->i", rp, rp))
        big = e > k
        rho = np.where(big, 2.0 * k * e - k * k, e * e)
        w = np.ones(r.size)
        w[:self.n_reproj] = np.repeat(np.where(big, k / np.maximum(e, 1e-300), 1.0), 2)
        rest = r[self.n_reproj:]
        return 0.5 * (float(rho.sum()) + float(rest @ rest)), w

    def clip(self, X: np.ndarray) -> np.ndarray:
        """``X`` projected onto the joint limits (in place)."""
        np.clip(X, self.lm.lower, self.lm.upper, out=X)
        return X


@dataclass
class LMResult:
    """Solution ``X`` (F, n), sites (F, M, 3), residual vector, iterations, converged, final half cost, and the
    shape corrections (G,) used (estimated when the window estimates them)."""

    X: np.ndarray
    sites: np.ndarray
    residual: np.ndarray
    iterations: int
    converged: bool
    cost: float
    shape: np.ndarray | None = None


#: Bound on each shape correction (relative length change): beyond +-40 % the model is not the subject's.
SHAPE_BOUND = 0.4


def _normal(J: Any, w: np.ndarray, r: np.ndarray) -> tuple[Any, np.ndarray]:
    """``J^T W J`` and ``J^T W r`` (dense or sparse like ``J``)."""
    if isinstance(J, np.ndarray):
        JW = J * w[:, None]
        return JW.T @ J, JW.T @ r
    JW = J.multiply(w[:, None]).tocsr()
    return (J.T @ JW).tocsr(), JW.T @ r


def _solve_normal(H: Any, g: np.ndarray, lam: float) -> np.ndarray:
    if isinstance(H, np.ndarray):
        A = H.copy()
        A.flat[:: A.shape[0] + 1] += lam * (np.diag(H) + 1e-6)
        try:
            return scipy.linalg.solve(A, -g, assume_a="pos", check_finite=False)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(A, -g, rcond=None)[0]
    A = (H + sp.diags(lam * (H.diagonal() + 1e-6))).tocsc()
    return scipy.sparse.linalg.splu(A).solve(-g)


def solve_lm(win: Window, X0: np.ndarray, max_iterations: int, tolerance: float, lam0: float = 1e-3) -> LMResult:
    """Levenberg-Marquardt from ``X0`` (F, n) (and the window's ``s0`` when it estimates the shape); see the
    module docstring."""
    X = win.clip(np.array(X0, dtype=float))
    S = win.s0.copy()
    G, nx = win.G, X.size
    r, J, P = win.evaluate(X, shape=S)
    cost, w = win.robust(r)
    lam = lam0
    converged = False
    it = 0
    while it < max_iterations:
        it += 1
        H, g = _normal(J, w, r)
        accepted = False
        step = 0.0
        while lam < 1e8:
            dx = _solve_normal(H, g, lam)
            Xn = win.clip(X + dx[:nx].reshape(X.shape))
            Sn = S.copy()
            Sn[:G] = np.clip(S[:G] + dx[nx:], -SHAPE_BOUND, SHAPE_BOUND)
            dmax = max(float(np.abs(Xn - X).max()), float(np.abs(Sn - S).max()))
            if dmax < tolerance:
                break  # the step is below the tolerance: converged (no evaluation needed)
            rn, Jn, Pn = win.evaluate(Xn, shape=Sn)
            cn, wn = win.robust(rn)
            if cn <= cost:
                step = dmax
                small = cost - cn <= _FTOL * cost
                X, S, r, J, P, cost, w = Xn, Sn, rn, Jn, Pn, cn, wn
                lam = max(lam / 3.0, 1e-7)
                accepted = True
                break
            lam *= 10.0
        if not accepted:
            converged = True  # a step below the tolerance, or no descent at any damping: a (local) minimum
            break
        if step < tolerance or small:
            converged = True
            break
    return LMResult(X=X, sites=P, residual=r, iterations=it, converged=converged, cost=cost, shape=S)


def solve_scipy(win: Window, X0: np.ndarray, max_iterations: int, tolerance: float, rounds: int = 4) -> LMResult:
    """The same problem with ``scipy.optimize.least_squares`` (TRF, sparse Jacobian, LSMR), IRLS weights fixed
    within each of ``rounds`` outer rounds; ``max_iterations`` function evaluations per round.  The shape
    corrections stay at the window's ``s0`` (not estimated)."""
    from scipy.optimize import least_squares

    if win.G:
        raise ValueError("solve_scipy does not estimate the shape corrections: build the Window without estimate_shape")

    shape = np.shape(X0)
    lo = np.broadcast_to(win.lm.lower, shape).reshape(-1)
    hi = np.broadcast_to(win.lm.upper, shape).reshape(-1)
    x = np.clip(np.asarray(X0, dtype=float).reshape(-1), lo, hi)
    lo = np.where(np.isfinite(lo), lo, -np.inf)
    total = 0
    ok = False
    for _ in range(rounds):
        r, _, _ = win.evaluate(x.reshape(shape), jac=False)
        _, w = win.robust(r)
        sw = np.sqrt(w)
        cache: dict[str, object] = {}

        def fun(z: np.ndarray) -> np.ndarray:
            rr, JJ, _ = win.evaluate(z.reshape(shape), jac=True)
            cache["x"], cache["J"] = z.copy(), JJ
            return rr * sw

        def jac(z: np.ndarray) -> Any:
            if "x" not in cache or not np.array_equal(cache["x"], z):
                fun(z)
            JJ = cache["J"]
            return sp.diags(sw) @ (sp.csr_matrix(JJ) if isinstance(JJ, np.ndarray) else JJ)

        sol = least_squares(fun, x, jac=jac, bounds=(lo, hi), method="trf", tr_solver="lsmr",
                            xtol=tolerance, ftol=1e-10, x_scale="jac", max_nfev=max_iterations)
        total += int(sol.nfev)
        step = float(np.abs(sol.x - x).max())
        x = sol.x
        ok = bool(sol.success)
        if step < tolerance:
            break
    X = x.reshape(shape)
    r, _, P = win.evaluate(X, jac=False)
    cost, _ = win.robust(r)
    return LMResult(X=X, sites=P, residual=r, iterations=total, converged=ok, cost=cost, shape=win.s0.copy())
