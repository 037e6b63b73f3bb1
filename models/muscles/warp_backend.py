"""MuJoCo Warp backend of static optimisation and knee contact: the muscle state of every frame in one batch.

What runs where (``nworld`` = frames, chunks of ``chunk_frames``):

* **Warp** (``mujoco_warp`` kernels on the static-optimisation stage's private model): forward kinematics
  (``kinematics``, ``com_pos``), tendon lengths, Jacobians and wrapping paths (``tendon``), actuator lengths and
  moment arms (``transmission``), and MuJoCo's muscle force-length-velocity model at activation 1 and 0
  (``fwd_actuation``; the actuator velocities ``moment @ qvel`` are formed on the host from Warp's moment arms).
* **Host, per frame, warm-started in time**: the QP of :class:`~models.muscles.static_optimization
  .StaticOptimization` (the same numba dual Newton solver, :meth:`StaticOptimization._solve_state`) on the
  Warp-computed terms, and the knee-contact crossing sums (:meth:`KneeContact.muscle_wrench_from_paths`) on
  Warp's wrapping paths.  The QP is *not* a Warp kernel: the dual Newton method needs 2 steps per frame
  warm-started, and a batched projected-Newton/ADMM kernel with the same answers was not built (issue 22).
* Inverse dynamics with the tibia reaction: :class:`models.dynamics.warp_backend.WarpInverseDynamics`.

Precision: Warp computes in float32, so moment arms and muscle forces carry ~1e-7 relative rounding; the QP is
then solved to its own tolerance on those terms.  Activations agree with the float64 CPU path to ~1e-4 absolute
(ill-conditioned frames amplify the rounding), see ``tests/test_warp_backend.py``.

This module is pure computation: numpy, mujoco, mujoco_warp/warp and other ``models/`` modules.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np

from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
from models.dynamics.warp_backend import WarpInverseDynamics, WarpStage, default_device
from models.dynamics.wrenches import ExternalWrenchTrial
from models.muscles.knee_contact import KneeContact, KneeContactTrial
from models.muscles.qp_kernels import actuator_velocity, couplings_kernel
from models.muscles.static_optimization import (STATUS_INVALID_INPUT, SOFrame, SOParams, SOTrial,
                                                StaticOptimization)

__all__ = ["WarpStaticOptimization", "WarpKinematicsToContact"]


class WarpStaticOptimization(WarpStage):
    """:meth:`StaticOptimization.run` with the muscle state of all frames from MuJoCo Warp (module docstring).

    ``stage``: the CPU stage (its private model, coordinate maps, solver and warm start are used).  ``contact``:
    optionally a :class:`KneeContact` on the same model structure, whose crossing sums are then computed from the
    same Warp paths (:meth:`run_with_contact`).
    """

    stage: StaticOptimization

    # ---- the muscle state of a chunk on Warp -------------------------------------------------------

    def _state(self, qpos: np.ndarray, qvel: np.ndarray) -> dict[str, np.ndarray]:
        """Warp muscle state of ``qpos`` (n, nq), ``qvel`` (n, nv) (couplings applied): host float64/int arrays."""
        wp, mjw, so = self._wp, self._mjw, self.stage
        m = so.model
        n = qpos.shape[0]
        with wp.ScopedDevice(self.device):
            d = mjw.put_data(m, self._data0, nworld=n)
            d.qpos.assign(qpos.astype(np.float32))
            d.qvel.assign(qvel.astype(np.float32))
            mjw.kinematics(self._mw, d)
            mjw.com_pos(self._mw, d)
            mjw.tendon(self._mw, d)
            mjw.transmission(self._mw, d)
            out = {k: d.__getattribute__(k).numpy() for k in ("moment_rownnz", "moment_rowadr", "moment_colind",
                                                               "ten_wrapadr", "ten_wrapnum", "wrap_obj")}
            out["actuator_moment"] = np.asarray(d.actuator_moment.numpy(), dtype=float)
            out["wrap_xpos"] = np.asarray(d.wrap_xpos.numpy(), dtype=float)
            out["xpos"] = np.asarray(d.xpos.numpy(), dtype=float)
            out["xmat"] = np.asarray(d.xmat.numpy(), dtype=float).reshape(n, m.nbody, 9)
            vel = np.zeros((n, m.nu))
            for i in range(n):
                actuator_velocity(out["moment_rownnz"][i], out["moment_rowadr"][i], out["moment_colind"][i],
                                  out["actuator_moment"][i], qvel[i], vel[i])
            d.actuator_velocity.assign(vel.astype(np.float32))
            forces = []
            for value in (1.0, 0.0):
                if so._act_idx.size:
                    act = np.zeros((n, m.na), dtype=np.float32)
                    act[:, so._act_idx] = value
                    d.act.assign(act)
                if so._ctrl_idx.size:
                    ctrl = np.zeros((n, m.nu), dtype=np.float32)
                    ctrl[:, so._ctrl_idx] = value
                    d.ctrl.assign(ctrl)
                mjw.fwd_actuation(self._mw, d)
                forces.append(np.asarray(d.actuator_force.numpy(), dtype=float))
            out["force_act1"], out["force_act0"] = forces
        return out

    # ---- whole trial -------------------------------------------------------------------------------

    def run(self, qpos: np.ndarray, qvel: np.ndarray, tau: np.ndarray) -> SOTrial:
        """As :meth:`StaticOptimization.run` (cold start, frames in order, warm-started), on Warp's muscle state."""
        return self.run_with_contact(qpos, qvel, tau, None)[0]

    def run_with_contact(self, qpos: np.ndarray, qvel: np.ndarray, tau: np.ndarray, contact: KneeContact | None
                         ) -> tuple[SOTrial, np.ndarray | None, np.ndarray | None]:
        """``(SOTrial, F_mus (N, 3), M_mus (N, 3))``: the trial and, with ``contact``, the muscles' force and moment
        on its tibia subtree (tibia frame; NaN where the frame failed), else ``None``."""
        so = self.stage
        qpos, qvel, tau = (np.asarray(x, dtype=float) for x in (qpos, qvel, tau))
        n = qpos.shape[0] if qpos.ndim == 2 else -1
        m = so.model
        if qpos.shape != (n, m.nq) or qvel.shape != (n, m.nv) or tau.shape != (n, so.n_coordinates):
            raise ValueError(f"run expects qpos (N, {m.nq}), qvel (N, {m.nv}), tau (N, {so.n_coordinates}); got "
                             f"{qpos.shape}, {qvel.shape}, {tau.shape}")
        nm, nc = so.n_muscles, so.n_coordinates
        act, force = np.zeros((n, nm)), np.zeros((n, nm))
        mom, res, resid = np.zeros((n, nc)), np.zeros((n, nc)), np.zeros((n, nc))
        cost, its, st = np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        ts, tstep = np.zeros(n), np.zeros(n)
        F_mus = np.zeros((n, 3)) if contact is not None else None
        M_mus = np.zeros((n, 3)) if contact is not None else None
        so.reset()
        t0 = time.perf_counter()
        # couplings on the host (as the CPU stage does them), invalid frames replaced by qpos0 for Warp
        qc, vc, ok = qpos.copy(), qvel.copy(), np.zeros(n, dtype=bool)
        for i in range(n):
            ok[i] = couplings_kernel(qc[i], vc[i], tau[i], so._apply, so._c_dep_qadr, so._c_dep_dof, so._c_ind_qadr,
                                     so._c_ind_dof, so._c_x0, so._c_y0, so._c_coef, so._dof_factor)
        qc[~ok], vc[~ok] = m.qpos0, 0.0
        tib = contact.tibia_id if contact is not None else -1
        for a in range(0, n, self.chunk_frames):
            b = min(n, a + self.chunk_frames)
            s = self._state(qc[a:b], vc[a:b])
            t_state = (time.perf_counter() - t0) / n
            for i in range(a, b):
                j = i - a
                fr = SOFrame(act[i], force[i], mom[i], res[i], resid[i])
                t1 = time.perf_counter()
                if not ok[i]:
                    for arr in (act[i], force[i], mom[i], res[i], resid[i]):
                        arr.fill(np.nan)
                    cost[i], st[i] = np.nan, STATUS_INVALID_INPUT
                    if contact is not None:
                        F_mus[i], M_mus[i] = np.nan, np.nan
                    continue
                # the frame's coupling factors dq_dep/dq_ind (the moment-arm kernel reads them)
                couplings_kernel(qc[i].copy(), vc[i].copy(), tau[i], False, so._c_dep_qadr, so._c_dep_dof,
                                 so._c_ind_qadr, so._c_ind_dof, so._c_x0, so._c_y0, so._c_coef, so._dof_factor)
                so._solve_state(s["moment_rownnz"][j], s["moment_rowadr"][j], s["moment_colind"][j],
                                s["actuator_moment"][j], s["force_act1"][j], s["force_act0"][j], tau[i], fr)
                cost[i], its[i], st[i] = fr.cost, fr.iterations, fr.status
                ts[i] = time.perf_counter() - t1
                tstep[i] = ts[i] + t_state
                if contact is not None:
                    if np.isfinite(fr.cost):
                        F_mus[i], M_mus[i] = contact.muscle_wrench_from_paths(
                            s["ten_wrapadr"][j], s["ten_wrapnum"][j], s["wrap_obj"][j], s["wrap_xpos"][j],
                            s["xpos"][j, tib], s["xmat"][j, tib], force[i], so.muscle_names)
                    else:
                        F_mus[i], M_mus[i] = np.nan, np.nan
        total = time.perf_counter() - t0
        trial = SOTrial(act, force, mom, res, resid, cost, its, st, ts, tstep, total, so.muscle_names,
                        so.coordinate_names, so.solved_coordinates, so.reserve_only_coordinates, so.root_coordinates)
        return trial, F_mus, M_mus


