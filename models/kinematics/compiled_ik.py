"""Marker IK's damped Gauss-Newton loop compiled with numba (issue 22: 0.05 ms a frame against 0.5-0.6 ms in Python).

:func:`solve` is :meth:`models.kinematics.inverse_kinematics.InverseKinematics._solve` in numba, step for step: the
body kinematics and the marker points, the marker Jacobians of the used markers with the joint-equality chain rule,
``J^T W J + lambda I``, the box-constrained step of :func:`models.kinematics.step_solvers.box_constrained_solve`
(Cholesky here, LAPACK ``dposv`` there), the step cap, ``mj_integratePos`` (MuJoCo's C API), the range clip, the
equalities, the cost check and the damping update.  Two things differ from the Python loop, both at rounding level:
the kinematics are :func:`models.kinematics.body_kinematics.body_fk` (the bodies only: ``mj_kinematics`` also
places MyoLeg's 1060 sites and 121 geoms, 13 us a call, which alone would exceed the goal) and the Jacobian columns
are ``axis x (p - anchor)`` (:func:`~models.kinematics.body_kinematics.point_jacobian_column`, ``mj_jac``'s value),
accumulated over each marker's nonzero columns; and the small dense sums run in another order.  Tested on shared
trials (``tests/test_compiled_ik.py``): same iterations, flags and markers per frame, coordinates within 1e-10 rad /
1e-11 m (measured 1e-14 / 4e-15).

:func:`trial_loop` runs the warm-started frames of a trial with no Python between frames (markers -> used set ->
constant-velocity prediction -> solve -> velocity (``mj_differentiatePos``), flags, OpenSim pelvis coordinates,
residuals); it returns to Python at the first frame that needs the reference code: a cold start, too few markers, or
a warm result above ``reinit_rms_m`` (the re-initialisation), which :class:`CompiledIK` hands to the stage and then
resumes; :meth:`CompiledIK.step` runs one warm frame of ``InverseKinematics.step`` through it.  The body fields of
the stage's ``MjData`` (``xpos``, ``xquat``, ``xmat``, ``xanchor``, ``xaxis``) and ``qpos`` are those of the
solution; its geoms and sites are not updated.

C functions are declared to numba by name (``mj_integratePos``, ``mj_differentiatePos`` here, the clock in
``mj_capi``), so numba's on-disk cache stays valid across processes.  :func:`available` says whether the path can be
used; the stage falls back to its Python loop otherwise.

This module is pure computation: numpy, numba, mujoco and other ``models/`` modules.
"""
from __future__ import annotations

import ctypes
import math
import time
from collections import namedtuple
from functools import lru_cache
from typing import Any

import numba as nb
import numpy as np
from numba import types

from models.dynamics import mj_capi as capi
from models.kinematics import body_kinematics as bk
from models.kinematics.ik_types import IKStatus
from models.linalg_kernels import cholesky_substitute

__all__ = ["CompiledIK", "IKOut", "available", "solve", "trial_loop"]

_NJ = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")

_SYMBOLS = {
    # (m, qpos[nq], qvel[nv], dt)
    "mj_integratePos": types.void(types.uintp, types.uintp, types.uintp, types.float64),
    # (m, qvel[nv], dt, qpos1[nq], qpos2[nq])
    "mj_differentiatePos": types.void(types.uintp, types.uintp, types.float64, types.uintp, types.uintp),
}
_mj_integratePos = types.ExternalFunction("mj_integratePos", _SYMBOLS["mj_integratePos"])
_mj_differentiatePos = types.ExternalFunction("mj_differentiatePos", _SYMBOLS["mj_differentiatePos"])

# IKStatus bits (models.kinematics.ik_types.IKStatus)
_MISSING, _NOT_CONVERGED, _AT_LIMIT = 1, 4, 8

#: the stage's constants (arrays from InverseKinematics; scalars from its IKParams)
IKConst = namedtuple("IKConst", "body offset weight sel rot_idx trans_idx coord_qadr coord_lo coord_hi eq_dep eq_ind "
                                "eq_has eq_q0_ind eq_q0_dep eq_c cpl_eq cpl_sel cpl_dof pelvis damping tolerance "
                                "max_step_rad max_step_m min_markers reinit_rms max_iter predict B ent_ptr ent_col "
                                "ent_eq ent_kind ent_jnt ent_body ent_axis nz_ptr nz_col grp_ptr grp")
