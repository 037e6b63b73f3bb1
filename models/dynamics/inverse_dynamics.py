"""Inverse dynamics of a MuJoCo musculoskeletal model with measured external loads (force plates, estimated GRF).

What is computed
----------------
For a frame with generalised positions ``q`` (nq), velocities ``qd`` (nv) and accelerations ``qdd`` (nv) and a list
of external wrenches (per loaded body: force ``F`` (world), point of application ``p`` (world; the CoP for a foot)
and free moment ``T`` (world))::

    tau = M(q) qdd + c(q, qd) - J_ext(q)^T [F; T]            (nv,)   ``generalized_force``

i.e. the generalised force that the joints (muscles + passive tissue + joint structures) must supply, with the
external loads already accounted for.  It is obtained with ``mujoco.mj_inverse`` followed by subtracting the
external loads (``mujoco.mj_applyFT``):

* ``mj_inverse`` returns ``qfrc_inverse = M qacc + qfrc_bias - qfrc_passive - qfrc_constraint``: the total of
  ``qfrc_applied + J^T xfrc_applied + qfrc_actuator`` that forward dynamics would need.  It does **not** read
  ``xfrc_applied`` nor ``qfrc_applied`` (checked numerically in ``tests/test_inverse_dynamics.py``), so the external
  loads must be subtracted afterwards: ``tau = qfrc_inverse - J^T w_ext``.
* The wrenches are also written to ``MjData.xfrc_applied`` as the equivalent wrench at each body's centre of mass
  (``force = F``, ``torque = (p - xipos) x F + T``), where ``mj_rnePostConstraint`` picks them up for the
  intersegmental loads (``cfrc_int``) below.
* Constraints are switched off in the private copy of the model (``mjDSBL_CONSTRAINT``: no contacts, joint limits or
  equality forces; the measured loads replace contact), and so is actuation (``qfrc_inverse`` ignores it anyway).
* Continuous-time inverse: the accelerations are analytic derivatives of smoothed kinematics
  (:mod:`models.filters`), not finite differences of a MuJoCo integrator's velocities, so ``mjENBL_INVDISCRETE`` is
  **off**.  (Only enable it when ``qacc`` is ``(v[n+1] - v[n]) / h`` from the same discrete integrator.)

Parameters (:class:`InverseDynamicsParams`):

* ``subtract_passive=False`` (default): joint springs and dampers are switched off, so ``tau`` is the *net* joint
  moment (everything the tissues supply).  ``True``: the model's springs/dampers count as already acting, so ``tau``
  is what muscles must add (MyoLeg has 0.5 N m s/rad damping on every joint dof).
* ``include_armature=False`` (default): MuJoCo armature (0.01 kg m^2 on every MyoLeg dof, a numerical-conditioning
  term with no anatomical meaning) is zeroed.  Then the generalised forces are exactly the projections of the
  intersegmental wrenches on the joint axes.
* ``reaction_bodies``: bodies whose intersegmental wrench is reported (see below).
* ``gravity_m_s2``: overrides the model's gravity magnitude (MyoLeg uses 9.81; standard gravity is 9.80665).

Outputs (:class:`JointMomentsFrame`, one per frame; :class:`JointMomentsTrial`, stacked):

* ``generalized_force`` (nv,): N m for hinge dofs, N for slide dofs; free-joint dofs are force (world frame) then
  moment (root body frame, about the root body origin), as MuJoCo orders them.
* ``coordinate_force`` (n_coord,): ``generalized_force`` projected on the *independent* coordinates of joints
  coupled by joint equality constraints (MyoLeg's knee: ``knee_angle_*`` drives two knee translations, two knee
  rotations and three patella coordinates through polynomials).  ``coordinate_force = N(q)^T tau`` with
  ``N = dq / dq_independent`` (virtual work; the equality-constraint forces drop out because ``J_eq N = 0``).  This is
  the OpenSim-style moment of ``knee_angle_l`` etc.
* ``residual_force_n`` / ``residual_moment_nm`` (3,): the free root's 6 generalised forces, i.e. the "hand of God"
  wrench that the world must apply to the root body (the pelvis in MyoLeg) on top of the external loads for the
  motion to be consistent; force in world frame, moment in world frame about the root body origin.  Ideally 0.
* ``reaction_force_n`` / ``reaction_moment_nm`` (k, 3): for each of ``reaction_bodies``, the net wrench that the
  parent body exerts on the subtree rooted at that body (muscles, ligaments and joint contact together: the net
  intersegmental load), about the body origin (the joint centre in MyoLeg), expressed in that body's frame.  From
  ``MjData.cfrc_int`` (computed by ``mj_rnePostConstraint`` at the subtree centre of mass of the kinematic tree,
  world-oriented) moved to the body origin: ``M_o = M_c + (c - o) x F``.

Per-frame :meth:`InverseDynamics.step` fills a preallocated :class:`JointMomentsFrame` and allocates no arrays (MuJoCo
data and all scratch are preallocated).  :meth:`InverseDynamics.run` does a whole trial through the same code path.

Also here, because inverse dynamics needs them from lab data:

* :class:`CoordinateCouplings`: the joint-equality polynomials (fill dependent ``q, qd, qdd``; the basis ``N``).
* :func:`kinematics_from_opensim`: OpenSim coordinates (Rajagopal / gait2392 names, y up) -> MuJoCo ``qpos, qvel,
  qacc`` (z up; pelvis Euler angles -> free root).
* :func:`external_wrench_from_opensim_grf`: force-plate columns of an OpenSim ``.mot`` -> :class:`ExternalWrenchTrial`.

This module is pure computation: numpy, scipy, mujoco and other ``models/`` modules.
"""

