"""Static optimisation with MuJoCo's muscle model (models/muscles/static_optimization.py, models/muscles/qp_kernels.py).

What is checked: the muscle model is affine in activation and the stage reads it right (act, signs, coupled knee
moment arms); the solver's answer is a KKT point to 1e-8 and matches scipy's bounded least squares (BVLS) and SLSQP on
random and real frames; muscles + reserves reproduce the coordinate moments, also through an independent
``mj_forward``; replay (run == repeated step), warm == cold, no allocation per step, NaN handling; MyoFullBody frames
made from random activations are solved with (numerically) zero reserves; the real trial GC5 PS ss1.
"""
import math
import tracemalloc

import mujoco
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import lsq_linear, minimize

from models.io.lab_files import shared_data_dir
from models.body.registry import load_model
from models.muscles.qp_kernels import solve_activation_qp
from models.muscles.static_optimization import (STATUS_CONVERGED, STATUS_INVALID_INPUT, STATUS_ROUNDING_FLOOR, SOParams,
                                                StaticOptimization)

PS = shared_data_dir() / "GC5_PS"
needs_data = pytest.mark.skipif(not (PS / "trc" / "PS_ngait_og_ss1.trc").exists(), reason=f"shared data absent at {PS}")

KNEE_MUSCLES = ("vasmed", "vasint", "vaslat", "recfem", "bflh", "bfsh", "semimem", "semiten", "gasmed", "gaslat")


# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def leg():
    return load_model("myoleg")


@pytest.fixture(scope="module")
def so_leg(leg):
    return StaticOptimization(leg, SOParams())


@pytest.fixture(scope="module")
def fullbody():
    return load_model("myofullbody")


def random_state(mm, rng, spread=0.4, speed=0.5):
    """A pose within ``spread`` of each limited joint's range around qpos0 (couplings applied) and velocities."""
    m = mm.model
    q = m.qpos0.copy()
    for j in range(m.njnt):
        if int(m.jnt_type[j]) in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)) and \
                m.jnt_limited[j]:
            lo, hi = m.jnt_range[j]
            a = q[m.jnt_qposadr[j]]
            q[m.jnt_qposadr[j]] = np.clip(a + spread * rng.uniform(lo - a, hi - a), lo, hi)
    mm.apply_joint_couplings(q)
    v = rng.normal(size=m.nv) * speed
    return q, v


def moments_from_activations(so, mm, q, v, act):
    """Coordinate moments of the muscles at activation ``act``, by an independent mj_forward on the user's model."""
    m = mm.model
    d = mujoco.MjData(m)
    q, v = q.copy(), v.copy()
    so.couplings.apply(q, v)
    d.qpos[:], d.qvel[:] = q, v
    d.act[m.actuator_actadr[so.muscle_ids]] = act
    mujoco.mj_forward(m, d)
    return so.couplings.project(q, d.qfrc_actuator.copy())


def kkt(pb, a, s):
    """KKT residuals of  min a'a + s'Ps  s.t.  C a + s = b, 0 <= a <= 1  at (a, s), multiplier lam = 2 P s."""
    lam = 2.0 * pb.reserve_penalty * s
    grad = 2.0 * a - pb.C.T @ lam  # d/da of the Lagrangian before the bound multipliers
    lower = a < 0.5
    mu_lo = np.where(lower, np.maximum(grad, 0.0), 0.0)
    mu_hi = np.where(~lower, np.maximum(-grad, 0.0), 0.0)
    return {
        "stationarity": float(np.max(np.abs(grad - mu_lo + mu_hi))),
        "primal": float(max(np.max(np.abs(pb.C @ a + s - pb.b)), np.max(np.maximum(-a, 0)), np.max(np.maximum(a - 1, 0)))),
        "complementarity": float(max(np.max(np.abs(mu_lo * a)), np.max(np.abs(mu_hi * (1.0 - a))))),
    }


def bvls_reference(C, b, P):
    """The same QP as bounded least squares: || [I; sqrt(P) C] a - [0; sqrt(P) b] ||^2, 0 <= a <= 1 (exact BVLS)."""
    n, m = C.shape
    sp = np.sqrt(P)
    A = np.vstack([np.eye(m), sp[:, None] * C])
    y = np.r_[np.zeros(m), sp * b]
    a = lsq_linear(A, y, bounds=(0.0, 1.0), method="bvls", tol=1e-15, max_iter=10000).x
    s = b - C @ a
    return a, s, float(a @ a + P @ s ** 2)


def solved_reserves(so, frame):
    return frame.reserve_nm[so.solved_index]


# ------------------------------------------------------------------------------------------------ the muscle model


