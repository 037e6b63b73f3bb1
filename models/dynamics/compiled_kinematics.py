"""MuJoCo's position kinematics (``mj_kinematics``) in numba, restricted to the frames a muscle chain reads.

``mj_kinematics`` computes the pose of every body, joint axis, geom and site.  On the lab's OpenSim models (GC5,
MyoLeg: 30 bodies, 121 geoms, 1060 sites, of which the 80 muscle paths use 324 sites and 30 wrapping geoms) the
sites are most of its ~9.6 us per frame; the kernel takes ~4.3 us (MyoFullBody: 23 -> 21 us, it uses most sites).  :func:`kinematics_frame` does MuJoCo 4's arithmetic (``mju_mulQuat``,
``mju_rotVecQuat``, ``mju_axisAngle2Quat``, ``mju_normalize4``, ``mju_quat2Mat`` and ``mj_local2Global`` with the
same association of sums as the library's AVX code) for every body, inertial frame and joint axis, but only for
the geoms and sites given (:func:`tendon_frames`).  The other geoms' and sites' poses in the data are left as they
were (stale).  Whether the result is bit-identical to ``mj_kinematics`` on a model is checked, not assumed
(:func:`kinematics_matches`); callers use ``mj_kinematics`` otherwise.

This module is pure computation: numpy, numba and mujoco.
"""
from __future__ import annotations

import math
from collections import namedtuple

import mujoco
import numba as nb
import numpy as np

__all__ = ["KinConst", "KinViews", "kinematics_frame", "kinematics_matches", "kinematics_pack", "kinematics_views",
           "tendon_frames"]

_NJ = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}
_MINVAL = 1e-15   # mjMINVAL

#: the model arrays the kernel reads; ``geoms``/``sites``: the indices whose poses are computed
KinConst = namedtuple("KinConst", "parent jntadr jntnum body_pos body_quat body_ipos body_iquat body_same jnt_type "
                                  "jnt_qadr jnt_axis jnt_pos qpos0 geoms geom_body geom_pos geom_quat geom_same sites "
                                  "site_body site_pos site_quat site_same bodies body_self")
#: the ``MjData`` fields it writes (views)
KinViews = namedtuple("KinViews", "qpos xpos xquat xmat xipos ximat xanchor xaxis geom_xpos geom_xmat site_xpos "
                                  "site_xmat")


def tendon_frames(m: mujoco.MjModel) -> tuple[np.ndarray, np.ndarray]:
    """``(geoms, sites)`` that the tendons' paths read: wrapping geoms, path sites and side sites (int64)."""
    wt = np.asarray(m.wrap_type)
    site = wt == int(mujoco.mjtWrap.mjWRAP_SITE)
    geo = (wt == int(mujoco.mjtWrap.mjWRAP_SPHERE)) | (wt == int(mujoco.mjtWrap.mjWRAP_CYLINDER))
    side = np.asarray(m.wrap_prm)[geo].astype(np.int64)
    sites = np.union1d(np.asarray(m.wrap_objid)[site], side[side >= 0]).astype(np.int64)
    geoms = np.unique(np.asarray(m.wrap_objid)[geo]).astype(np.int64)
    return geoms, sites


def kinematics_pack(m: mujoco.MjModel, geoms: np.ndarray, sites: np.ndarray) -> KinConst:
    """The constants of ``m`` for :func:`kinematics_frame` computing the poses of ``geoms`` and ``sites``."""
    def f(a):
        return np.ascontiguousarray(a, dtype=float)

    def i(a):
        return np.ascontiguousarray(a, dtype=np.int64)

    return KinConst(i(m.body_parentid), i(m.body_jntadr), i(m.body_jntnum), f(m.body_pos), f(m.body_quat),
                    f(m.body_ipos), f(m.body_iquat), i(m.body_sameframe), i(m.jnt_type), i(m.jnt_qposadr),
                    f(m.jnt_axis), f(m.jnt_pos), f(m.qpos0), i(geoms), i(m.geom_bodyid), f(m.geom_pos),
                    f(m.geom_quat), i(m.geom_sameframe), i(sites), i(m.site_bodyid), f(m.site_pos), f(m.site_quat),
                    i(m.site_sameframe), np.arange(1, m.nbody, dtype=np.int64),
                    np.arange(m.nbody, dtype=np.int64))


