"""Body poses of every frame of a trial in one compiled pass: MuJoCo's ``mj_kinematics`` for the bodies only.

``mj_kinematics`` also places every geom, site, camera and light; on a subject model with 1060 sites (the lab
marker set) that is ~14 us of a frame whose bodies take well under 1 us.  The ground reaction estimate needs only
body frames (``xpos``, ``xmat``) and inertial frames (``xipos``, ``ximat``), so :func:`body_frames` runs
MuJoCo 4.0's body recursion and ``mj_local2Global`` (:mod:`models.dynamics.mj_pose`, the kernels the compiled ID/SO
chain and marker IK share: same formulas, operation order and association of sums) over all frames in numba.
``tests/test_grf_fk.py`` checks it against ``mujoco.mj_kinematics`` (bit for bit on MyoLeg).

Supported: free, ball, slide and hinge joints, no mocap bodies (:func:`supported` says why not otherwise; the
caller then falls back to ``mj_kinematics`` per frame).  World frame z up, SI units, quaternions (w, x, y, z),
matrices row-major (9,).

This module is pure computation: numpy, numba and mujoco (model fields only).
"""

from __future__ import annotations

import mujoco
import numpy as np
from numba import njit

from models.dynamics.mj_pose import body_poses, local2global

__all__ = ["BodyTree", "body_frames", "supported"]

_FREE, _BALL, _SLIDE, _HINGE = (int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_BALL),
                                int(mujoco.mjtJoint.mjJNT_SLIDE), int(mujoco.mjtJoint.mjJNT_HINGE))
_SAMEFRAME_BODY = int(mujoco.mjtSameFrame.mjSAMEFRAME_BODY)
_SAMEFRAME_BODYROT = int(mujoco.mjtSameFrame.mjSAMEFRAME_BODYROT)
_SAMEFRAME_NONE = int(mujoco.mjtSameFrame.mjSAMEFRAME_NONE)


def supported(model: mujoco.MjModel) -> tuple[bool, str]:
    """Whether :func:`body_frames` reproduces ``mj_kinematics`` for ``model``'s bodies, and why not."""
    if model.nmocap:
        return False, f"{model.nmocap} mocap bodies"
    types = set(int(t) for t in model.jnt_type)
    if not types <= {_FREE, _BALL, _SLIDE, _HINGE}:
        return False, f"joint types {sorted(types)}"
    same = set(int(s) for s in model.body_sameframe[1:])
    if not same <= {_SAMEFRAME_NONE, _SAMEFRAME_BODY, _SAMEFRAME_BODYROT}:
        return False, f"inertial sameframe values {sorted(same)}"
    return True, ""


class BodyTree:
    """The model fields :func:`body_frames` reads, copied once (contiguous float64 / int64)."""

    def __init__(self, model: mujoco.MjModel) -> None:
        ok, why = supported(model)
        if not ok:
            raise ValueError(f"body_frames does not support this model: {why}")
        f, i = np.float64, np.int64
        c = np.ascontiguousarray
        self.nbody = int(model.nbody)
        self.nq = int(model.nq)
        self.parent = c(model.body_parentid, i)
        self.jntadr, self.jntnum = c(model.body_jntadr, i), c(model.body_jntnum, i)
        self.body_pos, self.body_quat = c(model.body_pos, f), c(model.body_quat, f)
        self.body_ipos, self.body_iquat = c(model.body_ipos, f), c(model.body_iquat, f)
        self.sameframe = c(model.body_sameframe, i)
        self.jnt_type, self.jnt_qposadr = c(model.jnt_type, i), c(model.jnt_qposadr, i)
        self.jnt_pos, self.jnt_axis = c(model.jnt_pos, f), c(model.jnt_axis, f)
        self.qpos0 = c(model.qpos0, f)


