"""Kinematics -> inverse dynamics -> static optimisation -> knee contact, the whole trial in one compiled call.

The same computation as :class:`models.dynamics.inverse_dynamics.InverseDynamics`, :class:`models.muscles
.static_optimization.StaticOptimization` and :meth:`models.muscles.knee_contact.KneeContact.muscle_wrench_from_data`
frame by frame (same MuJoCo functions, same numba kernels, same order, warm-started in time), but the frame loop is
numba code that calls MuJoCo's C API directly (:mod:`models.dynamics.mj_capi`): no Python between MuJoCo calls, no
numba dispatch per frame, and one MuJoCo position stage per frame shared by ID and SO.

Sharing.  Both stages run on the static optimisation's ``MjData`` (their private models are copies of one model:
same sizes, same kinematic tree; only options, armature and gravity differ, none of which the position stage
reads).  Per frame: the raw state -> ``mj_kinematics`` (or, where it gives the same poses bit for bit on the
model -- checked once per chain, :attr:`CompiledChain.kinematics_kernel` -- the numba kernel of
:mod:`models.dynamics.compiled_kinematics`, which computes only the sites and geoms the tendons and actuators read:
324 of GC5's 1060 sites; the other sites' and geoms' poses in the SO data are then stale), ``mj_comPos`` -> ID's ``mj_crb``, ``mj_comVel``,
``mj_passive``, ``mj_inverseSkip`` (with ID's model) or plain ``mj_inverse`` when ID cannot skip the tendons -> the external loads
(``mj_applyFT``, ``xfrc_applied``) -> ``mj_rnePostConstraint`` -> SO's couplings on ``qpos``/``qvel``; if they moved
``qpos`` the kinematics are recomputed, else reused -> ``mj_tendon`` (or the tendon kernel,
:attr:`CompiledChain.tendon_kernel`: lengths and paths bit for bit, ``ten_J`` to 1e-12 of each row's largest entry,
the dofs shared by a segment's end points skipped: SO to 1e-9), ``mj_transmission``, the actuator velocities and
moment arms, the muscle forces at activation 1 and 0 (SO's model; :func:`models.muscles.compiled_so.so_frame`)
-> the QP -> the contact crossing sums on the same wrapping paths.  ID's outputs do not read the tendon fields,
so the results equal the separate stages' (tested: bit for bit on ID, SO and contact of a shared trial; SO to
1e-9 where the tendon kernel runs).  The
per-run constants of the stages (C pointers, the SO buffers, the contact's path tables) are built once per chain.

Threads (``workers=N``).  The frames split into ``min(N, frames)`` contiguous chunks of near-equal size, each run
by :func:`_trial` on its own chain state: the last chunk on the stage's own ``MjData`` and buffers in the calling
thread, the others each on a state of its own (an ``MjData`` of the SO model, copies of the SO buffers and warm
start, the ID scratch arrays, the contact's 3-vectors) in a thread pool; the outputs are rows of the one trial's
arrays.  The compiled loop is ``nogil`` (the GIL is released for the whole call) and every MuJoCo call gets the
chunk's own ``MjData`` (the model is shared: MuJoCo's functions take it ``const``).  Every chunk starts cold, as
frame 0 of the sequential loop (the QP's bound-free start, :func:`models.muscles.qp_kernels.solve_qp`): ID is
stateless, so joint moments and reactions are bit-identical to ``workers=1``; the QP's answer at and after a chunk
start agrees with the warm-started one to the solver's tolerance (tested), and the stage ends holding the warm
start of the trial's last solved frame.  ``total_time_s`` is then the wall time of the threaded section.

Fallback: the Python stages run instead (same results) when the C API is not usable here (:func:`models.dynamics
.mj_capi.capi_available`) or an input is not finite (where the stages' own NaN semantics apply).

Timing fields of the :class:`SOTrial`: ``step_time_s`` per frame is the SO part (the shared position stage is
counted in ID's part, not here), ``solve_time_s`` the numba QP part, ``total_time_s`` the whole compiled loop.

This module is pure computation: numpy, numba, mujoco and other ``models/`` modules.
"""
from __future__ import annotations

import math
import time
import weakref
from collections import namedtuple
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mujoco
import numba as nb
import numpy as np

