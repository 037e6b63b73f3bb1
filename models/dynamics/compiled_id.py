"""Inverse dynamics of a whole trial in one compiled loop that calls MuJoCo's C API (:mod:`models.dynamics.mj_capi`).

:func:`id_frame` is :meth:`models.dynamics.inverse_dynamics.InverseDynamics.step` in numba: the same MuJoCo calls
(``mj_kinematics``, ``mj_comPos``, ``mj_crb``, the velocity stage, ``mj_inverseSkip`` or plain ``mj_inverse``;
``mj_applyFT`` per loaded body; ``mj_rnePostConstraint``) and the same numba kernels in the same order, so the
results are bit-identical (tested).  Of the velocity stage only what ``mj_inverseSkip`` reads is computed:
``mj_comVel`` and ``mj_passive`` (not ``mj_fwdVelocity``'s tendon and actuator velocities and bias force ``qfrc_bias``,
which the RNE of ``mj_inverseSkip`` does not read): ``qfrc_inverse`` and ``cfrc_int`` stay bit-identical, but
``ten_velocity``, ``actuator_velocity`` and ``qfrc_bias`` of the data are not this frame's.  :func:`run_compiled` runs a trial on the stage's own data;
:mod:`models.muscles.compiled_chain` calls :func:`id_frame` on the static optimisation's data, in the same loop as
the muscles.

Used by :meth:`InverseDynamics.run` when :func:`~models.dynamics.mj_capi.capi_available` and every input is finite
(:func:`finite_inputs`); the Python loop otherwise.

This module is pure computation: numpy, numba, mujoco and other ``models/`` modules.
"""
from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Sequence

import mujoco
import numba as nb
import numpy as np

from models.dynamics import mj_capi as capi
from models.dynamics.id_kernels import (
    _add_com_wrench,
    _basis_transpose,
    _coordinate_force,
    _reactions,
    _root_moment,
)
from models.dynamics.wrenches import ExternalWrenchTrial

__all__ = ["IDConst", "IDOut", "MjViews", "finite_inputs", "id_frame", "id_pack", "mj_views", "run_compiled"]

_NJ = dict(cache=True, nogil=True, fastmath=False, error_model="numpy")

#: MjData views the compiled loops read and write (NumPy views of MuJoCo's own buffers, which never move)
MjViews = namedtuple("MjViews", "qpos qvel qacc xfrc xipos xpos xmat subtree_com cfrc_int qfrc_inverse rownnz rowadr "
                                "colind moment act_vel act_force act_len act ctrl wrapadr wrapnum wrap_obj wrap_xpos")
#: the ID stage's constants and the trial's external loads (``ext_*`` (n_loads, N, 3), world)
IDConst = namedtuple("IDConst", "skip NT nt_k nt_dof nt_qadr nt_x0 nt_coef root_dof root_body reac_ids reac_root "
                                "qfrc_ext ext_body ext_f ext_p ext_t f3 t3 p3")
#: the trial's outputs (the arrays of a :class:`JointMomentsTrial`)
IDOut = namedtuple("IDOut", "gf cf rf rm reac_f reac_m")


def mj_views(d: mujoco.MjData) -> MjViews:
    """The fields of ``d`` the compiled loops use (views, not copies)."""
    return MjViews(d.qpos, d.qvel, d.qacc, d.xfrc_applied, d.xipos, d.xpos, d.xmat.reshape(-1, 9), d.subtree_com,
                   d.cfrc_int, d.qfrc_inverse, d.moment_rownnz, d.moment_rowadr, d.moment_colind, d.actuator_moment,
                   d.actuator_velocity, d.actuator_force, d.actuator_length, d.act, d.ctrl, d.ten_wrapadr,
                   d.ten_wrapnum, d.wrap_obj.reshape(-1), d.wrap_xpos.reshape(-1, 3))


