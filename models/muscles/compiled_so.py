"""Static optimisation of a whole trial in one compiled loop calling MuJoCo's C API (:mod:`models.dynamics.mj_capi`).

:func:`so_frame` is :meth:`models.muscles.static_optimization.StaticOptimization.step` in numba: the couplings,
``mj_kinematics``, ``mj_comPos`` (skipped when the caller's kinematics are current for the same ``qpos``),
``mj_tendon`` (the tendon kernel :mod:`models.muscles.compiled_tendon` where it reproduces it on the model,
``SOConst.ten_on``: bit for bit in :func:`run_compiled`, ``ten_J`` to 1e-12 in the compiled chain; ``mj_tendon``
for a frame it hands back), ``mj_transmission``, then the actuator velocities and the moment arms in one pass over
``actuator_moment`` (:func:`moment_arms_velocity`), the muscles' forces at activation 1 and 0 from MuJoCo's own
``mju_muscleGain``/``mju_muscleBias`` (:func:`muscle_forces`, where :func:`forces_by_capi`; else ``mj_fwdActuation``
at activation 1 and the passive force at 0), then the QP (:func:`models.muscles.qp_kernels.assemble`, ``solve_qp``,
``frame_outputs``), warm-started in time on the stage's own buffers: the same arithmetic in the same order, so the
results are bit-identical to the Python step (tested; the chain's faster tendon kernel: activations to 1e-9).
:func:`run_compiled` runs a trial on the stage's own data
(used by :meth:`StaticOptimization.run` without a hook); :mod:`models.muscles.compiled_chain` calls
:func:`so_frame` after inverse dynamics on the same data.  ``solve_time_s`` of a frame is the QP from the assembly
on (the moment arms are counted in ``step_time_s`` only).

Non-finite input gives the stage's NaN outputs and its invalid-input status, as :meth:`StaticOptimization.step`.

This module is pure computation: numpy, numba and other ``models/`` modules.
"""
from __future__ import annotations

import weakref
from collections import namedtuple

import mujoco
import numba as nb
import numpy as np

from models.dynamics import mj_capi as capi
from models.dynamics.compiled_id import mj_views
from models.muscles.compiled_tendon import (
    TenConst,
    tendon_frame,
    tendon_matches,
    tendon_pack,
    tendon_views,
)
from models.muscles.qp_kernels import (
    assemble,
    couplings_kernel,
    frame_outputs,
    muscle_passive_force,
    solve_qp,
)

__all__ = ["SOConst", "SOOut", "run_compiled", "so_const", "so_const_current", "so_frame", "so_outputs", "so_pack",
           "ten_copy", "tendon_const"]

_NJ = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}
#: per model: the tendon kernel's constants and whether its build check passed (the check runs once per model)
_TENDON_CACHE: weakref.WeakKeyDictionary[mujoco.MjModel, dict] = weakref.WeakKeyDictionary()

#: the stage's constants and buffers (its own arrays: the warm start ``lam`` lives on in the stage);
#: ``warm`` = [have a warm start, warm starts allowed]
SOConst = namedtuple("SOConst", "apply dep_qadr dep_dof ind_qadr ind_dof x0 y0 coef dof_factor mus dof_coord R rcnt "
                                "ridx mark F1 solved pos gain passive Ct nzcnt nzidx env b hp lam warm max_iter tol a g "
                                "r u cls delta bkey bval H d fidx P is_solved act_idx ctrl_idx bias_by_kernel "
                                "lengthrange acc0 biasprm tau q_before invalid_status forces_by_capi gainprm other_act "
                                "ten ten_on")
#: per-frame outputs (the arrays of an ``SOTrial``)
SOOut = namedtuple("SOOut", "act force mom res resid cost its st ts tstep")


@nb.njit(**_NJ)
def muscle_input(D, S, value):  # pragma: no cover - compiled
    for k in range(S.act_idx.shape[0]):
        D.act[S.act_idx[k]] = value
    for k in range(S.ctrl_idx.shape[0]):
        D.ctrl[S.ctrl_idx[k]] = value


