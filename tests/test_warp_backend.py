"""The MuJoCo Warp backend (``models/dynamics/warp_backend.py``, ``models/muscles/warp_backend.py``) against the CPU path.

Runs on Warp's CPU device (CUDA is used when present).  MuJoCo Warp computes in float32, so the tolerances are
float32's, stated against the peak of each quantity: joint moments, generalised forces and intersegmental
reactions <= 5e-6 x peak (measured 2e-7 to 1.7e-6; the issue's 1e-6 is below what float32 arithmetic over a
kinematic tree of 20+ bodies reaches, eps = 6e-8); on MyoLeg (GC5 PS ss1, measured plates, a 40-frame window of stance and
swing) activations <= 1e-3 (measured 4e-6), muscle forces and knee contact <= 1e-5 x peak (measured 3e-6).  The
static optimisation's sensitivity to its terms is ~the QP's condition number (``1 + P max|C|^2``, 1e4-1e5): on the
reserve-heavy synthetic MyoFullBody states float32 rounding moves activations by up to ~0.1, so there the muscle
state (moment arms, muscle forces at activation 1 and 0) is compared, <= 1e-5 x peak, not the solution.

The QP as a Warp kernel (``models/muscles/warp_qp.py``, float64) is checked against the host solver on the same Warp
muscle state (section at the end): activations <= 1e-7 (measured 1e-15 on PS ss1, 9e-13 on MyoFullBody), statuses
and invalid-input frames identical, and bit for bit against the host's cold path.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mujoco_warp", reason="mujoco_warp not installed (pip install 'mujoco-warp==4.0.0', the models "
                                          "extra): the Warp backend cannot run")

from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams  # noqa: E402
from models.dynamics.warp_backend import WarpInverseDynamics, check_backend  # noqa: E402
from models.dynamics.wrenches import ExternalWrenchTrial  # noqa: E402
from models.io.lab_files import shared_data_dir  # noqa: E402

PS = shared_data_dir() / "GC5_PS"
needs_data = pytest.mark.skipif(not (PS / "trc" / "PS_ngait_og_ss1.trc").exists(), reason=f"shared data absent at {PS}")
WINDOW = slice(20, 60)
DEVICE = "cpu"
DYN_TOL = 5e-6      # float32 (module docstring)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-12))


@pytest.fixture(scope="module")
def ps():
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics

    params = AnalyzeParams(75.0, 1.80, "left", muscles=True)
    kin = trial_kinematics(PS / "trc" / "PS_ngait_og_ss1.trc", PS / "model" / "GC5.osim", params)
    res = analyze_trial(None, None, params, grf_path=PS / "grf" / "PS_ngait_og_ss1_kinetics.mot", kin=kin)
    return kin, res, params


def _window(kin, res):
    w = WINDOW
    ext = [ExternalWrenchTrial(f"calcn_{s[0]}", res.foot_force_n[s][w], res.foot_cop_m[s][w],
                               res.foot_free_moment_nm[s][w], res.time_s[w]) for s in ("left", "right")]
    mk = kin.mapped
    return mk.qpos[w], mk.qvel[w], mk.qacc[w], ext, res.time_s[w]


@pytest.fixture(scope="module")
def fullbody():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent / "benchmarks"))
    from test_bench_so_vs_opensim import _fullbody_walk

    return _fullbody_walk(12, 120.0)


def test_backend_names_are_checked():
    assert check_backend("cpu") == "cpu" and check_backend("warp") == "warp"
    with pytest.raises(ValueError, match="backend = 'gpu'"):
        check_backend("gpu")
    from models.trial_analysis import AnalyzeParams

    with pytest.raises(ValueError, match="backend = 'mjx'"):
        AnalyzeParams(75.0, 1.8, "left", backend="mjx")


@needs_data
def test_inverse_dynamics_matches_cpu_on_ps_ss1(ps):
    kin, res, _ = ps
    q, qd, qdd, ext, t = _window(kin, res)
    inv = InverseDynamics(kin.model, InverseDynamicsParams(reaction_bodies=("tibia_l", "femur_r")))
    ref = inv.run(q, qd, qdd, ext, time_s=t)
    got = WarpInverseDynamics(inv, device=DEVICE).run(q, qd, qdd, ext, time_s=t)
    assert np.ptp(ref.coordinate_force) > 10.0        # a real load case, not zeros
    for name in ("generalized_force", "coordinate_force", "reaction_force_n", "reaction_moment_nm"):
        assert _rel(getattr(ref, name), getattr(got, name)) <= DYN_TOL, name
    tau_peak = np.max(np.abs(ref.generalized_force))
    assert np.max(np.abs(ref.residual_force_n - got.residual_force_n)) <= DYN_TOL * tau_peak
    assert np.max(np.abs(ref.residual_moment_nm - got.residual_moment_nm)) <= DYN_TOL * tau_peak


def test_inverse_dynamics_matches_cpu_on_myofullbody(fullbody):
    m, mass, q, qd, qdd, ext, t = fullbody
    inv = InverseDynamics(m, InverseDynamicsParams(reaction_bodies=("tibia_l",)))
    ref = inv.run(q, qd, qdd, ext)
    got = WarpInverseDynamics(inv, device=DEVICE, chunk_frames=5).run(q, qd, qdd, ext)   # 3 chunks
    for name in ("generalized_force", "coordinate_force", "reaction_force_n", "reaction_moment_nm"):
        assert _rel(getattr(ref, name), getattr(got, name)) <= DYN_TOL, name


@needs_data
def test_static_optimization_and_knee_contact_match_cpu_on_ps_ss1(ps):
    from models.muscles.knee_contact import KinematicsToContact
    from models.muscles.warp_backend import WarpKinematicsToContact

    kin, res, _ = ps
    q, qd, qdd, ext, t = _window(kin, res)
    so_c, kc_c = KinematicsToContact(kin.model, "left", body_mass_kg=75.0).run(q, qd, qdd, ext, t)
    so_w, kc_w = WarpKinematicsToContact(kin.model, "left", body_mass_kg=75.0, device=DEVICE).run(q, qd, qdd, ext, t)
    assert np.all(so_w.status == 0)
    assert np.max(np.abs(so_c.activation - so_w.activation)) <= 1e-3
    assert _rel(so_c.muscle_force_n, so_w.muscle_force_n) <= 1e-5
    assert np.max(kc_c.total_n) > 500.0
    for name in ("total_n", "medial_n", "lateral_n", "muscle_force_n"):
        assert np.max(np.abs(getattr(kc_c, name) - getattr(kc_w, name))) <= 1e-5 * np.max(kc_c.total_n), name


def test_muscle_state_matches_cpu_on_myofullbody(fullbody):
    import mujoco

    from models.muscles.static_optimization import StaticOptimization
    from models.muscles.warp_backend import WarpStaticOptimization

    m, mass, q, qd, qdd, ext, t = fullbody
    so = StaticOptimization(m)
    s = WarpStaticOptimization(so, device=DEVICE)._state(q, qd)
    mus = so.muscle_ids
    d = so.data
    for i in range(q.shape[0]):
        d.qpos[:], d.qvel[:] = q[i], qd[i]
        so._muscle_state()
        np.testing.assert_array_equal(s["moment_rownnz"][i], d.moment_rownnz)
        dense_c, dense_w = np.zeros((m.nu, m.nv)), np.zeros((m.nu, m.nv))
        for dense, rn, ra, ci, mo in ((dense_c, d.moment_rownnz, d.moment_rowadr, d.moment_colind, d.actuator_moment),
                                      (dense_w, s["moment_rownnz"][i], s["moment_rowadr"][i], s["moment_colind"][i],
                                       s["actuator_moment"][i])):
            for a in range(m.nu):
                np.add.at(dense[a], ci[ra[a]:ra[a] + rn[a]], mo[ra[a]:ra[a] + rn[a]])
        assert _rel(dense_c, dense_w) <= 1e-5
        f1 = so._F1[mus]
        assert np.max(np.abs(f1 - s["force_act1"][i][mus])) <= 1e-5 * np.max(np.abs(f1))
        f0 = d.actuator_force[mus]
        assert np.max(np.abs(f0 - s["force_act0"][i][mus])) <= 1e-5 * np.max(np.abs(f1))
    assert mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "tibia_l") >= 0


@needs_data
def test_analyze_trial_with_the_warp_backend_writes_it_and_matches_cpu(ps, tmp_path):
    import dataclasses

    from models.trial_analysis import analyze_trial, write_csvs

    kin, res, params = ps
    wparams = dataclasses.replace(params, backend="warp", device=DEVICE)
    got = analyze_trial(None, None, wparams, grf_path=PS / "grf" / "PS_ngait_og_ss1_kinetics.mot", kin=kin)
    assert got.summary()["backend"] == f"warp (device {DEVICE})" and res.summary()["backend"] == "cpu"
    assert any("MuJoCo Warp" in n for n in got.notes)
    if params.muscles:   # the note says where the QP ran: the default picks the host solver on Warp's CPU device
        where = "QP batched on Warp" if DEVICE.startswith("cuda") else "QP on the host"
        assert any(where in n for n in got.notes), got.notes
    assert _rel(res.moments_nm, got.moments_nm) <= DYN_TOL
    assert np.max(np.abs(res.muscles.activation - got.muscles.activation)) <= 1e-3
    files = {p.name for p in write_csvs(got, tmp_path)}
    assert {"joint_moments.csv", "activations.csv"} <= files


# ---- the QP as a Warp kernel (models/muscles/warp_qp.py) against the host solver ----------------------------------
# Both solve the same strictly convex QP (unique optimum) to the same tolerance, the host warm-started in time, the
# kernel cold per frame then warm from the nearest converged frame: on the same (Warp) muscle state activations agree
# to QP_TOL (measured 7e-16 on PS ss1, 2e-9 on MyoFullBody at w_res = 1e4), statuses exactly.  Where the host solver
# itself stops at max_iterations (MyoFullBody, w_res = 1e6) the best iterate depends on the start: there the kernel
# is checked against the host's own cold path (warm_start=False), bit for bit.  Against the float64 CPU backend the
# float32 muscle state dominates.
QP_TOL = 1e-7


def _qp_pair(model, q, qd, tau, params=None):
    from models.muscles.static_optimization import SOParams, StaticOptimization
    from models.muscles.warp_backend import WarpStaticOptimization

    so = StaticOptimization(model, params or SOParams())
    host = WarpStaticOptimization(so, device=DEVICE, qp="host").run(q, qd, tau)
    warp = WarpStaticOptimization(so, device=DEVICE, qp="warp", chunk_frames=7).run(q, qd, tau)   # several chunks
    return so, host, warp


def _assert_same_solution(host, warp, act_tol):
    np.testing.assert_array_equal(host.status, warp.status)
    assert np.array_equal(np.isnan(host.activation), np.isnan(warp.activation))
    assert np.nanmax(np.abs(host.activation - warp.activation)) <= act_tol
    peak = np.nanmax(np.abs(host.muscle_force_n))
    assert np.nanmax(np.abs(host.muscle_force_n - warp.muscle_force_n)) <= act_tol * peak
    tau_peak = np.nanmax(np.abs(host.muscle_moment_nm + host.reserve_nm))
    for name in ("muscle_moment_nm", "reserve_nm"):
        assert np.nanmax(np.abs(getattr(host, name) - getattr(warp, name))) <= act_tol * tau_peak, name
    assert np.nanmax(np.abs(warp.residual_nm)) <= 1e-9 * tau_peak     # the equality holds to the solver tolerance
    assert np.allclose(host.cost, warp.cost, rtol=1e-9, atol=0.0, equal_nan=True)


def test_qp_backend_name_is_checked():
    from models.body.registry import load_model
    from models.muscles.static_optimization import StaticOptimization
    from models.muscles.warp_backend import WarpStaticOptimization

    with pytest.raises(ValueError, match="qp = 'gpu'"):
        WarpStaticOptimization(StaticOptimization(load_model("myoleg")), device=DEVICE, qp="gpu")


def test_auto_qp_is_the_warp_kernel_on_cuda_and_the_host_solver_on_the_cpu_device():
    from models.muscles.warp_backend import resolve_qp

    assert resolve_qp("auto", "cuda") == "warp" and resolve_qp("auto", "cuda:1") == "warp"
    assert resolve_qp("auto", "cpu") == "host"
    assert resolve_qp("warp", "cpu") == "warp" and resolve_qp("host", "cuda") == "host"   # an explicit choice stays
    with pytest.raises(ValueError, match="qp = 'fast'"):
        resolve_qp("fast", "cpu")


@needs_data
@pytest.mark.parametrize("reserve_weight", [1.0, 1e6])
def test_warp_qp_matches_the_host_qp_on_ps_ss1(ps, reserve_weight):
    from models.muscles.static_optimization import STATUS_INVALID_INPUT, SOParams

    kin, res, _ = ps
    mk = kin.mapped
    ext = [ExternalWrenchTrial(f"calcn_{s[0]}", res.foot_force_n[s], res.foot_cop_m[s], res.foot_free_moment_nm[s],
                               res.time_s) for s in ("left", "right")]
    tau = InverseDynamics(kin.model, InverseDynamicsParams()).run(mk.qpos, mk.qvel, mk.qacc, ext,
                                                                   time_s=res.time_s).coordinate_force
    q, qd = mk.qpos.copy(), mk.qvel.copy()
    q[5, 3] = np.nan                                    # an invalid frame: flagged, NaN, on both paths
    tau[9, 7] = np.inf
    so, host, warp = _qp_pair(kin.model, q, qd, tau, SOParams(reserve_weight=reserve_weight))
    assert host.n_frames > 100 and np.ptp(tau[np.isfinite(tau)]) > 10.0
    assert set(np.flatnonzero(warp.status == STATUS_INVALID_INPUT)) == {5, 9}
    assert np.sum(warp.status == 0) == host.n_frames - 2
    _assert_same_solution(host, warp, QP_TOL)
    # against the float64 CPU backend (MuJoCo's muscle state): float32 rounding of Warp's state, as before
    cpu = so.run(q, qd, tau)
    np.testing.assert_array_equal(cpu.status, warp.status)
    assert np.nanmax(np.abs(cpu.activation - warp.activation)) <= 1e-3


@pytest.mark.parametrize("reserve_weight", [1.0, 1e4])
def test_warp_qp_matches_the_host_qp_on_myofullbody(fullbody, reserve_weight):
    from models.muscles.static_optimization import SOParams

    m, mass, q, qd, qdd, ext, t = fullbody
    tau = InverseDynamics(m, InverseDynamicsParams()).run(q, qd, qdd, ext).coordinate_force
    so, host, warp = _qp_pair(m, q, qd, tau, SOParams(reserve_weight=reserve_weight))
    assert so.solved_index.size > 50 and np.max(np.abs(warp.reserve_nm)) > 1e-3
    assert np.all(host.status == 0)
    _assert_same_solution(host, warp, QP_TOL)


def test_warp_qp_kernel_is_the_host_solver_cold_bit_for_bit(fullbody):
    """w_res = 1e6 on MyoFullBody: frames that stop at max_iterations and at the rounding floor (polish) too."""
    from models.muscles.static_optimization import STATUS_MAX_ITERATIONS, STATUS_ROUNDING_FLOOR, SOParams

    m, mass, q, qd, qdd, ext, t = fullbody
    tau = InverseDynamics(m, InverseDynamicsParams()).run(q, qd, qdd, ext).coordinate_force
    so, host, warp = _qp_pair(m, q, qd, tau, SOParams(reserve_weight=1e6, warm_start=False))
    assert {STATUS_MAX_ITERATIONS, STATUS_ROUNDING_FLOOR} <= set(host.status.tolist())
    np.testing.assert_array_equal(host.status, warp.status)
    np.testing.assert_array_equal(host.iterations, warp.iterations)
    np.testing.assert_array_equal(host.activation, warp.activation)
    np.testing.assert_array_equal(host.reserve_nm, warp.reserve_nm)


def test_warp_qp_options_are_checked():
    from models.body.registry import load_model
    from models.muscles.static_optimization import StaticOptimization
    from models.muscles.warp_qp import WarpQP

    so = StaticOptimization(load_model("myoleg"))
    with pytest.raises(ValueError, match="warm_rounds = -1"):
        WarpQP(so, DEVICE, warm_rounds=-1)
    with pytest.raises(ValueError, match="anchor_stride = 0"):
        WarpQP(so, DEVICE, anchor_stride=0)