#: the stage's state and work buffers (the same arrays the Python path uses, so both see one state)
IKWork = namedtuple("IKWork", "q q_prev q_last v target P E err used usedf w J G jr A b dq dq_full dlo dhi fixed "
                              "deriv L y idx rhs state ts")
#: the MjData views read and written (NumPy views of MuJoCo's own buffers)
IKViews = namedtuple("IKViews", "qpos S")
#: per-frame outputs of a trial (the arrays of an IKTrial)
IKOut = namedtuple("IKOut", "coords qpos rms mx used iters status err dt")


@lru_cache(maxsize=1)
def _symbols(path: str) -> tuple[bool, str]:
    lib = ctypes.CDLL(path)
    missing = [s for s in _SYMBOLS if not hasattr(lib, s)]
    return (False, f"{path} lacks {missing}") if missing else (True, path)


def available(model: Any) -> tuple[bool, str]:
    """``(True, library)`` when the compiled IK can run here on ``model`` (an ``MjModel``:
    :func:`~models.dynamics.mj_capi.capi_available`, this module's symbols, :func:`~models.kinematics
    .body_kinematics.supported`), else ``(False, why)``."""
    ok, why = capi.capi_available()
    if ok:
        ok, why = _symbols(why)
    if ok:
        fk_ok, fk_why = bk.supported(model)
        if not fk_ok:
            return False, fk_why
    return ok, why


def _marker_columns(ik: Any) -> tuple[np.ndarray, ...]:
    """Per marker (CSR): the Jacobian entries of the dofs of its body's chain (solved column, equality or -1, and
    :func:`~models.kinematics.body_kinematics.dof_column`), direct columns first then the equalities' dependents,
    the distinct nonzero columns (ascending), and the markers grouped by body (CSR)."""
    m = ik.model
    body = np.asarray(ik._body, dtype=np.int64)
    anc = np.zeros((m.nbody, m.nbody), dtype=bool)           # anc[b, c]: body c is b or one of its ancestors
    for b in range(1, m.nbody):
        c = b
        while c > 0:
            anc[b, c] = True
            c = int(m.body_parentid[c])
    dof_how = np.array([bk.dof_column(m, d) for d in range(m.nv)], dtype=np.int64).reshape(-1, 4)
    sel, cdof = np.asarray(ik._sel, dtype=np.int64), np.asarray(ik._cpl_dof, dtype=np.int64)
    di, dk = np.nonzero(anc[body][:, m.dof_bodyid[sel]])    # direct entries (marker, column), row-major
    ci, cc = np.nonzero(anc[body][:, m.dof_bodyid[cdof]])   # equality dependents (marker, coupling)
    mk = np.concatenate((di, ci))
    order = np.argsort(mk, kind="stable")                    # per marker: direct first, then the dependents
    ent_col = np.concatenate((dk, np.asarray(ik._cpl_sel, dtype=np.int64)[cc]))[order]
    ent_eq = np.concatenate((np.full(dk.size, -1), np.asarray(ik._cpl_eq, dtype=np.int64)[cc]))[order]
    how = dof_how[np.concatenate((sel[dk], cdof[cc]))[order]].T
    ent_ptr = np.concatenate(([0], np.cumsum(np.bincount(mk, minlength=body.size))))
    nz = np.zeros((body.size, sel.size), dtype=bool)
    nz[mk, np.concatenate((dk, np.asarray(ik._cpl_sel, dtype=np.int64)[cc]))] = True
    nz_row, nz_col = np.nonzero(nz)
    nz_ptr = np.concatenate(([0], np.cumsum(np.bincount(nz_row, minlength=body.size))))
    grp = np.argsort(np.asarray(ik._body), kind="stable")         # markers grouped by body (same columns)
    cut = np.flatnonzero(np.diff(np.asarray(ik._body)[grp])) + 1
    grp_ptr = np.concatenate(([0], cut, [grp.size]))
    return tuple(np.ascontiguousarray(x, dtype=np.int64)
                 for x in (ent_ptr, ent_col, ent_eq, *how, nz_ptr, nz_col, grp_ptr, grp))