class WarpKinematicsToContact:
    """:class:`models.muscles.knee_contact.KinematicsToContact` on MuJoCo Warp: inverse dynamics
    (:class:`WarpInverseDynamics`), the muscle state (:class:`WarpStaticOptimization`) and the knee-contact
    crossing sums on Warp's paths.  Same outputs ``(SOTrial, KneeContactTrial)``; ``device`` as in those."""

    def __init__(self, model, side: str, *, body_mass_kg: float, so_params: SOParams | None = None,
                 condyle_offsets_m: tuple[float, float] | None = None, device: str | None = None,
                 chunk_frames: int = 4096) -> None:
        model = getattr(model, "model", model)
        self.contact = KneeContact(model, side, body_mass_kg=body_mass_kg, condyle_offsets_m=condyle_offsets_m)
        self.inverse_dynamics = InverseDynamics(model, InverseDynamicsParams(
            reaction_bodies=(self.contact.tibia,), gravity_m_s2=self.contact.gravity_m_s2))
        self.static_optimization = StaticOptimization(model, so_params or SOParams())
        self.device = device or default_device()
        self._id = WarpInverseDynamics(self.inverse_dynamics, device=self.device, chunk_frames=chunk_frames)
        self._so = WarpStaticOptimization(self.static_optimization, device=self.device, chunk_frames=chunk_frames)

    def run(self, qpos: np.ndarray, qvel: np.ndarray, qacc: np.ndarray, externals: Sequence[ExternalWrenchTrial],
            time_s: np.ndarray) -> tuple[SOTrial, KneeContactTrial]:
        qpos, qvel, qacc = (np.asarray(x, dtype=float) for x in (qpos, qvel, qacc))
        jm = self._id.run(qpos, qvel, qacc, list(externals), time_s=time_s)
        trial, F_mus, M_mus = self._so.run_with_contact(qpos, qvel, jm.coordinate_force, self.contact)
        contact = self.contact._assemble(jm.reaction_force_n[:, 0, :], jm.reaction_moment_nm[:, 0, :], F_mus, M_mus,
                                         np.asarray(time_s, dtype=float))
        return trial, contact
