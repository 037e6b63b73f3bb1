"""Body-only forward kinematics and point Jacobians of a MuJoCo model in numba (for the compiled marker IK).

``mj_kinematics`` also places every geom and site (MyoLeg: 121 geoms, 1060 muscle-path sites; about 13 us a call,
most of marker IK's time); marker IK needs only the bodies.  :func:`body_fk` is ``mj_kinematics``' body loop for
free, hinge and slide joints (MuJoCo's order and formulas: parent frame, ``mju_rotVecQuat``, ``mju_axisAngle2Quat``,
``mju_mulQuat``, ``mju_normalize4``, ``mju_quat2Mat``), writing ``xpos``, ``xquat``, ``xmat``, ``xanchor`` and
``xaxis`` of the bodies and joints (geoms and sites are left as they were).  :func:`point_jacobian_column` is the
column of ``mj_jac``'s translational Jacobian of a world point for one dof: ``axis x (p - anchor)`` for a hinge or
the free joint's rotations (``axis`` the body's x/y/z axis), ``axis`` for a slide or the free translations; equal to
``mj_jac`` (which goes through ``mj_comPos``' com-based motion dofs) up to rounding.

:func:`supported` says whether a model has only these joints and no mocap bodies.  Tested against ``mj_kinematics``
and ``mj_jac`` in ``tests/test_compiled_ik.py``.  World frame, z up; m; quaternions (w, x, y, z).

This module is pure computation: numpy, numba, mujoco.
"""
from __future__ import annotations

import math
from collections import namedtuple

import mujoco
import numba as nb
import numpy as np

__all__ = ["BodyModel", "BodyState", "body_fk", "body_model", "body_state", "dof_column", "point_jacobian_column",
           "supported"]

_NJ = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")
_FREE, _BALL, _SLIDE, _HINGE = (int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_BALL),
                                int(mujoco.mjtJoint.mjJNT_SLIDE), int(mujoco.mjtJoint.mjJNT_HINGE))
_MINVAL = 1e-15  # mjMINVAL

#: the model arrays body_fk reads (views of the MjModel's own arrays: a later in-place edit is seen)
BodyModel = namedtuple("BodyModel", "parent jntnum jntadr body_pos body_quat jnt_type jnt_qadr jnt_pos jnt_axis "
                                    "qpos0")
#: the MjData fields it writes (views of MuJoCo's buffers)
BodyState = namedtuple("BodyState", "xpos xquat xmat xanchor xaxis")


def supported(m: mujoco.MjModel) -> tuple[bool, str]:
    """Whether :func:`body_fk` reproduces ``mj_kinematics``' bodies for ``m`` (free/hinge/slide joints, a free joint
    alone on a child of the world, no mocap bodies)."""
    if m.nmocap:
        return False, f"the model has {m.nmocap} mocap bodies"
    for j in range(m.njnt):
        t = int(m.jnt_type[j])
        if t == _BALL:
            return False, f"joint {m.joint(j).name!r} is a ball joint"
        if t == _FREE and (int(m.body_jntnum[m.jnt_bodyid[j]]) != 1 or int(m.body_parentid[m.jnt_bodyid[j]]) != 0):
            return False, f"free joint {m.joint(j).name!r} is not alone on a child of the world"
    return True, ""


def body_model(m: mujoco.MjModel) -> BodyModel:
    """The arrays of ``m`` that :func:`body_fk` and :func:`point_jacobian_column` read (views)."""
    return BodyModel(m.body_parentid, m.body_jntnum, m.body_jntadr, m.body_pos, m.body_quat, m.jnt_type,
                     m.jnt_qposadr, m.jnt_pos, m.jnt_axis, m.qpos0)


def body_state(d: mujoco.MjData) -> BodyState:
    """The fields of ``d`` that :func:`body_fk` writes (views)."""
    return BodyState(d.xpos, d.xquat, d.xmat.reshape(-1, 9), d.xanchor, d.xaxis)


#: kinds of a dof's Jacobian column (:func:`dof_column`)
UNIT, HINGE, SLIDE, FREE_ROT = 0, 1, 2, 3


def dof_column(m: mujoco.MjModel, dof: int) -> tuple[int, int, int, int]:
    """How :func:`point_jacobian_column` builds ``dof``'s column: (kind, joint, body, axis index): ``UNIT`` (a free
    joint's world translation ``axis``), ``HINGE`` / ``SLIDE`` (the joint's ``xaxis``), ``FREE_ROT`` (the free
    joint's rotation about its body's axis ``axis``)."""
    j = int(m.dof_jntid[dof])
    t = int(m.jnt_type[j])
    r = dof - int(m.jnt_dofadr[j])
    if t == _FREE:
        return (UNIT if r < 3 else FREE_ROT), j, int(m.jnt_bodyid[j]), r % 3
    return (SLIDE if t == _SLIDE else HINGE), j, int(m.jnt_bodyid[j]), 0