# ------------------------------------------------------------------------------------------------- kernels


@nb.njit(inline="always", **_NJ)
def _apply_eq(K, q):  # pragma: no cover - compiled
    """Dependents of the joint equalities from their polynomials (JointEqualities.apply, same operations)."""
    for e in range(K.eq_dep.shape[0]):
        x = (q[K.eq_ind[e]] - K.eq_q0_ind[e]) * K.eq_has[e]
        c = K.eq_c[e]
        v = c[4] * x + c[3]
        v = (v * x + c[2]) * x
        v = (v + c[1]) * x + c[0]
        q[K.eq_dep[e]] = v + K.eq_q0_dep[e]


@nb.njit(inline="always", **_NJ)
def _eq_derivative(K, q, out):  # pragma: no cover - compiled
    """d q[dep] / d q[ind] (JointEqualities.derivative, same operations)."""
    for e in range(K.eq_dep.shape[0]):
        x = q[K.eq_ind[e]] - K.eq_q0_ind[e]
        c = K.eq_c[e]
        v = 4.0 * c[4] * x + 3.0 * c[3]
        v = (v * x + 2.0 * c[2]) * x
        out[e] = (v + c[1]) * K.eq_has[e]


@nb.njit(inline="always", **_NJ)
def _clip_coordinates(K, q):  # pragma: no cover - compiled
    for k in range(K.coord_qadr.shape[0]):
        a = K.coord_qadr[k]
        q[a] = min(max(q[a], K.coord_lo[k]), K.coord_hi[k])


@nb.njit(**_NJ)
def _evaluate(D, K, W, q):  # pragma: no cover - compiled
    """Kinematics at q (coupled) into the data, marker points, errors; returns the weighted cost."""
    D.qpos[:] = q
    bk.body_fk(K.B, D.S, q)
    xmat, xpos = D.S.xmat, D.S.xpos
    cost = 0.0
    for i in range(K.body.shape[0]):
        b = K.body[i]
        o = K.offset[i]
        e2 = 0.0
        for r in range(3):
            p = xmat[b, 3 * r] * o[0] + xmat[b, 3 * r + 1] * o[1] + xmat[b, 3 * r + 2] * o[2]
            p += xpos[b, r]
            W.P[i, r] = p
            e = (W.target[i, r] - p) * W.usedf[i]
            W.E[i, r] = e
            e2 += e * e
        cost += W.w[i] * e2
        W.err[i] = math.sqrt(e2)
    return cost


# In the hot loops the arrays are taken out of the namedtuples first: each access to a tuple's array field inside a
# loop costs a reference-count increment and decrement (atomics), which made these loops five times slower.


@nb.njit(**_NJ)
def _jacobians(D, K, W):  # pragma: no cover - compiled
    """W.J[i] (3, n) of every used marker i on its nonzero columns (the dofs of its body's chain; equalities folded
    in); the other columns are not touched (never read)."""
    J, P, used, deriv, S = W.J, W.P, W.used, W.deriv, D.S
    nz_ptr, nz_col, ent_ptr, ent_col, ent_eq = K.nz_ptr, K.nz_col, K.ent_ptr, K.ent_col, K.ent_eq
    kind, jnt, body, axis = K.ent_kind, K.ent_jnt, K.ent_body, K.ent_axis
    for i in range(used.shape[0]):
        if not used[i]:
            continue
        for z in range(nz_ptr[i], nz_ptr[i + 1]):
            k = nz_col[z]
            J[i, 0, k] = J[i, 1, k] = J[i, 2, k] = 0.0
        p0, p1, p2 = P[i, 0], P[i, 1], P[i, 2]
        for e in range(ent_ptr[i], ent_ptr[i + 1]):
            c0, c1, c2 = bk.point_jacobian_column(S, kind[e], jnt[e], body[e], axis[e], p0, p1, p2)
            k = ent_col[e]
            if ent_eq[e] >= 0:
                f = deriv[ent_eq[e]]
                c0, c1, c2 = f * c0, f * c1, f * c2
            J[i, 0, k] += c0
            J[i, 1, k] += c1
            J[i, 2, k] += c2


