"""MuJoCo 4's tendon wrapping around spheres and cylinders (``mju_wrap``) in numba, for :mod:`.compiled_tendon`.

:func:`wrap_geom` maps the two sites around a wrapping geom into its frame, builds the 2D plane of the wrap (the
geom's x-y plane for a cylinder; the plane through the sphere's centre and both sites for a sphere), finds the
tangent points on the circle (:func:`wrap_circle`: the solution on the side site's side, the winding-angle rule of
MuJoCo 4; whether a clear segment wraps at all is read from the signs of the windings' cross products where none
is zero, the same decision without its three ``atan2``), lifts a cylinder's points along its axis (helix height)
and maps them back to the world.  The cases it does not reproduce are reported (status :data:`UNSUPPORTED`) so
that the caller falls back to ``mj_tendon``: a side site inside the geom (``wrap_inside``), the sphere's sites
collinear with its centre, a geom without a side site.  The arithmetic follows MuJoCo 4.0's order of operations:
bit-identical to ``mju_wrap`` on MyoLeg (tested against ``mj_tendon``, ``tests/test_compiled_tendon.py``).

World frame z up, m; rotation matrices row-major (9,).  Scalars in and out (no array views in the hot loop).

This module is pure computation: numba.
"""
from __future__ import annotations

import math

import numba as nb

__all__ = ["NO_WRAP", "UNSUPPORTED", "WRAPPED", "wrap_circle", "wrap_geom"]

_NJ = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}
_MINVAL = 1e-15          # mjMINVAL
_SPHERE = 4              # mjWRAP_SPHERE (mjWRAP_CYLINDER = 5)
#: :func:`wrap_geom` statuses: the path wraps (two tangent points), runs straight, or needs ``mj_tendon``
WRAPPED, NO_WRAP, UNSUPPORTED = 0, 1, 2


@nb.njit(inline="always", **_NJ)
def _winding(p0, p1, q0, q1):  # pragma: no cover - compiled
    """Signed angle (rad) swept from p to q about the origin, in (-pi, pi]."""
    return math.atan2(p0 * q1 - p1 * q0, p0 * q0 + p1 * q1)


@nb.njit(inline="always", **_NJ)
def _intersect(a0, a1, b0, b1, c0, c1, e0, e1):  # pragma: no cover - compiled
    """Whether the 2D segments a-b and c-e cross (MuJoCo's ``is_intersect``)."""
    u0, u1 = b0 - a0, b1 - a1
    v0, v1 = e0 - c0, e1 - c1
    det = v1 * u0 - v0 * u1
    if abs(det) < _MINVAL:
        return False
    s = 1.0 if det > 0.0 else -1.0
    w0, w1 = a0 - c0, a1 - c1
    d0, d1 = b0 - e0, b1 - e1
    x0 = (v0 * w1 - v1 * w0) * s
    x1 = (v0 * d1 - v1 * d0) * s
    y0 = (u0 * w1 - u1 * w0) * s
    y1 = (u0 * d1 - u1 * d0) * s
    return x0 >= 0.0 and x1 < 0.0 and y0 >= 0.0 and y1 < 0.0