def test_muscle_force_is_affine_in_activation_and_read_from_act(leg, so_leg):
    m = leg.model
    assert so_leg.muscle_input == "act"  # dyntype muscle, one activation state: the force reads data.act
    assert set(m.actuator_dyntype[leg.muscle_ids]) == {int(mujoco.mjtDyn.mjDYN_MUSCLE)}
    rng = np.random.default_rng(3)
    q, v = random_state(leg, rng)
    pb = so_leg.problem(q, v, np.zeros(so_leg.n_coordinates))
    assert np.all(pb.active_force_n >= 0) and np.all(pb.passive_force_n >= 0)
    assert pb.active_force_n.max() > 100.0  # not a degenerate state
    d = mujoco.MjData(m)
    qc, vc = q.copy(), v.copy()
    so_leg.couplings.apply(qc, vc)
    d.qpos[:], d.qvel[:] = qc, vc
    for _ in range(3):
        a = rng.uniform(0, 1, so_leg.n_muscles)
        d.act[m.actuator_actadr[leg.muscle_ids]] = a
        d.ctrl[:] = rng.uniform(0, 1, m.nu)  # ctrl must not matter
        mujoco.mj_forward(m, d)
        tension = -d.actuator_force[leg.muscle_ids]
        np.testing.assert_allclose(tension, pb.active_force_n * a + pb.passive_force_n, rtol=1e-10, atol=1e-8)


# a knee with a dyntype-muscle muscle (force reads act), a dyntype-none one (force reads ctrl) and a motor (ignored)
MIXED_XML = """
<mujoco model="mixed">
  <worldbody>
    <body name="thigh" pos="0 0 1">
      <joint name="hip" type="hinge" axis="0 1 0" range="-1 1"/>
      <geom type="capsule" fromto="0 0 0 0 0 -0.4" size="0.04" mass="5"/>
      <site name="front_o" pos="0.05 0 -0.1"/><site name="back_o" pos="-0.05 0 -0.1"/>
      <body name="shank" pos="0 0 -0.4">
        <joint name="knee" type="hinge" axis="0 1 0" range="-2 0"/>
        <geom type="capsule" fromto="0 0 0 0 0 -0.4" size="0.035" mass="3"/>
        <site name="front_i" pos="0.04 0 -0.08"/><site name="back_i" pos="-0.04 0 -0.08"/>
      </body>
    </body>
  </worldbody>
  <tendon>
    <spatial name="t_front"><site site="front_o"/><site site="front_i"/></spatial>
    <spatial name="t_back"><site site="back_o"/><site site="back_i"/></spatial>
  </tendon>
  <actuator>
    <muscle name="front" tendon="t_front" force="800" lengthrange="0.2 0.4"/>
    <general name="back" tendon="t_back" dyntype="none" gaintype="muscle" biastype="muscle" ctrllimited="true"
             ctrlrange="0 1" lengthrange="0.2 0.4" gainprm="0.75 1.05 600 200 0.5 1.6 1.5 1.3 1.2"
             biasprm="0.75 1.05 600 200 0.5 1.6 1.5 1.3 1.2"/>
    <motor name="motor" joint="hip" gear="1"/>
  </actuator>
</mujoco>
"""


def test_muscles_without_activation_state_read_ctrl_and_motors_are_ignored(tmp_path):
    path = tmp_path / "mixed.xml"
    path.write_text(MIXED_XML)
    mm = load_model(path, cache=False)
    so = StaticOptimization(mm, SOParams(reserve_weight=1e8))
    assert so.muscle_names == ("front", "back") and so.muscle_input == "act+ctrl"
    # the muscles cross the knee only: the hip (the motor's joint) is left to its reserve
    assert so.solved_coordinates == ("knee",) and so.reserve_only_coordinates == ("hip",) and so.root_coordinates == ()
    m, d = mm.model, mujoco.MjData(mm.model)
    q, v = np.array([0.2, -0.7]), np.array([0.3, -0.5])
    pb = so.problem(q, v, np.zeros(2))
    for act in ([0.3, 0.8], [1.0, 0.0], [0.55, 0.45]):
        d.qpos[:], d.qvel[:] = q, v
        d.act[0], d.ctrl[1], d.ctrl[2] = act[0], act[1], 7.0  # the motor's torque is not a muscle's
        mujoco.mj_forward(m, d)
        np.testing.assert_allclose(-d.actuator_force[:2], pb.active_force_n * act + pb.passive_force_n, rtol=1e-12)
        tau = pb.moment_arm_m.T @ (-d.actuator_force[:2]) + np.array([3.0, 0.0])  # + 3 N m at the hip
        fr = so.allocate_frame()
        so.step(q, v, tau, fr)
        assert fr.status == STATUS_CONVERGED
        assert abs(fr.reserve_nm[1]) < 1e-6 and fr.reserve_nm[0] == pytest.approx(3.0, abs=1e-12)
        np.testing.assert_allclose(fr.muscle_moment_nm[1], tau[1], atol=1e-6)
        assert fr.cost <= np.dot(act, act) + 1e-6


