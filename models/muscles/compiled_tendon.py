"""MuJoCo's tendon stage (``mj_tendon``) in numba for spatial tendons through sites, spheres and cylinders.

:func:`tendon_frame` writes what ``mj_tendon`` writes for such tendons: ``ten_length``, the sparse ``ten_J``
(MuJoCo 4 stores it on the model's structure ``ten_J_rowadr``/``ten_J_colind``), ``ten_wrapadr``,
``ten_wrapnum``, ``wrap_obj`` and ``wrap_xpos``.  The path runs site to site; a wrapping geom between two sites is
passed on its side site's side (:func:`models.muscles.tendon_wrap.wrap_geom`).  Each straight segment between
points on different bodies adds ``dif' (J2 - J1)`` to the tendon's Jacobian, with ``dif`` the unit direction and
``J1``, ``J2`` the translational Jacobians of the end points as points fixed on their bodies (a tangent point on the
wrap geom's body), from ``cdof`` and ``subtree_com`` (``mj_comPos`` must have run): MuJoCo's ``mj_jac`` and
``mj_jacDifPair`` arithmetic.  It reads the poses of the path's sites and geoms only, so it runs after the
kinematics kernel (:mod:`models.dynamics.compiled_kinematics`).

A frame the kernel does not reproduce (a side site inside its geom, a sphere's sites collinear with its centre)
returns ``False``: the caller runs ``mj_tendon`` for that frame.  A model with other tendons (fixed, pulleys),
wrapping geoms without side sites or a dense Jacobian gets no kernel (:func:`tendon_pack` returns ``None``).
Agreement with ``mj_tendon`` is checked per model at build (:func:`tendon_matches`) and tested on trials and random
poses (``tests/test_compiled_tendon.py``).

This module is pure computation: numpy, numba and mujoco (model arrays, the build check).
"""
from __future__ import annotations

import math
from collections import namedtuple

import mujoco
import numba as nb
import numpy as np

from models.muscles.tendon_wrap import UNSUPPORTED, WRAPPED, wrap_geom

__all__ = ["TenConst", "TenViews", "random_poses", "tendon_errors", "tendon_frame", "tendon_matches", "tendon_pack",
           "tendon_views"]

_NJ = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}
_SITE, _SPHERE, _CYLINDER = 3, 4, 5   # mjtWrap

#: model arrays (``jpos[t, dof]``: the dof's index into ``ten_J``, -1 off the structure), the body pairs' dof
#: chains (``pair_id[b0, b1]`` = p: ``pair_dof[pair_ptr[p, 0]:pair_ptr[p, 1]]`` on b0's chain only, then b1's
#: only, then on both up to ``pair_ptr[p, 3]``) and scratch buffers (``W`` the points of one path piece, ``wb``
#: their bodies)
TenConst = namedtuple("TenConst", "adr num wtype objid side site_body geom_body radius rootid jpos pair_id pair_ptr "
                                  "pair_dof W wb")
#: the ``MjData`` fields it reads and writes (views)
TenViews = namedtuple("TenViews", "site_xpos geom_xpos geom_xmat subtree_com cdof ten_length ten_J wrapadr wrapnum "
                                  "wrap_obj wrap_xpos")


def _dof_chain(m: mujoco.MjModel, body: int) -> list[int]:
    """The dofs that move ``body`` (``mj_jac``'s chain: from its first ancestor with dofs to the root)."""
    while body > 0 and m.body_dofnum[body] == 0:
        body = int(m.body_parentid[body])
    if body == 0:
        return []
    i, out = int(m.body_dofadr[body] + m.body_dofnum[body] - 1), []
    while i >= 0:
        out.append(i)
        i = int(m.dof_parentid[i])
    return out


def _pairs(m: mujoco.MjModel, wt: np.ndarray, objid: np.ndarray, adr: np.ndarray, num: np.ndarray, exact: bool):
    """The body pairs a path segment can join (site-site, site-geom, geom-site) and their dof chains:
    ``(pair_id (nbody, nbody), pair_ptr (npair, 4), pair_dof)`` (module constants of :data:`TenConst`).
    ``exact``: every dof of either chain; else only the dofs on one chain but not the other (a dof that moves
    both end points moves them rigidly: its term is zero, ``mj_tendon`` gets rounding noise there)."""
    sb, gb = np.asarray(m.site_bodyid), np.asarray(m.geom_bodyid)
    pairs = set()
    for t in range(m.ntendon):
        for j in range(adr[t], adr[t] + num[t] - 1):
            if wt[j] != _SITE:
                continue
            if wt[j + 1] == _SITE:
                pairs.add((int(sb[objid[j]]), int(sb[objid[j + 1]])))
            else:
                b0, g, b1 = int(sb[objid[j]]), int(gb[objid[j + 1]]), int(sb[objid[j + 2]])
                pairs |= {(b0, g), (g, b1), (b0, b1)}
    pair_id = np.full((m.nbody, m.nbody), -1, dtype=np.int64)
    ptr, dofs = np.zeros((len(pairs), 4), dtype=np.int64), []
    for p, (b0, b1) in enumerate(sorted(pairs)):
        pair_id[b0, b1] = p
        c0, c1 = set(_dof_chain(m, b0)), set(_dof_chain(m, b1))
        ptr[p, 0] = len(dofs)
        for k, part in enumerate((c0 - c1, c1 - c0, c0 & c1 if exact else set())):
            dofs += sorted(part)
            ptr[p, k + 1] = len(dofs)
    return pair_id, ptr, np.array(dofs, np.int64)


