"""The faster CPU path of issue 22 equals the one it replaced.

* Inverse dynamics skips tendon wrapping, transmission, collision and sensors (``InverseDynamics._mj_inverse``):
  ``qfrc_inverse`` and ``cfrc_int`` bit-identical to ``mujoco.mj_inverse`` on random states of MyoLeg and
  MyoFullBody; with ``subtract_passive`` (tendon springs/dampers count) the stage keeps plain ``mj_inverse``.
* Static optimisation computes ``actuator_velocity = moment @ qvel`` itself instead of ``mj_fwdVelocity``: equal
  to MuJoCo's to rounding (1e-14 relative), and a whole SO step equal to one through ``mj_fwdVelocity``.
* The compiled SO loop (:mod:`models.muscles.compiled_so`) takes the muscles' forces at activation 1 and 0 from
  ``mju_muscleGain``/``mju_muscleBias`` instead of ``mj_fwdActuation``: bit for bit; and the actuator velocities
  and moment arms in one pass: bit for bit equal to the two kernels.  (Its ID part, ``mj_comVel`` + ``mj_passive``
  instead of ``mj_fwdVelocity``, is tested bit for bit against the Python ID in ``tests/test_compiled_chain.py``.)
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


def _so_state(so, d, q, qd):
    """Muscle geometry of ``so``'s model at ``(q, qd)`` on ``d`` (positions, transmission, actuator velocities)."""
    m = so.model
    d.qpos[:], d.qvel[:] = q, qd
    mujoco.mj_fwdPosition(m, d)
    actuator_velocity(d.moment_rownnz, d.moment_rowadr, d.moment_colind, d.actuator_moment, d.qvel,
                      d.actuator_velocity)


def test_compiled_muscle_forces_equal_mj_fwd_actuation_bit_for_bit(model):
    from models.dynamics import mj_capi
    from models.dynamics.compiled_id import mj_views
    from models.muscles.compiled_so import forces_by_capi, muscle_forces, so_const
    from models.muscles.static_optimization import STATUS_INVALID_INPUT

    if not mj_capi.capi_available()[0]:
        pytest.skip(mj_capi.capi_available()[1])
    so = StaticOptimization(model)
    assert forces_by_capi(so)
    m, mus = so.model, so.muscle_ids
    d = mujoco.MjData(m)
    S = so_const(so, STATUS_INVALID_INPUT)
    D = mj_views(d)
    nonzero = 0
    for q, qd, _ in _states(m, 8, 6):
        _so_state(so, d, q + 0.2 * np.sin(np.arange(m.nq)), 3.0 * qd)   # wide poses, fast: all curve pieces
        d.act[:] = 1.0
        mujoco.mj_fwdActuation(m, d)
        F1 = d.actuator_force.copy()
        d.act[:] = 0.0
        mujoco.mj_fwdActuation(m, d)
        F0 = d.actuator_force.copy()
        d.actuator_force[:] = np.nan
        muscle_forces(D, S)
        np.testing.assert_array_equal(S.F1[mus], F1[mus])
        np.testing.assert_array_equal(d.actuator_force[mus], F0[mus])
        assert np.all(d.act == 0.0)
        nonzero += int(np.count_nonzero(F0[mus]))
    assert nonzero > 10


def test_moment_arms_and_velocity_in_one_pass_equal_the_two_kernels(model):
    from models.dynamics.compiled_id import mj_views
    from models.muscles.compiled_so import moment_arms_velocity, so_const
    from models.muscles.qp_kernels import moment_arms
    from models.muscles.static_optimization import STATUS_INVALID_INPUT

    so = StaticOptimization(model)
    m = so.model
    d = mujoco.MjData(m)
    S = so_const(so, STATUS_INVALID_INPUT)
    R, rcnt, ridx, mark = so._R.copy(), so._rcnt.copy(), so._ridx.copy(), so._mark.copy()
    vel = np.zeros(m.nu)
    for q, qd, _ in _states(m, 5, 7):
        _so_state(so, d, q, qd)
        vel[:] = d.actuator_velocity
        moment_arms(d.moment_rownnz, d.moment_rowadr, d.moment_colind, d.actuator_moment, so.muscle_ids,
                    so._dof_coord, so._dof_factor, R, rcnt, ridx, mark)
        d.actuator_velocity[:] = np.nan
        moment_arms_velocity(mj_views(d), S)
        np.testing.assert_array_equal(d.actuator_velocity, vel)
        np.testing.assert_array_equal(S.R, R)
        np.testing.assert_array_equal(S.rcnt, rcnt)
        np.testing.assert_array_equal(S.mark, mark)


def test_finite_inputs_compiled_checks_equal_the_numpy_rule():
    """``finite_inputs``: every state and load finite, and the point finite where a load is applied."""
    from models.dynamics.compiled_id import finite_inputs
    from models.dynamics.wrenches import ExternalWrenchTrial

    rng = np.random.default_rng(8)
    n, t = 12, np.arange(12) / 100.0

    def numpy_rule(q, qd, qdd, ext):
        if not (np.isfinite(q).all() and np.isfinite(qd).all() and np.isfinite(qdd).all()):
            return False
        for e in ext:
            if not (np.isfinite(e.force_n).all() and np.isfinite(e.free_moment_nm).all()):
                return False
            loaded = np.any(e.force_n != 0, axis=1) | np.any(e.free_moment_nm != 0, axis=1)
            if not np.isfinite(e.point_m[loaded]).all():
                return False
        return True

    seen = set()
    for k in range(200):
        q, qd, qdd = rng.standard_normal((n, 5)), rng.standard_normal((n, 4)), rng.standard_normal((n, 4))
        F, T, P = rng.standard_normal((n, 3)), np.zeros((n, 3)), rng.standard_normal((n, 3))
        F[rng.random(n) < 0.4] = 0.0                       # unloaded rows ...
        P[np.all(F == 0, axis=1) & (rng.random(n) < 0.7)] = np.nan   # ... with NaN points: allowed
        target = (q, qd, qdd, F, T, P)[k % 6]
        if k % 3 == 0:
            target[rng.integers(n), rng.integers(target.shape[1])] = (np.nan, np.inf, -np.inf)[k % 3 // 1 % 3]
        ext = [ExternalWrenchTrial("calcn_l", F, P, T, t)]
        want = numpy_rule(q, qd, qdd, ext)
        assert finite_inputs(q, qd, qdd, ext) == want
        seen.add(want)
    assert seen == {True, False}
