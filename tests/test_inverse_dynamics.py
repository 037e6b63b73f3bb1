"""Tests of models/dynamics/inverse_dynamics.py and models/dynamics/knee_moments.py.

Closed forms (pendulum, two-link leg, a body held by a force), MuJoCo round trips (forward simulation with known
generalised and external forces -> inverse dynamics gives them back), the replay property (run == repeated step),
sign conventions of KAM/KEM, and a validation on the Grand Challenge subject PS (loose bounds; numbers printed).
"""

from __future__ import annotations

import copy
import functools
import math
import time
import tracemalloc
import warnings
import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest

from models.filters import smooth_derivatives
from models.dynamics.couplings import CoordinateCouplings
from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
from models.dynamics.opensim_grf import external_wrench_from_opensim_grf
from models.dynamics.opensim_state import OPENSIM_TO_Z_UP, kinematics_from_opensim
from models.dynamics.wrenches import ExternalWrench, ExternalWrenchTrial
from models.dynamics.knee_moments import (
    STANDARD_GRAVITY_M_S2,
    KneeMoments,
    KneeMomentsFrame,
    KneeMomentsParams,
    pct_bw_ht,
    stance_intervals_from_force,
    stance_summaries,
)
from models.io.axes import opensim_to_z_up
from models.io.lab_files import shared_data_dir
from models.io.storage import read_mot
from models.io.time_series import TimeSeriesTable
from models.io.trc import read_trc

# --------------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _myoleg() -> mujoco.MjModel:
    """MyoLeg through the team registry when it exists, else myo_sim directly (cached per process)."""
    try:
        from models.body.registry import load_model  # type: ignore[import-not-found]
    except ImportError:
        load_model = None
    if load_model is not None:
        obj = load_model("myoleg")
        if isinstance(obj, mujoco.MjModel):
            return obj
        for attr in ("mj_model", "model", "mjmodel"):
            cand = getattr(obj, attr, None)
            if isinstance(cand, mujoco.MjModel):
                return cand
    import myo_sim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return myo_sim.load_model("myolegs")


@pytest.fixture(scope="module")
def myoleg() -> mujoco.MjModel:
    m = _myoleg()
    assert (m.nq, m.nv) == (35, 34)
    return m


PENDULUM = """
<mujoco>
  <option gravity="0 0 -9.81"/>
  <worldbody>
    <body name="link">
      <joint name="hinge" type="hinge" axis="0 1 0" damping="{d}" armature="{arm}"/>
      <inertial pos="0 0 -{l}" mass="{m}" diaginertia="0.02 {iyy} 0.04"/>
    </body>
  </worldbody>
</mujoco>
"""

TWO_LINK = """
<mujoco>
  <option gravity="0 0 -9.81"/>
  <worldbody>
    <body name="thigh">
      <joint name="hip" type="hinge" axis="0 1 0"/>
      <inertial pos="0 0 -{lc1}" mass="{m1}" diaginertia="0.1 {i1} 0.1"/>
      <body name="shank" pos="0 0 -{l1}">
        <joint name="knee" type="hinge" axis="0 1 0"/>
        <inertial pos="0 0 -{lc2}" mass="{m2}" diaginertia="0.05 {i2} 0.05"/>
      </body>
    </body>
  </worldbody>
</mujoco>
"""


def _random_state(model: mujoco.MjModel, rng: np.random.Generator, scale: float = 0.3):
    """A plausible MyoLeg state: joints near qpos0, couplings satisfied, root upright with a random tilt."""
    q = np.array(model.qpos0, dtype=float)
    q[2] = 1.0
    quat = np.zeros(4)
    mujoco.mju_axisAngle2Quat(quat, rng.normal(size=3) / math.sqrt(3), rng.uniform(-0.3, 0.3))
    q[3:7] = quat
    q[7:] += rng.uniform(0.0, scale, model.nq - 7)
    qd = rng.normal(size=model.nv)
    qdd = 5 * rng.normal(size=model.nv)
    CoordinateCouplings(model).apply(q, qd, qdd)
    return q, qd, qdd


# --------------------------------------------------------------------------------------------------
# the MuJoCo convention the stage relies on
# --------------------------------------------------------------------------------------------------


def test_mj_inverse_ignores_xfrc_applied_and_qfrc_applied(myoleg):
    """qfrc_inverse is the *total* applied force needed; external forces must be subtracted by the caller."""
    inv = InverseDynamics(myoleg)
    m, d = inv.model, inv.data
    q, qd, qdd = _random_state(m, np.random.default_rng(0))
    d.qpos[:], d.qvel[:], d.qacc[:] = q, qd, qdd
    mujoco.mj_inverse(m, d)
    ref = d.qfrc_inverse.copy()
    d.xfrc_applied[inv.body_id("calcn_l")] = [10.0, 20.0, 300.0, 1.0, 2.0, 3.0]
    d.qfrc_applied[:] = 1.0
    mujoco.mj_inverse(m, d)
    np.testing.assert_array_equal(d.qfrc_inverse, ref)
    # the stage does subtract them
    f1 = inv.allocate_frame()
    inv.step(q, qd, qdd, [], f1)
    w = ExternalWrench("calcn_l", np.array([10.0, 20.0, 300.0]), d.xpos[inv.body_id("calcn_l")].copy(), np.zeros(3))
    f2 = inv.allocate_frame()
    inv.step(q, qd, qdd, [w], f2)
    assert np.abs(f1.generalized_force - f2.generalized_force).max() > 1.0
    assert not (inv.model.opt.enableflags & int(mujoco.mjtEnableBit.mjENBL_INVDISCRETE))
    assert inv.model.opt.disableflags & int(mujoco.mjtDisableBit.mjDSBL_CONSTRAINT)
    # the caller's model is not touched
    assert myoleg.opt.disableflags == 0 and myoleg.dof_armature.max() > 0