from __future__ import annotations

import copy
import difflib
import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import mujoco
import numpy as np

from models.filters import smooth_derivatives
from models.io.axes import opensim_to_z_up
from models.io.time_series import TimeSeriesTable

__all__ = [
    "ExternalWrench",
    "ExternalWrenchTrial",
    "InverseDynamicsParams",
    "JointMomentsFrame",
    "JointMomentsTrial",
    "InverseDynamics",
    "CoordinateCouplings",
    "dof_names",
    "kinematics_from_opensim",
    "MappedKinematics",
    "external_wrench_from_opensim_grf",
    "OPENSIM_TO_Z_UP",
]

#: Rotation taking OpenSim ground axes (x forward, y up, z right) to z-up axes (x forward, y left, z up).
OPENSIM_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

_FREE = int(mujoco.mjtJoint.mjJNT_FREE)
_BALL = int(mujoco.mjtJoint.mjJNT_BALL)
_SLIDE = int(mujoco.mjtJoint.mjJNT_SLIDE)
_HINGE = int(mujoco.mjtJoint.mjJNT_HINGE)


def _name(model: mujoco.MjModel, obj: mujoco.mjtObj, i: int) -> str:
    return mujoco.mj_id2name(model, obj, i) or f"{obj.name.removeprefix('mjOBJ_').lower()}{i}"


def _lookup(names: dict[str, int], name: str, what: str) -> int:
    try:
        return names[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(names), n=5, cutoff=0.5)
        hint = f"close matches: {close}" if close else f"available: {sorted(names)[:15]}..."
        raise KeyError(f"no {what} {name!r} in the model; {hint}") from None


def _as_mjmodel(model) -> mujoco.MjModel:
    """An ``MjModel``, or an object holding one in ``.model`` (``models.body.registry.MusculoskeletalModel``)."""
    if isinstance(model, mujoco.MjModel):
        return model
    inner = getattr(model, "model", None)
    if isinstance(inner, mujoco.MjModel):
        return inner
    raise TypeError(f"expected a mujoco.MjModel or an object with an MjModel in .model, got {type(model).__name__}")


