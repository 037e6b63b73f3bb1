"""Physically feasible contact forces: per frame, the ground reactions of both feet that come closest to the
whole-body dynamics while each foot's force has ``Fz >= 0``, lies in its friction cone, has its CoP inside its
support polygon, and is zero for a foot in swing.

Formulation (world frame z up, SI; forces scaled by the body weight ``BW`` inside the fit)
--------------------------------------------------------------------------------------------
Each sole point ``j`` of a foot in contact (the foot's points of :func:`models.grf.contact.myoleg_feet`, projected
onto the floor ``z = floor``) carries a force that is a non-negative combination of the ``K`` edges of a linearised
friction pyramid inscribed in the cone of coefficient ``mu``::

    f_j = sum_k lambda_jk e_k,   e_k = (mu cos(2 pi k / K), mu sin(2 pi k / K), 1),   lambda_jk >= 0

so ``f_j,z = sum_k lambda_jk >= 0``, ``|f_j,xy| <= mu f_j,z`` (the pyramid is inside the cone), every foot's total
is in the cone too (a sum of vectors of a convex cone), and the foot's CoP ``sum_j f_j,z p_j / sum_j f_j,z`` is a
convex combination of its points: inside its support polygon by construction.  A foot not in contact has no
columns (its force is exactly zero).  The fit is the non-negative least-squares problem::

    min_lambda>=0  |A_F lambda - F_ext|^2 + |(A_M lambda - dL/dt) / l_M|^2                      (dynamics)
                 + w_p^2 sum_f |F_f(lambda) - F_f^prior|^2                                       (load-share prior)
                 + w_c^2 sum_f sum_j (f_j,z - c_fj F_f,z)^2                                      (CoP prior)
                 + eps |lambda|^2                                                                 (ridge)

(all forces in BW, moments in BW m).  ``A_F lambda`` is the sum of the point forces, ``A_M lambda`` their moment
about the whole-body COM ``c`` (``sum_j (p_j - c) x f_j``, which includes the free moment the point forces make).
``F_ext = m (a_com - g)`` and ``dL/dt`` (rate of the whole-body angular momentum about the COM) are the measured
dynamics of :mod:`models.grf.estimator`, from the same stated filters on both paths.  The residual of the first
two terms is the smallest adjustment of the measured accelerations (``m Delta a_com``, ``Delta dL/dt``) that makes
the kinematics consistent with feasible contact forces; ``l_M`` (:attr:`GroundReactionParams.feasible_moment_length_m`)
says how many metres of lever arm a 1 N residual force is worth against a 1 N m residual moment.
``F_f^prior`` is the rule-based split of :mod:`models.grf.load_share` (single support: all on the stance foot;
double support: the smooth transition; horizontal: the virtual-pivot rule) with negative vertical parts clipped
to zero: a *soft* preference that resolves what the dynamics leave open in double support.  ``c_fj`` are the
rule-based CoP weights of the foot's points (contact likelihood x prior, :func:`models.grf.contact.cop_weights`).
``eps`` makes the problem strictly convex (unique solution).

Solver: Lawson & Hanson's active-set NNLS (Solving Least Squares Problems, 1974, ch. 23) on the normal equations
``Q = A^T A + eps I``, ``q = A^T b`` (the "fast NNLS" form of Bro & De Jong 1997, J Chemometrics 11:393) over the
columns of the feet in contact (at most 2 x 5 x 4 = 40 unknowns per frame), with a Cholesky factor of the passive
set updated as variables enter and leave, warm-started from the previous frame's passive set (consecutive frames
share most of it: 2.2 instead of 24.6 iterations per frame on the shared trials), in a numba kernel on preallocated
buffers (no allocation per frame; agrees with ``scipy.optimize.nnls`` on the stacked system to 1e-9 BW, and with the
cold-started full-refactor kernel it replaced to rounding, ``tests/test_grf_feasible.py``). The problem is strictly
convex, so the warm start changes the path, not the minimiser: on the eight shared trials forces move by <= 1.1e-9 N
and free moments by <= 3e-8 N m, what a 1e-15 relative change of F_ext alone moves them by (3e-8 N m).

Outputs per frame: each foot's force (N), CoP (m, on the floor), free moment about the vertical through its CoP
(N m), and the dynamic residual ``sum_f F_f - F_ext`` (N) and ``sum_f [(CoP_f - c) x F_f + T_f z] - dL/dt`` (N m):
what the feasible forces could not explain (sign as the rest of the estimate: estimate minus measured dynamics).

Friction coefficient ``mu`` (:attr:`GroundReactionParams.friction_mu`, default 0.7): the available static
coefficient of friction of shoe soles on dry lab / vinyl floors is about 0.6-0.8, well above the 0.17-0.3 required
in level walking (Redfern et al. 2001, Ergonomics 44:1138-1166, review; Chang et al. 2001, Ergonomics 44:1217).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from models.linalg_kernels import cholesky_substitute

__all__ = ["FeasibleFit", "fit_frames", "nnls_gram", "pyramid_edges", "supporting_feet"]

#: Number of rows of the stacked system besides the CoP rows: 3 force, 3 moment, 2 x 3 prior (z and xy per foot).
_N_FIXED_ROWS = 12


def pyramid_edges(mu: float, n_edges: int = 4) -> np.ndarray:
    """Edges (K, 3) of the linearised friction pyramid inscribed in the cone of coefficient ``mu``:
    ``(mu cos(2 pi k / K), mu sin(2 pi k / K), 1)``; a non-negative combination has vertical part = its weight sum."""
    if not (isinstance(mu, (int, float)) and math.isfinite(mu) and mu > 0):
        raise ValueError(f"friction mu must be a finite number > 0, got {mu!r}")
    if int(n_edges) != n_edges or n_edges < 3:
        raise ValueError(f"friction pyramid needs an integer >= 3 edges, got {n_edges!r}")
    th = 2.0 * np.pi * np.arange(int(n_edges)) / int(n_edges)
    return np.stack([mu * np.cos(th), mu * np.sin(th), np.ones_like(th)], axis=1)


def supporting_feet(contact: np.ndarray, lowest_height_m: np.ndarray, reach_m: float,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Feet allowed to carry force (..., 2) bool: those in contact; in a frame with neither foot in contact (a missed
    detection), those whose lowest sole point is less than ``reach_m`` above the floor (``lowest_height_m`` (..., 2),
    m).  A frame in true flight (F_ext = 0) still gets zero force from the fit; feet far above the floor get none."""
    contact = np.asarray(contact, bool)
    if out is None:
        out = np.empty(contact.shape, bool)
    none = ~(contact[..., 0] | contact[..., 1])
    np.copyto(out, contact)
    near = lowest_height_m < reach_m
    out |= none[..., None] & near
    return out