# --------------------------------------------------------------------------------------------------
# closed forms
# --------------------------------------------------------------------------------------------------


def test_single_pendulum_closed_form():
    """tau = (I_yy + m l^2) thdd + m g l sin(th) for a hinge about y with the mass hanging l below it."""
    m_, l, iyy, damp, arm, g = 2.0, 0.7, 0.03, 0.3, 0.05, 9.81
    model = mujoco.MjModel.from_xml_string(PENDULUM.format(m=m_, l=l, iyy=iyy, d=damp, arm=arm))
    rng = np.random.default_rng(2)
    for subtract_passive, include_armature in ((False, False), (True, False), (False, True), (True, True)):
        inv = InverseDynamics(model, InverseDynamicsParams(subtract_passive=subtract_passive,
                                                           include_armature=include_armature))
        out = inv.allocate_frame()
        for _ in range(20):
            th, thd, thdd = rng.uniform(-3, 3), rng.normal(), rng.normal(scale=10)
            inv.step(np.array([th]), np.array([thd]), np.array([thdd]), [], out)
            expected = (iyy + m_ * l * l) * thdd + m_ * g * l * math.sin(th)
            if subtract_passive:
                expected += damp * thd  # the damper's -d*thd already acts, so the joint must add +d*thd
            if include_armature:
                expected += arm * thdd
            assert out.generalized_force[0] == pytest.approx(expected, rel=1e-12, abs=1e-12)
            assert out.coordinate_force[0] == out.generalized_force[0]
            assert not inv.has_free_root and np.all(out.residual_force_n == 0)


def test_two_link_leg_matches_textbook_equations():
    """M(q) qdd + C(q, qd) qd + G(q) for a planar two-link chain hanging from a hip (Spong et al.)."""
    p = dict(m1=7.0, l1=0.42, lc1=0.18, i1=0.12, m2=3.5, lc2=0.2, i2=0.05)
    model = mujoco.MjModel.from_xml_string(TWO_LINK.format(**p))
    inv = InverseDynamics(model)
    out = inv.allocate_frame()
    g = 9.81
    m1, l1, lc1, i1, m2, lc2, i2 = (p[k] for k in ("m1", "l1", "lc1", "i1", "m2", "lc2", "i2"))
    rng = np.random.default_rng(3)
    for _ in range(50):
        q = rng.uniform(-2.5, 2.5, 2)
        qd = rng.normal(scale=3, size=2)
        qdd = rng.normal(scale=20, size=2)
        c2, s2 = math.cos(q[1]), math.sin(q[1])
        M11 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * c2) + i1 + i2
        M12 = m2 * (lc2**2 + l1 * lc2 * c2) + i2
        M22 = m2 * lc2**2 + i2
        h = -m2 * l1 * lc2 * s2
        G1 = (m1 * lc1 + m2 * l1) * g * math.sin(q[0]) + m2 * lc2 * g * math.sin(q[0] + q[1])
        G2 = m2 * lc2 * g * math.sin(q[0] + q[1])
        tau1 = M11 * qdd[0] + M12 * qdd[1] + h * (2 * qd[0] * qd[1] + qd[1] ** 2) + G1
        tau2 = M12 * qdd[0] + M22 * qdd[1] - h * qd[0] ** 2 + G2
        inv.step(q, qd, qdd, [], out)
        np.testing.assert_allclose(out.generalized_force, [tau1, tau2], rtol=1e-10, atol=1e-10)