@nb.njit(**_NJ)
def _normal_equations(D, K, W, q, lam):  # pragma: no cover - compiled
    """A = J^T W J + lam I, b = J^T W e at the current kinematics (J of the used markers).  Markers on one body share
    their nonzero columns: their products are summed in a compact block (W.G) over the three rows at once, then
    added to A's upper triangle."""
    if K.cpl_eq.shape[0]:
        _eq_derivative(K, q, W.deriv)
    _jacobians(D, K, W)
    A, b, J, G, jr, w, E, used = W.A, W.b, W.J, W.G, W.jr, W.w, W.E, W.used
    nz_ptr, nz_col, grp_ptr, grp = K.nz_ptr, K.nz_col, K.grp_ptr, K.grp
    n = A.shape[0]
    A[:, :] = 0.0
    b[:] = 0.0
    for g in range(grp_ptr.shape[0] - 1):
        z0 = nz_ptr[grp[grp_ptr[g]]]
        nz = nz_ptr[grp[grp_ptr[g]] + 1] - z0
        G[:nz, :nz] = 0.0
        seen = False
        for t in range(grp_ptr[g], grp_ptr[g + 1]):
            i = grp[t]
            if not used[i]:
                continue
            seen = True
            wi = w[i]
            for z in range(nz):
                k = nz_col[z0 + z]
                jr[0, z], jr[1, z], jr[2, z] = J[i, 0, k], J[i, 1, k], J[i, 2, k]
                b[k] += (jr[0, z] * wi) * E[i, 0] + (jr[1, z] * wi) * E[i, 1] + (jr[2, z] * wi) * E[i, 2]
            for z in range(nz):
                w0, w1, w2 = jr[0, z] * wi, jr[1, z] * wi, jr[2, z] * wi
                for y in range(z, nz):
                    G[z, y] += w0 * jr[0, y] + w1 * jr[1, y] + w2 * jr[2, y]
        if seen:
            for z in range(nz):
                k = nz_col[z0 + z]
                for y in range(z, nz):
                    A[k, nz_col[z0 + y]] += G[z, y]
    for k in range(n):
        for j in range(k + 1, n):
            A[j, k] = A[k, j]
        A[k, k] += lam


@nb.njit(**_NJ)
def _spd_solve(W, nf):  # pragma: no cover - compiled
    """x = A[idx, idx]^-1 rhs for the first nf entries of W.idx (Cholesky; least squares if not SPD): into W.y."""
    A, idx, L, y = W.A, W.idx, W.L, W.y
    ok = True
    for r in range(nf):
        for c in range(r + 1):
            s = A[idx[r], idx[c]]
            for k in range(c):
                s -= L[r, k] * L[c, k]
            if r == c:
                if not s > 0.0:
                    ok = False
                    break
                L[r, r] = math.sqrt(s)
            else:
                L[r, c] = s / L[c, c]
        if not ok:
            break
    if not ok:
        sub = np.empty((nf, nf))
        for r in range(nf):
            for c in range(nf):
                sub[r, c] = A[idx[r], idx[c]]
        y[:nf] = np.linalg.lstsq(sub, W.rhs[:nf].copy())[0]
        return
    for r in range(nf):
        y[r] = W.rhs[r]
    cholesky_substitute(L, y, nf)


@nb.njit(**_NJ)
def _box_step(K, W, q):  # pragma: no cover - compiled
    """A dq = b with lo - q <= dq <= hi - q: violators pinned at their limit, the rest re-solved (active set)."""
    n = K.sel.shape[0]
    for k in range(6):
        W.dlo[k] = -np.inf
        W.dhi[k] = np.inf
    for k in range(n - 6):
        W.dlo[6 + k] = K.coord_lo[k] - q[K.coord_qadr[k]]
        W.dhi[6 + k] = K.coord_hi[k] - q[K.coord_qadr[k]]
    for k in range(n):
        W.fixed[k] = False
        W.idx[k] = k
        W.rhs[k] = W.b[k]
    _spd_solve(W, n)
    W.dq[:] = W.y[:n]
    for _ in range(n):
        moved = False
        for k in range(n):
            if not W.fixed[k]:
                if W.dq[k] < W.dlo[k] - 1e-12:
                    W.dq[k] = W.dlo[k]
                    W.fixed[k] = moved = True
                elif W.dq[k] > W.dhi[k] + 1e-12:
                    W.dq[k] = W.dhi[k]
                    W.fixed[k] = moved = True
        if not moved:
            return
        nf = 0
        for k in range(n):
            if not W.fixed[k]:
                s = 0.0
                for j in range(n):
                    if W.fixed[j]:
                        s += W.A[k, j] * W.dq[j]
                W.idx[nf] = k
                W.rhs[nf] = W.b[k] - s
                nf += 1
        if nf == 0:
            return
        _spd_solve(W, nf)
        for r in range(nf):
            W.dq[W.idx[r]] = W.y[r]


