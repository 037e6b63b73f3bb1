"""MuJoCo's position kinematics (``mj_kinematics``) in numba, restricted to the frames a muscle chain reads.

``mj_kinematics`` computes the pose of every body, joint axis, geom and site.  On the lab's OpenSim models (GC5,
MyoLeg: 30 bodies, 121 geoms, 1060 sites, of which the 80 muscle paths use 324 sites and 30 wrapping geoms) the
sites are most of its ~9.6 us per frame; the kernel takes ~4.3 us (MyoFullBody: 23 -> 21 us, it uses most sites).
:func:`kinematics_frame` does MuJoCo 4's arithmetic (:mod:`models.dynamics.mj_pose`: ``mju_mulQuat``,
``mju_rotVecQuat``, ``mju_axisAngle2Quat``, ``mju_normalize4``, ``mju_quat2Mat``, the body loop and
``mj_local2Global`` with the same association of sums as the library's AVX code) for every body, inertial frame and
joint axis, but only for the geoms and sites given (:func:`tendon_frames`).  The other geoms' and sites' poses in
the data are left as they were (stale).  Whether the result is bit-identical to ``mj_kinematics`` on a model is
checked, not assumed (:func:`kinematics_matches`); callers use ``mj_kinematics`` otherwise.

This module is pure computation: numpy, numba and mujoco.
"""
from __future__ import annotations

from collections import namedtuple

import mujoco
import numba as nb
import numpy as np

from models.dynamics.mj_pose import body_poses, local2global

__all__ = ["KinConst", "KinViews", "kinematics_frame", "kinematics_matches", "kinematics_pack", "kinematics_views",
           "tendon_frames"]

_NJ = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}

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


@nb.njit(**_NJ)
def kinematics_frame(K, D):  # pragma: no cover - compiled
    """``mj_kinematics`` on the views ``D`` for the bodies, joints, inertial frames and ``K``'s geoms and sites."""
    body_poses(D.qpos, K.parent, K.jntadr, K.jntnum, K.body_pos, K.body_quat, K.jnt_type, K.jnt_qadr, K.jnt_pos,
               K.jnt_axis, K.qpos0, D.xpos, D.xquat, D.xmat, D.xanchor, D.xaxis)
    for k in range(3):
        D.xipos[0, k] = 0.0
    for k in range(9):
        D.ximat[0, k] = 1.0 if k % 4 == 0 else 0.0
    local2global(D.xpos, D.xquat, D.xmat, D.xipos, D.ximat, D.xipos, D.ximat, K.bodies, K.body_ipos,
                 K.body_iquat, K.body_self, K.body_same)
    local2global(D.xpos, D.xquat, D.xmat, D.xipos, D.ximat, D.geom_xpos, D.geom_xmat, K.geoms, K.geom_pos,
                 K.geom_quat, K.geom_body, K.geom_same)
    local2global(D.xpos, D.xquat, D.xmat, D.xipos, D.ximat, D.site_xpos, D.site_xmat, K.sites, K.site_pos,
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