def test_body_held_static_by_a_force_at_a_point():
    """Pendulum held horizontal: tau = m g l - L F - T_y; the joint reaction carries m g - F."""
    m_, l, g, L = 2.0, 0.5, 9.81, 0.8
    model = mujoco.MjModel.from_xml_string(PENDULUM.format(m=m_, l=l, iyy=0.03, d=0.0, arm=0.0))
    inv = InverseDynamics(model, InverseDynamicsParams(reaction_bodies=("link",)))
    out = inv.allocate_frame()
    th = math.pi / 2  # the mass is at (-l, 0, 0)
    q, z = np.array([th]), np.zeros(1)
    # no external force: the joint holds the whole weight
    inv.step(q, z, z, [], out)
    assert out.generalized_force[0] == pytest.approx(m_ * g * l, rel=1e-12)
    R = inv.data.xmat[inv.body_id("link")].reshape(3, 3)
    for F, T in ((m_ * g * l / L, 0.0), (0.3 * m_ * g, 0.0), (0.3 * m_ * g, 0.5)):
        w = ExternalWrench("link", np.array([0.0, 0.0, F]), np.array([-L, 0.0, 0.0]), np.array([0.0, T, 0.0]))
        inv.step(q, z, z, [w], out)
        expected = m_ * g * l - L * F - T
        assert out.generalized_force[0] == pytest.approx(expected, abs=1e-10)
        # reaction: what the world exerts on the link, about the joint centre, in the link frame
        np.testing.assert_allclose(R @ out.reaction_force_n[0], [0.0, 0.0, m_ * g - F], atol=1e-10)
        np.testing.assert_allclose(R @ out.reaction_moment_nm[0], [0.0, expected, 0.0], atol=1e-10)
    # the point does not have to lie on the body, and a zero wrench is skipped even with a NaN point
    w0 = ExternalWrench("link", np.zeros(3), np.full(3, np.nan), np.zeros(3))
    inv.step(q, z, z, [w0], out)
    assert out.generalized_force[0] == pytest.approx(m_ * g * l, rel=1e-12)


# --------------------------------------------------------------------------------------------------
# MyoLeg round trips
# --------------------------------------------------------------------------------------------------


def _dof_scale(model: mujoco.MjModel) -> np.ndarray:
    s = np.empty(model.nv)
    for j in range(model.njnt):
        a = model.jnt_dofadr[j]
        t = model.jnt_type[j]
        if t == mujoco.mjtJoint.mjJNT_FREE:
            s[a : a + 3], s[a + 3 : a + 6] = 100.0, 10.0
        elif t == mujoco.mjtJoint.mjJNT_SLIDE:
            s[a] = 1.0
        else:
            s[a] = 5.0 if model.body_mass[model.jnt_bodyid[j]] > 0.5 else 0.2
    return s


def _simulate(sim_model, n_steps, rng, calcn_id):
    """Forward simulation with random generalised forces and a random load on calcn_l applied through
    xfrc_applied (MuJoCo's own mechanism); records MuJoCo's qacc (not differences)."""
    d = mujoco.MjData(sim_model)
    q, _, _ = _random_state(sim_model, rng, scale=0.1)
    d.qpos[:] = q
    scale = _dof_scale(sim_model)
    rec = {k: [] for k in ("q", "qd", "qdd", "qfrc", "F", "p", "T")}
    for _ in range(n_steps):
        d.qfrc_applied[:] = scale * rng.normal(size=sim_model.nv)
        mujoco.mj_kinematics(sim_model, d)
        mujoco.mj_comPos(sim_model, d)
        F = rng.normal(scale=[50, 50, 400])
        p = d.xpos[calcn_id] + rng.normal(scale=0.05, size=3)
        T = np.array([0.0, 0.0, rng.normal(scale=2.0)])
        d.xfrc_applied[calcn_id, :3] = F
        d.xfrc_applied[calcn_id, 3:] = np.cross(p - d.xipos[calcn_id], F) + T
        mujoco.mj_forward(sim_model, d)
        for k, v in zip(rec, (d.qpos, d.qvel, d.qacc, d.qfrc_applied, F, p, T)):
            rec[k].append(np.array(v, copy=True))
        mujoco.mj_step(sim_model, d)
    return {k: np.array(v) for k, v in rec.items()}


def test_round_trip_forward_simulation_gives_back_the_applied_forces(myoleg):
    inv = InverseDynamics(myoleg, InverseDynamicsParams(subtract_passive=True, include_armature=True))
    sim = copy.deepcopy(inv.model)  # same dynamics as the stage: no constraints, dampers and armature on
    calcn = inv.body_id("calcn_l")
    r = _simulate(sim, 120, np.random.default_rng(4), calcn)
    assert np.isfinite(r["qdd"]).all()
    ext = ExternalWrenchTrial("calcn_l", r["F"], r["p"], r["T"])
    out = inv.run(r["q"], r["qd"], r["qdd"], [ext])
    err = np.abs(out.generalized_force - r["qfrc"]).max(axis=1)
    assert (err <= 1e-6 * np.abs(r["qfrc"]).max(axis=1)).all(), err.max()
    # default parameters: net moments (no damper, no armature) = applied - armature*qacc - damping*qvel
    net = InverseDynamics(myoleg).run(r["q"], r["qd"], r["qdd"], [ext])
    expected = r["qfrc"] - myoleg.dof_armature * r["qdd"] - myoleg.dof_damping * r["qd"]
    np.testing.assert_allclose(net.generalized_force, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def test_round_trip_with_coupled_knee_recovers_the_projected_forces(myoleg):
    """Forward simulation *with* MyoLeg's knee/patella couplings active: the stage (constraints off) returns
    applied + J_eq^T lambda; projected on the independent coordinates, the constraint forces vanish."""
    inv = InverseDynamics(myoleg, InverseDynamicsParams(subtract_passive=True, include_armature=True))
    sim = copy.deepcopy(myoleg)
    sim.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONTACT) | int(mujoco.mjtDisableBit.mjDSBL_LIMIT)
    sim.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_ACTUATION)
    r = _simulate(sim, 80, np.random.default_rng(5), inv.body_id("calcn_l"))
    ext = ExternalWrenchTrial("calcn_l", r["F"], r["p"], r["T"])
    out = inv.run(r["q"], r["qd"], r["qdd"], [ext])
    projected = inv.couplings.project(r["q"], r["qfrc"])
    np.testing.assert_allclose(out.coordinate_force, projected, rtol=0, atol=1e-6 * np.abs(projected).max())
    # the dependent dofs do carry constraint forces (so the projection is doing real work)
    dep = [inv.dof_names.index(n) for n in inv.couplings.dependent_joint_names]
    assert np.abs(out.generalized_force[:, dep] - r["qfrc"][:, dep]).max() > 1e-3
    # batch projection == per-frame basis
    i = 7
    np.testing.assert_allclose(inv.couplings.basis_transpose(r["q"][i]) @ out.generalized_force[i],
                               out.coordinate_force[i], rtol=1e-12, atol=1e-9)
    assert "knee_angle_l" in inv.coordinate_names and "knee_angle_rotation2_l" not in inv.coordinate_names
    assert len(inv.coordinate_names) == myoleg.nv - 14