@nb.njit(**_NJ)
def moment_arms_velocity(D, S):  # pragma: no cover - compiled
    """:func:`~models.muscles.qp_kernels.actuator_velocity` (into ``actuator_velocity``) and
    :func:`~models.muscles.qp_kernels.moment_arms` (into ``S.R``) in one pass over each muscle's row of
    ``actuator_moment``: the same sums in the same order, so bit-identical to the two kernels."""
    for a in S.other_act:   # actuators that are not muscles: their velocities only
        acc = 0.0
        for p in range(D.rowadr[a], D.rowadr[a] + D.rownnz[a]):
            acc += D.moment[p] * D.qvel[D.colind[p]]
        D.act_vel[a] = acc
    R, ridx, mark = S.R, S.ridx, S.mark
    for i in range(R.shape[0]):
        for p in range(S.rcnt[i]):
            R[i, ridx[i, p]] = 0.0
        cnt = 0
        act = S.mus[i]
        acc = 0.0
        for p in range(D.rowadr[act], D.rowadr[act] + D.rownnz[act]):
            d = D.colind[p]
            mp = D.moment[p]
            acc += mp * D.qvel[d]
            k = S.dof_coord[d]
            if k >= 0:
                if mark[k] != i:
                    mark[k] = i
                    ridx[i, cnt] = k
                    cnt += 1
                R[i, k] -= mp * S.dof_factor[d]
        D.act_vel[act] = acc
        S.rcnt[i] = cnt
        for p in range(cnt):
            mark[ridx[i, p]] = -1


@nb.njit(**_NJ)
def muscle_forces(D, S):  # pragma: no cover - compiled
    """The muscles' forces at activation 1 (``S.F1``) and 0 (``D.act_force``: the bias) from MuJoCo's own muscle
    curves, ``mju_muscleGain`` and ``mju_muscleBias``, on ``actuator_length``/``actuator_velocity``: what
    ``mj_fwdActuation`` writes for them (``force = gain * act + bias``, act 1 and 0), bit for bit (tested), without
    its pass over every actuator (activation dynamics, ``qfrc_actuator``).  Non-muscle entries are not written."""
    lr0 = S.lengthrange.ctypes.data
    gp0 = S.gainprm.ctypes.data
    bp0 = S.biasprm.ctypes.data
    ng = S.gainprm.shape[1] * 8
    nb_ = S.biasprm.shape[1] * 8
    for k in range(S.mus.shape[0]):
        a = S.mus[k]
        length = D.act_len[a]
        bias = capi.mju_muscleBias(length, lr0 + a * 16, S.acc0[a], bp0 + a * nb_)
        gain = capi.mju_muscleGain(length, D.act_vel[a], lr0 + a * 16, S.acc0[a], gp0 + a * ng)
        S.F1[a] = gain * 1.0 + bias
        D.act_force[a] = bias
    muscle_input(D, S, 0.0)


@nb.njit(**_NJ)
def so_frame(m, dd, D, TV, S, O, q, qd, tau_in, kin_current, i, ts):  # pragma: no cover - compiled
    """SO of frame ``i``: :meth:`StaticOptimization.step` (kinematics reused when ``kin_current`` and the couplings
    left ``qpos`` as it was; ``TV`` the tendon kernel's views of the same data).  Returns whether the frame was
    solved; updates the warm start."""
    t0 = capi.clock_ns(ts)
    for k in range(q.shape[0]):
        D.qpos[k] = q[k]
        S.q_before[k] = q[k]
    for k in range(qd.shape[0]):
        D.qvel[k] = qd[k]
    for k in range(tau_in.shape[0]):
        S.tau[k] = tau_in[k]
    ok = couplings_kernel(D.qpos, D.qvel, S.tau, S.apply, S.dep_qadr, S.dep_dof, S.ind_qadr, S.ind_dof, S.x0, S.y0,
                          S.coef, S.dof_factor)
    if not ok:
        for arr in (O.act[i], O.force[i], O.mom[i], O.res[i], O.resid[i]):
            arr[:] = np.nan
        O.cost[i] = np.nan
        O.its[i] = 0
        O.st[i] = S.invalid_status
        O.ts[i] = 0.0
        O.tstep[i] = (capi.clock_ns(ts) - t0) * 1e-9
        return False
    moved = not kin_current
    for k in range(q.shape[0]):
        if D.qpos[k] != S.q_before[k]:
            moved = True
    if moved:
        capi.mj_kinematics(m, dd)
        capi.mj_comPos(m, dd)
    if not (S.ten_on and tendon_frame(S.ten, TV)):
        capi.mj_tendon(m, dd)
    capi.mj_transmission(m, dd)
    moment_arms_velocity(D, S)
    if S.forces_by_capi:
        muscle_forces(D, S)
    else:
        muscle_input(D, S, 1.0)
        capi.mj_fwdActuation(m, dd)
        S.F1[:] = D.act_force
        muscle_input(D, S, 0.0)
        if S.bias_by_kernel:
            muscle_passive_force(D.act_len, S.mus, S.lengthrange, S.acc0, S.biasprm, D.act_force)
        else:
            capi.mj_fwdActuation(m, dd)
    t1 = capi.clock_ns(ts)
    # solve_frame after its moment_arms (done above): assemble, solve_qp, frame_outputs
    assemble(S.R, S.rcnt, S.ridx, S.F1, D.act_force, S.mus, S.tau, S.solved, S.pos, S.gain, S.passive, S.Ct,
             S.nzcnt, S.nzidx, S.env, S.b)
    it, status, _ = solve_qp(S.Ct, S.nzcnt, S.nzidx, S.env, S.b, S.hp, S.lam, not S.warm[0], S.max_iter, S.tol,
                             S.a, S.g, S.r, S.u, S.cls, S.delta, S.bkey, S.bval, S.H, S.d, S.fidx)
    cost = frame_outputs(S.R, S.rcnt, S.ridx, S.gain, S.passive, S.a, S.lam, S.hp, S.P, S.tau, S.solved,
                         S.is_solved, O.act[i], O.force[i], O.mom[i], O.res[i], O.resid[i])
    t2 = capi.clock_ns(ts)
    O.cost[i] = cost
    O.its[i] = it
    O.st[i] = status
    O.ts[i] = (t2 - t1) * 1e-9
    O.tstep[i] = (t2 - t0) * 1e-9
    return True


