"""Marker-based inverse kinematics for a MuJoCo musculoskeletal model (MyoLeg).

Problem (one frame)
-------------------
Given measured marker positions ``m_i`` (world frame, z up, metres; NaN = missing) and a
:class:`~models.body.markerset.MarkerSet` placing marker ``i`` on body ``b_i`` at offset ``o_i`` (body frame),
find the generalised coordinates ``q`` minimising

    C(q) = sum_i w_i || m_i - p_i(q) ||^2,     p_i(q) = xpos_{b_i}(q) + xmat_{b_i}(q) o_i,

over the solved degrees of freedom only: the free root (pelvis translation + rotation, 6 dofs) and the
coordinates in :attr:`IKParams.coordinates` (default: hip flexion/adduction/rotation, knee angle and
ankle angle of both legs, as in the lab's OpenSim IK, which locks subtalar and mtp).  Every other dof
keeps its ``qpos0`` value, except coordinates that a MuJoCo joint equality ties to a solved one (MyoLeg's
knee translations, secondary knee rotations and patella, all polynomials of ``knee_angle_*``): those are
set exactly from the polynomial, and their Jacobian columns are folded into the independent coordinate's
column by the chain rule, ``J_eff[:, knee] = J[:, knee] + sum_k dpoly_k/dq J[:, dep_k]``.

Method: Gauss-Newton with Levenberg damping and box constraints.  Each iteration evaluates the marker
points (``mj_kinematics``, ``mj_comPos``), their 3 x nv Jacobians with ``mujoco.mj_jac``, and solves

    (J^T W J + lambda I) dq = J^T W e,      lo - q <= dq <= hi - q  (joint ranges, ``jnt_range``)

with a small active-set loop (coordinates whose step would cross a limit are pinned at the limit and
the rest re-solved).  The step is capped (``max_step_rad``, ``max_step_m``), applied with
``mj_integratePos`` (quaternion-safe for the free root) and clamped to the ranges, so limits are never
exceeded.  A step that raises the cost is undone and lambda multiplied by 10.  Converged when
``max |dq| < tolerance``; at most ``max_iterations`` iterations (``initial_max_iterations`` for a cold
start).

Frames: ``step`` takes markers in the **world frame, z up** (x forward, y left in the lab's convention).
``run`` takes a :class:`~models.io.marker_trial.MarkerTrial` and its ``source_frame``: ``"opensim_y_up"`` for
``.trc`` files (converted with :func:`~models.io.axes.opensim_to_z_up`) or ``"z_up"``.  MyoLeg with its
free root at identity faces world -y (left = +x); the solved root quaternion includes that yaw.
The pelvis angles in :attr:`InverseKinematics.coordinate_names` are OpenSim's ``ground_pelvis``
coordinates (body-fixed Z-X-Y: tilt, list, rotation) of the pelvis frame in OpenSim's ground
(x forward, y up, z right, i.e. the inverse of ``opensim_to_z_up``), so they compare directly with a
lab ``.mot``; ``pelvis_t[xyz]`` is the pelvis origin in that ground frame.

Cold start (first frame, after :meth:`InverseKinematics.reset`, or when a warm start ends with an RMS
error above ``reinit_rms_m``): the root pose is fitted to the markers rigid with the pelvis by Kabsch
(SVD) on their neutral-pose positions, the legs start at ``qpos0``, then up to ``initial_max_iterations``;
if the RMS error is still above ``reinit_rms_m`` the legs are restarted from the middle and then 3/4 of
their ranges (deep flexion) and the best fit is kept (from random poses anywhere in the ranges, qpos0
alone lands in a wrong minimum about 1 time in 100, e.g. hip 110 deg with knee 120 deg).
With fewer than 3 pelvis markers the root is placed at the centroid of the visible markers with the
heading ``initial_heading_rad``.

Speed: by default the Gauss-Newton loop and the warm frames of :meth:`InverseKinematics.run` and
:meth:`InverseKinematics.step` run compiled (:mod:`models.kinematics.compiled_ik`: numba, body-only kinematics,
MuJoCo's C API for the position integration; same iterations and flags, coordinates equal to rounding; about
0.05 ms a frame in ``run`` on the shared trials against 0.5-0.6 ms here); ``use_compiled=False``, or a MuJoCo
without a usable C API, keeps this module's Python loop (the reference).

Missing markers are dropped for the frame (status ``MARKERS_MISSING``); with fewer than ``min_markers``
the frame is not solved, the previous pose is held and flagged ``TOO_FEW_MARKERS`` (residuals NaN).
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

import mujoco
import numpy as np

from models.body.markerset import MarkerSet, _as_mjmodel
from models.io.axes import opensim_to_z_up
from models.kinematics import compiled_ik
from models.kinematics.ik_types import PELVIS_COORDINATES, SOURCE_FRAMES, IKFrame, IKParams, IKStatus, IKTrial
from models.kinematics.joint_equalities import JointEqualities
from models.kinematics.marker_matching import match_marker_names
from models.kinematics.opensim_pelvis import pelvis_opensim
from models.kinematics.step_solvers import box_constrained_solve, kabsch

__all__ = [
    "InverseKinematics",
    "load_myoleg",
]

_HINGE_SLIDE = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))


# --------------------------------------------------------------------------------------------------
# model loading (swap for models.body.registry once it exists)
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def load_myoleg() -> mujoco.MjModel:
    """MyoLeg (nq 35, nv 34, 80 muscles, free root), built once per process (about 2 s).

    Uses ``models.body.registry.load_model("myoleg")`` when that module exists, else ``myo_sim`` directly.
    Treat the result as read-only: it is shared.
    """
    try:
        from models.body.registry import load_model  # type: ignore[import-not-found]
    except ImportError:
        load_model = None
    if load_model is not None:
        return _as_mjmodel(load_model("myoleg"))
    import warnings

    import myo_sim

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Attaching a spec with an empty prefix")
        return myo_sim.load_model("myolegs")


def _record(out: compiled_ik.IKOut, k: int, f: IKFrame) -> None:
    """Frame ``f`` into row ``k`` of a trial's outputs."""
    out.coords[k] = f.coordinates
    out.qpos[k] = f.qpos
    out.rms[k], out.mx[k], out.used[k], out.iters[k], out.status[k] = (
        f.residual_rms_m, f.residual_max_m, f.markers_used, f.iterations, int(f.status),
    )
    out.err[k] = f.marker_error_m


