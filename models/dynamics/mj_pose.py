"""MuJoCo 4's per-body pose arithmetic in numba: the body loop of ``mj_kinematics`` and ``mj_local2Global``.

One owner for the kernels that the compiled ID/SO chain (:mod:`models.dynamics.compiled_kinematics`), the compiled
marker IK (:mod:`models.kinematics.body_kinematics`) and the ground reaction stage (:mod:`models.grf.fk`) share:
``mju_mulQuat`` (:func:`mul_quat`), ``mju_rotVecQuat`` (:func:`rot_vec_quat`), ``mju_axisAngle2Quat``
(:func:`axis_angle_quat`), ``mju_normalize4`` (:func:`normalize4`), ``mju_quat2Mat`` (:func:`quat2mat`), the body
and joint loop of ``mj_kinematics`` (:func:`body_poses`: free, ball, slide and hinge joints) and
``mj_local2Global`` (:func:`local2global`).  The sums are associated as MuJoCo 4.0's AVX build does
(``engine_util_spatial.c``, ``engine_core_smooth.c``), so the results are bit-identical to ``mj_kinematics`` on a
model where :func:`models.dynamics.compiled_kinematics.kinematics_matches` says so (checked per model, not assumed;
tested on MyoLeg and MyoFullBody in ``tests/test_compiled_kinematics.py``, ``tests/test_compiled_ik.py`` and
``tests/test_grf_fk.py``).

World frame z up, m, quaternions (w, x, y, z), rotation matrices row-major as rows of (n, 9) arrays.  The small
functions take and return scalars (tuples): no array views in the hot loops.

An edit here recompiles the callers' cached kernels (``models/numba_cache.py`` stamps each with the kernel modules
it imports).

This module is pure computation: numpy (through numba) and numba.
"""
from __future__ import annotations

import math

import numba as nb

__all__ = ["axis_angle_quat", "body_poses", "local2global", "mul_quat", "normalize4", "quat2mat", "rot_vec_quat"]

_NJ = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}
_MINVAL = 1e-15   # mjMINVAL
_FREE, _BALL, _SLIDE = 0, 1, 2   # mjtJoint (mjJNT_HINGE = 3)


@nb.njit(inline="always", **_NJ)
def mul_quat(a0, a1, a2, a3, b0, b1, b2, b3):  # pragma: no cover - compiled
    """``mju_mulQuat``: the quaternion product a * b."""
    return ((a0 * b0 - a1 * b1) - (a2 * b2 + a3 * b3), (a0 * b1 + a1 * b0) + (a2 * b3 - a3 * b2),
            (a0 * b2 - a1 * b3) + (a2 * b0 + a3 * b1), (a0 * b3 + a1 * b2) + (a3 * b0 - a2 * b1))


@nb.njit(inline="always", **_NJ)
def rot_vec_quat(v0, v1, v2, q0, q1, q2, q3):  # pragma: no cover - compiled
    """``mju_rotVecQuat``: the vector v rotated by the unit quaternion q."""
    if v0 == 0.0 and v1 == 0.0 and v2 == 0.0:
        return 0.0, 0.0, 0.0
    if q0 == 1.0 and q1 == 0.0 and q2 == 0.0 and q3 == 0.0:
        return v0, v1, v2
    t0 = q0 * v0 + q2 * v2 - q3 * v1
    t1 = q0 * v1 + q3 * v0 - q1 * v2
    t2 = q0 * v2 + q1 * v1 - q2 * v0
    return v0 + 2.0 * (q2 * t2 - q3 * t1), v1 + 2.0 * (q3 * t0 - q1 * t2), v2 + 2.0 * (q1 * t1 - q2 * t0)


@nb.njit(inline="always", **_NJ)
def axis_angle_quat(a0, a1, a2, angle):  # pragma: no cover - compiled
    """``mju_axisAngle2Quat``: the rotation by ``angle`` (rad) about the unit axis a."""
    if angle == 0.0:
        return 1.0, 0.0, 0.0, 0.0
    s = math.sin(0.5 * angle)
    return math.cos(0.5 * angle), a0 * s, a1 * s, a2 * s


@nb.njit(inline="always", **_NJ)
def normalize4(q0, q1, q2, q3):  # pragma: no cover - compiled
    """``mju_normalize4``: q / |q|; the identity when |q| < mjMINVAL; q itself when |q| is 1 within mjMINVAL."""
    n = math.sqrt((q0 * q0 + q1 * q1) + (q2 * q2 + q3 * q3))
    if n < _MINVAL:
        return 1.0, 0.0, 0.0, 0.0
    if abs(n - 1.0) > _MINVAL:
        s = 1.0 / n
        return q0 * s, q1 * s, q2 * s, q3 * s
    return q0, q1, q2, q3