def dof_names(model: mujoco.MjModel) -> tuple[str, ...]:
    """One name per dof: the joint name for hinge/slide; ``_tx, _ty, _tz, _rx, _ry, _rz`` suffixes for a free joint
    (translations in the world frame, rotations in the body frame) and ``_rx, _ry, _rz`` for a ball joint."""
    out: list[str] = []
    for j in range(model.njnt):
        n = _name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        t = int(model.jnt_type[j])
        if t == _FREE:
            out += [f"{n}_{s}" for s in ("tx", "ty", "tz", "rx", "ry", "rz")]
        elif t == _BALL:
            out += [f"{n}_{s}" for s in ("rx", "ry", "rz")]
        else:
            out.append(n)
    return tuple(out)


# --------------------------------------------------------------------------------------------------
# external loads
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExternalWrench:
    """One external load on one body for one frame; all vectors in the world frame (z up).

    ``force_n`` (3,) N; ``point_m`` (3,) m, the point on the line of action (the centre of pressure for a foot);
    ``free_moment_nm`` (3,) N m, the couple on top of the force (a force plate's free moment is vertical).
    The arrays may be updated in place frame after frame (the object is frozen, its arrays are not).  A wrench
    whose force and moment are both exactly zero is skipped (so ``point_m`` may be NaN while unloaded).
    """

    body: str
    force_n: np.ndarray
    point_m: np.ndarray
    free_moment_nm: np.ndarray

    @staticmethod
    def zeros(body: str) -> "ExternalWrench":
        return ExternalWrench(body, np.zeros(3), np.zeros(3), np.zeros(3))


@dataclass(frozen=True, eq=False)
class ExternalWrenchTrial:
    """External load on one body over a trial: ``force_n``, ``point_m``, ``free_moment_nm`` are (N, 3), world frame."""

    body: str
    force_n: np.ndarray
    point_m: np.ndarray
    free_moment_nm: np.ndarray
    time_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = np.shape(self.force_n)[0] if np.ndim(self.force_n) == 2 else -1
        for k in ("force_n", "point_m", "free_moment_nm"):
            a = getattr(self, k)
            if np.ndim(a) != 2 or np.shape(a) != (n, 3):
                raise ValueError(f"ExternalWrenchTrial({self.body!r}).{k} must be (N, 3) like force_n, got {np.shape(a)}")

    @property
    def n_frames(self) -> int:
        return int(self.force_n.shape[0])

    def moment_about_origin_nm(self) -> np.ndarray:
        """(N, 3) moment of the load about the world origin: ``p x F + T`` (unloaded frames give 0)."""
        p = np.where(np.isnan(self.point_m), 0.0, self.point_m)
        return np.cross(p, self.force_n) + self.free_moment_nm


# --------------------------------------------------------------------------------------------------
# coupled coordinates (joint equality constraints)
# --------------------------------------------------------------------------------------------------


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
                    f"equality constraint {_name(model, mujoco.mjtObj.mjOBJ_EQUALITY, e)!r} has type "
                    f"{mujoco.mjtEq(et).name}; only mjEQ_JOINT couplings are supported by inverse dynamics here"
                )
            j1, j2 = int(model.eq_obj1id[e]), int(model.eq_obj2id[e])
            for j in (j1, j2):
                if j >= 0 and int(model.jnt_type[j]) not in (_HINGE, _SLIDE):
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
                raise NotImplementedError(
                    f"chained coupling: independent joint {_name(model, mujoco.mjtObj.mjOBJ_JOINT, c.ind_joint)!r} "
                    "is itself dependent"
                )
        self.couplings: tuple[_Coupling, ...] = tuple(couplings)
        self.independent_dofs = np.array([i for i in range(self.nv) if i not in dep], dtype=int)
        names = dof_names(model)
        self.dof_names = names
        self.coordinate_names: tuple[str, ...] = tuple(names[i] for i in self.independent_dofs)
        self.dependent_joint_names = tuple(_name(model, mujoco.mjtObj.mjOBJ_JOINT, c.dep_joint) for c in couplings)
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
        """``N(q)^T tau``: generalised forces on the independent coordinates.  Batch: (N, nq), (N, nv) -> (N, n_coord)."""
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