def test_replay_run_equals_repeated_step(myoleg):
    inv = InverseDynamics(myoleg, InverseDynamicsParams(reaction_bodies=("tibia_l", "tibia_r", "femur_l")))
    rng = np.random.default_rng(6)
    n = 40
    states = [_random_state(myoleg, rng) for _ in range(n)]
    q = np.array([s[0] for s in states])
    qd = np.array([s[1] for s in states])
    qdd = np.array([s[2] for s in states])
    exts = []
    for body in ("calcn_l", "calcn_r"):
        F = rng.normal(scale=[40, 40, 500], size=(n, 3))
        p = rng.normal(scale=0.3, size=(n, 3))
        T = np.zeros((n, 3))
        T[:, 2] = rng.normal(size=n)
        F[::5] = 0.0  # swing frames
        T[::5] = 0.0
        p[::5] = np.nan
        exts.append(ExternalWrenchTrial(body, F, p, T))
    trial = inv.run(q, qd, qdd, exts)
    # fresh stage, frames in reverse order: no state leaks between frames
    inv2 = InverseDynamics(myoleg, InverseDynamicsParams(reaction_bodies=("tibia_l", "tibia_r", "femur_l")))
    frame = inv2.allocate_frame()
    ws = [ExternalWrench.zeros(e.body) for e in exts]
    for i in reversed(range(n)):
        for w, e in zip(ws, exts):
            w.force_n[:], w.point_m[:], w.free_moment_nm[:] = e.force_n[i], e.point_m[i], e.free_moment_nm[i]
        inv2.step(q[i], qd[i], qdd[i], ws, frame)
        ref = trial.frame(i)
        for name in ("generalized_force", "coordinate_force", "residual_force_n", "residual_moment_nm",
                     "reaction_force_n", "reaction_moment_nm"):
            np.testing.assert_array_equal(getattr(frame, name), getattr(ref, name), err_msg=name)
    assert np.isfinite(trial.generalized_force).all()
    assert trial.dof("knee_angle_l").shape == (n,)
    assert trial.coordinate("knee_angle_l").shape == (n,)
    with pytest.raises(KeyError, match="knee_angle_l"):
        trial.dof("knee_angel_l")


def test_intersegmental_wrench_projects_onto_the_joint_axes(myoleg):
    """With armature off, the generalised force of every tibia dof is the tibia's intersegmental wrench projected on
    that dof's axis (hinge: moment about its anchor; slide: force) - ties the reaction output to the ID output."""
    inv = InverseDynamics(myoleg, InverseDynamicsParams(reaction_bodies=("tibia_l",)))
    m, d = inv.model, inv.data
    out = inv.allocate_frame()
    rng = np.random.default_rng(7)
    tib = inv.body_id("tibia_l")
    for _ in range(10):
        q, qd, qdd = _random_state(myoleg, rng)
        w = ExternalWrench("calcn_l", rng.normal(scale=[50, 50, 600]), rng.normal(scale=0.5, size=3),
                           np.array([0.0, 0.0, 3.0]))
        inv.step(q, qd, qdd, [w], out)
        R = d.xmat[tib].reshape(3, 3)
        F_w = R @ out.reaction_force_n[0]
        M_o = R @ out.reaction_moment_nm[0]  # about the tibia origin
        for j in range(m.njnt):
            if m.jnt_bodyid[j] != tib:
                continue
            dof = m.jnt_dofadr[j]
            axis = d.xaxis[j]
            if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE:
                M_anchor = M_o + np.cross(d.xpos[tib] - d.xanchor[j], F_w)
                proj = axis @ M_anchor
            else:
                proj = axis @ F_w
            assert out.generalized_force[dof] == pytest.approx(proj, rel=1e-9, abs=1e-9)


