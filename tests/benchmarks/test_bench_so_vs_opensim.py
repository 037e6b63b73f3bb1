"""Static optimisation against OpenSim's, and kinematics -> activations -> knee contact force over a 10 s walk.

Measured, never asserted (a shared 2-core VM); figures go to ``extra_info`` and are printed.

* ``test_so_vs_opensim``: OpenSim 4.6's AnalyzeTool + StaticOptimization (``models.io.opensim_reference``) on GC5 PS ss1
  (the lab's ``GC5.osim``, its IK and plates; 1.09 s of motion) and, in the same process, our inverse dynamics +
  static optimisation on the same trial (our subject model and kinematics, measured plates) in one compiled loop
  (:class:`models.muscles.compiled_chain.CompiledChain`): seconds of compute per second of motion for each and the
  ratio (the issue's goal: >= 3000 x); beside it, in the same run, the same loop with MuJoCo's ``mj_tendon`` in
  place of the tendon kernel (``CompiledChain(tendon_kernel=False)``: the before/after of
  :mod:`models.muscles.compiled_tendon`), ``InverseDynamics.run`` + ``StaticOptimization.run`` and the Python
  stage loops.  Skipped when ``opensim`` is absent
  (``pip install opensim==4.6``, the bench extra).
* ``test_walk_10s_kinematics_to_kcf[myoleg]``: PS ss1's smoothed kinematics and measured foot wrenches repeated to
  >= 10 s (10 cycles, 1320 frames at 120 Hz), then inverse dynamics (with the tibia reaction) -> static
  optimisation -> knee contact in one call (``models.muscles.knee_contact.KinematicsToContact``: one compiled loop,
  :mod:`models.muscles.compiled_chain`, one MuJoCo position stage per frame); goal <= 0.1 s.  Reference in the same
  run: the same stages as Python loops (``CompiledChain(..., use_compiled=False)``).  CPU time (``time.process_time``) is printed
  beside the wall time: on a shared machine it is the figure to quote.
* ``test_walk_10s_kinematics_to_kcf[myofullbody]``: the same chain on MyoFullBody over 1200 smooth synthetic
  states (qpos0 plus 1 Hz sinusoids of 0.1 x each limited joint's range; no marker set exists for it), each foot
  carrying half the body weight; goal <= 1 s.
"""
from __future__ import annotations

import math
import tempfile
import time

import mujoco
import numpy as np
import pytest

from models.dynamics.wrenches import ExternalWrenchTrial
from models.io.lab_files import shared_data_dir

PS = shared_data_dir() / "GC5_PS"
needs_data = pytest.mark.skipif(not (PS / "trc" / "PS_ngait_og_ss1.trc").exists(), reason=f"shared data absent at {PS}")
G = 9.80665


@pytest.fixture(scope="module")
def ps_ss1():
    from models.trial_analysis import AnalyzeParams, analyze_trial, trial_kinematics

    params = AnalyzeParams(75.0, 1.80, "left", muscles=False)
    kin = trial_kinematics(PS / "trc" / "PS_ngait_og_ss1.trc", PS / "model" / "GC5.osim", params)
    res = analyze_trial(None, None, params, grf_path=PS / "grf" / "PS_ngait_og_ss1_kinetics.mot", kin=kin)
    ext = [ExternalWrenchTrial(f"calcn_{s[0]}", res.foot_force_n[s], res.foot_cop_m[s], res.foot_free_moment_nm[s],
                               res.time_s) for s in ("left", "right")]
    return kin, res, ext