# --------------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InverseDynamicsParams:
    """See the module docstring.  ``reaction_bodies``: body names whose intersegmental wrench is reported."""

    subtract_passive: bool = False
    include_armature: bool = False
    reaction_bodies: tuple[str, ...] = ()
    gravity_m_s2: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.reaction_bodies, str):
            raise TypeError("reaction_bodies must be a tuple of body names, not a single string")
        if self.gravity_m_s2 is not None and not (math.isfinite(self.gravity_m_s2) and self.gravity_m_s2 >= 0):
            raise ValueError(f"gravity_m_s2 must be a finite non-negative number or None, got {self.gravity_m_s2!r}")


@dataclass(slots=True, eq=False)
class JointMomentsFrame:
    """Output of one frame (preallocate with :meth:`InverseDynamics.allocate_frame`); see the module docstring."""

    generalized_force: np.ndarray  # (nv,) N m (hinge) / N (slide)
    coordinate_force: np.ndarray  # (n_coord,)
    residual_force_n: np.ndarray  # (3,) world
    residual_moment_nm: np.ndarray  # (3,) world, about the root body origin
    reaction_force_n: np.ndarray  # (k, 3) child body frame
    reaction_moment_nm: np.ndarray  # (k, 3) child body frame, about the child body origin


@dataclass(frozen=True, eq=False)
class JointMomentsTrial:
    """A trial of :class:`JointMomentsFrame` stacked along axis 0, with the names of every column."""

    generalized_force: np.ndarray  # (N, nv)
    coordinate_force: np.ndarray  # (N, n_coord)
    residual_force_n: np.ndarray  # (N, 3)
    residual_moment_nm: np.ndarray  # (N, 3)
    reaction_force_n: np.ndarray  # (N, k, 3)
    reaction_moment_nm: np.ndarray  # (N, k, 3)
    dof_names: tuple[str, ...]
    coordinate_names: tuple[str, ...]
    reaction_bodies: tuple[str, ...]
    time_s: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.generalized_force.shape[0])

    def dof(self, name: str) -> np.ndarray:
        """(N,) generalised force of one dof by name."""
        return self.generalized_force[:, _lookup({n: i for i, n in enumerate(self.dof_names)}, name, "dof")]

    def coordinate(self, name: str) -> np.ndarray:
        """(N,) generalised force of one independent coordinate by name (coupled dofs folded in)."""
        idx = {n: i for i, n in enumerate(self.coordinate_names)}
        return self.coordinate_force[:, _lookup(idx, name, "independent coordinate")]

    def frame(self, i: int) -> JointMomentsFrame:
        """Views of row ``i`` as a frame."""
        return JointMomentsFrame(
            self.generalized_force[i],
            self.coordinate_force[i],
            self.residual_force_n[i],
            self.residual_moment_nm[i],
            self.reaction_force_n[i],
            self.reaction_moment_nm[i],
        )