@nb.njit(**_NJ)
def _capped_step(K, W):  # pragma: no cover - compiled
    """Scale dq so no rotation exceeds max_step_rad and no translation max_step_m."""
    rmax = 0.0
    for k in K.rot_idx:
        rmax = max(rmax, abs(W.dq[k]))
    tmax = 0.0
    for k in K.trans_idx:
        tmax = max(tmax, abs(W.dq[k]))
    s = min(1.0, K.max_step_rad / rmax if rmax > 0 else 1.0, K.max_step_m / tmax if tmax > 0 else 1.0)
    if s < 1.0:
        for k in range(W.dq.shape[0]):
            W.dq[k] *= s


@nb.njit(**_NJ)
def solve(m, D, K, W, max_iter):  # pragma: no cover - compiled
    """Damped Gauss-Newton from W.q (in place); ``m`` the model's C pointer.  Returns (iterations, converged,
    cost); leaves the kinematics of W.q in the data."""
    q, q_prev = W.q, W.q_prev
    lam = K.damping
    cost = _evaluate(D, K, W, q)
    q_prev[:] = q
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        _normal_equations(D, K, W, q, lam)
        _box_step(K, W, q)
        if np.abs(W.dq).max() < K.tolerance:
            converged = True
            break
        _capped_step(K, W)
        q_prev[:] = q
        W.dq_full[:] = 0.0
        for k in range(K.sel.shape[0]):
            W.dq_full[K.sel[k]] = W.dq[k]
        _mj_integratePos(m, q.ctypes.data, W.dq_full.ctypes.data, 1.0)
        _clip_coordinates(K, q)
        _apply_eq(K, q)
        new_cost = _evaluate(D, K, W, q)
        if new_cost > cost * (1.0 + 1e-12) + 1e-18:
            q[:] = q_prev
            cost = _evaluate(D, K, W, q)
            lam *= 10.0
            if lam > 1e6:
                break
        else:
            cost = new_cost
            lam = max(K.damping, lam / 3.0)
    return it, converged, cost


@nb.njit(**_NJ)
def warm_solve(m, D, K, W):  # pragma: no cover - compiled
    """A warm-started frame: the constant-velocity prediction (if on and a velocity is known), then :func:`solve`."""
    if K.predict and W.state[1]:
        _mj_integratePos(m, W.q.ctypes.data, W.v.ctypes.data, 1.0)
        _clip_coordinates(K, W.q)
        _apply_eq(K, W.q)
    return solve(m, D, K, W, K.max_iter)


@nb.njit(**_NJ)
def _prepare(K, W, x):  # pragma: no cover - compiled
    """Used markers (finite, weight > 0), targets, weights of one frame ``x`` (M, 3); returns how many are used."""
    n_used = 0
    for i in range(x.shape[0]):
        ok = np.isfinite(x[i, 0]) and np.isfinite(x[i, 1]) and np.isfinite(x[i, 2]) and K.weight[i] > 0
        W.used[i] = ok
        W.usedf[i] = 1.0 if ok else 0.0
        W.w[i] = K.weight[i] * W.usedf[i]
        for r in range(3):
            W.target[i, r] = x[i, r] if np.isfinite(x[i, r]) else 0.0
        n_used += ok
    return n_used


@nb.njit(**_NJ)
def _pelvis(D, K, out):  # pragma: no cover - compiled
    """models.kinematics.opensim_pelvis.pelvis_opensim on the data's pelvis frame into out[:6]."""
    x, p = D.S.xmat[K.pelvis], D.S.xpos[K.pelvis]
    # r = T^T X with T^T = [[1, 0, 0], [0, 0, 1], [0, -1, 0]]: r0 = X0, r1 = X2, r2 = -X1 (rows)
    out[1] = math.asin(max(-1.0, min(1.0, -x[4])))
    out[0] = math.atan2(-x[1], x[7])
    out[2] = math.atan2(x[3], -x[5])
    out[3], out[4], out[5] = p[0], p[2], -p[1]


