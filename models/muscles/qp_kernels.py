"""Numba kernels of the per-frame static-optimisation QP (:mod:`models.muscles.static_optimization`).

The stage assembles, on preallocated arrays, the QP of one frame from MuJoCo's muscle state
(:func:`couplings_kernel`: slaved coordinates and their factors; :func:`moment_arms`: ``R`` from
``actuator_moment``; :func:`assemble`: ``C' = (R_solved diag(A))'``, ``b = tau - R^T B`` and the Hessian's envelope),
solves it (:func:`solve_qp`) and writes the frame's outputs (:func:`frame_outputs`).  :func:`solve_activation_qp`
is the same solver on a dense ``(C, b, P)`` for tests and offline cross-checks.

The solver: dual semismooth Newton with exact line search
---------------------------------------------------------
Write the constraint as ``C a + s = b`` with ``C = R_solved^T diag(A)`` (n_solved, n_muscles), ``b = tau - R^T B``
and ``P = diag(w_res / tau_scale^2)``.  The Lagrangian ``a'a + s'Ps - lambda'(Ca + s - b)`` is minimised in closed
form by ``a(lambda) = clip(C' lambda / 2, 0, 1)`` and ``s(lambda) = P^-1 lambda / 2``, so the dual

    phi(lambda) = sum_i h((C' lambda)_i / 2) - lambda' P^-1 lambda / 4 + lambda' b,
    h(u) = -u^2 on [0, 1], 0 below, 1 - 2u above,

is a concave, continuously differentiable, piecewise-quadratic function of only ``n_solved`` variables (14 for
MyoLeg, 71 for MyoFullBody) with gradient ``b - C a(lambda) - s(lambda)`` (the primal infeasibility) and generalised
Hessian ``-(C_F C_F' / 2 + P^-1 / 2)`` (``F``: muscles with ``0 < a_i < 1``), negative definite whatever the active
set thanks to the reserves.  Each step solves ``(C_F C_F'/2 + P^-1/2) d = grad`` and moves ``lambda += t d`` with
the **exact** ``t`` (the derivative of ``phi`` along ``d`` is piecewise linear; its zero is found by walking the
breakpoints where muscles enter or leave (0, 1), popped from a heap).  On the final quadratic piece the full
Newton step is exact, so the method ends after finitely many steps at the optimum, the finite-Newton scheme of
Keerthi & DeCoste (2005, JMLR 6:341) for the same kind of piecewise-quadratic objective: typically 2 steps per frame
warm-started from the previous frame's ``lambda`` (which carries the active set), 2-5 cold.  Stationarity and
complementary slackness hold by construction of ``a(lambda)``, ``s(lambda)``; the stopping test is primal
feasibility, ``max |b - C a - s| <= tolerance * (1 + max |b|)``.  A cold start (first frame, after
:meth:`StaticOptimization.reset`, or ``warm_start=False``) begins from the bound-free solution.

Cost per step: the Hessian is accumulated over each free muscle's few nonzero moment arms (4 coordinates per muscle
in MyoLeg, 5 in MyoFullBody) and factored by an envelope Cholesky in a reverse Cuthill-McKee order of the
coordinates (MyoLeg: two independent 7x7 legs; MyoFullBody: ~8k flops instead of ~120k dense).  Everything per frame
runs in numba on preallocated arrays.

Conditioning.  The accuracy any method can reach is set by ``cond = 1 + max P * max |C|^2``, the condition number of
the primal Hessian ``I + P C'C``: about 1e5 for MyoLeg at the default weight, where KKT residuals are 1e-12.
With a heavy weight (``w_res >= 1e6``) on a frame the muscles cannot satisfy, ``lambda`` reaches 1e7-1e9 and
``a_F = C_F' lambda / 2`` becomes a difference of huge numbers; the solver then re-solves the primal on the final
active set (``(I + C_F' P C_F) a_F = C_F' P (b - C_U 1)``, primal-dual active-set corrections) and reports
:data:`models.muscles.static_optimization.STATUS_ROUNDING_FLOOR` where even that cannot reach 1e-9 relative
(``residual_nm`` says by how much).


This module is pure computation: numpy and numba.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from models.linalg_kernels import cholesky_substitute

__all__ = [
    "couplings_kernel",
    "actuator_velocity",
    "muscle_passive_force",
    "moment_arms",
    "assemble",
    "solve_qp",
    "frame_outputs",
    "solve_frame",
    "solve_activation_qp",
]

_NJ = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")


@nb.njit(**_NJ)
def couplings_kernel(qpos, qvel, tau, apply, dep_qadr, dep_dof, ind_qadr, ind_dof, x0, y0, coef, dof_factor):
    """Fill slaved coordinates (if ``apply``) and their factors ``dy/dx``; return False on non-finite input."""
    for k in range(qpos.shape[0]):
        if not np.isfinite(qpos[k]):
            return False
    for k in range(qvel.shape[0]):
        if not np.isfinite(qvel[k]):
            return False
    for k in range(tau.shape[0]):
        if not np.isfinite(tau[k]):
            return False
    for e in range(dep_qadr.shape[0]):
        c0, c1, c2, c3, c4 = coef[e, 0], coef[e, 1], coef[e, 2], coef[e, 3], coef[e, 4]
        if ind_qadr[e] < 0:  # locked to a constant
            if apply:
                qpos[dep_qadr[e]] = y0[e] + c0
                qvel[dep_dof[e]] = 0.0
            dof_factor[dep_dof[e]] = 0.0
            continue
        x = qpos[ind_qadr[e]] - x0[e]
        dp = c1 + x * (2.0 * c2 + x * (3.0 * c3 + x * 4.0 * c4))
        if apply:
            qpos[dep_qadr[e]] = y0[e] + c0 + x * (c1 + x * (c2 + x * (c3 + x * c4)))
            qvel[dep_dof[e]] = dp * qvel[ind_dof[e]]
        dof_factor[dep_dof[e]] = dp
    return True


@nb.njit(**_NJ)
def actuator_velocity(rownnz, rowadr, colind, moment, qvel, out):
    """``out = actuator_moment @ qvel`` (MuJoCo's sparse rows): what ``mj_fwdVelocity`` writes to
    ``actuator_velocity``, without the rest of the velocity stage (CoM velocities, passive and bias forces)."""
    for a in range(out.shape[0]):
        acc = 0.0
        a0 = rowadr[a]
        for p in range(a0, a0 + rownnz[a]):
            acc += moment[p] * qvel[colind[p]]
        out[a] = acc


@nb.njit(**_NJ)
def muscle_passive_force(length, mus_act, lengthrange, acc0, biasprm, out):
    """``out[a] = `` MuJoCo's muscle bias (``mju_muscleBias``: the passive force-length curve, N, <= 0) of each
    muscle actuator ``a`` in ``mus_act`` at its ``actuator_length``: what ``mj_fwdActuation`` writes to
    ``actuator_force`` at activation 0, bit for bit (tested), without a second pass over all actuators.

    Normalised length ``L = range0 + (len - lengthrange0) / L0``, ``L0 = (lengthrange1 - lengthrange0) / (range1 -
    range0)``; zero up to ``L = 1``, half-quadratic to ``b = (1 + lmax) / 2``, linear beyond, scaled by ``fpmax`` and
    the peak force (``force < 0``: ``scale / acc0``)."""
    minval = 1e-15  # mjMINVAL
    for i in range(mus_act.shape[0]):
        a = mus_act[i]
        prm = biasprm[a]
        force = prm[2]
        if force < 0:
            force = prm[3] / max(minval, acc0[a])
        L0 = (lengthrange[a, 1] - lengthrange[a, 0]) / max(minval, prm[1] - prm[0])
        L = prm[0] + (length[a] - lengthrange[a, 0]) / max(minval, L0)
        b = 0.5 * (1 + prm[5])
        if L <= 1:
            out[a] = 0.0
        elif L <= b:
            x = (L - 1) / max(minval, b - 1)
            out[a] = -force * prm[7] * 0.5 * x * x
        else:
            x = (L - b) / max(minval, b - 1)
            out[a] = -force * prm[7] * (0.5 + x)


@nb.njit(**_NJ)
def moment_arms(rownnz, rowadr, colind, moment, mus_act, dof_coord, dof_factor, R, rcnt, ridx, mark):
    """R[i, k] = -sum of muscle i's moment entries over the dofs d that move coordinate k, times dq_d/dq_k.

    ``R`` stays dense but only each row's touched entries (``ridx[i, :rcnt[i]]``) are written: the previous
    frame's are zeroed first, so the cost is the number of nonzeros, not n_muscles x n_coord.  ``mark`` (n_coord,)
    must be all -1 on entry and is left so."""
    m = R.shape[0]
    for i in range(m):
        for p in range(rcnt[i]):
            R[i, ridx[i, p]] = 0.0
        cnt = 0
        act = mus_act[i]
        a0 = rowadr[act]
        for p in range(a0, a0 + rownnz[act]):
            d = colind[p]
            k = dof_coord[d]
            if k >= 0:
                if mark[k] != i:
                    mark[k] = i
                    ridx[i, cnt] = k
                    cnt += 1
                R[i, k] -= moment[p] * dof_factor[d]
        rcnt[i] = cnt
        for p in range(cnt):
            mark[ridx[i, p]] = -1


@nb.njit(**_NJ)
def assemble(R, rcnt, ridx, F1, F0, mus_act, tau, solved, pos, gain, passive, Ct, nzcnt, nzidx, env, b):
    """Tensions ``gain = -(F1 - F0)``, ``passive = -F0``; ``Ct[i] = R[i, solved] * gain[i]`` with each muscle's
    nonzero pattern ``nzidx[i, :nzcnt[i]]`` (internal order); ``b = tau_solved - R_solved^T passive``; the envelope
    ``env[j]`` = first column of row j of the Hessian (and of its Cholesky factor)."""
    m = R.shape[0]
    ns = solved.shape[0]
    for j in range(ns):
        b[j] = tau[solved[j]]
        env[j] = j
    for i in range(m):
        act = mus_act[i]
        g = F0[act] - F1[act]
        pas = -F0[act]
        gain[i] = g
        passive[i] = pas
        for p in range(nzcnt[i]):
            Ct[i, nzidx[i, p]] = 0.0
        cnt = 0
        lo = ns
        for p in range(rcnt[i]):
            k = ridx[i, p]
            j = pos[k]
            if j < 0:
                continue
            r = R[i, k]
            b[j] -= r * pas
            v = r * g
            if v != 0.0:
                Ct[i, j] = v
                nzidx[i, cnt] = j
                cnt += 1
                if j < lo:
                    lo = j
        nzcnt[i] = cnt
        for p in range(cnt):
            j = nzidx[i, p]
            if lo < env[j]:
                env[j] = lo


@nb.njit(**_NJ)
def _u_cls_gradient(Ct, nzcnt, nzidx, lam, b, hp, u, cls, a, g):
    """In one pass over the muscles: ``u = C' lam / 2``, the piece of each muscle (0: a = 0, 1: free, 2: a = 1),
    ``a = clip(u, 0, 1)`` and ``g = b - C a - hp * lam`` (the dual gradient, the primal infeasibility).  Returns
    (how many muscles changed piece, max |g|)."""
    ns = b.shape[0]
    for j in range(ns):
        g[j] = b[j] - hp[j] * lam[j]
    changed = 0
    for i in range(Ct.shape[0]):
        c = nzcnt[i]
        acc = 0.0
        for p in range(c):
            j = nzidx[i, p]
            acc += Ct[i, j] * lam[j]
        ui = 0.5 * acc
        u[i] = ui
        k = 0 if ui <= 0.0 else (2 if ui >= 1.0 else 1)
        if k != cls[i]:
            changed += 1
            cls[i] = k
        ai = 0.0 if ui <= 0.0 else (1.0 if ui >= 1.0 else ui)
        a[i] = ai
        if ai != 0.0:
            for p in range(c):
                j = nzidx[i, p]
                g[j] -= Ct[i, j] * ai
    gmax = 0.0
    for j in range(ns):
        x = abs(g[j])
        if x > gmax:
            gmax = x
    return changed, gmax


@nb.njit(**_NJ)
def _newton_direction(Ct, nzcnt, nzidx, cls, all_free, hp, env, g, H, d):
    """Solve (C_F C_F'/2 + diag(hp)) d = g: envelope Cholesky (row j of the factor spans columns env[j]..j; H's
    lower triangle is overwritten by the factor)."""
    ns = g.shape[0]
    for p in range(ns):
        for q in range(env[p], p):
            H[p, q] = 0.0
        H[p, p] = 0.0
    for i in range(Ct.shape[0]):
        if not all_free and cls[i] != 1:
            continue
        c = nzcnt[i]
        for p in range(c):
            jp = nzidx[i, p]
            vp = 0.5 * Ct[i, jp]
            for q in range(c):
                jq = nzidx[i, q]
                if jq <= jp:
                    H[jp, jq] += vp * Ct[i, jq]
    hmax = 0.0
    for i in range(ns):
        if H[i, i] > hmax:
            hmax = H[i, i]
    # the reserve term P^-1/2 on the diagonal, but at least 1e-14 of the largest: with a heavy reserve weight hp is
    # tiny and C_F C_F' singular, and below ~n eps the factor breaks down by rounding or grows without bound.
    # Returns True when that floor was used (the step is then not the exact Newton step of the piece).
    reg = 1e-14 * hmax
    regularised = False
    for i in range(ns):
        if hp[i] >= reg:
            H[i, i] += hp[i]
        else:
            H[i, i] += reg
            regularised = True
    piv_min = 1e-13 * hmax + 1e-300
    for i in range(ns):  # row-oriented (bordering) Cholesky within the envelope
        fi = env[i]
        for j in range(fi, i):
            s = H[i, j]
            k0 = fi if fi > env[j] else env[j]
            for k in range(k0, j):
                s -= H[i, k] * H[j, k]
            H[i, j] = s / H[j, j]
        s = H[i, i]
        for k in range(fi, i):
            s -= H[i, k] * H[i, k]
        if s < piv_min:  # breakdown by rounding (a heavy reserve weight: H = C_F C_F'/2 + tiny): modified
            s = piv_min  # Cholesky, L L' = H + E with E >= 0 diagonal, still an ascent direction
        H[i, i] = math.sqrt(s)
    for i in range(ns):  # forward: L y = g
        s = g[i]
        for k in range(env[i], i):
            s -= H[i, k] * d[k]
        d[i] = s / H[i, i]
    for i in range(ns - 1, -1, -1):  # backward: L' d = y (column sweep)
        di = d[i] / H[i, i]
        d[i] = di
        for k in range(env[i], i):
            d[k] -= H[i, k] * di
    return regularised


@nb.njit(**_NJ)
def _sift_down(key, val, start, n):
    """Min-heap on ``key[:n]`` (``val`` moves with it)."""
    i = start
    while True:
        c = 2 * i + 1
        if c >= n:
            return
        if c + 1 < n and key[c + 1] < key[c]:
            c += 1
        if key[c] >= key[i]:
            return
        key[i], key[c] = key[c], key[i]
        val[i], val[c] = val[c], val[i]
        i = c


@nb.njit(**_NJ)
def _exact_step(Ct, nzcnt, nzidx, u, g, d, lam, hp, delta, bkey, bval):
    """argmax over t > 0 of the dual along ``lam + t d``.

    ``phi(lam + t d)`` is piecewise quadratic in ``t``; its derivative ``g'd - t sum hp d^2 - 2 sum_i delta_i
    clip(u_i + t delta_i, 0, 1)`` (``delta = C'd / 2``) is piecewise linear and decreasing, with breakpoints where
    a muscle enters or leaves (0, 1).  Walk the breakpoints in order (a heap: only those before the maximiser are
    popped) until the derivative's zero falls inside a segment.  The exact line search is what makes the method
    converge in a few steps also when the curvature differs by orders of magnitude between pieces (a heavy
    reserve weight: ``hp`` tiny where few muscles are free)."""
    ns = d.shape[0]
    slope = 0.0
    hpd2 = 0.0  # curvature of the reserve term, > 0: kept apart so that rounding in the muscle part cannot eat it
    for j in range(ns):
        slope += g[j] * d[j]
        hpd2 += hp[j] * d[j] * d[j]
    fc = 0.0  # curvature of the free muscles, sum 2 delta_i^2
    nb_ = 0
    kmin = np.inf
    for i in range(Ct.shape[0]):
        acc = 0.0
        for p in range(nzcnt[i]):
            j = nzidx[i, p]
            acc += Ct[i, j] * d[j]
        di = 0.5 * acc
        delta[i] = di
        ui = u[i]
        if di == 0.0:
            continue
        c2 = 2.0 * di * di
        if (0.0 < ui < 1.0) or (ui == 0.0 and di > 0.0) or (ui == 1.0 and di < 0.0):
            fc += c2  # free just after t = 0
        if di > 0.0:
            if ui < 0.0:
                bkey[nb_] = -ui / di
                bval[nb_] = c2  # enters
                kmin = min(kmin, bkey[nb_])
                nb_ += 1
            if ui < 1.0:
                bkey[nb_] = (1.0 - ui) / di
                bval[nb_] = -c2  # leaves at the upper bound
                kmin = min(kmin, bkey[nb_])
                nb_ += 1
        else:
            if ui > 1.0:
                bkey[nb_] = (1.0 - ui) / di
                bval[nb_] = c2
                kmin = min(kmin, bkey[nb_])
                nb_ += 1
            if ui > 0.0:
                bkey[nb_] = -ui / di
                bval[nb_] = -c2
                kmin = min(kmin, bkey[nb_])
                nb_ += 1
    if not (slope > 0.0 and hpd2 > 0.0):
        return 0.0
    t = slope / (hpd2 + (fc if fc > 0.0 else 0.0))
    if nb_ == 0 or t <= kmin:   # the maximiser lies before every breakpoint (the usual last step): no heap
        return t if t < 1e100 else 1e100
    for k in range(nb_ // 2 - 1, -1, -1):
        _sift_down(bkey, bval, k, nb_)
    t0 = 0.0
    while True:
        t = t0 + slope / (hpd2 + (fc if fc > 0.0 else 0.0))
        if nb_ == 0 or t <= bkey[0]:
            return t if t < 1e100 else 1e100
        tk = bkey[0]
        slope -= (hpd2 + (fc if fc > 0.0 else 0.0)) * (tk - t0)
        t0 = tk
        fc += bval[0]
        nb_ -= 1
        bkey[0] = bkey[nb_]
        bval[0] = bval[nb_]
        _sift_down(bkey, bval, 0, nb_)


@nb.njit(**_NJ)
def _free_set(cls, fidx, ns):
    """Indices of the free muscles (``cls == 1``) into ``fidx``; returns their count, or -1 beyond ``ns``."""
    nf = 0
    for i in range(cls.shape[0]):
        if cls[i] == 1:
            if nf >= ns:
                return -1
            fidx[nf] = i
            nf += 1
    return nf


@nb.njit(**_NJ)
def _active_set_system(Ct, b, hp, cls, fidx, nf, M, r, x):
    """``r = b - C_U 1``, right side ``x = C_F' P r`` and the lower triangle of ``M = I + C_F' P C_F``."""
    ns = b.shape[0]
    m = Ct.shape[0]
    for j in range(ns):
        rj = b[j]
        for i in range(m):
            if cls[i] == 2:
                rj -= Ct[i, j]
        r[j] = rj
    for p in range(nf):
        ip = fidx[p]
        acc = 0.0
        for j in range(ns):
            acc += Ct[ip, j] * (0.5 / hp[j]) * r[j]
        x[p] = acc
        for q in range(p + 1):
            iq = fidx[q]
            acc = 0.0
            for j in range(ns):
                acc += Ct[ip, j] * (0.5 / hp[j]) * Ct[iq, j]
            M[p, q] = acc + (1.0 if p == q else 0.0)


@nb.njit(**_NJ)
def _cholesky_solve(M, x, nf):
    """Solve ``M y = x`` in place (``x`` becomes ``y``) by a dense lower Cholesky of ``M[:nf, :nf]`` (``M >= I``:
    no breakdown; the factor overwrites the lower triangle)."""
    for j in range(nf):
        sj = M[j, j]
        for k in range(j):
            sj -= M[j, k] * M[j, k]
        ljj = math.sqrt(max(sj, 1.0))
        M[j, j] = ljj
        for i in range(j + 1, nf):
            si = M[i, j]
            for k in range(j):
                si -= M[i, k] * M[j, k]
            M[i, j] = si / ljj
    cholesky_substitute(M, x, nf)


@nb.njit(**_NJ)
def _multipliers(Ct, hp, r, fidx, nf, x, g):
    """``lam = 2 P s`` of the active set into ``g``, with ``s = r - C_F a_F``."""
    for j in range(hp.shape[0]):
        sj = r[j]
        for p in range(nf):
            sj -= Ct[fidx[p], j] * x[p]
        g[j] = sj / hp[j]


@nb.njit(**_NJ)
def _half_u(Ct, nzcnt, nzidx, i, lam):
    """``((C' lam)_i, sum_j |C_ji lam_j|)`` of muscle ``i``."""
    ui = 0.0
    uabs = 0.0
    for p in range(nzcnt[i]):
        j = nzidx[i, p]
        v = Ct[i, j] * lam[j]
        ui += v
        uabs += abs(v)
    return ui, uabs


@nb.njit(**_NJ)
def _correct_active_set(Ct, nzcnt, nzidx, cls, fidx, nf, x, g):
    """Primal-dual active-set correction: a free muscle out of [0, 1] goes to its bound, a bound muscle whose
    multiplier has the wrong sign (``lam`` in ``g``) is freed.  Returns whether the set changed."""
    changed = False
    for p in range(nf):
        if x[p] < 0.0:
            cls[fidx[p]] = 0
            changed = True
        elif x[p] > 1.0:
            cls[fidx[p]] = 2
            changed = True
    for i in range(Ct.shape[0]):
        if cls[i] == 1:
            continue
        ui, uabs = _half_u(Ct, nzcnt, nzidx, i, g)
        ui *= 0.5
        marg = 1e-13 * uabs
        if (cls[i] == 0 and ui > marg) or (cls[i] == 2 and ui < 1.0 - marg):
            cls[i] = 1
            changed = True
    return changed


@nb.njit(**_NJ)
def _stationary(Ct, nzcnt, nzidx, fidx, nf, x, g):
    """Stationarity of the free muscles, ``a_F = C_F' lam / 2``, as the KKT check reads it (``lam`` in ``g``)."""
    for p in range(nf):
        ui, uabs = _half_u(Ct, nzcnt, nzidx, fidx[p], g)
        if abs(x[p] - 0.5 * ui) > 1e-10 + 1e-14 * uabs:
            return False
    return True


@nb.njit(**_NJ)
def _accept_polish(Ct, b, hp, cls, fidx, nf, x, a, lam, g):
    """Take the active set's ``a`` and ``lam``; ``g`` becomes the equality residual ``b - C a - s``, ``s = hp lam``."""
    ns = b.shape[0]
    m = Ct.shape[0]
    for i in range(m):
        if cls[i] == 0:
            a[i] = 0.0
        elif cls[i] == 2:
            a[i] = 1.0
    for p in range(nf):
        a[fidx[p]] = x[p]
    for j in range(ns):
        lam[j] = g[j]
    for j in range(ns):
        sj = b[j] - hp[j] * lam[j]
        for i in range(m):
            if a[i] != 0.0:
                sj -= Ct[i, j] * a[i]
        g[j] = sj


@nb.njit(**_NJ)
def _polish(Ct, nzcnt, nzidx, b, hp, cls, a, lam, g, fidx, M, r, x):
    """Primal active-set re-solve, for a dual solve that stopped at its rounding floor.

    With the free set ``F`` (at most n_solved muscles) and the upper set ``U`` fixed, the optimum solves
    ``(I + C_F' P C_F) a_F = C_F' P (b - C_U 1)``: a small, well-conditioned system, where the dual's ``a_F =
    C_F' lam / 2`` is a difference of huge numbers (heavy reserve weight, muscles far from enough).  Then ``lam =
    2 P s`` from the primal ``s``, and the active set is corrected (primal-dual active set: a free muscle out of
    [0, 1] goes to its bound, a bound muscle whose multiplier has the wrong sign is freed) until it is consistent,
    at most 30 times.  Returns False (``a``, ``lam`` untouched; ``cls``, ``g`` are scratch then) if ``F`` grows
    beyond n_solved, the loop does not settle, or the result is less stationary than the dual's."""
    ns = b.shape[0]
    for _k in range(30):
        nf = _free_set(cls, fidx, ns)
        if nf < 0:
            return False
        _active_set_system(Ct, b, hp, cls, fidx, nf, M, r, x)
        _cholesky_solve(M, x, nf)
        _multipliers(Ct, hp, r, fidx, nf, x, g)  # s and lam = 2 P s of this active set (kept in g, r until accepted)
        if not _correct_active_set(Ct, nzcnt, nzidx, cls, fidx, nf, x, g):
            if not _stationary(Ct, nzcnt, nzidx, fidx, nf, x, g):
                return False  # lam = 2 P s is the less exact one here (heavy weight, feasible): keep the dual
            _accept_polish(Ct, b, hp, cls, fidx, nf, x, a, lam, g)
            return True
    return False


@nb.njit(**_NJ)
def solve_qp(Ct, nzcnt, nzidx, env, b, hp, lam, cold, max_iter, tol, a, g, r, u, cls, delta, bkey, bval, H, d,
             fidx):
    """Dual semismooth Newton with exact line search for min a'a + s'Ps s.t. C a + s = b, 0 <= a <= 1
    (``hp = 1/(2P)``, ``Ct = C'``).

    ``lam`` in/out (warm start unless ``cold``).  Converged when ``max |g| <= tol * (1 + max |b|)``; a full Newton
    step that stays on its piece and does not halve ``|g|`` means the rounding floor of an ill-conditioned piece:
    then :func:`_polish`, and converged if within 1e3 x the tolerance.  Returns (iterations, status, max |g|)."""
    ns = b.shape[0]
    bmax = 0.0
    for j in range(ns):
        if abs(b[j]) > bmax:
            bmax = abs(b[j])
    tol_b = tol * (1.0 + bmax)
    if cold:  # the bound-free solution
        _newton_direction(Ct, nzcnt, nzidx, cls, True, hp, env, b, H, lam)
    _, gmax = _u_cls_gradient(Ct, nzcnt, nzidx, lam, b, hp, u, cls, a, g)
    it = 0
    status = 0
    while gmax > tol_b:
        if it >= max_iter:
            status = 1
            break
        regularised = _newton_direction(Ct, nzcnt, nzidx, cls, False, hp, env, g, H, d)
        t = _exact_step(Ct, nzcnt, nzidx, u, g, d, lam, hp, delta, bkey, bval)
        it += 1
        if t <= 0.0:
            status = 3  # no ascent left along a Newton direction: the rounding floor
            break
        if abs(t - 1.0) <= 1e-9:
            t = 1.0  # the Newton step stays on its piece: it is that piece's exact maximiser
        for j in range(ns):
            lam[j] += t * d[j]
            if not math.isfinite(lam[j]):  # cannot happen short of absurd weights; keep the outputs finite
                for k in range(j + 1):
                    lam[k] -= t * d[k]
                status = 3
                break
        if status == 3:
            _, gmax = _u_cls_gradient(Ct, nzcnt, nzidx, lam, b, hp, u, cls, a, g)
            break
        gprev = gmax
        changed, gmax = _u_cls_gradient(Ct, nzcnt, nzidx, lam, b, hp, u, cls, a, g)
        if t == 1.0 and changed == 0 and gmax > tol_b and (regularised or gmax > 0.5 * gprev):
            status = 3  # the final piece, but the full Newton step could not finish it (rounding floor of an
            break  # ill-conditioned piece, or a regularised Hessian): the primal re-solve below finishes it
    if status != 0:  # re-solve the primal on the active set (exact where the dual cannot be)
        if _polish(Ct, nzcnt, nzidx, b, hp, cls, a, lam, g, fidx, H, r, d):
            gmax = 0.0
            for j in range(ns):
                if abs(g[j]) > gmax:
                    gmax = abs(g[j])
        if gmax <= 1e3 * tol_b:  # within 1e3 x tolerance (1e-9 relative at the default): converged to rounding
            status = 0
    return it, status, gmax


@nb.njit(**_NJ)
def frame_outputs(R, rcnt, ridx, gain, passive, a, lam, hp, P, tau, solved, is_solved, act_out, force_out,
                  moment_out, reserve_out, resid_out):
    """Fill the frame outputs; return the cost."""
    m, nc = R.shape
    cost = 0.0
    for k in range(nc):
        moment_out[k] = 0.0
    for i in range(m):
        ai = a[i]
        f = gain[i] * ai + passive[i]
        act_out[i] = ai
        force_out[i] = f
        cost += ai * ai
        for p in range(rcnt[i]):
            k = ridx[i, p]
            moment_out[k] += R[i, k] * f
    for k in range(nc):
        if not is_solved[k]:
            reserve_out[k] = tau[k] - moment_out[k]
            resid_out[k] = 0.0
    for j in range(solved.shape[0]):
        k = solved[j]
        s = hp[j] * lam[j]
        reserve_out[k] = s
        resid_out[k] = tau[k] - moment_out[k] - s
        cost += P[j] * s * s
    return cost


@nb.njit(**_NJ)
def solve_frame(rownnz, rowadr, colind, moment, mus_act, dof_coord, dof_factor, R, rcnt, ridx, mark, F1, F0, tau,
                solved, pos, gain, passive, Ct, nzcnt, nzidx, env, b, hp, lam, cold, max_iter, tol, a, g, r, u, cls,
                delta, bkey, bval, H, d, fidx, P, is_solved, act_out, force_out, moment_out, reserve_out, resid_out):
    """One frame from MuJoCo's muscle state to the outputs in one compiled call: :func:`moment_arms`,
    :func:`assemble`, :func:`solve_qp`, :func:`frame_outputs` (one dispatch instead of four: ~30 % of the numba
    part's cost on MyoLeg was argument unboxing).  Returns ``(iterations, status, cost)``."""
    moment_arms(rownnz, rowadr, colind, moment, mus_act, dof_coord, dof_factor, R, rcnt, ridx, mark)
    assemble(R, rcnt, ridx, F1, F0, mus_act, tau, solved, pos, gain, passive, Ct, nzcnt, nzidx, env, b)
    it, status, _ = solve_qp(Ct, nzcnt, nzidx, env, b, hp, lam, cold, max_iter, tol, a, g, r, u, cls, delta, bkey,
                             bval, H, d, fidx)
    cost = frame_outputs(R, rcnt, ridx, gain, passive, a, lam, hp, P, tau, solved, is_solved, act_out, force_out,
                         moment_out, reserve_out, resid_out)
    return it, status, cost


# --------------------------------------------------------------------------------------------------
# standalone QP (tests, cross-checks)
# --------------------------------------------------------------------------------------------------


def solve_activation_qp(C: np.ndarray, b: np.ndarray, reserve_penalty: np.ndarray, *,
                        lam0: np.ndarray | None = None, tolerance: float = 1e-12, max_iterations: int = 100
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Solve ``min a'a + s' diag(P) s`` s.t. ``C a + s = b``, ``0 <= a <= 1`` with the stage's dual Newton method.

    ``C`` (n, m), ``b`` (n,), ``reserve_penalty`` ``P`` (n,) > 0.  ``lam0``: warm start (else the bound-free
    solution).  Returns ``(a, s, lam, iterations, status)`` with ``s = lam / (2P)``.  Allocates (a convenience
    for tests and offline checks); the stage itself calls the same kernels on preallocated arrays.
    """
    C = np.ascontiguousarray(C, dtype=float)
    n, m = C.shape
    b = np.ascontiguousarray(b, dtype=float).reshape(n)
    P = np.ascontiguousarray(reserve_penalty, dtype=float).reshape(n)
    if not np.all(P > 0):
        raise ValueError("reserve_penalty must be > 0 everywhere")
    Ct = np.ascontiguousarray(C.T)
    nzcnt = np.zeros(m, dtype=np.int64)
    nzidx = np.zeros((m, max(n, 1)), dtype=np.int64)
    env = np.arange(n, dtype=np.int64)
    for i in range(m):
        nz = np.flatnonzero(Ct[i])
        nzcnt[i] = nz.size
        nzidx[i, : nz.size] = nz
        if nz.size:
            env[nz] = np.minimum(env[nz], nz[0])
    hp = 0.5 / P
    lam = np.zeros(n) if lam0 is None else np.array(lam0, dtype=float)
    a, g, r, d = np.zeros(m), np.zeros(n), np.zeros(n), np.zeros(n)
    u, delta = np.zeros(m), np.zeros(m)
    bkey, bval = np.zeros(2 * m), np.zeros(2 * m)
    cls = np.zeros(m, dtype=np.int8)
    H = np.zeros((n, n))
    fidx = np.zeros(m, dtype=np.int64)
    it, status, _ = solve_qp(Ct, nzcnt, nzidx, env, b, hp, lam, lam0 is None, int(max_iterations),
                             float(tolerance), a, g, r, u, cls, delta, bkey, bval, H, d, fidx)
    return a, hp * lam, lam, int(it), int(status)