def forces_by_capi(so) -> bool:
    """Whether :func:`muscle_forces` equals ``mj_fwdActuation`` for ``so``'s muscles: MuJoCo muscle gain and bias,
    activation-driven (``act`` set, not ``ctrl``), no force clamp, no ``actearly``, actuation enabled."""
    m, mus = so.model, so.muscle_ids
    return bool(so._bias_by_kernel and so._ctrl_idx.size == 0
                and np.all(m.actuator_gaintype[mus] == int(mujoco.mjtGain.mjGAIN_MUSCLE))
                and np.all(m.actuator_dyntype[mus] != int(mujoco.mjtDyn.mjDYN_NONE))
                and not np.any(m.actuator_actearly[mus]) and not np.any(m.actuator_forcelimited[mus])
                and not (m.opt.disableflags & int(mujoco.mjtDisableBit.mjDSBL_ACTUATION))
                and m.actuator_lengthrange.flags.c_contiguous and so._lengthrange.shape == (m.nu, 2))


def so_const(so, invalid_status: int, tendon_exact: bool = True) -> SOConst:
    """The constants and buffers of ``so`` (a :class:`~models.muscles.static_optimization.StaticOptimization`):
    its own arrays, so that the warm start lives on in the stage; ``invalid_status`` the stage's invalid-input
    status code; ``tendon_exact``: the tendon kernel bit-identical to ``mj_tendon`` (:func:`tendon_const`; the
    stage's own :func:`run_compiled`), else its faster form (``ten_J`` to 1e-12: the compiled chain).  Valid as
    long as the stage keeps its buffers (:func:`so_const_current`)."""
    return SOConst(so._apply, so._c_dep_qadr, so._c_dep_dof, so._c_ind_qadr, so._c_ind_dof, so._c_x0, so._c_y0,
                   so._c_coef, so._dof_factor, so.muscle_ids, so._dof_coord, so._R, so._rcnt, so._ridx, so._mark,
                   so._F1, so._solved, so._pos, so._gain, so._passive, so._Ct, so._nzcnt, so._nzidx, so._env, so._b,
                   so._hp, so._lam, np.array([False, so._warm]), so._max_iter, so._tol, so._a, so._g, so._r, so._u,
                   so._cls, so._delta, so._bkey, so._bval, so._H, so._d, so._fidx, so._P, so._is_solved,
                   so._act_idx, so._ctrl_idx, so._bias_by_kernel, so._lengthrange, so._acc0, so._biasprm, so._tau,
                   np.zeros(so.model.nq), int(invalid_status), forces_by_capi(so),
                   np.ascontiguousarray(so.model.actuator_gainprm, dtype=float),
                   np.setdiff1d(np.arange(so.model.nu), so.muscle_ids).astype(np.int64),
                   *tendon_const(so.model, tendon_exact))


