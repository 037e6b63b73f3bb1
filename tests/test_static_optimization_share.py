"""StaticOptimization(share_model=True) (models/muscles/so_stage_model.py): the caller's model, read only, where
the private copy's settings are inert; the same results bit for bit; a copy where they are not."""
from __future__ import annotations

import copy

import mujoco
import numpy as np
import pytest
from _support import hinge_sinusoid_poses

from models.body.registry import is_muscle, load_model
from models.muscles.so_stage_model import settings_inert, so_stage_model
from models.muscles.static_optimization import StaticOptimization

FIELDS = ("activation", "muscle_force_n", "muscle_moment_nm", "reserve_nm", "residual_nm", "cost", "iterations",
          "status")


def _states(m, n: int = 25, seed: int = 5):
    """Smooth poses within the joint ranges, small random velocities, and the generator for the moments."""
    rng = np.random.default_rng(seed)
    q = hinge_sinusoid_poses(m, n, rng, 0.2)
    return q, rng.normal(0.0, 0.3, (n, m.nv)), rng


def _all_arrays(m) -> dict[str, np.ndarray]:
    return {k: np.array(getattr(m, k)) for k in dir(m) if not k.startswith("_")
            and isinstance(getattr(m, k, None), np.ndarray)}


@pytest.mark.parametrize("name", ["myoleg", "myofullbody"])
def test_shared_model_gives_the_private_copys_results(name):
    m = load_model(name).model
    before = _all_arrays(m)
    flags = (int(m.opt.disableflags), int(m.opt.enableflags))
    shared = StaticOptimization(m, share_model=True)
    private = StaticOptimization(m)
    assert shared.shares_model and shared.model is m
    assert not private.shares_model and private.model is not m
    q, qd, rng = _states(m)
    tau = rng.normal(0.0, 20.0, (q.shape[0], private.n_coordinates))
    for compiled in (True, False):
        a = shared.run(q, qd, tau, compiled=compiled)
        b = private.run(q, qd, tau, compiled=compiled)
        for f in FIELDS:
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f"{f} compiled={compiled}")
    assert np.all(np.isfinite(a.activation)) and np.abs(a.muscle_force_n).max() > 1.0
    after = _all_arrays(m)                                 # the shared stage never wrote the model
    assert (int(m.opt.disableflags), int(m.opt.enableflags)) == flags
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)


def test_settings_that_matter_make_a_copy():
    base = load_model("myoleg").model
    mus = np.flatnonzero(is_muscle(base))
    assert settings_inert(base, mus)
    cases = []
    m = copy.deepcopy(base)
    m.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
    cases.append(("actuation off", m))
    m = copy.deepcopy(base)
    m.actuator_actearly[mus[3]] = 1
    cases.append(("actearly", m))
    m = copy.deepcopy(base)
    m.actuator_actlimited[mus[0]] = 1
    m.actuator_actrange[mus[0]] = (0.0, 0.8)                 # would clamp the activation 1 the stage writes
    cases.append(("activation clamp below 1", m))
    for what, m in cases:
        assert not settings_inert(m, mus), what
        so = StaticOptimization(m, share_model=True)
        assert not so.shares_model and so.model is not m, what
        own = so.model
        assert not (int(own.opt.disableflags) & int(mujoco.mjtDisableBit.mjDSBL_ACTUATION))
        assert not own.actuator_actearly[mus].any() and not own.actuator_actlimited[mus].any()
    m = copy.deepcopy(base)                                  # a clamp that holds 0..1 is inert: shared
    m.actuator_actlimited[mus] = 1
    m.actuator_actrange[mus] = (0.0, 1.0)
    assert settings_inert(m, mus)
    got, shared = so_stage_model(m, mus, share=True)
    assert shared and got is m
    got, shared = so_stage_model(m, mus, share=False)
    assert not shared and got is not m and not got.actuator_actlimited[mus].any()
