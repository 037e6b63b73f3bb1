"""The scaled model seen through its BlazePose landmark sites, as a function of the marker chain's coordinates.

The unknowns of monocular fitting are :attr:`InverseKinematics.coordinate_names`: OpenSim's ``ground_pelvis``
coordinates (tilt, list, rotation: body-fixed Z-X-Y, rad; ``pelvis_t[xyz]``: pelvis origin in OpenSim ground,
x forward, y up, z right, m) followed by the solved joint coordinates (rad), the same names and units as the
marker IK.  This module maps them to a full MuJoCo ``qpos`` (free root from the pelvis coordinates, joint
equalities applied), to the landmark sites (world, z up, m) and to the sites' Jacobian with respect to the
coordinates: :meth:`InverseKinematics.marker_jacobian` (root columns: world translation, body-frame rotation)
with the root columns mapped analytically to the pelvis coordinates.

Pelvis frame ``P = T E``, ``E = Rz(tilt) Rx(list) Ry(rotation)``, ``T`` = OpenSim ground -> world
(:data:`models.kinematics.opensim_pelvis.T_OSIM_TO_ZUP`); root ``R_root = P C^T`` and ``t_root = T p - R_root p0``
with ``C``, ``p0`` the pelvis body's fixed pose in the root body.  Hence the root's body-frame angular velocity
``w = C [Ry^T Rx^T e_z, Ry^T e_x, e_y] d(tilt, list, rotation)`` and ``dt_root = T dp + R_root [p0]x w``.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import mujoco
import numpy as np

from models.body.landmark_markerset import blazepose_markerset, landmark_ik_params
from models.body.markerset import MarkerSet, _as_mjmodel
from models.kinematics.inverse_kinematics import InverseKinematics
from models.kinematics.opensim_pelvis import T_OSIM_TO_ZUP, pelvis_opensim

__all__ = ["LandmarkModel"]

#: Distinct coordinate vectors whose sites and Jacobian :meth:`LandmarkModel.cached_sites_jacobian` keeps.
_CACHE_SIZE = 64


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _skew(v: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


class LandmarkModel:
    """Landmark sites of a (scaled) MyoLeg as a function of its coordinates; one instance per thread.

    ``model``: an ``MjModel`` (or an object with ``.mj_model``); ``markerset``: default
    :func:`blazepose_markerset` of the model.  Attributes: ``coordinate_names``, ``landmark_names``,
    ``lower``/``upper`` (coordinate limits, +-inf for the pelvis), ``contact_height_m`` (per landmark: its
    height above the floor when the model stands in its default pose on the lowest point of its foot meshes;
    NaN for non-foot landmarks), ``leg_length_m`` (mean hip -> knee -> ankle site length of both legs).
    """

    def __init__(self, model: Any, markerset: MarkerSet | None = None) -> None:
        m = _as_mjmodel(model)
        self.model = m
        self.markerset = markerset if markerset is not None else blazepose_markerset(m)
        self.ik = InverseKinematics(m, self.markerset, landmark_ik_params(marker_weights={}))
        self.coordinate_names: tuple[str, ...] = self.ik.coordinate_names
        self.landmark_names: tuple[str, ...] = self.ik.marker_names
        self.n = len(self.coordinate_names)
        lo, hi = self.ik.coordinate_limits
        self.lower = np.concatenate([np.full(6, -np.inf), lo])
        self.upper = np.concatenate([np.full(6, np.inf), hi])
        self._coord_qadr = np.array([int(m.jnt_qposadr[m.joint(c).id]) for c in self.ik.solved_coordinates])
        self._root_qadr = self.ik._root_qadr
        d = mujoco.MjData(m)
        q0 = np.array(m.qpos0, dtype=float)
        self.ik._eq.apply(q0)
        d.qpos[:] = q0
        mujoco.mj_kinematics(m, d)
        rb, pb = self.ik._root_body, self.ik._pelvis_body
        Rr = d.xmat[rb].reshape(3, 3)
        self._C = Rr.T @ d.xmat[pb].reshape(3, 3)
        self._p0 = Rr.T @ (d.xpos[pb] - d.xpos[rb])
        self._skew_p0 = _skew(self._p0)
        self._TE_pre = T_OSIM_TO_ZUP.copy()
        self._q0 = q0
        self.x0 = self.coordinates_from_qpos(q0)
        self.contact_height_m = self._contact_heights(d)
        P = self.sites(self.x0)
        idx = {nm: i for i, nm in enumerate(self.landmark_names)}
        leg = [np.linalg.norm(P[idx[f"{s}_hip"]] - P[idx[f"{s}_knee"]]) + np.linalg.norm(P[idx[f"{s}_knee"]] - P[idx[f"{s}_ankle"]])
               for s in ("left", "right")]
        self.leg_length_m = float(np.mean(leg))
        self._cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def _contact_heights(self, d: mujoco.MjData) -> np.ndarray:
        """Site heights above the lowest foot-mesh vertex (calcn_*, toes_*) in the default pose, m."""
        m = self.model
        foot_bodies = {m.body(f"{b}_{s}").id for b in ("calcn", "toes") for s in "lr"}
        zmin = math.inf
        for g in range(m.ngeom):
            if int(m.geom_bodyid[g]) not in foot_bodies or int(m.geom_type[g]) != int(mujoco.mjtGeom.mjGEOM_MESH):
                continue
            mid = int(m.geom_dataid[g])
            v = m.mesh_vert[m.mesh_vertadr[mid]:m.mesh_vertadr[mid] + m.mesh_vertnum[mid]]
            w = d.geom_xpos[g] + v @ d.geom_xmat[g].reshape(3, 3).T
            zmin = min(zmin, float(w[:, 2].min()))
        if not math.isfinite(zmin):
            raise ValueError("the model has no foot meshes on calcn_*/toes_* to define its contact heights")
        P = self.sites(self.x0)
        h = np.full(len(self.landmark_names), np.nan)
        for i, nm in enumerate(self.landmark_names):
            if nm.endswith("_heel") or nm.endswith("_foot_index"):
                h[i] = P[i, 2] - zmin
        return h

    # -- coordinates <-> qpos ------------------------------------------------------------------------------

    def coordinates_from_qpos(self, qpos: np.ndarray) -> np.ndarray:
        """(n,) coordinates (pelvis OpenSim coordinates, then joints) of a full ``qpos``."""
        q = np.array(qpos, dtype=float)
        self.ik._eq.apply(q)
        d = self.ik.data
        d.qpos[:] = q
        mujoco.mj_kinematics(self.model, d)
        x = np.empty(self.n)
        pb = self.ik._pelvis_body
        pelvis_opensim(d.xmat[pb], d.xpos[pb], x)
        x[6:] = q[self._coord_qadr]
        return x

    def _pelvis_rotation(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``R_root`` (3, 3) and ``W`` (3, 3): the body-frame angular velocity of ``E`` per unit rate of (tilt,
        list, rotation): columns ``Ry^T Rx^T e_z``, ``Ry^T e_x``, ``e_y``."""
        ca, sa = math.cos(x[0]), math.sin(x[0])
        cb, sb = math.cos(x[1]), math.sin(x[1])
        cc, sc = math.cos(x[2]), math.sin(x[2])
        E = np.array([[ca * cc - sa * sb * sc, -sa * cb, ca * sc + sa * sb * cc],
                      [sa * cc + ca * sb * sc, ca * cb, sa * sc - ca * sb * cc],
                      [-cb * sc, sb, cb * cc]])
        W = np.array([[-sc * cb, cc, 0.0], [sb, 0.0, 1.0], [cc * cb, sc, 0.0]])
        return self._TE_pre @ E @ self._C.T, W

    def qpos(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Full ``qpos`` of coordinates ``x`` (other dofs at ``qpos0``, joint equalities applied)."""
        q = self._q0.copy() if out is None else out
        if out is not None:
            q[:] = self._q0
        Rroot, _ = self._pelvis_rotation(x)
        a = self._root_qadr
        q[a:a + 3] = T_OSIM_TO_ZUP @ x[3:6] - Rroot @ self._p0
        mujoco.mju_mat2Quat(q[a + 3:a + 7], Rroot.reshape(-1))
        q[self._coord_qadr] = x[6:]
        self.ik._eq.apply(q)
        return q

    def root_map(self, x: np.ndarray) -> np.ndarray:
        """(6, 6) d(root tangent: world translation, body-frame rotation)/d(pelvis coordinates)."""
        Rroot, W = self._pelvis_rotation(x)
        G = np.zeros((6, 6))
        dw = self._C @ W
        G[3:, :3] = dw
        G[:3, :3] = Rroot @ (self._skew_p0 @ dw)
        G[:3, 3:] = T_OSIM_TO_ZUP
        return G

    # -- sites -----------------------------------------------------------------------------------------------

    def sites(self, x: np.ndarray) -> np.ndarray:
        """(M, 3) landmark sites (world, z up, m) at coordinates ``x``."""
        return self.ik.marker_positions(self.qpos(x))

    def cached_sites_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`sites_jacobian`, remembered for the last :data:`_CACHE_SIZE` distinct ``x`` (exact match): the
        live window re-evaluates its older frames at the point where the previous solve left them.  The arrays
        returned are shared: do not modify them."""
        key = np.ascontiguousarray(x, dtype=float).tobytes()
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        out = self.sites_jacobian(x)
        self._cache[key] = out
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return out

    def sites_jacobian(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sites (M, 3) and their Jacobian (M, 3, n) with respect to the coordinates (m per rad or m per m)."""
        P = np.empty((len(self.landmark_names), 3))
        J = self.ik.marker_jacobian(self.qpos(x), positions_out=P)  # a fresh array: updated in place
        J[:, :, :6] = J[:, :, :6] @ self.root_map(x)
        return P, J