def kinematics_views(d: mujoco.MjData) -> KinViews:
    """The fields of ``d`` the kernel writes (views, not copies)."""
    return KinViews(d.qpos, d.xpos, d.xquat, d.xmat.reshape(-1, 9), d.xipos, d.ximat.reshape(-1, 9), d.xanchor,
                    d.xaxis, d.geom_xpos, d.geom_xmat.reshape(-1, 9), d.site_xpos, d.site_xmat.reshape(-1, 9))


# ---- MuJoCo 4's small vector functions (the association of its AVX code), on scalars --------------------------

@nb.njit(inline="always", **_NJ)
def _mulq(a0, a1, a2, a3, b0, b1, b2, b3):  # pragma: no cover - compiled
    return ((a0 * b0 - a1 * b1) - (a2 * b2 + a3 * b3), (a0 * b1 + a1 * b0) + (a2 * b3 - a3 * b2),
            (a0 * b2 - a1 * b3) + (a2 * b0 + a3 * b1), (a0 * b3 + a1 * b2) + (a3 * b0 - a2 * b1))


@nb.njit(inline="always", **_NJ)
def _rotv(v0, v1, v2, q0, q1, q2, q3):  # pragma: no cover - compiled
    if v0 == 0.0 and v1 == 0.0 and v2 == 0.0:
        return 0.0, 0.0, 0.0
    if q0 == 1.0 and q1 == 0.0 and q2 == 0.0 and q3 == 0.0:
        return v0, v1, v2
    t0 = q0 * v0 + q2 * v2 - q3 * v1
    t1 = q0 * v1 + q3 * v0 - q1 * v2
    t2 = q0 * v2 + q1 * v1 - q2 * v0
    return v0 + 2 * (q2 * t2 - q3 * t1), v1 + 2 * (q3 * t0 - q1 * t2), v2 + 2 * (q1 * t1 - q2 * t0)


@nb.njit(inline="always", **_NJ)
def _norm4(q0, q1, q2, q3):  # pragma: no cover - compiled
    n = math.sqrt((q0 * q0 + q1 * q1) + (q2 * q2 + q3 * q3))
    if n < _MINVAL:
        return 1.0, 0.0, 0.0, 0.0
    if abs(n - 1.0) > _MINVAL:
        s = 1.0 / n
        return q0 * s, q1 * s, q2 * s, q3 * s
    return q0, q1, q2, q3


@nb.njit(inline="always", **_NJ)
def _quat2mat(R, r, q0, q1, q2, q3):  # pragma: no cover - compiled
    """Row ``r`` of ``R`` (n, 9) = the rotation matrix of the quaternion."""
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
    R[r, 1] = 2 * (q12 - q03)
    R[r, 2] = 2 * (q13 + q02)
    R[r, 3] = 2 * (q12 + q03)
    R[r, 5] = 2 * (q23 - q01)
    R[r, 6] = 2 * (q13 - q02)
    R[r, 7] = 2 * (q23 + q01)


@nb.njit(**_NJ)
def _local2global(xpos, xquat, xmat, xipos, ximat, X, XM, idx, pos, quat, bodyid, sameid):  # pragma: no cover
    """``mj_local2Global`` of the frames ``idx`` into rows of ``X`` (n, 3) and ``XM`` (n, 9) from the bodies'
    poses (``mjtSameFrame``: 0 none, 1 body, 2 inertia, 3 body rotation, 4 inertia rotation)."""
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
            t0, t1, t2, t3 = _mulq(xquat[body, 0], xquat[body, 1], xquat[body, 2], xquat[body, 3], quat[r, 0],
                                   quat[r, 1], quat[r, 2], quat[r, 3])
            _quat2mat(XM, r, t0, t1, t2, t3)
        elif same == 1 or same == 3:
            for k in range(9):
                XM[r, k] = xmat[body, k]
        else:
            for k in range(9):
                XM[r, k] = ximat[body, k]