@njit(cache=True)
def _frames(qpos: np.ndarray, rows: np.ndarray, parent: np.ndarray, jntadr: np.ndarray, jntnum: np.ndarray,
            body_pos: np.ndarray, body_quat: np.ndarray, body_ipos: np.ndarray, body_iquat: np.ndarray,
            sameframe: np.ndarray, jnt_type: np.ndarray, jnt_qposadr: np.ndarray, jnt_pos: np.ndarray,
            jnt_axis: np.ndarray, qpos0: np.ndarray, bodies: np.ndarray, point_body: np.ndarray,
            point_local: np.ndarray, extra: np.ndarray, X: np.ndarray, R: np.ndarray, PTS: np.ndarray,
            EP: np.ndarray, EM: np.ndarray) -> None:  # pragma: no cover - compiled
    """:func:`body_frames`' loop over the frames ``rows``: MuJoCo's body loop and inertial frames
    (:mod:`models.dynamics.mj_pose`), then the selected frames and points copied out."""
    nbody, njnt = parent.size, jnt_type.size
    xpos, xquat, xmat = np.zeros((nbody, 3)), np.zeros((nbody, 4)), np.zeros((nbody, 9))
    xipos, ximat = np.zeros((nbody, 3)), np.zeros((nbody, 9))
    xanchor, xaxis = np.zeros((njnt, 3)), np.zeros((njnt, 3))
    body_self = np.arange(nbody)
    for r in rows:
        body_poses(qpos[r], parent, jntadr, jntnum, body_pos, body_quat, jnt_type, jnt_qposadr, jnt_pos, jnt_axis,
                   qpos0, xpos, xquat, xmat, xanchor, xaxis)
        local2global(xpos, xquat, xmat, xipos, ximat, xipos, ximat, bodies, body_ipos, body_iquat, body_self,
                     sameframe)
        for i in range(bodies.size):
            b = bodies[i]
            for k in range(3):
                X[r, i, k] = xipos[b, k]
            for k in range(9):
                R[r, i, k] = ximat[b, k]
        for i in range(point_body.size):   # a body-fixed point in the world (mj_local2Global's position)
            b = point_body[i]
            p0, p1, p2 = point_local[i, 0], point_local[i, 1], point_local[i, 2]
            for k in range(3):
                PTS[r, i, k] = (xmat[b, 3 * k] * p0 + xmat[b, 3 * k + 1] * p1 + xmat[b, 3 * k + 2] * p2) + xpos[b, k]
        for i in range(extra.size):
            b = extra[i]
            for k in range(3):
                EP[r, i, k] = xpos[b, k]
            for k in range(9):
                EM[r, i, k] = xmat[b, k]


def body_frames(tree: BodyTree, qpos: np.ndarray, rows: np.ndarray, bodies: np.ndarray, point_body: np.ndarray,
                point_local: np.ndarray, extra_bodies: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frames of ``qpos`` (N, nq) at the frame indices ``rows``; the other frames NaN.

    Returns ``X`` (N, nb, 3) COMs (``xipos``) and ``R`` (N, nb, 9) inertial-frame rotations (``ximat``) of
    ``bodies`` (nb,); ``PTS`` (N, P, 3): the points ``point_local`` (P, 3) (body frame, m) of ``point_body`` (P,)
    in the world; ``EP`` (N, ne, 3), ``EM`` (N, ne, 9): body frames (``xpos``, ``xmat``) of ``extra_bodies``."""
    q = np.ascontiguousarray(qpos, np.float64)
    if q.ndim != 2 or q.shape[1] != tree.nq:
        raise ValueError(f"qpos must have shape (N, nq) = (N, {tree.nq}), got {q.shape}")
    n = q.shape[0]
    i64 = np.int64
    bodies, point_body = np.ascontiguousarray(bodies, i64), np.ascontiguousarray(point_body, i64)
    extra = np.ascontiguousarray(extra_bodies, i64)
    X, R = np.full((n, bodies.size, 3), np.nan), np.full((n, bodies.size, 9), np.nan)
    PTS = np.full((n, point_body.size, 3), np.nan)
    EP, EM = np.full((n, extra.size, 3), np.nan), np.full((n, extra.size, 9), np.nan)
    _frames(q, np.ascontiguousarray(rows, i64), tree.parent, tree.jntadr, tree.jntnum, tree.body_pos,
            tree.body_quat, tree.body_ipos, tree.body_iquat, tree.sameframe, tree.jnt_type, tree.jnt_qposadr,
            tree.jnt_pos, tree.jnt_axis, tree.qpos0, bodies, point_body,
            np.ascontiguousarray(np.reshape(point_local, (-1, 3)), np.float64), extra, X, R, PTS, EP, EM)
    return X, R, PTS, EP, EM
