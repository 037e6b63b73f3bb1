"""Inverse dynamics of a MuJoCo musculoskeletal model with measured external loads (force plates, estimated GRF).

What is computed
----------------
For a frame with generalised positions ``q`` (nq), velocities ``qd`` (nv) and accelerations ``qdd`` (nv) and a list
of external wrenches (per loaded body: force ``F`` (world), point of application ``p`` (world; the CoP for a foot)
and free moment ``T`` (world))::

    tau = M(q) qdd + c(q, qd) - J_ext(q)^T [F; T]            (nv,)   ``generalized_force``

i.e. the generalised force that the joints (muscles + passive tissue + joint structures) must supply, with the
external loads already accounted for.  It is obtained with ``mujoco.mj_inverse`` followed by subtracting the
external loads (``mujoco.mj_applyFT``).  With the default parameters ``mj_inverse``'s position stage is cut to what
inverse dynamics reads (kinematics, CoM frames, mass matrix: no tendon wrapping, transmission, collision or
sensors; bit-identical, :meth:`InverseDynamics._mj_inverse`), 3x faster on MyoLeg and 8x on MyoFullBody.
:meth:`InverseDynamics.run` loops over the frames in numba calling MuJoCo's C API (:mod:`models.dynamics.compiled_id`,
bit-identical to :meth:`InverseDynamics.step` frame by frame; ~20 us instead of ~40 us per MyoLeg frame).  A batched
MuJoCo Warp version of the whole trial: :mod:`models.dynamics.warp_backend`.

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

Beside it in ``models/dynamics/``, because inverse dynamics needs them from lab data:

* :class:`~models.dynamics.couplings.CoordinateCouplings`: the joint-equality polynomials (fill dependent ``q, qd,
  qdd``; the basis ``N``).
* :func:`~models.dynamics.opensim_state.kinematics_from_opensim` (and :class:`~models.dynamics.opensim_state
  .OpenSimStateMap`): OpenSim coordinates (Rajagopal / gait2392 names, y up) -> MuJoCo ``qpos, qvel, qacc`` (z up;
  pelvis Euler angles -> free root).
* :func:`~models.dynamics.opensim_grf.external_wrench_from_opensim_grf`: force-plate columns of an OpenSim ``.mot``
  -> :class:`~models.dynamics.wrenches.ExternalWrenchTrial`.

This module is pure computation: numpy, scipy, mujoco and other ``models/`` modules.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Sequence

import mujoco
import numpy as np

from models.dynamics.couplings import CoordinateCouplings
from models.dynamics.id_kernels import _add_com_wrench, _basis_transpose, _coordinate_force, _reactions, _root_moment
from models.dynamics.mj_names import JOINT_FREE, as_mjmodel, dof_names, lookup, object_name
from models.dynamics.wrenches import ExternalWrench, ExternalWrenchTrial

__all__ = [
    "InverseDynamicsParams",
    "JointMomentsFrame",
    "JointMomentsTrial",
    "InverseDynamics",
]


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
        return self.generalized_force[:, lookup({n: i for i, n in enumerate(self.dof_names)}, name, "dof")]

    def coordinate(self, name: str) -> np.ndarray:
        """(N,) generalised force of one independent coordinate by name (coupled dofs folded in)."""
        idx = {n: i for i, n in enumerate(self.coordinate_names)}
        return self.coordinate_force[:, lookup(idx, name, "independent coordinate")]

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


def _tendon_free_inverse_allowed(m: mujoco.MjModel) -> bool:
    """Whether ``mj_inverse`` on ``m`` can skip tendons, transmission, collision and sensors without changing
    ``qfrc_inverse`` or ``cfrc_int``: constraints, actuation, springs and dampers disabled, no tendon armature (it
    enters the mass matrix through the tendon Jacobian), no flex, gravity compensation or fluid forces (passive
    forces that the skipped stages would feed), continuous-time inverse."""
    need = (int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT) | int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
            | int(mujoco.mjtDisableBit.mjDSBL_SPRING) | int(mujoco.mjtDisableBit.mjDSBL_DAMPER))
    if (int(m.opt.disableflags) & need) != need:
        return False
    if int(m.opt.enableflags) & int(mujoco.mjtEnableBit.mjENBL_INVDISCRETE):
        return False
    if m.ntendon and np.any(np.asarray(getattr(m, "tendon_armature", np.zeros(1))) != 0):
        return False
    if int(m.nflex) or np.any(np.asarray(m.body_gravcomp) != 0) or m.opt.density or m.opt.viscosity:
        return False
    return True


def _private_copy(model: mujoco.MjModel, params: InverseDynamicsParams) -> mujoco.MjModel:
    """A deep copy of ``model`` with constraints and actuation (and by default springs, dampers and armature) off,
    discrete-time inverse off and the gravity magnitude of ``params``."""
    m = copy.deepcopy(model)
    off = int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT) | int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
    if not params.subtract_passive:
        off |= int(mujoco.mjtDisableBit.mjDSBL_SPRING) | int(mujoco.mjtDisableBit.mjDSBL_DAMPER)
    m.opt.disableflags |= off
    m.opt.enableflags &= ~int(mujoco.mjtEnableBit.mjENBL_INVDISCRETE)
    if not params.include_armature:
        m.dof_armature[:] = 0.0
    if params.gravity_m_s2 is not None:
        g = np.asarray(m.opt.gravity, dtype=float)
        norm = float(np.linalg.norm(g))
        direction = g / norm if norm > 0 else np.array([0.0, 0.0, -1.0])
        m.opt.gravity[:] = direction * params.gravity_m_s2
    return m


class InverseDynamics:
    """Per-frame and whole-trial inverse dynamics on a private copy of ``model`` (see the module docstring).

    ``model`` is an ``MjModel`` or a ``models.body.registry.MusculoskeletalModel`` (its ``.model`` is used).  It is not
    modified: the stage deep-copies it and switches off constraints, actuation and (by default)
    springs, dampers and armature in the copy (:attr:`model`).  Use :attr:`model` for forward simulations that must
    match this stage exactly.  ``shared_private=True``: that copy is kept per model content and parameters and
    shared by the stages made so (:mod:`models.dynamics.id_model_cache`; saves a copy, 5-15 ms on MyoLeg, per
    stage); the stage never writes it, and neither may its users (:attr:`shares_private_model`).
    """

    def __init__(self, model: mujoco.MjModel, params: InverseDynamicsParams | None = None, *,
                 shared_private: bool = False) -> None:
        model = as_mjmodel(model)
        self.params = params if params is not None else InverseDynamicsParams()
        if shared_private:
            from models.dynamics.id_model_cache import shared_private_model

            m, shared = shared_private_model(model, self.params, lambda src: _private_copy(src, self.params))
        else:
            m, shared = _private_copy(model, self.params), False
        #: whether :attr:`model` is shared with other stages made with ``shared_private=True`` (read only)
        self.shares_private_model = shared
        self.model = m
        self.data = mujoco.MjData(m)
        self.couplings = CoordinateCouplings(model)
        self.dof_names = dof_names(m)
        self.coordinate_names = self.couplings.coordinate_names
        self._body_ids = {object_name(m, mujoco.mjtObj.mjOBJ_BODY, b): b for b in range(m.nbody)}
        self.reaction_bodies = tuple(self.params.reaction_bodies)
        self._reaction_ids = np.array(
            [lookup(self._body_ids, b, "body") for b in self.reaction_bodies], dtype=int
        )
        for name, b in zip(self.reaction_bodies, self._reaction_ids):
            if b == 0:
                raise ValueError(f"reaction body {name!r} is the world body")
        free = [j for j in range(m.njnt) if int(m.jnt_type[j]) == JOINT_FREE]
        self._root_dof = int(m.jnt_dofadr[free[0]]) if free else -1
        self._root_body = int(m.jnt_bodyid[free[0]]) if free else -1
        #: the position stage without tendons, transmission, collision and sensors (see :meth:`_mj_inverse`)
        self.skips_tendons = _tendon_free_inverse_allowed(m)
        # N(q)^T with its polynomial entries updated per frame by a compiled kernel (the same expression as
        # CoordinateCouplings.basis_transpose, which loops in Python: 14 entries on MyoLeg cost 10 us a frame)
        cc = self.couplings
        self._NT = cc.basis_transpose(m.qpos0).copy()
        ent = [(k, dep, c) for k, dep, c in cc._entries]
        self._nt_k = np.array([k for k, _, _ in ent], dtype=np.int64)
        self._nt_dof = np.array([dep for _, dep, _ in ent], dtype=np.int64)
        self._nt_qadr = np.array([c.ind_qadr for _, _, c in ent], dtype=np.int64)
        self._nt_x0 = np.array([c.x0 for _, _, c in ent], dtype=float)
        self._nt_coef = np.array([c.coef for _, _, c in ent], dtype=float).reshape(len(ent), 5)
        _basis_transpose(self._NT, m.qpos0, self._nt_k, self._nt_dof, self._nt_qadr, self._nt_x0, self._nt_coef)
        self._reaction_root = np.asarray(m.body_rootid, dtype=np.int64)[self._reaction_ids]
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
        return lookup(self._body_ids, name, "body")

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
        self._mj_inverse()

        qfrc_ext = self._qfrc_ext
        qfrc_ext.fill(0.0)
        xfrc = d.xfrc_applied
        xfrc.fill(0.0)
        for w in external:
            f, t = w.force_n, w.free_moment_nm
            if not (f[0] or f[1] or f[2] or t[0] or t[1] or t[2]):
                continue
            b = self._body_ids.get(w.body, -1)
            if b < 0:
                lookup(self._body_ids, w.body, "body")  # raises KeyError with close matches
            mujoco.mj_applyFT(m, d, f, t, w.point_m, b, qfrc_ext)
            # equivalent wrench at the body COM, for mj_rnePostConstraint
            _add_com_wrench(xfrc, b, w.point_m, d.xipos, f, t)

        tau = out.generalized_force
        np.subtract(d.qfrc_inverse, qfrc_ext, out=tau)
        _basis_transpose(self._NT, d.qpos, self._nt_k, self._nt_dof, self._nt_qadr, self._nt_x0, self._nt_coef)
        _coordinate_force(self._NT, tau, out.coordinate_force)

        if self._root_dof >= 0:
            a = self._root_dof
            out.residual_force_n[:] = tau[a : a + 3]
            _root_moment(d.xmat, self._root_body, tau, a, out.residual_moment_nm)
        else:
            out.residual_force_n.fill(0.0)
            out.residual_moment_nm.fill(0.0)

        if self._reaction_ids.size:
            mujoco.mj_rnePostConstraint(m, d)
            _reactions(self._reaction_ids, self._reaction_root, d.cfrc_int, d.subtree_com, d.xpos, d.xmat,
                       out.reaction_force_n, out.reaction_moment_nm)

    def _mj_inverse(self) -> None:
        """``mj_inverse`` on :attr:`data`, with the position stage cut to what inverse dynamics reads.

        ``mj_inverse`` runs the whole position stage: tendon wrapping, actuator transmission, collision and sensors
        too, 60 % of its cost on MyoLeg's 80 wrapping muscles.  With constraints, actuation, springs and dampers
        off (the default parameters) none of them reaches ``qfrc_inverse`` or ``cfrc_int``: the stage runs
        kinematics, CoM frames and the composite-rigid-body mass matrix itself, then the velocity stage, then
        ``mj_inverseSkip(..., mjSTAGE_VEL, skipsensor=1)``; bit-identical to ``mj_inverse`` on the outputs here
        (tested).  With ``subtract_passive`` (tendon springs/dampers) or anything that reads the tendons it is
        plain ``mj_inverse``.
        """
        m, d = self.model, self.data
        if not self.skips_tendons:
            mujoco.mj_inverse(m, d)
            return
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        mujoco.mj_crb(m, d)
        mujoco.mj_fwdVelocity(m, d)   # reads ten_J and actuator_moment: never computed on this data, all zero
        mujoco.mj_inverseSkip(m, d, int(mujoco.mjtStage.mjSTAGE_VEL), 1)

    # -- whole trial ----------------------------------------------------------------------------

    def run(
        self,
        q: np.ndarray,
        qd: np.ndarray,
        qdd: np.ndarray,
        externals: Sequence[ExternalWrenchTrial] = (),
        time_s: np.ndarray | None = None,
        *,
        compiled: bool = True,
    ) -> JointMomentsTrial:
        """Whole trial: ``q`` (N, nq), ``qd`` (N, nv), ``qdd`` (N, nv); each external (N, 3) arrays.

        Equals :meth:`step` frame by frame, bit for bit.  ``compiled`` (default): the frame loop runs in numba
        calling MuJoCo's C API (:mod:`models.dynamics.compiled_id`) when that is available and every input is
        finite; otherwise (or ``compiled=False``) it goes through :meth:`step` in Python.
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
        if compiled:
            from models.dynamics import compiled_id, mj_capi

            if mj_capi.capi_available()[0] and compiled_id.finite_inputs(q, qd, qdd, externals):
                return compiled_id.run_compiled(self, q, qd, qdd, externals, time_s)
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
