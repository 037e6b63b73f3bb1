"""The model a static-optimisation stage runs on: a private copy with its own settings, or the caller's model itself.

:class:`models.muscles.static_optimization.StaticOptimization` reads muscle forces from ``mj_fwdActuation`` at
activation 1 and 0, so its copy of the model switches on actuation and switches off, on the muscles, early
activation (``actearly``) and the control and activation clamps (``ctrllimited``, ``actlimited``): the force must
read exactly the activation written.  On a model where those settings are already inert
(:func:`settings_inert`: actuation on, no muscle with ``actearly``, and each muscle's input range, where limited,
holding 0 and 1, the only values the stage writes) the copy would compute the same forces bit for bit, so with
``share=True`` the stage may read the model itself: no copy (MyoLeg's model is 27 MB with its meshes and
textures; a copy costs 4-14 ms, mostly page faults on fresh memory).  MyoLeg, MyoFullBody and their scaled
copies qualify (ctrl-limited 0..1 / -1..1, but their muscles have an activation state, whose range is unlimited).

A shared model is read only by the stage; the caller must not modify it while the stage is in use.

Pure computation: numpy and mujoco.
"""
from __future__ import annotations

import copy

import mujoco
import numpy as np

__all__ = ["settings_inert", "so_stage_model"]


def settings_inert(m: mujoco.MjModel, muscles: np.ndarray) -> bool:
    """Whether the stage's settings leave every force it reads unchanged on ``m`` (``muscles``: actuator ids)."""
    if int(m.opt.disableflags) & int(mujoco.mjtDisableBit.mjDSBL_ACTUATION):
        return False
    mus = np.asarray(muscles, dtype=np.int64)
    if np.any(m.actuator_actearly[mus]):
        return False
    has_act = m.actuator_actnum[mus] > 0
    limited = np.where(has_act, m.actuator_actlimited[mus], m.actuator_ctrllimited[mus]).astype(bool)
    rng = np.where(has_act[:, None], m.actuator_actrange[mus], m.actuator_ctrlrange[mus])
    return bool(np.all(~limited | ((rng[:, 0] <= 0.0) & (rng[:, 1] >= 1.0))))


def so_stage_model(model: mujoco.MjModel, muscles: np.ndarray, share: bool = False) -> tuple[mujoco.MjModel, bool]:
    """``(model the stage runs on, shared)``: ``model`` itself when ``share`` and :func:`settings_inert`, else a
    deep copy with actuation on and the muscles' ``actearly``, ``ctrllimited`` and ``actlimited`` off."""
    if share and settings_inert(model, muscles):
        return model, True
    m = copy.deepcopy(model)
    mus = np.asarray(muscles, dtype=np.int64)
    m.opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
    m.actuator_actearly[mus] = 0
    m.actuator_ctrllimited[mus] = 0
    m.actuator_actlimited[mus] = 0
    return m, False
