"""Small dense solvers of the IK step: an SPD solve, the box-constrained step (active set) and Kabsch's rigid fit.

Units are the caller's (rad or m for steps, m for points).  Pure computation: numpy and LAPACK through scipy.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg.lapack import dposv as _dposv

__all__ = ["spd_solve", "box_constrained_solve", "kabsch"]


def spd_solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x = a^-1 b for a symmetric positive definite a (LAPACK dposv; falls back to lstsq)."""
    _, x, info = _dposv(a, b)
    if info != 0:
        return np.linalg.lstsq(a, b, rcond=None)[0]
    return x


def box_constrained_solve(A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, fixed: np.ndarray,
                          dq: np.ndarray) -> None:
    """Solve ``A dq = b`` (SPD) with ``lo <= dq <= hi`` by pinning violators at their limit and re-solving the rest
    (active set, at most ``len(b)`` rounds).  ``dq`` (out) and ``fixed`` (scratch, bool) are preallocated."""
    fixed[:] = False
    dq[:] = spd_solve(A, b)
    for _ in range(b.shape[0]):
        lo_v = (~fixed) & (dq < lo - 1e-12)
        hi_v = (~fixed) & (dq > hi + 1e-12)
        if not (lo_v.any() or hi_v.any()):
            return
        dq[lo_v] = lo[lo_v]
        dq[hi_v] = hi[hi_v]
        fixed |= lo_v | hi_v
        free = ~fixed
        if not free.any():
            return
        Aff = A[np.ix_(free, free)]
        rhs = b[free] - A[np.ix_(free, fixed)] @ dq[fixed]
        dq[free] = spd_solve(Aff, rhs)


def kabsch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R, t minimising sum ||R a_i + t - b_i||^2 for (K, 3) point sets, K >= 3."""
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    h = (a - ca).T @ (b - cb)
    u, _, vt = np.linalg.svd(h)
    dsign = 1.0 if np.linalg.det(vt.T @ u.T) >= 0 else -1.0
    r = vt.T @ np.diag([1.0, 1.0, dsign]) @ u.T
    return r, cb - r @ ca
