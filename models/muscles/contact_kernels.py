"""Numba kernel of the knee-contact crossing sums, shared by :class:`models.muscles.knee_contact.KneeContact` and
the compiled trial loop of :mod:`models.muscles.compiled_chain`, and :func:`muscle_wrenches`, the crossing sums of a
whole trial for given tensions in one compiled loop calling MuJoCo's C API (:mod:`models.dynamics.mj_capi`).

This module is pure computation: numpy, numba and the ``mujoco`` library through :mod:`models.dynamics.mj_capi`.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from models.dynamics import mj_capi as capi

__all__ = ["muscle_wrenches", "wrench_kernel"]


@nb.njit(cache=True)
def wrench_kernel(ten_wrapadr, ten_wrapnum, wrap_obj, wrap_xpos, x_tendon, x_site_body, geom_body, in_tibia,
                   tension, col, origin, F, M):  # pragma: no cover - compiled
    """Sum over crossing muscles and their straight path segments with one end in the tibia subtree of
    ``T * unit(outside - inside)`` (world frame; moment about ``origin``), into ``F``, ``M``."""
    for k in range(x_tendon.size):
        c = col[k]
        if c < 0 or c >= tension.size:
            continue
        T = tension[c]
        if T == 0.0:
            continue
        t = x_tendon[k]
        adr = ten_wrapadr[t]
        num = ten_wrapnum[t]
        if adr < 0 or num < 0 or adr + num > wrap_obj.size or adr + num > wrap_xpos.shape[0]:
            continue                       # no valid path this frame (never index outside MuJoCo's arrays)
        ks = 0
        prev_b = -1
        for i in range(num):
            o = wrap_obj[adr + i]
            if o == -1:
                if ks >= x_site_body.shape[1]:
                    break
                b = x_site_body[k, ks]
                ks += 1
            elif o >= 0 and o < geom_body.size:
                b = geom_body[o]
            else:                          # -2: pulley; anything else is not a path point
                b = -1
            if i > 0 and prev_b >= 0 and b >= 0 and in_tibia[prev_b] != in_tibia[b]:
                if in_tibia[b]:
                    pin, pout = adr + i, adr + i - 1
                else:
                    pin, pout = adr + i - 1, adr + i
                vx = wrap_xpos[pout, 0] - wrap_xpos[pin, 0]
                vy = wrap_xpos[pout, 1] - wrap_xpos[pin, 1]
                vz = wrap_xpos[pout, 2] - wrap_xpos[pin, 2]
                nrm = (vx * vx + vy * vy + vz * vz) ** 0.5
                if nrm > 0.0:
                    fx, fy, fz = T * vx / nrm, T * vy / nrm, T * vz / nrm
                    rx = wrap_xpos[pin, 0] - origin[0]
                    ry = wrap_xpos[pin, 1] - origin[1]
                    rz = wrap_xpos[pin, 2] - origin[2]
                    F[0] += fx
                    F[1] += fy
                    F[2] += fz
                    M[0] += ry * fz - rz * fy
                    M[1] += rz * fx - rx * fz
                    M[2] += rx * fy - ry * fx
            prev_b = b


@nb.njit(cache=True, nogil=True)
def _trial_wrenches(m, dd, d_qpos, wrapadr, wrapnum, wrap_obj, wrap_xpos, xpos, xmat, x_tendon, x_site_body, geom_body,
                    in_tibia, tension, col, tibia, qpos, F_out, M_out, F3, M3):  # pragma: no cover - compiled
    """Per frame: the pose -> ``mj_kinematics``, ``mj_comPos``, ``mj_tendon`` -> :func:`wrench_kernel` -> tibia
    frame (NaN for a non-finite pose, which MuJoCo's wrapping never sees)."""
    for i in range(qpos.shape[0]):
        finite = True
        for k in range(qpos.shape[1]):
            if not np.isfinite(qpos[i, k]):
                finite = False
        if not finite:
            F_out[i, :] = np.nan
            M_out[i, :] = np.nan
            continue
        for k in range(qpos.shape[1]):
            d_qpos[k] = qpos[i, k]
        capi.mj_kinematics(m, dd)
        capi.mj_comPos(m, dd)
        capi.mj_tendon(m, dd)
        F3[:] = 0.0
        M3[:] = 0.0
        wrench_kernel(wrapadr, wrapnum, wrap_obj, wrap_xpos, x_tendon, x_site_body, geom_body, in_tibia, tension[i],
                      col, xpos[tibia], F3, M3)
        R = xmat[tibia]
        for j in range(3):   # (v @ R)_j = sum_k v_k R[k, j], xmat row-major
            F_out[i, j] = F3[0] * R[j] + F3[1] * R[3 + j] + F3[2] * R[6 + j]
            M_out[i, j] = M3[0] * R[j] + M3[1] * R[3 + j] + M3[2] * R[6 + j]


def muscle_wrenches(kc, qpos: np.ndarray, tension_n: np.ndarray, names=None):
    """``KneeContact.muscle_wrench`` of every frame in one compiled loop (``kc`` a
    :class:`~models.muscles.knee_contact.KneeContact`; ``qpos`` (N, nq), ``tension_n`` (N, k) for ``names``):
    ``(F (N, 3), M (N, 3))`` in the tibia frame, equal to the per-frame method to rounding (1e-12 relative,
    tested), or ``None`` where the C API cannot be used here."""
    if not capi.capi_available()[0]:
        return None
    qpos = np.ascontiguousarray(qpos, dtype=float)
    tension = np.ascontiguousarray(tension_n, dtype=float)
    n = qpos.shape[0]
    F, M = np.zeros((n, 3)), np.zeros((n, 3))
    d = kc.data
    _trial_wrenches(capi.address(kc.model), capi.address(d), d.qpos, d.ten_wrapadr, d.ten_wrapnum,
                    d.wrap_obj.reshape(-1), d.wrap_xpos.reshape(-1, 3), d.xpos, d.xmat.reshape(-1, 9), kc._x_tendon,
                    kc._x_site_body, kc._geom_body, kc._in_tibia_u8, tension, kc._crossing_index(names),
                    int(kc.tibia_id), qpos, F, M, np.zeros(3), np.zeros(3))
    return F, M