@needs_data
def test_so_vs_opensim(benchmark, ps_ss1):
    from models.io.opensim_reference import opensim_available, run_opensim_static_optimization, time_ours_id_so

    if not opensim_available():
        pytest.skip("opensim not installed (pip install opensim==4.6)")
    kin, res, ext = ps_ss1
    with tempfile.TemporaryDirectory() as tmp:
        osr = run_opensim_static_optimization(PS / "model" / "GC5.osim", PS / "ik" / "PS_ngait_og_ss1_kinematics.mot",
                                              PS / "grf" / "PS_ngait_og_ss1_kinetics.mot",
                                              PS / "grf" / "PS_ngait_og_ss1_External_Forces.xml", tmp)
    mk = kin.mapped
    ours = time_ours_id_so(kin.model, mk.qpos, mk.qvel, mk.qacc, ext, kin.time_s, repeats=5)
    fused = _time_chain(kin.model, mk, ext, kin.time_s, use_compiled=True)
    fused_mj = _time_chain(kin.model, mk, ext, kin.time_s, use_compiled=True, tendon_kernel=False)
    fused2 = _time_chain(kin.model, mk, ext, kin.time_s, use_compiled=True, workers=2)
    python = _time_chain(kin.model, mk, ext, kin.time_s, use_compiled=False)
    benchmark.pedantic(lambda: _time_chain(kin.model, mk, ext, kin.time_s, use_compiled=True, repeats=1),
                       rounds=3, iterations=1)
    ratio = osr.wall_per_motion_s / fused["per_motion_s"]
    ratio_cpu = osr.cpu_per_motion_s / fused["cpu_per_motion_s"]
    ratio_cpu_mj = osr.cpu_per_motion_s / fused_mj["cpu_per_motion_s"]
    stages_cpu = osr.cpu_per_motion_s / ours["cpu_per_motion_s"]
    python_cpu = osr.cpu_per_motion_s / python["cpu_per_motion_s"]
    ratio2_wall = osr.wall_per_motion_s / fused2["per_motion_s"]
    ratio2_cpu = osr.cpu_per_motion_s / fused2["cpu_per_motion_s"]
    benchmark.extra_info.update({"opensim_s_per_motion_s": osr.wall_per_motion_s, "opensim_run_s": osr.run_wall_s,
                                 "opensim_cpu_s_per_motion_s": osr.cpu_per_motion_s,
                                 "opensim_motion_s": osr.motion_s, "ours_s_per_motion_s": ours["per_motion_s"],
                                 "ours_cpu_s_per_motion_s": ours["cpu_per_motion_s"],
                                 "ours_id_so_s": ours["id_so_s"], "fused_cpu_s_per_motion_s": fused["cpu_per_motion_s"],
                                 "fused_s_per_motion_s": fused["per_motion_s"],
                                 "python_stages_cpu_s_per_motion_s": python["cpu_per_motion_s"],
                                 "ratio_wall": ratio, "ratio_cpu": ratio_cpu, "ratio_cpu_stages": stages_cpu,
                                 "ratio_cpu_python_stages": python_cpu, "goal_ratio": 3000,
                                 "opensim_version": osr.opensim_version,
                                 "workers2_s_per_motion_s": fused2["per_motion_s"],
                                 "workers2_cpu_s_per_motion_s": fused2["cpu_per_motion_s"],
                                 "ratio_wall_workers2": ratio2_wall, "ratio_cpu_workers2": ratio2_cpu,
                                 "mj_tendon_cpu_s_per_motion_s": fused_mj["cpu_per_motion_s"],
                                 "ratio_cpu_mj_tendon": ratio_cpu_mj})
    print(f"\nSO vs OpenSim, GC5 PS ss1 ({osr.motion_s:.3f} s of motion, {ours['frames']} frames): OpenSim "
          f"{osr.opensim_version} StaticOptimization {osr.cpu_per_motion_s:.2f} s CPU ({osr.wall_per_motion_s:.2f} s wall) "
          f"per s of motion; ours ID + SO in one compiled loop {fused['cpu_per_motion_s'] * 1e3:.2f} ms CPU "
          f"({fused['per_motion_s'] * 1e3:.2f} ms wall) per s; ratio {ratio_cpu:.0f} x CPU, {ratio:.0f} x wall (goal >= "
          f"3000 x: {'met' if ratio_cpu >= 3000 else 'NOT met'} on CPU time).  Same run: InverseDynamics.run + "
          f"StaticOptimization.run {ours['cpu_per_motion_s'] * 1e3:.2f} ms CPU per s ({stages_cpu:.0f} x), the Python "
          f"stage loops {python['cpu_per_motion_s'] * 1e3:.2f} ms ({python_cpu:.0f} x)")
    print(f"  the same loop over 2 threads (CompiledChain(workers=2)): {fused2['per_motion_s'] * 1e3:.2f} ms WALL per s "
          f"of motion = {ratio2_wall:.0f} x OpenSim's wall (the figure that uses both cores of this machine; OpenSim's "
          f"SO is single-threaded); {fused2['cpu_per_motion_s'] * 1e3:.2f} ms CPU per s (all threads) = "
          f"{ratio2_cpu:.0f} x OpenSim's CPU (the single-core figure, 1 worker above: {ratio_cpu:.0f} x)")
    print(f"  the same loop with MuJoCo's mj_tendon instead of the tendon kernel (CompiledChain(tendon_kernel=False)): "
          f"{fused_mj['cpu_per_motion_s'] * 1e3:.2f} ms CPU per s = {ratio_cpu_mj:.0f} x OpenSim's CPU (kernel: "
          f"{ratio_cpu:.0f} x)")