# --------------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------------


class InverseKinematics:
    """Per-frame marker IK (warm-started) with a batch method; see the module docstring.

    ``model``: an ``MjModel`` (or an object with ``.mj_model``) with one free joint; ``markerset``: where
    the markers sit on its bodies; ``params``: :class:`IKParams`.  The instance owns its ``MjData`` and
    all (M, 3, nv)-sized work buffers; one instance per thread.  What still allocates per iteration is a
    handful of n-sized temporaries (the LAPACK solve, the limit checks), n = 6 + len(coordinates).

    ``use_compiled``: the compiled loop (:mod:`models.kinematics.compiled_ik`) where it can run, else the Python
    reference (``compiled_reason`` says why not; empty when compiled).

    Attributes: ``marker_names`` (the order ``step`` expects), ``solved_coordinates``,
    ``coordinate_names`` (= ``PELVIS_COORDINATES + solved_coordinates``), ``coordinate_limits``.
    """

    def __init__(self, model: Any, markerset: MarkerSet, params: IKParams = IKParams(),
                 use_compiled: bool = True) -> None:
        m = _as_mjmodel(model)
        if not isinstance(m, mujoco.MjModel):
            raise TypeError(
                f"model must be a mujoco.MjModel or wrap one in .mj_model, got {type(model).__name__}"
            )
        if len(markerset) == 0:
            raise ValueError("the marker set is empty")
        self.model = m
        self.data = mujoco.MjData(m)
        self.params = params
        self.markerset = markerset
        self.marker_names: tuple[str, ...] = markerset.names
        self._body = markerset.body_ids(m)
        self._offset = np.ascontiguousarray(markerset.offsets_m)
        unknown = sorted(set(params.marker_weights) - set(self.marker_names))
        if unknown:
            raise KeyError(
                f"IKParams.marker_weights names markers not in the set: {unknown}; "
                f"markers: {list(self.marker_names)}"
            )
        self._weight = np.array([params.marker_weights.get(n, 1.0) for n in self.marker_names])
        root_dof = self._find_root()
        coord_jnt = self._select_coordinates(root_dof)
        self._couple_equalities(coord_jnt)
        self._find_pelvis()
        self._allocate_buffers()
        self._rigid_root_markers()
        self._initialised = False
        ok, why = compiled_ik.available(m) if use_compiled else (False, "use_compiled=False")
        #: the compiled Gauss-Newton loop (models.kinematics.compiled_ik) or None (Python loop); why not
        self._cik = compiled_ik.CompiledIK(self) if ok else None
        self.compiled_reason: str = "" if ok else why

    def _find_root(self) -> int:
        """The one free joint (the root): its joint, body and qpos address; returns its first dof."""
        m = self.model
        free = [j for j in range(m.njnt) if int(m.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_FREE)]
        if len(free) != 1:
            raise ValueError(f"the model must have exactly one free joint (the root), found {len(free)}")
        self._root_jnt = free[0]
        self._root_body = int(m.jnt_bodyid[self._root_jnt])
        root_dof, root_qadr = int(m.jnt_dofadr[self._root_jnt]), int(m.jnt_qposadr[self._root_jnt])
        self._root_qadr = root_qadr
        return root_dof

    def _select_coordinates(self, root_dof: int) -> list[int]:
        """The solved dofs (root, then :attr:`IKParams.coordinates`, validated), rotational flags and ranges;
        returns the joints of the solved coordinates."""
        m, params = self.model, self.params
        names = [m.joint(j).name for j in range(m.njnt)]
        dependents = {
            int(m.eq_obj1id[e])
            for e in range(m.neq)
            if int(m.eq_type[e]) == int(mujoco.mjtEq.mjEQ_JOINT) and bool(m.eq_active0[e])
        }
        sel = list(range(root_dof, root_dof + 6))
        rot = [False, False, False, True, True, True]
        lo = [-math.inf] * 6
        hi = [math.inf] * 6
        coord_jnt = []
        for c in params.coordinates:
            if c not in names:
                hinge = [
                    n for j, n in enumerate(names) if int(m.jnt_type[j]) in _HINGE_SLIDE and j not in dependents
                ]
                raise KeyError(f"IKParams.coordinates: the model has no joint {c!r}; solvable joints: {hinge}")
            j = names.index(c)
            if int(m.jnt_type[j]) not in _HINGE_SLIDE:
                raise ValueError(f"IKParams.coordinates: {c!r} is not a hinge or slide joint")
            if j in dependents:
                raise ValueError(
                    f"IKParams.coordinates: {c!r} is set by a joint equality from another coordinate; solve that one"
                )
            coord_jnt.append(j)
            sel.append(int(m.jnt_dofadr[j]))
            rot.append(int(m.jnt_type[j]) == int(mujoco.mjtJoint.mjJNT_HINGE))
            if bool(m.jnt_limited[j]):
                lo.append(float(m.jnt_range[j, 0]))
                hi.append(float(m.jnt_range[j, 1]))
            else:
                lo.append(-math.inf)
                hi.append(math.inf)
        self.solved_coordinates: tuple[str, ...] = tuple(params.coordinates)
        self.coordinate_names: tuple[str, ...] = PELVIS_COORDINATES + self.solved_coordinates
        self._sel = np.array(sel, dtype=np.int64)
        self._rot = np.array(rot, dtype=bool)
        self._lo = np.array(lo)
        self._hi = np.array(hi)
        self._coord_qadr = np.array([int(m.jnt_qposadr[j]) for j in coord_jnt], dtype=np.int64)
        self._coord_lo = self._lo[6:].copy()
        self._coord_hi = self._hi[6:].copy()
        n = len(sel)
        self._n = n
        return coord_jnt

    def _couple_equalities(self, coord_jnt: list[int]) -> None:
        """Joint equalities and the selection matrix ``S``."""
        m, n = self.model, self._n
        # --- joint equalities; those whose independent coordinate is solved enter the Jacobian through
        # the selection matrix S (nv, n): J_eff = J_full @ S, S[sel_k, k] = 1, S[dep, k(ind)] = dq_dep/dq_ind
        self._eq = JointEqualities(m)
        coupled = [
            (i, 6 + coord_jnt.index(int(j2))) for i, j2 in enumerate(self._eq.ind_jnt) if int(j2) in coord_jnt
        ]
        self._cpl_eq = np.array([i for i, _ in coupled], dtype=np.int64)
        self._cpl_sel = np.array([k for _, k in coupled], dtype=np.int64)
        self._cpl_dof = self._eq.dep_dof[self._cpl_eq]
        self._cpl_deriv = np.zeros(len(self._eq.dep_qadr))
        self._S = np.zeros((m.nv, n))
        self._S[self._sel, np.arange(n)] = 1.0

    def _find_pelvis(self) -> None:
        """The body whose frame gives the OpenSim pelvis coordinates."""
        m, params = self.model, self.params
        try:
            self._pelvis_body = m.body(params.pelvis_body).id
        except KeyError:
            bodies = [m.body(i).name for i in range(m.nbody)]
            raise KeyError(f"IKParams.pelvis_body: no body {params.pelvis_body!r}; bodies: {bodies}") from None

    def _allocate_buffers(self) -> None:
        """State, cold-start seeds and every (M, 3, nv)-sized work buffer."""
        m, n, M = self.model, self._n, len(self.marker_names)
        nv = m.nv
        self._q = np.array(m.qpos0, dtype=float)
        self._eq.apply(self._q)
        self._q_prev = self._q.copy()
        self._q_try = self._q.copy()
        self._q_best = self._q.copy()
        # cold-start seeds for the solved coordinates: qpos0, then 1/2 and 3/4 of each finite range
        fin = np.isfinite(self._coord_lo) & np.isfinite(self._coord_hi)
        q0c = np.array(m.qpos0)[self._coord_qadr]
        self._cold_seeds: list[np.ndarray | None] = [None] + [
            np.where(fin, self._coord_lo + f * np.where(fin, self._coord_hi - self._coord_lo, 0.0), q0c)
            for f in (0.5, 0.75)
        ]
        self._q_last = self._q.copy()  # previous frame's solution
        self._v = np.zeros(nv)  # last inter-frame step (tangent space)
        self._have_v = False
        self._target = np.zeros((M, 3))
        self._P = np.zeros((M, 3))
        self._E = np.zeros((M, 3))
        self._err = np.zeros(M)
        self._used = np.zeros(M, dtype=bool)
        self._w = np.zeros(M)
        self._xmat_b = np.zeros((M, 9))
        self._xpos_b = np.zeros((M, 3))
        self._jac = np.zeros((M, 3, nv))
        self._J = np.zeros((M, 3, n))
        self._JW = np.zeros((M, 3, n))
        self._A = np.zeros((n, n))
        self._b = np.zeros(n)
        self._dq = np.zeros(n)
        self._dq_full = np.zeros(nv)
        self._dlo = np.zeros(n)
        self._dhi = np.zeros(n)
        self._fixed = np.zeros(n, dtype=bool)
        self._usedf = np.zeros(M)
        self._used_idx: list[int] = []
        # per-marker views for the mj_jac loop (no slicing per call)
        self._jac_rows = [self._jac[i] for i in range(M)]
        self._P_rows = [self._P[i] for i in range(M)]
        self._body_list = [int(b) for b in self._body]
        self._rot_idx = np.flatnonzero(self._rot)
        self._trans_idx = np.flatnonzero(~self._rot)

    def _rigid_root_markers(self) -> None:
        """Markers rigid with the root body, and every marker's neutral-pose position in the root frame."""
        m, M, root_qadr = self.model, len(self.marker_names), self._root_qadr
        rigid = np.zeros(M, dtype=bool)
        for i, b in enumerate(self._body):
            b = int(b)
            ok = True
            while b != self._root_body and b != 0:
                if m.body_jntnum[b] > 0:
                    ok = False
                    break
                b = int(m.body_parentid[b])
            rigid[i] = ok and b == self._root_body
        self._rigid = rigid
        q0 = np.array(m.qpos0, dtype=float)
        q0[root_qadr:root_qadr + 3] = 0.0
        q0[root_qadr + 3:root_qadr + 7] = (1.0, 0.0, 0.0, 0.0)
        self._eq.apply(q0)
        self._neutral_root_local = self._marker_positions(q0).copy()

    # ------------------------------------------------------------------------------------------
    # public
    # ------------------------------------------------------------------------------------------

    def new_frame(self) -> IKFrame:
        """A preallocated output for :meth:`step`."""
        M = len(self.marker_names)
        return IKFrame(
            qpos=np.array(self._q),
            coordinates=np.full(len(self.coordinate_names), np.nan),
            marker_error_m=np.full(M, np.nan),
            marker_used=np.zeros(M, dtype=bool),
        )

    def reset(self) -> None:
        """Forget the previous solution: the next frame is solved from a cold start."""
        self._q[:] = self.model.qpos0
        self._eq.apply(self._q)
        self._initialised = False
        self._have_v = False

    def marker_positions(self, qpos: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(M, 3) world positions (z up, m) of the markers for a full ``qpos`` (forward kinematics;
        joint equalities are applied to a copy first).  Allocates; for tests and tools."""
        q = np.array(qpos, dtype=float)
        self._eq.apply(q)
        p = self._marker_positions(q)
        if out is None:
            return p.copy()
        out[...] = p
        return out

    def marker_jacobian(self, qpos: np.ndarray, positions_out: np.ndarray | None = None) -> np.ndarray:
        """(M, 3, n) Jacobian of the marker world positions with respect to the solved dofs (free root:
        world translation then body-frame rotation; then :attr:`solved_coordinates`), coupled coordinates
        folded in by the chain rule; exactly what :meth:`step` uses.  Allocates; for tests and tools.
        ``positions_out`` (M, 3), if given, receives the marker positions at ``qpos`` (saves a second
        forward-kinematics pass)."""
        m, d = self.model, self.data
        q = np.array(qpos, dtype=float)
        self._eq.apply(q)
        self._marker_positions(q)
        if positions_out is not None:
            positions_out[...] = self._P
        mujoco.mj_comPos(m, d)
        for i in range(len(self.marker_names)):
            mujoco.mj_jac(m, d, self._jac_rows[i], None, self._P_rows[i], self._body_list[i])
        if self._cpl_eq.size:
            self._eq.derivative(q, self._cpl_deriv)
            self._S[self._cpl_dof, self._cpl_sel] = self._cpl_deriv[self._cpl_eq]
        return (self._jac.reshape(-1, m.nv) @ self._S).reshape(len(self.marker_names), 3, self._n)

    @property
    def coordinate_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of :attr:`solved_coordinates` (rad or m; +-inf where a joint is unlimited)."""
        return self._coord_lo.copy(), self._coord_hi.copy()

    def step(self, markers_m: np.ndarray, out: IKFrame) -> None:
        """Solve one frame.  ``markers_m``: (M, 3) world positions, z up, metres, in the order of
        :attr:`marker_names`, NaN for missing.  Fills ``out``; warm-starts from the previous frame."""
        M = len(self.marker_names)
        if markers_m.shape != (M, 3):
            raise ValueError(f"markers_m must have shape ({M}, 3) (order: marker_names), got {markers_m.shape}")
        if self._cik is not None and self._cik.step(markers_m, out):
            return
        p = self.params
        np.isfinite(markers_m).all(axis=1, out=self._used)
        self._used &= self._weight > 0
        n_used = int(self._used.sum())
        np.copyto(self._target, markers_m)
        np.copyto(self._usedf, self._used)
        np.nan_to_num(self._target, copy=False, nan=0.0)
        np.multiply(self._weight, self._usedf, out=self._w)
        self._used_idx = np.flatnonzero(self._used).tolist()
        status = IKStatus.OK
        if n_used < M:
            status |= IKStatus.MARKERS_MISSING
        if n_used < p.min_markers:
            status |= IKStatus.TOO_FEW_MARKERS
            self._have_v = False
            self._fill_unsolved(out, status)
            return

        if not self._initialised:
            status |= IKStatus.COLD_START
            it, conv, cost = self._cold_solve()
        else:
            if p.predict and self._have_v:
                mujoco.mj_integratePos(self.model, self._q, self._v, 1.0)
                cq = self._q[self._coord_qadr]
                np.clip(cq, self._coord_lo, self._coord_hi, out=cq)
                self._q[self._coord_qadr] = cq
                self._eq.apply(self._q)
            it, conv, cost = self._solve(p.max_iterations)
        self._warm_tail(out, status, it, conv, cost, n_used)

    def _warm_tail(self, out: IKFrame, status: IKStatus, it: int, conv: bool, cost: float, n_used: int) -> None:
        """After the (warm or cold) solve: re-initialise a poor warm result, then velocity, flags and ``out``."""
        if self._initialised and not (status & IKStatus.COLD_START) and self._rms() > self.params.reinit_rms_m:
            status |= IKStatus.REINITIALISED
            np.copyto(self._q_try, self._q)
            it2, conv2, cost2 = self._cold_solve()
            it += it2
            if cost2 <= cost:
                status |= IKStatus.COLD_START
                conv = conv2
            else:  # keep the warm result
                np.copyto(self._q, self._q_try)
                self._evaluate(self._q)
        if self._initialised and not (status & IKStatus.COLD_START):
            mujoco.mj_differentiatePos(self.model, self._v, 1.0, self._q_last, self._q)
            self._have_v = True
        else:
            self._have_v = False
        np.copyto(self._q_last, self._q)
        self._initialised = True
        if not conv:
            status |= IKStatus.NOT_CONVERGED
        q = self._q
        cq = q[self._coord_qadr]
        if np.any(cq <= self._coord_lo + 1e-9) or np.any(cq >= self._coord_hi - 1e-9):
            status |= IKStatus.AT_LIMIT
        np.copyto(out.qpos, q)
        out.coordinates[6:] = cq
        pelvis_opensim(self.data.xmat[self._pelvis_body], self.data.xpos[self._pelvis_body], out.coordinates)
        np.copyto(out.marker_used, self._used)
        np.copyto(out.marker_error_m, self._err)
        out.marker_error_m[~self._used] = np.nan
        out.residual_rms_m = self._rms()
        out.residual_max_m = float(self._err.max(where=self._used, initial=0.0))
        out.markers_used = n_used
        out.iterations = it
        out.converged = conv
        out.status = status

    def run(self, trial: Any, source_frame: str = "opensim_y_up") -> IKTrial:
        """Solve every frame of a marker trial (``MarkerTrial``: ``marker_names``, ``positions_m`` (N, M, 3),
        ``time_s``), cold-starting the first.  Trial columns are matched to the set by name
        (:func:`match_marker_names`).  ``source_frame``: ``"opensim_y_up"`` (``.trc``: x forward,
        y up, z right; converted with ``opensim_to_z_up``) or ``"z_up"`` (already in the world frame)."""
        if source_frame not in SOURCE_FRAMES:
            raise ValueError(f"source_frame {source_frame!r} not supported; valid: {list(SOURCE_FRAMES)}")
        pos = np.asarray(trial.positions_m, dtype=float)
        if source_frame == "opensim_y_up":
            pos = opensim_to_z_up(pos)
        names = list(trial.marker_names)
        N = pos.shape[0]
        M = len(self.marker_names)
        markers = np.full((N, M, 3), np.nan)
        match = match_marker_names(self.marker_names, names)
        for i, j in match.items():
            markers[:, i] = pos[:, j]
        missing = tuple(nm for i, nm in enumerate(self.marker_names) if i not in match)
        taken = set(match.values())
        unused = tuple(nm for j, nm in enumerate(names) if j not in taken)
        nc = len(self.coordinate_names)
        coords = np.full((N, nc), np.nan)
        qpos = np.zeros((N, self.model.nq))
        rms = np.full(N, np.nan)
        mx = np.full(N, np.nan)
        used = np.zeros(N, dtype=np.int64)
        iters = np.zeros(N, dtype=np.int64)
        status = np.zeros(N, dtype=np.int64)
        err = np.full((N, M), np.nan)
        dt = np.zeros(N)
        self.reset()
        f = self.new_frame()
        out = compiled_ik.IKOut(coords, qpos, rms, mx, used, iters, status, err, dt)
        if self._cik is not None:
            self._cik.run(markers, out, f, _record)
        else:
            for k in range(N):
                t0 = time.perf_counter()
                self.step(markers[k], f)
                dt[k] = time.perf_counter() - t0
                _record(out, k, f)
        return IKTrial(
            time_s=np.asarray(trial.time_s, dtype=float).copy(),
            marker_names=self.marker_names,
            coordinate_names=self.coordinate_names,
            coordinates=coords,
            qpos=qpos,
            residual_rms_m=rms,
            residual_max_m=mx,
            markers_used=used,
            iterations=iters,
            status=status,
            marker_error_m=err,
            solve_time_s=dt,
            markers_not_in_trial=missing,
            trial_markers_unused=unused,
        )

    # ------------------------------------------------------------------------------------------
    # internals
    # ------------------------------------------------------------------------------------------

    def _fill_unsolved(self, out: IKFrame, status: IKStatus) -> None:
        np.copyto(out.qpos, self._q)
        if self._initialised:
            out.coordinates[6:] = self._q[self._coord_qadr]
            self.data.qpos[:] = self._q
            mujoco.mj_kinematics(self.model, self.data)
            pelvis_opensim(self.data.xmat[self._pelvis_body], self.data.xpos[self._pelvis_body], out.coordinates)
        else:
            out.coordinates[:] = np.nan
        np.copyto(out.marker_used, self._used)
        out.marker_error_m[:] = np.nan
        out.residual_rms_m = math.nan
        out.residual_max_m = math.nan
        out.markers_used = int(self._used.sum())
        out.iterations = 0
        out.converged = False
        out.status = status

    def _marker_positions(self, q: np.ndarray) -> np.ndarray:
        """Kinematics at q (already coupled) into self.data; returns self._P (M, 3)."""
        d = self.data
        d.qpos[:] = q
        mujoco.mj_kinematics(self.model, d)
        np.take(d.xmat, self._body, axis=0, out=self._xmat_b)
        np.take(d.xpos, self._body, axis=0, out=self._xpos_b)
        np.einsum("mij,mj->mi", self._xmat_b.reshape(-1, 3, 3), self._offset, out=self._P)
        self._P += self._xpos_b
        return self._P

    def _evaluate(self, q: np.ndarray) -> float:
        """Marker errors at q; returns the weighted cost.  Leaves kinematics in self.data."""
        self._marker_positions(q)
        np.subtract(self._target, self._P, out=self._E)
        self._E *= self._usedf[:, None]
        np.einsum("mi,mi->m", self._E, self._E, out=self._err)
        cost = float(self._w @ self._err)
        np.sqrt(self._err, out=self._err)
        return cost

    def _rms(self) -> float:
        n = int(self._used.sum())
        if n == 0:
            return math.nan
        return math.sqrt(float(np.dot(self._err, self._err)) / n)  # unused markers have err = 0

    def _cold_solve(self) -> tuple[int, bool, float]:
        """Root by Kabsch, legs from a few seeds (qpos0, then mid-range, then 3/4 of the range) until the
        RMS error is below ``reinit_rms_m``; the best is kept.  Returns summed iterations."""
        total_it, best_cost, best_conv = 0, math.inf, False
        for seed in self._cold_seeds:
            self._cold_root(seed)
            it, conv, cost = self._solve(self.params.initial_max_iterations)
            total_it += it
            if cost < best_cost:
                best_cost, best_conv = cost, conv
                np.copyto(self._q_best, self._q)
            if self._rms() <= self.params.reinit_rms_m:
                return total_it, conv, cost
        np.copyto(self._q, self._q_best)
        best_cost = self._evaluate(self._q)
        return total_it, best_conv, best_cost

    def _cold_root(self, seed: np.ndarray | None) -> None:
        m = self.model
        q = self._q
        q[:] = m.qpos0
        if seed is not None:
            q[self._coord_qadr] = seed
        use = self._used & self._rigid
        a = self._neutral_root_local
        if int(use.sum()) >= 3:
            r, t = kabsch(a[use], self._target[use])
        else:
            h = self.params.initial_heading_rad
            r = np.array([[math.cos(h), -math.sin(h), 0.0], [math.sin(h), math.cos(h), 0.0], [0.0, 0.0, 1.0]])
            u = self._used
            t = self._target[u].mean(axis=0) - r @ a[u].mean(axis=0)
        qa = self._root_qadr
        q[qa:qa + 3] = t
        mujoco.mju_mat2Quat(q[qa + 3:qa + 7], r.reshape(-1))
        self._eq.apply(q)

    def _solve(self, max_iter: int) -> tuple[int, bool, float]:
        """Damped Gauss-Newton from self._q (in place).  Returns (iterations, converged, cost).  The compiled
        loop (:mod:`models.kinematics.compiled_ik`) when enabled, else this Python reference."""
        if self._cik is not None:
            return self._cik.solve(max_iter)
        m, d, p = self.model, self.data, self.params
        q, q_prev = self._q, self._q_prev
        lam = p.damping_m2
        cost = self._evaluate(q)
        np.copyto(q_prev, q)
        converged = False
        it = 0
        for it in range(1, max_iter + 1):
            # Jacobians of the used marker points, then J_eff = J_full @ S (selection + chain rule)
            mujoco.mj_comPos(m, d)
            jr, pr, br = self._jac_rows, self._P_rows, self._body_list
            for i in self._used_idx:
                mujoco.mj_jac(m, d, jr[i], None, pr[i], br[i])
            if self._cpl_eq.size:
                self._eq.derivative(q, self._cpl_deriv)
                self._S[self._cpl_dof, self._cpl_sel] = self._cpl_deriv[self._cpl_eq]
            n = self._n
            J2 = self._J.reshape(-1, n)
            np.matmul(self._jac.reshape(-1, m.nv), self._S, out=J2)
            np.multiply(self._J, self._w[:, None, None], out=self._JW)
            JW2 = self._JW.reshape(-1, n)
            np.matmul(JW2.T, J2, out=self._A)
            np.matmul(JW2.T, self._E.reshape(-1), out=self._b)
            self._A.flat[:: n + 1] += lam
            self._box_step(q)
            dq = self._dq
            dmax = float(np.abs(dq).max())
            if dmax < p.tolerance:
                converged = True
                break
            # cap the step
            rmax = float(np.abs(dq[self._rot_idx]).max(initial=0.0))
            tmax = float(np.abs(dq[self._trans_idx]).max(initial=0.0))
            s = min(1.0, p.max_step_rad / rmax if rmax > 0 else 1.0, p.max_step_m / tmax if tmax > 0 else 1.0)
            if s < 1.0:
                dq *= s
            np.copyto(q_prev, q)
            self._dq_full[:] = 0.0
            self._dq_full[self._sel] = dq
            mujoco.mj_integratePos(m, q, self._dq_full, 1.0)
            cq = q[self._coord_qadr]
            np.clip(cq, self._coord_lo, self._coord_hi, out=cq)
            q[self._coord_qadr] = cq
            self._eq.apply(q)
            new_cost = self._evaluate(q)
            if new_cost > cost * (1.0 + 1e-12) + 1e-18:
                # the linearisation overshot: undo, damp harder, retry from the previous point
                np.copyto(q, q_prev)
                cost = self._evaluate(q)
                lam *= 10.0
                if lam > 1e6:
                    break
            else:
                cost = new_cost
                lam = max(p.damping_m2, lam / 3.0)
        return it, converged, cost

    def _box_step(self, q: np.ndarray) -> None:
        """Solve (A) dq = b with lo - q <= dq <= hi - q by pinning violators at their limit (active set)."""
        cq = q[self._coord_qadr]
        self._dlo[:6] = -math.inf
        self._dhi[:6] = math.inf
        np.subtract(self._coord_lo, cq, out=self._dlo[6:])
        np.subtract(self._coord_hi, cq, out=self._dhi[6:])
        box_constrained_solve(self._A, self._b, self._dlo, self._dhi, self._fixed, self._dq)
