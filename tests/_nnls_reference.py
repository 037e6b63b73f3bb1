"""The NNLS kernel of models/grf/feasible.py as it was before issue 22 (full Cholesky of the passive set at every
inner iteration, dense gradient), kept as the reference the incremental kernel is tested against."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit
def _solve_passive(Q: np.ndarray, q: np.ndarray, passive: np.ndarray, idx: np.ndarray, L: np.ndarray,
                   y: np.ndarray, z: np.ndarray) -> int:
    n = q.size
    m = 0
    for i in range(n):
        z[i] = 0.0
        if passive[i]:
            idx[m] = i
            m += 1
    for a in range(m):
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
    for a in range(m):
        s = q[idx[a]]
        for c in range(a):
            s -= L[a, c] * y[c]
        y[a] = s / L[a, a]
    for a in range(m - 1, -1, -1):
        s = y[a]
        for c in range(a + 1, m):
            s -= L[c, a] * y[c]
        y[a] = s / L[a, a]
        z[idx[a]] = y[a]
    return m


@njit
def nnls_gram_reference(Q: np.ndarray, q: np.ndarray, x: np.ndarray, tol: float, max_iter: int) -> int:
    """Lawson-Hanson NNLS on the normal equations (the pre-issue-22 kernel); fills ``x``, returns iterations."""
    n = q.size
    passive = np.zeros(n, np.bool_)
    idx = np.zeros(n, np.int64)
    L = np.zeros((n, n))
    y = np.zeros(n)
    z = np.zeros(n)
    w = np.zeros(n)
    for i in range(n):
        x[i] = 0.0
        w[i] = q[i]
    it = 0
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
        while True:
            it += 1
            m = _solve_passive(Q, q, passive, idx, L, y, z)
            alpha = 2.0
            for t in range(m):
                i = idx[t]
                if z[i] <= 0.0:
                    den = x[i] - z[i]
                    a = x[i] / den if den > 0.0 else 0.0
                    if a < alpha:
                        alpha = a
            if alpha > 1.0:
                for i in range(n):
                    x[i] = z[i]
                break
            for i in range(n):
                x[i] += alpha * (z[i] - x[i])
            for t in range(m):
                i = idx[t]
                if x[i] <= 1e-15:
                    x[i] = 0.0
                    passive[i] = False
            if it >= max_iter:
                break
        for i in range(n):
            s = q[i]
            for j in range(n):
                s -= Q[i, j] * x[j]
            w[i] = s
    return it