@nb.njit(inline="always", **_NJ)
def quat2mat(R, r, q0, q1, q2, q3):  # pragma: no cover - compiled
    """``mju_quat2Mat``: row ``r`` of ``R`` (n, 9) = the rotation matrix (row-major) of the unit quaternion q."""
    if q0 == 1.0 and q1 == 0.0 and q2 == 0.0 and q3 == 0.0:
        for k in range(9):
            R[r, k] = 1.0 if k % 4 == 0 else 0.0
        return
    q00, q01, q02, q03 = q0 * q0, q0 * q1, q0 * q2, q0 * q3
    q11, q12, q13 = q1 * q1, q1 * q2, q1 * q3
    q22, q23, q33 = q2 * q2, q2 * q3, q3 * q3
    R[r, 0] = (q00 - q22) + (q11 - q33)
    R[r, 4] = (q00 + q22) - (q11 + q33)
    R[r, 8] = (q00 - q22) - (q11 - q33)
    R[r, 1] = 2.0 * (q12 - q03)
    R[r, 2] = 2.0 * (q13 + q02)
    R[r, 3] = 2.0 * (q12 + q03)
    R[r, 5] = 2.0 * (q23 - q01)
    R[r, 6] = 2.0 * (q13 - q02)
    R[r, 7] = 2.0 * (q23 + q01)


@nb.njit(inline="always", **_NJ)
def _joints(q, i, jntadr, jntnum, jnt_type, jnt_qadr, jnt_pos, jnt_axis, qpos0, xanchor, xaxis,
            x0, x1, x2, w0, w1, w2, w3):  # pragma: no cover - compiled
    """Body ``i``'s ball/slide/hinge joints applied in order to its frame (x, w) placed by the parent; writes the
    joints' ``xanchor`` and ``xaxis`` (world, m / unit); returns the frame (not yet normalised)."""
    for j in range(jntadr[i], jntadr[i] + jntnum[i]):
        a = jnt_qadr[j]
        t = jnt_type[j]
        ax0, ax1, ax2 = rot_vec_quat(jnt_axis[j, 0], jnt_axis[j, 1], jnt_axis[j, 2], w0, w1, w2, w3)
        c0, c1, c2 = rot_vec_quat(jnt_pos[j, 0], jnt_pos[j, 1], jnt_pos[j, 2], w0, w1, w2, w3)
        c0, c1, c2 = c0 + x0, c1 + x1, c2 + x2
        if t == _SLIDE:
            s = q[a] - qpos0[a]
            x0, x1, x2 = x0 + ax0 * s, x1 + ax1 * s, x2 + ax2 * s
        else:        # ball or hinge: rotate about the anchor
            if t == _BALL:
                l0, l1, l2, l3 = normalize4(q[a], q[a + 1], q[a + 2], q[a + 3])
            else:
                l0, l1, l2, l3 = axis_angle_quat(jnt_axis[j, 0], jnt_axis[j, 1], jnt_axis[j, 2], q[a] - qpos0[a])
            w0, w1, w2, w3 = mul_quat(w0, w1, w2, w3, l0, l1, l2, l3)
            v0, v1, v2 = rot_vec_quat(jnt_pos[j, 0], jnt_pos[j, 1], jnt_pos[j, 2], w0, w1, w2, w3)
            x0, x1, x2 = c0 - v0, c1 - v1, c2 - v2
        xanchor[j, 0], xanchor[j, 1], xanchor[j, 2] = c0, c1, c2
        xaxis[j, 0], xaxis[j, 1], xaxis[j, 2] = ax0, ax1, ax2
    return x0, x1, x2, w0, w1, w2, w3