def test_moment_arms_are_the_coupled_anatomical_ones(leg, so_leg):
    """R equals the registry's coupled_muscle_moment_arms on the independent coordinates (the knee through the
    patella), and the vasti extend the knee (negative moment arm about knee_angle, flexion positive)."""
    rng = np.random.default_rng(4)
    q, v = random_state(leg, rng)
    q[leg.joint_qpos_index("knee_angle_r")] = 1.2
    leg.apply_joint_couplings(q)
    pb = so_leg.problem(q, v, np.zeros(so_leg.n_coordinates))
    d = mujoco.MjData(leg.model)
    d.qpos[:] = q
    mujoco.mj_forward(leg.model, d)
    ref = leg.coupled_muscle_moment_arms(d)[:, so_leg.couplings.independent_dofs]
    np.testing.assert_allclose(pb.moment_arm_m, ref, atol=1e-12)
    knee = so_leg.coordinate_names.index("knee_angle_r")
    partial = leg.muscle_moment_arms(d)[:, leg.joint_dof_index("knee_angle_r")]
    vi = so_leg.muscle_names.index("vasint_r")
    assert pb.moment_arm_m[vi, knee] < -0.01 and abs(pb.moment_arm_m[vi, knee] - partial[vi]) > 0.01
    for name in ("bflh_r", "bfsh_r", "semimem_r", "semiten_r"):
        assert pb.moment_arm_m[so_leg.muscle_names.index(name), knee] > 0.005


def test_solved_and_reserve_only_coordinates(leg, so_leg):
    assert so_leg.root_coordinates == ("root_tx", "root_ty", "root_tz", "root_rx", "root_ry", "root_rz")
    assert len(so_leg.solved_coordinates) == 14 and "knee_angle_l" in so_leg.solved_coordinates
    assert so_leg.reserve_only_coordinates == ()
    sub = StaticOptimization(leg, SOParams(solved_coordinates=("knee_angle_l", "hip_flexion_l")))
    assert sub.solved_coordinates == ("hip_flexion_l", "knee_angle_l")
    assert "ankle_angle_l" in sub.reserve_only_coordinates and len(sub.reserve_only_coordinates) == 12
    rng = np.random.default_rng(5)
    q, v = random_state(leg, rng)
    tau = rng.normal(size=sub.n_coordinates) * 20
    fr = sub.allocate_frame()
    sub.step(q, v, tau, fr)
    k = sub.coordinate_names.index("ankle_angle_l")
    assert fr.reserve_nm[k] == pytest.approx(tau[k] - fr.muscle_moment_nm[k], abs=1e-12)
    np.testing.assert_allclose(fr.muscle_moment_nm + fr.reserve_nm + fr.residual_nm, tau, atol=1e-10)
    root = [sub.coordinate_names.index(c) for c in sub.root_coordinates]
    assert np.all(fr.muscle_moment_nm[root] == 0.0)  # muscles are internal forces (see the next test)
    np.testing.assert_array_equal(fr.reserve_nm[root], tau[root])


def test_bad_params_are_named(leg):
    with pytest.raises(ValueError, match="reserve_weight"):
        SOParams(reserve_weight=0.0)
    with pytest.raises(ValueError, match="reserve_scale_nm"):
        SOParams(reserve_scale_nm=-1.0)
    with pytest.raises(ValueError, match="mtp_angle_l"):
        SOParams(reserve_scale_by_coordinate={"mtp_angle_l": math.nan})
    with pytest.raises(KeyError, match="knee_angle_l"):
        StaticOptimization(leg, SOParams(solved_coordinates=("knee_angel_l",)))
    with pytest.raises(ValueError, match="free root"):
        StaticOptimization(leg, SOParams(solved_coordinates=("root_tx",)))
    with pytest.raises(KeyError, match="close matches"):
        StaticOptimization(leg, SOParams(reserve_scale_by_coordinate={"ankle_angle": 5.0}))


# ------------------------------------------------------------------------------------------------ the solver


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 31), n=st.integers(1, 12), m=st.integers(1, 40),
       log_w=st.sampled_from([-4.0, 0.0, 2.0, 3.0, 6.0, 8.0]), scale=st.sampled_from([0.3, 3.0, 30.0]),
       feasible=st.booleans(), degenerate=st.booleans())
