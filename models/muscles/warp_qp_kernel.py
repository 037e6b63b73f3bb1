"""Warp kernel of :mod:`models.muscles.warp_qp`: :func:`models.muscles.qp_kernels.solve_qp` per thread, float64.

One thread solves one frame's ``min a'a + s'Ps`` s.t. ``C a + s = b``, ``0 <= a <= 1`` by the dual semismooth
Newton method with exact line search, line for line the host solver (its docstring gives the derivation) on a
sparse ``C'``: ``cv[f, i, p]`` is muscle ``i``'s ``p``-th nonzero, at internal coordinate ``ci[f, i, p]``, ``p <
cc[f, i]``.  Scratch arrays carry the frame on axis 0.  ``mode[f]``: 1 cold start (the bound-free solution), 0 warm
(``lam[f]`` given), -1 skip.  Outputs per frame: Newton iterations, status (0 converged, 1 max iterations, 3
rounding floor) and ``max |b - C a - s|``.

This module is pure computation: warp.
"""
from __future__ import annotations

import warp as wp

__all__ = ["solve_kernel"]

F = wp.float64
A2 = wp.array2d(dtype=wp.float64)
A3 = wp.array3d(dtype=wp.float64)
I2 = wp.array2d(dtype=wp.int32)
I3 = wp.array3d(dtype=wp.int32)


@wp.func
def _u_and_cls(t: int, cv: A3, ci: I3, cc: I2, lam: A2, u: A2, cls: I2) -> int:
    """u = C' lam / 2 and each muscle's piece (0: a = 0, 1 free, 2: a = 1); returns how many changed piece."""
    changed = int(0)
    for i in range(cv.shape[1]):
        acc = F(0.0)
        for p in range(cc[t, i]):
            acc += cv[t, i, p] * lam[t, ci[t, i, p]]
        ui = F(0.5) * acc
        u[t, i] = ui
        c = int(1)
        if ui <= F(0.0):
            c = 0
        elif ui >= F(1.0):
            c = 2
        if c != cls[t, i]:
            changed += 1
            cls[t, i] = c
    return changed


@wp.func
def _gradient(t: int, cv: A3, ci: I3, cc: I2, u: A2, lam: A2, b: A2, hp: wp.array(dtype=F), a: A2, g: A2) -> F:
    """a = clip(u, 0, 1), g = b - C a - hp lam; returns max |g|."""
    ns = b.shape[1]
    for j in range(ns):
        g[t, j] = b[t, j] - hp[j] * lam[t, j]
    for i in range(cv.shape[1]):
        ui = u[t, i]
        ai = ui
        if ui <= F(0.0):
            ai = F(0.0)
        elif ui >= F(1.0):
            ai = F(1.0)
        a[t, i] = ai
        if ai != F(0.0):
            for p in range(cc[t, i]):
                j = ci[t, i, p]
                g[t, j] = g[t, j] - cv[t, i, p] * ai
    gmax = F(0.0)
    for j in range(ns):
        gmax = wp.max(gmax, wp.abs(g[t, j]))
    return gmax