@njit(cache=True)
def _chol_row(Q: np.ndarray, idx: np.ndarray, L: np.ndarray, a: int) -> None:
    """Row ``a`` of the Cholesky factor ``L`` of ``Q[idx[:a+1]][:, idx[:a+1]]`` from its rows ``0..a-1``."""
    ia = idx[a]
    for b in range(a + 1):
        ib = idx[b]
        s = Q[ia, ib]
        for c in range(b):
            s -= L[a, c] * L[b, c]
        if a == b:
            L[a, a] = math.sqrt(s) if s > 1e-300 else 1e-150
        else:
            L[a, b] = s / L[b, b]


@njit(cache=True)
def _chol_solve(L: np.ndarray, q: np.ndarray, idx: np.ndarray, m: int, y: np.ndarray, z: np.ndarray) -> None:
    """``z[idx[:m]] = (L L^T)^-1 q[idx[:m]]`` (forward then back substitution; other entries of ``z`` untouched)."""
    for a in range(m):
        y[a] = q[idx[a]]
    cholesky_substitute(L, y, m)
    for a in range(m):
        z[idx[a]] = y[a]


@njit(cache=True)
def _drop_nonpositive(Q: np.ndarray, v: np.ndarray, passive: np.ndarray, idx: np.ndarray, L: np.ndarray,
                      m: int) -> int:
    """Remove from the passive set ``idx[:m]`` the variables with ``v <= 1e-15`` (``v`` set to 0 there), keeping the
    order of the rest; the Cholesky rows from the first removed one on are recomputed.  Returns the new size."""
    first = m
    k = 0
    for t in range(m):
        i = idx[t]
        if v[i] <= 1e-15:
            v[i] = 0.0
            passive[i] = False
            if first == m:
                first = t
        else:
            idx[k] = i
            k += 1
    for a in range(first, k):  # rows before the first removed variable are unchanged
        _chol_row(Q, idx, L, a)
    return k