def test_standalone_qp_is_exact_against_bvls(seed, n, m, log_w, scale, feasible, degenerate):
    """Random sparse problems, feasible or not, light to heavy reserve weights, duplicate and empty muscles:
    KKT <= 1e-8, the objective of BVLS to 1e-8, the same point from a perturbed warm start.

    Heavy weights (1e6, 1e8: the "no reserves" use) come with feasible moments: on an infeasible problem the
    primal Hessian ``I + P C'C`` reaches a condition number ~1e11 and no double-precision method is exact to 1e-8
    there (see ``test_heavy_weight_on_infeasible_moments_is_reported``)."""
    rng = np.random.default_rng(seed)
    C = rng.normal(size=(n, m)) * 40.0 * (rng.random((n, m)) < 0.4)
    if degenerate and m > 2:
        C[:, 1] = C[:, 0]
        C[:, 2] = 0.0
    feasible = feasible or log_w > 3.0
    b = C @ rng.uniform(0, 1, m) if feasible else rng.normal(size=n) * scale * 10
    P = 10.0 ** log_w * rng.uniform(0.5, 2.0, n)
    a, s, lam, it, status = solve_activation_qp(C, b, P)
    assert status == STATUS_CONVERGED, (it, status)

    class Pb:
        pass

    pb = Pb()
    pb.C, pb.b, pb.reserve_penalty = C, b, P
    r = kkt(pb, a, s)
    assert max(r.values()) < 1e-8 * max(1.0, np.abs(b).max()), r
    f = a @ a + P @ s ** 2
    _, _, fref = bvls_reference(C, b, P)
    # no worse than BVLS (one-sided: with reserve weights 1e8 BVLS itself stops 2.7e-8 above our KKT point)
    assert f <= fref + 1e-8 * max(1.0, fref), (f, fref)
    if feasible and log_w > 3.0:
        assert np.abs(s).max() < 1e-4 * max(1.0, np.abs(b).max())  # the reserves all but vanish
    # a warm start from a perturbed multiplier reaches the same point: as optimal (KKT, objective) and within
    # 1e-8 of the activation range (the test's KKT tolerance; the two stopping points each meet the solver's
    # residual test |C a + s - b| <= tol (1 + |b|), so they agree to that, not bit for bit: 1.9e-9 was seen at
    # |b| = 561, seed 1673658)
    a2, s2, *_ = solve_activation_qp(C, b, P, lam0=lam * 1.3 + 0.01)
    r2 = kkt(pb, a2, s2)
    assert max(r2.values()) < 1e-8 * max(1.0, np.abs(b).max()), r2
    assert a2 @ a2 + P @ s2 ** 2 <= fref + 1e-8 * max(1.0, fref)
    np.testing.assert_allclose(a2, a, rtol=0, atol=1e-8)


def test_heavy_weight_on_infeasible_moments_is_reported():
    """w = 1e8 on moments the muscles cannot supply: multipliers ~1e9.  The answer stays finite, the equality
    residual is what the status says (converged: <= 1e-9 relative; else STATUS_ROUNDING_FLOOR), and the
    objective is no worse than BVLS's beyond 1e-5 (both at the conditioning limit)."""
    statuses = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n, m = 6, 20
        C = rng.normal(size=(n, m)) * 40.0 * (rng.random((n, m)) < 0.4)
        b = rng.normal(size=n) * 300.0
        P = np.full(n, 1e8)
        a, s, lam, it, status = solve_activation_qp(C, b, P)
        assert np.isfinite(a).all() and np.isfinite(s).all() and 0 <= a.min() and a.max() <= 1
        resid = np.abs(b - C @ a - s).max()
        assert status in (STATUS_CONVERGED, STATUS_ROUNDING_FLOOR)
        if status == STATUS_CONVERGED:
            assert resid <= 1e-9 * (1 + np.abs(b).max())
        _, _, fref = bvls_reference(C, b, P)
        assert a @ a + P @ s ** 2 <= fref * (1 + 1e-5)
        statuses.append(status)
    assert statuses.count(STATUS_CONVERGED) >= 30, statuses