@wp.func
def _newton_direction(t: int, cv: A3, ci: I3, cc: I2, cls: I2, all_free: int, hp: wp.array(dtype=F), env: I2,
                      rhs: A2, H: A3, d: A2) -> int:
    """Solve (C_F C_F'/2 + diag(hp)) d = rhs by the envelope Cholesky; returns 1 when the diagonal floor was used."""
    ns = rhs.shape[1]
    for p in range(ns):
        for q in range(env[t, p], p + 1):
            H[t, p, q] = F(0.0)
    for i in range(cv.shape[1]):
        if all_free != 0 or cls[t, i] == 1:
            c = cc[t, i]
            for p in range(c):
                jp = ci[t, i, p]
                vp = F(0.5) * cv[t, i, p]
                for q in range(c):
                    jq = ci[t, i, q]
                    if jq <= jp:
                        H[t, jp, jq] = H[t, jp, jq] + vp * cv[t, i, q]
    hmax = F(0.0)
    for i in range(ns):
        hmax = wp.max(hmax, H[t, i, i])
    reg = F(1e-14) * hmax
    regularised = int(0)
    for i in range(ns):
        if hp[i] >= reg:
            H[t, i, i] = H[t, i, i] + hp[i]
        else:
            H[t, i, i] = H[t, i, i] + reg
            regularised = 1
    piv_min = F(1e-13) * hmax + F(1e-300)
    for i in range(ns):
        fi = env[t, i]
        for j in range(fi, i):
            s = H[t, i, j]
            k0 = wp.max(fi, env[t, j])
            for k in range(k0, j):
                s -= H[t, i, k] * H[t, j, k]
            H[t, i, j] = s / H[t, j, j]
        s = H[t, i, i]
        for k in range(fi, i):
            s -= H[t, i, k] * H[t, i, k]
        if s < piv_min:
            s = piv_min
        H[t, i, i] = wp.sqrt(s)
    for i in range(ns):
        s = rhs[t, i]
        for k in range(env[t, i], i):
            s -= H[t, i, k] * d[t, k]
        d[t, i] = s / H[t, i, i]
    for ii in range(ns):
        i = ns - 1 - ii
        di = d[t, i] / H[t, i, i]
        d[t, i] = di
        for k in range(env[t, i], i):
            d[t, k] = d[t, k] - H[t, i, k] * di
    return regularised


@wp.func
def _sift_down(t: int, key: A2, val: A2, start: int, n: int):
    """Min-heap on ``key[t, :n]`` (``val`` moves with it)."""
    i = start
    c = 2 * i + 1
    while c < n:
        if c + 1 < n:
            if key[t, c + 1] < key[t, c]:
                c = c + 1
        if key[t, c] >= key[t, i]:
            break
        kt = key[t, i]
        key[t, i] = key[t, c]
        key[t, c] = kt
        vt = val[t, i]
        val[t, i] = val[t, c]
        val[t, c] = vt
        i = c
        c = 2 * i + 1


@wp.func
def _push(t: int, key: A2, val: A2, nb: int, k: F, v: F) -> int:
    key[t, nb] = k
    val[t, nb] = v
    return nb + 1