# Scalar helpers (tuples in, tuples out: no array views in the hot loops, whose reference counting dominated)


@nb.njit(inline="always", **_NJ)
def _rot(v0, v1, v2, q0, q1, q2, q3):  # pragma: no cover - compiled
    """mju_rotVecQuat."""
    if v0 == 0.0 and v1 == 0.0 and v2 == 0.0:
        return 0.0, 0.0, 0.0
    if q0 == 1.0 and q1 == 0.0 and q2 == 0.0 and q3 == 0.0:
        return v0, v1, v2
    t0 = q0 * v0 + q2 * v2 - q3 * v1
    t1 = q0 * v1 + q3 * v0 - q1 * v2
    t2 = q0 * v2 + q1 * v1 - q2 * v0
    return v0 + 2.0 * (q2 * t2 - q3 * t1), v1 + 2.0 * (q3 * t0 - q1 * t2), v2 + 2.0 * (q1 * t1 - q2 * t0)


@nb.njit(inline="always", **_NJ)
def _qmul(a0, a1, a2, a3, b0, b1, b2, b3):  # pragma: no cover - compiled
    """mju_mulQuat."""
    return (a0 * b0 - a1 * b1 - a2 * b2 - a3 * b3, a0 * b1 + a1 * b0 + a2 * b3 - a3 * b2,
            a0 * b2 - a1 * b3 + a2 * b0 + a3 * b1, a0 * b3 + a1 * b2 - a2 * b1 + a3 * b0)


@nb.njit(inline="always", **_NJ)
def _normalize(q0, q1, q2, q3):  # pragma: no cover - compiled
    """mju_normalize4."""
    s = math.sqrt(q0 * q0 + q1 * q1 + q2 * q2 + q3 * q3)
    if s < _MINVAL:
        return 1.0, 0.0, 0.0, 0.0
    if abs(s - 1.0) > _MINVAL:
        return q0 / s, q1 / s, q2 / s, q3 / s
    return q0, q1, q2, q3


@nb.njit(inline="always", **_NJ)
def _quat2mat(r, i, q0, q1, q2, q3):  # pragma: no cover - compiled
    """mju_quat2Mat into row i of r (nbody, 9)."""
    if q0 == 1.0 and q1 == 0.0 and q2 == 0.0 and q3 == 0.0:
        for k in range(9):
            r[i, k] = 0.0
        r[i, 0] = r[i, 4] = r[i, 8] = 1.0
        return
    q00, q01, q02, q03 = q0 * q0, q0 * q1, q0 * q2, q0 * q3
    q11, q12, q13 = q1 * q1, q1 * q2, q1 * q3
    q22, q23, q33 = q2 * q2, q2 * q3, q3 * q3
    r[i, 0] = q00 + q11 - q22 - q33
    r[i, 4] = q00 - q11 + q22 - q33
    r[i, 8] = q00 - q11 - q22 + q33
    r[i, 1] = 2.0 * (q12 - q03)
    r[i, 2] = 2.0 * (q13 + q02)
    r[i, 3] = 2.0 * (q12 + q03)
    r[i, 5] = 2.0 * (q23 - q01)
    r[i, 6] = 2.0 * (q13 - q02)
    r[i, 7] = 2.0 * (q23 + q01)


@nb.njit(inline="always", **_NJ)
def _joints(B, S, qpos, i, x0, x1, x2, w0, w1, w2, w3):  # pragma: no cover - compiled
    """Body i's hinge/slide joints applied to its frame; xanchor, xaxis written; returns the frame."""
    ja, jp = B.jnt_axis, B.jnt_pos
    for j in range(B.jntadr[i], B.jntadr[i] + B.jntnum[i]):
        a0, a1, a2 = _rot(ja[j, 0], ja[j, 1], ja[j, 2], w0, w1, w2, w3)
        n0, n1, n2 = _rot(jp[j, 0], jp[j, 1], jp[j, 2], w0, w1, w2, w3)
        n0, n1, n2 = n0 + x0, n1 + x1, n2 + x2
        S.xaxis[j, 0], S.xaxis[j, 1], S.xaxis[j, 2] = a0, a1, a2
        S.xanchor[j, 0], S.xanchor[j, 1], S.xanchor[j, 2] = n0, n1, n2
        a = B.jnt_qadr[j]
        dq = qpos[a] - B.qpos0[a]
        if B.jnt_type[j] == _SLIDE:
            x0, x1, x2 = x0 + a0 * dq, x1 + a1 * dq, x2 + a2 * dq
        else:
            if dq == 0.0:
                l0, l1, l2, l3 = 1.0, 0.0, 0.0, 0.0
            else:
                s = math.sin(dq * 0.5)
                l0, l1, l2, l3 = math.cos(dq * 0.5), ja[j, 0] * s, ja[j, 1] * s, ja[j, 2] * s
            w0, w1, w2, w3 = _qmul(w0, w1, w2, w3, l0, l1, l2, l3)
            v0, v1, v2 = _rot(jp[j, 0], jp[j, 1], jp[j, 2], w0, w1, w2, w3)
            x0, x1, x2 = n0 - v0, n1 - v1, n2 - v2
    return x0, x1, x2, w0, w1, w2, w3