def test_real_frames_kkt_and_references(leg, so_leg):
    """MyoLeg frames with moments from random activations plus noise (so some need reserves): KKT <= 1e-8, the
    objective equals BVLS to 1e-8 relative and is no worse than SLSQP."""
    rng = np.random.default_rng(7)
    fr = so_leg.allocate_frame()
    for trial in range(4):
        q, v = random_state(leg, rng)
        a_true = rng.uniform(0, 0.6, so_leg.n_muscles)
        tau = moments_from_activations(so_leg, leg, q, v, a_true)
        tau[so_leg.solved_index] += rng.normal(size=so_leg.solved_index.size) * 30.0 * (trial % 2)
        so_leg.step(q, v, tau, fr)
        assert fr.status == STATUS_CONVERGED
        pb = so_leg.problem(q, v, tau)
        s = solved_reserves(so_leg, fr)
        r = kkt(pb, fr.activation, s)
        assert max(r.values()) < 1e-8, r
        _, _, fref = bvls_reference(pb.C, pb.b, pb.reserve_penalty)
        assert abs(fr.cost - fref) <= 1e-8 * fref, (fr.cost, fref)
        if trial < 2:
            def f(a):
                rr = pb.b - pb.C @ a
                return a @ a + pb.reserve_penalty @ rr ** 2

            def jac(a):
                return 2 * a - 2 * pb.C.T @ (pb.reserve_penalty * (pb.b - pb.C @ a))

            x = minimize(f, np.full(so_leg.n_muscles, 0.1), jac=jac, method="SLSQP",
                         bounds=[(0, 1)] * so_leg.n_muscles, options={"ftol": 1e-14, "maxiter": 2000}).x
            assert fr.cost <= f(x) + 1e-9 * fref and f(x) - fr.cost < 1e-5 * fref


def test_daqp_cross_check(leg, so_leg):
    """An independent exact QP solver (daqp, dual active set; optional) on the same frames: objective to 1e-10."""
    daqp = pytest.importorskip("daqp")
    rng = np.random.default_rng(29)
    fr = so_leg.allocate_frame()
    for trial in range(4):
        q, v = random_state(leg, rng)
        tau = moments_from_activations(so_leg, leg, q, v, rng.uniform(0, 0.6, so_leg.n_muscles))
        tau[so_leg.solved_index] += rng.normal(size=so_leg.solved_index.size) * 20.0 * (trial % 2)
        so_leg.step(q, v, tau, fr)
        pb = so_leg.problem(q, v, tau)
        n, m = pb.C.shape
        H = np.diag(np.r_[np.full(m, 2.0), 2.0 * pb.reserve_penalty])  # x = [a; s]
        A = np.hstack([pb.C, np.eye(n)])
        upper = np.r_[np.ones(m), np.full(n, 1e30), pb.b]
        lower = np.r_[np.zeros(m), np.full(n, -1e30), pb.b]
        sense = np.r_[np.zeros(m + n), np.full(n, 5)].astype(np.int32)  # 5: equality
        x, fval, flag, _ = daqp.solve(H, np.zeros(m + n), A, upper, lower, sense)
        assert flag == 1
        assert fr.cost == pytest.approx(0.5 * x @ H @ x, rel=1e-10)
        np.testing.assert_allclose(fr.activation, x[:m], atol=1e-8)


def test_so_reproduces_the_moments_through_an_independent_forward_pass(leg):
    """Feasible moments (from random activations) with a heavy reserve weight: the muscles alone reproduce them;
    feeding the solution back into mj_forward gives the same coordinate moments (the sign convention end to end)."""
    so = StaticOptimization(leg, SOParams(reserve_weight=1e8))
    rng = np.random.default_rng(11)
    fr = so.allocate_frame()
    for _ in range(3):
        q, v = random_state(leg, rng)
        a_true = rng.uniform(0, 1, so.n_muscles)
        tau = moments_from_activations(so, leg, q, v, a_true)
        so.step(q, v, tau, fr)
        assert fr.status == STATUS_CONVERGED
        assert np.abs(solved_reserves(so, fr)).max() < 1e-6
        assert fr.cost <= a_true @ a_true + 1e-6
        back = moments_from_activations(so, leg, q, v, fr.activation)
        root = [so.coordinate_names.index(c) for c in so.root_coordinates]
        assert np.abs(back[root]).max() < 1e-9  # muscles exert no net force on the free root (left out of R)
        np.testing.assert_allclose(back + fr.reserve_nm, tau, atol=1e-8)
        np.testing.assert_allclose(fr.muscle_moment_nm, back, atol=1e-8)
        assert np.all(fr.muscle_force_n >= 0)