def _time_chain(model, mk, ext, time_s, *, use_compiled: bool, repeats: int = 5, workers: int = 1,
                tendon_kernel: bool = True) -> dict[str, float]:
    """ID + SO of the trial through :class:`models.muscles.compiled_chain.CompiledChain` (``use_compiled``: one
    compiled loop; else the Python stage loops): best of ``repeats`` wall and CPU seconds, and per s of motion."""
    from models.dynamics.inverse_dynamics import InverseDynamics, InverseDynamicsParams
    from models.muscles.compiled_chain import CompiledChain
    from models.muscles.static_optimization import SOParams, StaticOptimization

    chain = CompiledChain(StaticOptimization(model, SOParams()), InverseDynamics(model, InverseDynamicsParams()),
                          use_compiled=use_compiled, workers=workers, tendon_kernel=tendon_kernel)
    chain.run(mk.qpos, mk.qvel, mk.qacc, ext, time_s)          # loads the compiled code
    best, best_cpu = np.inf, np.inf
    for _ in range(max(1, repeats)):
        t0, c0 = time.perf_counter(), time.process_time()
        chain.run(mk.qpos, mk.qvel, mk.qacc, ext, time_s)
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    motion = float(time_s[-1] - time_s[0])
    return {"s": best, "cpu_s": best_cpu, "per_motion_s": best / motion, "cpu_per_motion_s": best_cpu / motion}


def _chain(model, side, mass_kg, qpos, qvel, qacc, ext, t, use_compiled: bool = True, workers: int = 1):
    """The knee contact of the trial: :class:`KinematicsToContact` (one compiled loop), or with ``use_compiled=False``
    the same stages in Python (the reference measured in the same run)."""
    from models.muscles.compiled_chain import CompiledChain
    from models.muscles.knee_contact import KinematicsToContact

    chain = KinematicsToContact(model, side, body_mass_kg=mass_kg)
    if use_compiled and workers > 1:   # the same stages, the frames over ``workers`` threads
        par = CompiledChain(chain.static_optimization, chain.inverse_dynamics, chain.contact, workers=workers)
        return lambda: par.run(qpos, qvel, qacc, ext, t)[2]
    if use_compiled:
        return lambda: chain.run(qpos, qvel, qacc, ext, t)[1]
    ref = CompiledChain(chain.static_optimization, chain.inverse_dynamics, chain.contact, use_compiled=False)
    return lambda: ref.run(qpos, qvel, qacc, ext, t)[2]


def _fullbody_walk(n: int, rate: float):
    from models.body.registry import load_model

    mm = load_model("myofullbody")
    m = mm.model
    t = np.arange(n) / rate
    qpos = np.tile(m.qpos0, (n, 1))
    rng = np.random.default_rng(7)
    for j in range(m.njnt):
        if int(m.jnt_type[j]) in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)) and m.jnt_limited[j]:
            lo, hi = m.jnt_range[j]
            a = m.qpos0[m.jnt_qposadr[j]]
            amp = 0.1 * (hi - lo)
            qpos[:, m.jnt_qposadr[j]] = np.clip(a + amp * np.sin(2 * np.pi * t + rng.uniform(0, 2 * np.pi)), lo, hi)
    for i in range(n):
        mm.apply_joint_couplings(qpos[i])
    qvel = np.zeros((n, m.nv))
    for i in range(1, n):
        mujoco.mj_differentiatePos(m, qvel[i], 1.0 / rate, qpos[i - 1], qpos[i])
    qacc = np.gradient(qvel, 1.0 / rate, axis=0)
    mass = float(mm.info.mass_kg)
    ext = []
    for s in "lr":
        F = np.zeros((n, 3))
        F[:, 2] = 0.5 * mass * G
        P = np.full((n, 3), np.nan)
        d = mujoco.MjData(m)
        bid = m.body(f"calcn_{s}").id
        for i in range(n):
            d.qpos[:] = qpos[i]
            mujoco.mj_kinematics(m, d)
            P[i] = d.xpos[bid]
        P[:, 2] = 0.0
        ext.append(ExternalWrenchTrial(f"calcn_{s}", F, P, np.zeros((n, 3)), t))
    return m, mass, qpos, qvel, qacc, ext, t