@nb.njit(**_NJ)
def id_frame(m, dd, D, K, O, i, kin_done=False):  # pragma: no cover - compiled
    """ID of frame ``i`` (state already in ``D``): :meth:`InverseDynamics.step`'s sequence; ``m``, ``dd`` the C
    pointers of ID's model and of the data ``D`` views.  ``kin_done``: the caller has computed this state's
    ``mj_kinematics`` poses already (:mod:`models.dynamics.compiled_kinematics`), so it is not run again.

    ``actuator_force`` is zeroed first: ``mj_rnePostConstraint`` adds the actuator forces to the bodies' external
    forces; on ID's own data (actuation disabled) they are always zero, on a shared data they are not."""
    D.act_force[:] = 0.0
    if K.skip:
        if not kin_done:
            capi.mj_kinematics(m, dd)
        capi.mj_comPos(m, dd)
        capi.mj_crb(m, dd)
        # of the velocity stage mj_inverseSkip reads only the CoM velocities and the passive force: mj_comVel and
        # mj_passive instead of mj_fwdVelocity (which adds tendon/actuator velocities and the bias force qfrc_bias,
        # that ID recomputes in its own RNE) -- qfrc_inverse bit for bit (tested)
        capi.mj_comVel(m, dd)
        capi.mj_passive(m, dd)
        capi.mj_inverseSkip(m, dd, capi.STAGE_VEL, 1)
    else:
        capi.mj_inverse(m, dd)
    K.qfrc_ext[:] = 0.0
    D.xfrc[:, :] = 0.0
    f, t, p = K.f3, K.t3, K.p3
    for e in range(K.ext_body.shape[0]):
        for j in range(3):
            f[j] = K.ext_f[e, i, j]
            t[j] = K.ext_t[e, i, j]
            p[j] = K.ext_p[e, i, j]
        if not (f[0] or f[1] or f[2] or t[0] or t[1] or t[2]):
            continue
        b = K.ext_body[e]
        capi.mj_applyFT(m, dd, f.ctypes.data, t.ctypes.data, p.ctypes.data, b, K.qfrc_ext.ctypes.data)
        _add_com_wrench(D.xfrc, b, p, D.xipos, f, t)
    tau = O.gf[i]
    for k in range(tau.shape[0]):
        tau[k] = D.qfrc_inverse[k] - K.qfrc_ext[k]
    _basis_transpose(K.NT, D.qpos, K.nt_k, K.nt_dof, K.nt_qadr, K.nt_x0, K.nt_coef)
    _coordinate_force(K.NT, tau, O.cf[i])
    if K.root_dof >= 0:
        for j in range(3):
            O.rf[i, j] = tau[K.root_dof + j]
        _root_moment(D.xmat, K.root_body, tau, K.root_dof, O.rm[i])
    else:
        O.rf[i, :] = 0.0
        O.rm[i, :] = 0.0
    if K.reac_ids.shape[0]:
        capi.mj_rnePostConstraint(m, dd)
        _reactions(K.reac_ids, K.reac_root, D.cfrc_int, D.subtree_com, D.xpos, D.xmat, O.reac_f[i], O.reac_m[i])


@nb.njit(**_NJ)
def _id_trial(m, dd, D, K, O, q, qd, qdd):  # pragma: no cover - compiled
    for i in range(q.shape[0]):
        for k in range(q.shape[1]):
            D.qpos[k] = q[i, k]
        for k in range(qd.shape[1]):
            D.qvel[k] = qd[i, k]
            D.qacc[k] = qdd[i, k]
        id_frame(m, dd, D, K, O, i)


