"""``CompiledChain(..., workers=N)``: the frames split over threads (issue 22 item 3) against ``workers=1``.

On GC5 PS ss1 (132 frames) and the benchmark's 10 s MyoLeg walk (PS ss1 repeated 10 times, 1320 frames), ID (with
the tibia reaction) -> SO -> knee contact:

* joint moments, residuals and reactions bit-identical (ID has no state);
* activations within 1e-8 (the agreement of a warm- and a cold-started QP, tests/test_static_optimization: measured
  here 5.6e-16, rounding, on the frames after the second chunk's cold start; bit-identical again 66 frames later),
  muscle forces and reserves to 1e-8 of their largest value, the contact forces to 1e-8 relative (measured 5e-13 N
  of 1825 N);
* the same statuses, except possibly at a chunk's first frame (a cold start instead of a warm one; measured: none
  differ, the iteration count differs at frame 660 of the walk only).

Also: the compiled loop releases the GIL (numba ``nogil``), each thread's MuJoCo calls get its own ``MjData``, a
second run repeats the first, invalid frames (NaN moments) at a chunk start keep their status and the stage ends
with the warm start of the last solved frame, and ``workers`` is validated.
"""
from __future__ import annotations

import numpy as np
import pytest

from models.dynamics import mj_capi
from models.dynamics.wrenches import ExternalWrenchTrial
from models.io.lab_files import shared_data_dir
from models.muscles import compiled_chain
from models.muscles.compiled_chain import CompiledChain
from models.muscles.static_optimization import STATUS_INVALID_INPUT

PS = shared_data_dir() / "GC5_PS"
pytestmark = [pytest.mark.skipif(not mj_capi.capi_available()[0], reason=mj_capi.capi_available()[1]),
              pytest.mark.skipif(not (PS / "trc" / "PS_ngait_og_ss1.trc").exists(),
                                 reason=f"shared data absent at {PS}")]

ID_FIELDS = ("generalized_force", "coordinate_force", "residual_force_n", "residual_moment_nm", "reaction_force_n",
             "reaction_moment_nm")
ACT_TOL = 1e-8


@pytest.fixture(scope="module")
def ps_ss1():
    from models.muscles.knee_contact import KinematicsToContact
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics

    params = AnalyzeParams(75.0, 1.80, "left", muscles=False)
    kin = trial_kinematics(PS / "trc" / "PS_ngait_og_ss1.trc", PS / "model" / "GC5.osim", params)
    res = analyze_trial(None, None, params, grf_path=PS / "grf" / "PS_ngait_og_ss1_kinetics.mot", kin=kin)
    ext = [ExternalWrenchTrial(f"calcn_{s[0]}", res.foot_force_n[s], res.foot_cop_m[s], res.foot_free_moment_nm[s],
                               res.time_s) for s in ("left", "right")]
    return kin, ext, KinematicsToContact(kin.model, "left", body_mass_kg=75.0)


def _trial(kin, ext, reps: int):
    mk = kin.mapped
    qpos, qvel, qacc = (np.tile(x, (reps, 1)) for x in (mk.qpos, mk.qvel, mk.qacc))
    t = np.arange(qpos.shape[0]) / kin.rate_hz
    ex = [ExternalWrenchTrial(w.body, np.tile(w.force_n, (reps, 1)), np.tile(w.point_m, (reps, 1)),
                              np.tile(w.free_moment_nm, (reps, 1)), t) for w in ext]
    return qpos, qvel, qacc, ex, t


def _assert_close(ours, ref, starts):
    jm, so, kc = ours
    jm0, so0, kc0 = ref
    for f in ID_FIELDS:
        np.testing.assert_array_equal(getattr(jm, f), getattr(jm0, f), err_msg=f)
    np.testing.assert_allclose(so.activation, so0.activation, rtol=0, atol=ACT_TOL)
    for f in ("muscle_force_n", "reserve_nm", "muscle_moment_nm"):
        a, b = getattr(so, f), getattr(so0, f)
        np.testing.assert_allclose(a, b, rtol=0, atol=ACT_TOL * max(1.0, np.abs(b).max()), err_msg=f)
    keep = np.setdiff1d(np.arange(so.status.size), starts)
    np.testing.assert_array_equal(so.status[keep], so0.status[keep])
    for f in ("total_n", "medial_n", "lateral_n", "axial_n", "frontal_moment_nm"):
        a, b = getattr(kc, f), getattr(kc0, f)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        ok = np.isfinite(b)
        np.testing.assert_allclose(a[ok], b[ok], rtol=0, atol=ACT_TOL * np.abs(b[ok]).max(), err_msg=f)


