"""OpenSim coordinates (Rajagopal / gait2392 names; OpenSim ground: x forward, y up, z right; rad, m) -> MuJoCo
``qpos, qvel, qacc`` (z up; the pelvis Euler angles drive the free root).

Pure computation: numpy, mujoco and other ``models/`` modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import mujoco
import numpy as np

from models.dynamics.couplings import CoordinateCouplings
from models.dynamics.mj_names import JOINT_BALL, JOINT_FREE, JOINT_HINGE, JOINT_SLIDE, as_mjmodel, object_name

__all__ = ["OPENSIM_TO_Z_UP", "MappedKinematics", "OpenSimStateMap", "kinematics_from_opensim", "mat_to_quat"]

#: Rotation taking OpenSim ground axes (x forward, y up, z right) to z-up axes (x forward, y left, z up).
OPENSIM_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def _euler_zxy(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``Rz(a) @ Rx(b) @ Ry(c)`` for arrays of angles (rad), shape (N, 3, 3): the OpenSim pelvis rotation."""
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    n = np.shape(a)[0]
    rz = np.zeros((n, 3, 3))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1], rz[:, 2, 2] = ca, -sa, sa, ca, 1.0
    rx = np.zeros((n, 3, 3))
    rx[:, 0, 0], rx[:, 1, 1], rx[:, 1, 2], rx[:, 2, 1], rx[:, 2, 2] = 1.0, cb, -sb, sb, cb
    ry = np.zeros((n, 3, 3))
    ry[:, 0, 0], ry[:, 0, 2], ry[:, 1, 1], ry[:, 2, 0], ry[:, 2, 2] = cc, sc, 1.0, -sc, cc
    return rz @ rx @ ry


def mat_to_quat(R: np.ndarray) -> np.ndarray:
    """Unit quaternions ``(w, x, y, z)`` of rotation matrices ``R`` (N, 3, 3), MuJoCo's ``mju_mat2Quat`` rule
    (the branch of the largest of w, x, y, z, then normalised) applied to all frames at once."""
    m = np.asarray(R, dtype=float).reshape(-1, 9)
    tr = m[:, 0] + m[:, 4] + m[:, 8]
    q = np.empty((m.shape[0], 4))
    b0 = tr > 0
    b1 = ~b0 & (m[:, 0] > m[:, 4]) & (m[:, 0] > m[:, 8])
    b2 = ~b0 & ~b1 & (m[:, 4] > m[:, 8])
    b3 = ~(b0 | b1 | b2)
    with np.errstate(invalid="ignore", divide="ignore"):
        for sel, big, diag, rest in (
            (b0, 0, (1, 1, 1), ((1, 7, 5, -1), (2, 2, 6, -1), (3, 3, 1, -1))),
            (b1, 1, (1, -1, -1), ((0, 7, 5, -1), (2, 1, 3, 1), (3, 2, 6, 1))),
            (b2, 2, (-1, 1, -1), ((0, 2, 6, -1), (1, 1, 3, 1), (3, 5, 7, 1))),
            (b3, 3, (-1, -1, 1), ((0, 3, 1, -1), (1, 2, 6, 1), (2, 5, 7, 1))),
        ):
            if not sel.any():
                continue
            ms = m[sel]
            qb = 0.5 * np.sqrt(1.0 + diag[0] * ms[:, 0] + diag[1] * ms[:, 4] + diag[2] * ms[:, 8])
            q[sel, big] = qb
            for k, i, j, sign in rest:
                q[sel, k] = 0.25 * (ms[:, i] + sign * ms[:, j]) / qb
    norm = np.sqrt(np.sum(q * q, axis=1))
    unit = np.abs(norm - 1.0) <= _MJ_MINVAL
    tiny = norm < _MJ_MINVAL
    inv = np.where(unit | tiny, 1.0, 1.0 / np.where(tiny, 1.0, norm))
    q = q * inv[:, None]
    q[tiny] = (1.0, 0.0, 0.0, 0.0)
    return q


_MJ_MINVAL = 1e-15   # MuJoCo's mjMINVAL: mju_normalize4 leaves a quaternion this close to unit length as is


def _pelvis_angular(a, b, c, ad, bd, cd, add, bdd, cdd) -> tuple[np.ndarray, np.ndarray]:
    """Body-frame angular velocity and acceleration of ``R = Rz(a) Rx(b) Ry(c)`` (OpenSim pelvis tilt, list,
    rotation, body-fixed Z-X-Y).  ``w = E(b, c) [ad, bd, cd]`` with
    ``E = [[-sc cb, cc, 0], [sb, 0, 1], [cc cb, sc, 0]]``; ``alpha = E [add, bdd, cdd] + dE/dt [ad, bd, cd]``."""
    sb, cb, sc, cc = np.sin(b), np.cos(b), np.sin(c), np.cos(c)
    w = np.stack([-sc * cb * ad + cc * bd, sb * ad + cd, cc * cb * ad + sc * bd], axis=-1)
    alpha = np.stack(
        [
            -sc * cb * add + cc * bdd + ad * (-cc * cb * cd + sc * sb * bd) - sc * cd * bd,
            sb * add + cdd + cb * bd * ad,
            cc * cb * add + sc * bdd + ad * (-sc * cb * cd - cc * sb * bd) + cc * cd * bd,
        ],
        axis=-1,
    )
    return w, alpha