@nb.njit(**_NJ)
def body_poses(q, parent, jntadr, jntnum, body_pos, body_quat, jnt_type, jnt_qadr, jnt_pos, jnt_axis, qpos0,
               xpos, xquat, xmat, xanchor, xaxis):  # pragma: no cover - compiled
    """``mj_kinematics``' body loop at ``q`` (nq,): ``xpos`` (nbody, 3), ``xquat`` (nbody, 4), ``xmat``
    (nbody, 9) of every body (world included) and ``xanchor``, ``xaxis`` (njnt, 3) of every joint.  The model
    arrays are MuJoCo's ``body_parentid``, ``body_jntadr``, ``body_jntnum``, ``body_pos``, ``body_quat``,
    ``jnt_type``, ``jnt_qposadr``, ``jnt_pos``, ``jnt_axis``, ``qpos0``."""
    for k in range(3):
        xpos[0, k] = 0.0
    xquat[0, 0], xquat[0, 1], xquat[0, 2], xquat[0, 3] = 1.0, 0.0, 0.0, 0.0
    quat2mat(xmat, 0, 1.0, 0.0, 0.0, 0.0)
    for i in range(1, parent.shape[0]):
        ja, jn = jntadr[i], jntnum[i]
        if jn == 1 and jnt_type[ja] == _FREE:   # a free joint: the pose is in qpos
            a = jnt_qadr[ja]
            x0, x1, x2 = q[a], q[a + 1], q[a + 2]
            w0, w1, w2, w3 = normalize4(q[a + 3], q[a + 4], q[a + 5], q[a + 6])
            xanchor[ja, 0], xanchor[ja, 1], xanchor[ja, 2] = x0, x1, x2
            for k in range(3):
                xaxis[ja, k] = jnt_axis[ja, k]
        else:
            p = parent[i]
            b0, b1, b2 = body_pos[i, 0], body_pos[i, 1], body_pos[i, 2]
            if p:
                x0 = (xmat[p, 0] * b0 + xmat[p, 1] * b1 + xmat[p, 2] * b2) + xpos[p, 0]
                x1 = (xmat[p, 3] * b0 + xmat[p, 4] * b1 + xmat[p, 5] * b2) + xpos[p, 1]
                x2 = (xmat[p, 6] * b0 + xmat[p, 7] * b1 + xmat[p, 8] * b2) + xpos[p, 2]
                w0, w1, w2, w3 = mul_quat(xquat[p, 0], xquat[p, 1], xquat[p, 2], xquat[p, 3],
                                          body_quat[i, 0], body_quat[i, 1], body_quat[i, 2], body_quat[i, 3])
            else:
                x0, x1, x2 = b0, b1, b2
                w0, w1, w2, w3 = body_quat[i, 0], body_quat[i, 1], body_quat[i, 2], body_quat[i, 3]
            x0, x1, x2, w0, w1, w2, w3 = _joints(q, i, jntadr, jntnum, jnt_type, jnt_qadr, jnt_pos, jnt_axis, qpos0,
                                                 xanchor, xaxis, x0, x1, x2, w0, w1, w2, w3)
        w0, w1, w2, w3 = normalize4(w0, w1, w2, w3)
        xquat[i, 0], xquat[i, 1], xquat[i, 2], xquat[i, 3] = w0, w1, w2, w3
        xpos[i, 0], xpos[i, 1], xpos[i, 2] = x0, x1, x2
        quat2mat(xmat, i, w0, w1, w2, w3)


@nb.njit(**_NJ)
def local2global(xpos, xquat, xmat, xipos, ximat, X, XM, idx, pos, quat, bodyid, sameid):  # pragma: no cover
    """``mj_local2Global`` of the frames ``idx`` (local ``pos`` (n, 3), ``quat`` (n, 4) on the bodies ``bodyid``)
    into rows of ``X`` (n, 3) and ``XM`` (n, 9), from the bodies' poses ``xpos``/``xquat``/``xmat`` and inertial
    frames ``xipos``/``ximat`` (``mjtSameFrame`` ``sameid``: 0 none, 1 body, 2 inertia, 3 body rotation,
    4 inertia rotation)."""
    for r in idx:
        body = bodyid[r]
        same = sameid[r]
        if same == 1:
            for k in range(3):
                X[r, k] = xpos[body, k]
        elif same == 2:
            for k in range(3):
                X[r, k] = xipos[body, k]
        else:
            p0, p1, p2 = pos[r, 0], pos[r, 1], pos[r, 2]
            X[r, 0] = (xmat[body, 0] * p0 + xmat[body, 1] * p1 + xmat[body, 2] * p2) + xpos[body, 0]
            X[r, 1] = (xmat[body, 3] * p0 + xmat[body, 4] * p1 + xmat[body, 5] * p2) + xpos[body, 1]
            X[r, 2] = (xmat[body, 6] * p0 + xmat[body, 7] * p1 + xmat[body, 8] * p2) + xpos[body, 2]
        if same == 0:
            t0, t1, t2, t3 = mul_quat(xquat[body, 0], xquat[body, 1], xquat[body, 2], xquat[body, 3], quat[r, 0],
                                      quat[r, 1], quat[r, 2], quat[r, 3])
            quat2mat(XM, r, t0, t1, t2, t3)
        elif same == 1 or same == 3:
            for k in range(9):
                XM[r, k] = xmat[body, k]
        else:
            for k in range(9):
                XM[r, k] = ximat[body, k]