@nb.njit(**_NJ)
def wrap_circle(e0, e1, e2, e3, s0, s1, radius):  # pragma: no cover - compiled
    """2D wrap of the segment (e0, e1)-(e2, e3) around the circle of ``radius`` at the origin, on the side of the
    side point (s0, s1) (already scaled to the circle): ``(length, t0, t1, t2, t3)`` with the tangent points, or
    length -1 when the straight segment is the path."""
    sqlen0 = e0 * e0 + e1 * e1
    sqlen1 = e2 * e2 + e3 * e3
    sqrad = radius * radius
    if sqlen0 < sqrad or sqlen1 < sqrad or radius < _MINVAL:
        return -1.0, 0.0, 0.0, 0.0, 0.0
    d0, d1 = e2 - e0, e3 - e1
    dd = d0 * d0 + d1 * d1
    if dd < _MINVAL:
        return -1.0, 0.0, 0.0, 0.0, 0.0
    a = -(d0 * e0 + d1 * e1) / dd
    a = min(max(a, 0.0), 1.0)
    n0, n1 = a * d0 + e0, a * d1 + e1
    clear = n0 * n0 + n1 * n1 > sqrad
    if clear:   # the side's polyline winds as the segment iff the centre is outside the triangle (e0, s, e1)
        o1, o2, o3 = e0 * s1 - e1 * s0, s0 * e3 - s1 * e2, -(e0 * e3 - e1 * e2)   # the windings' numerators
        if o1 != 0.0 and o2 != 0.0 and o3 != 0.0:   # their signs decide it (wside - w01 = 0 or +-2 pi)
            if not ((o1 > 0.0) == (o2 > 0.0) and (o2 > 0.0) == (o3 > 0.0)):
                return -1.0, 0.0, 0.0, 0.0, 0.0
            clear = False
    wside = _winding(e0, e1, s0, s1) + _winding(s0, s1, e2, e3)
    if clear and abs(wside - _winding(e0, e1, e2, e3)) < math.pi:
        return -1.0, 0.0, 0.0, 0.0, 0.0
    sqrt0 = math.sqrt(sqlen0 - sqrad)
    sqrt1 = math.sqrt(sqlen1 - sqrad)
    if wside > 0.0:   # counterclockwise: the second solution
        t0 = (e0 * sqrad - radius * e1 * sqrt0) / sqlen0
        t1 = (e1 * sqrad + radius * e0 * sqrt0) / sqlen0
        t2 = (e2 * sqrad + radius * e3 * sqrt1) / sqlen1
        t3 = (e3 * sqrad - radius * e2 * sqrt1) / sqlen1
    else:
        t0 = (e0 * sqrad + radius * e1 * sqrt0) / sqlen0
        t1 = (e1 * sqrad - radius * e0 * sqrt0) / sqlen0
        t2 = (e2 * sqrad - radius * e3 * sqrt1) / sqlen1
        t3 = (e3 * sqrad + radius * e2 * sqrt1) / sqlen1
    if _intersect(e0, e1, t0, t1, e2, e3, t2, t3):
        return -1.0, 0.0, 0.0, 0.0, 0.0
    arc = (wside - _winding(e0, e1, t0, t1)) - _winding(t2, t3, e2, e3)
    return radius * abs(arc), t0, t1, t2, t3


@nb.njit(inline="always", **_NJ)
def _to_local(x0, x1, x2, pos, mat, g):  # pragma: no cover - compiled
    """``mju_mulMatTVec3(mat, x - pos)`` for geom row ``g``."""
    v0, v1, v2 = x0 - pos[g, 0], x1 - pos[g, 1], x2 - pos[g, 2]
    return (mat[g, 0] * v0 + mat[g, 3] * v1 + mat[g, 6] * v2, mat[g, 1] * v0 + mat[g, 4] * v1 + mat[g, 7] * v2,
            mat[g, 2] * v0 + mat[g, 5] * v1 + mat[g, 8] * v2)


@nb.njit(inline="always", **_NJ)
def _normalize3(v0, v1, v2):  # pragma: no cover - compiled
    """``mju_normalize3``: (unit vector, norm); (1, 0, 0) below mjMINVAL."""
    n = math.sqrt(v0 * v0 + v1 * v1 + v2 * v2)
    if n < _MINVAL:
        return 1.0, 0.0, 0.0, n
    s = 1.0 / n
    return v0 * s, v1 * s, v2 * s, n


@nb.njit(**_NJ)
def _plane(p0, p1, p2, q0, q1, q2, sphere):  # pragma: no cover - compiled
    """The 2D wrap plane's axes (local frame) and whether it is defined (sphere: sites not collinear)."""
    if not sphere:
        return 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, True
    a0, a1, a2, _ = _normalize3(p0, p1, p2)
    c0, c1, c2, nrm = _normalize3(p1 * q2 - p2 * q1, p2 * q0 - p0 * q2, p0 * q1 - p1 * q0)
    if nrm < _MINVAL:
        return 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False
    b0, b1, b2, _ = _normalize3(c1 * a2 - c2 * a1, c2 * a0 - c0 * a2, c0 * a1 - c1 * a0)
    return a0, a1, a2, b0, b1, b2, True