@nb.njit(**_NJ)
def _bodies(K, D):  # pragma: no cover - compiled
    """Poses of the bodies and joint axes (``mj_kinematics``' body loop)."""
    for k in range(3):
        D.xpos[0, k] = 0.0
        D.xipos[0, k] = 0.0
    D.xquat[0, 0], D.xquat[0, 1], D.xquat[0, 2], D.xquat[0, 3] = 1.0, 0.0, 0.0, 0.0
    for k in range(9):
        D.xmat[0, k] = 1.0 if k % 4 == 0 else 0.0
        D.ximat[0, k] = 1.0 if k % 4 == 0 else 0.0
    q = D.qpos
    for i in range(1, K.parent.shape[0]):
        ja, jn = K.jntadr[i], K.jntnum[i]
        if jn == 1 and K.jnt_type[ja] == 0:   # free joint
            a = K.jnt_qadr[ja]
            x0, x1, x2 = q[a], q[a + 1], q[a + 2]
            w0, w1, w2, w3 = _norm4(q[a + 3], q[a + 4], q[a + 5], q[a + 6])
            D.xanchor[ja, 0], D.xanchor[ja, 1], D.xanchor[ja, 2] = x0, x1, x2
            for k in range(3):
                D.xaxis[ja, k] = K.jnt_axis[ja, k]
        else:
            p = K.parent[i]
            b0, b1, b2 = K.body_pos[i, 0], K.body_pos[i, 1], K.body_pos[i, 2]
            if p:
                M = D.xmat
                x0 = (M[p, 0] * b0 + M[p, 1] * b1 + M[p, 2] * b2) + D.xpos[p, 0]
                x1 = (M[p, 3] * b0 + M[p, 4] * b1 + M[p, 5] * b2) + D.xpos[p, 1]
                x2 = (M[p, 6] * b0 + M[p, 7] * b1 + M[p, 8] * b2) + D.xpos[p, 2]
                w0, w1, w2, w3 = _mulq(D.xquat[p, 0], D.xquat[p, 1], D.xquat[p, 2], D.xquat[p, 3],
                                       K.body_quat[i, 0], K.body_quat[i, 1], K.body_quat[i, 2], K.body_quat[i, 3])
            else:
                x0, x1, x2 = b0, b1, b2
                w0, w1, w2, w3 = K.body_quat[i, 0], K.body_quat[i, 1], K.body_quat[i, 2], K.body_quat[i, 3]
            for j in range(ja, ja + jn):
                a = K.jnt_qadr[j]
                t = K.jnt_type[j]
                ax0, ax1, ax2 = _rotv(K.jnt_axis[j, 0], K.jnt_axis[j, 1], K.jnt_axis[j, 2], w0, w1, w2, w3)
                c0, c1, c2 = _rotv(K.jnt_pos[j, 0], K.jnt_pos[j, 1], K.jnt_pos[j, 2], w0, w1, w2, w3)
                c0, c1, c2 = c0 + x0, c1 + x1, c2 + x2
                if t == 2:   # slide
                    s = q[a] - K.qpos0[a]
                    x0, x1, x2 = x0 + ax0 * s, x1 + ax1 * s, x2 + ax2 * s
                else:        # ball (1) or hinge (3)
                    if t == 1:
                        l0, l1, l2, l3 = _norm4(q[a], q[a + 1], q[a + 2], q[a + 3])
                    else:
                        ang = q[a] - K.qpos0[a]
                        if ang == 0.0:
                            l0, l1, l2, l3 = 1.0, 0.0, 0.0, 0.0
                        else:
                            sn = math.sin(0.5 * ang)
                            l0, l1, l2, l3 = (math.cos(0.5 * ang), K.jnt_axis[j, 0] * sn, K.jnt_axis[j, 1] * sn,
                                              K.jnt_axis[j, 2] * sn)
                    w0, w1, w2, w3 = _mulq(w0, w1, w2, w3, l0, l1, l2, l3)
                    v0, v1, v2 = _rotv(K.jnt_pos[j, 0], K.jnt_pos[j, 1], K.jnt_pos[j, 2], w0, w1, w2, w3)
                    x0, x1, x2 = c0 - v0, c1 - v1, c2 - v2
                D.xanchor[j, 0], D.xanchor[j, 1], D.xanchor[j, 2] = c0, c1, c2
                D.xaxis[j, 0], D.xaxis[j, 1], D.xaxis[j, 2] = ax0, ax1, ax2
        w0, w1, w2, w3 = _norm4(w0, w1, w2, w3)
        D.xquat[i, 0], D.xquat[i, 1], D.xquat[i, 2], D.xquat[i, 3] = w0, w1, w2, w3
        D.xpos[i, 0], D.xpos[i, 1], D.xpos[i, 2] = x0, x1, x2
        _quat2mat(D.xmat, i, w0, w1, w2, w3)