@wp.func
def _exact_step(t: int, cv: A3, ci: I3, cc: I2, u: A2, g: A2, d: A2, hp: wp.array(dtype=F), delta: A2, bkey: A2,
                bval: A2) -> F:
    """argmax over t > 0 of the dual along ``lam + t d`` (breakpoints walked in order from a heap)."""
    ns = d.shape[1]
    slope = F(0.0)
    hpd2 = F(0.0)
    for j in range(ns):
        slope += g[t, j] * d[t, j]
        hpd2 += hp[j] * d[t, j] * d[t, j]
    fc = F(0.0)
    nb = int(0)
    for i in range(cv.shape[1]):
        acc = F(0.0)
        for p in range(cc[t, i]):
            acc += cv[t, i, p] * d[t, ci[t, i, p]]
        di = F(0.5) * acc
        delta[t, i] = di
        ui = u[t, i]
        if di != F(0.0):
            c2 = F(2.0) * di * di
            free = int(0)
            if ui > F(0.0) and ui < F(1.0):
                free = 1
            if ui == F(0.0) and di > F(0.0):
                free = 1
            if ui == F(1.0) and di < F(0.0):
                free = 1
            if free != 0:
                fc += c2
            if di > F(0.0):
                if ui < F(0.0):
                    nb = _push(t, bkey, bval, nb, -ui / di, c2)
                if ui < F(1.0):
                    nb = _push(t, bkey, bval, nb, (F(1.0) - ui) / di, -c2)
            else:
                if ui > F(1.0):
                    nb = _push(t, bkey, bval, nb, (F(1.0) - ui) / di, c2)
                if ui > F(0.0):
                    nb = _push(t, bkey, bval, nb, -ui / di, -c2)
    result = F(0.0)
    if slope > F(0.0) and hpd2 > F(0.0):
        for kk in range(nb // 2):
            _sift_down(t, bkey, bval, nb // 2 - 1 - kk, nb)
        t0 = F(0.0)
        searching = int(1)
        while searching != 0:
            curv = hpd2 + wp.max(fc, F(0.0))
            tt = t0 + slope / curv
            if nb == 0 or tt <= bkey[t, 0]:
                result = wp.min(tt, F(1e100))
                searching = 0
            else:
                tk = bkey[t, 0]
                slope -= curv * (tk - t0)
                t0 = tk
                fc += bval[t, 0]
                nb -= 1
                bkey[t, 0] = bkey[t, nb]
                bval[t, 0] = bval[t, nb]
                _sift_down(t, bkey, bval, 0, nb)
    return result


@wp.func
def _free_set(t: int, cls: I2, fidx: I2, ns: int) -> int:
    """Free muscles (``cls == 1``) into ``fidx[t]``; their count, or -1 beyond ``ns``."""
    nf = int(0)
    for i in range(cls.shape[1]):
        if cls[t, i] == 1:
            if nf >= ns:
                return -1
            fidx[t, nf] = i
            nf += 1
    return nf


@wp.func
def _sparse_dot(t: int, cv: A3, ci: I3, cc: I2, ip: int, iq: int, hp: wp.array(dtype=F)) -> F:
    """sum_j C'[ip, j] C'[iq, j] / (2 hp_j) over the common nonzeros."""
    acc = F(0.0)
    for p in range(cc[t, ip]):
        j = ci[t, ip, p]
        for q in range(cc[t, iq]):
            if ci[t, iq, q] == j:
                acc += cv[t, ip, p] * (F(0.5) / hp[j]) * cv[t, iq, q]
    return acc


@wp.func
def _active_set_system(t: int, cv: A3, ci: I3, cc: I2, b: A2, hp: wp.array(dtype=F), cls: I2, fidx: I2, nf: int,
                       M: A3, r: A2, x: A2):
    """``r = b - C_U 1``, ``x = C_F' P r`` and the lower triangle of ``M = I + C_F' P C_F``."""
    for j in range(b.shape[1]):
        r[t, j] = b[t, j]
    for i in range(cv.shape[1]):
        if cls[t, i] == 2:
            for p in range(cc[t, i]):
                j = ci[t, i, p]
                r[t, j] = r[t, j] - cv[t, i, p]
    for p in range(nf):
        ip = fidx[t, p]
        acc = F(0.0)
        for q in range(cc[t, ip]):
            j = ci[t, ip, q]
            acc += cv[t, ip, q] * (F(0.5) / hp[j]) * r[t, j]
        x[t, p] = acc
        for q in range(p + 1):
            diag = F(0.0)
            if p == q:
                diag = F(1.0)
            M[t, p, q] = _sparse_dot(t, cv, ci, cc, ip, fidx[t, q], hp) + diag


@wp.func
def _cholesky_solve(t: int, M: A3, x: A2, nf: int):
    """``M y = x`` in place by a dense lower Cholesky of ``M[t, :nf, :nf]`` (``M >= I``)."""
    for j in range(nf):
        sj = M[t, j, j]
        for k in range(j):
            sj -= M[t, j, k] * M[t, j, k]
        ljj = wp.sqrt(wp.max(sj, F(1.0)))
        M[t, j, j] = ljj
        for i in range(j + 1, nf):
            si = M[t, i, j]
            for k in range(j):
                si -= M[t, i, k] * M[t, j, k]
            M[t, i, j] = si / ljj
    for i in range(nf):
        si = x[t, i]
        for k in range(i):
            si -= M[t, i, k] * x[t, k]
        x[t, i] = si / M[t, i, i]
    for ii in range(nf):
        i = nf - 1 - ii
        si = x[t, i]
        for k in range(i + 1, nf):
            si -= M[t, k, i] * x[t, k]
        x[t, i] = si / M[t, i, i]


@wp.func
def _multipliers(t: int, cv: A3, ci: I3, cc: I2, hp: wp.array(dtype=F), r: A2, fidx: I2, nf: int, x: A2, g: A2):
    """``lam = 2 P s`` of the active set into ``g``, ``s = r - C_F a_F``."""
    for j in range(hp.shape[0]):
        g[t, j] = r[t, j]
    for p in range(nf):
        i = fidx[t, p]
        for q in range(cc[t, i]):
            j = ci[t, i, q]
            g[t, j] = g[t, j] - cv[t, i, q] * x[t, p]
    for j in range(hp.shape[0]):
        g[t, j] = g[t, j] / hp[j]


@wp.func
def _half_u(t: int, cv: A3, ci: I3, cc: I2, i: int, lam: A2) -> wp.vec2d:
    """((C' lam)_i, sum_j |C_ji lam_j|) of muscle ``i``."""
    ui = F(0.0)
    uabs = F(0.0)
    for p in range(cc[t, i]):
        v = cv[t, i, p] * lam[t, ci[t, i, p]]
        ui += v
        uabs += wp.abs(v)
    return wp.vec2d(ui, uabs)


@wp.func
def _correct_active_set(t: int, cv: A3, ci: I3, cc: I2, cls: I2, fidx: I2, nf: int, x: A2, g: A2) -> int:
    """Primal-dual active-set correction; returns 1 when the set changed."""
    changed = int(0)
    for p in range(nf):
        if x[t, p] < F(0.0):
            cls[t, fidx[t, p]] = 0
            changed = 1
        elif x[t, p] > F(1.0):
            cls[t, fidx[t, p]] = 2
            changed = 1
    for i in range(cv.shape[1]):
        if cls[t, i] != 1:
            h = _half_u(t, cv, ci, cc, i, g)
            ui = F(0.5) * h[0]
            marg = F(1e-13) * h[1]
            if (cls[t, i] == 0 and ui > marg) or (cls[t, i] == 2 and ui < F(1.0) - marg):
                cls[t, i] = 1
                changed = 1
    return changed


@wp.func
def _stationary(t: int, cv: A3, ci: I3, cc: I2, fidx: I2, nf: int, x: A2, g: A2) -> int:
    """1 when ``a_F = C_F' lam / 2`` holds as the KKT check reads it (``lam`` in ``g``)."""
    ok = int(1)
    for p in range(nf):
        h = _half_u(t, cv, ci, cc, fidx[t, p], g)
        if wp.abs(x[t, p] - F(0.5) * h[0]) > F(1e-10) + F(1e-14) * h[1]:
            ok = 0
    return ok


@wp.func
def _accept_polish(t: int, cv: A3, ci: I3, cc: I2, b: A2, hp: wp.array(dtype=F), cls: I2, fidx: I2, nf: int, x: A2,
                   a: A2, lam: A2, g: A2):
    """Take the active set's ``a`` and ``lam``; ``g`` becomes ``b - C a - s``."""
    for i in range(cv.shape[1]):
        if cls[t, i] == 0:
            a[t, i] = F(0.0)
        elif cls[t, i] == 2:
            a[t, i] = F(1.0)
    for p in range(nf):
        a[t, fidx[t, p]] = x[t, p]
    for j in range(b.shape[1]):
        lam[t, j] = g[t, j]
        g[t, j] = b[t, j] - hp[j] * lam[t, j]
    for i in range(cv.shape[1]):
        ai = a[t, i]
        if ai != F(0.0):
            for p in range(cc[t, i]):
                j = ci[t, i, p]
                g[t, j] = g[t, j] - cv[t, i, p] * ai


@wp.func
def _polish(t: int, cv: A3, ci: I3, cc: I2, b: A2, hp: wp.array(dtype=F), cls: I2, a: A2, lam: A2, g: A2, fidx: I2,
            M: A3, r: A2, x: A2) -> int:
    """Primal active-set re-solve of :func:`models.muscles.qp_kernels._polish`; 1 when accepted."""
    ns = b.shape[1]
    for _k in range(30):
        nf = _free_set(t, cls, fidx, ns)
        if nf < 0:
            return 0
        _active_set_system(t, cv, ci, cc, b, hp, cls, fidx, nf, M, r, x)
        _cholesky_solve(t, M, x, nf)
        _multipliers(t, cv, ci, cc, hp, r, fidx, nf, x, g)
        if _correct_active_set(t, cv, ci, cc, cls, fidx, nf, x, g) == 0:
            if _stationary(t, cv, ci, cc, fidx, nf, x, g) == 0:
                return 0
            _accept_polish(t, cv, ci, cc, b, hp, cls, fidx, nf, x, a, lam, g)
            return 1
    return 0


@wp.kernel
def solve_kernel(cv: A3, ci: I3, cc: I2, env: I2, b: A2, hp: wp.array(dtype=F), lam: A2, mode: wp.array(dtype=int),
                 max_iter: int, tol: F, a: A2, g: A2, r: A2, u: A2, cls: I2, delta: A2, bkey: A2, bval: A2, H: A3,
                 d: A2, fidx: I2, it_out: wp.array(dtype=int), st_out: wp.array(dtype=int),
                 gmax_out: wp.array(dtype=F)):
    """:func:`models.muscles.qp_kernels.solve_qp` of frame ``wp.tid()`` (module docstring)."""
    t = wp.tid()
    if mode[t] < 0:
        return
    ns = b.shape[1]
    bmax = F(0.0)
    for j in range(ns):
        bmax = wp.max(bmax, wp.abs(b[t, j]))
    tol_b = tol * (F(1.0) + bmax)
    if mode[t] == 1:  # the bound-free solution
        _newton_direction(t, cv, ci, cc, cls, 1, hp, env, b, H, lam)
    _u_and_cls(t, cv, ci, cc, lam, u, cls)
    gmax = _gradient(t, cv, ci, cc, u, lam, b, hp, a, g)
    it = int(0)
    status = int(0)
    while gmax > tol_b:
        if it >= max_iter:
            status = 1
            break
        regularised = _newton_direction(t, cv, ci, cc, cls, 0, hp, env, g, H, d)
        step = _exact_step(t, cv, ci, cc, u, g, d, hp, delta, bkey, bval)
        it += 1
        if step <= F(0.0):
            status = 3
            break
        if wp.abs(step - F(1.0)) <= F(1e-9):
            step = F(1.0)
        bad = int(-1)
        for j in range(ns):
            if bad < 0:
                lam[t, j] = lam[t, j] + step * d[t, j]
                if not wp.isfinite(lam[t, j]):
                    bad = j
        if bad >= 0:
            for k in range(bad + 1):
                lam[t, k] = lam[t, k] - step * d[t, k]
            status = 3
            _u_and_cls(t, cv, ci, cc, lam, u, cls)
            gmax = _gradient(t, cv, ci, cc, u, lam, b, hp, a, g)
            break
        gprev = gmax
        changed = _u_and_cls(t, cv, ci, cc, lam, u, cls)
        gmax = _gradient(t, cv, ci, cc, u, lam, b, hp, a, g)
        if step == F(1.0) and changed == 0 and gmax > tol_b and (regularised != 0 or gmax > F(0.5) * gprev):
            status = 3
            break
    if status != 0:
        if _polish(t, cv, ci, cc, b, hp, cls, a, lam, g, fidx, H, r, d) != 0:
            gmax = F(0.0)
            for j in range(ns):
                gmax = wp.max(gmax, wp.abs(g[t, j]))
        if gmax <= F(1e3) * tol_b:
            status = 0
    it_out[t] = it
    st_out[t] = status
    gmax_out[t] = gmax
