"""Numba kernel of the knee-contact crossing sums, shared by :class:`models.muscles.knee_contact.KneeContact` and
the compiled trial loop of :mod:`models.muscles.compiled_chain`.

This module is pure computation: numba.
"""
from __future__ import annotations

import numba as nb

__all__ = ["wrench_kernel"]


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