@nb.njit(**_NJ)
def kinematics_frame(K, D):  # pragma: no cover - compiled
    """``mj_kinematics`` on the views ``D`` for the bodies, joints, inertial frames and ``K``'s geoms and sites."""
    _bodies(K, D)
    _local2global(D.xpos, D.xquat, D.xmat, D.xipos, D.ximat, D.xipos, D.ximat, K.bodies, K.body_ipos,
                  K.body_iquat, K.body_self, K.body_same)
    _local2global(D.xpos, D.xquat, D.xmat, D.xipos, D.ximat, D.geom_xpos, D.geom_xmat, K.geoms, K.geom_pos,
                  K.geom_quat, K.geom_body, K.geom_same)
    _local2global(D.xpos, D.xquat, D.xmat, D.xipos, D.ximat, D.site_xpos, D.site_xmat, K.sites, K.site_pos,
                  K.site_quat, K.site_body, K.site_same)


def kinematics_matches(m: mujoco.MjModel, K: KinConst, n_poses: int = 8, seed: int = 0,
                       data: mujoco.MjData | None = None) -> bool:
    """Whether :func:`kinematics_frame` gives ``mj_kinematics``' poses bit for bit on ``m`` (qpos0 and random
    poses): bodies, inertial frames, joint axes and ``K``'s geoms and sites.  No mocap bodies, no flexes.
    ``data``: an ``MjData`` of ``m`` to use as scratch (its ``qpos`` is restored and its position stage rerun with
    ``mj_kinematics`` at the end; saves allocating one, ~0.8 ms on GC5)."""
    if m.nmocap or getattr(m, "nflex", 0) or np.any(~np.isin(m.jnt_type, (0, 1, 2, 3))):
        return False
    rng = np.random.default_rng(seed)
    d = mujoco.MjData(m) if data is None else data
    q_saved = d.qpos.copy()
    V = kinematics_views(d)
    fields = ("xpos", "xquat", "xmat", "xipos", "ximat", "xanchor", "xaxis")
    ok = True
    for k in range(n_poses + 1):
        d.qpos[:] = m.qpos0 + (0.5 * rng.standard_normal(m.nq) if k else 0.0)
        mujoco.mj_kinematics(m, d)
        ref = [getattr(d, f).copy() for f in fields]
        ref += [d.geom_xpos[K.geoms], d.geom_xmat[K.geoms], d.site_xpos[K.sites], d.site_xmat[K.sites]]  # copies
        for f in fields:
            getattr(d, f)[:] = np.nan
        for f, idx in (("geom_xpos", K.geoms), ("geom_xmat", K.geoms), ("site_xpos", K.sites), ("site_xmat", K.sites)):
            getattr(d, f)[idx] = np.nan
        kinematics_frame(K, V)
        out = [getattr(d, f) for f in fields]
        out += [d.geom_xpos[K.geoms], d.geom_xmat[K.geoms], d.site_xpos[K.sites], d.site_xmat[K.sites]]
        if not all(np.array_equal(x, y) for x, y in zip(out, ref)):
            ok = False
            break
    d.qpos[:] = q_saved
    mujoco.mj_kinematics(m, d)
    return ok