@nb.njit(**_NJ)
def body_fk(B, S, qpos):  # pragma: no cover - compiled
    """mj_kinematics' body loop at ``qpos`` into S."""
    for k in range(3):
        S.xpos[0, k] = 0.0
    S.xquat[0, 0], S.xquat[0, 1], S.xquat[0, 2], S.xquat[0, 3] = 1.0, 0.0, 0.0, 0.0
    _quat2mat(S.xmat, 0, 1.0, 0.0, 0.0, 0.0)
    xm, xp, xq = S.xmat, S.xpos, S.xquat
    for i in range(1, B.parent.shape[0]):
        p = B.parent[i]
        if B.jntnum[i] == 1 and B.jnt_type[B.jntadr[i]] == _FREE:
            j = B.jntadr[i]
            a = B.jnt_qadr[j]
            x0, x1, x2 = qpos[a], qpos[a + 1], qpos[a + 2]
            S.xanchor[j, 0], S.xanchor[j, 1], S.xanchor[j, 2] = x0, x1, x2
            S.xaxis[j, 0], S.xaxis[j, 1], S.xaxis[j, 2] = 0.0, 0.0, 1.0
            w0, w1, w2, w3 = _normalize(qpos[a + 3], qpos[a + 4], qpos[a + 5], qpos[a + 6])
        else:
            b0, b1, b2 = B.body_pos[i, 0], B.body_pos[i, 1], B.body_pos[i, 2]
            if p:
                x0 = xm[p, 0] * b0 + xm[p, 1] * b1 + xm[p, 2] * b2 + xp[p, 0]
                x1 = xm[p, 3] * b0 + xm[p, 4] * b1 + xm[p, 5] * b2 + xp[p, 1]
                x2 = xm[p, 6] * b0 + xm[p, 7] * b1 + xm[p, 8] * b2 + xp[p, 2]
                w0, w1, w2, w3 = _qmul(xq[p, 0], xq[p, 1], xq[p, 2], xq[p, 3], B.body_quat[i, 0], B.body_quat[i, 1],
                                       B.body_quat[i, 2], B.body_quat[i, 3])
            else:
                x0, x1, x2 = b0, b1, b2
                w0, w1, w2, w3 = B.body_quat[i, 0], B.body_quat[i, 1], B.body_quat[i, 2], B.body_quat[i, 3]
            x0, x1, x2, w0, w1, w2, w3 = _joints(B, S, qpos, i, x0, x1, x2, w0, w1, w2, w3)
        w0, w1, w2, w3 = _normalize(w0, w1, w2, w3)
        xq[i, 0], xq[i, 1], xq[i, 2], xq[i, 3] = w0, w1, w2, w3
        xp[i, 0], xp[i, 1], xp[i, 2] = x0, x1, x2
        _quat2mat(xm, i, w0, w1, w2, w3)


@nb.njit(inline="always", **_NJ)
def point_jacobian_column(S, kind, j, b, r, p0, p1, p2):  # pragma: no cover - compiled
    """d p / d qvel[dof] (world; m per rad or m per m) of a world point ``p`` carried by the dof, whose
    :func:`dof_column` is (kind, j, b, r)."""
    if kind == UNIT:
        return (1.0 if r == 0 else 0.0), (1.0 if r == 1 else 0.0), (1.0 if r == 2 else 0.0)
    if kind == SLIDE:
        return S.xaxis[j, 0], S.xaxis[j, 1], S.xaxis[j, 2]
    if kind == HINGE:
        a0, a1, a2 = S.xaxis[j, 0], S.xaxis[j, 1], S.xaxis[j, 2]
    else:
        a0, a1, a2 = S.xmat[b, r], S.xmat[b, r + 3], S.xmat[b, r + 6]
    d0, d1, d2 = p0 - S.xanchor[j, 0], p1 - S.xanchor[j, 1], p2 - S.xanchor[j, 2]
    return a1 * d2 - a2 * d1, a2 * d0 - a0 * d2, a0 * d1 - a1 * d0