from models.dynamics import mj_capi as capi
from models.dynamics.compiled_id import (
    IDConst,
    IDOut,
    finite_inputs,
    id_frame,
    id_pack,
    mj_views,
)
from models.dynamics.compiled_kinematics import (
    KinConst,
    kinematics_frame,
    kinematics_matches,
    kinematics_pack,
    kinematics_views,
    tendon_frames,
)
from models.dynamics.inverse_dynamics import InverseDynamics, JointMomentsTrial
from models.dynamics.wrenches import ExternalWrenchTrial
from models.muscles.compiled_so import (
    SOConst,
    so_const,
    so_const_current,
    so_frame,
    so_outputs,
    ten_copy,
)
from models.muscles.compiled_tendon import tendon_views
from models.muscles.contact_kernels import wrench_kernel
from models.muscles.static_optimization import (
    STATUS_INVALID_INPUT,
    SOTrial,
    StaticOptimization,
)

__all__ = ["CompiledChain", "compiled_chain_available"]

_NJ = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")

_KCk = namedtuple("_KCk", "on x_tendon x_site_body geom_body in_tibia col tibia F3 M3 F_mus M_mus")
#: one thread's chain state: its own ``MjData`` (C pointer ``dd``, views ``D``/``KV``/``TV``), SO constants and buffers
#: ``S`` (copied from ``src``, the stage's), clock buffer ``ts``
_State = namedtuple("_State", "data dd D KV TV S src ts")


def compiled_chain_available() -> tuple[bool, str]:
    """Whether the compiled path can run here (else :class:`CompiledChain` uses the Python stages)."""
    return capi.capi_available()


@nb.njit(**_NJ)
def _contact_frame(D, C, force, cost, i):  # pragma: no cover - compiled
    """Muscles' net force and moment on the tibia subtree (tibia frame) from the current paths:
    :meth:`KneeContact.muscle_wrench_from_data`; NaN where the SO frame has no finite cost."""
    if not math.isfinite(cost):
        C.F_mus[i, :] = np.nan
        C.M_mus[i, :] = np.nan
        return
    C.F3[:] = 0.0
    C.M3[:] = 0.0
    wrench_kernel(D.wrapadr, D.wrapnum, D.wrap_obj, D.wrap_xpos, C.x_tendon, C.x_site_body, C.geom_body,
                   C.in_tibia, force, C.col, D.xpos[C.tibia], C.F3, C.M3)
    R = D.xmat[C.tibia]
    for j in range(3):   # (v @ R)_j = sum_k v_k R[k, j], xmat row-major
        C.F_mus[i, j] = C.F3[0] * R[j] + C.F3[1] * R[3 + j] + C.F3[2] * R[6 + j]
        C.M_mus[i, j] = C.M3[0] * R[j] + C.M3[1] * R[3 + j] + C.M3[2] * R[6 + j]


@nb.njit(**_NJ)
def _trial(m_id, m_so, dd, D, TV, K, IO, S, SO, C, KK, KV, qpos, qvel, qacc, tau_in, do_id, ts):  # pragma: no cover
    """The frame loop; returns the loop's wall time (s).  ``KK``/``KV``: the kinematics kernel's constants and
    views, used instead of ``mj_kinematics`` for ID's position stage when ``KK.geoms`` is not the empty marker."""
    fast_kin = KK.parent.shape[0] > 0
    t0 = capi.clock_ns(ts)
    for i in range(qpos.shape[0]):
        for k in range(qpos.shape[1]):
            D.qpos[k] = qpos[i, k]
        for k in range(qvel.shape[1]):
            D.qvel[k] = qvel[i, k]
        if do_id:
            for k in range(qacc.shape[1]):
                D.qacc[k] = qacc[i, k]
            if fast_kin and K.skip:
                kinematics_frame(KK, KV)
            id_frame(m_id, dd, D, K, IO, i, fast_kin)
            tau = IO.cf[i]
        else:
            tau = tau_in[i]
        if so_frame(m_so, dd, D, TV, S, SO, qpos[i], qvel[i], tau, do_id, i, ts):
            S.warm[0] = S.warm[1]
        if C.on:
            _contact_frame(D, C, SO.force[i], SO.cost[i], i)
    return (capi.clock_ns(ts) - t0) * 1e-9


