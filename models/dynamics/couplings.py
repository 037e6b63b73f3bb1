"""Coupled coordinates: a model's joint equality constraints as polynomials, and the basis ``N = dq / dq_independent``.

MyoLeg's knee: ``knee_angle_*`` drives two knee translations, two knee rotations and three patella coordinates.
Units: rad for hinges, m for slides.  Pure computation: numpy and mujoco.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from models.dynamics.mj_names import JOINT_HINGE, JOINT_SLIDE, dof_names, object_name

__all__ = ["CoordinateCouplings"]


@dataclass(frozen=True, slots=True)
class _Coupling:
    dep_joint: int
    dep_qadr: int
    dep_dof: int
    ind_joint: int  # -1: the dependent joint is locked to a constant
    ind_qadr: int
    ind_dof: int
    x0: float
    y0: float
    coef: tuple[float, float, float, float, float]


class CoordinateCouplings:
    """Joint equality constraints ``y - y0 = c0 + c1 (x - x0) + ... + c4 (x - x0)^4`` of a model.

    ``y`` is the dependent joint, ``x`` the independent one (``x0, y0`` their ``qpos0``).  Only active ``mjEQ_JOINT``
    constraints between 1-dof joints are treated; other active equality constraints raise ``NotImplementedError``
    (inverse dynamics with the constraints switched off would silently ignore them).

    ``independent_dofs`` are all dofs that are not the dependent side of a coupling; ``coordinate_names`` name them.
    """

    def __init__(self, model: mujoco.MjModel) -> None:
        self.nq, self.nv = int(model.nq), int(model.nv)
        couplings: list[_Coupling] = []
        for e in range(model.neq):
            if not bool(model.eq_active0[e]):
                continue
            et = int(model.eq_type[e])
            if et != int(mujoco.mjtEq.mjEQ_JOINT):
                raise NotImplementedError(
                    f"equality constraint {object_name(model, mujoco.mjtObj.mjOBJ_EQUALITY, e)!r} has type "
                    f"{mujoco.mjtEq(et).name}; only mjEQ_JOINT couplings are supported by inverse dynamics here"
                )
            j1, j2 = int(model.eq_obj1id[e]), int(model.eq_obj2id[e])
            for j in (j1, j2):
                if j >= 0 and int(model.jnt_type[j]) not in (JOINT_HINGE, JOINT_SLIDE):
                    raise NotImplementedError(f"joint coupling on a non-1-dof joint {j} (equality {e})")
            c = tuple(float(v) for v in model.eq_data[e][:5])
            couplings.append(
                _Coupling(
                    dep_joint=j1,
                    dep_qadr=int(model.jnt_qposadr[j1]),
                    dep_dof=int(model.jnt_dofadr[j1]),
                    ind_joint=j2,
                    ind_qadr=int(model.jnt_qposadr[j2]) if j2 >= 0 else -1,
                    ind_dof=int(model.jnt_dofadr[j2]) if j2 >= 0 else -1,
                    x0=float(model.qpos0[model.jnt_qposadr[j2]]) if j2 >= 0 else 0.0,
                    y0=float(model.qpos0[model.jnt_qposadr[j1]]),
                    coef=c,  # type: ignore[arg-type]
                )
            )
        dep = {c.dep_dof for c in couplings}
        if len(dep) != len(couplings):
            raise NotImplementedError("a joint is the dependent side of two equality constraints")
        for c in couplings:
            if c.ind_dof in dep:
                ind = object_name(model, mujoco.mjtObj.mjOBJ_JOINT, c.ind_joint)
                raise NotImplementedError(f"chained coupling: independent joint {ind!r} is itself dependent")
        self.couplings: tuple[_Coupling, ...] = tuple(couplings)
        self.independent_dofs = np.array([i for i in range(self.nv) if i not in dep], dtype=int)
        names = dof_names(model)
        self.dof_names = names
        self.coordinate_names: tuple[str, ...] = tuple(names[i] for i in self.independent_dofs)
        self.dependent_joint_names = tuple(object_name(model, mujoco.mjtObj.mjOBJ_JOINT, c.dep_joint)
                                           for c in couplings)
        col = {int(d): k for k, d in enumerate(self.independent_dofs)}
        self._col = col
        # N^T (n_coord, nv): identity on the independent dofs; the dependent entries are updated per frame
        self._NT = np.zeros((len(self.independent_dofs), self.nv))
        for k, d in enumerate(self.independent_dofs):
            self._NT[k, d] = 1.0
        self._entries = [(col[c.ind_dof], c.dep_dof, c) for c in couplings if c.ind_dof >= 0]

    @property
    def n_coordinates(self) -> int:
        return int(self.independent_dofs.size)

    @staticmethod
    def _poly(c: tuple[float, ...], x: float | np.ndarray):
        c0, c1, c2, c3, c4 = c
        p = c0 + x * (c1 + x * (c2 + x * (c3 + x * c4)))
        dp = c1 + x * (2 * c2 + x * (3 * c3 + x * 4 * c4))
        ddp = 2 * c2 + x * (6 * c3 + x * 12 * c4)
        return p, dp, ddp

    def apply(self, qpos: np.ndarray, qvel: np.ndarray | None = None, qacc: np.ndarray | None = None) -> None:
        """Overwrite the dependent coordinates in place from the independent ones: ``y = y0 + p(x - x0)``,
        ``yd = p' xd``, ``ydd = p'' xd^2 + p' xdd``.  Arrays are (nq,)/(nv,) or (N, nq)/(N, nv)."""
        for c in self.couplings:
            if c.ind_qadr < 0:
                qpos[..., c.dep_qadr] = c.y0 + c.coef[0]
                if qvel is not None:
                    qvel[..., c.dep_dof] = 0.0
                if qacc is not None:
                    qacc[..., c.dep_dof] = 0.0
                continue
            x = qpos[..., c.ind_qadr] - c.x0
            p, dp, ddp = self._poly(c.coef, x)
            qpos[..., c.dep_qadr] = c.y0 + p
            if qvel is not None:
                xd = qvel[..., c.ind_dof]
                qvel[..., c.dep_dof] = dp * xd
                if qacc is not None:
                    qacc[..., c.dep_dof] = ddp * xd * xd + dp * qacc[..., c.ind_dof]

    def basis_transpose(self, qpos: np.ndarray) -> np.ndarray:
        """``N(q)^T`` (n_coord, nv), updated in place for this ``qpos`` (returns the internal array)."""
        NT = self._NT
        for k, dep_dof, c in self._entries:
            x = qpos[c.ind_qadr] - c.x0
            c0, c1, c2, c3, c4 = c.coef
            NT[k, dep_dof] = c1 + x * (2 * c2 + x * (3 * c3 + x * 4 * c4))
        return NT

    def project(self, qpos: np.ndarray, generalized_force: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``N(q)^T tau``: generalised forces on the independent coordinates.

        Batch: (N, nq), (N, nv) -> (N, n_coord)."""
        if generalized_force.ndim == 1:
            NT = self.basis_transpose(qpos)
            if out is None:
                return NT @ generalized_force
            np.dot(NT, generalized_force, out=out)
            return out
        res = generalized_force[:, self.independent_dofs].copy() if out is None else out
        if out is not None:
            res[:] = generalized_force[:, self.independent_dofs]
        for k, dep_dof, c in self._entries:
            _, dp, _ = self._poly(c.coef, qpos[:, c.ind_qadr] - c.x0)
            res[:, k] += dp * generalized_force[:, dep_dof]
        return res