@njit(cache=True)
def _warm_start(Q: np.ndarray, q: np.ndarray, x: np.ndarray, passive: np.ndarray, idx: np.ndarray, L: np.ndarray,
                y: np.ndarray, z: np.ndarray, m: int) -> tuple[int, int]:
    """From the guessed passive set ``idx[:m]``: its unconstrained minimiser, dropping the variables that come out
    <= 0 until all are positive; ``x`` set there.  Returns ``(m, solves)``."""
    it = 0
    for a in range(m):
        _chol_row(Q, idx, L, a)
    while m:
        it += 1
        _chol_solve(L, q, idx, m, y, z)
        k = _drop_nonpositive(Q, z, passive, idx, L, m)
        if k == m:
            break
        m = k
    for t in range(m):
        x[idx[t]] = z[idx[t]]
    return m, it


@njit(cache=True)
def nnls_gram(Q: np.ndarray, q: np.ndarray, x: np.ndarray, passive: np.ndarray, idx: np.ndarray, L: np.ndarray,
              y: np.ndarray, z: np.ndarray, w: np.ndarray, tol: float, max_iter: int, warm: bool = False) -> int:
    """Lawson-Hanson active-set NNLS on the normal equations: x = argmin_{x >= 0} x^T Q x / 2 - q^T x for SPD
    ``Q`` (n, n).  Work arrays: ``passive`` (n,) bool, ``idx`` (n,) int, ``L`` (n, n), ``y``, ``z``, ``w`` (n,).
    ``tol``: optimality tolerance on the gradient ``w = q - Q x``.  Returns the number of inner iterations.

    The passive set is kept in the order its variables entered (``idx[:m]``) with the Cholesky factor ``L`` of
    ``Q`` on it: a variable entering adds one row (O(m^2)), variables leaving refactor only the rows after the first
    one that left; the gradient sums over the passive set only (x is zero elsewhere).

    ``warm``: ``passive`` on entry is a guess of the solution's passive set (e.g. the previous frame's).  Its
    unconstrained minimiser is taken, variables that come out <= 0 are dropped until all are positive, and the
    iterations continue from that feasible point; the exit test (gradient <= ``tol`` off the passive set, positive
    on it) is the same, so the solution is the same minimiser (unique for SPD ``Q``) to rounding."""
    n = q.size
    m = 0
    for i in range(n):
        x[i] = 0.0
        z[i] = 0.0
        if warm and passive[i]:
            idx[m] = i
            m += 1
        else:
            passive[i] = False
    it = 0
    if m:
        m, it = _warm_start(Q, q, x, passive, idx, L, y, z, m)
    for i in range(n):
        s = q[i]
        for t in range(m):
            s -= Q[i, idx[t]] * x[idx[t]]
        w[i] = s
    while it < max_iter:
        jmax = -1
        wmax = tol
        for i in range(n):
            if not passive[i] and w[i] > wmax:
                wmax = w[i]
                jmax = i
        if jmax < 0:
            break
        passive[jmax] = True
        idx[m] = jmax
        _chol_row(Q, idx, L, m)
        m += 1
        while True:
            it += 1
            _chol_solve(L, q, idx, m, y, z)
            alpha = 2.0
            for t in range(m):
                i = idx[t]
                if z[i] <= 0.0:
                    den = x[i] - z[i]
                    a = x[i] / den if den > 0.0 else 0.0
                    if a < alpha:
                        alpha = a
            if alpha > 1.0:
                for t in range(m):
                    x[idx[t]] = z[idx[t]]
                break
            for t in range(m):
                i = idx[t]
                x[i] += alpha * (z[i] - x[i])
            m = _drop_nonpositive(Q, x, passive, idx, L, m)
            if it >= max_iter:
                break
        for i in range(n):
            s = q[i]
            for t in range(m):
                s -= Q[i, idx[t]] * x[idx[t]]
            w[i] = s
    return it