def test_knee_moment_sign_recruits_extensors_or_flexors(leg, so_leg):
    """An extension moment (negative about knee_angle_l, flexion positive) recruits the vasti, a flexion moment the
    hamstrings; everything else is held at the passive moments."""
    q = leg.model.qpos0.copy()
    q[leg.joint_qpos_index("knee_angle_l")] = 0.6
    leg.apply_joint_couplings(q)
    v = np.zeros(leg.model.nv)
    passive = so_leg.problem(q, v, np.zeros(so_leg.n_coordinates))
    tau0 = passive.moment_arm_m.T @ passive.passive_force_n
    knee = so_leg.coordinate_names.index("knee_angle_l")
    fr = so_leg.allocate_frame()
    idx = {n: so_leg.muscle_names.index(n) for n in so_leg.muscle_names}
    for sign, agonists, antagonists in ((-1, ("vasint_l", "vaslat_l", "vasmed_l"), ("bfsh_l", "semimem_l", "semiten_l")),
                                        (+1, ("bfsh_l", "semimem_l", "gasmed_l"), ("vasint_l", "vaslat_l", "vasmed_l"))):
        tau = tau0.copy()
        tau[knee] += sign * 60.0
        so_leg.step(q, v, tau, fr)
        assert fr.status == STATUS_CONVERGED
        assert min(fr.activation[idx[n]] for n in agonists) > 0.02
        assert max(fr.activation[idx[n]] for n in antagonists) < 1e-12
        assert abs(fr.reserve_nm[knee]) < 0.05


# ------------------------------------------------------------------------------------------------ the stage


def test_run_equals_repeated_step_and_warm_equals_cold(leg):
    rng = np.random.default_rng(13)
    n = 25
    so = StaticOptimization(leg, SOParams())
    q0, v0 = random_state(leg, rng, spread=0.2)
    qs, vs, taus = [], [], []
    for i in range(n):  # a smooth sequence so that the warm start matters
        q = q0.copy()
        q[7:] += 0.02 * i * np.sin(np.arange(leg.model.nq - 7))
        leg.apply_joint_couplings(q)
        qs.append(q)
        vs.append(v0 * math.cos(0.1 * i))
        taus.append(moments_from_activations(so, leg, q, vs[-1], 0.3 + 0.2 * np.sin(0.2 * i + np.arange(so.n_muscles)))
                    + rng.normal(size=so.n_coordinates) * 5.0)
    qs, vs, taus = np.array(qs), np.array(vs), np.array(taus)
    trial = so.run(qs, vs, taus)
    fresh = StaticOptimization(leg, SOParams())
    fr = fresh.allocate_frame()
    for i in range(n):
        fresh.step(qs[i], vs[i], taus[i], fr)
        assert np.array_equal(fr.activation, trial.activation[i])
        assert np.array_equal(fr.reserve_nm, trial.reserve_nm[i])
        assert fr.iterations == trial.iterations[i] and fr.cost == trial.cost[i]
    assert np.all(trial.status == STATUS_CONVERGED)
    assert trial.iterations[1:].mean() < trial.iterations[0] + 1  # warm frames take no more steps than a cold one
    cold = StaticOptimization(leg, SOParams(warm_start=False)).run(qs, vs, taus)
    np.testing.assert_allclose(cold.activation, trial.activation, atol=1e-9)
    np.testing.assert_allclose(cold.reserve_nm, trial.reserve_nm, atol=1e-9)
    assert trial.muscle_force_n.shape == (n, 80) and np.all(trial.muscle_force_n >= 0)
    np.testing.assert_allclose(trial.muscle_moment_nm + trial.reserve_nm + trial.residual_nm, taus, atol=1e-12)
    assert np.abs(trial.residual_nm).max() < 1e-8
    assert trial.activation_of("vasint_l").shape == (n,) and trial.reserve_of("knee_angle_l").shape == (n,)
    with pytest.raises(KeyError, match="vasint_l"):
        trial.activation_of("vasint_left")
    with pytest.raises(ValueError, match=r"tau \(N, 20\)"):
        so.run(qs, vs, taus[:, :5])


def test_step_allocates_no_arrays(leg, so_leg):
    rng = np.random.default_rng(17)
    q, v = random_state(leg, rng)
    tau = moments_from_activations(so_leg, leg, q, v, rng.uniform(0, 0.5, so_leg.n_muscles))
    fr = so_leg.allocate_frame()
    for _ in range(5):
        so_leg.step(q, v, tau, fr)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(300):
            so_leg.step(q, v, tau, fr)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current - before < 2000 and peak - before < 4000, (current - before, peak - before)


def test_non_finite_input_gives_nan_and_keeps_the_warm_start(leg, so_leg):
    rng = np.random.default_rng(19)
    q, v = random_state(leg, rng)
    tau = moments_from_activations(so_leg, leg, q, v, rng.uniform(0, 0.5, so_leg.n_muscles))
    fr = so_leg.allocate_frame()
    so_leg.step(q, v, tau, fr)
    good = fr.activation.copy()
    bad = tau.copy()
    bad[3] = np.nan
    so_leg.step(q, v, bad, fr)
    assert fr.status == STATUS_INVALID_INPUT and np.isnan(fr.activation).all() and math.isnan(fr.cost)
    qbad = q.copy()
    qbad[10] = np.inf
    so_leg.step(qbad, v, tau, fr)
    assert fr.status == STATUS_INVALID_INPUT
    so_leg.step(q, v, tau, fr)
    assert fr.status == STATUS_CONVERGED and fr.iterations == 0  # the warm start survived the bad frames
    np.testing.assert_allclose(fr.activation, good, atol=1e-12)