@nb.njit(**_NJ)
def _finish(m, D, K, W, O, k, status, it, conv, n_used):  # pragma: no cover - compiled
    """A warm frame's velocity, state, flags and outputs into row k of O."""
    _mj_differentiatePos(m, W.v.ctypes.data, 1.0, W.q_last.ctypes.data, W.q.ctypes.data)
    W.state[1] = 1
    W.q_last[:] = W.q
    W.state[0] = 1
    if not conv:
        status |= _NOT_CONVERGED
    nc = K.coord_qadr.shape[0]
    for j in range(nc):
        c = W.q[K.coord_qadr[j]]
        if c <= K.coord_lo[j] + 1e-9 or c >= K.coord_hi[j] - 1e-9:
            status |= _AT_LIMIT
        O.coords[k, 6 + j] = c
    O.qpos[k] = W.q
    _pelvis(D, K, O.coords[k])
    mx = 0.0
    for i in range(W.err.shape[0]):
        e = W.err[i]
        if W.used[i]:
            O.err[k, i] = e
            mx = max(mx, e)
        else:
            O.err[k, i] = np.nan
    O.rms[k] = _rms(W, n_used)
    O.mx[k] = mx
    O.used[k] = n_used
    O.iters[k] = it
    O.status[k] = status


@nb.njit(**_NJ)
def _rms(W, n_used):  # pragma: no cover - compiled
    """RMS marker error over the used markers (unused have err 0); np.dot is BLAS ddot, as in the stage's _rms."""
    return math.sqrt(np.dot(W.err, W.err) / n_used)


@nb.njit(**_NJ)
def trial_loop(m, D, K, W, markers, k0, O):  # pragma: no cover - compiled
    """Warm frames k0, k0+1, ... of ``markers`` (N, M, 3), world z up, into O.  Stops at the first frame the Python
    code must take: returns (k, code, iterations, converged, cost, status, used) with code 0 (cold start or too few
    markers: nothing done at frame k), 1 (warm result above reinit_rms_m: the state holds it) or 2 (all done)."""
    M = markers.shape[1]
    for k in range(k0, markers.shape[0]):
        t0 = capi.clock_ns(W.ts)
        n_used = _prepare(K, W, markers[k])
        status = _MISSING if n_used < M else 0
        if n_used < K.min_markers or not W.state[0]:
            return k, 0, 0, False, 0.0, status, n_used
        it, conv, cost = warm_solve(m, D, K, W)
        if _rms(W, n_used) > K.reinit_rms:
            O.dt[k] = (capi.clock_ns(W.ts) - t0) * 1e-9
            return k, 1, it, conv, cost, status, n_used
        _finish(m, D, K, W, O, k, status, it, conv, n_used)
        O.dt[k] = (capi.clock_ns(W.ts) - t0) * 1e-9
    return markers.shape[0], 2, 0, False, 0.0, 0, 0


# ------------------------------------------------------------------------------------------------- the stage's side


