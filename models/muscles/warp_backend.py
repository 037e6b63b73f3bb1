"""MuJoCo Warp backend of static optimisation and knee contact: the muscle state of every frame in one batch.

What runs where (``nworld`` = frames, chunks of ``chunk_frames``):

* **Warp** (``mujoco_warp`` kernels on the static-optimisation stage's private model): forward kinematics
  (``kinematics``, ``com_pos``), tendon lengths, Jacobians and wrapping paths (``tendon``), actuator lengths and
  moment arms (``transmission``), and MuJoCo's muscle force-length-velocity model at activation 1 and 0
  (``fwd_actuation``; the actuator velocities ``moment @ qvel`` are formed on the host from Warp's moment arms).
* **The QP** (``qp="warp"``; the default ``"auto"`` picks it on a CUDA device): the static-optimisation QP of every frame of a chunk in Warp
  launches of one thread per frame, float64 (:mod:`models.muscles.warp_qp`: the host's dual Newton method ported to
  a Warp kernel; instead of the sequential time warm start, anchors every 8 frames are solved cold, the other frames
  warm-started from the nearest anchor, stragglers re-solved from their converged predecessor).  The problems are
  assembled and the outputs written on the host in one numba loop each (moment arms, ``C'``, ``b``; activations,
  tensions, moments, reserves).  ``qp="host"`` keeps the reference: :meth:`StaticOptimization._solve_state` frame
  by frame, warm-started in time; ``"auto"`` picks it on Warp's CPU device, where the Warp kernel runs its
  threads one after another and is slower (10 s walk, QP alone, MyoFullBody: 0.87 s against the host's 0.30 s CPU,
  ``tests/benchmarks/test_bench_batched.py``).  Both stop within the solver tolerance of the same unique optimum: activations
  agree to ~1e-12 on the same muscle state (tested).
* **Host, per frame**: the knee-contact crossing sums (:meth:`KneeContact.muscle_wrench_from_paths`) on Warp's
  wrapping paths.
* Inverse dynamics with the tibia reaction: :class:`models.dynamics.warp_backend.WarpInverseDynamics`.

Precision: MuJoCo Warp computes the muscle state in float32, so moment arms and muscle forces carry ~1e-7
relative rounding; the QP (float64 on either path) is then solved to its own tolerance on those terms.
Activations agree with the float64 CPU path to ~1e-4 absolute (MyoLeg, PS ss1: 4e-6; ill-conditioned frames
amplify the rounding), see ``tests/test_warp_backend.py``.

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
from models.muscles.warp_qp import WarpQP

__all__ = ["WarpStaticOptimization", "WarpKinematicsToContact", "QP_BACKENDS", "resolve_qp"]

#: where :class:`WarpStaticOptimization` solves the QP: a Warp kernel over all frames, or the host solver per frame;
#: ``"auto"``: the Warp kernel on a CUDA device, the host solver on Warp's CPU device (see :func:`resolve_qp`)
QP_BACKENDS = ("auto", "warp", "host")


def resolve_qp(qp: str, device: str) -> str:
    """``"warp"`` or ``"host"`` for ``qp`` on Warp ``device`` (``"cuda"``, ``"cuda:0"``, ``"cpu"``);
    ValueError naming the value when ``qp`` is not one of :data:`QP_BACKENDS`."""
    if qp not in QP_BACKENDS:
        raise ValueError(f"qp = {qp!r}: allowed {', '.join(QP_BACKENDS)}")
    if qp != "auto":
        return qp
    return "warp" if str(device).startswith("cuda") else "host"


class WarpStaticOptimization(WarpStage):
    """:meth:`StaticOptimization.run` with the muscle state of all frames from MuJoCo Warp (module docstring).

    ``stage``: the CPU stage (its private model, coordinate maps, solver and warm start are used).  ``contact``:
    optionally a :class:`KneeContact` on the same model structure, whose crossing sums are then computed from the
    same Warp paths (:meth:`run_with_contact`).  ``qp``: ``"warp"`` solves the QPs of a chunk in one Warp
    launch (:class:`~models.muscles.warp_qp.WarpQP`), ``"host"`` with the stage's solver frame by frame, ``"auto"``
    (default) the first on CUDA, the second on Warp's CPU device (:func:`resolve_qp`); :attr:`qp` is the one used.
    """

    stage: StaticOptimization

    def __init__(self, stage: StaticOptimization, *, device: str | None = None, chunk_frames: int = 4096,
                 qp: str = "auto") -> None:
        resolve_qp(qp, "cpu")   # the value is checked before the device is set up
        super().__init__(stage, device=device, chunk_frames=chunk_frames)
        self.qp = resolve_qp(qp, self.device)
        self._qp = WarpQP(stage, self.device) if self.qp == "warp" else None
        self._seed: np.ndarray | None = None

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
        o = dict(act=np.zeros((n, nm)), force=np.zeros((n, nm)), mom=np.zeros((n, nc)), res=np.zeros((n, nc)),
                 resid=np.zeros((n, nc)), cost=np.zeros(n), its=np.zeros(n, dtype=np.int64),
                 st=np.zeros(n, dtype=np.int64), ts=np.zeros(n), tstep=np.zeros(n))
        F_mus = np.zeros((n, 3)) if contact is not None else None
        M_mus = np.zeros((n, 3)) if contact is not None else None
        so.reset()
        self._seed = None
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
            if self._qp is not None:
                self._solve_chunk_warp(s, qc, vc, tau, ok, a, b, o)
            else:
                self._solve_chunk_host(s, qc, vc, tau, ok, a, b, o)
            o["tstep"][a:b] = o["ts"][a:b] + t_state
            for i in range(a, b):
                if not ok[i]:
                    for k in ("act", "force", "mom", "res", "resid", "cost"):
                        o[k][i] = np.nan
                    o["its"][i], o["st"][i], o["ts"][i], o["tstep"][i] = 0, STATUS_INVALID_INPUT, 0.0, 0.0
                if contact is None:
                    continue
                j = i - a
                if np.isfinite(o["cost"][i]):
                    F_mus[i], M_mus[i] = contact.muscle_wrench_from_paths(
                        s["ten_wrapadr"][j], s["ten_wrapnum"][j], s["wrap_obj"][j], s["wrap_xpos"][j],
                        s["xpos"][j, tib], s["xmat"][j, tib], o["force"][i], so.muscle_names)
                else:
                    F_mus[i], M_mus[i] = np.nan, np.nan
        total = time.perf_counter() - t0
        trial = SOTrial(o["act"], o["force"], o["mom"], o["res"], o["resid"], o["cost"], o["its"], o["st"], o["ts"],
                        o["tstep"], total, so.muscle_names, so.coordinate_names, so.solved_coordinates,
                        so.reserve_only_coordinates, so.root_coordinates)
        return trial, F_mus, M_mus

    def _solve_chunk_host(self, s: dict[str, np.ndarray], qc: np.ndarray, vc: np.ndarray, tau: np.ndarray,
                          ok: np.ndarray, a: int, b: int, o: dict[str, np.ndarray]) -> None:
        """Frames ``a:b`` by the stage's solver, in order, warm-started in time (the reference path)."""
        so = self.stage
        for i in range(a, b):
            if not ok[i]:
                continue
            j = i - a
            fr = SOFrame(o["act"][i], o["force"][i], o["mom"][i], o["res"][i], o["resid"][i])
            t1 = time.perf_counter()
            # the frame's coupling factors dq_dep/dq_ind (the moment-arm kernel reads them)
            couplings_kernel(qc[i].copy(), vc[i].copy(), tau[i], False, so._c_dep_qadr, so._c_dep_dof,
                             so._c_ind_qadr, so._c_ind_dof, so._c_x0, so._c_y0, so._c_coef, so._dof_factor)
            so._solve_state(s["moment_rownnz"][j], s["moment_rowadr"][j], s["moment_colind"][j],
                            s["actuator_moment"][j], s["force_act1"][j], s["force_act0"][j], tau[i], fr)
            o["cost"][i], o["its"][i], o["st"][i] = fr.cost, fr.iterations, fr.status
            o["ts"][i] = time.perf_counter() - t1

    def _solve_chunk_warp(self, s: dict[str, np.ndarray], qc: np.ndarray, vc: np.ndarray, tau: np.ndarray,
                          ok: np.ndarray, a: int, b: int, o: dict[str, np.ndarray]) -> None:
        """Frames ``a:b`` in one Warp launch (:class:`~models.muscles.warp_qp.WarpQP`); the solve time is shared
        equally by the chunk's frames; the last converged frame's multipliers seed the next chunk's re-solves."""
        t1 = time.perf_counter()
        q, v, tq, okc = qc[a:b], vc[a:b], np.ascontiguousarray(tau[a:b]), ok[a:b]
        packed = self._qp.pack(s, q, v, tq, okc)
        act, lam, its, st, _ = self._qp.solve(packed, okc, self._seed)
        good = np.flatnonzero(okc & (st == 0))
        if good.size:
            self._seed = lam[good[-1]].copy()
        view = {k: o[k][a:b] for k in ("act", "force", "mom", "res", "resid", "cost")}
        self._qp.outputs(s, q, v, tq, okc, act, lam, view)
        o["its"][a:b], o["st"][a:b] = its, st
        o["ts"][a:b] = (time.perf_counter() - t1) / (b - a)


