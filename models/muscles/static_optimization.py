"""Per-frame static optimisation with MuJoCo's own muscle model: activations from joint moments, exactly and fast.

The problem of one frame
------------------------
For a state ``(q, qd)`` and the net moments ``tau`` of the independent coordinates (``JointMomentsTrial
.coordinate_force`` of :mod:`models.dynamics.inverse_dynamics`: coupled dofs folded in, so the knee is OpenSim's knee)::

    minimise    sum_i a_i^2  +  w_res * sum_j (tau_res_j / tau_scale_j)^2
    over        a (n_muscles,) in [0, 1],  tau_res (n_solved,) free
    subject to  R(q)^T (A(q, qd) * a + B(q, qd)) + tau_res = tau        on the solved coordinates

* ``R`` (n_muscles, n_coord): anatomical moment arms about the *independent* coordinates, ``r N`` with ``r =
  -d(length)/dq`` (:meth:`models.body.registry.MusculoskeletalModel.muscle_moment_arms`) and ``N = dq/dq_independent``
  (the coupling basis of :class:`models.dynamics.couplings.CoordinateCouplings`).  This equals
  :meth:`~models.body.registry.MusculoskeletalModel.coupled_muscle_moment_arms` (checked in the tests): MyoLeg's knee
  coordinate gets the moment arms *through* the patella and the knee translations, as ID's coordinate moment does.
* ``A * a + B`` is the muscle **tension** (N, >= 0).  MuJoCo's muscle force is ``actuator_force = gain(l, v) * act +
  bias(l, v)`` with ``gain, bias <= 0`` (muscles pull: ``actuator_force < 0``), so for a given state it is affine in
  the activation: ``A = -(force(act=1) - force(act=0))`` (active, force-length-velocity scaled) and ``B =
  -force(act=0)`` (passive).  Both are read from ``mj_fwdActuation`` on a private copy of the model.  MyoLeg's and
  MyoFullBody's muscles are ``dyntype=muscle`` (one activation state each, ``actearly=false``), so the force reads
  ``data.act``, not ``ctrl``: the stage writes ``act``; muscles without an activation state would take ``ctrl``
  (``ctrllimited``, ``actlimited`` and ``actearly`` are switched off in the private copy so that neither a clamp nor
  an integration step can bend the affine map).  ``R^T (A a + B)`` is then exactly the coordinate projection of
  MuJoCo's ``qfrc_actuator`` with ``act = a`` (tested against ``mj_forward``).
* Solved coordinates: the independent coordinates that muscles cross (a moment arm above 1e-6 m in any of a few
  sampled poses), minus the free root.  The others (:attr:`StaticOptimization.reserve_only_coordinates`, none in
  MyoLeg or MyoFullBody, and the root's six, :attr:`StaticOptimization.root_coordinates`) are left to their
  reserve: ``tau_res = tau - muscle moment`` there.  The root's reserve is ID's "hand of God" residual: muscles are
  internal forces, their generalised force on the root is zero (1e-13 N m, tested) and the root is left out of ``R``.
* ``tau_scale_j`` (N m; N for a slide coordinate) and ``w_res`` come from :class:`SOParams`: the default, ``w_res = 1``
  and ``tau_scale = 1 N m``, is OpenSim's reserve actuator of optimal force 1 N m: one N m of reserve costs as much
  as one fully active muscle.  A quadratic penalty never makes the reserves exactly zero: where muscles can supply
  ``tau`` the reserve is ``lambda_j tau_scale_j^2 / (2 w_res)``, about 1e-2 N m at the defaults and 1e-7 N m at
  ``w_res = 1e8`` (MyoFullBody, random feasible moments); ``muscle moment + reserve = tau`` holds to the solver
  tolerance (1e-12 relative) in every case.

The solver (:mod:`models.muscles.qp_kernels`): a dual semismooth Newton method with exact line search on the
``n_solved`` multipliers, typically 2 steps per frame warm-started; its derivation, cost and conditioning are
described there.

Outputs per frame (:class:`SOFrame`) and per trial (:class:`SOTrial`): activations, muscle tensions (N, >= 0),
muscle moments and reserves per independent coordinate (N m), the equality residual ``tau - muscle - reserve``, the
cost, Newton iterations, status, and the solve time.  Reserves on the solved coordinates are the optimal ``s =
P^-1 lambda / 2``; on the root and reserve-only coordinates ``tau - muscle moment``.

Per-frame cost measured here (2-core x86 VM, one core): MyoLeg 65-70 us (MuJoCo's transmission and two
``mj_fwdActuation`` 44 us, static optimisation 20 us), a 132-frame gait trial ~9 ms; MyoFullBody 460-490 us
(MuJoCo 335 us, static optimisation 120 us).  Since issue 22 the velocity stage is only ``actuator_velocity =
moment @ qvel`` (:func:`models.muscles.qp_kernels.actuator_velocity`, not ``mj_fwdVelocity``'s CoM velocities,
passive and bias forces) and the numba part is one dispatch (:func:`~models.muscles.qp_kernels.solve_frame`);
whole-trial figures by backend: ``tests/benchmarks/test_bench_batched.py``.  The muscle state of all frames
batched on MuJoCo Warp: :mod:`models.muscles.warp_backend`.

Why our knee-crossing muscle forces were ~2x OpenSim's on GC5 PS (diagnosis, 2026-11-25)
--------------------------------------------------------------------------------------------
Not the solver: KKT residuals <= 1e-8 and BVLS costs agree on real frames (tests), reserves < 0.1 N m RMS.  Measured
on PS ss1 against the lab's OpenSim SO (``opensim_results_baseline/SO``, same frames; ``tests/test_static_optimization
.py::test_gc5_knee_muscles_are_weaker_than_myoleg_and_explain_the_knee_force``):

1. **Muscle strengths (the main cause, fixed).** ``GC5.osim`` gives every muscle crossing the knee ~0.6 x the MyoLeg
   template's F0 (vasti 0.58-0.68, rectus femoris 0.59, hamstrings 0.57-0.61, gastrocnemius med/lat 0.84/0.72) and
   soleus 1.16 x. With ``sum a^2`` a moment is shared in proportion to ``r A^2`` (``A`` = F0 x force-length-
   velocity), so the template's strong gastrocnemii took the ankle moment from soleus (gastrocnemii/soleus mean
   force 0.86 against OpenSim's 0.29) and rectus femoris the hip-flexion moment from the iliopsoas (mean 339 N
   against 166 N), and the other side of the knee had to balance them: total knee contact 4.7 BW peak against 2.2 in
   vivo. Fix: the subject model's F0
   (``models.body.scaling.scale_model(max_isometric_force_n=opensim_max_isometric_forces(osim))``): PS mean total /
   medial / lateral RMSE 1.11 / 0.61 / 0.51 -> 0.62 / 0.44 / 0.26 BW, R^2 0.77 / 0.83 / 0.41 -> 0.86 / 0.88 / 0.54.
2. **Moment arms (MyoLeg's geometry, remaining).**  OpenSim 4.6 on ``GC5.osim`` at the lab IK poses vs ours on the
   scaled MyoLeg: quadriceps knee moment arms 7-15 % smaller in stance (vasti 0.037-0.040 vs 0.043-0.046 m),
   hamstrings 20-30 % larger (semimem 0.046-0.052 vs 0.037-0.043 m), psoas hip-flexion arm 40 % smaller (0.016
   vs 0.026 m; also in the unscaled template, 0.019 m): more quadriceps force per N m of extension moment and more
   rectus femoris (a knee-crossing hip flexor) in terminal stance.
3. **Force-length operating points (MyoLeg's muscle parameters, remaining).**  MuJoCo's ``A`` against OpenSim's
   ``F / a`` at the same frames: gastrocnemii 1.35-1.6 x OpenSim's in terminal stance, rectus femoris 0.7 x, vastus
   medialis below its ``lengthrange`` (normalised length 0.78-0.86 < range 1.15: weak in extension).
4. **Net moments.**  Our ID knee extension moment exceeds OpenSim's (sum of its SO moments) by ~4-5 N m through stance.

Fed OpenSim's own SO forces, the contact step gives 0.30 / 0.48 / 0.31 BW total on ss1 / ss3 / ss8: items 2-4 hold
the rest of the gap.

This module is pure computation: numpy, numba, mujoco and other ``models/`` modules.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping

import mujoco
import numpy as np

from models.dynamics.couplings import CoordinateCouplings
from models.body.registry import ModelInfo, MusculoskeletalModel, is_muscle
from models.muscles.compiled_so import run_compiled
from models.muscles.so_stage_model import so_stage_model
from models.muscles.qp_kernels import (actuator_velocity, assemble, couplings_kernel, moment_arms,
                                      muscle_passive_force, solve_frame)

__all__ = [
    "SOParams",
    "SOFrame",
    "SOTrial",
    "SOProblem",
    "StaticOptimization",
    "STATUS_CONVERGED",
    "STATUS_MAX_ITERATIONS",
    "STATUS_INVALID_INPUT",
    "STATUS_ROUNDING_FLOOR",
]

#: solver status codes (``SOFrame.status``)
STATUS_CONVERGED = 0
STATUS_MAX_ITERATIONS = 1
STATUS_INVALID_INPUT = 2  # NaN/inf in qpos, qvel or tau: outputs are NaN, the warm start is kept
#: the equality could not be met to 1e-9 relative (1e3 x the tolerance) in double precision: only on frames the
#: muscles cannot satisfy, with a reserve weight so heavy that the problem's condition number ``1 + P max|C|^2``
#: passes ~1e8 (MyoLeg, GC5 PS ss1: none up to w_res = 1e4; at 1e6 the frames that need 30 N m of ankle reserve,
#: residual <= 1e-6 N m; at 1e8 <= 1e-4 N m).  The outputs are the best iterate; ``residual_nm`` says how far.
STATUS_ROUNDING_FLOOR = 3
STATUS_NAMES = {0: "converged", 1: "max iterations", 2: "invalid input", 3: "rounding floor"}

_FREE = int(mujoco.mjtJoint.mjJNT_FREE)

# a coordinate is "crossed by muscles" when some muscle's moment arm about it exceeds this (m, or unitless for slides)
_ACTUATED_MOMENT_ARM_M = 1e-6
_N_SAMPLE_POSES = 8


# --------------------------------------------------------------------------------------------------
# parameters and outputs
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SOParams:
    """Static-optimisation parameters (validated here; coordinate names are checked by the stage).

    ``reserve_weight``: ``w_res`` (> 0, finite), weight of ``sum (tau_res / tau_scale)^2`` against ``sum a^2``.
    ``reserve_scale_nm``: ``tau_scale`` of every solved coordinate (N m for hinges, N for slides; > 0), the
    "optimal force" of an OpenSim reserve actuator.  ``reserve_scale_by_coordinate``: per-coordinate overrides,
    ``{"mtp_angle_l": 10.0}`` or a tuple of pairs.  ``solved_coordinates``: ``None`` (default) solves every
    non-root independent coordinate that muscles cross; a tuple of names restricts the problem to those (the others
    are left to their reserves).  ``apply_couplings``: fill the slaved coordinates of ``qpos``/``qvel`` from their
    masters before computing the muscle state (MuJoCo's joint equalities; what ID assumes).  ``tolerance``:
    relative primal-feasibility tolerance of the solver (see the module docstring); ``max_iterations`` Newton
    steps per frame; ``warm_start``: start each frame from the previous frame's multipliers.
    """

    reserve_weight: float = 1.0
    reserve_scale_nm: float = 1.0
    reserve_scale_by_coordinate: tuple[tuple[str, float], ...] | Mapping[str, float] = ()
    solved_coordinates: tuple[str, ...] | None = None
    apply_couplings: bool = True
    tolerance: float = 1e-12
    max_iterations: int = 100
    warm_start: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.reserve_weight, (int, float)) and math.isfinite(self.reserve_weight)
                and self.reserve_weight > 0):
            raise ValueError(f"reserve_weight = {self.reserve_weight!r}: must be a finite number > 0")
        if not (math.isfinite(self.reserve_scale_nm) and self.reserve_scale_nm > 0):
            raise ValueError(f"reserve_scale_nm = {self.reserve_scale_nm!r}: must be a finite number > 0")
        pairs = self.reserve_scale_by_coordinate
        if isinstance(pairs, Mapping):
            pairs = tuple(pairs.items())
        pairs = tuple((str(k), float(v)) for k, v in pairs)
        for k, v in pairs:
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"reserve_scale_by_coordinate[{k!r}] = {v!r}: must be a finite number > 0")
        object.__setattr__(self, "reserve_scale_by_coordinate", pairs)
        if self.solved_coordinates is not None:
            if isinstance(self.solved_coordinates, str):
                raise TypeError("solved_coordinates must be a tuple of coordinate names, not a single string")
            object.__setattr__(self, "solved_coordinates", tuple(self.solved_coordinates))
        if not (math.isfinite(self.tolerance) and 0 < self.tolerance < 1e-3):
            raise ValueError(f"tolerance = {self.tolerance!r}: allowed (0, 1e-3)")
        if int(self.max_iterations) != self.max_iterations or self.max_iterations < 1:
            raise ValueError(f"max_iterations = {self.max_iterations!r}: must be an integer >= 1")


@dataclass(slots=True, eq=False)
class SOFrame:
    """One frame's result (preallocate with :meth:`StaticOptimization.allocate_frame`; ``step`` overwrites it).

    ``activation`` (n_muscles,) in [0, 1]; ``muscle_force_n`` (n_muscles,) tension ``A a + B`` >= 0 (N);
    ``muscle_moment_nm`` (n_coord,) ``R^T force`` on every independent coordinate; ``reserve_nm`` (n_coord,);
    ``residual_nm`` (n_coord,) ``tau - muscle_moment - reserve`` (solver tolerance on the solved coordinates,
    0 elsewhere); ``cost`` the objective; ``iterations`` Newton steps; ``status`` (``STATUS_*``);
    ``solve_time_s`` the numba part (problem assembly + QP), ``step_time_s`` the whole step (MuJoCo included).
    """

    activation: np.ndarray
    muscle_force_n: np.ndarray
    muscle_moment_nm: np.ndarray
    reserve_nm: np.ndarray
    residual_nm: np.ndarray
    cost: float = 0.0
    iterations: int = 0
    status: int = 0
    solve_time_s: float = 0.0
    step_time_s: float = 0.0


@dataclass(frozen=True, eq=False)
class SOTrial:
    """A trial of :class:`SOFrame` stacked on axis 0, with names.  Arrays (N, ...) as in the frame."""

    activation: np.ndarray  # (N, n_muscles)
    muscle_force_n: np.ndarray  # (N, n_muscles) tension >= 0
    muscle_moment_nm: np.ndarray  # (N, n_coord)
    reserve_nm: np.ndarray  # (N, n_coord)
    residual_nm: np.ndarray  # (N, n_coord)
    cost: np.ndarray  # (N,)
    iterations: np.ndarray  # (N,) int
    status: np.ndarray  # (N,) int
    solve_time_s: np.ndarray  # (N,)
    step_time_s: np.ndarray  # (N,)
    total_time_s: float
    muscle_names: tuple[str, ...]
    coordinate_names: tuple[str, ...]
    solved_coordinates: tuple[str, ...]
    reserve_only_coordinates: tuple[str, ...]
    root_coordinates: tuple[str, ...]

    @property
    def n_frames(self) -> int:
        return int(self.activation.shape[0])

    def activation_of(self, muscle: str) -> np.ndarray:
        """(N,) activation of one muscle by name."""
        return self.activation[:, _index(self.muscle_names, muscle, "muscle")]

    def reserve_of(self, coordinate: str) -> np.ndarray:
        """(N,) reserve (N m) of one coordinate by name."""
        return self.reserve_nm[:, _index(self.coordinate_names, coordinate, "coordinate")]

    def reserve_summary(self) -> dict[str, dict[str, float]]:
        """Per solved coordinate: RMS and peak |reserve| (N m) over the frames, and the RMS net moment for scale."""
        out = {}
        for name in self.solved_coordinates + self.reserve_only_coordinates:
            k = self.coordinate_names.index(name)
            r = self.reserve_nm[:, k]
            tau = self.muscle_moment_nm[:, k] + r + self.residual_nm[:, k]
            out[name] = {"rms_nm": float(np.sqrt(np.nanmean(r ** 2))), "peak_nm": float(np.nanmax(np.abs(r))),
                         "tau_rms_nm": float(np.sqrt(np.nanmean(tau ** 2)))}
        return out

    def summary(self) -> dict[str, object]:
        ok = self.status == STATUS_CONVERGED
        return {
            "frames": self.n_frames,
            "converged": int(ok.sum()),
            "iterations_mean": float(np.mean(self.iterations)),
            "iterations_max": int(np.max(self.iterations)) if self.n_frames else 0,
            "step_us_median": float(np.median(self.step_time_s) * 1e6) if self.n_frames else float("nan"),
            "solve_us_median": float(np.median(self.solve_time_s) * 1e6) if self.n_frames else float("nan"),
            "total_time_s": self.total_time_s,
            "cost_mean": float(np.nanmean(self.cost)) if self.n_frames else float("nan"),
            "max_abs_residual_nm": float(np.nanmax(np.abs(self.residual_nm))) if self.n_frames else float("nan"),
            "reserves": self.reserve_summary(),
        }


@dataclass(frozen=True, eq=False)
class SOProblem:
    """The QP of one frame, for inspection and cross-checks (copies; see :meth:`StaticOptimization.problem`).

    ``C`` (n_solved, n_muscles), ``b`` (n_solved,), ``reserve_penalty`` ``P`` (n_solved,): minimise ``a'a + s'Ps``
    subject to ``C a + s = b``, ``0 <= a <= 1``.  ``moment_arm_m`` (n_muscles, n_coord) ``R``;
    ``active_force_n`` ``A`` and ``passive_force_n`` ``B`` (n_muscles,), tensions at ``a = 1`` minus ``a = 0``
    and at ``a = 0``.
    """

    C: np.ndarray
    b: np.ndarray
    reserve_penalty: np.ndarray
    moment_arm_m: np.ndarray
    active_force_n: np.ndarray
    passive_force_n: np.ndarray
    solved_index: np.ndarray


def _index(names: tuple[str, ...], name: str, what: str) -> int:
    try:
        return names.index(name)
    except ValueError:
        import difflib

        close = difflib.get_close_matches(name, list(names), n=5, cutoff=0.5)
        raise KeyError(f"no {what} {name!r}; " + (f"close matches: {close}" if close else
                                                 f"available: {list(names)[:12]}...")) from None


# --------------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------------


def _as_musculoskeletal(model) -> MusculoskeletalModel:
    if isinstance(model, MusculoskeletalModel):
        return model
    if isinstance(model, mujoco.MjModel):  # e.g. the subject-scaled model of models.trial_analysis
        info = ModelInfo.from_mjmodel(model, name="mjmodel", source="MjModel", height_m=None, height_basis="")
        return MusculoskeletalModel(model, info)
    raise TypeError(f"expected a MusculoskeletalModel (or a mujoco.MjModel), got {type(model).__name__}")


class StaticOptimization:
    """Static optimisation stage on a private copy of the model (see the module docstring).

    ``model``: a :class:`~models.body.registry.MusculoskeletalModel` (a bare ``mujoco.MjModel``, e.g. the
    subject-scaled model of :func:`models.trial_analysis.trial_kinematics`, is wrapped).  Not modified.
    ``share_model=True``: ``model`` itself, read only, where the copy's settings are inert on it (no copy; the caller
    must not modify ``model`` while the stage is in use; :mod:`models.muscles.so_stage_model`, :attr:`shares_model`).

    Attributes: ``coordinate_names`` (n_coord, the columns of ID's ``coordinate_force``, root included),
    ``solved_coordinates``, ``reserve_only_coordinates`` (non-root coordinates no muscle crosses, or not asked
    for), ``root_coordinates``, ``muscle_names``, ``reserve_penalty`` (n_solved,) ``w_res / tau_scale^2``.
    """

    def __init__(self, model: MusculoskeletalModel | mujoco.MjModel, params: SOParams | None = None, *,
                 share_model: bool = False) -> None:
        mm = _as_musculoskeletal(model)
        self.params = params if params is not None else SOParams()
        self._private_model(mm, share_model)
        self._coordinate_maps()
        self._frame_buffers()
        # which coordinates the muscles cross, and which cross together (for the solver's ordering)
        crossed, pattern = self._crossed_coordinates()
        solved = self._solved_indices(crossed)
        self._reserves(solved)
        self._solver_buffers(pattern)
        # one frame through every kernel: compiles (or loads numba's cache) here, not in the first real frame
        fr = self.allocate_frame()
        self.step(self.model.qpos0, np.zeros(self.model.nv), np.zeros(self.n_coordinates), fr)
        self.reset()

    def _private_model(self, mm: MusculoskeletalModel, share: bool = False) -> None:
        """The private copy of the model (actuation on; muscles unclamped; ``share``: maybe the model itself) and
        where each muscle's input goes."""
        mus = np.flatnonzero(is_muscle(mm.model)).astype(np.int64)
        if mus.size == 0:
            raise ValueError(f"{mm.info.name}: the model has no muscle actuators")
        m, self.shares_model = so_stage_model(mm.model, mus, share)   # shares_model: ``model`` is the caller's
        self.model = m
        self.data = mujoco.MjData(m)
        self.muscle_ids = mus
        self.muscle_names = tuple(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, int(i)) or f"actuator{i}"
                                  for i in mus)
        actnum = m.actuator_actnum[mus]
        if np.any(actnum > 1):
            raise NotImplementedError("muscles with more than one activation state are not supported")
        self._act_idx = (m.actuator_actadr[mus] + m.actuator_actnum[mus] - 1)[actnum == 1].astype(np.int64)
        self._ctrl_idx = mus[actnum == 0].astype(np.int64)
        # the force at activation 0 is the muscle bias: computed by a kernel instead of a second mj_fwdActuation
        # when every muscle has MuJoCo's muscle bias (MyoLeg, MyoFullBody) and no force clamp
        self._bias_by_kernel = bool(np.all(m.actuator_biastype[mus] == int(mujoco.mjtBias.mjBIAS_MUSCLE))
                                    and not np.any(m.actuator_forcelimited[mus]))
        self._lengthrange = np.ascontiguousarray(m.actuator_lengthrange, dtype=float)
        self._acc0 = np.ascontiguousarray(m.actuator_acc0, dtype=float)
        self._biasprm = np.ascontiguousarray(m.actuator_biasprm, dtype=float)
        self.muscle_input = "act" if self._ctrl_idx.size == 0 else ("ctrl" if self._act_idx.size == 0 else "act+ctrl")

    def _coordinate_maps(self) -> None:
        """Independent coordinates, the free root, and the dof -> coordinate map with the couplings as arrays."""
        m = self.model
        cc = CoordinateCouplings(m)
        self.couplings = cc
        self.coordinate_names: tuple[str, ...] = cc.coordinate_names
        free = [j for j in range(m.njnt) if int(m.jnt_type[j]) == _FREE]
        root_dofs = set(range(int(m.jnt_dofadr[free[0]]), int(m.jnt_dofadr[free[0]]) + 6)) if free else set()
        self._root_mask = np.array([int(d) in root_dofs for d in cc.independent_dofs], dtype=bool)
        self.root_coordinates = tuple(n for n, r in zip(self.coordinate_names, self._root_mask) if r)
        dof_coord = np.full(m.nv, -1, dtype=np.int64)
        dof_factor = np.zeros(m.nv)
        for k, d in enumerate(cc.independent_dofs):
            # the free root is left out of R: muscles are internal forces, their generalised force on the root is
            # zero up to rounding (1e-13 N m), and skipping its six dofs halves the moment-arm pass of MyoFullBody
            dof_coord[d] = -1 if int(d) in root_dofs else k
            dof_factor[d] = 1.0
        col = {int(d): k for k, d in enumerate(cc.independent_dofs)}
        cpl = cc.couplings
        self._c_dep_qadr = np.array([c.dep_qadr for c in cpl], dtype=np.int64)
        self._c_dep_dof = np.array([c.dep_dof for c in cpl], dtype=np.int64)
        self._c_ind_qadr = np.array([c.ind_qadr for c in cpl], dtype=np.int64)
        self._c_ind_dof = np.array([c.ind_dof for c in cpl], dtype=np.int64)
        self._c_x0 = np.array([c.x0 for c in cpl], dtype=float)
        self._c_y0 = np.array([c.y0 for c in cpl], dtype=float)
        self._c_coef = np.array([c.coef for c in cpl], dtype=float).reshape(len(cpl), 5)
        for c in cpl:
            if c.ind_dof >= 0:
                dof_coord[c.dep_dof] = col[c.ind_dof]
        self._dof_coord = dof_coord
        self._dof_factor = dof_factor

    def _frame_buffers(self) -> None:
        """Preallocated per-frame arrays of the muscle state (moment arms, tensions)."""
        m, nc = self.model, self.n_coordinates
        nm = self.muscle_ids.size
        self._F1 = np.zeros(m.nu)
        self._R = np.zeros((nm, nc))
        self._rcnt = np.zeros(nm, dtype=np.int64)
        self._ridx = np.zeros((nm, nc), dtype=np.int64)
        self._mark = np.full(nc, -1, dtype=np.int64)
        self._gain = np.zeros(nm)
        self._passive = np.zeros(nm)
        self._tau = np.zeros(nc)

    def _solved_indices(self, crossed: np.ndarray) -> list[int]:
        """Coordinates the QP solves (coordinate order): ``params.solved_coordinates``, validated, or every
        non-root coordinate that muscles cross."""
        nc = self.n_coordinates
        if self.params.solved_coordinates is None:
            solved = [k for k in range(nc) if not self._root_mask[k] and crossed[k]]
        else:
            solved = []
            for name in self.params.solved_coordinates:
                k = _index(self.coordinate_names, name, "independent coordinate")
                if self._root_mask[k]:
                    raise ValueError(f"solved_coordinates: {name!r} belongs to the free root, which static "
                                     f"optimisation leaves to the inverse-dynamics residual")
                if not crossed[k]:
                    raise ValueError(f"solved_coordinates: no muscle crosses {name!r}")
                solved.append(k)
            solved = sorted(set(solved))
        return solved

    def _reserves(self, solved: list[int]) -> None:
        """Public solved / reserve-only coordinates and the reserve penalties ``w_res / tau_scale^2``."""
        nc = self.n_coordinates
        #: public order: coordinate order
        self.solved_index = np.array(solved, dtype=np.int64)
        self.solved_coordinates = tuple(self.coordinate_names[k] for k in solved)
        self.reserve_only_coordinates = tuple(self.coordinate_names[k] for k in range(nc)
                                              if not self._root_mask[k] and k not in set(solved))
        scales = {name: self.params.reserve_scale_nm for name in self.solved_coordinates}
        for name, v in self.params.reserve_scale_by_coordinate:
            if name not in scales:
                _index(self.solved_coordinates, name, "solved coordinate")  # raises with close matches
            scales[name] = v
        self.reserve_scale_nm = np.array([scales[n] for n in self.solved_coordinates], dtype=float)
        self.reserve_penalty = self.params.reserve_weight / self.reserve_scale_nm ** 2

    def _solver_buffers(self, pattern: np.ndarray) -> None:
        """The solver's internal coordinate order and its preallocated arrays."""
        nc, nm = self.n_coordinates, self.n_muscles
        # internal order: reverse Cuthill-McKee on the "crossed by the same muscle" graph keeps the Cholesky factor
        # of the dual Hessian inside a small envelope (MyoLeg: two 7x7 legs; MyoFullBody: ~8k flops, against ~30k in
        # the natural order and ~120k dense)
        order = self._solver_order(pattern[:, self.solved_index])
        self._solved = self.solved_index[order]
        self._P = self.reserve_penalty[order].copy()
        self._hp = 0.5 / self._P
        self._pos = np.full(nc, -1, dtype=np.int64)
        self._pos[self._solved] = np.arange(self._solved.size)
        self._is_solved = self._pos >= 0

        ns = self._solved.size
        self._Ct = np.zeros((nm, ns))
        self._nzcnt = np.zeros(nm, dtype=np.int64)
        self._nzidx = np.zeros((nm, max(ns, 1)), dtype=np.int64)
        self._env = np.zeros(ns, dtype=np.int64)
        self._b = np.zeros(ns)
        self._lam = np.zeros(ns)
        self._a = np.zeros(nm)
        self._g = np.zeros(ns)
        self._r = np.zeros(ns)
        self._u = np.zeros(nm)
        self._cls = np.zeros(nm, dtype=np.int8)
        self._delta = np.zeros(nm)
        self._bkey = np.zeros(2 * nm)
        self._bval = np.zeros(2 * nm)
        self._H = np.zeros((ns, ns))
        self._d = np.zeros(ns)
        self._fidx = np.zeros(nm, dtype=np.int64)
        self._have_warm = False
        self._tol = float(self.params.tolerance)
        self._max_iter = int(self.params.max_iterations)
        self._apply = bool(self.params.apply_couplings)
        self._warm = bool(self.params.warm_start)

    @staticmethod
    def _solver_order(pattern: np.ndarray) -> np.ndarray:
        """Permutation of the solved coordinates (reverse Cuthill-McKee of ``pattern' pattern``)."""
        n = pattern.shape[1]
        if n < 3:
            return np.arange(n)
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        p = pattern.astype(np.int64)
        graph = csr_matrix((p.T @ p) > 0)
        return np.asarray(reverse_cuthill_mckee(graph, symmetric_mode=True), dtype=np.int64)

    # ---- sizes and allocation --------------------------------------------------------------------

    @property
    def n_muscles(self) -> int:
        return int(self.muscle_ids.size)

    @property
    def n_coordinates(self) -> int:
        return len(self.coordinate_names)

    def allocate_frame(self) -> SOFrame:
        nm, nc = self.n_muscles, self.n_coordinates
        return SOFrame(np.zeros(nm), np.zeros(nm), np.zeros(nc), np.zeros(nc), np.zeros(nc))

    def reset(self) -> None:
        """Forget the warm start: the next frame is solved from a cold start."""
        self._have_warm = False
        self._lam.fill(0.0)

    # ---- the muscle state of a frame -------------------------------------------------------------

    def _set_muscle_input(self, value: float) -> None:
        d = self.data
        if self._act_idx.size:
            d.act.put(self._act_idx, value)
        if self._ctrl_idx.size:
            d.ctrl.put(self._ctrl_idx, value)

    def _muscle_state(self) -> None:
        """From ``data.qpos``/``qvel``: transmission (moment arms), then forces at activation 1 and 0."""
        m, d = self.model, self.data
        mujoco.mj_kinematics(m, d)
        mujoco.mj_comPos(m, d)
        mujoco.mj_tendon(m, d)
        mujoco.mj_transmission(m, d)
        # actuator_velocity = moment @ qvel, the only velocity-stage quantity the muscle forces read (mj_fwdVelocity
        # would add CoM velocities, passive and bias forces: 15 % of the stage's MuJoCo time on MyoLeg)
        actuator_velocity(d.moment_rownnz, d.moment_rowadr, d.moment_colind, d.actuator_moment, d.qvel,
                          d.actuator_velocity)
        self._set_muscle_input(1.0)
        mujoco.mj_fwdActuation(m, d)
        np.copyto(self._F1, d.actuator_force)
        self._set_muscle_input(0.0)
        if self._bias_by_kernel:  # the muscles' act = 0 force is their bias, bit for bit (d.qfrc_actuator: act = 1)
            muscle_passive_force(d.actuator_length, self.muscle_ids, self._lengthrange, self._acc0, self._biasprm,
                                 d.actuator_force)
        else:
            mujoco.mj_fwdActuation(m, d)  # d.actuator_force is now the passive force F0

    def _crossed_coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates some muscle crosses (|moment arm| > 1e-6 at qpos0 or at one of a few random poses within
        the joint ranges), and the (n_muscles, n_coord) pattern of nonzero moment arms over those poses."""
        m, d = self.model, self.data
        rng = np.random.default_rng(20240607)
        peak = np.zeros(self.n_coordinates)
        pattern = np.zeros((self.n_muscles, self.n_coordinates), dtype=bool)
        dummy_tau = np.zeros(self.n_coordinates)
        scalar = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
        for sample in range(_N_SAMPLE_POSES + 1):
            q = m.qpos0.copy()
            if sample:
                for j in range(m.njnt):
                    if int(m.jnt_type[j]) in scalar:
                        lo, hi = m.jnt_range[j] if m.jnt_limited[j] else (-0.5, 0.5)
                        q[m.jnt_qposadr[j]] = rng.uniform(lo, hi)
            d.qpos[:] = q
            d.qvel[:] = 0.0
            couplings_kernel(d.qpos, d.qvel, dummy_tau, True, self._c_dep_qadr, self._c_dep_dof, self._c_ind_qadr,
                             self._c_ind_dof, self._c_x0, self._c_y0, self._c_coef, self._dof_factor)
            self._muscle_state()
            moment_arms(d.moment_rownnz, d.moment_rowadr, d.moment_colind, d.actuator_moment, self.muscle_ids,
                        self._dof_coord, self._dof_factor, self._R, self._rcnt, self._ridx, self._mark)
            absr = np.abs(self._R)
            np.maximum(peak, absr.max(axis=0), out=peak)
            pattern |= absr > 0.0
        return peak > _ACTUATED_MOMENT_ARM_M, pattern

    # ---- per frame -------------------------------------------------------------------------------

    def step(self, qpos: np.ndarray, qvel: np.ndarray, tau_coord: np.ndarray, out: SOFrame) -> None:
        """One frame: ``qpos`` (nq,), ``qvel`` (nv,), ``tau_coord`` (n_coord,) net coordinate moments (N m; ID's
        ``coordinate_force`` row) -> ``out`` (preallocated, overwritten).  Allocates no arrays.

        Non-finite input gives NaN outputs and ``status = STATUS_INVALID_INPUT`` (nothing is raised: check
        ``out.status``); the warm start is kept for the next frame.
        """
        t0 = time.perf_counter()
        d = self.data
        np.copyto(d.qpos, qpos)
        np.copyto(d.qvel, qvel)
        tau = self._tau
        np.copyto(tau, tau_coord)
        ok = couplings_kernel(d.qpos, d.qvel, tau, self._apply, self._c_dep_qadr, self._c_dep_dof, self._c_ind_qadr,
                              self._c_ind_dof, self._c_x0, self._c_y0, self._c_coef, self._dof_factor)
        if not ok:
            for arr in (out.activation, out.muscle_force_n, out.muscle_moment_nm, out.reserve_nm, out.residual_nm):
                arr.fill(np.nan)
            out.cost, out.iterations, out.status = math.nan, 0, STATUS_INVALID_INPUT
            out.solve_time_s = 0.0
            out.step_time_s = time.perf_counter() - t0
            return
        self._muscle_state()
        t1 = time.perf_counter()
        self._solve_state(d.moment_rownnz, d.moment_rowadr, d.moment_colind, d.actuator_moment, self._F1,
                          d.actuator_force, tau, out)
        t2 = time.perf_counter()
        out.solve_time_s = t2 - t1
        out.step_time_s = t2 - t0

    def _solve_state(self, rownnz: np.ndarray, rowadr: np.ndarray, colind: np.ndarray, moment: np.ndarray,
                     force_act1: np.ndarray, force_act0: np.ndarray, tau: np.ndarray, out: SOFrame) -> None:
        """The numba part of :meth:`step` on a muscle state given as MuJoCo arrays: the sparse
        ``actuator_moment`` (``rownnz, rowadr, colind, moment``), ``actuator_force`` at activation 1 and 0 (N,
        actuator order), ``tau`` (n_coord,) with the couplings applied.  Fills ``out`` but its timings; warm-starts
        from (and updates) the previous call.  Also the entry of batched backends that compute the muscle state
        elsewhere (:mod:`models.muscles.warp_backend`)."""
        cold = not (self._warm and self._have_warm)
        it, status, cost = solve_frame(
            rownnz, rowadr, colind, moment, self.muscle_ids, self._dof_coord, self._dof_factor, self._R, self._rcnt,
            self._ridx, self._mark, force_act1, force_act0, tau, self._solved, self._pos, self._gain, self._passive,
            self._Ct, self._nzcnt, self._nzidx, self._env, self._b, self._hp, self._lam, cold, self._max_iter,
            self._tol, self._a, self._g, self._r, self._u, self._cls, self._delta, self._bkey, self._bval, self._H,
            self._d, self._fidx, self._P, self._is_solved, out.activation, out.muscle_force_n, out.muscle_moment_nm,
            out.reserve_nm, out.residual_nm)
        self._have_warm = True
        out.cost = cost
        out.iterations = it
        out.status = status

    def problem(self, qpos: np.ndarray, qvel: np.ndarray, tau_coord: np.ndarray) -> SOProblem:
        """The QP of one frame (copies; allocates): for cross-checks with other solvers and for inspection."""
        d = self.data
        np.copyto(d.qpos, qpos)
        np.copyto(d.qvel, qvel)
        tau = np.array(tau_coord, dtype=float)
        if not couplings_kernel(d.qpos, d.qvel, tau, self._apply, self._c_dep_qadr, self._c_dep_dof,
                                self._c_ind_qadr, self._c_ind_dof, self._c_x0, self._c_y0, self._c_coef,
                                self._dof_factor):
            raise ValueError("problem(): qpos, qvel and tau_coord must be finite")
        self._muscle_state()
        nm, nc = self.n_muscles, self.n_coordinates
        R, rcnt, ridx = np.zeros((nm, nc)), np.zeros(nm, dtype=np.int64), np.zeros((nm, nc), dtype=np.int64)
        moment_arms(d.moment_rownnz, d.moment_rowadr, d.moment_colind, d.actuator_moment, self.muscle_ids,
                    self._dof_coord, self._dof_factor, R, rcnt, ridx, np.full(nc, -1, dtype=np.int64))
        ns = self.solved_index.size
        Ct, b = np.zeros((nm, ns)), np.zeros(ns)
        gain, passive = np.zeros(nm), np.zeros(nm)
        pos = np.full(nc, -1, dtype=np.int64)
        pos[self.solved_index] = np.arange(ns)
        assemble(R, rcnt, ridx, self._F1, d.actuator_force, self.muscle_ids, tau, self.solved_index, pos, gain,
                 passive, Ct, np.zeros(nm, dtype=np.int64), np.zeros((nm, max(ns, 1)), dtype=np.int64),
                 np.zeros(ns, dtype=np.int64), b)
        return SOProblem(C=np.ascontiguousarray(Ct.T), b=b, reserve_penalty=self.reserve_penalty.copy(),
                         moment_arm_m=R, active_force_n=gain, passive_force_n=passive,
                         solved_index=self.solved_index.copy())

    # ---- whole trial -----------------------------------------------------------------------------

    def run(self, qpos: np.ndarray, qvel: np.ndarray, tau: np.ndarray,
            after_step: Callable[[int, SOFrame], None] | None = None, *, compiled: bool = True) -> SOTrial:
        """Whole trial: ``qpos`` (N, nq), ``qvel`` (N, nv), ``tau`` (N, n_coord) -> :class:`SOTrial`.

        Starts cold (:meth:`reset`) and goes through :meth:`step` frame by frame, so it equals a fresh stage
        stepping the same frames. ``after_step(i, frame)``, when given, runs after frame ``i`` while ``self.data``
        still holds that frame's state (the fused contact stage reads the muscle paths there); its time counts in
        the trial's total.  Without a hook and with ``compiled`` (default) the same frame loop runs in numba calling
        MuJoCo's C API (:mod:`models.muscles.compiled_so`, bit-identical) where that is available.
        """
        qpos = np.asarray(qpos, dtype=float)
        qvel = np.asarray(qvel, dtype=float)
        tau = np.asarray(tau, dtype=float)
        n = qpos.shape[0] if qpos.ndim == 2 else -1
        m = self.model
        if qpos.shape != (n, m.nq) or qvel.shape != (n, m.nv) or tau.shape != (n, self.n_coordinates):
            raise ValueError(f"run expects qpos (N, {m.nq}), qvel (N, {m.nv}), tau (N, {self.n_coordinates}) "
                             f"(columns {self.coordinate_names[:3]}...); got {qpos.shape}, {qvel.shape}, "
                             f"{tau.shape}")
        if compiled and after_step is None:
            trial = run_compiled(self, qpos, qvel, tau, STATUS_INVALID_INPUT, SOTrial)
            if trial is not None:
                return trial
        nm, nc = self.n_muscles, self.n_coordinates
        act, force = np.zeros((n, nm)), np.zeros((n, nm))
        mom, res, resid = np.zeros((n, nc)), np.zeros((n, nc)), np.zeros((n, nc))
        cost, its, st = np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        ts, tstep = np.zeros(n), np.zeros(n)
        self.reset()
        t0 = time.perf_counter()
        for i in range(n):
            fr = SOFrame(act[i], force[i], mom[i], res[i], resid[i])
            self.step(qpos[i], qvel[i], tau[i], fr)
            cost[i], its[i], st[i], ts[i], tstep[i] = fr.cost, fr.iterations, fr.status, fr.solve_time_s, \
                fr.step_time_s
            if after_step is not None:
                after_step(i, fr)
        total = time.perf_counter() - t0
        return SOTrial(act, force, mom, res, resid, cost, its, st, ts, tstep, total, self.muscle_names,
                       self.coordinate_names, self.solved_coordinates, self.reserve_only_coordinates,
                       self.root_coordinates)
