"""The compiled trial loops (issue 22) equal the Python stages they replace.

* :meth:`InverseDynamics.run` through :mod:`models.dynamics.compiled_id` (numba calling MuJoCo's C API) equals the
  Python loop over :meth:`InverseDynamics.step` bit for bit, on MyoLeg and MyoFullBody, with loaded and unloaded
  frames (NaN centre of pressure while unloaded).
* :class:`models.muscles.compiled_chain.CompiledChain` (ID, SO and knee contact in one loop, one position stage per
  frame) equals ``InverseDynamics.run`` + ``StaticOptimization.run`` + ``KneeContact.muscle_wrench_from_data`` per
  frame: ID and SO bit for bit (activations, forces, reserves, residuals, cost, iterations, status; where SO's
  tendon stage is the numba kernel -- MyoLeg, GC5 -- SO to 1e-9, its ``ten_J`` being mj_tendon's to 1e-12), the contact
  to 1e-12 relative (a 3x3 rotation summed in another order); on coupled states (kinematics shared) and on states
  that violate the couplings (SO's kinematics recomputed), and on PS ss1 (shared data).
* :meth:`StaticOptimization.run` without a hook runs :mod:`models.muscles.compiled_so`: bit-identical to its Python
  loop, invalid frames included.
* Non-finite input and an unusable C API take the Python stages (same results, NaN where the stages give NaN).
"""
from __future__ import annotations

import mujoco
import numpy as np
import pytest

from models.body.registry import load_model
from models.dynamics import mj_capi
from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
from models.dynamics.wrenches import ExternalWrenchTrial
from models.io.lab_files import shared_data_dir
from models.muscles.compiled_chain import CompiledChain
from models.muscles.knee_contact import KneeContact
from models.muscles.static_optimization import STATUS_INVALID_INPUT, StaticOptimization

pytestmark = pytest.mark.skipif(not mj_capi.capi_available()[0], reason=mj_capi.capi_available()[1])

ID_FIELDS = ("generalized_force", "coordinate_force", "residual_force_n", "residual_moment_nm", "reaction_force_n",
             "reaction_moment_nm")
SO_FIELDS = ("activation", "muscle_force_n", "muscle_moment_nm", "reserve_nm", "residual_nm", "cost", "iterations",
             "status")


def _walk(name: str, n: int, coupled: bool = True, seed: int = 3):
    """Smooth states (qpos0 + 1 Hz sinusoids of 0.08 x each limited joint's range, 120 Hz) and two foot loads
    (unloaded with NaN CoP a third of the time)."""
    mm = load_model(name)
    m = mm.model
    rate = 120.0
    t = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    qpos = np.tile(m.qpos0, (n, 1))
    for j in range(m.njnt):
        if int(m.jnt_type[j]) in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)) and m.jnt_limited[j]:
            lo, hi = m.jnt_range[j]
            a = m.qpos0[m.jnt_qposadr[j]]
            qpos[:, m.jnt_qposadr[j]] = np.clip(a + 0.08 * (hi - lo) * np.sin(2 * np.pi * t + rng.uniform(0, 6.3)),
                                                lo, hi)
    if coupled:
        for i in range(n):
            mm.apply_joint_couplings(qpos[i])
    qvel = np.zeros((n, m.nv))
    for i in range(1, n):
        mujoco.mj_differentiatePos(m, qvel[i], 1.0 / rate, qpos[i - 1], qpos[i])
    qacc = np.gradient(qvel, 1.0 / rate, axis=0)
    ext = []
    for k, s in enumerate("lr"):
        F = np.zeros((n, 3))
        F[:, 2] = 400.0 + 50.0 * np.sin(2 * np.pi * t + k)
        F[:, 0] = 30.0 * np.cos(2 * np.pi * t)
        P = np.column_stack([0.1 * np.sin(t), 0.1 * (k - 0.5) + 0.0 * t, 0.0 * t])
        off = (np.arange(n) // 5 + k) % 3 == 0
        F[off] = 0.0
        P[off] = np.nan
        T = np.zeros((n, 3))
        T[~off, 2] = 2.0
        ext.append(ExternalWrenchTrial(f"calcn_{s}", F, P, T, t))
    return m, qpos, qvel, qacc, ext, t


def _reference(inv: InverseDynamics, so: StaticOptimization, kc: KneeContact, qpos, qvel, qacc, ext, t):
    """The stages one after the other, in Python (the code the compiled chain replaced)."""
    jm = inv.run(qpos, qvel, qacc, ext, time_s=t, compiled=False)
    n = qpos.shape[0]
    F, M = np.zeros((n, 3)), np.zeros((n, 3))

    def hook(i, fr):
        if np.isfinite(fr.cost):
            F[i], M[i] = kc.muscle_wrench_from_data(so.data, fr.muscle_force_n, so.muscle_names)
        else:
            F[i], M[i] = np.nan, np.nan

    trial = so.run(qpos, qvel, jm.coordinate_force, after_step=hook)
    return jm, trial, kc._assemble(jm.reaction_force_n[:, 0], jm.reaction_moment_nm[:, 0], F, M, t)


def _stages(m):
    kc = KneeContact(m, "left", body_mass_kg=70.0)
    inv = InverseDynamics(m, InverseDynamicsParams(reaction_bodies=("tibia_l",), gravity_m_s2=kc.gravity_m_s2))
    return inv, StaticOptimization(m), kc


def _assert_so(so, so0, exact: bool) -> None:
    """SO outputs: bit for bit (``exact``), else -- where the compiled SO runs the tendon kernel without the dofs
    shared by a segment's end points (:mod:`models.muscles.compiled_tendon`: ``ten_J`` within 1e-12 of each row's
    largest entry, lengths exact) -- activations within 1e-9 (issue 22's tolerance), the other outputs within 1e-9
    of their largest magnitude, statuses equal."""
    for f in SO_FIELDS:
        a, b = getattr(so, f), getattr(so0, f)
        if exact or f in ("iterations", "status"):
            if not exact and f == "iterations":   # a noise-level change may cost the dual Newton one step
                assert np.all(np.abs(a - b) <= 1), f
                continue
            np.testing.assert_array_equal(a, b, err_msg=f)
        else:
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f)
            ok = np.isfinite(b)
            scale = 1.0 if f == "activation" else max(1.0, float(np.abs(b[ok]).max(initial=0.0)))
            np.testing.assert_allclose(a[ok], b[ok], rtol=0.0, atol=1e-9 * scale, err_msg=f)