@pytest.mark.parametrize("model_name", ["myoleg", "myofullbody"])
def test_walk_10s_kinematics_to_kcf(benchmark, model_name, request):
    if model_name == "myoleg":
        if not (PS / "trc" / "PS_ngait_og_ss1.trc").exists():
            pytest.skip("shared data absent")
        kin, res, ext1 = request.getfixturevalue("ps_ss1")
        reps = int(math.ceil(10.0 / (kin.time_s[-1] - kin.time_s[0] + 1 / kin.rate_hz)))
        mk = kin.mapped
        qpos, qvel, qacc = (np.tile(x, (reps, 1)) for x in (mk.qpos, mk.qvel, mk.qacc))
        n = qpos.shape[0]
        t = np.arange(n) / kin.rate_hz
        ext = [ExternalWrenchTrial(w.body, np.tile(w.force_n, (reps, 1)), np.tile(w.point_m, (reps, 1)),
                                   np.tile(w.free_moment_nm, (reps, 1)), t) for w in ext1]
        model, mass, side, goal = kin.model, 75.0, "left", 0.1
    else:
        model, mass, qpos, qvel, qacc, ext, t = _fullbody_walk(1200, 120.0)
        side, goal = "left", 1.0
    run = _chain(model, side, mass, qpos, qvel, qacc, ext, t)
    ref = _chain(model, side, mass, qpos, qvel, qacc, ext, t, use_compiled=False)
    ref()
    ref_cpu = []
    for _ in range(2):
        c0 = time.process_time()
        ref()
        ref_cpu.append(time.process_time() - c0)
    cpu = []

    def timed():
        c0 = time.process_time()
        out = run()
        cpu.append(time.process_time() - c0)
        return out

    kc = benchmark.pedantic(timed, rounds=3, iterations=1, warmup_rounds=1)
    par = _chain(model, side, mass, qpos, qvel, qacc, ext, t, workers=2)
    par()
    par_wall, par_cpu = np.inf, np.inf
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        par()
        par_wall, par_cpu = min(par_wall, time.perf_counter() - t0), min(par_cpu, time.process_time() - c0)
    assert np.isfinite(kc.total_n).all()
    med = benchmark.stats.stats.median
    cpu_med = float(np.median(cpu[1:] if len(cpu) > 3 else cpu))
    ref_med = float(min(ref_cpu))
    benchmark.extra_info.update({"frames": int(t.size), "motion_s": float(t[-1] - t[0] + (t[1] - t[0])),
                                 "median_s": med, "median_cpu_s": cpu_med, "goal_s": goal,
                                 "python_stages_cpu_s": ref_med, "speedup_vs_python_stages": ref_med / cpu_med,
                                 "workers2_wall_s": par_wall, "workers2_cpu_s": par_cpu})
    print(f"\n10 s walk, {model_name}: {t.size} frames, ID + SO + knee contact {cpu_med:.3f} s CPU, {med:.3f} s wall "
          f"(goal <= {goal:g} s: {'met' if cpu_med <= goal else 'NOT met'} on CPU time); the Python stage loops in "
          f"the same run {ref_med:.3f} s CPU ({ref_med / cpu_med:.2f} x); over 2 threads (workers=2) {par_wall:.3f} s "
          f"WALL, {par_cpu:.3f} s CPU (all threads)")