class CompiledIK:
    """The compiled path bound to one :class:`~models.kinematics.inverse_kinematics.InverseKinematics` (its
    model, data and buffers: one state for both paths)."""

    def __init__(self, ik: Any) -> None:
        p, eq = ik.params, ik._eq
        n = ik._n
        i64 = np.int64
        self._ik = ik
        self.m = capi.address(ik.model)
        d = ik.data
        self.D = IKViews(d.qpos, bk.body_state(d))
        self.K = IKConst(
            np.asarray(ik._body, dtype=i64), ik._offset, ik._weight, ik._sel, ik._rot_idx.astype(i64),
            ik._trans_idx.astype(i64), ik._coord_qadr, ik._coord_lo, ik._coord_hi, eq.dep_qadr, eq._ind_safe,
            eq._has_ind.astype(float), eq.q0_ind.astype(float), eq.q0_dep.astype(float),
            np.ascontiguousarray(eq.c), ik._cpl_eq, ik._cpl_sel, np.asarray(ik._cpl_dof, dtype=i64),
            int(ik._pelvis_body), float(p.damping_m2), float(p.tolerance), float(p.max_step_rad),
            float(p.max_step_m), int(p.min_markers), float(p.reinit_rms_m), int(p.max_iterations), bool(p.predict),
            bk.body_model(ik.model), *_marker_columns(ik))
        self.state = np.zeros(2, dtype=i64)
        self.W = IKWork(ik._q, ik._q_prev, ik._q_last, ik._v, ik._target, ik._P, ik._E, ik._err, ik._used,
                        ik._usedf, ik._w, ik._J, np.zeros((n, n)), np.zeros((3, n)), ik._A, ik._b, ik._dq,
                        ik._dq_full, ik._dlo, ik._dhi, ik._fixed, np.zeros(max(1, eq.dep_qadr.size)),
                        np.zeros((n, n)), np.zeros(n),
                        np.zeros(n, dtype=i64), np.zeros(n), self.state, capi.new_timespec())
        M, nq = len(ik.marker_names), ik.model.nq
        self._x1 = np.zeros((1, M, 3))
        self._o1 = IKOut(np.zeros((1, len(ik.coordinate_names))), np.zeros((1, nq)), np.zeros(1), np.zeros(1),
                         np.zeros(1, dtype=i64), np.zeros(1, dtype=i64), np.zeros(1, dtype=i64), np.zeros((1, M)),
                         np.zeros(1))

    def step(self, markers_m: np.ndarray, out: Any) -> bool:
        """A warm frame of :meth:`InverseKinematics.step` (shape checked) through :func:`trial_loop`; False (nothing
        changed that the Python step does not redo) for a cold start or too few markers."""
        ik = self._ik
        if not ik._initialised:
            return False
        np.copyto(self._x1[0], markers_m)
        self.state[:] = (1, ik._have_v)
        _, code, it, conv, cost, status, n_used = trial_loop(self.m, self.D, self.K, self.W, self._x1, 0, self._o1)
        if code == 0:
            return False
        ik._have_v = bool(self.state[1])
        if code == 1:
            ik._used_idx = np.flatnonzero(ik._used).tolist()
            ik._warm_tail(out, IKStatus(int(status)), int(it), bool(conv), float(cost), int(n_used))
            return True
        o = self._o1
        np.copyto(out.qpos, o.qpos[0])
        np.copyto(out.coordinates, o.coords[0])
        np.copyto(out.marker_used, ik._used)
        np.copyto(out.marker_error_m, o.err[0])
        out.residual_rms_m, out.residual_max_m = float(o.rms[0]), float(o.mx[0])
        out.markers_used, out.iterations, out.status = int(o.used[0]), int(o.iters[0]), IKStatus(int(o.status[0]))
        out.converged = not (out.status & IKStatus.NOT_CONVERGED)
        return True

    def solve(self, max_iter: int) -> tuple[int, bool, float]:
        """:meth:`InverseKinematics._solve` compiled (state: the stage's buffers)."""
        it, conv, cost = solve(self.m, self.D, self.K, self.W, int(max_iter))
        return int(it), bool(conv), float(cost)

    def run(self, markers: np.ndarray, O: IKOut, frame: Any, record: Any) -> None:
        """Every frame of ``markers`` (N, M, 3, world) into O: warm frames compiled, the others through the stage's
        ``step`` (or its re-initialisation tail); ``record(O, k, frame)`` stores a Python-solved frame."""
        ik = self._ik
        markers = np.ascontiguousarray(markers, dtype=float)
        k = 0
        while k < markers.shape[0]:
            self.state[:] = (ik._initialised, ik._have_v)
            k, code, it, conv, cost, status, n_used = trial_loop(self.m, self.D, self.K, self.W, markers, k, O)
            ik._initialised, ik._have_v = bool(self.state[0]), bool(self.state[1])
            if code == 2:
                return
            t0 = time.perf_counter()
            if code == 1:
                ik._used_idx = np.flatnonzero(ik._used).tolist()
                ik._warm_tail(frame, IKStatus(int(status)), int(it), bool(conv), float(cost), int(n_used))
            else:
                ik.step(markers[k], frame)
                O.dt[k] = 0.0
            O.dt[k] += time.perf_counter() - t0
            record(O, k, frame)
            k += 1