@pytest.mark.parametrize("reps,workers", [(1, 2), (10, 2), (1, 3)])
def test_threads_equal_the_sequential_loop(ps_ss1, reps, workers):
    kin, ext, k2c = ps_ss1
    args = _trial(kin, ext, reps)
    stages = (k2c.static_optimization, k2c.inverse_dynamics, k2c.contact)
    ref = CompiledChain(*stages).run(*args)
    chain = CompiledChain(*stages, workers=workers)
    assert chain.compiled and chain.workers == workers
    ours = chain.run(*args)
    n = args[0].shape[0]
    starts = (np.arange(workers) * n) // workers
    _assert_close(ours, ref, starts)
    assert np.all(ref[1].status == 0) and np.nanmax(ref[2].total_bw) > 1.0     # a real trial, every frame solved
    assert ours[1].total_time_s > 0 and np.all(ours[1].step_time_s > 0)
    again = chain.run(*args)                                                    # every chunk starts cold again
    for f in ("activation", "iterations", "status"):
        np.testing.assert_array_equal(getattr(again[1], f), getattr(ours[1], f), err_msg=f)
    np.testing.assert_array_equal(again[2].total_n, ours[2].total_n)


def test_each_thread_has_its_own_data_and_the_loop_releases_the_gil(ps_ss1):
    kin, ext, k2c = ps_ss1
    assert compiled_chain._trial.targetoptions.get("nogil") is True
    chain = CompiledChain(k2c.static_optimization, k2c.inverse_dynamics, k2c.contact, workers=3)
    chain.run(*_trial(kin, ext, 1))
    states = chain._states
    assert len(states) == 2
    ptrs = {chain._d_so} | {st.dd for st in states}
    assert len(ptrs) == 3
    for st in states:
        assert st.dd == mj_capi.address(st.data)
        assert np.shares_memory(st.D.qpos, st.data.qpos) and np.shares_memory(st.KV.xpos, st.data.xpos)
        assert not np.shares_memory(st.D.qpos, k2c.static_optimization.data.qpos)
        assert not np.shares_memory(st.S.lam, chain._S.lam) and not np.shares_memory(st.S.R, chain._S.R)


def test_invalid_frames_at_a_chunk_start_and_the_warm_start_after(ps_ss1):
    kin, ext, k2c = ps_ss1
    so = k2c.static_optimization
    qpos, qvel, qacc, ex, t = _trial(kin, ext, 1)
    tau = k2c.inverse_dynamics.run(qpos, qvel, qacc, ex, time_s=t).coordinate_force.copy()
    n = qpos.shape[0]
    starts = (np.arange(3) * n) // 3
    bad = np.concatenate([starts[1:] + k for k in range(2)])            # the first two frames of chunks 2 and 3
    tau[bad, 5] = np.nan
    ref = CompiledChain(so).run_so(qpos, qvel, tau)
    lam_ref = so._lam.copy()
    ours = CompiledChain(so, workers=3).run_so(qpos, qvel, tau)
    np.testing.assert_array_equal(ours.status, ref.status)
    assert np.all(ours.status[bad] == STATUS_INVALID_INPUT) and np.isnan(ours.activation[bad]).all()
    ok = ref.status != STATUS_INVALID_INPUT
    np.testing.assert_allclose(ours.activation[ok], ref.activation[ok], rtol=0, atol=ACT_TOL)
    assert so._have_warm and np.abs(lam_ref).max() > 0
    np.testing.assert_allclose(so._lam, lam_ref, rtol=0, atol=ACT_TOL * np.abs(lam_ref).max())
    tau[starts[2]:] = np.nan                                           # the last chunk solves nothing: the warm
    CompiledChain(so).run_so(qpos, qvel, tau)                           # start is the second chunk's last
    lam_ref = so._lam.copy()
    CompiledChain(so, workers=3).run_so(qpos, qvel, tau)
    np.testing.assert_allclose(so._lam, lam_ref, rtol=0, atol=ACT_TOL * np.abs(lam_ref).max())


def test_more_workers_than_frames(ps_ss1):
    kin, ext, k2c = ps_ss1
    qpos, qvel, qacc, ex, t = _trial(kin, ext, 1)
    sl = slice(0, 2)
    ex2 = [ExternalWrenchTrial(w.body, w.force_n[sl], w.point_m[sl], w.free_moment_nm[sl], t[sl]) for w in ex]
    stages = (k2c.static_optimization, k2c.inverse_dynamics, k2c.contact)
    args = (qpos[sl], qvel[sl], qacc[sl], ex2, t[sl])
    _assert_close(CompiledChain(*stages, workers=5).run(*args), CompiledChain(*stages).run(*args), np.arange(2))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_workers_is_validated(ps_ss1, bad):
    k2c = ps_ss1[2]
    with pytest.raises(ValueError, match="workers"):
        CompiledChain(k2c.static_optimization, workers=bad)
