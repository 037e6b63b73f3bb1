"""Body poses of every frame of a trial in one compiled pass: MuJoCo's ``mj_kinematics`` for the bodies only.

``mj_kinematics`` also places every geom, site, camera and light; on a subject model with 1060 sites (the lab
marker set) that is ~14 us of a frame whose bodies take well under 1 us.  The ground reaction estimate needs only
body frames (``xpos``, ``xmat``) and inertial frames (``xipos``, ``ximat``), so :func:`body_frames` repeats
MuJoCo 4.0's body recursion (``engine_core_smooth.c``: fixed parent offset, then each joint about its anchor;
``engine_util_spatial.c``'s quaternion formulas in the same operation order) over all frames in numba.
``tests/test_ground_reaction.py`` checks it against ``mujoco.mj_kinematics`` on the MyoLeg and subject models.

Supported: free, ball, slide and hinge joints, no mocap bodies (:func:`supported` says why not otherwise; the
caller then falls back to ``mj_kinematics`` per frame).  World frame z up, SI units, quaternions (w, x, y, z),
matrices row-major (9,).

This module is pure computation: numpy, numba and mujoco (model fields only).
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
from numba import njit

__all__ = ["BodyTree", "body_frames", "supported"]

_FREE, _BALL, _SLIDE, _HINGE = (int(mujoco.mjtJoint.mjJNT_FREE), int(mujoco.mjtJoint.mjJNT_BALL),
                                int(mujoco.mjtJoint.mjJNT_SLIDE), int(mujoco.mjtJoint.mjJNT_HINGE))
_SAMEFRAME_BODY = int(mujoco.mjtSameFrame.mjSAMEFRAME_BODY)
_SAMEFRAME_BODYROT = int(mujoco.mjtSameFrame.mjSAMEFRAME_BODYROT)
_SAMEFRAME_NONE = int(mujoco.mjtSameFrame.mjSAMEFRAME_NONE)
_MINVAL = 1e-15  # mjMINVAL


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


@njit(cache=True, inline="always")
def _mul_quat(r: np.ndarray, a0: float, a1: float, a2: float, a3: float,
              b0: float, b1: float, b2: float, b3: float) -> None:
    r[0] = a0 * b0 - a1 * b1 - a2 * b2 - a3 * b3
    r[1] = a0 * b1 + a1 * b0 + a2 * b3 - a3 * b2
    r[2] = a0 * b2 - a1 * b3 + a2 * b0 + a3 * b1
    r[3] = a0 * b3 + a1 * b2 - a2 * b1 + a3 * b0


@njit(cache=True, inline="always")
def _rot_vec_quat(r: np.ndarray, v0: float, v1: float, v2: float, q: np.ndarray) -> None:
    if q[0] == 1.0 and q[1] == 0.0 and q[2] == 0.0 and q[3] == 0.0:
        r[0], r[1], r[2] = v0, v1, v2
        return
    t0 = q[0] * v0 + q[2] * v2 - q[3] * v1
    t1 = q[0] * v1 + q[3] * v0 - q[1] * v2
    t2 = q[0] * v2 + q[1] * v1 - q[2] * v0
    r[0] = v0 + 2.0 * (q[2] * t2 - q[3] * t1)
    r[1] = v1 + 2.0 * (q[3] * t0 - q[1] * t2)
    r[2] = v2 + 2.0 * (q[1] * t1 - q[2] * t0)


@njit(cache=True, inline="always")
def _normalize4(q: np.ndarray) -> None:
    nrm = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    if nrm < _MINVAL:
        q[0], q[1], q[2], q[3] = 1.0, 0.0, 0.0, 0.0
    elif abs(nrm - 1.0) > _MINVAL:
        inv = 1.0 / nrm
        for k in range(4):
            q[k] *= inv


@njit(cache=True, inline="always")
def _quat2mat(m: np.ndarray, q: np.ndarray) -> None:
    if q[0] == 1.0 and q[1] == 0.0 and q[2] == 0.0 and q[3] == 0.0:
        for k in range(9):
            m[k] = 1.0 if k % 4 == 0 else 0.0
        return
    q00, q01, q02, q03 = q[0] * q[0], q[0] * q[1], q[0] * q[2], q[0] * q[3]
    q11, q12, q13 = q[1] * q[1], q[1] * q[2], q[1] * q[3]
    q22, q23, q33 = q[2] * q[2], q[2] * q[3], q[3] * q[3]
    m[0] = q00 + q11 - q22 - q33
    m[4] = q00 - q11 + q22 - q33
    m[8] = q00 - q11 - q22 + q33
    m[1] = 2.0 * (q12 - q03)
    m[2] = 2.0 * (q13 + q02)
    m[3] = 2.0 * (q12 + q03)
    m[5] = 2.0 * (q23 - q01)
    m[6] = 2.0 * (q13 - q02)
    m[7] = 2.0 * (q23 + q01)


@njit(cache=True, inline="always")
def _mat_vec(r: np.ndarray, m: np.ndarray, v: np.ndarray) -> None:
    r[0] = m[0] * v[0] + m[1] * v[1] + m[2] * v[2]
    r[1] = m[3] * v[0] + m[4] * v[1] + m[5] * v[2]
    r[2] = m[6] * v[0] + m[7] * v[1] + m[8] * v[2]


@njit(cache=True)
def _frame(q: np.ndarray, parent: np.ndarray, jntadr: np.ndarray, jntnum: np.ndarray, body_pos: np.ndarray,
           body_quat: np.ndarray, jnt_type: np.ndarray, jnt_qposadr: np.ndarray, jnt_pos: np.ndarray,
           jnt_axis: np.ndarray, qpos0: np.ndarray, xpos: np.ndarray, xquat: np.ndarray, xmat: np.ndarray,
           anchor: np.ndarray, axis: np.ndarray, vec: np.ndarray, qloc: np.ndarray) -> None:
    """Body frames ``xpos`` (nbody, 3), ``xquat`` (nbody, 4), ``xmat`` (nbody, 9) of one ``qpos`` (nq,)."""
    xpos[0, :] = 0.0
    xquat[0, 0], xquat[0, 1], xquat[0, 2], xquat[0, 3] = 1.0, 0.0, 0.0, 0.0
    for k in range(9):
        xmat[0, k] = 1.0 if k % 4 == 0 else 0.0
    for b in range(1, parent.size):
        ja, jn = jntadr[b], jntnum[b]
        xp, xq = xpos[b], xquat[b]
        if jn == 1 and jnt_type[ja] == _FREE:
            a = jnt_qposadr[ja]
            for k in range(3):
                xp[k] = q[a + k]
            for k in range(4):
                xq[k] = q[a + 3 + k]
            _normalize4(xq)
        else:
            p = parent[b]
            if p:
                _mat_vec(xp, xmat[p], body_pos[b])
                for k in range(3):
                    xp[k] += xpos[p, k]
                pq, bq = xquat[p], body_quat[b]
                _mul_quat(xq, pq[0], pq[1], pq[2], pq[3], bq[0], bq[1], bq[2], bq[3])
            else:
                for k in range(3):
                    xp[k] = body_pos[b, k]
                for k in range(4):
                    xq[k] = body_quat[b, k]
            for j in range(ja, ja + jn):
                a = jnt_qposadr[j]
                jt = jnt_type[j]
                jp, jx = jnt_pos[j], jnt_axis[j]
                _rot_vec_quat(axis, jx[0], jx[1], jx[2], xq)
                _rot_vec_quat(anchor, jp[0], jp[1], jp[2], xq)
                for k in range(3):
                    anchor[k] += xp[k]
                if jt == _SLIDE:
                    d = q[a] - qpos0[a]
                    for k in range(3):
                        xp[k] += axis[k] * d
                else:
                    if jt == _BALL:
                        for k in range(4):
                            qloc[k] = q[a + k]
                        _normalize4(qloc)
                    else:
                        ang = q[a] - qpos0[a]
                        if ang == 0.0:
                            qloc[0], qloc[1], qloc[2], qloc[3] = 1.0, 0.0, 0.0, 0.0
                        else:
                            s = math.sin(ang * 0.5)
                            qloc[0] = math.cos(ang * 0.5)
                            qloc[1], qloc[2], qloc[3] = jx[0] * s, jx[1] * s, jx[2] * s
                    _mul_quat(xq, xq[0], xq[1], xq[2], xq[3], qloc[0], qloc[1], qloc[2], qloc[3])
                    _rot_vec_quat(vec, jp[0], jp[1], jp[2], xq)
                    for k in range(3):
                        xp[k] = anchor[k] - vec[k]
        _normalize4(xq)
        _quat2mat(xmat[b], xq)


@njit(cache=True)
def _frames(qpos: np.ndarray, rows: np.ndarray, parent: np.ndarray, jntadr: np.ndarray, jntnum: np.ndarray,
            body_pos: np.ndarray, body_quat: np.ndarray, body_ipos: np.ndarray, body_iquat: np.ndarray,
            sameframe: np.ndarray, jnt_type: np.ndarray, jnt_qposadr: np.ndarray, jnt_pos: np.ndarray,
            jnt_axis: np.ndarray, qpos0: np.ndarray, bodies: np.ndarray, point_body: np.ndarray,
            point_local: np.ndarray, extra: np.ndarray, X: np.ndarray, R: np.ndarray, PTS: np.ndarray,
            EP: np.ndarray, EM: np.ndarray) -> None:
    """:func:`body_frames`' loop over the frames ``rows``."""
    nbody = parent.size
    xpos, xquat, xmat = np.zeros((nbody, 3)), np.zeros((nbody, 4)), np.zeros((nbody, 9))
    anchor, axis, vec, qloc, tq = np.zeros(3), np.zeros(3), np.zeros(3), np.zeros(4), np.zeros(4)
    for r in rows:
        _frame(qpos[r], parent, jntadr, jntnum, body_pos, body_quat, jnt_type, jnt_qposadr, jnt_pos, jnt_axis,
               qpos0, xpos, xquat, xmat, anchor, axis, vec, qloc)
        for i in range(bodies.size):  # inertial frames (mj_local2Global)
            b = bodies[i]
            sf = sameframe[b]
            if sf == _SAMEFRAME_BODY:
                for k in range(3):
                    X[r, i, k] = xpos[b, k]
            else:
                _mat_vec(X[r, i], xmat[b], body_ipos[b])
                for k in range(3):
                    X[r, i, k] += xpos[b, k]
            if sf == _SAMEFRAME_BODY or sf == _SAMEFRAME_BODYROT:
                for k in range(9):
                    R[r, i, k] = xmat[b, k]
            else:
                xq, iq = xquat[b], body_iquat[b]
                _mul_quat(tq, xq[0], xq[1], xq[2], xq[3], iq[0], iq[1], iq[2], iq[3])
                _quat2mat(R[r, i], tq)
        for i in range(point_body.size):
            b = point_body[i]
            _mat_vec(PTS[r, i], xmat[b], point_local[i])
            for k in range(3):
                PTS[r, i, k] += xpos[b, k]
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