#: the tendon kernel's build check: ``ten_J`` within this of each row's largest entry (lengths, wrap points exact)
TENDON_RTOL = 1e-12


def tendon_const(m: mujoco.MjModel, exact: bool = True) -> tuple[TenConst, bool]:
    """The tendon kernel's constants for ``m`` (:mod:`models.muscles.compiled_tendon`; ``exact=False``: without
    the dofs shared by a segment's end points) and whether it replaces ``mj_tendon``: it covers the model's tendons
    and gives ``mj_tendon``'s outputs on the build check's poses (lengths and wrap points bit for bit, ``ten_J``
    bit for bit if ``exact``, else within :data:`TENDON_RTOL`); otherwise typed empty constants and ``False``."""
    per_model = _TENDON_CACHE.setdefault(m, {})
    hit = per_model.get(exact)
    if hit is None:
        T = tendon_pack(m, exact=exact)
        hit = per_model[exact] = (T, T is not None and tendon_matches(m, T, rtol=0.0 if exact else TENDON_RTOL))
    if hit[1]:
        return ten_copy(hit[0]), True
    i1, i2, f1 = np.zeros(0, np.int64), np.zeros((0, 0), np.int64), np.zeros(0)
    return TenConst(i1, i1, i1, i1, i1, i1, i1, f1, i1, i2, i2, i2, i1, np.zeros((0, 3)), i1), False


def ten_copy(T: TenConst) -> TenConst:
    """``T`` with its own scratch buffers (one thread's)."""
    return T._replace(W=T.W.copy(), wb=T.wb.copy())


def so_const_current(S: SOConst, so) -> bool:
    """Whether ``S`` (from :func:`so_const`) still holds ``so``'s buffers and settings."""
    return (S.lam is so._lam and S.R is so._R and S.Ct is so._Ct and S.tau is so._tau and S.H is so._H
            and S.max_iter == so._max_iter and S.tol == so._tol and bool(S.warm[1]) == bool(so._warm))


def so_outputs(so, n: int) -> SOOut:
    """Output arrays for ``n`` frames."""
    nm, nc = so.n_muscles, so.n_coordinates
    return SOOut(np.zeros((n, nm)), np.zeros((n, nm)), np.zeros((n, nc)), np.zeros((n, nc)), np.zeros((n, nc)),
                 np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n), np.zeros(n))


def so_pack(so, n: int, invalid_status: int) -> tuple[SOConst, SOOut]:
    """:func:`so_const` and :func:`so_outputs`."""
    return so_const(so, invalid_status), so_outputs(so, n)


@nb.njit(**_NJ)
def _so_trial(m, dd, D, TV, S, O, qpos, qvel, tau, ts):  # pragma: no cover - compiled
    """The frame loop of :func:`run_compiled`; returns its wall time (s)."""
    t0 = capi.clock_ns(ts)
    for i in range(qpos.shape[0]):
        if so_frame(m, dd, D, TV, S, O, qpos[i], qvel[i], tau[i], False, i, ts):
            S.warm[0] = S.warm[1]
    return (capi.clock_ns(ts) - t0) * 1e-9


def run_compiled(so, qpos: np.ndarray, qvel: np.ndarray, tau: np.ndarray, invalid_status: int, trial_type):
    """``so.run`` (no hook) through the compiled loop, from a cold start: a ``trial_type`` (the stage's
    ``SOTrial``), or ``None`` where the C API cannot be used here.  Inputs already shape-checked."""
    if not capi.capi_available()[0]:
        return None
    qpos, qvel, tau = (np.ascontiguousarray(x, dtype=float) for x in (qpos, qvel, tau))
    so.reset()
    S, O = so_pack(so, qpos.shape[0], invalid_status)
    total = _so_trial(capi.address(so.model), capi.address(so.data), mj_views(so.data), tendon_views(so.data), S, O,
                      qpos, qvel, tau, capi.new_timespec())
    so._have_warm = bool(np.any(O.st != invalid_status))
    return trial_type(O.act, O.force, O.mom, O.res, O.resid, O.cost, O.its, O.st, O.ts, O.tstep, total,
                      so.muscle_names, so.coordinate_names, so.solved_coordinates, so.reserve_only_coordinates,
                      so.root_coordinates)
