"""MuJoCo joint equalities (``mjEQ_JOINT``) as arrays, for marker IK: dependents set from their polynomials.

MyoLeg's knee translations, secondary knee rotations and patella are polynomials of ``knee_angle_*``; IK sets them
exactly and folds their Jacobian columns into the independent coordinate by the chain rule.  Units: rad or m as the
joints.
"""

from __future__ import annotations

import mujoco
import numpy as np

__all__ = ["JointEqualities"]


class JointEqualities:
    """Active ``mjEQ_JOINT`` equalities of a model as arrays: ``q[dep] = q0_dep + poly(q[ind] - q0_ind)``
    (``ind = -1``: constant).  ``apply`` sets the dependents; ``derivative`` gives d q[dep] / d q[ind]."""

    __slots__ = ("dep_qadr", "dep_dof", "ind_qadr", "ind_jnt", "q0_dep", "q0_ind", "c", "_has_ind", "_x", "_ind_safe")

    def __init__(self, m: mujoco.MjModel) -> None:
        rows = [
            e for e in range(m.neq)
            if int(m.eq_type[e]) == int(mujoco.mjtEq.mjEQ_JOINT) and bool(m.eq_active0[e])
        ]
        j1 = np.array([int(m.eq_obj1id[e]) for e in rows], dtype=np.int64)
        j2 = np.array([int(m.eq_obj2id[e]) for e in rows], dtype=np.int64)
        self.dep_qadr = np.array([int(m.jnt_qposadr[j]) for j in j1], dtype=np.int64)
        self.dep_dof = np.array([int(m.jnt_dofadr[j]) for j in j1], dtype=np.int64)
        self.ind_jnt = j2
        self._has_ind = j2 >= 0
        self.ind_qadr = np.array([int(m.jnt_qposadr[j]) if j >= 0 else -1 for j in j2], dtype=np.int64)
        self._ind_safe = np.where(self._has_ind, self.ind_qadr, 0)
        self.q0_dep = np.array(m.qpos0)[self.dep_qadr] if rows else np.zeros(0)
        self.q0_ind = np.where(self._has_ind, np.array(m.qpos0)[self._ind_safe], 0.0) if rows else np.zeros(0)
        self.c = np.array([m.eq_data[e][:5] for e in rows], dtype=float).reshape(-1, 5)
        self._x = np.zeros(len(rows))

    def apply(self, q: np.ndarray) -> None:
        if not self.dep_qadr.size:
            return
        x = self._x
        np.take(q, self._ind_safe, out=x)
        x -= self.q0_ind
        x *= self._has_ind
        c = self.c
        v = c[:, 4] * x
        v += c[:, 3]
        v *= x
        v += c[:, 2]
        v *= x
        v += c[:, 1]
        v *= x
        v += c[:, 0]
        v += self.q0_dep
        q[self.dep_qadr] = v

    def derivative(self, q: np.ndarray, out: np.ndarray) -> None:
        x = self._x
        np.take(q, self._ind_safe, out=x)
        x -= self.q0_ind
        c = self.c
        out[:] = 4.0 * c[:, 4] * x
        out += 3.0 * c[:, 3]
        out *= x
        out += 2.0 * c[:, 2]
        out *= x
        out += c[:, 1]
        out *= self._has_ind