@njit(cache=True)
def _assemble(pxy: np.ndarray, active: np.ndarray, c: np.ndarray, F: np.ndarray, dl: np.ndarray,
              prior: np.ndarray, cw: np.ndarray, floor: float, bw: float, edges: np.ndarray, wts: np.ndarray,
              A: np.ndarray, bvec: np.ndarray) -> None:
    """The stacked least-squares system of one frame (module doc) into ``A`` (n, R) and ``bvec`` (R,)."""
    P = pxy.shape[1]
    K = edges.shape[0]
    n = 2 * P * K
    R = _N_FIXED_ROWS + 2 * P
    inv_lm, wp, wc = wts[0], wts[1], wts[2]
    inv_bw = 1.0 / bw
    # A (n, R) is the stacked system transposed: one contiguous row of coefficients per unknown
    for i in range(n):
        for r in range(R):
            A[i, r] = 0.0
    for r in range(R):
        bvec[r] = 0.0
    rz = floor - c[2]
    for f in range(2):
        if not active[f]:
            continue
        for j in range(P):
            rx = pxy[f, j, 0] - c[0]
            ry = pxy[f, j, 1] - c[1]
            for k in range(K):
                i = (f * P + j) * K + k
                ex, ey, ez = edges[k, 0], edges[k, 1], edges[k, 2]
                A[i, 0] = ex
                A[i, 1] = ey
                A[i, 2] = ez
                A[i, 3] = (ry * ez - rz * ey) * inv_lm
                A[i, 4] = (rz * ex - rx * ez) * inv_lm
                A[i, 5] = (rx * ey - ry * ex) * inv_lm
                A[i, 6 + f] = wp * ez
                A[i, 8 + 2 * f] = wp * ex
                A[i, 9 + 2 * f] = wp * ey
                for jj in range(P):
                    A[i, _N_FIXED_ROWS + f * P + jj] = wc * ((1.0 if jj == j else 0.0) - cw[f, jj]) * ez
    for a in range(3):
        bvec[a] = F[a] * inv_bw
        bvec[3 + a] = dl[a] * inv_bw * inv_lm
    for f in range(2):
        if active[f]:
            bvec[6 + f] = wp * max(prior[f, 2], 0.0) * inv_bw
            bvec[8 + 2 * f] = wp * prior[f, 0] * inv_bw
            bvec[9 + 2 * f] = wp * prior[f, 1] * inv_bw


