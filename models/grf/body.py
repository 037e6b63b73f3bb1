"""The whole-body mass model behind F_ext = m (a_com - g): which bodies carry mass, one pose's body COMs,
orientations and foot sole points, the lumbar graft of the rigid upper body, the COM and the angular momentum.

MyoLeg's upper body (the ``lumbar5`` subtree: lumbar vertebrae, torso with the arms lumped in, head; 29.7 kg) is
welded to the pelvis.  When the input carries Rajagopal lumbar angles it is rotated about the ``lumbar5`` origin
(L5/S1) by ``Rz(ext) Rx(bend) Ry(rot)`` in the pelvis frame, as Rajagopal's ``back`` joint does.  World frame z up,
SI units; masses here are the model's (the subject's are ``mass_scale`` times these).
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
from numba import njit

from models.grf.contact import FootGeometry
from models.grf.fk import BodyTree, body_frames, supported

__all__ = ["BodyModel", "PoseBuffers", "rot_zxy", "rot_zxy_batch"]


def rot_zxy_batch(lum: np.ndarray) -> np.ndarray:
    """:func:`rot_zxy` of every row of ``lum`` (N, 3) (extension, bending, rotation; rad): (N, 3, 3)."""
    ce, se = np.cos(lum[:, 0]), np.sin(lum[:, 0])
    cb, sb = np.cos(lum[:, 1]), np.sin(lum[:, 1])
    cr, sr = np.cos(lum[:, 2]), np.sin(lum[:, 2])
    out = np.empty((lum.shape[0], 3, 3))
    out[:, 0, 0] = ce * cr - se * sb * sr
    out[:, 0, 1] = -se * cb
    out[:, 0, 2] = ce * sr + se * sb * cr
    out[:, 1, 0] = se * cr + ce * sb * sr
    out[:, 1, 1] = ce * cb
    out[:, 1, 2] = se * sr - ce * sb * cr
    out[:, 2, 0] = -cb * sr
    out[:, 2, 1] = sb
    out[:, 2, 2] = cb * cr
    return out


def rot_zxy(e: float, b: float, r: float, out: np.ndarray) -> None:
    """out = Rz(e) @ Rx(b) @ Ry(r) (body-fixed Z-X-Y, OpenSim's rotation1/2/3 of the pelvis and back joints)."""
    ce, se, cb, sb, cr, sr = math.cos(e), math.sin(e), math.cos(b), math.sin(b), math.cos(r), math.sin(r)
    out[0, 0] = ce * cr - se * sb * sr
    out[0, 1] = -se * cb
    out[0, 2] = ce * sr + se * sb * cr
    out[1, 0] = se * cr + ce * sb * sr
    out[1, 1] = ce * cb
    out[1, 2] = se * sr - ce * sb * cr
    out[2, 0] = -cb * sr
    out[2, 1] = sb
    out[2, 2] = cb * cr



@njit(cache=True)
def _angular_momentum(x: np.ndarray, v: np.ndarray, r9: np.ndarray, rd9: np.ndarray, c: np.ndarray, cv: np.ndarray,
                      mass: np.ndarray, inertia: np.ndarray, out: np.ndarray) -> None:
    """:meth:`BodyModel.angular_momentum`'s loop over frames and bodies."""
    for t in range(x.shape[0]):
        lx = 0.0
        ly = 0.0
        lz = 0.0
        for b in range(x.shape[1]):
            r, rd = r9[t, b], rd9[t, b]
            # W = dR/dt R^T (skew up to the filter's error): W[i, j] = row i of dR/dt . row j of R
            w01 = rd[0] * r[3] + rd[1] * r[4] + rd[2] * r[5]
            w02 = rd[0] * r[6] + rd[1] * r[7] + rd[2] * r[8]
            w10 = rd[3] * r[0] + rd[4] * r[1] + rd[5] * r[2]
            w12 = rd[3] * r[6] + rd[4] * r[7] + rd[5] * r[8]
            w20 = rd[6] * r[0] + rd[7] * r[1] + rd[8] * r[2]
            w21 = rd[6] * r[3] + rd[7] * r[4] + rd[8] * r[5]
            w0 = 0.5 * (w21 - w12)
            w1 = 0.5 * (w02 - w20)
            w2 = 0.5 * (w10 - w01)
            # body-frame angular velocity times the principal inertia, back to the world
            a0 = (r[0] * w0 + r[3] * w1 + r[6] * w2) * inertia[b, 0]
            a1 = (r[1] * w0 + r[4] * w1 + r[7] * w2) * inertia[b, 1]
            a2 = (r[2] * w0 + r[5] * w1 + r[8] * w2) * inertia[b, 2]
            dx, dy, dz = x[t, b, 0] - c[t, 0], x[t, b, 1] - c[t, 1], x[t, b, 2] - c[t, 2]
            ux, uy, uz = v[t, b, 0] - cv[t, 0], v[t, b, 1] - cv[t, 1], v[t, b, 2] - cv[t, 2]
            m = mass[b]
            lx += m * (dy * uz - dz * uy) + r[0] * a0 + r[1] * a1 + r[2] * a2
            ly += m * (dz * ux - dx * uz) + r[3] * a0 + r[4] * a1 + r[5] * a2
            lz += m * (dx * uy - dy * ux) + r[6] * a0 + r[7] * a1 + r[8] * a2
        out[t, 0] = lx
        out[t, 1] = ly
        out[t, 2] = lz


class PoseBuffers:
    """Pose outputs and scratch of :meth:`BodyModel.pose`, with their views made once: ``x`` (nb, 3) body COMs (m),
    ``r`` (nb, 9) inertial-frame rotations (row-major), ``pts`` (2P, 3) foot sole points (m)."""

    def __init__(self, nb: int, np2: int, nu: int) -> None:
        z = np.zeros
        self.x, self.r, self.pts = z((nb, 3)), z((nb, 9)), z((np2, 3))
        self.pt_pos, self.pt_mat9, self.pt_tmp = z((np2, 3)), z((np2, 9)), z((np2, 3, 1))
        self.pt_mat33 = self.pt_mat9.reshape(np2, 3, 3)
        self.pt_tmp0 = self.pt_tmp[:, :, 0]
        self.rl, self.rp, self.rw, self.t33 = z((3, 3)), z((3, 3)), z((3, 3)), z((3, 3))
        self.rp9, self.rpT, self.rwT = self.rp.reshape(9), self.rp.T, self.rw.T
        self.xu = self.x[:nu]
        self.ru = self.r[:nu].reshape(nu, 3, 3)
        self.xu_tmp = z((nu, 3))
        self.ru_tmp = z((nu, 3, 3))



class BodyModel:
    """Bodies with mass (upper body first, so the lumbar graft rotates a contiguous slice), their masses (kg) and
    principal inertias, and the foot sole points of ``feet`` (right, left; the same number of points each).

    ``trunk_body``: root of the rigid upper body to rotate by the lumbar angles (``None`` or absent: no graft; also
    none when the upper body has joints of its own).  ``pelvis_body``: the frame of the lumbar angles.
    """

    def __init__(self, model: mujoco.MjModel, feet: tuple[FootGeometry, FootGeometry], *, use_lumbar: bool = True,
                 trunk_body: str | None = "lumbar5", pelvis_body: str = "pelvis") -> None:
        self.model = model
        self.use_lumbar = bool(use_lumbar)
        self.data: mujoco.MjData | None = None  # made by mj_data() on first use (the compiled poses need none)
        self.feet = tuple(feet)
        if len(self.feet) != 2:
            raise ValueError(f"feet must be (right, left), got {len(self.feet)} feet")
        self._select_bodies(trunk_body, pelvis_body)
        self._select_foot_points()
        ok, self.fk_fallback_reason = supported(model)
        self._tree = BodyTree(model) if ok else None

    def _select_bodies(self, trunk_body: str | None, pelvis_body: str) -> None:
        m = self.model
        mass = np.asarray(m.body_mass, float)
        massive = [b for b in range(1, m.nbody) if mass[b] > 0]
        upper: list[int] = []
        self.pelvis_id = -1
        self.trunk_id = -1
        if trunk_body is not None and mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, trunk_body) >= 0:
            tid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, trunk_body)
            pid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, pelvis_body)
            if pid < 0:
                raise ValueError(f"pelvis_body {pelvis_body!r} not in the model")
            upper = [b for b in massive if self._is_descendant(b, tid)]
            if any(m.body_dofnum[b] for b in upper) or self._has_joint_between(tid, pid):
                upper = []  # the upper body has its own joints: nothing to graft
            else:
                self.trunk_id, self.pelvis_id = tid, pid
        rest = [b for b in massive if b not in upper]
        self.bodies = np.array(upper + rest, dtype=np.intp)
        self.n_upper = len(upper)
        self.model_mass_kg = float(mass[self.bodies].sum())
        if not self.model_mass_kg > 0:
            raise ValueError("the model has no mass")
        self.masses_kg = mass[self.bodies].copy()  # model masses (kg)
        self.inertia = np.asarray(m.body_inertia, float)[self.bodies].copy()  # principal, inertial frame

    def _select_foot_points(self) -> None:
        m = self.model
        names = [(f, p) for f in self.feet for p in f.points]
        n_pts = [len(f.points) for f in self.feet]
        if n_pts[0] != n_pts[1]:
            raise ValueError(f"both feet need the same number of points, got {n_pts}")
        self.n_points = n_pts[0]
        pb = []
        for f, p in names:
            bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, p.body)
            if bid < 0:
                raise ValueError(f"foot {f.name!r} point {p.name!r}: body {p.body!r} not in the model")
            pb.append(bid)
        self.point_body = np.array(pb, dtype=np.intp)
        self.point_local = np.array([p.pos_m for _, p in names], float).reshape(-1, 3, 1)
        self.point_weight = np.array([p.weight for _, p in names], float).reshape(2, self.n_points)

    def _is_descendant(self, b: int, root: int) -> bool:
        while b > 0:
            if b == root:
                return True
            b = int(self.model.body_parentid[b])
        return b == root

    def _has_joint_between(self, b: int, anc: int) -> bool:
        m = self.model
        # joints on the path from b up to the common ancestor with anc
        path_b = []
        x = b
        while x > 0:
            path_b.append(x)
            x = int(m.body_parentid[x])
        path_a = set()
        x = anc
        while x > 0:
            path_a.add(x)
            x = int(m.body_parentid[x])
        for x in path_b:
            if x in path_a:
                break
            if m.body_jntnum[x] > 0:
                return True
        x = anc
        while x > 0 and x not in path_b:
            if m.body_jntnum[x] > 0:
                return True
            x = int(m.body_parentid[x])
        return False

    def mj_data(self) -> mujoco.MjData:
        """The ``MjData`` of :meth:`pose` (``mj_kinematics`` frame by frame), made on the first call with its views
        cached (each attribute access of ``MjData`` builds a new array object)."""
        if self.data is None:
            d = self.data = mujoco.MjData(self.model)
            self._d_qpos, self._d_xipos, self._d_ximat = d.qpos, d.xipos, d.ximat
            self._d_xpos, self._d_xmat = d.xpos, d.xmat
            self._xmat_pelvis = self._d_xmat[max(self.pelvis_id, 0)]
            self._xpos_trunk = self._d_xpos[max(self.trunk_id, 0)]
        return self.data

    def new_buffers(self) -> PoseBuffers:
        """Buffers for :meth:`pose`."""
        return PoseBuffers(self.bodies.size, 2 * self.n_points, self.n_upper)

    def poses(self, q: np.ndarray, lum: np.ndarray | None, valid: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`pose` of every valid frame of ``q`` (N, nq) (lumbar angles ``lum`` (N, 3) or ``None``): body COMs
        (N, nb, 3), inertial-frame rotations (N, nb, 9) and foot points (N, 2P, 3); NaN at invalid frames.  One
        compiled pass over the frames (:func:`models.grf.fk.body_frames`, MuJoCo's body kinematics to rounding)
        where the model allows, else ``mj_kinematics`` frame by frame."""
        rows = np.flatnonzero(valid)
        if self._tree is None:
            return self._poses_mj(q, lum, rows)
        extra = np.array([max(self.pelvis_id, 0), max(self.trunk_id, 0)])
        X, R, PTS, EP, EM = body_frames(self._tree, q, rows, self.bodies, self.point_body, self.point_local, extra)
        if lum is not None and self.n_upper and self.use_lumbar and rows.size:
            nu = self.n_upper
            rp = EM[rows, 0].reshape(-1, 3, 3)
            rw = rp @ rot_zxy_batch(np.asarray(lum, float)[rows]) @ np.swapaxes(rp, -1, -2)  # about L5/S1, world
            pj = EP[rows, 1][:, None, :]
            X[rows, :nu] = (X[rows, :nu] - pj) @ np.swapaxes(rw, -1, -2) + pj
            ru = R[rows, :nu].reshape(-1, nu, 3, 3)
            R[rows, :nu] = (rw[:, None] @ ru).reshape(-1, nu, 9)
        return X, R, PTS

    def _poses_mj(self, q: np.ndarray, lum: np.ndarray | None, rows: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`poses` by :meth:`pose` (``mj_kinematics``) frame by frame."""
        n = q.shape[0]
        X = np.full((n, self.bodies.size, 3), np.nan)
        R = np.full((n, self.bodies.size, 9), np.nan)
        PTS = np.full((n, 2 * self.n_points, 3), np.nan)
        buf = self.new_buffers()
        for k in rows:
            self.pose(q[k], None if lum is None else lum[k], buf)
            X[k], R[k], PTS[k] = buf.x, buf.r, buf.pts
        return X, R, PTS

    def pose(self, qpos: np.ndarray, lumbar: np.ndarray | None, buf: PoseBuffers) -> None:
        """Fill ``buf.x`` (nb, 3) body COM positions, ``buf.r`` (nb, 9) inertial-frame rotations and ``buf.pts``
        (2P, 3) foot points of one pose (no allocation after the first call, which makes :meth:`mj_data`)."""
        if self.data is None:
            self.mj_data()
        np.copyto(self._d_qpos, qpos)
        mujoco.mj_kinematics(self.model, self.data)
        np.take(self._d_xipos, self.bodies, axis=0, out=buf.x, mode="clip")
        np.take(self._d_ximat, self.bodies, axis=0, out=buf.r, mode="clip")
        np.take(self._d_xpos, self.point_body, axis=0, out=buf.pt_pos, mode="clip")
        np.take(self._d_xmat, self.point_body, axis=0, out=buf.pt_mat9, mode="clip")
        np.matmul(buf.pt_mat33, self.point_local, out=buf.pt_tmp)
        np.add(buf.pt_pos, buf.pt_tmp0, out=buf.pts)
        if lumbar is not None and self.n_upper and self.use_lumbar:
            rot_zxy(float(lumbar[0]), float(lumbar[1]), float(lumbar[2]), buf.rl)
            np.copyto(buf.rp9, self._xmat_pelvis)
            np.matmul(buf.rp, buf.rl, out=buf.t33)
            np.matmul(buf.t33, buf.rpT, out=buf.rw)  # world rotation about the L5/S1 joint
            pj = self._xpos_trunk
            np.subtract(buf.xu, pj, out=buf.xu_tmp)
            np.matmul(buf.xu_tmp, buf.rwT, out=buf.xu)
            buf.xu += pj
            np.copyto(buf.ru_tmp, buf.ru)
            np.matmul(buf.rw, buf.ru_tmp, out=buf.ru)

    def angular_momentum(self, x: np.ndarray, v: np.ndarray, r9: np.ndarray, rd9: np.ndarray, c: np.ndarray,
                         cv: np.ndarray, out: np.ndarray) -> None:
        """L about the COM (model masses) of every frame, compiled: x, v (N, nb, 3) body COM positions (m) and
        velocities (m/s); r9, rd9 (N, nb, 9) inertial-frame rotations and their time derivatives (1/s); c, cv (N, 3)
        whole-body COM and its velocity; ``out`` (N, 3) kg m^2/s.  The angular velocity is the axial part of
        ``dR/dt R^T``; ``L = sum_b m_b (x_b - c) x (v_b - cv) + R_b (I_b * (R_b^T w_b))``."""
        f = np.ascontiguousarray
        res = np.empty((x.shape[0], 3))
        _angular_momentum(f(x, float), f(v, float), f(r9, float), f(rd9, float), f(c, float), f(cv, float),
                          self.masses_kg, self.inertia, res)
        out[...] = res

    def com(self, X: np.ndarray) -> np.ndarray:
        """Mass-weighted mean (..., 3) of per-body vectors (..., nb, 3): the COM of positions, or of velocities."""
        return np.einsum("b,...bi->...i", self.masses_kg, X) / self.model_mass_kg