@dataclass(frozen=True, eq=False)
class MappedKinematics:
    """MuJoCo state from OpenSim coordinates: ``qpos`` (N, nq), ``qvel`` (N, nv), ``qacc`` (N, nv), and what was done
    with each name: ``used_columns`` (mapped), ``ignored_columns`` (no such joint, e.g. lumbar or ``*_beta``),
    ``defaulted_joints`` (model joints left at ``qpos0``), ``coupled_joints`` (filled from their coupling)."""

    qpos: np.ndarray
    qvel: np.ndarray
    qacc: np.ndarray
    used_columns: tuple[str, ...]
    ignored_columns: tuple[str, ...]
    defaulted_joints: tuple[str, ...]
    coupled_joints: tuple[str, ...]


_PELVIS_COLUMNS = ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz")


class OpenSimStateMap:
    """The mapping of :func:`kinematics_from_opensim`, prepared once for a model and a list of coordinate names,
    then applied to any number of frames (:meth:`map`) — the real-time chain calls it once per frame.

    Everything that depends only on the model and the names (joint addresses, couplings, the fixed root-to-pelvis
    transform) is computed here; :meth:`map` does the arithmetic, for all frames at once (no per-frame loop).
    """

    def __init__(self, model: mujoco.MjModel, names: Sequence[str], *, pelvis_body: str = "pelvis") -> None:
        model = as_mjmodel(model)
        self.model = model
        self.names = list(names)
        col = {nm: i for i, nm in enumerate(self.names)}
        self.couplings = CoordinateCouplings(model)
        dependent = set(self.couplings.dependent_joint_names)
        used: list[str] = []
        defaulted: list[str] = []
        self._direct: list[tuple[int, int, int]] = []        # (column, qpos address, dof address)
        free = [j for j in range(model.njnt) if int(model.jnt_type[j]) == JOINT_FREE]
        for j in range(model.njnt):
            jn = object_name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
            t = int(model.jnt_type[j])
            if t in (JOINT_HINGE, JOINT_SLIDE):
                if jn in dependent:
                    continue
                if jn in col:
                    self._direct.append((col[jn], int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j])))
                    used.append(jn)
                else:
                    defaulted.append(jn)
            elif t == JOINT_BALL:
                defaulted.append(jn)
        self._cols = np.array([c for c, _, _ in self._direct], dtype=int)
        self._qadr = np.array([a for _, a, _ in self._direct], dtype=int)
        self._dadr = np.array([d for _, _, d in self._direct], dtype=int)
        self.free = bool(free)
        if free:
            missing = [c for c in _PELVIS_COLUMNS if c not in col]
            if missing:
                raise KeyError(f"the model has a free root but the coordinates lack {missing}")
            jf = free[0]
            root_body = int(model.jnt_bodyid[jf])
            pelvis = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, pelvis_body)
            if pelvis < 0:
                raise KeyError(f"no body {pelvis_body!r} in the model (needed to place the free root)")
            # fixed transform root -> pelvis from the model at qpos0 with an identity root pose
            d0 = mujoco.MjData(model)
            d0.qpos[:] = model.qpos0
            qa = int(model.jnt_qposadr[jf])
            d0.qpos[qa : qa + 3] = 0.0
            d0.qpos[qa + 3 : qa + 7] = (1.0, 0.0, 0.0, 0.0)
            mujoco.mj_kinematics(model, d0)
            Rw_root0 = d0.xmat[root_body].reshape(3, 3)
            if not np.allclose(Rw_root0, np.eye(3)):
                raise NotImplementedError("the free root body has a non-identity frame at the identity joint pose")
            self._R_rp = Rw_root0.T @ d0.xmat[pelvis].reshape(3, 3)  # pelvis axes in the root frame
            self._r_rp = Rw_root0.T @ (d0.xpos[pelvis] - d0.xpos[root_body])  # pelvis origin in the root frame
            self._ia, self._ib, self._ic = col["pelvis_tilt"], col["pelvis_list"], col["pelvis_rotation"]
            self._it = [col["pelvis_tx"], col["pelvis_ty"], col["pelvis_tz"]]
            self._qa, self._da = qa, int(model.jnt_dofadr[jf])
            used += list(_PELVIS_COLUMNS)
        self.used_columns = tuple(used)
        self.ignored_columns = tuple(c for c in self.names if c not in used)
        self.defaulted_joints = tuple(defaulted)

    def map(self, values: np.ndarray, speeds: np.ndarray | None = None,
            accelerations: np.ndarray | None = None) -> MappedKinematics:
        """``values`` (N, n_names) or (n_names,), with optional speeds and accelerations of the same shape."""
        model = self.model
        values = np.atleast_2d(np.asarray(values, dtype=float))
        n = values.shape[0]
        if values.shape[1] != len(self.names):
            raise ValueError(f"values has {values.shape[1]} columns but {len(self.names)} names were given")
        speeds = np.zeros_like(values) if speeds is None else np.atleast_2d(np.asarray(speeds, dtype=float))
        accelerations = (
            np.zeros_like(values) if accelerations is None else np.atleast_2d(np.asarray(accelerations, dtype=float))
        )
        if speeds.shape != values.shape or accelerations.shape != values.shape:
            raise ValueError("speeds and accelerations must have the shape of values")
        qpos = np.tile(np.asarray(model.qpos0, dtype=float), (n, 1))
        qvel = np.zeros((n, model.nv))
        qacc = np.zeros((n, model.nv))
        qpos[:, self._qadr] = values[:, self._cols]
        qvel[:, self._dadr] = speeds[:, self._cols]
        qacc[:, self._dadr] = accelerations[:, self._cols]
        if self.free:
            ia, ib, ic, it = self._ia, self._ib, self._ic, self._it
            R_rp, r_rp, qa, da = self._R_rp, self._r_rp, self._qa, self._da
            w_p, al_p = _pelvis_angular(
                values[:, ia], values[:, ib], values[:, ic],
                speeds[:, ia], speeds[:, ib], speeds[:, ic],
                accelerations[:, ia], accelerations[:, ib], accelerations[:, ic],
            )
            C = OPENSIM_TO_Z_UP
            p_p = values[:, it] @ C.T
            v_p = speeds[:, it] @ C.T
            a_p = accelerations[:, it] @ C.T
            R_wr = np.einsum("ij,njk,lk->nil", C, _euler_zxy(values[:, ia], values[:, ib], values[:, ic]), R_rp)
            dvec = R_wr @ r_rp                               # root origin -> pelvis origin, world (N, 3)
            w_r = w_p @ R_rp.T                               # root frame
            al_r = al_p @ R_rp.T
            w_w = np.einsum("nij,nj->ni", R_wr, w_r)
            al_w = np.einsum("nij,nj->ni", R_wr, al_r)
            qpos[:, qa : qa + 3] = p_p - dvec
            qpos[:, qa + 3 : qa + 7] = mat_to_quat(R_wr)
            qvel[:, da : da + 3] = v_p - np.cross(w_w, dvec)
            qvel[:, da + 3 : da + 6] = w_r
            qacc[:, da : da + 3] = a_p - np.cross(al_w, dvec) - np.cross(w_w, np.cross(w_w, dvec))
            qacc[:, da + 3 : da + 6] = al_r
        self.couplings.apply(qpos, qvel, qacc)
        return MappedKinematics(qpos=qpos, qvel=qvel, qacc=qacc, used_columns=self.used_columns,
                                ignored_columns=self.ignored_columns, defaulted_joints=self.defaulted_joints,
                                coupled_joints=tuple(self.couplings.dependent_joint_names))