class WarpKinematicsToContact:
    """:class:`models.muscles.knee_contact.KinematicsToContact` on MuJoCo Warp: inverse dynamics
    (:class:`WarpInverseDynamics`), the muscle state (:class:`WarpStaticOptimization`) and the knee-contact
    crossing sums on Warp's paths.  Same outputs ``(SOTrial, KneeContactTrial)``; ``device`` and ``qp`` as in
    those."""

    def __init__(self, model, side: str, *, body_mass_kg: float, so_params: SOParams | None = None,
                 condyle_offsets_m: tuple[float, float] | None = None, device: str | None = None,
                 chunk_frames: int = 4096, qp: str = "auto") -> None:
        model = getattr(model, "model", model)
        self.contact = KneeContact(model, side, body_mass_kg=body_mass_kg, condyle_offsets_m=condyle_offsets_m)
        self.inverse_dynamics = InverseDynamics(model, InverseDynamicsParams(
            reaction_bodies=(self.contact.tibia,), gravity_m_s2=self.contact.gravity_m_s2))
        self.static_optimization = StaticOptimization(model, so_params or SOParams())
        self.device = device or default_device()
        self._id = WarpInverseDynamics(self.inverse_dynamics, device=self.device, chunk_frames=chunk_frames)
        self._so = WarpStaticOptimization(self.static_optimization, device=self.device, chunk_frames=chunk_frames,
                                          qp=qp)

    def run(self, qpos: np.ndarray, qvel: np.ndarray, qacc: np.ndarray, externals: Sequence[ExternalWrenchTrial],
            time_s: np.ndarray) -> tuple[SOTrial, KneeContactTrial]:
        qpos, qvel, qacc = (np.asarray(x, dtype=float) for x in (qpos, qvel, qacc))
        jm = self._id.run(qpos, qvel, qacc, list(externals), time_s=time_s)
        trial, F_mus, M_mus = self._so.run_with_contact(qpos, qvel, jm.coordinate_force, self.contact)
        contact = self.contact._assemble(jm.reaction_force_n[:, 0, :], jm.reaction_moment_nm[:, 0, :], F_mus, M_mus,
                                         np.asarray(time_s, dtype=float))
        return trial, contact