@nb.njit(**_NJ)
def wrap_geom(W, x, i0, i1, iside, pos, mat, g, radius, wtype):  # pragma: no cover - compiled
    """``mju_wrap`` of the sites ``x[i0]``, ``x[i1]`` (world) around geom ``g`` (``pos`` (n, 3), ``mat`` (n, 9),
    ``radius`` m, ``wtype`` sphere 4 / cylinder 5) with the side site ``x[iside]``: ``(status, wrap length)``;
    when :data:`WRAPPED` the two tangent points (world) are rows 1 and 2 of ``W`` (4, 3)."""
    p0, p1, p2 = _to_local(x[i0, 0], x[i0, 1], x[i0, 2], pos, mat, g)
    q0, q1, q2 = _to_local(x[i1, 0], x[i1, 1], x[i1, 2], pos, mat, g)
    if math.sqrt(p0 * p0 + p1 * p1 + p2 * p2) < _MINVAL or math.sqrt(q0 * q0 + q1 * q1 + q2 * q2) < _MINVAL:
        return NO_WRAP, -1.0
    if iside < 0:
        return UNSUPPORTED, -1.0
    a0, a1, a2, b0, b1, b2, ok = _plane(p0, p1, p2, q0, q1, q2, wtype == _SPHERE)
    if not ok:
        return UNSUPPORTED, -1.0
    e0, e1 = p0 * a0 + p1 * a1 + p2 * a2, p0 * b0 + p1 * b1 + p2 * b2
    e2, e3 = q0 * a0 + q1 * a1 + q2 * a2, q0 * b0 + q1 * b1 + q2 * b2
    r0, r1, r2 = _to_local(x[iside, 0], x[iside, 1], x[iside, 2], pos, mat, g)
    if math.sqrt(r0 * r0 + r1 * r1 + r2 * r2) < radius:
        return UNSUPPORTED, -1.0     # wrap_inside
    s0, s1 = r0 * a0 + r1 * a1 + r2 * a2, r0 * b0 + r1 * b1 + r2 * b2
    sn = math.sqrt(s0 * s0 + s1 * s1)
    if sn < _MINVAL:
        s0, s1 = 1.0, 0.0
    else:
        inv = 1.0 / sn
        s0, s1 = s0 * inv, s1 * inv
    s0, s1 = s0 * radius, s1 * radius
    wlen, t0, t1, t2, t3 = wrap_circle(e0, e1, e2, e3, s0, s1, radius)
    if wlen < 0.0:
        return NO_WRAP, -1.0
    u0, u1, u2 = a0 * t0 + b0 * t1, a1 * t0 + b1 * t1, a2 * t0 + b2 * t1
    v0, v1, v2 = a0 * t2 + b0 * t3, a1 * t2 + b1 * t3, a2 * t2 + b2 * t3
    if wtype != _SPHERE:   # cylinder: the helix's heights
        L0 = math.sqrt((p0 - u0) * (p0 - u0) + (p1 - u1) * (p1 - u1))
        L1 = math.sqrt((q0 - v0) * (q0 - v0) + (q1 - v1) * (q1 - v1))
        tot = L0 + wlen + L1
        u2 = p2 + (q2 - p2) * L0 / tot
        v2 = p2 + (q2 - p2) * (L0 + wlen) / tot
        h = abs(v2 - u2)
        wlen = math.sqrt(wlen * wlen + h * h)
    for k in range(3):
        W[1, k] = (mat[g, 3 * k] * u0 + mat[g, 3 * k + 1] * u1 + mat[g, 3 * k + 2] * u2) + pos[g, k]
        W[2, k] = (mat[g, 3 * k] * v0 + mat[g, 3 * k + 1] * v1 + mat[g, 3 * k + 2] * v2) + pos[g, k]
    return WRAPPED, wlen
