"""MuJoCo Warp backend of inverse dynamics: every frame of a trial as one world of a batch (``nworld`` = frames).

:class:`WarpInverseDynamics` takes an :class:`~models.dynamics.inverse_dynamics.InverseDynamics` stage (its private
model: constraints, actuation and, by default, springs/dampers/armature off) and runs the same computation as
:meth:`InverseDynamics.run` with MuJoCo Warp (``mujoco_warp``) kernels over all frames at once:

* ``mujoco_warp.inverse`` (position and velocity stages, then ``qfrc_inverse = M qacc + bias - passive``),
* the external loads as MuJoCo does them: each wrench as ``xfrc_applied`` at the loaded body's centre of mass
  (``force = F``, ``torque = (p - xipos) x F + T``), mapped to generalised forces by ``mujoco_warp.xfrc_accumulate``
  (``J^T w``) and subtracted: ``tau = qfrc_inverse - J^T w``;
* ``mujoco_warp.rne_postconstraint`` for the intersegmental wrenches (``cfrc_int``) of ``reaction_bodies``.

The projection on the independent coordinates (``N(q)^T tau``), the root residual and the reaction wrenches at the
body origins are then evaluated on the host in float64, vectorised over frames, with the same formulas as
:meth:`InverseDynamics.step`.

Precision: MuJoCo Warp computes in **float32** (Warp's ``float``).  Joint moments agree with the float64 CPU stage
to ~1e-5 of their peak magnitude (measured: ``tests/test_warp_backend.py``), not to the 1e-9 of two float64 paths.

Device: ``"cuda"`` when Warp sees a CUDA device, else Warp's ``"cpu"`` device (:func:`default_device`).  Frames are
processed in chunks of ``chunk_frames`` worlds (memory on a GPU; on the CPU device one chunk is fine).

This module is pure computation: numpy, mujoco, mujoco_warp/warp (imported when a stage is built) and other
``models/`` modules.
"""
from __future__ import annotations

import functools
from typing import Sequence

import mujoco
import numpy as np

from models.dynamics.inverse_dynamics import InverseDynamics, JointMomentsTrial
from models.dynamics.wrenches import ExternalWrenchTrial

__all__ = ["warp_available", "default_device", "WarpInverseDynamics", "BACKENDS", "check_backend"]

BACKENDS = ("cpu", "warp")


def check_backend(backend: str) -> str:
    """``backend`` validated (``"cpu"`` or ``"warp"``); ``"warp"`` also needs ``mujoco_warp`` importable."""
    if backend not in BACKENDS:
        raise ValueError(f"backend = {backend!r}: allowed {', '.join(BACKENDS)}")
    if backend == "warp":
        ok, why = warp_available()
        if not ok:
            raise ValueError(f"backend = 'warp': {why}")
    return backend


@functools.lru_cache(maxsize=1)
def warp_available() -> tuple[bool, str]:
    """``(True, version)`` when ``mujoco_warp`` and ``warp`` import, else ``(False, reason)``."""
    try:
        import mujoco_warp  # noqa: F401
        import warp as wp
    except Exception as exc:  # ImportError, or a broken wheel
        return False, f"mujoco_warp is not importable ({type(exc).__name__}: {exc}); pip install 'mujoco-warp==4.0.0'"
    return True, f"warp {wp.__version__}"


def _warp():
    import mujoco_warp as mjw
    import warp as wp

    wp.config.quiet = True
    wp.init()
    return wp, mjw


def default_device() -> str:
    """``"cuda"`` when Warp has a CUDA device, else ``"cpu"``."""
    wp, _ = _warp()
    return "cuda" if wp.is_cuda_available() else "cpu"


def _np(a) -> np.ndarray:
    return np.asarray(a.numpy(), dtype=float)


class WarpStage:
    """A CPU stage's model on MuJoCo Warp: the device, the chunk size (frames per batch) and the Warp model.

    ``device``: a Warp device name (``"cpu"``, ``"cuda"``, ``"cuda:0"``) or ``None`` for :func:`default_device`.
    """

    def __init__(self, stage, *, device: str | None = None, chunk_frames: int = 4096) -> None:
        wp, mjw = _warp()
        self.stage = stage
        self.device = device or default_device()
        if int(chunk_frames) < 1:
            raise ValueError(f"chunk_frames = {chunk_frames!r}: must be >= 1")
        self.chunk_frames = int(chunk_frames)
        self._wp, self._mjw = wp, mjw
        with wp.ScopedDevice(self.device):
            self._mw = mjw.put_model(stage.model)
        self._data0 = mujoco.MjData(stage.model)