def tendon_pack(m: mujoco.MjModel, exact: bool = True) -> TenConst | None:
    """The constants of ``m`` for :func:`tendon_frame`, or ``None`` where the kernel does not cover its tendons.
    ``exact``: ``mj_tendon``'s arithmetic on every dof (bit-identical); else the dofs shared by a segment's two
    end points are skipped (their exact term is zero; ``ten_J`` then differs from ``mj_tendon``'s by its rounding
    noise, ~1e-16 of the row's largest entry; ~3.5x fewer dof terms on MyoLeg)."""
    wt, adr, num = (np.asarray(a, dtype=np.int64) for a in (m.wrap_type, m.tendon_adr, m.tendon_num))
    if m.ntendon == 0 or not np.all(np.isin(wt, (_SITE, _SPHERE, _CYLINDER))) or not hasattr(m, "ten_J_rowadr"):
        return None
    geo = np.flatnonzero(wt != _SITE)
    side = np.rint(np.asarray(m.wrap_prm)).astype(np.int64)
    starts, ends = adr, adr + num - 1
    for j in geo:   # a geom sits between two sites of its own tendon and has a side site
        t = int(np.searchsorted(starts, j, side="right") - 1)
        if j <= starts[t] or j >= ends[t] or wt[j - 1] != _SITE or wt[j + 1] != _SITE or side[j] < 0:
            return None
    rowadr, rownnz, colind = (np.asarray(a, dtype=np.int64) for a in (m.ten_J_rowadr, m.ten_J_rownnz,
                                                                      m.ten_J_colind))
    jpos = np.full((m.ntendon, m.nv), -1, dtype=np.int64)
    for t in range(m.ntendon):
        jpos[t, colind[rowadr[t]:rowadr[t] + rownnz[t]]] = np.arange(rowadr[t], rowadr[t] + rownnz[t])
    objid = np.asarray(m.wrap_objid, dtype=np.int64)
    return TenConst(adr, num, wt, objid, np.where(wt == _SITE, -1, side), np.asarray(m.site_bodyid, np.int64),
                    np.asarray(m.geom_bodyid, np.int64), np.ascontiguousarray(m.geom_size[:, 0], dtype=float),
                    np.asarray(m.body_rootid, np.int64), jpos, *_pairs(m, wt, objid, adr, num, exact), np.zeros((4, 3)),
                    np.zeros(4, np.int64))


def tendon_views(d: mujoco.MjData) -> TenViews:
    """The fields of ``d`` the kernel reads and writes (views, not copies)."""
    return TenViews(d.site_xpos, d.geom_xpos, d.geom_xmat.reshape(-1, 9), d.subtree_com, d.cdof, d.ten_length,
                    d.ten_J.reshape(-1), d.ten_wrapadr, d.ten_wrapnum, d.wrap_obj.reshape(-1),
                    d.wrap_xpos.reshape(-1, 3))


