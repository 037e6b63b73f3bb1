"""The faster CPU path of issue 22 equals the one it replaced.

* Inverse dynamics skips tendon wrapping, transmission, collision and sensors (``InverseDynamics._mj_inverse``):
  ``qfrc_inverse`` and ``cfrc_int`` bit-identical to ``mujoco.mj_inverse`` on random states of MyoLeg and
  MyoFullBody; with ``subtract_passive`` (tendon springs/dampers count) the stage keeps plain ``mj_inverse``.
* Static optimisation computes ``actuator_velocity = moment @ qvel`` itself instead of ``mj_fwdVelocity``: equal
  to MuJoCo's to rounding (1e-14 relative), and a whole SO step equal to one through ``mj_fwdVelocity``.
"""
from __future__ import annotations

import mujoco
import numpy as np
import pytest

from models.body.registry import load_model
from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
from models.muscles.qp_kernels import actuator_velocity
from models.muscles.static_optimization import StaticOptimization


@pytest.fixture(scope="module", params=["myoleg", "myofullbody"])
def model(request):
    return load_model(request.param).model


def _states(m: mujoco.MjModel, n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield (m.qpos0 + 0.05 * rng.standard_normal(m.nq), rng.standard_normal(m.nv), rng.standard_normal(m.nv))


def test_inverse_dynamics_without_tendons_is_bit_identical_to_mj_inverse(model):
    inv = InverseDynamics(model, InverseDynamicsParams(reaction_bodies=("tibia_l",)))
    assert inv.skips_tendons
    ref = mujoco.MjData(inv.model)
    for q, qd, qdd in _states(inv.model, 20, 1):
        for d in (inv.data, ref):
            d.qpos[:], d.qvel[:], d.qacc[:] = q, qd, qdd
        inv._mj_inverse()
        mujoco.mj_inverse(inv.model, ref)
        mujoco.mj_rnePostConstraint(inv.model, inv.data)
        mujoco.mj_rnePostConstraint(inv.model, ref)
        np.testing.assert_array_equal(inv.data.qfrc_inverse, ref.qfrc_inverse)
        np.testing.assert_array_equal(inv.data.cfrc_int, ref.cfrc_int)
    assert np.any(ref.ten_length != 0) and np.all(inv.data.ten_length == 0)   # the tendons really were skipped


def test_subtract_passive_keeps_the_full_mj_inverse(model):
    assert not InverseDynamics(model, InverseDynamicsParams(subtract_passive=True)).skips_tendons


def test_actuator_velocity_kernel_equals_mj_fwd_velocity(model):
    d = mujoco.MjData(model)
    out = np.zeros(model.nu)
    for q, qd, _ in _states(model, 10, 2):
        d.qpos[:], d.qvel[:] = q, qd
        mujoco.mj_fwdPosition(model, d)
        mujoco.mj_fwdVelocity(model, d)
        actuator_velocity(d.moment_rownnz, d.moment_rowadr, d.moment_colind, d.actuator_moment, d.qvel, out)
        np.testing.assert_allclose(out, d.actuator_velocity, rtol=0, atol=1e-14 * np.abs(d.actuator_velocity).max())


def test_so_step_equals_one_through_mj_fwd_velocity(model):
    so = StaticOptimization(model)
    rng = np.random.default_rng(3)
    fast, slow = so.allocate_frame(), so.allocate_frame()
    for q, qd, _ in _states(so.model, 5, 4):
        tau = np.zeros(so.n_coordinates)
        tau[so.solved_index] = 5.0 * rng.standard_normal(so.solved_index.size)
        so.reset()
        so.step(q, qd, tau, fast)
        # the same frame with MuJoCo's full velocity stage
        d = so.data
        mujoco.mj_fwdVelocity(so.model, d)
        vel = d.actuator_velocity.copy()
        so._muscle_state()
        np.testing.assert_allclose(d.actuator_velocity, vel, rtol=1e-13, atol=1e-15)
        so.reset()
        mujoco.mj_fwdVelocity(so.model, d)
        so._set_muscle_input(1.0)
        mujoco.mj_fwdActuation(so.model, d)
        F1 = d.actuator_force.copy()
        so._set_muscle_input(0.0)
        mujoco.mj_fwdActuation(so.model, d)
        so._solve_state(d.moment_rownnz, d.moment_rowadr, d.moment_colind, d.actuator_moment, F1,
                        d.actuator_force, tau, slow)
        np.testing.assert_allclose(fast.activation, slow.activation, rtol=0, atol=1e-9)
        np.testing.assert_allclose(fast.muscle_force_n, slow.muscle_force_n, rtol=1e-9, atol=1e-9)
        assert fast.status == slow.status == 0


def test_muscle_passive_force_kernel_is_mujocos_act0_force_bit_for_bit(model):
    from models.body.registry import is_muscle
    from models.muscles.qp_kernels import muscle_passive_force

    so = StaticOptimization(model)
    assert so._bias_by_kernel
    m = so.model
    d = mujoco.MjData(m)
    mus = np.flatnonzero(is_muscle(m)).astype(np.int64)
    out = np.zeros(m.nu)
    nonzero = 0
    rng = np.random.default_rng(5)
    for _ in range(10):
        d.qpos[:] = m.qpos0 + 0.3 * rng.standard_normal(m.nq)   # wide poses: all three pieces of the curve
        d.qvel[:] = rng.standard_normal(m.nv)
        d.act[:] = 0.0
        mujoco.mj_fwdPosition(m, d)
        mujoco.mj_fwdVelocity(m, d)
        mujoco.mj_fwdActuation(m, d)
        muscle_passive_force(d.actuator_length, mus, so._lengthrange, so._acc0, so._biasprm, out)
        np.testing.assert_array_equal(out[mus], d.actuator_force[mus])
        nonzero += int(np.count_nonzero(out[mus]))
    assert nonzero > 100
