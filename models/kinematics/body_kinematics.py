"""Body-only forward kinematics and point Jacobians of a MuJoCo model in numba (for the compiled marker IK).

``mj_kinematics`` also places every geom and site (MyoLeg: 121 geoms, 1060 muscle-path sites; about 13 us a call,
most of marker IK's time); marker IK needs only the bodies.  :func:`body_fk` is ``mj_kinematics``' body loop
(:func:`models.dynamics.mj_pose.body_poses`: MuJoCo 4's order, formulas and association of sums; bit-identical to
``mj_kinematics`` where :func:`models.dynamics.compiled_kinematics.kinematics_matches` says so), writing ``xpos``,
``xquat``, ``xmat``, ``xanchor`` and ``xaxis`` of the bodies and joints (geoms and sites are left as they were).
:func:`point_jacobian_column` is the column of ``mj_jac``'s translational Jacobian of a world point for one dof:
``axis x (p - anchor)`` for a hinge or the free joint's rotations (``axis`` the body's x/y/z axis), ``axis`` for a
slide or the free translations; equal to ``mj_jac`` (which goes through ``mj_comPos``' com-based motion dofs) up to
rounding.

:func:`supported` says whether a model has only these joints and no mocap bodies.  Tested against ``mj_kinematics``
and ``mj_jac`` in ``tests/test_compiled_ik.py``.  World frame, z up; m; quaternions (w, x, y, z).

This module is pure computation: numpy, numba, mujoco.
"""
from __future__ import annotations

from collections import namedtuple

import mujoco
import numba as nb
import numpy as np

from models.dynamics.mj_pose import body_poses

__all__ = ["BodyModel", "BodyState", "body_fk", "body_model", "body_state", "dof_column", "point_jacobian_column",
           "supported"]

_NJ = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")
_FREE, _BALL, _SLIDE, _HINGE = (int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_BALL),
                                int(mujoco.mjtJoint.mjJNT_SLIDE), int(mujoco.mjtJoint.mjJNT_HINGE))

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


@nb.njit(**_NJ)
def body_fk(B, S, qpos):  # pragma: no cover - compiled
    """mj_kinematics' body loop at ``qpos`` into S (:func:`models.dynamics.mj_pose.body_poses`)."""
    body_poses(qpos, B.parent, B.jntadr, B.jntnum, B.body_pos, B.body_quat, B.jnt_type, B.jnt_qadr, B.jnt_pos,
               B.jnt_axis, B.qpos0, S.xpos, S.xquat, S.xmat, S.xanchor, S.xaxis)


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