def _assert_equal(ours, ref, exact: bool = True):
    jm, so, kc = ours
    jm0, so0, kc0 = ref
    for f in ID_FIELDS:
        np.testing.assert_array_equal(getattr(jm, f), getattr(jm0, f), err_msg=f)
    _assert_so(so, so0, exact)
    for f in ("total_n", "medial_n", "lateral_n", "axial_n", "frontal_moment_nm"):
        a, b = getattr(kc, f), getattr(kc0, f)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        ok = np.isfinite(b)
        np.testing.assert_allclose(a[ok], b[ok], rtol=1e-12, atol=1e-12 * np.abs(b[ok]).max(), err_msg=f)


@pytest.mark.parametrize("name", ["myoleg", "myofullbody"])
def test_compiled_inverse_dynamics_is_bit_identical(name):
    m, qpos, qvel, qacc, ext, t = _walk(name, 40)
    inv = InverseDynamics(m, InverseDynamicsParams(reaction_bodies=("tibia_l", "femur_r")))
    a = inv.run(qpos, qvel, qacc, ext, time_s=t)
    b = inv.run(qpos, qvel, qacc, ext, time_s=t, compiled=False)
    for f in ID_FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert np.abs(a.reaction_force_n).max() > 10.0          # the loads and reactions are really there


def test_compiled_inverse_dynamics_with_full_mj_inverse():
    m, qpos, qvel, qacc, ext, t = _walk("myoleg", 20)
    inv = InverseDynamics(m, InverseDynamicsParams(subtract_passive=True, reaction_bodies=("tibia_l",)))
    assert not inv.skips_tendons
    a = inv.run(qpos, qvel, qacc, ext, time_s=t)
    b = inv.run(qpos, qvel, qacc, ext, time_s=t, compiled=False)
    for f in ID_FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


@pytest.mark.parametrize("name,coupled", [("myoleg", True), ("myoleg", False), ("myofullbody", True)])
def test_chain_equals_the_stages(name, coupled):
    m, qpos, qvel, qacc, ext, t = _walk(name, 30 if name == "myofullbody" else 60, coupled=coupled)
    inv, so, kc = _stages(m)
    ref = _reference(inv, so, kc, qpos, qvel, qacc, ext, t)
    chain = CompiledChain(so, inv, kc)
    assert chain.compiled, chain.fallback_reason
    assert chain.tendon_kernel == (name == "myoleg")          # MyoFullBody: wrap geoms without side sites
    ours = chain.run(qpos, qvel, qacc, ext, t)
    _assert_equal(ours, ref, exact=not chain.tendon_kernel)
    assert np.all(ours[1].status == 0)
    assert np.all(ours[1].step_time_s >= ours[1].solve_time_s) and ours[1].total_time_s > 0
    _assert_equal(chain.run(qpos, qvel, qacc, ext, t), ref, exact=not chain.tendon_kernel)   # starts cold again