def test_myofullbody_random_feasible_frames_need_no_reserves(fullbody):
    so = StaticOptimization(fullbody, SOParams(reserve_weight=1e8))
    assert len(so.solved_coordinates) == 71 and so.n_muscles == 416
    rng = np.random.default_rng(23)
    fr = so.allocate_frame()
    for k in range(3):
        q, v = random_state(fullbody, rng, spread=0.3, speed=0.3)
        a_true = rng.uniform(0, 1, so.n_muscles)
        tau = moments_from_activations(so, fullbody, q, v, a_true)
        so.reset()
        so.step(q, v, tau, fr)
        assert fr.status == STATUS_CONVERGED
        assert np.abs(solved_reserves(so, fr)).max() < 1e-6  # ~1e-7 N m at w_res = 1e8 (quadratic penalty)
        np.testing.assert_allclose(fr.muscle_moment_nm[so.solved_index], tau[so.solved_index], atol=1e-6)
        assert fr.cost < a_true @ a_true
        pb = so.problem(q, v, tau)
        r = kkt(pb, fr.activation, solved_reserves(so, fr))
        assert max(r.values()) < 1e-8, r
        if k == 0:
            _, _, fref = bvls_reference(pb.C, pb.b, pb.reserve_penalty)
            assert abs(fr.cost - fref) <= 1e-8 * fref


# ------------------------------------------------------------------------------------------------ real data


@needs_data
def test_gc5_ps_ss1_with_measured_plates():
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics

    params = AnalyzeParams(75.0, 1.80, "left")
    kin = trial_kinematics(PS / "trc" / "PS_ngait_og_ss1.trc", PS / "model" / "GC5.osim", params)
    r = analyze_trial(None, None, params, grf_path=PS / "grf" / "PS_ngait_og_ss1_kinetics.mot", kin=kin)
    so = StaticOptimization(kin.model, SOParams())
    assert so.coordinate_names == r.moment_names
    trial = so.run(kin.mapped.qpos, kin.mapped.qvel, r.moments_nm)
    assert np.all(trial.status == STATUS_CONVERGED)
    assert np.abs(trial.residual_nm).max() < 1e-8
    res = trial.reserve_summary()
    for side in "lr":
        for c in ("hip_flexion", "hip_adduction", "knee_angle"):
            assert res[f"{c}_{side}"]["rms_nm"] < 0.05 * res[f"{c}_{side}"]["tau_rms_nm"], (c, res[f"{c}_{side}"])
    act = {n: trial.activation_of(f"{n}_l") for n in KNEE_MUSCLES}
    assert max(a.max() for a in act.values()) < 1.0
    assert act["vaslat"].max() > 0.05 and act["recfem"].max() > 0.05 and act["bfsh"].max() > 0.05
    # KKT on a few frames of the real trial, against the QP the stage solved
    for i in (10, 60, 100):
        pb = so.problem(kin.mapped.qpos[i], kin.mapped.qvel[i], r.moments_nm[i])
        kk = kkt(pb, trial.activation[i], trial.reserve_nm[i, so.solved_index])
        assert max(kk.values()) < 1e-8, kk
        _, _, fref = bvls_reference(pb.C, pb.b, pb.reserve_penalty)
        assert abs(trial.cost[i] - fref) <= 1e-8 * fref


# ------------------------------------------------------------------------------ the 2x knee-force diagnosis


def test_subject_f0_from_opensim_model_is_applied_and_validated(leg):
    """scale_model(max_isometric_force_n=...) sets gain and bias F0 of the named muscles, leaves the others on the
    mass rule, and names bad input."""
    from models.body.scaling import SubjectScale, scale_model

    subject = SubjectScale(leg.info.mass_kg * 1.1, leg.info.height_m)
    m0 = leg.model
    i = m0.actuator("vaslat_l").id
    j = m0.actuator("soleus_l").id
    scaled = scale_model(leg, subject, max_isometric_force_n={"vaslat_l": 3089.0}).model
    assert scaled.actuator_gainprm[i, 2] == pytest.approx(3089.0)
    assert scaled.actuator_biasprm[i, 2] / scaled.actuator_gainprm[i, 2] == pytest.approx(
        m0.actuator_biasprm[i, 2] / m0.actuator_gainprm[i, 2])
    assert scaled.actuator_gainprm[j, 2] == pytest.approx(m0.actuator_gainprm[j, 2] * 1.1)
    with pytest.raises(KeyError, match="vaslatt_l"):
        scale_model(leg, subject, max_isometric_force_n={"vaslatt_l": 3089.0})
    with pytest.raises(ValueError, match="vaslat_l.*-1"):
        scale_model(leg, subject, max_isometric_force_n={"vaslat_l": -1.0})