@nb.njit(inline="always", **_NJ)
def _segment(W, wb, k, t, pair_id, pair_ptr, pair_dof, rootid, jpos, com, cdof, ten_J):  # pragma: no cover
    """Add segment ``k`` (points ``W[k]`` -> ``W[k + 1]`` on bodies ``wb[k]``, ``wb[k + 1]``) to row ``t`` of
    ``ten_J``: ``dif' (J2 - J1)`` over the two bodies' dof chains (``mj_jac``, ``mj_jacDifPair``,
    ``mju_mulMatTVec`` in MuJoCo's order).  False if the pair or a dof is off the packed structure.  Arrays as
    arguments (not the namedtuples): no reference counting in the hot loop."""
    pid = pair_id[wb[k], wb[k + 1]]
    if pid < 0:
        return False
    d0, d1, d2 = W[k + 1, 0] - W[k, 0], W[k + 1, 1] - W[k, 1], W[k + 1, 2] - W[k, 2]
    n = math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)
    if n < 1e-15:
        d0, d1, d2 = 1.0, 0.0, 0.0
    else:
        s = 1.0 / n
        d0, d1, d2 = d0 * s, d1 * s, d2 * s
    ca, cb = rootid[wb[k]], rootid[wb[k + 1]]
    a0, a1, a2 = W[k, 0] - com[ca, 0], W[k, 1] - com[ca, 1], W[k, 2] - com[ca, 2]
    b0, b1, b2 = W[k + 1, 0] - com[cb, 0], W[k + 1, 1] - com[cb, 1], W[k + 1, 2] - com[cb, 2]
    # dofs on one chain only: (0 - J) dif = -(J dif) and (J - 0) dif = J dif, bit for bit
    for p in range(pair_ptr[pid, 0], pair_ptr[pid, 1]):
        i = pair_dof[p]
        c0, c1, c2 = cdof[i, 0], cdof[i, 1], cdof[i, 2]
        v = ((cdof[i, 3] + (c1 * a2 - c2 * a1)) * d0 + (cdof[i, 4] + (c2 * a0 - c0 * a2)) * d1) \
            + (cdof[i, 5] + (c0 * a1 - c1 * a0)) * d2
        q = jpos[t, i]
        if q < 0:
            return False
        ten_J[q] -= v
    for p in range(pair_ptr[pid, 1], pair_ptr[pid, 2]):
        i = pair_dof[p]
        c0, c1, c2 = cdof[i, 0], cdof[i, 1], cdof[i, 2]
        v = ((cdof[i, 3] + (c1 * b2 - c2 * b1)) * d0 + (cdof[i, 4] + (c2 * b0 - c0 * b2)) * d1) \
            + (cdof[i, 5] + (c0 * b1 - c1 * b0)) * d2
        q = jpos[t, i]
        if q < 0:
            return False
        ten_J[q] += v
    for p in range(pair_ptr[pid, 2], pair_ptr[pid, 3]):   # on both chains (exact mode only)
        i = pair_dof[p]
        c0, c1, c2, c3, c4, c5 = cdof[i, 0], cdof[i, 1], cdof[i, 2], cdof[i, 3], cdof[i, 4], cdof[i, 5]
        x0, x1, x2 = c3 + (c1 * a2 - c2 * a1), c4 + (c2 * a0 - c0 * a2), c5 + (c0 * a1 - c1 * a0)
        y0, y1, y2 = c3 + (c1 * b2 - c2 * b1), c4 + (c2 * b0 - c0 * b2), c5 + (c0 * b1 - c1 * b0)
        q = jpos[t, i]
        if q < 0:
            return False
        ten_J[q] += ((y0 - x0) * d0 + (y1 - x1) * d1) + (y2 - x2) * d2
    return True


@nb.njit(inline="always", **_NJ)
def _dist(W, a, b):  # pragma: no cover - compiled
    """``mju_dist3`` of rows ``a`` and ``b`` of ``W``."""
    d0, d1, d2 = W[a, 0] - W[b, 0], W[a, 1] - W[b, 1], W[a, 2] - W[b, 2]
    return math.sqrt(d0 * d0 + d1 * d1 + d2 * d2)


@nb.njit(inline="always", **_NJ)
def _put(dst, r, src, s):  # pragma: no cover - compiled
    """Row ``r`` of ``dst`` = row ``s`` of ``src`` (3 columns)."""
    dst[r, 0], dst[r, 1], dst[r, 2] = src[s, 0], src[s, 1], src[s, 2]


@nb.njit(**_NJ)
def tendon_frame(T, V):  # pragma: no cover - compiled
    """``mj_tendon`` on the views ``V`` (poses, ``cdof`` and ``subtree_com`` current).  Returns False where a
    frame needs ``mj_tendon`` (module docstring); the outputs are then partial.  The namedtuples' arrays are
    unpacked once here (each attribute read of an array costs a reference count)."""
    W, wb, objid, wtype, site_body, x = T.W, T.wb, T.objid, T.wtype, T.site_body, V.site_xpos
    pair_id, pair_ptr, pair_dof, rootid, jpos = T.pair_id, T.pair_ptr, T.pair_dof, T.rootid, T.jpos
    com, cdof, ten_J, ten_length, wrap_xpos, wrap_obj = V.subtree_com, V.cdof, V.ten_J, V.ten_length, \
        V.wrap_xpos, V.wrap_obj
    ten_J[:] = 0.0
    wcnt = 0
    for t in range(T.adr.shape[0]):
        adr, num = T.adr[t], T.num[t]
        V.wrapadr[t] = wcnt
        nw = 0
        length = 0.0
        j = 0
        while j < num - 1:
            s0, g = objid[adr + j], objid[adr + j + 1]
            _put(W, 0, x, s0)
            wb[0] = site_body[s0]
            wlen = -1.0
            if wtype[adr + j + 1] != _SITE:
                s1 = objid[adr + j + 2]
                st, wlen = wrap_geom(W, x, s0, s1, T.side[adr + j + 1], V.geom_xpos, V.geom_xmat, g, T.radius[g],
                                     wtype[adr + j + 1])
                if st == UNSUPPORTED:
                    return False
                if st != WRAPPED:
                    wlen = -1.0
                j += 2
            else:
                s1 = g
                j += 1
            last = 1 if wlen < 0.0 else 3
            _put(W, last, x, s1)
            wb[last] = site_body[s1]
            if wlen < 0.0:
                length += _dist(W, 0, 1)
            else:
                wb[1] = wb[2] = T.geom_body[g]
                length += (_dist(W, 0, 1) + wlen) + _dist(W, 2, 3)
            for k in range(last):
                if wb[k] != wb[k + 1] and not _segment(W, wb, k, t, pair_id, pair_ptr, pair_dof, rootid, jpos, com,
                                                       cdof, ten_J):
                    return False
            for r in range(last):
                _put(wrap_xpos, wcnt + r, W, r)
                wrap_obj[wcnt + r] = -1 if r == 0 else g
            nw += last
            wcnt += last
            if j == num - 1:   # the tendon's last site
                _put(wrap_xpos, wcnt, x, s1)
                wrap_obj[wcnt] = -1
                nw += 1
                wcnt += 1
        ten_length[t] = length
        V.wrapnum[t] = nw
    return True