@pytest.mark.parametrize("name", ["myoleg", "myofullbody"])
def test_compiled_static_optimization_equals_the_python_loop(name):
    m, qpos, qvel, qacc, ext, _ = _walk(name, 40)
    inv, so, _ = _stages(m)
    tau = inv.run(qpos, qvel, qacc, ext).coordinate_force
    tau[9, 3] = np.nan                                        # an invalid frame: NaN outputs, warm start kept
    ref = so.run(qpos, qvel, tau, compiled=False)
    kernel = CompiledChain(so).tendon_kernel       # the stage's own run: the bit-identical tendon kernel
    for ours, exact in ((so.run(qpos, qvel, tau), True), (CompiledChain(so).run_so(qpos, qvel, tau), not kernel)):
        _assert_so(ours, ref, exact=exact)
        assert ours.status[9] == STATUS_INVALID_INPUT and np.all(np.delete(ours.status, 9) == 0)


def test_non_finite_input_takes_the_python_stages():
    m, qpos, qvel, qacc, ext, t = _walk("myoleg", 30)
    qacc[7, 10] = np.nan
    inv, so, kc = _stages(m)
    ref = _reference(inv, so, kc, qpos, qvel, qacc, ext, t)
    ours = CompiledChain(so, inv, kc).run(qpos, qvel, qacc, ext, t)
    assert ours[1].status[7] == STATUS_INVALID_INPUT and np.isnan(ours[2].total_n[7])
    for f in SO_FIELDS:
        np.testing.assert_array_equal(getattr(ours[1], f), getattr(ref[1], f), err_msg=f)


def test_without_the_c_api_the_python_stages_run(monkeypatch):
    m, qpos, qvel, qacc, ext, t = _walk("myoleg", 20)
    inv, so, kc = _stages(m)
    ref = _reference(inv, so, kc, qpos, qvel, qacc, ext, t)
    monkeypatch.setattr(mj_capi, "capi_available", lambda: (False, "test: no C API"))
    chain = CompiledChain(so, inv, kc)
    assert not chain.compiled and chain.fallback_reason == "test: no C API"
    _assert_equal(chain.run(qpos, qvel, qacc, ext, t), ref)


def test_mismatched_models_are_refused():
    a, b = load_model("myoleg").model, load_model("myofullbody").model
    with pytest.raises(ValueError, match="inverse_dynamics"):
        CompiledChain(StaticOptimization(a), InverseDynamics(b))


PS = shared_data_dir() / "GC5_PS"


@pytest.mark.skipif(not (PS / "trc" / "PS_ngait_og_ss1.trc").exists(), reason=f"shared data absent at {PS}")
def test_chain_equals_the_stages_on_ps_ss1():
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics

    params = AnalyzeParams(75.0, 1.80, "left", muscles=False)
    kin = trial_kinematics(PS / "trc" / "PS_ngait_og_ss1.trc", PS / "model" / "GC5.osim", params)
    res = analyze_trial(None, None, params, grf_path=PS / "grf" / "PS_ngait_og_ss1_kinetics.mot", kin=kin)
    ext = [ExternalWrenchTrial(f"calcn_{s[0]}", res.foot_force_n[s], res.foot_cop_m[s], res.foot_free_moment_nm[s],
                               res.time_s) for s in ("left", "right")]
    mk = kin.mapped
    inv, so, kc = _stages(kin.model)
    ref = _reference(inv, so, kc, mk.qpos, mk.qvel, mk.qacc, ext, kin.time_s)
    chain = CompiledChain(so, inv, kc)
    assert chain.tendon_kernel
    ours = chain.run(mk.qpos, mk.qvel, mk.qacc, ext, kin.time_s)
    _assert_equal(ours, ref, exact=False)
    assert np.nanmax(ours[2].total_bw) > 1.0


def test_contact_crossing_sums_of_a_trial_equal_the_per_frame_method():
    from models.muscles.contact_kernels import muscle_wrenches

    m, qpos, qvel, qacc, ext, t = _walk("myoleg", 30)
    inv, so, kc = _stages(m)
    trial = so.run(qpos, qvel, inv.run(qpos, qvel, qacc, ext).coordinate_force)
    qpos = qpos.copy()
    qpos[4, 7] = np.nan
    F, M = muscle_wrenches(kc, qpos, trial.muscle_force_n, so.muscle_names)
    for i in range(qpos.shape[0]):
        f, mo = kc.muscle_wrench(qpos[i], trial.muscle_force_n[i], so.muscle_names)
        if i == 4:
            assert np.isnan(F[i]).all() and np.isnan(f).all()
            continue
        np.testing.assert_allclose(F[i], f, rtol=0, atol=1e-12 * np.abs(f).max())
        np.testing.assert_allclose(M[i], mo, rtol=0, atol=1e-12 * np.abs(mo).max())
    assert np.abs(F[~np.isnan(F[:, 0])]).max() > 100.0
    kc_trial = kc.run(qpos, qvel, qacc, ext, trial.muscle_force_n, so.muscle_names, t)
    np.testing.assert_allclose(kc_trial.muscle_force_n, F, rtol=0, atol=1e-12 * np.nanmax(np.abs(F)))