class WarpInverseDynamics(WarpStage):
    """Batched inverse dynamics of an :class:`InverseDynamics` stage's model on MuJoCo Warp (module docstring)."""

    stage: InverseDynamics

    def run(self, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray, externals: Sequence[ExternalWrenchTrial] = (),
            time_s: np.ndarray | None = None) -> JointMomentsTrial:
        """As :meth:`InverseDynamics.run` (same inputs, same :class:`JointMomentsTrial`), all frames batched."""
        st = self.stage
        q, qd, qdd = (np.asarray(x, dtype=float) for x in (q, qd, qdd))
        n = q.shape[0]
        if q.shape != (n, st.nq) or qd.shape != (n, st.nv) or qdd.shape != (n, st.nv):
            raise ValueError(f"run expects q (N, {st.nq}), qd and qdd (N, {st.nv}); got {q.shape}, {qd.shape}, "
                             f"{qdd.shape}")
        for e in externals:
            if e.n_frames != n:
                raise ValueError(f"external load on {e.body!r} has {e.n_frames} frames, the kinematics {n}")
            st.body_id(e.body)
        trial = st.allocate_trial(n, time_s)
        for a in range(0, n, self.chunk_frames):
            b = min(n, a + self.chunk_frames)
            self._chunk(q[a:b], qd[a:b], qdd[a:b], externals, a, b, trial)
        return trial

    def _chunk(self, q, qd, qdd, externals, a: int, b: int, trial: JointMomentsTrial) -> None:
        wp, mjw, st = self._wp, self._mjw, self.stage
        m = st.model
        n = b - a
        with wp.ScopedDevice(self.device):
            d = mjw.put_data(m, self._data0, nworld=n)
            d.qpos.assign(q.astype(np.float32))
            d.qvel.assign(qd.astype(np.float32))
            d.qacc.assign(qdd.astype(np.float32))
            mjw.inverse(self._mw, d)
            xipos = _np(d.xipos)                                     # (n, nbody, 3)
            xfrc = np.zeros((n, m.nbody, 6))
            for e in externals:
                bid = st.body_id(e.body)
                F, P, T = e.force_n[a:b], e.point_m[a:b], e.free_moment_nm[a:b]
                loaded = np.any(F != 0.0, axis=1) | np.any(T != 0.0, axis=1)
                r = np.where(loaded[:, None], P - xipos[:, bid], 0.0)
                Fl = np.where(loaded[:, None], F, 0.0)
                Tl = np.where(loaded[:, None], T, 0.0)
                # MuJoCo's spatial order in xfrc_applied: force (3) then torque (3)
                xfrc[:, bid, :3] += Fl
                xfrc[:, bid, 3:] += np.cross(r, Fl) + Tl
            d.xfrc_applied.assign(xfrc.astype(np.float32))
            qfrc_ext = wp.zeros((n, m.nv), dtype=float)
            mjw.xfrc_accumulate(self._mw, d, qfrc_ext)
            tau = _np(d.qfrc_inverse) - _np(qfrc_ext)
            trial.generalized_force[a:b] = tau
            st.couplings.project(q, tau, out=trial.coordinate_force[a:b])
            xmat = _np(d.xmat).reshape(n, m.nbody, 3, 3)
            if st._root_dof >= 0:
                r0 = st._root_dof
                trial.residual_force_n[a:b] = tau[:, r0:r0 + 3]
                trial.residual_moment_nm[a:b] = np.einsum("nij,nj->ni", xmat[:, st._root_body], tau[:, r0 + 3:r0 + 6])
            if st._reaction_ids.size:
                mjw.rne_postconstraint(self._mw, d)
                cfrc = _np(d.cfrc_int)                               # (n, nbody, 6): torque, force (MuJoCo order)
                com = _np(d.subtree_com)
                xpos = _np(d.xpos)
                for k, bid in enumerate(st._reaction_ids):
                    cf = cfrc[:, bid]
                    r = com[:, m.body_rootid[bid]] - xpos[:, bid]
                    f = cf[:, 3:6]
                    w = cf[:, 0:3] + np.cross(r, f)
                    R = xmat[:, bid]
                    trial.reaction_moment_nm[a:b, k] = np.einsum("nj,nji->ni", w, R)
                    trial.reaction_force_n[a:b, k] = np.einsum("nj,nji->ni", f, R)