class CompiledChain:
    """ID (optional) -> SO -> knee contact (optional) of a whole trial in one compiled loop (module docstring).

    ``static_optimization``: the SO stage (its private model and data are used, its warm start reset per run);
    ``inverse_dynamics``: an :class:`InverseDynamics` on the same model (``None``: SO from given moments, :meth:`run_so`);
    ``contact``: a :class:`KneeContact` on the same model (``None``: no contact).  ``use_compiled=False``: always
    the Python stages (the reference of the benchmarks and tests).  ``workers``: threads the frames are split
    over (contiguous chunks, module docstring "Threads"); 1 (default) is the single sequential loop.
    ``tendon_kernel=False``: SO's tendon stage is always ``mj_tendon`` (the reference of the benchmarks).
    """

    def __init__(self, static_optimization: StaticOptimization, inverse_dynamics: InverseDynamics | None = None,
                 contact: Any = None, *, use_compiled: bool = True, workers: int = 1,
                 tendon_kernel: bool = True) -> None:
        if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
            raise ValueError(f"workers = {workers!r}: must be an integer >= 1")
        #: threads the frames are split over (1: one sequential loop)
        self.workers = int(workers)
        self._states: list[_State] = []
        self._pool: ThreadPoolExecutor | None = None
        self.so, self.inv, self.contact = static_optimization, inverse_dynamics, contact
        m = self.so.model
        for other, what in ((inverse_dynamics, "inverse_dynamics"), (contact, "contact")):
            if other is not None and not _same_structure(m, other.model):
                raise ValueError(f"{what}: its model's sizes differ from the static optimisation's")
        ok, why = capi.capi_available() if use_compiled else (False, "use_compiled=False")
        #: why the Python stages run instead ('' when the compiled path is used)
        self.fallback_reason = "" if ok else why
        self._D = mj_views(self.so.data)
        self._TV = tendon_views(self.so.data)
        self._ts = capi.new_timespec()
        # per-run constants built once (the stages keep their models, data and buffers for life)
        self._want_tendon_kernel = bool(tendon_kernel)
        self._S = self._so_const()
        self._m_so, self._d_so = capi.address(self.so.model), capi.address(self.so.data)
        self._m_id = capi.address(inverse_dynamics.model) if inverse_dynamics is not None else 0
        self._kc_const = None
        self._KK, self._KV = _kinematics_kernel(inverse_dynamics, self.so.data) if ok else _no_kernel(self.so.data)
        #: whether ID's position stage uses the kinematics kernel (bit-identical poses, checked on this model)
        self.kinematics_kernel = self._KK.parent.shape[0] > 0

    @property
    def tendon_kernel(self) -> bool:
        """Whether SO's tendon stage is the numba kernel (:mod:`models.muscles.compiled_tendon`, ``exact=False``:
        ``mj_tendon``'s lengths and paths bit for bit, ``ten_J`` to 1e-12, checked on this model) instead of
        ``mj_tendon``."""
        return self.compiled and bool(self._S.ten_on)

    @property
    def compiled(self) -> bool:
        """Whether runs go through the compiled loop (else the Python stages)."""
        return not self.fallback_reason

    # ---- packing ----------------------------------------------------------------------------------

    def _so_const(self) -> SOConst:
        """The SO constants with the chain's tendon kernel (``exact=False``), or none if it was declined."""
        S = so_const(self.so, STATUS_INVALID_INPUT, tendon_exact=False)
        return S if self._want_tendon_kernel else S._replace(ten_on=False)

    def _kc_pack(self, n: int):
        kc = self.contact
        if self._kc_const is None:   # the contact's path constants, fixed for its life
            if kc is None:
                z = np.zeros((0, 1), dtype=np.int64)
                self._kc_const = (False, z[:, 0], z, z[:, 0], np.zeros(1, np.uint8), z[:, 0], 0)
            else:
                self._kc_const = (True, kc._x_tendon, kc._x_site_body, kc._geom_body, kc._in_tibia_u8,
                                  kc._crossing_index(self.so.muscle_names), int(kc.tibia_id))
        return _KCk(*self._kc_const, np.zeros(3), np.zeros(3), np.zeros((n, 3)), np.zeros((n, 3)))

    def _loop(self, qpos, qvel, qacc, tau, externals, time_s=None):
        n = qpos.shape[0]
        so = self.so
        so.reset()
        if self.inv is not None:
            K, IO, jm = id_pack(self.inv, externals, n, time_s)
        else:
            K, IO, jm = _id_unused(), IDOut(*(np.zeros((1,) * k) for k in (2, 2, 2, 2, 3, 3))), None
        if not so_const_current(self._S, so):
            self._S = self._so_const()
        S = self._S
        S.warm[0] = False   # so.reset(): a cold start
        SO = so_outputs(so, n)
        C = self._kc_pack(n)
        do_id = self.inv is not None
        bounds = _chunk_bounds(n, self.workers)
        if bounds.size <= 2:
            total = _trial(self._m_id, self._m_so, self._d_so, self._D, self._TV, K, IO, S, SO, C, self._KK, self._KV,
                           qpos, qvel, qacc, tau, do_id, self._ts)
        else:
            total = self._threaded(bounds, K, IO, SO, C, qpos, qvel, qacc, tau, do_id)
        so._have_warm = bool(np.any(SO.st != STATUS_INVALID_INPUT))
        trial = SOTrial(SO.act, SO.force, SO.mom, SO.res, SO.resid, SO.cost, SO.its, SO.st, SO.ts, SO.tstep, total,
                        so.muscle_names, so.coordinate_names, so.solved_coordinates, so.reserve_only_coordinates,
                        so.root_coordinates)
        return jm, trial, C

    # ---- threads ----------------------------------------------------------------------------------

    def _thread_states(self, k: int) -> list[_State]:
        """``k`` chain states for the chunks before the last (built once, each with its own ``MjData``; the SO
        buffers re-copied when the stage's constants were rebuilt), every warm start reset."""
        while len(self._states) < k:
            data = mujoco.MjData(self.so.model)
            self._states.append(_State(data, capi.address(data), mj_views(data), kinematics_views(data),
                                       tendon_views(data), None, None, capi.new_timespec()))
        for j in range(k):
            st = self._states[j]
            if st.src is not self._S:
                st = self._states[j] = st._replace(S=so_const_copy(self._S), src=self._S)
            st.S.lam.fill(0.0)
            st.S.warm[0] = False
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers - 1, thread_name_prefix="CompiledChain")
            weakref.finalize(self, self._pool.shutdown, wait=False)
        return self._states[:k]

    def _threaded(self, bounds, K, IO, SO, C, qpos, qvel, qacc, tau, do_id) -> float:
        """The frames in ``len(bounds) - 1`` contiguous chunks: the last on the stage's own state in this thread
        (so the stage ends on the trial's last frame, as the sequential loop), the others on thread states in the
        pool; every chunk starts cold.  Returns the wall time of the whole (s)."""
        nk = bounds.size - 1
        states = self._thread_states(nk - 1)
        t0 = time.perf_counter()
        jobs = []
        for j in range(nk):
            a, b = int(bounds[j]), int(bounds[j + 1])
            last = j == nk - 1
            st = None if last else states[j]
            args = (self._m_id, self._m_so, self._d_so if last else st.dd, self._D if last else st.D,
                    self._TV if last else st.TV,
                    _chunk_id(K, a, b, not last, do_id), _rows(IO, a, b) if do_id else IO,
                    self._S if last else st.S, _rows(SO, a, b), _chunk_contact(C, a, b), self._KK,
                    self._KV if last else st.KV, qpos[a:b], qvel[a:b], qacc[a:b] if do_id else qacc,
                    tau if do_id else tau[a:b], do_id, self._ts if last else st.ts)
            jobs.append(_trial(*args) if last else self._pool.submit(_trial, *args))
        for job in jobs[:-1]:
            job.result()
        total = time.perf_counter() - t0
        self._carry_warm_start(bounds, SO, states)
        return total

    def _carry_warm_start(self, bounds, SO, states) -> None:
        """After a threaded run the stage holds the warm start of the trial's last solved frame, as after the
        sequential loop: its own if its chunk solved a frame, else the latest chunk's that did."""
        for j in range(bounds.size - 2, -1, -1):
            if np.any(SO.st[bounds[j]:bounds[j + 1]] != STATUS_INVALID_INPUT):
                if j < bounds.size - 2:
                    self._S.lam[:] = states[j].S.lam
                return

    # ---- public -----------------------------------------------------------------------------------

    def run(self, qpos: np.ndarray, qvel: np.ndarray, qacc: np.ndarray, externals: Sequence[ExternalWrenchTrial],
            time_s: np.ndarray | None = None) -> tuple[JointMomentsTrial, SOTrial, Any]:
        """``(JointMomentsTrial, SOTrial, KneeContactTrial or None)`` of the trial: ``qpos`` (N, nq), ``qvel``,
        ``qacc`` (N, nv), the external loads (N, 3) each; equal to the stages run one after the other."""
        if self.inv is None:
            raise ValueError("run: this chain has no inverse dynamics stage (use run_so with the moments)")
        qpos, qvel, qacc = (np.ascontiguousarray(x, dtype=float) for x in (qpos, qvel, qacc))
        externals = list(externals)
        self._check(qpos, qvel, qacc, externals)
        t = np.arange(qpos.shape[0], dtype=float) if time_s is None else np.asarray(time_s, dtype=float)
        if not self.compiled or not finite_inputs(qpos, qvel, qacc, externals):
            return self._python(qpos, qvel, qacc, externals, time_s, t)
        jm, trial, C = self._loop(qpos, qvel, qacc, np.zeros((1, 1)), externals, time_s)
        kc = None
        if self.contact is not None:
            kc = self.contact._assemble(jm.reaction_force_n[:, 0, :], jm.reaction_moment_nm[:, 0, :], C.F_mus,
                                        C.M_mus, t)
        return jm, trial, kc

    def run_so(self, qpos: np.ndarray, qvel: np.ndarray, tau: np.ndarray) -> SOTrial:
        """:meth:`StaticOptimization.run` (no hook) through the compiled loop: equal results."""
        qpos, qvel, tau = (np.ascontiguousarray(x, dtype=float) for x in (qpos, qvel, tau))
        so = self.so
        n = qpos.shape[0] if qpos.ndim == 2 else -1
        if not self.compiled or qpos.shape != (n, so.model.nq) or qvel.shape != (n, so.model.nv) \
                or tau.shape != (n, so.n_coordinates):
            return so.run(qpos, qvel, tau, compiled=self.compiled)   # the stage's own checks and messages
        return self._loop(qpos, qvel, np.zeros((1, 1)), tau, [])[1]

    # ---- checks and the Python path ---------------------------------------------------------------

    def _check(self, qpos, qvel, qacc, externals) -> None:
        m = self.so.model
        n = qpos.shape[0] if qpos.ndim == 2 else -1
        if qpos.shape != (n, m.nq) or qvel.shape != (n, m.nv) or qacc.shape != (n, m.nv):
            raise ValueError(f"run expects qpos (N, {m.nq}), qvel and qacc (N, {m.nv}); got {qpos.shape}, "
                             f"{qvel.shape}, {qacc.shape}")
        for e in externals:
            if e.n_frames != n:
                raise ValueError(f"external load on {e.body!r} has {e.n_frames} frames, the kinematics {n}")
            self.inv.body_id(e.body)

    def _python(self, qpos, qvel, qacc, externals, time_s, t):
        """The stages one after the other (the reference the compiled loop equals)."""
        jm = self.inv.run(qpos, qvel, qacc, externals, time_s=time_s, compiled=self.compiled)
        so, kc = self.so, self.contact
        n = qpos.shape[0]
        F_mus, M_mus = np.zeros((n, 3)), np.zeros((n, 3))

        def hook(i: int, fr) -> None:
            if kc is None:
                return
            if np.isfinite(fr.cost):
                F_mus[i], M_mus[i] = kc.muscle_wrench_from_data(so.data, fr.muscle_force_n, so.muscle_names)
            else:
                F_mus[i], M_mus[i] = np.nan, np.nan

        trial = so.run(qpos, qvel, jm.coordinate_force, after_step=hook)
        contact = None if kc is None else kc._assemble(jm.reaction_force_n[:, 0, :], jm.reaction_moment_nm[:, 0, :],
                                                       F_mus, M_mus, t)
        return jm, trial, contact