class InverseDynamics:
    """Per-frame and whole-trial inverse dynamics on a private copy of ``model`` (see the module docstring).

    ``model`` is an ``MjModel`` or a ``models.body.registry.MusculoskeletalModel`` (its ``.model`` is used).  It is not
    modified: the stage deep-copies it and switches off constraints, actuation and (by default)
    springs, dampers and armature in the copy (:attr:`model`).  Use :attr:`model` for forward simulations that must
    match this stage exactly.
    """

    def __init__(self, model: mujoco.MjModel, params: InverseDynamicsParams | None = None) -> None:
        model = _as_mjmodel(model)
        self.params = params if params is not None else InverseDynamicsParams()
        m = copy.deepcopy(model)
        off = int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT) | int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
        if not self.params.subtract_passive:
            off |= int(mujoco.mjtDisableBit.mjDSBL_SPRING) | int(mujoco.mjtDisableBit.mjDSBL_DAMPER)
        m.opt.disableflags |= off
        m.opt.enableflags &= ~int(mujoco.mjtEnableBit.mjENBL_INVDISCRETE)
        if not self.params.include_armature:
            m.dof_armature[:] = 0.0
        if self.params.gravity_m_s2 is not None:
            g = np.asarray(m.opt.gravity, dtype=float)
            norm = float(np.linalg.norm(g))
            direction = g / norm if norm > 0 else np.array([0.0, 0.0, -1.0])
            m.opt.gravity[:] = direction * self.params.gravity_m_s2
        self.model = m
        self.data = mujoco.MjData(m)
        self.couplings = CoordinateCouplings(model)
        self.dof_names = dof_names(m)
        self.coordinate_names = self.couplings.coordinate_names
        self._body_ids = {_name(m, mujoco.mjtObj.mjOBJ_BODY, b): b for b in range(m.nbody)}
        self.reaction_bodies = tuple(self.params.reaction_bodies)
        self._reaction_ids = np.array(
            [_lookup(self._body_ids, b, "body") for b in self.reaction_bodies], dtype=int
        )
        for name, b in zip(self.reaction_bodies, self._reaction_ids):
            if b == 0:
                raise ValueError(f"reaction body {name!r} is the world body")
        free = [j for j in range(m.njnt) if int(m.jnt_type[j]) == _FREE]
        self._root_dof = int(m.jnt_dofadr[free[0]]) if free else -1
        self._root_body = int(m.jnt_bodyid[free[0]]) if free else -1
        # scratch
        self._qfrc_ext = np.zeros(m.nv)
        self._r = np.zeros(3)
        self._v = np.zeros(3)
        self._w = np.zeros(3)

    # -- sizes and allocation -------------------------------------------------------------------

    @property
    def nq(self) -> int:
        return int(self.model.nq)

    @property
    def nv(self) -> int:
        return int(self.model.nv)

    @property
    def has_free_root(self) -> bool:
        return self._root_dof >= 0

    def body_id(self, name: str) -> int:
        return _lookup(self._body_ids, name, "body")

    def allocate_frame(self) -> JointMomentsFrame:
        k = len(self.reaction_bodies)
        return JointMomentsFrame(
            np.zeros(self.nv),
            np.zeros(self.couplings.n_coordinates),
            np.zeros(3),
            np.zeros(3),
            np.zeros((k, 3)),
            np.zeros((k, 3)),
        )

    def allocate_trial(self, n_frames: int, time_s: np.ndarray | None = None) -> JointMomentsTrial:
        k = len(self.reaction_bodies)
        return JointMomentsTrial(
            np.zeros((n_frames, self.nv)),
            np.zeros((n_frames, self.couplings.n_coordinates)),
            np.zeros((n_frames, 3)),
            np.zeros((n_frames, 3)),
            np.zeros((n_frames, k, 3)),
            np.zeros((n_frames, k, 3)),
            self.dof_names,
            self.coordinate_names,
            self.reaction_bodies,
            time_s,
        )

    # -- per frame ------------------------------------------------------------------------------

    def step(
        self,
        q: np.ndarray,
        qd: np.ndarray,
        qdd: np.ndarray,
        external: Sequence[ExternalWrench],
        out: JointMomentsFrame,
    ) -> None:
        """One frame: fill ``out`` (preallocated).  ``q`` (nq,), ``qd`` (nv,), ``qdd`` (nv,), SI units.

        NaN in the inputs gives NaN outputs (nothing is raised here; check ``out`` and report a fault).
        """
        m, d = self.model, self.data
        d.qpos[:] = q
        d.qvel[:] = qd
        d.qacc[:] = qdd
        mujoco.mj_inverse(m, d)  # runs the position and velocity stages itself

        qfrc_ext = self._qfrc_ext
        qfrc_ext.fill(0.0)
        xfrc = d.xfrc_applied
        xfrc.fill(0.0)
        r = self._r
        for w in external:
            f, t = w.force_n, w.free_moment_nm
            if not (f[0] or f[1] or f[2] or t[0] or t[1] or t[2]):
                continue
            b = self._body_ids.get(w.body, -1)
            if b < 0:
                _lookup(self._body_ids, w.body, "body")  # raises KeyError with close matches
            mujoco.mj_applyFT(m, d, f, t, w.point_m, b, qfrc_ext)
            # equivalent wrench at the body COM, for mj_rnePostConstraint
            np.subtract(w.point_m, d.xipos[b], out=r)
            xb = xfrc[b]
            xb[0] += f[0]
            xb[1] += f[1]
            xb[2] += f[2]
            xb[3] += r[1] * f[2] - r[2] * f[1] + t[0]
            xb[4] += r[2] * f[0] - r[0] * f[2] + t[1]
            xb[5] += r[0] * f[1] - r[1] * f[0] + t[2]

        tau = out.generalized_force
        np.subtract(d.qfrc_inverse, qfrc_ext, out=tau)
        np.dot(self.couplings.basis_transpose(d.qpos), tau, out=out.coordinate_force)

        if self._root_dof >= 0:
            a = self._root_dof
            out.residual_force_n[:] = tau[a : a + 3]
            np.dot(d.xmat[self._root_body].reshape(3, 3), tau[a + 3 : a + 6], out=out.residual_moment_nm)
        else:
            out.residual_force_n.fill(0.0)
            out.residual_moment_nm.fill(0.0)

        if self._reaction_ids.size:
            mujoco.mj_rnePostConstraint(m, d)
            v, wv = self._v, self._w
            for k in range(self._reaction_ids.size):
                b = self._reaction_ids[k]
                cf = d.cfrc_int[b]
                c = d.subtree_com[m.body_rootid[b]]
                # moment about the body origin: M_o = M_c + (c - o) x F   (world)
                np.subtract(c, d.xpos[b], out=r)
                fx, fy, fz = cf[3], cf[4], cf[5]
                wv[0] = cf[0] + r[1] * fz - r[2] * fy
                wv[1] = cf[1] + r[2] * fx - r[0] * fz
                wv[2] = cf[2] + r[0] * fy - r[1] * fx
                R = d.xmat[b].reshape(3, 3)
                np.dot(wv, R, out=out.reaction_moment_nm[k])  # R^T w
                v[0], v[1], v[2] = fx, fy, fz
                np.dot(v, R, out=out.reaction_force_n[k])

    # -- whole trial ----------------------------------------------------------------------------

    def run(
        self,
        q: np.ndarray,
        qd: np.ndarray,
        qdd: np.ndarray,
        externals: Sequence[ExternalWrenchTrial] = (),
        time_s: np.ndarray | None = None,
    ) -> JointMomentsTrial:
        """Whole trial: ``q`` (N, nq), ``qd`` (N, nv), ``qdd`` (N, nv); each external (N, 3) arrays.

        Goes through :meth:`step` frame by frame (MuJoCo has no batched inverse), so it equals repeated ``step``.
        """
        q = np.asarray(q, dtype=float)
        qd = np.asarray(qd, dtype=float)
        qdd = np.asarray(qdd, dtype=float)
        n = q.shape[0]
        if q.shape != (n, self.nq) or qd.shape != (n, self.nv) or qdd.shape != (n, self.nv):
            raise ValueError(
                f"run expects q (N, {self.nq}), qd and qdd (N, {self.nv}); got {q.shape}, {qd.shape}, {qdd.shape}"
            )
        for e in externals:
            if e.n_frames != n:
                raise ValueError(f"external load on {e.body!r} has {e.n_frames} frames, the kinematics {n}")
            self.body_id(e.body)
        ws = [ExternalWrench.zeros(e.body) for e in externals]
        trial = self.allocate_trial(n, time_s)
        frame = self.allocate_frame()
        for i in range(n):
            for w, e in zip(ws, externals):
                w.force_n[:] = e.force_n[i]
                w.point_m[:] = e.point_m[i]
                w.free_moment_nm[:] = e.free_moment_nm[i]
            self.step(q[i], qd[i], qdd[i], ws, frame)
            trial.generalized_force[i] = frame.generalized_force
            trial.coordinate_force[i] = frame.coordinate_force
            trial.residual_force_n[i] = frame.residual_force_n
            trial.residual_moment_nm[i] = frame.residual_moment_nm
            trial.reaction_force_n[i] = frame.reaction_force_n
            trial.reaction_moment_nm[i] = frame.reaction_moment_nm
        return trial


