"""Numba kernels of inverse dynamics, shared by the per-frame stage (:class:`models.dynamics.inverse_dynamics
.InverseDynamics`) and the compiled trial loop (:mod:`models.dynamics.compiled_id`), so both round alike.

This module is pure computation: numba.
"""
from __future__ import annotations

import numba as nb

__all__: list[str] = []   # private kernels of models.dynamics

_NJ = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")


@nb.njit(**_NJ)
def _basis_transpose(NT, qpos, k, dof, qadr, x0, coef):  # pragma: no cover - compiled
    """The polynomial entries of ``N(q)^T``: ``NT[k, dep_dof] = p'(q_ind - x0)`` (as
    :meth:`CoordinateCouplings.basis_transpose`, the same expression)."""
    for e in range(k.shape[0]):
        x = qpos[qadr[e]] - x0[e]
        c1, c2, c3, c4 = coef[e, 1], coef[e, 2], coef[e, 3], coef[e, 4]
        NT[k[e], dof[e]] = c1 + x * (2 * c2 + x * (3 * c3 + x * 4 * c4))


@nb.njit(**_NJ)
def _coordinate_force(NT, tau, out):  # pragma: no cover - compiled
    """``out = NT @ tau`` summed in column order (one kernel for the stage and the compiled trial loop of
    :mod:`models.muscles.compiled_chain`, so both round alike)."""
    for r in range(NT.shape[0]):
        acc = 0.0
        for c in range(NT.shape[1]):
            acc += NT[r, c] * tau[c]
        out[r] = acc


@nb.njit(**_NJ)
def _root_moment(xmat, b, tau, a, out):  # pragma: no cover - compiled
    """``out = R_b @ tau[a+3:a+6]`` (the root's moment from its body frame to world; ``xmat`` (nbody, 9))."""
    for j in range(3):
        out[j] = xmat[b, 3 * j] * tau[a + 3] + xmat[b, 3 * j + 1] * tau[a + 4] + xmat[b, 3 * j + 2] * tau[a + 5]


@nb.njit(**_NJ)
def _add_com_wrench(xfrc, b, point, xipos, f, t):  # pragma: no cover - compiled
    """``xfrc[b] += [F; (p - xipos_b) x F + T]``: the wrench ``(F, T)`` at ``p`` moved to body ``b``'s COM."""
    r0 = point[0] - xipos[b, 0]
    r1 = point[1] - xipos[b, 1]
    r2 = point[2] - xipos[b, 2]
    xfrc[b, 0] += f[0]
    xfrc[b, 1] += f[1]
    xfrc[b, 2] += f[2]
    xfrc[b, 3] += r1 * f[2] - r2 * f[1] + t[0]
    xfrc[b, 4] += r2 * f[0] - r0 * f[2] + t[1]
    xfrc[b, 5] += r0 * f[1] - r1 * f[0] + t[2]


@nb.njit(**_NJ)
def _reactions(ids, roots, cfrc_int, subtree_com, xpos, xmat, force_out, moment_out):  # pragma: no cover - compiled
    """Per reaction body: ``cfrc_int`` (about the subtree COM of its tree, world) moved to the body origin,
    ``M_o = M_c + (c - o) x F``, then both into the body frame (``R^T``)."""
    for k in range(ids.shape[0]):
        b = ids[k]
        c = roots[k]
        r0 = subtree_com[c, 0] - xpos[b, 0]
        r1 = subtree_com[c, 1] - xpos[b, 1]
        r2 = subtree_com[c, 2] - xpos[b, 2]
        fx, fy, fz = cfrc_int[b, 3], cfrc_int[b, 4], cfrc_int[b, 5]
        w0 = cfrc_int[b, 0] + r1 * fz - r2 * fy
        w1 = cfrc_int[b, 1] + r2 * fx - r0 * fz
        w2 = cfrc_int[b, 2] + r0 * fy - r1 * fx
        for j in range(3):   # (R^T v)_j = sum_i v_i R[i, j], xmat row-major
            moment_out[k, j] = w0 * xmat[b, j] + w1 * xmat[b, 3 + j] + w2 * xmat[b, 6 + j]
            force_out[k, j] = fx * xmat[b, j] + fy * xmat[b, 3 + j] + fz * xmat[b, 6 + j]