def test_residuals_vanish_for_a_body_balanced_at_its_centre_of_mass(myoleg):
    inv = InverseDynamics(myoleg)
    m, d = inv.model, inv.data
    q = np.array(myoleg.qpos0, dtype=float)
    CoordinateCouplings(myoleg).apply(q)
    z = np.zeros(myoleg.nv)
    out = inv.allocate_frame()
    inv.step(q, z, z, [], out)
    W = float(m.body_subtreemass[0]) * float(-m.opt.gravity[2])
    np.testing.assert_allclose(out.residual_force_n, [0, 0, W], rtol=1e-12)
    com = d.subtree_com[0].copy()
    w = ExternalWrench("calcn_l", np.array([0.0, 0.0, W]), com, np.zeros(3))
    inv.step(q, z, z, [w], out)
    np.testing.assert_allclose(out.residual_force_n, 0.0, atol=1e-9 * W)
    np.testing.assert_allclose(out.residual_moment_nm, 0.0, atol=1e-9 * W)
    delta = np.array([0.1, -0.05, 0.0])
    w = ExternalWrench("calcn_r", np.array([0.0, 0.0, W]), com + delta, np.zeros(3))
    inv.step(q, z, z, [w], out)
    np.testing.assert_allclose(out.residual_force_n, 0.0, atol=1e-9 * W)
    np.testing.assert_allclose(out.residual_moment_nm, -np.cross(delta, [0.0, 0.0, W]), atol=1e-9 * W)


def test_step_allocates_no_arrays(myoleg):
    inv = InverseDynamics(myoleg, InverseDynamicsParams(reaction_bodies=("tibia_l", "tibia_r")))
    q, qd, qdd = _random_state(myoleg, np.random.default_rng(8))
    ws = [ExternalWrench("calcn_l", np.array([10.0, 5.0, 600.0]), np.array([0.1, 0.1, 0.0]), np.array([0, 0, 1.0])),
          ExternalWrench("calcn_r", np.array([-10.0, 5.0, 100.0]), np.array([-0.1, 0.1, 0.0]), np.zeros(3))]
    out = inv.allocate_frame()
    inv.step(q, qd, qdd, ws, out)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100):
            inv.step(q, qd, qdd, ws, out)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # (nbody, 6) doubles would be 1.4 kB, (nv,) 272 B plus headers: only transient views and floats are allowed
    assert peak - before < 1500, peak - before
    assert current - before < 500


def test_parameters_and_errors(myoleg):
    with pytest.raises(KeyError, match="tibia_l"):
        InverseDynamics(myoleg, InverseDynamicsParams(reaction_bodies=("tibia_left",)))
    with pytest.raises(TypeError):
        InverseDynamicsParams(reaction_bodies="tibia_l")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="MjModel"):
        InverseDynamics(object())  # type: ignore[arg-type]

    class Holder:  # like models.body.registry.MusculoskeletalModel: the MjModel in .model
        model = myoleg

    assert InverseDynamics(Holder()).nv == myoleg.nv  # type: ignore[arg-type]
    inv = InverseDynamics(myoleg, InverseDynamicsParams(gravity_m_s2=STANDARD_GRAVITY_M_S2))
    np.testing.assert_allclose(inv.model.opt.gravity, [0, 0, -STANDARD_GRAVITY_M_S2])
    out = inv.allocate_frame()
    q = np.array(myoleg.qpos0, dtype=float)
    with pytest.raises(KeyError, match="calcn_l"):
        inv.step(q, np.zeros(34), np.zeros(34), [ExternalWrench("calcn_left", np.ones(3), np.zeros(3), np.zeros(3))],
                 out)
    with pytest.raises(ValueError, match="run expects"):
        inv.run(np.zeros((3, 34)), np.zeros((3, 34)), np.zeros((3, 34)))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        ExternalWrenchTrial("calcn_l", np.zeros((3, 3)), np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="reaction_bodies"):
        KneeMoments(inv, KneeMomentsParams("left", 75.0, 1.8))
    with pytest.raises(ValueError, match="side"):
        KneeMomentsParams("middle", 75.0, 1.8)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# OpenSim -> MuJoCo mapping
# --------------------------------------------------------------------------------------------------


