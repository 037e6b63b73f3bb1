"""Small dense linear-algebra kernels shared by the compiled solvers (numba).

:func:`cholesky_substitute` is the forward then back substitution of a lower Cholesky factor, used by the marker
IK's Gauss-Newton step (``models/kinematics/compiled_ik.py``), the static-optimisation QP's Newton step
(``models/muscles/qp_kernels.py``) and the feasible-contact NNLS (``models/grf/feasible.py``); each keeps its own
factorisation (their breakdown rules differ).  An edit here recompiles those callers' cached kernels
(``models/numba_cache.py`` stamps each with the kernel modules it imports).

This module is pure computation: numba and numpy.
"""
from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["cholesky_substitute"]


@nb.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")
def cholesky_substitute(L: np.ndarray, y: np.ndarray, n: int) -> None:  # pragma: no cover - compiled
    """Solve ``L L^T x = y`` in place for the first ``n`` entries (``y[:n]`` becomes ``x``).

    ``L``: (>= n, >= n) lower-triangular factor with a nonzero diagonal (only ``L[:n, :n]``'s lower triangle is
    read); ``y``: (>= n,) right-hand side.  Sums run in index order (callers' results are bit-for-bit those of
    their former inline loops).
    """
    for i in range(n):
        s = y[i]
        for k in range(i):
            s -= L[i, k] * y[k]
        y[i] = s / L[i, i]
    for i in range(n - 1, -1, -1):
        s = y[i]
        for k in range(i + 1, n):
            s -= L[k, i] * y[k]
        y[i] = s / L[i, i]