def random_poses(m: mujoco.MjModel, n: int, seed: int = 0) -> np.ndarray:
    """``n`` poses (n, nq): ``qpos0`` with every limited hinge and slide joint drawn uniformly in its range."""
    rng = np.random.default_rng(seed)
    q = np.tile(np.asarray(m.qpos0, dtype=float), (n, 1))
    for j in range(m.njnt):
        if m.jnt_type[j] in (2, 3) and m.jnt_limited[j]:
            lo, hi = m.jnt_range[j]
            q[:, m.jnt_qposadr[j]] = rng.uniform(lo, hi, n)
    return q


def tendon_errors(m: mujoco.MjModel, T: TenConst, poses: np.ndarray) -> tuple[float, bool, int]:
    """:func:`tendon_frame` against ``mj_tendon`` on ``poses`` (n, nq), each through ``mj_kinematics`` and
    ``mj_comPos``: ``(largest |ten_J| difference relative to its row's largest |entry| (0 for an all-zero row),
    whether ``ten_length`` and the wrap points, objects and counts are bit-identical, frames computed)``; frames the
    kernel hands to ``mj_tendon`` are not counted."""
    d, ref = mujoco.MjData(m), mujoco.MjData(m)
    V = tendon_views(d)
    rowadr, rownnz = np.asarray(m.ten_J_rowadr), np.asarray(m.ten_J_rownnz)
    worst, same, done = 0.0, True, 0
    for q in poses:
        for x in (d, ref):
            x.qpos[:] = q
            mujoco.mj_kinematics(m, x)
            mujoco.mj_comPos(m, x)
        mujoco.mj_tendon(m, ref)
        d.ten_length[:] = np.nan              # nothing left from the previous pose can pass for an output
        d.wrap_xpos[:] = np.nan
        if not tendon_frame(T, V):
            continue
        done += 1
        nw = int(ref.ten_wrapnum.sum())
        same = same and bool(np.array_equal(d.ten_length, ref.ten_length)
                             and np.array_equal(d.ten_wrapadr, ref.ten_wrapadr)
                             and np.array_equal(d.ten_wrapnum, ref.ten_wrapnum)
                             and np.array_equal(V.wrap_obj[:nw], ref.wrap_obj.reshape(-1)[:nw])
                             and np.array_equal(V.wrap_xpos[:nw], ref.wrap_xpos.reshape(-1, 3)[:nw]))
        dif = np.abs(d.ten_J - ref.ten_J)
        for t in range(m.ntendon):
            a, n = rowadr[t], rownnz[t]
            if n == 0:
                continue
            scale = np.abs(ref.ten_J[a:a + n]).max()
            e = dif[a:a + n].max()
            worst = max(worst, float(e / scale) if scale > 0 else (np.inf if e > 0 else 0.0))
    return worst, same, done


def tendon_matches(m: mujoco.MjModel, T: TenConst, rtol: float = 0.0, n_poses: int = 8, seed: int = 0) -> bool:
    """Whether :func:`tendon_frame` gives ``mj_tendon``'s outputs on ``m`` at ``qpos0`` and ``n_poses`` random
    poses in the joint ranges: lengths and wrap points bit for bit, ``ten_J`` within ``rtol`` of each row's largest
    entry (0: bit for bit).  Frames it hands to ``mj_tendon`` are not counted."""
    poses = np.vstack([np.asarray(m.qpos0, dtype=float)[None], random_poses(m, n_poses, seed)])
    worst, same, _ = tendon_errors(m, T, poses)
    return same and worst <= rtol