def test_kinematics_from_opensim_velocity_conventions(myoleg):
    """Analytic qvel/qacc of the mapping agree with finite differences of the mapped qpos (free-root convention:
    linear velocity in world, angular velocity in the root frame); the pelvis lands where OpenSim puts it."""
    names = ["pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz",
             "hip_flexion_l", "knee_angle_l", "ankle_angle_l", "lumbar_extension"]
    fs = 1000.0
    t = np.arange(0, 0.5, 1 / fs)[:, None]
    A = np.array([0.3, 0.2, 0.5, 0.4, 0.05, 0.1, 0.5, 0.6, 0.3, 0.1])
    f = np.array([1.1, 0.7, 0.9, 0.5, 1.3, 0.8, 1.0, 1.2, 0.6, 1.0])
    off = np.array([0, 0, 0, 0, 0.95, 0, 0.2, 0.7, 0, 0])
    ph = np.arange(10) * 0.3
    wt = 2 * np.pi * f * t + ph
    X = off + A * np.sin(wt)
    Xd = A * 2 * np.pi * f * np.cos(wt)
    Xdd = -A * (2 * np.pi * f) ** 2 * np.sin(wt)
    mk = kinematics_from_opensim(myoleg, names, X, Xd, Xdd)
    assert mk.ignored_columns == ("lumbar_extension",)
    assert "hip_flexion_r" in mk.defaulted_joints and "knee_angle_rotation2_l" in mk.coupled_joints
    v = np.zeros(myoleg.nv)
    for k in range(1, len(t) - 1, 7):
        mujoco.mj_differentiatePos(myoleg, v, 2 / fs, mk.qpos[k - 1], mk.qpos[k + 1])
        np.testing.assert_allclose(v, mk.qvel[k], atol=2e-4)
        np.testing.assert_allclose((mk.qvel[k + 1] - mk.qvel[k - 1]) * fs / 2, mk.qacc[k], atol=5e-3)
    d = mujoco.MjData(myoleg)
    d.qpos[:] = mk.qpos[100]
    mujoco.mj_kinematics(myoleg, d)
    a, b, c = X[100, :3]
    ca, sa, cb, sb, cc, sc = math.cos(a), math.sin(a), math.cos(b), math.sin(b), math.cos(c), math.sin(c)
    Rz = np.array([[ca, -sa, 0], [sa, ca, 0], [0, 0, 1]])
    Rx = np.array([[1, 0, 0], [0, cb, -sb], [0, sb, cb]])
    Ry = np.array([[cc, 0, sc], [0, 1, 0], [-sc, 0, cc]])
    pel = mujoco.mj_name2id(myoleg, mujoco.mjtObj.mjOBJ_BODY, "pelvis")
    np.testing.assert_allclose(d.xmat[pel].reshape(3, 3), OPENSIM_TO_Z_UP @ Rz @ Rx @ Ry, atol=1e-12)
    np.testing.assert_allclose(d.xpos[pel], opensim_to_z_up(X[100, 3:6]), atol=1e-12)


def test_grf_conversion_recovers_cop_and_free_moment():
    n = 50
    t = np.arange(n) / 100.0
    rng = np.random.default_rng(9)
    F = np.column_stack([rng.normal(scale=30, size=n), rng.uniform(300, 800, n), rng.normal(scale=30, size=n)])
    F[:5] = 0.0  # unloaded
    P = np.column_stack([rng.uniform(0, 0.5, n), np.full(n, -0.006), rng.uniform(0, 0.3, n)])
    Tq = np.column_stack([np.zeros(n), rng.normal(size=n), np.zeros(n)])
    cols = []
    data = []
    for pre, arr in (("1_ground_force_v", F), ("1_ground_force_p", P), ("1_ground_torque_", Tq)):
        for j, ax in enumerate("xyz"):
            cols.append(pre + ax)
            data.append(arr[:, j])
    table = TimeSeriesTable("grf", t, tuple(cols), np.column_stack(data), True, {})
    e = external_wrench_from_opensim_grf(table, "calcn_l")
    np.testing.assert_allclose(e.force_n[5:], opensim_to_z_up(F[5:]), atol=1e-9)
    np.testing.assert_allclose(e.point_m[5:], opensim_to_z_up(P[5:]), atol=1e-9)
    np.testing.assert_allclose(e.free_moment_nm[5:], opensim_to_z_up(Tq[5:]), atol=1e-9)
    assert np.isnan(e.point_m[:5]).all() and (e.force_n[:5] == 0).all()
    # the moment about the origin is what the plate measured
    np.testing.assert_allclose(e.moment_about_origin_nm()[5:],
                               opensim_to_z_up(np.cross(P, F) + Tq)[5:], atol=1e-9)


# --------------------------------------------------------------------------------------------------
# knee moments
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["left", "right"])
def test_knee_moment_sign_conventions(myoleg, side):
    """A load along the shank applied medial to the knee gives a positive (external adduction) KAM; applied
    posterior to the knee it gives a positive KEM (internal extension = external flexion moment)."""
    s = side[0]
    inv = InverseDynamics(myoleg, InverseDynamicsParams(reaction_bodies=(f"tibia_{s}",), gravity_m_s2=0.0))
    km = KneeMoments(inv, KneeMomentsParams(side, 75.0, 1.8))
    q = np.array(myoleg.qpos0, dtype=float)
    CoordinateCouplings(myoleg).apply(q)
    z = np.zeros(myoleg.nv)
    out, kf = inv.allocate_frame(), KneeMomentsFrame.allocate()
    inv.step(q, z, z, [], out)
    tib = inv.body_id(f"tibia_{s}")
    R, knee = inv.data.xmat[tib].reshape(3, 3).copy(), inv.data.xpos[tib].copy()
    medial = 1.0 if side == "left" else -1.0  # tibia z points to the right
    F = R @ np.array([0.0, 500.0, 0.0])
    for offset, kam, kem in (((0.0, -0.4, 0.03 * medial), 15.0, 0.0), ((-0.04, -0.4, 0.0), 0.0, 20.0),
                             ((0.0, -0.4, -0.02 * medial), -10.0, 0.0)):
        w = ExternalWrench(f"calcn_{s}", F, knee + R @ np.array(offset), np.zeros(3))
        inv.step(q, z, z, [w], out)
        km.step(out, kf)
        assert kf.knee_adduction_moment_nm == pytest.approx(kam, abs=1e-9)
        assert kf.knee_extension_moment_nm == pytest.approx(kem, abs=1e-9)
        assert kf.knee_adduction_moment_pct_bw_ht == pytest.approx(100 * kam / (75 * 9.80665 * 1.8), abs=1e-9)
        if kem:
            # the coupled-coordinate moment: same sign, within the coupling terms (a few N m here)
            assert kf.knee_extension_moment_coordinate_nm == pytest.approx(kem, abs=3.0)