@njit(cache=True)
def _gram(A: np.ndarray, bvec: np.ndarray, active: np.ndarray, P: int, K: int, eps: float, Q: np.ndarray,
          q: np.ndarray, cols: np.ndarray, lam: np.ndarray) -> int:
    """``Q[:na, :na] = A^T A + eps I`` and ``q[:na] = A^T b`` on the ``na`` columns of the feet in contact (returned;
    their indices in ``cols``); ``lam`` zeroed."""
    n = A.shape[0]
    R = A.shape[1]
    # Q = A^T A + eps I, q = A^T b on the columns of the feet in contact only (``cols``, in column order); the
    # other columns of A are zero, their unknowns exactly 0 (in the full problem they would never enter the
    # passive set, so the active-set path is the same).  Foot f's columns are nonzero only in the dynamics rows
    # 0-5, its prior rows (6 + f, 8 + 2 f, 9 + 2 f) and its CoP rows; sums run in row order.
    PK = P * K
    na = 0
    for i in range(n):
        lam[i] = 0.0
        if active[i // PK]:
            cols[na] = i
            na += 1
    for a in range(na):
        i = cols[a]
        fi = i // PK
        s = 0.0
        for r in range(R):
            s += A[i, r] * bvec[r]
        q[a] = s
        for b in range(a + 1):
            j = cols[b]
            s = 0.0
            for r in range(6):
                s += A[i, r] * A[j, r]
            if fi == j // PK:
                s += A[i, 6 + fi] * A[j, 6 + fi]
                s += A[i, 8 + 2 * fi] * A[j, 8 + 2 * fi]
                s += A[i, 9 + 2 * fi] * A[j, 9 + 2 * fi]
                for r in range(_N_FIXED_ROWS + fi * P, _N_FIXED_ROWS + fi * P + P):
                    s += A[i, r] * A[j, r]
            Q[a, b] = s
            Q[b, a] = s
        Q[a, a] += eps
    return na


@njit(cache=True)
def _outputs(lam: np.ndarray, pxy: np.ndarray, c: np.ndarray, F: np.ndarray, dl: np.ndarray, cw: np.ndarray,
             floor: float, bw: float, edges: np.ndarray, force: np.ndarray, cop: np.ndarray, free: np.ndarray,
             res_f: np.ndarray, res_m: np.ndarray) -> None:
    """Per-foot force, CoP and free moment, and the dynamic residuals, of the point-force weights ``lam``."""
    P = pxy.shape[1]
    K = edges.shape[0]
    rz = floor - c[2]
    for a in range(3):
        res_f[a] = 0.0
        res_m[a] = 0.0
    for f in range(2):
        fx = 0.0
        fy = 0.0
        fz = 0.0
        cx = 0.0
        cy = 0.0
        for j in range(P):
            pj = 0.0
            for k in range(K):
                lk = lam[(f * P + j) * K + k] * bw
                fx += lk * edges[k, 0]
                fy += lk * edges[k, 1]
                pj += lk * edges[k, 2]
            fz += pj
            cx += pj * pxy[f, j, 0]
            cy += pj * pxy[f, j, 1]
        if fz > 1e-9 * bw:
            cx /= fz
            cy /= fz
        else:
            cx = 0.0
            cy = 0.0
            for j in range(P):
                cx += cw[f, j] * pxy[f, j, 0]
                cy += cw[f, j] * pxy[f, j, 1]
        # free moment about the vertical through the CoP: the point forces' z moment about it
        tz = 0.0
        for j in range(P):
            gx = 0.0
            gy = 0.0
            for k in range(K):
                lk = lam[(f * P + j) * K + k] * bw
                gx += lk * edges[k, 0]
                gy += lk * edges[k, 1]
            tz += (pxy[f, j, 0] - cx) * gy - (pxy[f, j, 1] - cy) * gx
        force[f, 0] = fx
        force[f, 1] = fy
        force[f, 2] = fz
        cop[f, 0] = cx
        cop[f, 1] = cy
        cop[f, 2] = floor
        free[f] = tz
        rx = cx - c[0]
        ry = cy - c[1]
        res_f[0] += fx
        res_f[1] += fy
        res_f[2] += fz
        res_m[0] += ry * fz - rz * fy
        res_m[1] += rz * fx - rx * fz
        res_m[2] += rx * fy - ry * fx + tz
    for a in range(3):
        res_f[a] -= F[a]
        res_m[a] -= dl[a]


@njit(cache=True)
def _fit_one(pxy: np.ndarray, active: np.ndarray, c: np.ndarray, F: np.ndarray, dl: np.ndarray,
             prior: np.ndarray, cw: np.ndarray, floor: float, bw: float, edges: np.ndarray, wts: np.ndarray,
             A: np.ndarray, bvec: np.ndarray, Q: np.ndarray, q: np.ndarray, lam: np.ndarray, passive: np.ndarray,
             idx: np.ndarray, L: np.ndarray, y: np.ndarray, z: np.ndarray, w: np.ndarray, cols: np.ndarray,
             xc: np.ndarray, warm: np.ndarray, force: np.ndarray, cop: np.ndarray, free: np.ndarray, res_f: np.ndarray,
             res_m: np.ndarray) -> int:
    """One frame (see the module doc).  ``pxy`` (2, P, 2) sole points on the floor (m), ``active`` (2,) feet in
    contact, ``c`` COM (3,), ``F`` F_ext (3,) N, ``dl`` dL/dt (3,) N m, ``prior`` (2, 3) N, ``cw`` (2, P) CoP
    weights (each row sums to 1), ``wts`` = (1 / l_M [1/m], w_p, w_c, eps).  Writes ``force`` (2, 3) N, ``cop``
    (2, 3) m (the prior CoP ``sum_j cw_j p_j`` for an unloaded foot), ``free`` (2,) N m, ``res_f`` (3,) N and
    ``res_m`` (3,) N m.  ``warm`` (n,) bool: the previous frame's passive set in, this frame's out.  Returns the
    NNLS iterations."""
    P = pxy.shape[1]
    K = edges.shape[0]
    n = 2 * P * K
    _assemble(pxy, active, c, F, dl, prior, cw, floor, bw, edges, wts, A, bvec)
    na = _gram(A, bvec, active, P, K, wts[3], Q, q, cols, lam)
    it = 0
    if na:
        for a in range(na):
            passive[a] = warm[cols[a]]  # warm start: the previous frame's passive set on these columns
        it = nnls_gram(Q[:na, :na], q[:na], xc[:na], passive[:na], idx[:na], L, y[:na], z[:na], w[:na], 1e-12,
                       6 * n + 20, True)
        for a in range(na):
            lam[cols[a]] = xc[a]
    for i in range(n):
        warm[i] = False
    for a in range(na):
        warm[cols[a]] = passive[a]
    _outputs(lam, pxy, c, F, dl, cw, floor, bw, edges, force, cop, free, res_f, res_m)
    return it


@njit(cache=True)
def _fit_many(pxy: np.ndarray, active: np.ndarray, c: np.ndarray, F: np.ndarray, dl: np.ndarray,
              prior: np.ndarray, cw: np.ndarray, floor: float, bw: float, edges: np.ndarray, wts: np.ndarray,
              force: np.ndarray, cop: np.ndarray, free: np.ndarray, res_f: np.ndarray, res_m: np.ndarray) -> None:
    """:func:`_fit_one` over N frames (leading axis of every per-frame array)."""
    P = pxy.shape[2]
    n = 2 * P * edges.shape[0]
    R = _N_FIXED_ROWS + 2 * P
    A = np.zeros((n, R))
    bvec = np.zeros(R)
    Q = np.zeros((n, n))
    q = np.zeros(n)
    lam = np.zeros(n)
    passive = np.zeros(n, np.bool_)
    idx = np.zeros(n, np.int64)
    L = np.zeros((n, n))
    y = np.zeros(n)
    z = np.zeros(n)
    w = np.zeros(n)
    cols = np.zeros(n, np.int64)
    xc = np.zeros(n)
    warm = np.zeros(n, np.bool_)
    for t in range(pxy.shape[0]):
        _fit_one(pxy[t], active[t], c[t], F[t], dl[t], prior[t], cw[t], floor, bw, edges, wts, A, bvec, Q, q, lam,
                 passive, idx, L, y, z, w, cols, xc, warm, force[t], cop[t], free[t], res_f[t], res_m[t])


class FeasibleFit:
    """The per-frame feasible contact fit with its buffers made once (module doc).

    ``n_points``: sole points per foot; ``mu``: friction coefficient; ``n_edges``: pyramid edges; weights:
    ``moment_length_m`` (l_M, m), ``prior_weight`` (w_p), ``cop_weight`` (w_c), ``ridge`` (eps); ``body_weight_n``:
    the subject's weight (N), the force scale of the fit.
    """

    def __init__(self, n_points: int, body_weight_n: float, *, mu: float, n_edges: int, moment_length_m: float,
                 prior_weight: float, cop_weight: float, ridge: float) -> None:
        if not (math.isfinite(body_weight_n) and body_weight_n > 0):
            raise ValueError(f"body_weight_n must be a finite number > 0, got {body_weight_n!r}")
        self.edges = pyramid_edges(mu, n_edges)
        self.mu = float(mu)
        self.bw = float(body_weight_n)
        self.weights = np.array([1.0 / moment_length_m, prior_weight, cop_weight, ridge], float)
        P = int(n_points)
        n = 2 * P * self.edges.shape[0]
        R = _N_FIXED_ROWS + 2 * P
        z = np.zeros
        self._A, self._b, self._Q, self._q, self._lam = z((n, R)), z(R), z((n, n)), z(n), z(n)
        self._passive, self._idx, self._L = np.zeros(n, np.bool_), np.zeros(n, np.int64), z((n, n))
        self._y, self._z, self._w, self._xc = z(n), z(n), z(n), z(n)
        self._cols = np.zeros(n, np.int64)
        self._warm = np.zeros(n, np.bool_)  # the last frame's passive set: the next frame's warm start
        self._active = np.zeros(2, np.bool_)
        self.iterations = 0

    def reset(self) -> None:
        """Forget the warm start (the last frame's passive set): the next frame starts from an empty set."""
        self._warm[:] = False

    def frame(self, pxy: np.ndarray, contact: np.ndarray, c: np.ndarray, F: np.ndarray, dl: np.ndarray,
              prior: np.ndarray, cw: np.ndarray, floor: float, force: np.ndarray, cop: np.ndarray,
              free: np.ndarray, res_f: np.ndarray, res_m: np.ndarray) -> None:
        """One frame into the given output arrays (no allocation); shapes as :func:`fit_frames` without the N axis."""
        self._active[0] = bool(contact[0])
        self._active[1] = bool(contact[1])
        self.iterations = _fit_one(pxy, self._active, c, F, dl, prior, cw, float(floor), self.bw, self.edges,
                                   self.weights, self._A, self._b, self._Q, self._q, self._lam, self._passive,
                                   self._idx, self._L, self._y, self._z, self._w, self._cols, self._xc, self._warm,
                                   force, cop, free, res_f, res_m)

    def frames(self, pxy: np.ndarray, contact: np.ndarray, c: np.ndarray, F: np.ndarray, dl: np.ndarray,
               prior: np.ndarray, cw: np.ndarray, floor: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """N frames: see :func:`fit_frames`."""
        return fit_frames(self, pxy, contact, c, F, dl, prior, cw, floor)


def fit_frames(fit: FeasibleFit, pxy: np.ndarray, contact: np.ndarray, c: np.ndarray, F: np.ndarray,
               dl: np.ndarray, prior: np.ndarray, cw: np.ndarray, floor: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feasible fit of N frames: sole points on the floor ``pxy`` (N, 2, P, 2) m, ``contact`` (N, 2) bool, COM
    ``c`` (N, 3) m, ``F`` = F_ext (N, 3) N, ``dl`` = dL/dt (N, 3) N m, ``prior`` (N, 2, 3) N, CoP weights ``cw``
    (N, 2, P) (rows sum to 1), floor z (m).  Returns ``(force (N, 2, 3) N, cop (N, 2, 3) m, free (N, 2) N m,
    residual_force (N, 3) N, residual_moment (N, 3) N m)``."""
    n = pxy.shape[0]
    force, cop = np.zeros((n, 2, 3)), np.zeros((n, 2, 3))
    free, res_f, res_m = np.zeros((n, 2)), np.zeros((n, 3)), np.zeros((n, 3))
    f64 = np.ascontiguousarray
    _fit_many(f64(pxy, float), f64(contact, np.bool_), f64(c, float), f64(F, float), f64(dl, float),
              f64(prior, float), f64(cw, float), float(floor), fit.bw, fit.edges, fit.weights,
              force, cop, free, res_f, res_m)
    return force, cop, free, res_f, res_m