def kinematics_from_opensim(
    model: mujoco.MjModel,
    names: Sequence[str],
    values: np.ndarray,
    speeds: np.ndarray | None = None,
    accelerations: np.ndarray | None = None,
    *,
    pelvis_body: str = "pelvis",
) -> MappedKinematics:
    """Map OpenSim coordinates (radians / metres, OpenSim ground: x forward, y up, z right) to MuJoCo ``qpos, qvel,
    qacc`` of ``model`` (z up).

    * 1-dof joints whose name equals a column take it as is (MyoLeg shares Rajagopal's coordinate names and axes).
    * ``pelvis_tilt, pelvis_list, pelvis_rotation`` (body-fixed Z-X-Y Euler angles of the pelvis in OpenSim ground)
      and ``pelvis_tx/ty/tz`` drive the model's free root: the pelvis frame of ``model`` is taken to be OpenSim's
      pelvis frame, and the root pose follows from the pelvis pose and the fixed root-to-pelvis transform of the
      model.  Velocities: root origin linear velocity in world, angular velocity in the root frame (MuJoCo's
      free-joint convention); accelerations likewise (analytic, from the Euler-angle derivatives).
    * Dependent coordinates of joint couplings are filled from their polynomials (:class:`CoordinateCouplings`).

    ``speeds`` / ``accelerations`` are the time derivatives of ``values`` (e.g. from
    :func:`models.filters.smooth_derivatives`); when None, ``qvel`` / ``qacc`` are zero.
    """
    values = np.atleast_2d(np.asarray(values, dtype=float))
    if values.shape[1] != len(list(names)):
        raise ValueError(f"values has {values.shape[1]} columns but {len(list(names))} names were given")
    return OpenSimStateMap(model, names, pelvis_body=pelvis_body).map(values, speeds, accelerations)