def test_stance_summaries():
    t = np.linspace(0, 1.0, 101)
    v = np.sin(2 * np.pi * t) ** 2 * np.where(t < 0.5, 3.0, 2.0)  # two humps: 3 at 0.25 s, 2 at 0.75 s
    fz = np.where((t >= 0.1) & (t <= 0.9), 700.0, 0.0)
    st = stance_intervals_from_force(t, fz)
    assert st == [(pytest.approx(0.1), pytest.approx(0.9))]
    (s,) = stance_summaries(t, v, [(0.0, 1.0)])
    assert s.first_peak == pytest.approx(3.0) and s.first_peak_time_s == pytest.approx(0.25)
    assert s.second_peak == pytest.approx(2.0) and s.second_peak_time_s == pytest.approx(0.75)
    assert s.peak == pytest.approx(3.0)
    assert s.impulse == pytest.approx(0.5 * 3.0 * 0.5 + 0.5 * 2.0 * 0.5, rel=1e-3)
    assert pct_bw_ht(13.2389775, 75.0, 1.8) == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(ValueError, match="empty"):
        stance_summaries(t, v, [(0.5, 0.5)])


# --------------------------------------------------------------------------------------------------
# validation on the Grand Challenge subject PS (left TKA, 75 kg, 1.80 m)
# --------------------------------------------------------------------------------------------------

GC5 = shared_data_dir() / "GC5_PS"
PS_MASS_KG, PS_HEIGHT_M = 75.0, 1.80


def _scaled_to_gc5(model: mujoco.MjModel) -> mujoco.MjModel:
    """Rough per-segment scaling of MyoLeg to the GC5 model (test-only; proper scaling belongs to the registry):
    each child body's offset is scaled by the ratio of GC5's joint location to MyoLeg's (pelvis: per axis, the
    others: by length), and so is the parent segment's centre of mass.  Masses and inertias are left alone."""
    osim = ET.parse(GC5 / "model" / "GC5.osim").getroot()
    loc = {}
    for b in osim.iter("Body"):
        el = b.find(".//location_in_parent")
        if el is not None:
            loc[b.get("name")] = np.array([float(v) for v in el.text.split()])
    m = copy.deepcopy(model)

    def bid(n):
        return mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, n)

    for s in "lr":
        chain = [("pelvis", f"femur_{s}", None), (f"femur_{s}", f"tibia_{s}", f"patella_{s}"),
                 (f"tibia_{s}", f"talus_{s}", None), (f"talus_{s}", f"calcn_{s}", None),
                 (f"calcn_{s}", f"toes_{s}", None)]
        for parent, child, extra in chain:
            mine = model.body_pos[bid(child)]
            if parent == "pelvis":
                f = np.abs(loc[child]) / np.abs(mine)
            else:
                f = np.full(3, np.linalg.norm(loc[child]) / np.linalg.norm(mine))
                m.body_ipos[bid(parent)] = model.body_ipos[bid(parent)] * f
            m.body_pos[bid(child)] = mine * f
            if extra:
                m.body_pos[bid(extra)] = model.body_pos[bid(extra)] * f
    return m


def _gc5_markers():
    osim = ET.parse(GC5 / "model" / "GC5.osim").getroot()
    return {mk.get("name"): (mk.find("body").text.strip(), np.array([float(v) for v in mk.find("location").text.split()]))
            for mk in osim.iter("Marker")}