@needs_data
def test_gc5_knee_muscles_are_weaker_than_myoleg_and_explain_the_knee_force():
    """The evidence behind the fix: the lab's GC5.osim gives the muscles crossing the knee ~0.6 x MyoLeg's F0
    (soleus 1.16 x); with the lab's F0 our static optimisation's knee contact force on PS ss1 moves from ~1.0 BW
    RMSE against the implant to ~0.5 BW, and the gastrocnemii stop taking the ankle moment from soleus."""
    from models.muscles.knee_contact import knee_contact_from_analysis, validate_against_in_vivo
    from models.body.scaling import opensim_max_isometric_forces, scale_model
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics

    leg = load_model("myoleg")
    names = [leg.model.actuator(i).name for i in range(leg.model.nu)]
    f0 = opensim_max_isometric_forces(PS / "model" / "GC5.osim", names)
    assert len(f0) == 80
    ratio = {n: f0[f"{n}_l"] / leg.model.actuator_gainprm[leg.model.actuator(f"{n}_l").id, 2]
             for n in KNEE_MUSCLES + ("soleus",)}
    assert all(0.55 < ratio[n] < 0.7 for n in ("vasint", "vaslat", "vasmed", "recfem", "bflh", "bfsh", "semimem",
                                               "semiten")), ratio
    assert ratio["soleus"] > 1.1

    # F0 alone, without the path/curve calibration (tests/test_subject_muscles.py covers that)
    params = AnalyzeParams(75.0, 1.80, "left", muscles=True, subject_calibration=False)
    kin = trial_kinematics(PS / "trc" / "PS_ngait_og_ss1.trc", PS / "model" / "GC5.osim", params)
    r = analyze_trial(None, None, params, grf_path=PS / "grf" / "PS_ngait_og_ss1_kinetics.mot", kin=kin)
    ref = PS / "in_vivo" / "PS_ngait_og_ss1_eTibia_101pt.csv"
    m = kin.model                       # the subject model: F0 from GC5.osim (models.trial_analysis.subject_model)
    for k, v in f0.items():
        assert m.actuator_gainprm[m.actuator(k).id, 2] == pytest.approx(v)
    fixed = StaticOptimization(m, SOParams()).run(kin.mapped.qpos, kin.mapped.qvel, r.moments_nm)
    # before the fix: MyoLeg's F0 scaled with body mass only (what scale_model does without the OpenSim model)
    from models.body.scaling import SubjectScale

    by_mass = scale_model(leg, SubjectScale(75.0, 1.80)).model
    for k in f0:
        a, b = m.actuator(k).id, by_mass.actuator(k).id
        s = by_mass.actuator_gainprm[b, 2] / m.actuator_gainprm[a, 2]
        m.actuator_gainprm[a, 2] *= s
        m.actuator_biasprm[a, 2] *= s
    base = StaticOptimization(m, SOParams()).run(kin.mapped.qpos, kin.mapped.qvel, r.moments_nm)
    kc0 = validate_against_in_vivo(knee_contact_from_analysis(kin, r, tension_n=base.muscle_force_n,
                                                              muscle_names=base.muscle_names), ref)
    kc1 = validate_against_in_vivo(knee_contact_from_analysis(kin, r, tension_n=fixed.muscle_force_n,
                                                              muscle_names=fixed.muscle_names), ref)
    assert kc0["total"]["rmse_bw"] > 0.9 and kc1["total"]["rmse_bw"] < 0.6, (kc0["total"], kc1["total"])
    assert kc1["lateral"]["rmse_bw"] < kc0["lateral"]["rmse_bw"] and kc1["medial"]["rmse_bw"] < kc0["medial"]["rmse_bw"]

    def share(tr, name):
        return tr.muscle_force_n[:, tr.muscle_names.index(name)].mean()
    gas0 = (share(base, "gasmed_l") + share(base, "gaslat_l")) / share(base, "soleus_l")
    gas1 = (share(fixed, "gasmed_l") + share(fixed, "gaslat_l")) / share(fixed, "soleus_l")
    assert gas1 < 0.6 * gas0, (gas0, gas1)