def _chunk_bounds(n: int, workers: int) -> np.ndarray:
    """Frame bounds of ``min(workers, n)`` contiguous chunks of near-equal size (``[0, n]``: one chunk)."""
    k = max(1, min(int(workers), int(n)))
    return (np.arange(k + 1, dtype=np.int64) * int(n)) // k


def so_const_copy(S: SOConst) -> SOConst:
    """A copy of the SO constants and buffers ``S`` with every array its own (one thread's warm start and scratch,
    the tendon kernel's scratch included)."""
    return S._replace(ten=ten_copy(S.ten), **{f: v.copy() for f, v in zip(S._fields, S) if isinstance(v, np.ndarray)})


def _rows(t, a: int, b: int):
    """The rows ``a:b`` of every array of the namedtuple ``t`` (views: the loop writes into the whole's arrays)."""
    return t._replace(**{f: getattr(t, f)[a:b] for f in t._fields})


def _chunk_id(K: IDConst, a: int, b: int, own: bool, do_id: bool) -> IDConst:
    """ID constants of frames ``a:b``: the loads' rows (contiguous copies) and, for a thread other than the
    caller's (``own``), its own scratch arrays (the basis ``NT``, ``qfrc_ext``, the 3-vectors)."""
    if do_id:
        K = K._replace(ext_f=np.ascontiguousarray(K.ext_f[:, a:b]), ext_p=np.ascontiguousarray(K.ext_p[:, a:b]),
                       ext_t=np.ascontiguousarray(K.ext_t[:, a:b]))
    if own:
        K = K._replace(NT=K.NT.copy(), qfrc_ext=K.qfrc_ext.copy(), f3=np.zeros(3), t3=np.zeros(3), p3=np.zeros(3))
    return K