@pytest.mark.skipif(not (GC5 / "ik" / "PS_ngait_og_ss1_kinematics.mot").exists(), reason="shared GC5 data absent")
def test_gc5_left_knee_moments_are_in_the_published_range(myoleg, capsys):
    model = _scaled_to_gc5(myoleg)
    ik = read_mot(GC5 / "ik" / "PS_ngait_og_ss1_kinematics.mot").to_radians()
    rate = ik.rate_hz
    sm = smooth_derivatives(ik.data, rate, cutoff_hz=6.0, channel_names=ik.columns)
    mk = kinematics_from_opensim(model, ik.columns, sm.position, sm.velocity, sm.acceleration)
    assert set(mk.ignored_columns) == {"knee_angle_r_beta", "knee_angle_l_beta", "lumbar_extension",
                                       "lumbar_bending", "lumbar_rotation"}
    assert mk.defaulted_joints == ()

    # mapping sanity: lower-limb markers of the GC5 marker set land on the measured ones
    trc = read_trc(GC5 / "trc" / "PS_ngait_og_ss1.trc")
    raw = kinematics_from_opensim(model, ik.columns, ik.data)
    d = mujoco.MjData(model)
    errs = []
    for k in range(0, ik.n_rows, 4):
        d.qpos[:] = raw.qpos[k]
        mujoco.mj_kinematics(model, d)
        for name, (body, loc) in _gc5_markers().items():
            b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
            if b < 0 or body == "torso" or name not in trc.marker_names:
                continue
            meas = opensim_to_z_up(trc.marker(name)[k])
            if np.isfinite(meas).all():
                errs.append(np.linalg.norm(d.xpos[b] + d.xmat[b].reshape(3, 3) @ loc - meas))
    marker_rms_mm = 1000 * float(np.sqrt(np.mean(np.square(errs))))
    assert marker_rms_mm < 25.0

    grf = read_mot(GC5 / "grf" / "PS_ngait_og_ss1_kinetics.mot")
    exts = [external_wrench_from_opensim_grf(grf, "calcn_l", time_s=ik.time_s, cutoff_hz=6.0)]
    for p in "23":  # plates 2 and 3 are under the right foot (unused by the lab's setup; used here for residuals)
        exts.append(external_wrench_from_opensim_grf(
            grf, "calcn_r", force_identifier=f"{p}_ground_force_v", point_identifier=f"{p}_ground_force_p",
            torque_identifier=f"{p}_ground_torque", time_s=ik.time_s, cutoff_hz=6.0))
    inv = InverseDynamics(model, InverseDynamicsParams(reaction_bodies=("tibia_l",), gravity_m_s2=STANDARD_GRAVITY_M_S2))
    t0 = time.perf_counter()
    jm = inv.run(mk.qpos, mk.qvel, mk.qacc, exts, time_s=ik.time_s)
    per_frame_us = 1e6 * (time.perf_counter() - t0) / ik.n_rows
    knee = KneeMoments(inv, KneeMomentsParams("left", PS_MASS_KG, PS_HEIGHT_M))
    kn = knee.run(jm)
    kf = KneeMomentsFrame.allocate()
    for i in range(0, ik.n_rows, 5):  # per-frame path == batch path
        knee.step(jm.frame(i), kf)
        assert kf.knee_adduction_moment_pct_bw_ht == pytest.approx(kn.knee_adduction_moment_pct_bw_ht[i], abs=1e-12)
        assert kf.knee_extension_moment_nm == pytest.approx(kn.knee_extension_moment_nm[i], abs=1e-12)
        assert kf.knee_extension_moment_coordinate_nm == pytest.approx(
            kn.knee_extension_moment_coordinate_nm[i], abs=1e-12)

    stance = stance_intervals_from_force(ik.time_s, exts[0].force_n[:, 2])
    assert len(stance) == 1 and 0.55 < stance[0][1] - stance[0][0] < 0.8
    kam = stance_summaries(ik.time_s, kn.knee_adduction_moment_pct_bw_ht, stance)[0]
    kem = stance_summaries(ik.time_s, kn.knee_extension_moment_pct_bw_ht, stance)[0]
    kem_coord = stance_summaries(ik.time_s, pct_bw_ht(kn.knee_extension_moment_coordinate_nm, PS_MASS_KG,
                                                       PS_HEIGHT_M), stance)[0]
    bw = PS_MASS_KG * STANDARD_GRAVITY_M_S2
    res_rms = np.sqrt(np.mean(jm.residual_force_n**2, axis=0)) / bw
    mean_grf = float(np.mean(sum(e.force_n[:, 2] for e in exts)))
    with capsys.disabled():
        print(
            f"\n[GC5 PS ss1, left knee, MyoLeg roughly scaled] stance {stance[0][0]:.3f}-{stance[0][1]:.3f} s; "
            f"lower-limb marker RMS {marker_rms_mm:.1f} mm; ID {per_frame_us:.0f} us/frame\n"
            f"  KAM (ext. adduction, %BW*ht): 1st peak {kam.first_peak:.2f} @ {kam.first_peak_time_s:.3f} s, "
            f"2nd peak {kam.second_peak:.2f} @ {kam.second_peak_time_s:.3f} s, impulse {kam.impulse:.3f} %BW*ht*s\n"
            f"  KEM (int. extension, %BW*ht): peak {kem.peak:.2f} @ {kem.peak_time_s:.3f} s, "
            f"from knee_angle_l generalised force {kem_coord.peak:.2f}\n"
            f"  pelvis residual force RMS (x, y, z) {np.round(res_rms, 3)} BW; mean vertical GRF "
            f"{mean_grf / STANDARD_GRAVITY_M_S2:.1f} kg-equivalent vs 75 kg"
        )
    # loose sanity bounds only (published TKA walking: peak KAM ~2-3.5, peak knee extension moment ~2-5 %BW*ht)
    assert 1.0 < kam.first_peak < 5.0
    assert 0.5 < kam.second_peak < 5.0
    assert 0.05 < kam.first_peak_time_s - stance[0][0] < 0.4
    assert 1.0 < kem.peak < 6.0
    assert 0.03 < kem.peak_time_s - stance[0][0] < 0.3
    assert abs(kem_coord.peak - kem.peak) < 1.0
    assert (res_rms < 0.2).all()