# --------------------------------------------------------------------------------------------------
# OpenSim coordinates -> MuJoCo state
# --------------------------------------------------------------------------------------------------


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


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
    transform) is computed here; :meth:`map` does the arithmetic.
    """

    def __init__(self, model: mujoco.MjModel, names: Sequence[str], *, pelvis_body: str = "pelvis") -> None:
        model = _as_mjmodel(model)
        self.model = model
        self.names = list(names)
        col = {nm: i for i, nm in enumerate(self.names)}
        self.couplings = CoordinateCouplings(model)
        dependent = set(self.couplings.dependent_joint_names)
        used: list[str] = []
        defaulted: list[str] = []
        self._direct: list[tuple[int, int, int]] = []        # (column, qpos address, dof address)
        free = [j for j in range(model.njnt) if int(model.jnt_type[j]) == _FREE]
        for j in range(model.njnt):
            jn = _name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
            t = int(model.jnt_type[j])
            if t in (_HINGE, _SLIDE):
                if jn in dependent:
                    continue
                if jn in col:
                    self._direct.append((col[jn], int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j])))
                    used.append(jn)
                else:
                    defaulted.append(jn)
            elif t == _BALL:
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
        self._quat = np.zeros(4)

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
            R_rp, r_rp, qa, da, quat = self._R_rp, self._r_rp, self._qa, self._da, self._quat
            w_p, al_p = _pelvis_angular(
                values[:, ia], values[:, ib], values[:, ic],
                speeds[:, ia], speeds[:, ib], speeds[:, ic],
                accelerations[:, ia], accelerations[:, ib], accelerations[:, ic],
            )
            C = OPENSIM_TO_Z_UP
            p_p = values[:, it] @ C.T
            v_p = speeds[:, it] @ C.T
            a_p = accelerations[:, it] @ C.T
            for k in range(n):
                R_os = _rot_z(values[k, ia]) @ _rot_x(values[k, ib]) @ _rot_y(values[k, ic])
                R_wp = C @ R_os
                R_wr = R_wp @ R_rp.T
                mujoco.mju_mat2Quat(quat, R_wr.ravel())
                dvec = R_wr @ r_rp  # root origin -> pelvis origin, world
                w_r = R_rp @ w_p[k]  # root frame
                al_r = R_rp @ al_p[k]
                w_w = R_wr @ w_r
                al_w = R_wr @ al_r
                qpos[k, qa : qa + 3] = p_p[k] - dvec
                qpos[k, qa + 3 : qa + 7] = quat
                qvel[k, da : da + 3] = v_p[k] - np.cross(w_w, dvec)
                qvel[k, da + 3 : da + 6] = w_r
                qacc[k, da : da + 3] = a_p[k] - np.cross(al_w, dvec) - np.cross(w_w, np.cross(w_w, dvec))
                qacc[k, da + 3 : da + 6] = al_r
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


# --------------------------------------------------------------------------------------------------
# force plates (OpenSim .mot) -> external wrench
# --------------------------------------------------------------------------------------------------


def _columns(table: TimeSeriesTable, identifier: str) -> np.ndarray:
    cols = []
    for axis in "xyz":
        for cand in (f"{identifier}{axis}", f"{identifier}_{axis}"):
            if cand in table.columns:
                cols.append(table.column(cand))
                break
        else:
            table.column(f"{identifier}{axis}")  # KeyError with close matches
    return np.stack(cols, axis=1)


def external_wrench_from_opensim_grf(
    table: TimeSeriesTable,
    body: str,
    *,
    force_identifier: str = "1_ground_force_v",
    point_identifier: str = "1_ground_force_p",
    torque_identifier: str = "1_ground_torque",
    time_s: np.ndarray | None = None,
    cutoff_hz: float | None = None,
    threshold_n: float = 20.0,
) -> ExternalWrenchTrial:
    """One force plate of an OpenSim ``.mot`` (identifiers as in an ``ExternalForce`` of the ExternalLoads XML) ->
    :class:`ExternalWrenchTrial` in the z-up world.

    1. Force ``F``, CoP ``p`` and free moment ``T`` are rotated from OpenSim's y-up ground to z up.
    2. The plate wrench is carried as ``F`` and its moment about the origin ``M = p x F + T`` (well defined also
       where the CoP is not), optionally low-passed with zero lag at ``cutoff_hz`` (``filtfilt``, same design as the
       kinematics, as Kristianslund et al. 2012, J Biomech 45:666, recommend for joint moments), and linearly
       interpolated at ``time_s`` (default: the table's own times).
    3. The CoP is recomputed on the plate plane ``z = h`` (``h``: median CoP height while loaded):
       ``px = (h Fx - My) / Fz``, ``py = (Mx + h Fy) / Fz``; the free moment keeps its vertical part
       ``Tz = Mz - (px Fy - py Fx)``.
    4. Where ``Fz < threshold_n`` the load is set to zero and the point to NaN (unloaded; skipped by the stage).
    """
    t_src = np.asarray(table.time_s, dtype=float)
    F = opensim_to_z_up(_columns(table, force_identifier))
    P = opensim_to_z_up(_columns(table, point_identifier))
    T = opensim_to_z_up(_columns(table, torque_identifier))
    loaded_src = F[:, 2] >= threshold_n
    h = float(np.median(P[loaded_src, 2])) if loaded_src.any() else 0.0
    M = np.cross(np.where(np.isfinite(P), P, 0.0), F) + T
    W = np.hstack([F, M])
    if cutoff_hz is not None:
        rate = (t_src.size - 1) / (t_src[-1] - t_src[0])
        W = smooth_derivatives(W, rate, cutoff_hz=cutoff_hz).position
    t = t_src if time_s is None else np.asarray(time_s, dtype=float)
    Wi = np.stack([np.interp(t, t_src, W[:, j]) for j in range(6)], axis=1)
    F, M = Wi[:, :3], Wi[:, 3:]
    loaded = F[:, 2] >= threshold_n
    point = np.full_like(F, np.nan)
    free = np.zeros_like(F)
    fz = np.where(loaded, F[:, 2], 1.0)
    point[:, 0] = (h * F[:, 0] - M[:, 1]) / fz
    point[:, 1] = (M[:, 0] + h * F[:, 1]) / fz
    point[:, 2] = h
    free[:, 2] = M[:, 2] - (point[:, 0] * F[:, 1] - point[:, 1] * F[:, 0])
    F = np.where(loaded[:, None], F, 0.0)
    free = np.where(loaded[:, None], free, 0.0)
    point = np.where(loaded[:, None], point, np.nan)
    return ExternalWrenchTrial(body=body, force_n=F, point_m=point, free_moment_nm=free, time_s=t)