def _chunk_contact(C: _KCk, a: int, b: int) -> _KCk:
    """The contact's arguments for frames ``a:b``: the output rows (views) and own scratch 3-vectors."""
    return C._replace(F3=np.zeros(3), M3=np.zeros(3), F_mus=C.F_mus[a:b], M_mus=C.M_mus[a:b])


def _no_kernel(data: mujoco.MjData):
    """Kinematics-kernel arguments that switch it off (``parent`` empty)."""
    z = np.zeros(0, dtype=np.int64)
    f2, f4 = np.zeros((0, 3)), np.zeros((0, 4))
    return KinConst(z, z, z, f2, f4, f2, f4, z, z, z, f2, f2, np.zeros(0), z, z, f2, f4, z, z, z, f2, f4, z, z,
                    z), kinematics_views(data)


def _kinematics_kernel(inv: InverseDynamics | None, data: mujoco.MjData):
    """The kinematics kernel (:mod:`models.dynamics.compiled_kinematics`) for ID's position stage: the tendons'
    frames and the actuators' sites, if it gives ``mj_kinematics``' poses bit for bit on ID's model, else off."""
    if inv is None or not inv.skips_tendons:
        return _no_kernel(data)
    m = inv.model
    geoms, sites = tendon_frames(m)
    trn_site = np.isin(m.actuator_trntype, (int(mujoco.mjtTrn.mjTRN_SITE), int(mujoco.mjtTrn.mjTRN_SLIDERCRANK)))
    if np.any(trn_site):
        ids = np.asarray(m.actuator_trnid)[trn_site].ravel()
        sites = np.union1d(sites, ids[ids >= 0]).astype(np.int64)
    KK = kinematics_pack(m, geoms, sites)
    if not kinematics_matches(m, KK, n_poses=3, data=data):
        return _no_kernel(data)
    return KK, kinematics_views(data)