def id_pack(inv, externals: Sequence[ExternalWrenchTrial], n: int,
            time_s: np.ndarray | None = None) -> tuple[IDConst, IDOut, object]:
    """The constants of ``inv`` (an :class:`~models.dynamics.inverse_dynamics.InverseDynamics`) and the loads
    stacked for the loop, and the stage's ``JointMomentsTrial`` whose arrays the loop fills."""
    nx = len(externals)
    ef, ep, et = (np.zeros((nx, n, 3)) for _ in range(3))
    for e, w in enumerate(externals):
        ef[e], ep[e], et[e] = w.force_n, w.point_m, w.free_moment_nm
    bodies = np.array([inv.body_id(w.body) for w in externals], dtype=np.int32)
    K = IDConst(inv.skips_tendons, inv._NT, inv._nt_k, inv._nt_dof, inv._nt_qadr, inv._nt_x0, inv._nt_coef,
                int(inv._root_dof), int(inv._root_body), np.asarray(inv._reaction_ids, dtype=np.int64),
                np.asarray(inv._reaction_root, dtype=np.int64), inv._qfrc_ext, bodies, ef, ep, et, np.zeros(3),
                np.zeros(3), np.zeros(3))
    trial = inv.allocate_trial(n, time_s)
    O = IDOut(trial.generalized_force, trial.coordinate_force, trial.residual_force_n, trial.residual_moment_nm,
              trial.reaction_force_n, trial.reaction_moment_nm)
    return K, O, trial


@nb.njit(**_NJ)
def _all_finite(x):  # pragma: no cover - compiled
    """Every entry of the 2-D ``x`` finite."""
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            if not math.isfinite(x[i, j]):
                return False
    return True


@nb.njit(**_NJ)
def _load_finite(F, T, P):  # pragma: no cover - compiled
    """Force ``F`` and free moment ``T`` (N, 3) finite, and the point ``P`` finite on the rows where either is
    nonzero (a load is applied)."""
    for i in range(F.shape[0]):
        loaded = False
        for j in range(3):
            if not (math.isfinite(F[i, j]) and math.isfinite(T[i, j])):
                return False
            if F[i, j] != 0.0 or T[i, j] != 0.0:
                loaded = True
        if loaded:
            for j in range(3):
                if not math.isfinite(P[i, j]):
                    return False
    return True


def finite_inputs(q: np.ndarray, qd: np.ndarray, qdd: np.ndarray, externals: Sequence[ExternalWrenchTrial]) -> bool:
    """Every state and load finite, and each load's point finite where the load is applied (nonzero).  States
    (N, n) and loads (N, 3) as 2-D float arrays (compiled checks: ~1 us each instead of ~10 us of NumPy)."""
    for x in (q, qd, qdd):
        x = np.asarray(x, dtype=float)
        if not (_all_finite(x) if x.ndim == 2 else bool(np.isfinite(x).all())):
            return False
    for e in externals:
        F, T, P = (np.asarray(a, dtype=float) for a in (e.force_n, e.free_moment_nm, e.point_m))
        if F.ndim == T.ndim == P.ndim == 2 and F.shape[1] == T.shape[1] == P.shape[1] == 3:
            if not _load_finite(F, T, P):
                return False
            continue
        if not (np.isfinite(F).all() and np.isfinite(T).all()):
            return False
        loaded = np.any(F != 0, axis=1) | np.any(T != 0, axis=1)
        if not np.isfinite(P[loaded]).all():
            return False
    return True


def run_compiled(inv, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray,
                 externals: Sequence[ExternalWrenchTrial], time_s: np.ndarray | None):
    """``inv.run`` (an :class:`~models.dynamics.inverse_dynamics.InverseDynamics`) through the compiled loop on the stage's own data (inputs already checked:
    shapes, body names, :func:`finite_inputs`; :func:`~models.dynamics.mj_capi.capi_available` true)."""
    q, qd, qdd = (np.ascontiguousarray(x, dtype=float) for x in (q, qd, qdd))
    K, O, trial = id_pack(inv, externals, q.shape[0], time_s)
    _id_trial(capi.address(inv.model), capi.address(inv.data), mj_views(inv.data), K, O, q, qd, qdd)
    return trial