def _id_unused() -> IDConst:
    """Typed placeholders of the ID constants for an SO-only run (the loop never reads them then)."""
    i64, f = np.zeros(1, dtype=np.int64), np.zeros(3)
    return IDConst(False, np.zeros((1, 1)), i64, i64, i64, np.zeros(1), np.zeros((1, 5)), -1, -1, i64, i64, np.zeros(1),
                np.zeros(0, dtype=np.int32), np.zeros((0, 1, 3)), np.zeros((0, 1, 3)), np.zeros((0, 1, 3)), f, f, f)


def _same_structure(a: mujoco.MjModel, b: mujoco.MjModel) -> bool:
    """Same sizes (an ``MjData`` of one is laid out as one of the other) and the same kinematic tree."""
    sizes = ("nq", "nv", "nu", "na", "nbody", "njnt", "ngeom", "nsite", "ntendon", "nwrap", "nM", "nJmom", "neq",
             "nmocap", "nsensordata", "nuserdata", "nplugin", "nflex", "nbuffer")
    if any(getattr(a, s, None) != getattr(b, s, None) for s in sizes):
        return False
    return bool(np.array_equal(a.body_parentid, b.body_parentid) and np.array_equal(a.jnt_type, b.jnt_type)
                and np.array_equal(a.body_pos, b.body_pos) and np.array_equal(a.site_pos, b.site_pos))
